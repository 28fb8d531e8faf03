"""POST /capture-contexts: a verified Cybersource capture context for the checkout
(Microform v2 for a web page, Flex API v2 for a server or native client);
POST /transient-tokens/verify: a transient token checked against its capture context."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, response
from decline_rescue.services.capture_contexts import (
    FieldSelection,
    issue_capture_context,
    issue_microform_context,
    parse_request,
    verify_transient_token,
)

router = Router()


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@router.post("/capture-contexts")
def create_capture_context(request: Request):
    asked = parse_request(request.json_body())
    if not isinstance(asked, FieldSelection):
        context = issue_microform_context(asked, lambda_context=request.context)
        return response(
            201,
            {
                "integration": "microform",
                "captureContext": context.token,
                "expiresAt": _iso(context.expires_at),
                "keyId": context.key_id,
                "clientLibrary": context.client_library,
                "clientLibraryIntegrity": context.client_library_integrity,
                "targetOrigins": list(context.target_origins),
                "allowedCardNetworks": list(context.allowed_networks),
                "allowedPaymentTypes": list(context.allowed_payment_types),
            },
        )
    context = issue_capture_context(asked, lambda_context=request.context)
    return response(
        201,
        {
            "captureContext": context.token,
            "expiresAt": _iso(context.expires_at),
            "keyId": context.key_id,
            "requiredFields": list(context.required_fields),
            "optionalFields": list(context.optional_fields),
        },
    )


@router.post("/transient-tokens/verify")
def verify_token(request: Request):
    return response(200, verify_transient_token(request.json_body(), lambda_context=request.context))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return router.resolve(event, context)


init_done()
