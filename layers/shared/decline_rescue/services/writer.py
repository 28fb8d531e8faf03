"""The single writer: every change of an order's state, from whichever source, is decided
here by one state machine (``domain.statuses``) and written by one conditional write
(``OrdersTable.commit``): the intake claim (``RECEIVED`` or ``QUEUED``, version 1), the
/evaluate answer, ``NOT_SUBMITTED``, webhook and poll updates, capture, cancel, refunds and
chargebacks, the reconciliation of abandoned claims.

- An update equal to the current status is a duplicate, one that goes backwards is stale:
  both are recorded in the order's history as notes and not applied.
- A refund or a chargeback is an event on the order, recorded once (by its key). A refund
  FlexFactor tells us about (webhook, poll) is recorded once per order, whoever saw it
  first, and not at all when we made refunds ourselves (``record_refund``: each of ours is
  recorded with its amount, under its own key ``REFUNDED#api:<refundId>``).
- An update signed by FlexFactor but about another FlexFactor order than ours, or one that
  carries no status, only makes the order due for a poll.
- Every write is conditional on the version read; a conflict re-reads and decides again.
- The recovery funnel is counted here, once per order and step, since each change is
  applied once (``runtime.metric_names``): received (the claim), submitted or not (by
  rule), resolved (by outcome, with the time from ``submittedAt``), the amount rescued.

Events are not published here: each change's history item, written in the same
transaction, reaches the event publisher through the table's stream (``order_events``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from decline_rescue.domain import statuses as st
from decline_rescue.domain.clock import iso, now_utc
from decline_rescue.domain.clock import parse as parse_time
from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.domain.updates import QUEUED_MESSAGE, Change, OrderUpdate, Outcome, Result
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.observability import emit, logger, metrics

MAX_CONFLICTS = 5
# when FlexFactor was first asked for the order (its /evaluate call; a claim's creation
# when only that is known): time to resolution runs from here
SUBMITTED_AT = "submittedAt"
# the terminal statuses FlexFactor's decisions end in (NOT_SUBMITTED: never sent)
RESOLVED = frozenset({st.APPROVED, st.DECLINED, st.CANCELLED, st.EXPIRED})


class UpdateConflict(DeclineRescueError):
    """The order kept changing under the writer: the message is retried later."""

    status_code = 409
    code = "ORDER_BUSY"


def first_poll_at(status: str, now: datetime | None = None) -> str | None:
    """When an order at ``status`` is looked at next after a change: pending and freshly
    claimed orders after the first poll delay, a queued one after the resend delay (its
    queue send may have failed), terminal ones never."""
    if status in st.TERMINAL:
        return None
    cfg = settings.lifecycle()
    delay = cfg.queued_resend_seconds if status == st.QUEUED else cfg.poll_first_delay_seconds
    return iso((now or now_utc()) + timedelta(seconds=delay))


def create(
    order: dict[str, Any],
    *,
    status: str,
    source: str,
    detail: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    reservation: dict[str, Any] | None = None,
) -> Change:
    """Write a new order at version 1 (the intake claim: RECEIVED or QUEUED), on the
    pending index unless it is terminal, taking its ``idempotency_key`` and the card's
    ``reservation`` (``card``, ``day``, ``cap``, ``exists``: see ``OrdersTable.reserve_item``)
    in the same write; ClaimRefused when the orderId exists or the key is taken,
    ReservationRefused when the card's counter refused."""
    table = wiring.orders()
    extra = []
    if reservation:
        extra.append(
            table.reserve_item(
                reservation["card"], reservation["day"], cap=reservation["cap"], exists=reservation["exists"]
            )
        )
        fields = {**(fields or {}), "reservation": {"card": reservation["card"], "day": reservation["day"]}}
    change = Change(order["orderId"], None, status, 1, source, iso(), detail)
    written = table.commit(
        change,
        order=order,
        fields=fields,
        next_poll_at=first_poll_at(status),
        idempotency_key=idempotency_key,
        key_ttl_seconds=settings.idempotency_ttl_seconds(),
        also_write=extra,
    )
    emit([(m.DECLINE_RECEIVED, "Count", 1)], {m.PATH: _path(order)})
    return written


def take_lease(
    order_id: str, *, version: int, status: str, until_ms: int, reservation: dict[str, Any] | None = None
) -> bool:
    """Become the request that works on a claimed order, reserving the card's reattempt
    with it when the order holds none yet (see ``OrdersTable.take_lease``)."""
    table = wiring.orders()
    if not reservation:
        return table.take_lease(order_id, version=version, status=status, until_ms=until_ms)
    return table.take_lease(
        order_id,
        version=version,
        status=status,
        until_ms=until_ms,
        reservation={"card": reservation["card"], "day": reservation["day"]},
        also_write=[
            table.reserve_item(
                reservation["card"], reservation["day"], cap=reservation["cap"], exists=reservation["exists"]
            )
        ],
    )


LEASE_MARGIN_MS = 2000  # recording the answer after the provider's last call


def lease_until(lambda_context: Any = None, *, margin_ms: int = LEASE_MARGIN_MS) -> int:
    """Until when a request works on an order (ms since the epoch): its provider calls end
    within the provider budget (and the invocation), and recording the answer takes a
    moment more. A request that dies leaves a lease that lapses that soon."""
    budget = int(settings.flexfactor().calls.budget_seconds * 1000)
    if lambda_context is not None:
        budget = min(budget, int(lambda_context.get_remaining_time_in_millis()))
    return int(time.time() * 1000) + max(budget, 0) + margin_ms


def release_lease(order_id: str, *, until_ms: int) -> None:
    wiring.orders().release_lease(order_id, until_ms=until_ms)


def adoptable(order_id: str, *, version: int, reservation: dict[str, str] | None) -> None:
    """FlexFactor refused the claimed decline as invalid: no attempt reached the card's
    network, so its reservation is given back, and a corrected request under the same key
    may take the claim over (its lease is given back too)."""
    wiring.orders().mark_adoptable(order_id, version=version, reservation=reservation)


def apply(
    update: OrderUpdate,
    *,
    state: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    remove: tuple[str, ...] = (),
) -> Outcome:
    """Apply one update to its order (see the module docstring). ``state`` is the order
    as the caller last read it (saves a read; a stale one only costs a retry). ``fields``
    and ``remove`` change the state item with a status change. An order that ends
    NOT_SUBMITTED gives its card's reservation back in the same transaction."""
    table = wiring.orders()
    order_id = update.orderId
    if not order_id:
        return _unmatched(table, update)
    for attempt in range(MAX_CONFLICTS):
        if state is None:
            state = table.get_state(order_id)
            if state is None:
                return _unmatched(table, update)
        try:
            outcome = _decide_and_write(table, update, state, fields or {}, remove)
        except _Reread:
            state = None
            time.sleep(0.05 * attempt)  # another writer is in the way
            continue
        metrics.add_metric(name=m.ORDER_UPDATE[outcome.result], unit="Count", value=1)
        if outcome.result == Result.APPLIED and outcome.change is not None:
            try:  # the change is written: its metrics never fail it
                _recovery_metrics(outcome.change, {**state, **(fields or {})})
            except Exception:  # noqa: BLE001
                logger.exception("recovery metrics not emitted", extra={"orderId": order_id})
        logger.info(
            "order update",
            extra={"orderId": order_id, "result": str(outcome.result), "status": outcome.status, **update.describe()},
        )
        return outcome
    raise UpdateConflict(f"order {order_id} kept changing; the update will be retried")


class _Reread(Exception):
    pass


def _path(order: dict[str, Any]) -> str:
    return m.MIT if order.get("isMIT") else m.CIT


def _recovery_metrics(change: Change, order: dict[str, Any]) -> None:
    """The recovery funnel's metrics of one applied status change (``order``: the order as
    written, before the change): each order counts once at each step, since the writer
    applies each change once."""
    path = {m.PATH: _path(order)}
    if change.previous in st.INTAKE:
        if change.status == st.NOT_SUBMITTED:
            rule = (change.detail or {}).get("rule")
            emit(
                [(m.DECLINE_NOT_SUBMITTED, "Count", 1)],
                {**path, m.RULE: _label(rule)},
                rollups=[(m.PATH,)],
                service_total=True,
            )
        else:
            emit([(m.DECLINE_SUBMITTED, "Count", 1)], path, service_total=True)
    if change.status not in RESOLVED:
        return
    values: list[tuple[str, str, float]] = [(m.ORDERS_RESOLVED, "Count", 1)]
    started, ended = parse_time(order.get(SUBMITTED_AT) or order.get("createdAt")), parse_time(change.at)
    if started and ended:
        values.append((m.TIME_TO_RESOLUTION, "Seconds", round(max((ended - started).total_seconds(), 0.0), 3)))
    emit(values, {**path, m.OUTCOME: change.status}, rollups=[(m.PATH,)])
    if change.status == st.APPROVED:
        amount = order.get("capturedAmount") or order.get("amount")
        currency = str(order.get("currency") or "").upper()
        if isinstance(amount, (int, float, Decimal)) and not isinstance(amount, bool) and amount > 0:
            emit(
                [(m.RESCUED_AMOUNT, "None", int(amount))],
                {**path, m.CURRENCY: currency if len(currency) == 3 and currency.isalpha() else "XXX"},
            )


def _label(value: Any) -> str:
    """A dimension value from data (a rule's name): short and plain, else ``other``."""
    text = str(value or "")
    return text if 0 < len(text) <= 40 and text.replace("_", "").isalnum() and text.isascii() else "other"


def _decide_and_write(
    table,
    update: OrderUpdate,
    state: dict[str, Any],
    fields: dict[str, Any],
    remove: tuple[str, ...],
) -> Outcome:
    from decline_rescue.infra.orders_store import KEEP, OrderConflict

    order_id = state.get("orderId") or update.orderId
    version = int(state["version"])
    current = state["status"]
    known_key = state.get("orderSessionKey")

    def note(kind: str, **detail: Any) -> None:
        table.note(
            order_id,
            version=version,
            kind=kind,
            update_id=update.updateId,
            source=update.source,
            detail={**update.describe(), "current": current, **detail},
        )

    def change(status: str) -> Change:
        return Change(order_id, current, status, version + 1, update.source, iso(), update.reason, update.event)

    distrust = None
    if update.orderSessionKey and known_key and update.orderSessionKey.lower() != str(known_key).lower():
        distrust = "orderSessionKey differs from the order's"  # signed, but about another FlexFactor order
    elif update.source == "webhook" and not update.checkOnly and not (update.orderSessionKey and known_key):
        # a webhook changes an order only when it names the FlexFactor order ours is bound
        # to (bound by FlexFactor's own answer, or a poll): it never binds one itself
        distrust = "the webhook has no OrderId" if not update.orderSessionKey else "the order is not bound yet"
    if distrust:
        note("untrusted", why=distrust)
        request_poll(order_id)
        metrics.add_metric(name=m.ORDER_UPDATE_UNTRUSTED, unit="Count", value=1)
        return Outcome(Result.UNTRUSTED, current)
    if update.checkOnly:
        note("poll-requested")
        request_poll(order_id)
        return Outcome(Result.POLL_REQUESTED, current)

    write_fields = {**fields, "providerStatus": update.providerStatus}
    if update.orderSessionKey and not known_key:
        write_fields["orderSessionKey"] = update.orderSessionKey
    if current in st.INTAKE and update.status not in (None, *st.INTAKE, st.NOT_SUBMITTED):
        # leaving intake for FlexFactor's decision: submitted (the decline path says when it
        # called /evaluate; a claim's request that died, when it was claimed, just before)
        started = state.get("createdAt") if current == st.RECEIVED else None
        write_fields.setdefault(SUBMITTED_AT, started or iso())

    try:
        if update.event:
            key = update.eventKey or f"{update.event}#{update.updateId}"
            seen = state.get("eventKeys") or []
            # FlexFactor never refunds an order twice (PROVIDERS.md): one refund per order,
            # whoever saw it first (a poll sees "Returned", a webhook "order.refunded");
            # chargebacks are told apart by their webhook's key
            once = update.event == st.REFUNDED and any(str(k).startswith(st.REFUNDED) for k in seen)
            # (a webhook's "order.refunded" for one of our own refunds is the same refund)
            if key in seen or once:
                note("duplicate")
                return Outcome(Result.DUPLICATE, current)
            written = table.commit(change(current), fields=write_fields, next_poll_at=KEEP, event_key=key)
            if not st.is_terminal(current):  # a refund of an order not known complete: look
                request_poll(order_id)
            return Outcome(Result.EVENT, current, written)

        status = update.status
        assert status is not None
        if status == current:
            note("duplicate")
            return Outcome(Result.DUPLICATE, current)
        if not st.allowed(current, status):
            note("stale")
            return Outcome(Result.STALE, current)
        if current == st.QUEUED:
            remove = (*remove, QUEUED_MESSAGE)  # the queue's copy is not needed past QUEUED
        release = []
        reservation = state.get("reservation")
        if status == st.NOT_SUBMITTED and isinstance(reservation, dict):
            # never sent: the card's reattempt it reserved is given back with the change
            release.append(table.release_item(reservation["card"], reservation["day"]))
            remove = (*remove, "reservation")
        written = table.commit(
            change(status),
            fields=write_fields,
            remove=remove,
            next_poll_at=first_poll_at(status),
            also_write=release,
        )
        return Outcome(Result.APPLIED, status, written)
    except OrderConflict:
        raise _Reread() from None


REFUND_KEY_PREFIX = f"{st.REFUNDED}#api:"


def _recorded(table, order_id: str, refund_id: str, fallback: dict[str, Any]) -> dict[str, Any]:
    record = table.refund_record(order_id, refund_id) or {}
    return record.get("answer") if isinstance(record.get("answer"), dict) else fallback


def record_refund(
    order_id: str, *, refund_id: str, amount: int, answer: dict[str, Any]
) -> tuple[Outcome, dict[str, Any]]:
    """Record a refund we made (FlexFactor said yes): the order's ``refundedAmount`` grows
    and its ``refundHeld`` shrinks by ``amount``, the held refund is marked done with its
    ``answer`` (plus ``refundedAmount``), and an ``OrderRefunded`` change is written, in
    one transaction; once per ``refund_id`` (a repeat is a duplicate). Returns the outcome
    and the answer as recorded."""
    from decline_rescue.infra.orders_store import KEEP, OrderConflict, ReservationRefused

    table = wiring.orders()
    event_key = f"{REFUND_KEY_PREFIX}{refund_id}"
    for attempt in range(MAX_CONFLICTS):
        state = table.get_state(order_id)
        if state is None:
            raise UpdateConflict(f"order {order_id} vanished while being refunded")
        current = str(state["status"])
        if event_key in (state.get("eventKeys") or []):
            return Outcome(Result.DUPLICATE, current), _recorded(table, order_id, refund_id, answer)
        refunded = int(state.get("refundedAmount") or 0) + amount
        facts = {
            "refundId": refund_id,
            "amount": amount,
            "currency": state.get("currency"),
            "refundedAmount": refunded,
        }
        version = int(state["version"]) + 1
        change = Change(order_id, current, current, version, "refund", iso(), event=st.REFUNDED, refund=facts)
        recorded = {**answer, "refundedAmount": refunded}
        try:
            written = table.commit(
                change,
                fields={"refundedAmount": refunded},  # (versioned: read and written under the version)
                add={"refundHeld": -amount},  # (holds move without a version: added, never overwritten)
                next_poll_at=KEEP,
                event_key=event_key,
                also_write=[table.refund_done_item(order_id, refund_id, recorded)],
            )
        except OrderConflict:
            time.sleep(0.05 * attempt)
            continue
        except ReservationRefused:  # the refund is not held any more: recorded by another request?
            record = table.refund_record(order_id, refund_id) or {}
            if record.get("refundState") != "DONE":  # never answer a refund we did not record
                logger.error("refund not held when recorded", extra={"orderId": order_id, "refundId": refund_id})
                raise UpdateConflict(
                    f"refund {refund_id} of order {order_id} was not held when FlexFactor said yes"
                ) from None
            return Outcome(Result.DUPLICATE, current), _recorded(table, order_id, refund_id, answer)
        metrics.add_metric(name=m.ORDER_REFUNDED, unit="Count", value=1)
        return Outcome(Result.EVENT, current, written), recorded
    raise UpdateConflict(f"order {order_id} kept changing while its refund was recorded")


def request_poll(order_id: str) -> None:
    """Make a pending order due now (no-op for an order that is not pending)."""
    wiring.orders().schedule_poll(order_id, iso(now_utc()), count=False)


def schedule_poll(
    order_id: str, next_poll_at: str, *, version: int | None = None, count: bool, seen: str | None = None
) -> bool:
    """Move a pending order's next poll (see ``OrdersTable.schedule_poll``)."""
    return wiring.orders().schedule_poll(order_id, next_poll_at, version=version, count=count, seen=seen)


def _unmatched(table, update: OrderUpdate) -> Outcome:
    table.record_unmatched(update.orderId or "", update.updateId, update.describe())
    metrics.add_metric(name=m.ORDER_UPDATE_UNMATCHED, unit="Count", value=1)
    logger.warning("update for an unknown order", extra={"orderId": update.orderId, **update.describe()})
    return Outcome(Result.UNMATCHED, None)


# -- the order-updates queue (the writer's inbox) --------------------------------------


def enqueue(updates: list[OrderUpdate]) -> None:
    """Put updates on the order-updates queue for the writer (batched); raises if any failed."""
    from decline_rescue.infra import sqs

    url = settings.lifecycle().require("updates_queue_url")
    sqs.send(url, [(u.to_message(), sqs.attributes(orderId=u.orderId, source=u.source)) for u in updates])


MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit


def handle_message(body: str, *, message_id: str = "") -> str:
    """One order-updates message: the outcome's name. A malformed message can never
    succeed: it goes to the DLQ at once, with why; a conflict raises, so the queue
    redelivers the message."""
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    try:
        update = OrderUpdate.from_message(strict_json.loads(body, max_bytes=MAX_MESSAGE_BYTES))
    except InvalidRequest as exc:
        _dead_letter(body, exc.message, message_id)
        return "rejected"
    except (ValueError, TypeError) as exc:
        _dead_letter(body, str(exc), message_id)
        return "rejected"
    outcome = apply(update)
    if update.delivery_nonce:  # the kept webhook says what became of it
        wiring.orders().mark_delivery(update.delivery_nonce, result=str(outcome.result), processedAt=iso())
    return str(outcome.result)


def _dead_letter(body: str, why: str, message_id: str) -> None:
    from decline_rescue.domain.carddata import redact
    from decline_rescue.infra import sqs

    url = settings.lifecycle().require("updates_dlq_url")
    sqs.dead_letter(url, redact(body[:4096]), why[:300], message_id)
    metrics.add_metric(name=m.ORDER_UPDATE_REJECTED, unit="Count", value=1)
    logger.warning("order update rejected", extra={"messageId": message_id, "why": why[:300]})
