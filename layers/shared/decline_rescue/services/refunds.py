"""Refunds: ``POST /orders/{orderId}/refund`` with ``{"amount"?, "reason"?, "idempotencyKey"?}``.

- Only an ``APPROVED`` order (FlexFactor approved or completed it; captured, when capture
  was required) can be refunded; ``amount`` is an integer in the currency's minor units
  (ISO 4217 exponent: JPY 0, USD 2, KWD 3), at most what is left: the captured amount
  (the order's amount unless a capture said less) less what was refunded and what other
  refunds hold right now. Without ``amount``, the rest is refunded. More than is left is
  a 409 ``REFUND_EXCEEDS_REMAINING``.
- **Never twice.** A refund is kept under its ``idempotencyKey`` (given, or derived from
  the order, the amount, or "the rest", and the reason: a repeat of the same request is
  the same refund; a second partial refund of the same amount needs a key or another
  reason). Before FlexFactor is asked, the refund is held (``OrdersTable.hold_refund``:
  its amount counts against what is left, so concurrent refunds never exceed the
  captured amount); FlexFactor's yes is recorded by the single writer
  (``writer.record_refund``: ``refundedAmount``, an ``OrderRefunded`` event with the
  amount); a repeat with the key answers the recorded refund (``replayed: true``); the
  key with another amount or reason is a 409 ``IDEMPOTENCY_KEY_REUSED``.
- **FlexFactor's answers.** ``amountToRefund`` is sent in major units as a decimal
  (``12.34``; ``1500`` yen; ``1.500`` dinar). Its failure is HTTP 200 ``{success: false,
  status: "FAILED", responseCode, responseMessage, errors: [{item1..item4}]}``: a 409
  ``REFUND_REFUSED`` with its message and code, the hold given back.
- **Asked once.** FlexFactor's refund carries no idempotency key, so the request is sent
  exactly once (no automatic resend), by one request at a time (the hold is a lease,
  ``askingUntil``: a concurrent request with the key gets 409 ``REFUND_IN_PROGRESS``).
  When FlexFactor surely did not act (the connection failed, 429, 503) the hold is given
  back and the merchant may retry. When it may have (a timeout, 500, 502, 504, or a
  request that died while asking) the refund stays held as ``UNKNOWN`` and is never asked
  again automatically: the answer is 502/504 ``REFUND_OUTCOME_UNKNOWN``, and a retry with
  the key a 409 saying so. An operator settles it from FlexFactor's records (the held
  amount keeps counting against what is left, so nothing can be over-refunded meanwhile).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from decline_rescue.domain import statuses as st
from decline_rescue.domain.clock import iso
from decline_rescue.domain.data.iso import exponent
from decline_rescue.domain.errors import (
    DeclineRescueError,
    ProviderAuthError,
    ProviderRejected,
)
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer
from decline_rescue.services.actions import OrderStateConflict
from decline_rescue.services.orders import OrderNotFound

_NAMESPACE = uuid.UUID("0d3c6a57-9f0e-4b1f-8a5e-7c2b9e4d1f60")
MAX_TRIES = 5


class RefundConflict(DeclineRescueError):
    status_code = 409
    code = "REFUND_EXCEEDS_REMAINING"


class RefundKeyReused(DeclineRescueError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_REUSED"


class RefundInProgress(DeclineRescueError):
    status_code = 409
    code = "REFUND_IN_PROGRESS"


class RefundOutcomeUnknown(DeclineRescueError):
    """FlexFactor's answer was lost, so it may have refunded: never asked again
    automatically (no idempotency key). 502 to the request that lost it, 409 to a retry."""

    status_code = 502
    code = "REFUND_OUTCOME_UNKNOWN"


class RefundStillUnknown(RefundOutcomeUnknown):
    status_code = 409


class RefundRefused(DeclineRescueError):
    """FlexFactor said no (its HTTP 200 ``status: FAILED``)."""

    status_code = 409
    code = "REFUND_REFUSED"


def major_units(amount: int, currency: str) -> str:
    """Minor units as a decimal string in major units, exactly (1234 USD -> "12.34")."""
    digits = exponent(currency)
    if digits == 0:
        return str(amount)
    whole, part = divmod(amount, 10**digits)
    return f"{whole}.{part:0{digits}d}"


def _parse(body: Any) -> tuple[int | None, str | None, str | None]:
    # the refund body's model (openapi.yaml documents it); imported here: pydantic stays
    # out of the orders API's cold start
    from decline_rescue.domain.api_models import RefundRequest

    request = RefundRequest.parse(body)
    return request.amount, request.reason, request.idempotencyKey


def _fingerprint(amount: int | None, reason: str | None) -> str:
    return hashlib.sha256(f"{amount if amount is not None else 'rest'}|{reason or ''}".encode()).hexdigest()


def refund(order_id: str, body: Any, *, lambda_context: Any = None) -> dict[str, Any]:
    asked, reason, given_key = _parse(body)
    table = wiring.orders()
    fingerprint = _fingerprint(asked, reason)
    key = given_key or str(uuid.uuid5(_NAMESPACE, f"{order_id}|{fingerprint}"))
    for _ in range(MAX_TRIES):
        order = table.get_state(order_id)
        if order is None:
            raise OrderNotFound("no order with this orderId")
        record = table.refund_record(order_id, key)
        if record is not None:
            if record.get("fingerprint") != fingerprint:
                raise RefundKeyReused("this idempotencyKey was used for a refund with another amount or reason")
            state = record.get("refundState")
            if state == "DONE":
                return {**record["answer"], "replayed": True, "result": "duplicate"}
            if state == "HELD" and int(record.get("askingUntil") or 0) > time.time() * 1000:
                raise RefundInProgress("this refund is being asked of FlexFactor right now: retry in a few seconds")
            if state == "HELD":  # its asker died mid-way: FlexFactor may have refunded
                table.mark_refund_unknown(order_id, key, "the request asking FlexFactor ended without an answer")
            raise RefundStillUnknown(
                "FlexFactor may have made this refund (its answer was lost): it is not asked again, "
                "so that it is never made twice; check it in FlexFactor before refunding under another key",
                reason=str(record.get("why") or "outcome unknown")[:200],
            )
        if order["status"] != st.APPROVED:
            raise OrderStateConflict(
                f"only an APPROVED (captured) order can be refunded; this one is {order['status']}"
            )
        if not order.get("orderSessionKey"):  # approved, but not bound to FlexFactor's order yet
            raise OrderStateConflict("the order is not bound to FlexFactor's order yet: try again after the next poll")
        captured = int(order.get("capturedAmount") or order["amount"])
        refunded, held = int(order.get("refundedAmount") or 0), int(order.get("refundHeld") or 0)
        left = captured - refunded - held
        amount = asked if asked is not None else left
        if amount <= 0 or amount > left:
            detail = f" ({held} held by a refund in progress)" if held else ""
            raise RefundConflict(
                f"{amount if asked is not None else 'the rest'} exceeds what is left to refund: {left} of the "
                f"captured {captured} {order['currency']} minor units, {refunded} refunded{detail}"
            )
        asking_until = writer.lease_until(margin_ms=5000)
        hold = {
            "amount": amount,
            "fingerprint": fingerprint,
            "reason": reason,
            "heldAt": iso(),
            "askingUntil": asking_until,
        }
        result = table.hold_refund(
            order_id, key, hold, version=int(order["version"]), status=st.APPROVED, held=held, amount=amount
        )
        if result == "held":
            break
        # "exists": another request holds this key (read it); "changed": the order moved on
    else:
        raise writer.UpdateConflict(f"order {order_id} kept changing while a refund was asked")
    return _ask(order, key, amount, reason, lambda_context=lambda_context)


def _ask(order: dict[str, Any], key: str, amount: int, reason: str | None, *, lambda_context: Any) -> dict[str, Any]:
    order_id, currency = order["orderId"], str(order["currency"])
    try:
        with within(settings.flexfactor().calls.budget_seconds, lambda_context=lambda_context):
            answer = wiring.flexfactor().refund(
                order_session_key=str(order["orderSessionKey"]), amount=major_units(amount, currency), message=reason
            )
    except DeclineRescueError as exc:
        if _surely_not_sent(exc):  # FlexFactor did nothing: the hold is given back, a retry may ask again
            _release(order_id, key, amount)
            raise
        # FlexFactor may have refunded: held as UNKNOWN, never asked again automatically
        wiring.orders().mark_refund_unknown(order_id, key, f"{exc.code}: {exc.reason or exc.message}")
        metrics.add_metric(name=m.ORDER_REFUND_UNCERTAIN, unit="Count", value=1)
        logger.error("refund outcome unknown: held", extra={"orderId": order_id, "refundId": key, "code": exc.code})
        raise RefundOutcomeUnknown(
            "FlexFactor's answer to the refund was lost, so it may have been made: it is held and not asked "
            "again; check it in FlexFactor",
            reason=str(exc.reason or exc.code)[:200],
        ) from None
    if not answer.ok:
        _release(order_id, key, amount)
        metrics.add_metric(name=m.ORDER_REFUND_REFUSED, unit="Count", value=1)
        code = str(answer.raw.get("responseCode") or "") or None
        logger.warning("refund refused by FlexFactor", extra={"orderId": order_id, "http": answer.http_status})
        if answer.http_status in (200, 409, 422):
            raise RefundRefused(f"FlexFactor refused the refund: {answer.message}", reason=code)
        raise ProviderRejected("flexfactor", f"FlexFactor refused the refund request: {answer.message}", reason=code)
    result = {
        "orderId": order_id,
        "refundId": key,
        "status": "REFUNDED",
        "amount": amount,
        "currency": currency,
        "providerTransactionId": answer.raw.get("transactionId"),
    }
    outcome, recorded = writer.record_refund(order_id, refund_id=key, amount=amount, answer=result)
    return {**recorded, "result": str(outcome.result)}


def _surely_not_sent(exc: Exception) -> bool:
    """Did FlexFactor surely not act on the request? A connection that never opened, or an
    answer that says it was not processed (429, 503)."""
    if isinstance(exc, ProviderAuthError):  # refused before the refund was looked at
        return True
    reason = str(getattr(exc, "reason", "") or "")
    return reason.startswith(("unreachable (ConnectError", "timed out (ConnectTimeout", "HTTP 429", "HTTP 503"))


def _release(order_id: str, key: str, amount: int, *, states: tuple[str, ...] = ("HELD",)) -> bool:
    """Give the hold back; False when the refund is no longer in ``states`` (recorded meanwhile)."""
    table = wiring.orders()
    for _ in range(MAX_TRIES):
        state = table.get_state(order_id) or {}
        held = int(state.get("refundHeld") or 0)
        if table.release_refund(order_id, key, held=held, amount=amount, states=states):
            return True
        record = table.refund_record(order_id, key)
        if record is None or record.get("refundState") not in states:
            return False
    logger.error("refund hold not released", extra={"orderId": order_id, "refundId": key})


def settle(order_id: str, refund_id: str, *, refunded: bool, transaction_id: str | None = None) -> dict[str, Any]:
    """An operator's verdict on a refund whose outcome was lost (``UNKNOWN``, or ``HELD``
    by a request that died), after looking at FlexFactor's records: ``refunded`` records it
    through the single writer (``OrderRefunded``, ``refundedAmount``); not refunded gives
    the hold back, so the amount can be refunded again. A refund already ``DONE`` is
    answered as it is; one being asked right now is refused."""
    table = wiring.orders()
    record = table.refund_record(order_id, refund_id)
    if record is None:
        raise RefundConflict(f"no refund {refund_id} on order {order_id}")
    state = record.get("refundState")
    if state == "DONE":
        return {**record["answer"], "settled": "already recorded"}
    if state == "HELD" and int(record.get("askingUntil") or 0) > time.time() * 1000:
        raise RefundInProgress("this refund is being asked of FlexFactor right now: settle it once it has ended")
    amount = int(record["amount"])
    if not refunded:
        if not _release(order_id, refund_id, amount, states=("HELD", "UNKNOWN")):
            after = table.refund_record(order_id, refund_id) or {}
            raise RefundConflict(
                f"refund {refund_id} was not released: it is {after.get('refundState', 'gone')} now "
                "(recorded as made meanwhile?): look at the order before doing anything else"
            )
        logger.warning("refund settled as not made", extra={"orderId": order_id, "refundId": refund_id})
        return {"orderId": order_id, "refundId": refund_id, "status": "NOT_REFUNDED", "amount": amount}
    order = table.get_state(order_id) or {}
    answer = {
        "orderId": order_id,
        "refundId": refund_id,
        "status": "REFUNDED",
        "amount": amount,
        "currency": order.get("currency"),
        "providerTransactionId": transaction_id,
        "settledBy": "operator",
    }
    outcome, recorded = writer.record_refund(order_id, refund_id=refund_id, amount=amount, answer=answer)
    logger.warning("refund settled as made", extra={"orderId": order_id, "refundId": refund_id})
    return {**recorded, "result": str(outcome.result)}
