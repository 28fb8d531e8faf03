"""GET /orders/{orderId}: an order's status and history; POST /orders/{orderId}/capture,
/cancel and /refund: the merchant's actions on it (API key)."""

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.domain.errors import InvalidRequest
from decline_rescue.domain.strict_json import check_order_id
from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, error_answer, response
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
    # API Gateway's {orderId} takes any path segment, the router's rule fewer characters
    # (Powertools'): an orderId the router cannot even match is an invalid orderId (400,
    # as every other one), not a missing route (404 NOT_FOUND)
    order_id = (event.get("pathParameters") or {}).get("orderId")
    if order_id is not None:
        try:
            check_order_id(order_id)
        except InvalidRequest as exc:
            return response(*error_answer(exc))
    return router.resolve(event, context)


init_done()
