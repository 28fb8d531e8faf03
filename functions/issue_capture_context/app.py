"""POST /capture-contexts: a verified Cybersource Flex v2 capture context for the checkout."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, response
from decline_rescue.services.capture_contexts import issue_capture_context, parse_selection

router = Router()


@router.post("/capture-contexts")
def create_capture_context(request: Request):
    context = issue_capture_context(parse_selection(request.json_body()), lambda_context=request.context)
    return response(
        201,
        {
            "captureContext": context.token,
            "expiresAt": context.expires_at.isoformat().replace("+00:00", "Z"),
            "keyId": context.key_id,
            "requiredFields": list(context.required_fields),
            "optionalFields": list(context.optional_fields),
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return router.resolve(event, context)


init_done()
