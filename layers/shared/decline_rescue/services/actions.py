"""Merchant actions on an order: capture (CAPTUREREQUIRED) and cancel.

Both call FlexFactor with an idempotencyKey derived from the orderId and the action, so a
merchant's retry (or ours after a timeout) never captures or cancels twice; the outcome
is applied through the single writer, like any other update, and answered with the
order's status. An action the order's status does not allow is a 409 naming the status.

Allowed (PROVIDERS.md): capture in CAPTUREREQUIRED; cancel a merchant-initiated order in
SUBMITTED, PROCESSING or CAPTUREREQUIRED (FlexFactor's Draft, Processing, Capture
required), a customer-initiated one in CAPTUREREQUIRED.
"""

from __future__ import annotations

import uuid
from typing import Any

from decline_rescue.domain.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.runtime import settings
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer as lifecycle

_NAMESPACE = uuid.UUID("6f1c7f9e-3d5a-4f7e-9a43-5b1e2f0c9d21")
CANCELLABLE_MIT = frozenset({lifecycle.SUBMITTED, lifecycle.PROCESSING, lifecycle.CAPTUREREQUIRED})
CANCELLABLE_CIT = frozenset({lifecycle.CAPTUREREQUIRED})


class OrderNotFound(DeclineRescueError):
    status_code = 404
    code = "ORDER_NOT_FOUND"


class OrderStateConflict(DeclineRescueError):
    status_code = 409
    code = "ORDER_STATE_CONFLICT"


def idempotency_key(order_id: str, action: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{action}:{order_id}"))


def _order(order_id: str) -> dict[str, Any]:
    state = lifecycle.orders().get_state(order_id)
    if state is None:
        raise OrderNotFound("no order with this orderId")
    return state


def _amount(body: Any, order: dict[str, Any]) -> int:
    if body is None:
        return int(order["amount"])
    if not isinstance(body, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    unknown = sorted(set(body) - {"amount"})
    if unknown:
        raise InvalidRequest([FieldProblem(unknown[0], "unknown", "is not a capture field (only amount)")])
    amount = body.get("amount", order["amount"])
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest([FieldProblem("amount", "type", "must be an integer amount in cents")])
    if not 0 < amount <= int(order["amount"]):
        raise InvalidRequest(
            [FieldProblem("amount", "range", f"must be above 0 and at most the order's amount ({order['amount']})")]
        )
    return amount


def capture(order_id: str, body: Any, *, lambda_context: Any = None) -> dict[str, Any]:
    from decline_rescue.runtime.wiring import flexfactor

    order = _order(order_id)
    amount = _amount(body, order)
    if order["status"] != lifecycle.CAPTUREREQUIRED:
        raise OrderStateConflict(f"only a CAPTUREREQUIRED order can be captured; this one is {order['status']}")
    with within(settings.flexfactor().calls.budget_seconds, lambda_context=lambda_context):
        answer = flexfactor().capture(
            idempotency_key=idempotency_key(order_id, "capture"),
            order_session_key=str(order["orderSessionKey"]),
            amount=amount,
            currency=str(order["currency"]),
        )
    return _finish(order, answer, "capture", lifecycle.APPROVED, {"capturedAmount": amount})


def cancel(order_id: str, *, lambda_context: Any = None) -> dict[str, Any]:
    from decline_rescue.runtime.wiring import flexfactor

    order = _order(order_id)
    allowed = CANCELLABLE_MIT if order.get("isMIT") else CANCELLABLE_CIT
    if order["status"] not in allowed:
        kind = "a merchant-initiated" if order.get("isMIT") else "a customer-initiated"
        raise OrderStateConflict(
            f"{kind} order can be cancelled in {', '.join(sorted(allowed))}; this one is {order['status']}"
        )
    with within(settings.flexfactor().calls.budget_seconds, lambda_context=lambda_context):
        answer = flexfactor().cancel(
            order_session_key=str(order["orderSessionKey"]), idempotency_key=idempotency_key(order_id, "cancel")
        )
    return _finish(order, answer, "cancel", lifecycle.CANCELLED, {})


def _finish(order: dict[str, Any], answer, action: str, status: str, fields: dict[str, Any]) -> dict[str, Any]:
    order_id = order["orderId"]
    if not answer.ok:
        metrics.add_metric(name=f"Order{action.title()}Refused", unit="Count", value=1)
        logger.warning(f"{action} refused by FlexFactor", extra={"orderId": order_id, "http": answer.http_status})
        # our view of the order may be behind FlexFactor's: look at it on the next run
        lifecycle.orders().schedule_poll(order_id, lifecycle.iso(lifecycle.now_utc()), count=False)
        if answer.http_status == 400:
            raise InvalidRequest([FieldProblem("body", "provider", answer.message)], f"FlexFactor refused the {action}")
        raise OrderStateConflict(f"FlexFactor refused the {action}: {answer.message}")
    update = lifecycle.OrderUpdate(
        updateId=f"{action}:{idempotency_key(order_id, action)}",
        source=action,
        orderId=order_id,
        orderSessionKey=order.get("orderSessionKey"),
        status=status,
        providerStatus=str(answer.raw.get("status") or "SUCCESS")[:100],
    )
    outcome = lifecycle.apply(update, state=order, fields=fields, strict_publish=False)
    metrics.add_metric(name=f"Order{action.title()}d", unit="Count", value=1)
    return {"orderId": order_id, "status": outcome.status, "action": action, "result": outcome.result}
