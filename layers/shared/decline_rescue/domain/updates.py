"""What changes an order: an ``OrderUpdate`` (what a source observed), the ``Change`` the
writer applied (one per version, the unit of history and of events), and the writer's
``Outcome``.

(Dataclasses checked by hand, not pydantic models: the webhook and writer functions are
on the hot path and pydantic's import is most of a cold start.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from decline_rescue.domain.statuses import EVENTS, STATUSES, is_status

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
# a QUEUED order keeps its declines-queue message (never card data: a decline carrying
# card data is never queued) until it leaves QUEUED, so that the poller can send it again
QUEUED_MESSAGE = "queuedMessage"
# the decline's fingerprint (a hash of the request, no card data): a repeat with the same
# idempotencyKey must match it; ADOPTABLE when FlexFactor refused the request as invalid
# (it created nothing), so that a corrected request under the same key may take the claim
FINGERPRINT = "fingerprint"
ADOPTABLE = "adoptable"
ANSWER = "answer"  # the first answer to the decline, which a repeat gets


@dataclass(frozen=True)
class OrderUpdate:
    """One message on the order-updates queue (or one answer on the API path): what a
    source observed about an order."""

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
        if self.status is not None and not is_status(self.status):
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

    @property
    def delivery_nonce(self) -> str | None:
        """The nonce of the webhook delivery this update came from (``webhook:<nonce>``)."""
        return self.updateId.split(":", 1)[1] if self.source == "webhook" and ":" in self.updateId else None

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


# detail-types on the bus: a status change, or an event on the order
STATUS_CHANGED = "OrderStatusChanged"
EVENT_DETAIL_TYPES = {"REFUNDED": "OrderRefunded", "CHARGEBACK": "OrderChargebackReceived"}


@dataclass(frozen=True)
class Change:
    """One applied change, at one version of the order: written to history in the same
    write as the order, and published from the table's stream as one event (a status
    change, or with ``event`` something that happened to the order without changing its
    status: a refund, a chargeback). ``changeId`` = ``orderId:version``: a consumer sees
    a gap in versions, and drops a duplicate delivery."""

    order_id: str
    previous: str | None
    status: str
    version: int
    source: str
    at: str
    detail: dict[str, Any] | None = None
    event: str | None = None
    refund: dict[str, Any] | None = None  # a refund we made: refundId, amount, currency, refundedAmount

    @property
    def change_id(self) -> str:
        return f"{self.order_id}:{self.version}"

    def detail_type(self) -> str:
        return EVENT_DETAIL_TYPES.get(self.event, STATUS_CHANGED) if self.event else STATUS_CHANGED

    def event_detail(self) -> dict[str, Any]:
        """The bus event's detail (the same shape whichever source made the change)."""
        detail: dict[str, Any] = {
            "changeId": self.change_id,
            "orderId": self.order_id,
            "previousStatus": self.previous,
            "status": self.status,
            "version": self.version,
            "source": self.source,
            "time": self.at,
        }
        if self.event:
            detail["event"] = self.event
        if self.detail:
            detail["reason"] = self.detail
        if self.refund:
            detail["refund"] = self.refund
        return detail


class Result(StrEnum):
    """What the writer did with an update."""

    APPLIED = "applied"  # a status change
    EVENT = "event"  # a refund or chargeback recorded
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNTRUSTED = "untrusted"
    POLL_REQUESTED = "poll_requested"
    UNMATCHED = "unmatched"


@dataclass(frozen=True)
class Outcome:
    """What the writer did, the order's status afterwards, and the change it wrote."""

    result: Result
    status: str | None
    change: Change | None = None
