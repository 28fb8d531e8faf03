"""GET /orders/{orderId}: an order's status and history; POST /orders/{orderId}/capture
and /cancel: the merchant's actions on it (API key)."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue import actions, lifecycle
from decline_rescue.api import json_body, json_response, make_resolver
from decline_rescue.observability import logger, metrics, tracer

app = make_resolver()


@app.get("/orders/<orderId>")
def read_order(orderId: str):
    order = lifecycle.get_order(orderId)
    if order is None:
        return json_response(404, {"error": {"code": "ORDER_NOT_FOUND", "message": "no order with this orderId"}})
    return json_response(200, order)


@app.post("/orders/<orderId>/capture")
def capture_order(orderId: str):
    return json_response(200, actions.capture(orderId, json_body(app), lambda_context=app.lambda_context))


@app.post("/orders/<orderId>/cancel")
def cancel_order(orderId: str):
    json_body(app)  # an empty body, or JSON: anything else is a 400
    return json_response(200, actions.cancel(orderId, lambda_context=app.lambda_context))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
