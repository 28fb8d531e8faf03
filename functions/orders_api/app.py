"""GET /orders/{orderId}: an order's status and history; POST /orders/{orderId}/capture,
/cancel and /refund: the merchant's actions on it (API key)."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.domain.strict_json import check_order_id
from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, response
from decline_rescue.services import actions, orders, refunds

router = Router()


@router.get("/orders/<orderId>")
def read_order(request: Request, orderId: str):
    return response(200, orders.get_order(check_order_id(orderId)))


@router.post("/orders/<orderId>/capture")
def capture_order(request: Request, orderId: str):
    return response(200, actions.capture(check_order_id(orderId), request.json_body(), lambda_context=request.context))


@router.post("/orders/<orderId>/cancel")
def cancel_order(request: Request, orderId: str):
    request.json_body()  # an empty body, or JSON: anything else is a 400
    return response(200, actions.cancel(check_order_id(orderId), lambda_context=request.context))


@router.post("/orders/<orderId>/refund")
def refund_order(request: Request, orderId: str):
    return response(200, refunds.refund(check_order_id(orderId), request.json_body(), lambda_context=request.context))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return router.resolve(event, context)


init_done()
