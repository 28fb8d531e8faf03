"""POST /webhooks/flexfactor: FlexFactor's signed webhooks (no API key: the signature is
the authentication). Valid: queued for the single writer, 200 at once (duplicates too).
Invalid signature, stale date or replayed nonce: 401 with the reason, nothing queued."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.api import json_response, make_resolver, raw_body
from decline_rescue.observability import logger, metrics, tracer
from decline_rescue.webhooks import ingest

app = make_resolver()


@app.post("/webhooks/flexfactor")
def receive_webhook():
    event = app.current_event
    return json_response(200, ingest(event.http_method, raw_body(app), event.headers or {}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
