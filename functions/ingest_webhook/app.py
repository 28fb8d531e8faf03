"""POST /webhooks/flexfactor: FlexFactor's signed webhooks (no API key: the signature is
the authentication). Valid: queued for the single writer, 200 at once (duplicates too).
Invalid signature, stale date or replayed nonce: 401 with the reason, nothing queued."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, response
from decline_rescue.services.webhooks import ingest

router = Router()


@router.post("/webhooks/flexfactor")
def receive_webhook(request: Request):
    served_on = (request.event.get("requestContext") or {}).get("domainName")
    return response(200, ingest(request.method, request.raw_body(), request.headers, served_on=served_on))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return router.resolve(event, context)


init_done()
