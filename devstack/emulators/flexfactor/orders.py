"""Orders and their scenarios: the provider's status enum, what an order records, the
decision an ``/evaluate`` request gets and the steps that then move its order on.

Scenarios, chosen by ``paymentMethod.cardLast4Digits`` (else the last 4 digits of an
all-digit ``cardNumber``; a MIT when ``isMIT`` is true, a CIT otherwise, ``isMIT`` absent
included; ``transactionType`` is AUTHORIZATION|PURCHASE, any case, or absent). Status names
are upper case, as the sandbox sends them (``CAPTUREREQUIRED``):

| Init | Last 4 | Condition                       | /evaluate         | Order at once     | Then (path)            |
|------|--------|---------------------------------|-------------------|-------------------|------------------------|
| MIT  | `3184` | (sandbox 4000002760003184)      | `APPROVED`        | 7 COMPLETED       | `mit-approved`         |
| MIT  | `0069` |                                 | `SUBMITTED`       | 0 DRAFT           | `mit-cancelled`        |
| MIT  | `0077` |                                 | `SUBMITTED`       | 0 DRAFT           | `mit-expired`          |
| MIT  | other  |                                 | `SUBMITTED`       | 0 DRAFT           | `mit-completed`        |
| CIT  | `1111` | `payer.phone` present (sandbox) | `CHALLENGE`       | 0 DRAFT           | `cit-challenge-failed` |
| CIT  | `1111` | no `payer.phone` (sandbox)      | `DECLINED`        | 2 CANCELLED       | `cit-declined`         |
| CIT  | `0002` |                                 | `DECLINED`        | 2 CANCELLED       | `cit-declined`         |
| CIT  | `0259` |                                 | `CHALLENGE`       | 0 DRAFT           | `cit-challenge-passed` |
| CIT  | other  | `transactionType` AUTHORIZATION | `CAPTUREREQUIRED` | 5 CAPTUREREQUIRED | `cit-capture-required` |
| CIT  | other  | otherwise                       | `APPROVED`        | 7 COMPLETED       | `cit-approved`         |

What then happens, "n steps" being n x ``step_seconds`` (2 s by default) of emulator time
after the evaluation (the path is the order's ``scenario`` in ``GET /__emulator/orders``):

| Path                   | After 1 step            | After 2 steps                                      |
|------------------------|-------------------------|----------------------------------------------------|
| `mit-approved`         | `order.completed`       |                                                    |
| `mit-completed`        | 4 PROCESSING            | 7 COMPLETED, `order.completed`                     |
| `mit-cancelled`        | 4 PROCESSING            | 2 CANCELLED, `order.cancelled`                     |
| `mit-expired`          | 4 PROCESSING            | (stays PROCESSING until ``expiryDateUtc``)         |
| `cit-challenge-passed` | `challenge.presented`   | `challenge.passed`, 7 COMPLETED, `order.completed` |
| `cit-challenge-failed` | `challenge.presented`   | `challenge.failed`, 2 CANCELLED, `order.cancelled` |
| `cit-capture-required` | `order.capturerequired` | (stays until captured, cancelled or voided)        |
| `cit-approved`         | `order.completed`       |                                                    |
| `cit-declined`         |                         |                                                    |

``mit-expired``: at ``expiryDateUtc`` (not before the first step; a MIT without one
never expires) the order expires: status 2, statusName "EXPIRED", ``order.expired``.
``cit-capture-required``: a capture makes it 7 COMPLETED (``order.completed``); left
uncaptured ``capture_window_seconds`` (3600 by default) it is voided: 2 CANCELLED,
``order.cancelled``. A step happens only if
the order is still in the state the path left it in, so a cancelled, captured or refunded
order does not move on by itself (and a notice such as ``order.capturerequired`` is not
sent for a state already left). Every order keeps its status history. ``order.completed``
webhooks carry ``EventData: null`` (as FlexCharge's own sample), ``order.refunded`` ``{"status",
"amount", "refundedAmount"}`` (minor units: this refund, all refunds so far), the other
order.* ones ``{"status", "amount"}`` (emulated), challenge.* ones ``{}``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.emulators.flexfactor import money

DEFAULT_STEP_SECONDS = 2.0
DEFAULT_CAPTURE_WINDOW = 3600.0

APPROVED = "APPROVED"
DECLINED = "DECLINED"
CHALLENGE = "CHALLENGE"
CAPTUREREQUIRED = "CAPTUREREQUIRED"
SUBMITTED = "SUBMITTED"

EXPIRED = "EXPIRED"  # a status name without an enum value (status 2)


class OrderStatus(enum.IntEnum):
    Draft = 0
    Onhold = 1
    Cancelled = 2
    Problem = 3
    Processing = 4
    Capturerequired = 5
    Returned = 6
    Completed = 7


INITIAL_ORDER_STATUS = {
    APPROVED: OrderStatus.Completed,
    DECLINED: OrderStatus.Cancelled,
    CHALLENGE: OrderStatus.Draft,
    CAPTUREREQUIRED: OrderStatus.Capturerequired,
    SUBMITTED: OrderStatus.Draft,
}
FINAL_STATUSES = (OrderStatus.Cancelled, OrderStatus.Returned, OrderStatus.Completed)


def status_name(status: OrderStatus) -> str:
    """The sandbox's spelling of a status: upper case (``CAPTUREREQUIRED``)."""
    return status.name.upper()


# a status name (any case) -> its spelling; the enum's names and EXPIRED
STATUS_NAMES = {status.name.lower(): status_name(status) for status in OrderStatus} | {EXPIRED.lower(): EXPIRED}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass
class Order:
    id: str
    reference_number: str
    amount: int
    currency: str
    is_mit: bool
    status: OrderStatus
    idempotency_key: str
    placed: datetime = field(default_factory=lambda: datetime.now(UTC))
    expiry: datetime | None = None
    mid: str = ""
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status_name: str = ""
    scenario: str = ""
    seq: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)
    captured: int | None = None
    refunded: int = 0
    chargebacks: int = 0

    def __post_init__(self) -> None:
        self.status_name = self.status_name or status_name(self.status)
        if not self.history:
            self.history.append((self.status_name, _iso(self.placed)))

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def charged(self) -> int:
        """What the payer was charged: the captured amount, else the order's."""
        return self.captured if self.captured is not None else self.amount

    @property
    def refundable(self) -> int:
        """What is left to refund (minor units)."""
        return max(0, self.charged - self.refunded)

    def move(self, status: OrderStatus, at: datetime, name: str | None = None) -> None:
        self.status, self.status_name = status, name or status_name(status)
        self.history.append((self.status_name, _iso(at)))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": int(self.status),
            "statusName": self.status_name,
            "orderPlacedDate": _iso(self.placed),
            "expiryDate": _iso(self.expiry) if self.expiry else None,
            "referenceNumber": self.reference_number,
            "amount": self.amount,
            "currency": self.currency,
            "currencyCode": self.currency,
            "currencySymbol": money.symbol(self.currency),
            "correlationId": self.correlation_id,
            "isMIT": self.is_mit,
        }

    def admin_json(self) -> dict[str, Any]:
        return {
            **self.as_json(),
            "scenario": self.scenario,
            "final": self.final,
            "history": [list(change) for change in self.history],
            "capturedAmount": self.captured,
            "refundedAmount": self.refunded,
            "chargebacks": self.chargebacks,
            "mid": self.mid,
        }


@dataclass
class Evaluation:
    fingerprint: str
    response: dict[str, Any]


@dataclass
class _Replay:
    fingerprint: str
    status: int
    body: dict[str, Any]
    expires: float  # emulator time


@dataclass(frozen=True)
class Step:
    """A scheduled change: applied only while the order's status name is ``expect``."""

    expect: str
    to: OrderStatus | None = None
    name: str | None = None  # the status name when it is not the enum's (Expired)
    events: tuple[str, ...] = ()


def last4(payload: dict[str, Any]) -> str:
    """``paymentMethod.cardLast4Digits``, else the end of an all-digit ``cardNumber``."""
    method = payload.get("paymentMethod") or {}
    digits = method.get("cardLast4Digits")
    if isinstance(digits, str) and digits.strip():
        return digits.strip()
    number = method.get("cardNumber")
    if isinstance(number, str) and number.strip().isdigit() and method.get("token") is not True:
        return number.strip()[-4:]
    return ""


def decide(payload: dict[str, Any]) -> str:
    """The scenario table of the module docstring, for a valid (bound) request."""
    last = last4(payload)
    if payload.get("isMIT") is True:
        return APPROVED if last == "3184" else SUBMITTED
    if last == "1111":
        phone = (payload.get("payer") or {}).get("phone")
        return CHALLENGE if isinstance(phone, str) and phone.strip() else DECLINED
    if last == "0002":
        return DECLINED
    if last == "0259":
        return CHALLENGE
    if str(payload.get("transactionType") or "").upper() == "AUTHORIZATION":
        return CAPTUREREQUIRED
    return APPROVED


_DRAFT, _PROCESSING = status_name(OrderStatus.Draft), status_name(OrderStatus.Processing)
_COMPLETED, _CAPTUREREQUIRED = status_name(OrderStatus.Completed), status_name(OrderStatus.Capturerequired)


def plan(
    decision: str, payload: dict[str, Any], step: float, window: float, expiry_after: float | None
) -> tuple[str, list[tuple[float, Step]]]:
    """The scenario of an order (module docstring) as (seconds after placement, step) pairs."""
    last = last4(payload)
    if payload.get("isMIT") is True:
        if decision == APPROVED:
            return "mit-approved", [(step, Step(_COMPLETED, events=("order.completed",)))]
        processing = (step, Step(_DRAFT, OrderStatus.Processing))
        if last == "0069":
            return "mit-cancelled", [
                processing,
                (2 * step, Step(_PROCESSING, OrderStatus.Cancelled, None, ("order.cancelled",))),
            ]
        if last == "0077":
            if expiry_after is None:  # no expiryDateUtc: it never expires
                return "mit-expired", [processing]
            expires = max(expiry_after, step)
            return "mit-expired", [
                processing,
                (expires, Step(_PROCESSING, OrderStatus.Cancelled, EXPIRED, ("order.expired",))),
            ]
        return "mit-completed", [
            processing,
            (2 * step, Step(_PROCESSING, OrderStatus.Completed, None, ("order.completed",))),
        ]
    if decision == CHALLENGE:
        presented = (step, Step(_DRAFT, events=("challenge.presented",)))
        if last == "0259":
            passed = Step(_DRAFT, OrderStatus.Completed, None, ("challenge.passed", "order.completed"))
            return "cit-challenge-passed", [presented, (2 * step, passed)]
        failed = Step(_DRAFT, OrderStatus.Cancelled, None, ("challenge.failed", "order.cancelled"))
        return "cit-challenge-failed", [presented, (2 * step, failed)]
    if decision == CAPTUREREQUIRED:
        notice = (step, Step(_CAPTUREREQUIRED, events=("order.capturerequired",)))
        void = (window, Step(_CAPTUREREQUIRED, OrderStatus.Cancelled, None, ("order.cancelled",)))
        return "cit-capture-required", [notice, void]
    if decision == APPROVED:
        return "cit-approved", [(step, Step(_COMPLETED, events=("order.completed",)))]
    return "cit-declined", []
