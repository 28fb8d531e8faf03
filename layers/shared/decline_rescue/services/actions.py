"""Merchant actions on an order: capture (CAPTUREREQUIRED) and cancel.

Both call FlexFactor with an idempotencyKey derived from the orderId and the action, so a
merchant's retry (or ours after a timeout) never captures or cancels twice; the outcome
is applied through the single writer, like any other update, and answered with the
order's status. An action the order's status does not allow is a 409 naming the status.

Allowed (PROVIDERS.md): capture in CAPTUREREQUIRED; cancel a merchant-initiated order in
SUBMITTED, PROCESSING or CAPTUREREQUIRED (FlexFactor's Draft, Processing, Capture
required), a customer-initiated one in CAPTUREREQUIRED.

A claim FlexFactor never answered (``RECEIVED`` without an orderSessionKey: /evaluate
timed out, or its request died) is cancelled by the merchant's orderId
(``external-cancel``), under the claim's lease, so that no retry submits it meanwhile: a
404 from FlexFactor means it never had the order (NOT_SUBMITTED); a success means it had
one and cancelled it (CANCELLED). A claim whose request is still at work (a live lease)
is a 409: try again in a few seconds.

FlexFactor answers a failed capture with HTTP 200 and ``status: "FAILED"``: a 409 to the
merchant with FlexFactor's message, the order unchanged and looked at on the next poll.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from decline_rescue.domain import statuses as st
from decline_rescue.domain.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.domain.updates import OrderUpdate
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer
from decline_rescue.services.orders import OrderNotFound

_NAMESPACE = uuid.UUID("6f1c7f9e-3d5a-4f7e-9a43-5b1e2f0c9d21")
CANCELLABLE_MIT = frozenset({st.SUBMITTED, st.PROCESSING, st.CAPTUREREQUIRED})
CANCELLABLE_CIT = frozenset({st.CAPTUREREQUIRED})


class OrderStateConflict(DeclineRescueError):
    status_code = 409
    code = "ORDER_STATE_CONFLICT"


@dataclass(frozen=True)
class _Action:
    name: str
    status: str
    done_metric: str
    refused_metric: str


CAPTURE = _Action("capture", st.APPROVED, m.ORDER_CAPTURED, m.ORDER_CAPTURE_REFUSED)
CANCEL = _Action("cancel", st.CANCELLED, m.ORDER_CANCELLED, m.ORDER_CANCEL_REFUSED)


def idempotency_key(order_id: str, action: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{action}:{order_id}"))


def _order(order_id: str) -> dict[str, Any]:
    state = wiring.orders().get_state(order_id)
    if state is None:
        raise OrderNotFound("no order with this orderId")
    return state


def _amount(body: Any, order: dict[str, Any]) -> int:
    # the capture body's model (openapi.yaml documents it); imported here: pydantic stays
    # out of the orders API's cold start
    from decline_rescue.domain.api_models import CaptureRequest

    return CaptureRequest.parse(body, order_amount=order["amount"])


def capture(order_id: str, body: Any, *, lambda_context: Any = None) -> dict[str, Any]:
    order = _order(order_id)
    amount = _amount(body, order)
    if order["status"] != st.CAPTUREREQUIRED:
        raise OrderStateConflict(f"only a CAPTUREREQUIRED order can be captured; this one is {order['status']}")
    with within(settings.flexfactor().calls.budget_seconds, lambda_context=lambda_context):
        answer = wiring.flexfactor().capture(
            idempotency_key=idempotency_key(order_id, "capture"),
            order_session_key=str(order["orderSessionKey"]),
            amount=amount,
            currency=str(order["currency"]),
        )
    return _finish(order, answer, CAPTURE, {"capturedAmount": amount})


def cancel(order_id: str, *, lambda_context: Any = None) -> dict[str, Any]:
    order = _order(order_id)
    if order["status"] == st.RECEIVED and not order.get("orderSessionKey"):
        return _cancel_unanswered(order, lambda_context=lambda_context)
    allowed = CANCELLABLE_MIT if order.get("isMIT") else CANCELLABLE_CIT
    if order["status"] not in allowed:
        kind = "a merchant-initiated" if order.get("isMIT") else "a customer-initiated"
        raise OrderStateConflict(
            f"{kind} order can be cancelled in {', '.join(sorted(allowed))}; this one is {order['status']}"
        )
    with within(settings.flexfactor().calls.budget_seconds, lambda_context=lambda_context):
        answer = wiring.flexfactor().cancel(
            order_session_key=str(order["orderSessionKey"]), idempotency_key=idempotency_key(order_id, "cancel")
        )
    return _finish(order, answer, CANCEL, {})


def _cancel_unanswered(order: dict[str, Any], *, lambda_context: Any) -> dict[str, Any]:
    """Cancel a claim FlexFactor never answered, by the merchant's orderId (see the module)."""
    order_id = order["orderId"]
    budget = settings.flexfactor().calls.budget_seconds
    until_ms = writer.lease_until(lambda_context)
    taken = wiring.orders().take_lease(order_id, version=int(order["version"]), status=st.RECEIVED, until_ms=until_ms)
    if not taken:
        raise OrderStateConflict("the decline is being submitted right now: try the cancel again in a few seconds")
    try:
        with within(budget, lambda_context=lambda_context):
            answer = wiring.flexfactor().external_cancel(external_order_id=order_id)
    except BaseException:
        writer.release_lease(order_id, until_ms=until_ms)
        raise
    if answer is not None and not answer.ok:
        writer.release_lease(order_id, until_ms=until_ms)
        writer.request_poll(order_id)
        metrics.add_metric(name=m.ORDER_CANCEL_REFUSED, unit="Count", value=1)
        raise OrderStateConflict(f"FlexFactor refused the cancel: {answer.message}")
    if answer is None and not _old_enough(order):
        # FlexFactor has none yet, but the decline may still be on its way to it (a request
        # that timed out on our side): closing it now could let it be charged afterwards
        writer.release_lease(order_id, until_ms=until_ms)
        raise OrderStateConflict(
            "FlexFactor has no order under this orderId yet, but the decline may still be on its way: "
            f"try again {settings.lifecycle().abandon_after_seconds:g} s after its submission, "
            "or let the poller close it"
        )
    if answer is None:  # FlexFactor has no order under our orderId, long after: nothing was submitted
        status, reason = (
            st.NOT_SUBMITTED,
            {"rule": "cancelled", "detail": "cancelled by the merchant before FlexFactor had the order"},
        )
    else:
        status, reason = st.CANCELLED, {"rule": "cancelled", "detail": "cancelled by our orderId (external-cancel)"}
    update = OrderUpdate(
        updateId=f"cancel:{idempotency_key(order_id, 'cancel')}",
        source="cancel",
        orderId=order_id,
        status=status,
        providerStatus="external-cancel",
        reason=reason,
    )
    outcome = writer.apply(update, state=order, remove=("leaseUntil",))
    metrics.add_metric(name=m.ORDER_CANCELLED, unit="Count", value=1)
    return {"orderId": order_id, "status": outcome.status, "action": "cancel", "result": str(outcome.result)}


def _old_enough(order: dict[str, Any]) -> bool:
    """Is the claim older than ``ABANDON_AFTER_SECONDS`` (FlexFactor would have it by now)?"""
    from decline_rescue.domain.clock import now_utc, parse

    created = parse(order.get("createdAt"))
    age = (now_utc() - created).total_seconds() if created else 0.0
    return age >= settings.lifecycle().abandon_after_seconds


def _finish(order: dict[str, Any], answer, action: _Action, fields: dict[str, Any]) -> dict[str, Any]:
    order_id = order["orderId"]
    if not answer.ok:
        metrics.add_metric(name=action.refused_metric, unit="Count", value=1)
        logger.warning(f"{action.name} refused by FlexFactor", extra={"orderId": order_id, "http": answer.http_status})
        # our view of the order may be behind FlexFactor's: look at it on the next run
        writer.request_poll(order_id)
        if answer.http_status == 400:
            raise InvalidRequest(
                [FieldProblem("body", "provider", answer.message)], f"FlexFactor refused the {action.name}"
            )
        raise OrderStateConflict(f"FlexFactor refused the {action.name}: {answer.message}")
    update = OrderUpdate(
        updateId=f"{action.name}:{idempotency_key(order_id, action.name)}",
        source=action.name,
        orderId=order_id,
        orderSessionKey=order.get("orderSessionKey"),
        status=action.status,
        providerStatus=str(answer.raw.get("status") or "SUCCESS")[:100],
    )
    outcome = writer.apply(update, state=order, fields=fields)
    metrics.add_metric(name=action.done_metric, unit="Count", value=1)
    return {"orderId": order_id, "status": outcome.status, "action": action.name, "result": str(outcome.result)}
