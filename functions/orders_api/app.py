"""GET /orders/{orderId}: an order's current status and its history (API key)."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.api import json_response, make_resolver
from decline_rescue.declines import get_order
from decline_rescue.observability import logger, metrics, tracer

app = make_resolver()


@app.get("/orders/<orderId>")
def read_order(orderId: str):
    order = get_order(orderId)
    if order is None:
        return json_response(404, {"error": {"code": "ORDER_NOT_FOUND", "message": "no order with this orderId"}})
    return json_response(200, order)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
