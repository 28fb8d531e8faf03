"""The order lifecycle: one state machine and the single writer that applies it.

Every status an order can have, from whichever source (the /evaluate answer, a
FlexFactor webhook, a poll of ``GET /v1/orders/{id}``, a merchant's capture or cancel),
is mapped onto these statuses and applied by ``apply``:

- intake (ours, before FlexFactor decided): ``RECEIVED``, ``QUEUED``;
- pending at FlexFactor: ``SUBMITTED`` < ``CHALLENGE`` < ``PROCESSING`` < ``CAPTUREREQUIRED``;
- terminal: ``APPROVED`` (Approved, Completed), ``DECLINED``, ``CANCELLED``, ``EXPIRED``,
  and ``NOT_SUBMITTED`` (ours: never sent, with the rule that stopped it).

A change is allowed only forward: from intake to anything, from a pending status to a
later pending status or to a terminal one; a terminal status never changes again.
A refund or a chargeback is an *event* recorded on the order (its status stays). An
update equal to the current status is a duplicate, one that goes backwards is stale:
both are recorded in the order's history and not applied. Every write is conditional on
the version read (a conflict re-reads and decides again), and each applied change is
published once on the EventBridge bus: the state item carries ``eventPending`` until the
event is out, and any later touch of the order publishes what is still pending.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.runtime import settings
from decline_rescue.runtime.observability import logger, metrics

RECEIVED = "RECEIVED"
QUEUED = "QUEUED"
SUBMITTED = "SUBMITTED"
CHALLENGE = "CHALLENGE"
PROCESSING = "PROCESSING"
CAPTUREREQUIRED = "CAPTUREREQUIRED"
APPROVED = "APPROVED"
DECLINED = "DECLINED"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
NOT_SUBMITTED = "NOT_SUBMITTED"

INTAKE = frozenset({RECEIVED, QUEUED})
PENDING = (SUBMITTED, CHALLENGE, PROCESSING, CAPTUREREQUIRED)  # in lifecycle order
TERMINAL = frozenset({APPROVED, DECLINED, CANCELLED, EXPIRED, NOT_SUBMITTED})
STATUSES = (*sorted(INTAKE), *PENDING, *sorted(TERMINAL))

REFUNDED = "REFUNDED"
CHARGEBACK = "CHARGEBACK"
EVENTS = frozenset({REFUNDED, CHARGEBACK})

_RANK = {RECEIVED: 0, QUEUED: 0, **{s: i + 1 for i, s in enumerate(PENDING)}, **dict.fromkeys(TERMINAL, 99)}


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def allowed(current: str, new: str) -> bool:
    """May an order at ``current`` move to ``new``? Forward only; terminal is final;
    NOT_SUBMITTED only before anything was sent."""
    if current not in _RANK or new not in _RANK or current in TERMINAL or new in INTAKE:
        return False
    if new == NOT_SUBMITTED:
        return current in INTAKE
    return _RANK[new] > _RANK[current]


# -- provider vocabularies -> statuses ------------------------------------------------

EVALUATE_STATUSES = {s: s for s in (APPROVED, DECLINED, CHALLENGE, CAPTUREREQUIRED, SUBMITTED)}

# GET /v1/orders status enum (PROVIDERS.md): 0 Draft, 1 Onhold, 2 Cancelled, 3 Problem,
# 4 Processing, 5 Capturerequired, 6 Returned, 7 Completed
ORDER_ENUM = {
    0: (SUBMITTED, None),
    1: (PROCESSING, None),
    2: (CANCELLED, None),
    3: (PROCESSING, None),
    4: (PROCESSING, None),
    5: (CAPTUREREQUIRED, None),
    6: (APPROVED, REFUNDED),
    7: (APPROVED, None),
}
# status names across endpoints (seed 003's table), normalised: lower case, no spaces
STATUS_NAMES = {
    "draft": (SUBMITTED, None),
    "submitted": (SUBMITTED, None),
    "challenge": (CHALLENGE, None),
    "onhold": (PROCESSING, None),
    "problem": (PROCESSING, None),
    "processing": (PROCESSING, None),
    "capturerequired": (CAPTUREREQUIRED, None),
    "completed": (APPROVED, None),
    "approved": (APPROVED, None),
    "returned": (APPROVED, REFUNDED),
    "refunded": (APPROVED, REFUNDED),
    "cancelled": (CANCELLED, None),
    "canceled": (CANCELLED, None),
    "declined": (DECLINED, None),
    "expired": (EXPIRED, None),
}
# webhook events: a status, an event on the order, or only a reason to poll it
WEBHOOK_STATUS = {
    "order.completed": APPROVED,
    "order.cancelled": CANCELLED,
    "order.expired": EXPIRED,
    "order.capturerequired": CAPTUREREQUIRED,
    "challenge.presented": CHALLENGE,
}
WEBHOOK_EVENT = {"order.refunded": REFUNDED, "payment.chargeback.received": CHARGEBACK}
WEBHOOK_POLL = frozenset({"challenge.attempted", "challenge.passed", "challenge.failed"})
WEBHOOK_IGNORED = frozenset({"payout.created", "payout.updated"})


def from_provider_order(order: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, event) of a ``GET /v1/orders/{id}`` answer: the status name when it is
    one we know (it can say Expired, which the enum cannot), else the enum value."""
    name = str(order.get("statusName") or "").replace(" ", "").replace("_", "").lower()
    if name in STATUS_NAMES:
        return STATUS_NAMES[name]
    raw = order.get("status")
    if isinstance(raw, str):
        key = raw.replace(" ", "").replace("_", "").lower()
        if key in STATUS_NAMES:
            return STATUS_NAMES[key]
        raw = int(raw) if raw.strip().isdigit() else None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in ORDER_ENUM:
        return ORDER_ENUM[raw]
    return None, None


def provider_status_text(order: dict[str, Any]) -> str:
    return f"{order.get('status')} {order.get('statusName') or ''}".strip()


# -- updates --------------------------------------------------------------------------

SOURCES = frozenset({"webhook", "poll", "api", "queue", "capture", "cancel"})
_TEXT_FIELDS = (
    "updateId",
    "source",
    "orderId",
    "orderSessionKey",
    "status",
    "event",
    "eventKey",
    "providerStatus",
    "observedAt",
)
_MAX_TEXT = 300


@dataclass(frozen=True)
class OrderUpdate:
    """One message on the order-updates queue: what a source observed about an order.
    (A dataclass checked by hand, not a pydantic model: the webhook and writer functions
    are on the hot path and pydantic's import is most of a cold start.)"""

    updateId: str
    source: str
    orderId: str | None = None  # the merchant's
    orderSessionKey: str | None = None  # FlexFactor's
    status: str | None = None
    event: str | None = None
    eventKey: str | None = None
    checkOnly: bool = False  # only a reason to poll the order (untrusted or status-less)
    providerStatus: str | None = None
    observedAt: str | None = None
    reason: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
                raise ValueError(f"{name} must be a string of at most {_MAX_TEXT} characters")
        if not self.updateId:
            raise ValueError("updateId is required")
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {', '.join(sorted(SOURCES))}")
        if self.status is not None and self.status not in _RANK:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.event is not None and self.event not in EVENTS:
            raise ValueError(f"event {self.event!r} is not one of {', '.join(sorted(EVENTS))}")
        if not isinstance(self.checkOnly, bool):
            raise ValueError("checkOnly must be true or false")
        if self.reason is not None and not isinstance(self.reason, dict):
            raise ValueError("reason must be an object")
        if not (self.status or self.event or self.checkOnly):
            raise ValueError("an update needs a status, an event or checkOnly")

    @classmethod
    def from_message(cls, raw: Any) -> OrderUpdate:
        """From a queue message's JSON; ValueError naming the field when malformed."""
        if not isinstance(raw, dict):
            raise ValueError("the message must be a JSON object")
        known = {f: raw[f] for f in cls.__dataclass_fields__ if f in raw and raw[f] is not None}
        missing = [f for f in ("updateId", "source") if f not in known]
        if missing:
            raise ValueError(f"{missing[0]} is required")
        return cls(**known)

    def to_message(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

    def describe(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "source": self.source,
                "status": self.status,
                "event": self.event,
                "providerStatus": self.providerStatus,
                "observedAt": self.observedAt,
                "updateId": self.updateId,
            }.items()
            if v is not None
        }


class UpdateConflict(DeclineRescueError):
    """The order kept changing under the writer: the message is retried later."""

    status_code = 409
    code = "ORDER_BUSY"


class PublishFailed(DeclineRescueError):
    """The change is written but its event did not go out: retried, then published."""

    status_code = 503
    code = "EVENT_NOT_PUBLISHED"


@dataclass(frozen=True)
class Outcome:
    """What ``apply`` did: applied | event | duplicate | stale | untrusted |
    poll_requested | unmatched; and the order's status afterwards."""

    result: str
    status: str | None
    change: Any = None


# -- wiring ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def orders():
    from decline_rescue.infra.orders_store import OrdersTable

    return OrdersTable(settings.lifecycle().orders_table)


def reset() -> None:
    orders.cache_clear()


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def first_poll_at(status: str, now: datetime | None = None) -> str | None:
    """When an order at ``status`` is polled next after a change: pending and freshly
    claimed orders after the first delay; terminal and queued ones never."""
    if status in TERMINAL or status == QUEUED:
        return None
    delay = settings.lifecycle().poll_first_delay_seconds
    return iso((now or now_utc()) + timedelta(seconds=delay))


# -- publishing (the outbox) ----------------------------------------------------------


def publish(table, change) -> bool:
    """Put one change on the bus and clear its outbox mark; False when it failed (the
    claim is released, so the next writer of this order publishes it at once)."""
    from decline_rescue.infra import events as bus

    if not bus.publish(settings.lifecycle().require("event_bus"), change):
        table.release_publish(change.order_id, change.version)
        return False
    table.mark_published(change.order_id, change.version)
    return True


def drain(table, state: dict[str, Any]) -> bool:
    """Publish a change an earlier writer could not (it failed, or crashed and its claim
    lapsed); True when nothing is left to do here. A change whose writer is still
    publishing it is left to that writer."""
    pending = state.get("eventPending")
    if pending is None:
        return True
    claimed_until = state.get("eventClaimedUntil")
    if claimed_until is not None and int(claimed_until) > now_utc().timestamp() * 1000:
        return True  # its writer is on it
    if not table.claim_publish(state["orderId"], int(pending)):
        return True  # another writer took it, or it is done
    change = table.change_at(state["orderId"], int(pending))
    if change is None:  # the mark outlived its history item: nothing to send
        table.mark_published(state["orderId"], int(pending))
        return True
    metrics.add_metric(name="StatusEventRepublished", unit="Count", value=1)
    return publish(table, change)


# -- the single writer ----------------------------------------------------------------

MAX_CONFLICTS = 5


def apply(
    update: OrderUpdate,
    *,
    state: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    strict_publish: bool = True,
    also_put: list[dict[str, Any]] | None = None,
) -> Outcome:
    """Apply one update to its order (see the module docstring). ``state`` is the order
    as the caller last read it (saves a read; a stale one only costs a retry).
    ``strict_publish`` raises PublishFailed when the event did not go out, so a queue
    redelivers the update; the API path logs instead (its caller has the answer).
    ``also_put``: items written in the transaction of a status change (e.g. the card's
    reattempt); written only if the outcome is ``applied`` (the caller writes them
    otherwise)."""
    table = orders()
    order_id = update.orderId
    if not order_id:
        return _unmatched(table, update)
    for attempt in range(MAX_CONFLICTS):
        if state is None:
            state = table.get_state(order_id)
            if state is None:
                return _unmatched(table, update)
        if state.get("eventPending") is not None and not drain(table, state):
            if strict_publish:
                raise PublishFailed("an earlier change of this order is not published yet")
            logger.warning("an earlier change's event is still unpublished", extra={"orderId": order_id})
        try:
            outcome = _decide_and_write(table, update, state, fields or {}, also_put)
        except _Reread:
            state = None
            time.sleep(0.05 * attempt)  # another writer (or its publishing) is in the way
            continue
        if outcome.change is not None and not publish(table, outcome.change) and strict_publish:
            raise PublishFailed("the change is recorded; its event will be published on retry")
        metrics.add_metric(name=f"OrderUpdate_{outcome.result}", unit="Count", value=1)
        logger.info(
            "order update",
            extra={"orderId": order_id, "result": outcome.result, "status": outcome.status, **update.describe()},
        )
        return outcome
    raise UpdateConflict(f"order {order_id} kept changing; the update will be retried")


class _Reread(Exception):
    pass


def _decide_and_write(
    table, update: OrderUpdate, state: dict[str, Any], fields: dict[str, Any], also_put: list[dict[str, Any]] | None
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

    if update.orderSessionKey and known_key and update.orderSessionKey.lower() != str(known_key).lower():
        # signed, but about another FlexFactor order than ours: believe only a poll
        note("untrusted", why="orderSessionKey differs from the order's")
        _request_poll(table, order_id)
        metrics.add_metric(name="OrderUpdateUntrusted", unit="Count", value=1)
        return Outcome("untrusted", current)
    if update.checkOnly:
        note("poll-requested")
        _request_poll(table, order_id)
        return Outcome("poll_requested", current)

    write_fields = {**fields, "providerStatus": update.providerStatus}
    if update.orderSessionKey and not known_key:
        write_fields["orderSessionKey"] = update.orderSessionKey

    try:
        if update.event:
            key = update.eventKey or f"{update.event}#{update.updateId}"
            seen = state.get("eventKeys") or []
            # FlexFactor never refunds an order twice (PROVIDERS.md): one refund per order,
            # whoever saw it first (a poll sees "Returned", a webhook "order.refunded");
            # chargebacks are told apart by their webhook's key
            once = update.event == REFUNDED and any(str(k).startswith(REFUNDED) for k in seen)
            if key in seen or once:
                note("duplicate")
                return Outcome("duplicate", current)
            change = table.transition(
                order_id,
                expected_version=version,
                previous=current,
                status=current,
                source=update.source,
                fields=write_fields,
                detail=update.reason,
                event=update.event,
                event_key=key,
                next_poll_at=KEEP,
            )
            if not is_terminal(current):  # a refund of an order not known complete: look
                _request_poll(table, order_id)
            return Outcome("event", current, change)

        status = update.status
        assert status is not None
        if status == current:
            note("duplicate")
            return Outcome("duplicate", current)
        if not allowed(current, status):
            note("stale")
            return Outcome("stale", current)
        change = table.transition(
            order_id,
            expected_version=version,
            previous=current,
            status=status,
            source=update.source,
            fields=write_fields,
            detail=update.reason,
            next_poll_at=first_poll_at(status),
            also_put=also_put,
        )
        return Outcome("applied", status, change)
    except OrderConflict:
        raise _Reread() from None


def _request_poll(table, order_id: str) -> None:
    """Make a pending order due now (no-op for an order that is not pending)."""
    table.schedule_poll(order_id, iso(now_utc()), count=False)


def _unmatched(table, update: OrderUpdate) -> Outcome:
    table.record_unmatched(update.orderId or "", update.updateId, update.describe())
    metrics.add_metric(name="OrderUpdateUnmatched", unit="Count", value=1)
    logger.warning("update for an unknown order", extra={"orderId": update.orderId, **update.describe()})
    return Outcome("unmatched", None)


def enqueue(updates: list[OrderUpdate]) -> None:
    """Put updates on the order-updates queue for the writer (batched); raises if any failed."""
    from decline_rescue.infra import sqs as queue

    url = settings.lifecycle().require("updates_queue_url")
    queue.send(url, [(u.to_message(), u.orderId, u.source) for u in updates])


def handle_message(body: str, *, message_id: str = "") -> str:
    """One order-updates message: the outcome's name. A malformed message can never
    succeed: it goes to the DLQ at once, with why; conflicts and publish failures raise,
    so the queue redelivers the message."""
    import json

    try:
        update = OrderUpdate.from_message(json.loads(body, parse_constant=_no_constant, parse_float=_finite))
    except (ValueError, TypeError, RecursionError) as exc:
        _dead_letter(body, str(exc), message_id)
        return "rejected"
    return apply(update).result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number DynamoDB can store")


def _finite(text: str) -> float:
    """JSON floats, refusing what DynamoDB cannot store (1e999 reads as infinity)."""
    import math

    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _dead_letter(body: str, why: str, message_id: str) -> None:
    from decline_rescue.domain.carddata import redact
    from decline_rescue.infra import sqs as updates

    url = settings.lifecycle().require("updates_dlq_url")
    updates.send(url, [({"rejected": redact(body[:4096]), "error": why[:300], "messageId": message_id}, None, "dlq")])
    metrics.add_metric(name="OrderUpdateRejected", unit="Count", value=1)
    logger.warning("order update rejected", extra={"messageId": message_id, "why": why[:300]})


def get_order(order_id: str) -> dict[str, Any] | None:
    """An order as the API shows it: its state and its history, oldest first (applied
    changes and the updates recorded without being applied)."""
    state, history = orders().get_with_history(order_id)
    if state is None:
        return None
    hidden = ("pk", "sk", "pendingShard", "eventPending", "eventClaimedUntil", "eventKeys")
    public = {k: v for k, v in state.items() if k not in hidden}
    public["history"] = [
        {"version": int(h["sk"][5:11]), **{k: v for k, v in h.items() if k not in ("pk", "sk")}} for h in history
    ]
    return public
