"""FlexFactor decline-rescue API emulator (PROVIDERS.md section 2, seed 003).

Provider endpoints (every ``/v1/`` one but the token wants ``Authorization: Bearer``;
missing, forged or expired: 401 ``{"title": "Unauthorized", "status": 401}``):

| Endpoint                          | Fault name | What it does                                                  |
|-----------------------------------|------------|---------------------------------------------------------------|
| `POST /v1/oauth2/token`           | `token`    | `{"AppKey", "AppSecret"}` -> HS256 JWT access token           |
| `POST /v1/evaluate`               | `evaluate` | validates (seed 003), answers the scenario, creates the order |
| `GET /v1/orders/{id}`             | `orders`   | one order                                                     |
| `GET /v1/orders?...`              | `orders`   | orders, filtered, sorted and paged                            |
| `POST /v1/capture`                | `capture`  | captures a Capturerequired order                              |
| `POST /v1/orders/{id}/cancel`     | `cancel`   | cancels an order still open                                   |
| `POST /v1/orders/{id}/refund`     | `refund`   | refunds a Completed order, once                               |

- Token: no grant_type, not form-encoded; signed with a per-emulator random secret, living
  ``token_ttl_seconds`` (600 by default, like the provider) of *real* time (advancing the
  emulator clock does not expire tokens). Wrong or missing credentials: 401 with the
  provider's ``Failed`` envelope.
- ``/v1/evaluate`` answers every problem at once as a 400 ProblemDetails with PascalCase
  dotted keys (required fields, MIT/CIT conditions, sandbox amount ``> 10 and < 20000``
  cents). Unknown fields are ignored. ``timezoneUtcOffset`` may be a numeric string ("-5"),
  ``zipcode`` stands for ``zipCode`` and ``isMIT`` may be omitted (a CIT), as the sandbox
  accepts. Idempotent on ``idempotencyKey``: the same key and body replay the stored answer
  without a new order; the same key with another body is a 409.
- Orders: ``{id, status, statusName, orderPlacedDate, expiryDate, referenceNumber (the
  merchant's orderId), amount, currency, isMIT}``; ``status`` is the provider's int enum
  (0 Draft, 1 Onhold, 2 Cancelled, 3 Problem, 4 Processing, 5 Capturerequired,
  6 Returned, 7 Completed). That enum has no Expired value: an expired order answers
  ``status`` 2 with ``statusName`` "Expired" (the status names of seed 003 list Expired).
  Unknown id: 404.
- ``GET /v1/orders?status=&from=&to=&orderBy=&sort=&pageSize=&pageNumber=`` answers
  ``{items, pageNumber, pageSize, pageCount, totalCount, hasNextPage, hasPreviousPage}``.
  ``status`` is an int of the enum or a status name (any case; "Expired" too; an int
  matches ``status``, a name ``statusName``); ``from``/``to`` are ISO dates or date-times
  bounding ``orderPlacedDate`` (inclusive; a bare ``to`` date means to the end of that
  day); ``orderBy`` only ``orderPlacedDate`` (default); ``sort`` asc|desc (default desc);
  ``pageSize`` 1..100 (default 20); ``pageNumber`` from 1 (default 1). A bad parameter is
  a 400 ProblemDetails whose ``errors`` key is the parameter's name.
- ``POST /v1/capture {idempotencyKey, orderId, amount, currency}``: ``orderId`` is
  FlexFactor's id; only a Capturerequired order; ``amount`` integer cents 1..the order's
  amount, ``currency`` the order's. Answers ``{"status": "SUCCESS", "success": true,
  "orderId", "capturedAmount", "currency", ...}`` or ``{"status": "FAILED", "success":
  false, "errors": [{"key", "error"}], ...}`` with 400 (invalid body, amount, currency),
  404 (unknown order) or 409 (wrong state; key reused with another body). A success is
  kept 24 h (emulator time) under its ``idempotencyKey``: the same body replays it.
  Moves the order to Completed (``order.completed``).
- ``POST /v1/orders/{id}/cancel``, optional JSON ``{"idempotencyKey"}``: MIT orders in
  Draft, Processing or Capturerequired, CIT orders in Capturerequired; otherwise a 409
  ProblemDetails naming the state. With a key a success is replayed for 24 h; the key with
  another order is a 409. Moves the order to Cancelled (``order.cancelled``).
- ``POST /v1/orders/{id}/refund {"amountToRefund": dollars, "refundMessage"?}``: a
  Completed order only (409 otherwise), amount > 0, at most 2 decimals, at most what was
  charged (400 otherwise). One refund per order: the order becomes Returned
  (``order.refunded``) and every later call is a no-op answering the first refund with
  ``"alreadyRefunded": true``, so nothing is ever refunded twice.

Faults (``POST /__emulator/faults``, per fault name above): ``{"delay": seconds}`` waits
then answers normally; ``{"status": n}`` answers n (409: the provider's "still in
progress", 401: unauthorized, otherwise ``{"status": n, "title": "injected fault"}``). A
fault is taken after the bearer check and before anything else, so it changes nothing.

Scenarios, chosen by ``paymentMethod.cardLast4Digits`` (a MIT when ``isMIT`` is true, a
CIT otherwise; ``transactionType`` is AUTHORIZATION|PURCHASE, any case):

| Init | Last 4 | Condition                       | /evaluate         | Order at once     | Then (path)            |
|------|--------|---------------------------------|-------------------|-------------------|------------------------|
| MIT  | `3184` | (sandbox 4000002760003184)      | `APPROVED`        | 7 Completed       | `mit-approved`         |
| MIT  | `0069` |                                 | `SUBMITTED`       | 0 Draft           | `mit-cancelled`        |
| MIT  | `0077` |                                 | `SUBMITTED`       | 0 Draft           | `mit-expired`          |
| MIT  | other  |                                 | `SUBMITTED`       | 0 Draft           | `mit-completed`        |
| CIT  | `1111` | `payer.phone` present           | `CHALLENGE`       | 0 Draft           | `cit-challenge-failed` |
| CIT  | `1111` | no `payer.phone` (sandbox)      | `DECLINED`        | 2 Cancelled       | `cit-declined`         |
| CIT  | `0002` |                                 | `DECLINED`        | 2 Cancelled       | `cit-declined`         |
| CIT  | `0259` |                                 | `CHALLENGE`       | 0 Draft           | `cit-challenge-passed` |
| CIT  | other  | `transactionType` AUTHORIZATION | `CAPTUREREQUIRED` | 5 Capturerequired | `cit-capture-required` |
| CIT  | other  | otherwise                       | `APPROVED`        | 7 Completed       | `cit-approved`         |

What then happens, "n steps" being n x ``step_seconds`` (2 s by default) of emulator time
after the evaluation (the path is the order's ``scenario`` in ``GET /__emulator/orders``):

| Path                   | After 1 step            | After 2 steps                                      |
|------------------------|-------------------------|----------------------------------------------------|
| `mit-approved`         | `order.completed`       |                                                    |
| `mit-completed`        | 4 Processing            | 7 Completed, `order.completed`                     |
| `mit-cancelled`        | 4 Processing            | 2 Cancelled, `order.cancelled`                     |
| `mit-expired`          | 4 Processing            | (stays Processing until ``expiryDateUtc``)         |
| `cit-challenge-passed` | `challenge.presented`   | `challenge.passed`, 7 Completed, `order.completed` |
| `cit-challenge-failed` | `challenge.presented`   | `challenge.failed`, 2 Cancelled, `order.cancelled` |
| `cit-capture-required` | `order.capturerequired` | (stays until captured, cancelled or voided)        |
| `cit-approved`         | `order.completed`       |                                                    |
| `cit-declined`         |                         |                                                    |

``mit-expired``: at ``expiryDateUtc`` (not before the first step) the order expires:
status 2, statusName "Expired", ``order.expired``. ``cit-capture-required``: a capture
makes it 7 Completed (``order.completed``); left uncaptured ``capture_window_seconds``
(3600 by default) it is voided: 2 Cancelled, ``order.cancelled``. A step happens only if
the order is still in the state the path left it in, so a cancelled, captured or refunded
order does not move on by itself (and a notice such as ``order.capturerequired`` is not
sent for a state already left). Every order keeps its status history. order.* webhooks
carry ``EventData {"status", "amount"}`` (cents), challenge.* ones ``{}``.

Emulator clock and admin endpoints (no auth):

- ``GET /__emulator/clock`` -> ``{"now", "offset"}``; ``POST /__emulator/clock
  {"advance": seconds >= 0}`` moves the clock on and applies whatever became due before
  answering. ``now() = real time + offset``; a background thread applies due steps every
  50 ms, so tests advance the clock instead of sleeping.
- ``GET``/``POST /__emulator/config``: any of ``step_seconds``, ``capture_window_seconds``
  (changes apply to orders created after them), ``webhook_url`` (null: none),
  ``webhook_key`` (base64 subscriber key), ``webhook_content_type`` (application/json by
  default) and ``webhooks: {drop, duplicate, reorder, delay, delay_probability, seed,
  retries}`` (merged into the current switches; a ``seed`` reseeds). Answers the config;
  an unknown or bad setting is a 400 naming it.
- ``GET /__emulator/orders`` -> ``{"orders": [{id, referenceNumber, isMIT, scenario,
  status, statusName, final, history: [[statusName, iso]], capturedAmount,
  refundedAmount, chargebacks, ...}]}``; ``final`` is true in Cancelled (or Expired),
  Completed and Returned.
- ``POST /__emulator/orders/{id}/chargeback``, optional ``{"amount": cents}``: a Completed
  or Returned order sends ``payment.chargeback.received`` (409 otherwise).
- ``GET /__emulator/webhooks`` -> ``{"pending", "webhooks": [{id, event, OrderId,
  ExternalOrderId, ConfirmationId, TimeStamp, EventData, fate, pending, attempts,
  delivered, lastHttpStatus, lastError}]}``, one entry per event;
  ``POST /__emulator/webhooks/flush``, optional ``{"timeout": seconds}`` (10 by default),
  waits until no delivery is pending (or the timeout) and answers the same.
- ``GET /__emulator/stats``: ``counts``, ``evaluations`` (orders created per idempotency
  key), ``orders`` (the total) and ``webhooks`` (events, attempts, pending, one count per
  fate); ``POST``/``DELETE /__emulator/faults`` as above.

Webhooks: each event is one log entry. When ``webhook_url`` is unset nothing is sent and
the fate is ``no-url``. Otherwise a sender thread POSTs the compact JSON body ``{"Event",
"TimeStamp", "EventData", "ExternalOrderId", "OrderId", "ConfirmationId", "IsTestMode":
true, "IsResent"}`` with ``Content-Type: webhook_content_type`` and the headers of
:func:`sign_webhook` (``host`` is the URL's host[:port], sent as the Host header). Every
attempt is signed afresh (new nonce and date); a redelivery (duplicate, retry) says
``"IsResent": true``. ``x-fc-date`` is wall-clock time (receivers bound its skew),
``TimeStamp`` emulator time. Switches, drawn per event from a ``random.Random`` seeded by
``seed``, at most one per event, in this order:

| Switch      | Value       | Fate         | Effect                                                               |
|-------------|-------------|--------------|----------------------------------------------------------------------|
| `drop`      | probability | `dropped`    | never sent                                                           |
| `duplicate` | probability | `duplicated` | sent twice, the second copy `IsResent`                               |
| `reorder`   | probability | `reordered`  | held, sent right after the next sent event of its order (or 2 steps) |
| `delay`     | seconds     | `delayed`    | sent that much (emulator time) later; for `delay_probability` (1)    |
| `retries`   | count (3)   | `failed`     | non-2xx or no connection: retried after 0.2, 0.4, 0.8 ... s          |

Other events are ``delivered``. Default credentials: ``ff-local-app-key`` /
``ff-local-app-secret``; default subscriber key :data:`DEFAULT_WEBHOOK_KEY`. Request and
webhook bodies are never logged (``cardNumber`` may be a real PAN for a PCI-compliant
merchant).
"""

from __future__ import annotations

import argparse
import base64
import enum
import hashlib
import heapq
import hmac
import itertools
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import formatdate
from typing import Any

import httpx
import jwt
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import Emulator, json_response, serve_forever

DEFAULT_APP_KEY = "ff-local-app-key"
DEFAULT_APP_SECRET = "ff-local-app-secret"
DEFAULT_TOKEN_TTL = 600
DEFAULT_STEP_SECONDS = 2.0
DEFAULT_CAPTURE_WINDOW = 3600.0
DEFAULT_WEBHOOK_KEY = base64.b64encode(b"ff-local-webhook-subscriber-key!").decode()
DEFAULT_WEBHOOK_CONTENT_TYPE = "application/json"
DEFAULT_RETRIES = 3

AMOUNT_ABOVE = 10  # sandbox: amount must be > 10 cents ...
AMOUNT_BELOW = 20000  # ... and < 20000 cents
CARD_TYPES = ("CREDIT", "DEBIT", "PREPAID")
TRANSACTION_TYPES = ("AUTHORIZATION", "PURCHASE")
ORDER_SOURCES = ("ECOMMERCE", "TERMINAL", "VTERMINAL")

APPROVED = "APPROVED"
DECLINED = "DECLINED"
CHALLENGE = "CHALLENGE"
CAPTUREREQUIRED = "CAPTUREREQUIRED"
SUBMITTED = "SUBMITTED"

EXPIRED = "Expired"  # a status name without an enum value (status 2)
TICK_SECONDS = 0.05  # how often the background threads look for due work
IDEMPOTENCY_WINDOW = 24 * 3600.0
WEBHOOK_TIMEOUT = 5.0
FLUSH_TIMEOUT = 10.0
RETRY_BACKOFF = 0.2
REORDER_HOLD_STEPS = 2
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
FATES = ("delivered", "dropped", "duplicated", "reordered", "delayed", "failed", "no-url")

_INT_STRING = re.compile(r"[+-]?\d+")
_LETTERS = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}
_DIGITS = {4: re.compile(r"\d{4}"), 6: re.compile(r"\d{6}")}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_MISSING = object()


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
# a status name (any case) -> its spelling; the enum's names and Expired
STATUS_NAMES = {status.name.lower(): status.name for status in OrderStatus} | {EXPIRED.lower(): EXPIRED}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


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
    status_name: str = ""
    scenario: str = ""
    seq: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)
    captured: int | None = None
    refunded: int = 0
    chargebacks: int = 0

    def __post_init__(self) -> None:
        self.status_name = self.status_name or self.status.name
        if not self.history:
            self.history.append((self.status_name, _iso(self.placed)))

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def charged(self) -> int:
        """What the payer was charged: the captured amount, else the order's."""
        return self.captured if self.captured is not None else self.amount

    def move(self, status: OrderStatus, at: datetime, name: str | None = None) -> None:
        self.status, self.status_name = status, name or status.name
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
        }


@dataclass
class Evaluation:
    fingerprint: str
    response: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """A scheduled change: applied only while the order's status name is ``expect``."""

    expect: str
    to: OrderStatus | None = None
    name: str | None = None  # the status name when it is not the enum's (Expired)
    events: tuple[str, ...] = ()


def plan(
    decision: str, payload: dict[str, Any], step: float, window: float, expiry_after: float | None
) -> tuple[str, list[tuple[float, Step]]]:
    """The scenario of an order (module docstring) as (seconds after placement, step) pairs."""
    last4 = payload["paymentMethod"]["cardLast4Digits"]
    if payload.get("isMIT") is True:
        if decision == APPROVED:
            return "mit-approved", [(step, Step("Completed", events=("order.completed",)))]
        processing = (step, Step("Draft", OrderStatus.Processing))
        if last4 == "0069":
            return "mit-cancelled", [
                processing,
                (2 * step, Step("Processing", OrderStatus.Cancelled, None, ("order.cancelled",))),
            ]
        if last4 == "0077":
            expires = max(expiry_after or 0.0, step)
            return "mit-expired", [
                processing,
                (expires, Step("Processing", OrderStatus.Cancelled, EXPIRED, ("order.expired",))),
            ]
        return "mit-completed", [
            processing,
            (2 * step, Step("Processing", OrderStatus.Completed, None, ("order.completed",))),
        ]
    if decision == CHALLENGE:
        presented = (step, Step("Draft", events=("challenge.presented",)))
        if last4 == "0259":
            passed = Step("Draft", OrderStatus.Completed, None, ("challenge.passed", "order.completed"))
            return "cit-challenge-passed", [presented, (2 * step, passed)]
        failed = Step("Draft", OrderStatus.Cancelled, None, ("challenge.failed", "order.cancelled"))
        return "cit-challenge-failed", [presented, (2 * step, failed)]
    if decision == CAPTUREREQUIRED:
        notice = (step, Step("Capturerequired", events=("order.capturerequired",)))
        void = (window, Step("Capturerequired", OrderStatus.Cancelled, None, ("order.cancelled",)))
        return "cit-capture-required", [notice, void]
    if decision == APPROVED:
        return "cit-approved", [(step, Step("Completed", events=("order.completed",)))]
    return "cit-declined", []


# -- webhooks -------------------------------------------------------------------------


def sign_webhook(
    body: bytes, key_b64: str, host: str, nonce: str | None = None, date: str | None = None
) -> dict[str, str]:
    """The signature headers of a webhook (PROVIDERS.md section 2), keyed by the base64
    subscriber key; ``host`` is the Host header the request is sent with."""
    key = base64.b64decode(key_b64)
    nonce = nonce or secrets.token_hex(16)
    date = date or formatdate(usegmt=True)
    content_hash = base64.b64encode(hashlib.sha512(body).digest()).decode()
    signed = f"POST\n{nonce};{date};{host};{content_hash}".encode()
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha512).digest()).decode()
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content_hash,
        "x-fc-authorization": (
            f"HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature={signature}"
        ),
        "x-fc-signature": base64.b64encode(hmac.new(key, body, hashlib.sha512).digest()).decode(),
    }


@dataclass
class Switches:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_probability: float = 1.0
    seed: int | None = None
    retries: int = DEFAULT_RETRIES


@dataclass(eq=False)  # entries compare by identity
class WebhookEntry:
    """One event in the delivery log."""

    id: int
    event: str
    order_id: str
    external_order_id: str
    timestamp: str
    data: dict[str, Any]
    confirmation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fate: str = "delivered"
    attempts: int = 0
    delivered: int = 0  # copies that got a 2xx
    last_status: int | None = None
    last_error: str | None = None
    open_copies: int = 0  # copies not yet delivered nor given up
    held: bool = False  # a reordered event not yet released
    release: list[WebhookEntry] = field(default_factory=list)  # held events to send after this one

    @property
    def pending(self) -> bool:
        return self.held or self.open_copies > 0

    def body(self, resent: bool) -> bytes:
        message = {
            "Event": self.event,
            "TimeStamp": self.timestamp,
            "EventData": self.data,
            "ExternalOrderId": self.external_order_id,
            "OrderId": self.order_id,
            "ConfirmationId": self.confirmation_id,
            "IsTestMode": True,
            "IsResent": resent,
        }
        return json.dumps(message, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "OrderId": self.order_id,
            "ExternalOrderId": self.external_order_id,
            "ConfirmationId": self.confirmation_id,
            "TimeStamp": self.timestamp,
            "EventData": self.data,
            "fate": self.fate,
            "pending": self.pending,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "lastHttpStatus": self.last_status,
            "lastError": self.last_error,
        }


@dataclass
class _Job:
    """A delivery attempt to make (or, ``release``, a held event's hold running out)."""

    entry: WebhookEntry
    kind: str = "send"
    copy: int = 0
    attempt: int = 0  # attempts already made for this copy
    key: tuple[float, int, int] = (0.0, 0, 0)  # (due, seq, sub): heap order


@dataclass
class _Replay:
    fingerprint: str
    status: int
    body: dict[str, Any]
    expires: float  # emulator time


# -- error shapes ---------------------------------------------------------------------


def _unauthorized() -> Response:
    return json_response(401, {"title": "Unauthorized", "status": 401}, {"WWW-Authenticate": "Bearer"})


def _token_failed() -> Response:
    body = {
        "success": False,
        "result": "Failed",
        "status": "FAILED",
        "statusCode": 401,
        "errors": [{"error": "invalid credentials"}],
    }
    return json_response(401, body)


def _problem(status: int, title: str) -> Response:
    return json_response(status, {"status": status, "title": title})


def _fault_response(status: int) -> Response:
    if status == 401:
        return _unauthorized()
    if status == 409:
        return _problem(409, "an idempotent request is still in progress")
    return _problem(status, "injected fault")


def _validation_failed(errors: dict[str, list[str]]) -> Response:
    body = {
        "status": 400,
        "title": "One or more validation errors occurred.",
        "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
        "errors": errors,
    }
    return json_response(400, body)


# -- validation -----------------------------------------------------------------------


def _pascal(path: str) -> str:
    return ".".join(part[:1].upper() + part[1:] for part in path.split("."))


class _Checker:
    """Collects every problem of a request, keyed like ASP.NET model state."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(_pascal(path), []).append(message)

    @staticmethod
    def _name(path: str) -> str:
        return _pascal(path.rsplit(".", 1)[-1])

    def get(self, obj: dict[str, Any], path: str, required: bool = True, *aliases: str) -> Any:
        """The value at ``path`` in ``obj`` (its last segment), _MISSING when absent."""
        key = path.rsplit(".", 1)[-1]
        value = obj.get(key)
        for alias in aliases:
            if value is None:
                value = obj.get(alias)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(path, f"The {self._name(path)} field is required.")
            return _MISSING
        return value

    def obj(self, parent: dict[str, Any], path: str, required: bool = True) -> dict[str, Any] | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.add(path, f"The {self._name(path)} field must be an object.")
            return None
        return value

    def string(self, parent: dict[str, Any], path: str, required: bool = True, *aliases: str) -> str | None:
        value = self.get(parent, path, required, *aliases)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.add(path, f"The {self._name(path)} field must be a string.")
            return None
        return value

    def integer(self, parent: dict[str, Any], path: str, required: bool = True, numeric_string: bool = False):
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if numeric_string and isinstance(value, str) and _INT_STRING.fullmatch(value.strip()):
            return int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"The {self._name(path)} field must be an integer.")
            return None
        return value

    def boolean(self, parent: dict[str, Any], path: str, required: bool = True) -> bool | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.add(path, f"The {self._name(path)} field must be true or false.")
            return None
        return value

    def moment(self, parent: dict[str, Any], path: str, required: bool = True) -> datetime | None:
        value = self.string(parent, path, required)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            self.add(path, f"The {self._name(path)} field must be an ISO 8601 date and time.")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def pattern(self, parent: dict[str, Any], path: str, regex: re.Pattern[str], message: str) -> str | None:
        value = self.string(parent, path)
        if value is not None and not regex.fullmatch(value):
            self.add(path, message)
            return None
        return value

    def choice(self, parent: dict[str, Any], path: str, choices: tuple[str, ...], required: bool = True) -> None:
        value = self.string(parent, path, required)
        if value is not None and value.upper() not in choices:
            self.add(path, f"The {self._name(path)} field must be one of {', '.join(choices)}.")


def validate(payload: dict[str, Any]) -> dict[str, list[str]]:
    """Every problem with an /evaluate request (seed 003), keyed by PascalCase dotted path."""
    c = _Checker()
    declined = c.boolean(payload, "isDeclined")
    if declined is False:
        c.add("isDeclined", "The IsDeclined field must be true.")
    c.string(payload, "orderId")
    c.string(payload, "siteId")
    key = c.string(payload, "idempotencyKey")
    if key is not None:
        try:
            uuid.UUID(key)
        except ValueError:
            c.add("idempotencyKey", "The IdempotencyKey field must be a GUID/UUID.")
    c.choice(payload, "transactionType", TRANSACTION_TYPES, required=False)
    c.choice(payload, "orderSource", ORDER_SOURCES, required=False)
    is_mit = c.boolean(payload, "isMIT", required=False)

    transaction = c.obj(payload, "transaction")
    if transaction is not None:
        c.string(transaction, "transaction.id")
        c.moment(transaction, "transaction.timestampUtc")
        c.integer(transaction, "transaction.timezoneUtcOffset", numeric_string=True)
        amount = c.integer(transaction, "transaction.amount")
        if amount is not None and not AMOUNT_ABOVE < amount < AMOUNT_BELOW:
            c.add(
                "transaction.amount",
                f"The field Amount must be greater than {AMOUNT_ABOVE} and less than {AMOUNT_BELOW} (cents).",
            )
        c.pattern(transaction, "transaction.currency", _LETTERS[3], "The Currency field must be an ISO 4217 code.")
        for name in ("responseCode", "responseCodeSource", "avsResultCode", "cvvResultCode", "cavvResultCode"):
            c.string(transaction, f"transaction.{name}")
        c.boolean(transaction, "transaction.cardNotPresent")

    payer = c.obj(payload, "payer")
    if payer is not None:
        c.string(payer, "payer.email")

    method = c.obj(payload, "paymentMethod")
    if method is not None:
        c.string(method, "paymentMethod.holderName")
        c.choice(method, "paymentMethod.cardType", CARD_TYPES)
        c.string(method, "paymentMethod.cardBrand")
        country = "The CardCountry field must be an ISO 3166-1 alpha-2 code."
        c.pattern(method, "paymentMethod.cardCountry", _LETTERS[2], country)
        month = c.integer(method, "paymentMethod.expirationMonth")
        if month is not None and not 1 <= month <= 12:
            c.add("paymentMethod.expirationMonth", "The field ExpirationMonth must be between 1 and 12.")
        year = c.integer(method, "paymentMethod.expirationYear")
        if year is not None and not 1000 <= year <= 9999:
            c.add("paymentMethod.expirationYear", "The field ExpirationYear must have 4 digits.")
        c.pattern(method, "paymentMethod.cardBinNumber", _DIGITS[6], "The CardBinNumber field must be 6 digits.")
        c.pattern(method, "paymentMethod.cardLast4Digits", _DIGITS[4], "The CardLast4Digits field must be 4 digits.")
        c.string(method, "paymentMethod.cardNumber")

    billing = c.obj(payload, "billingInformation")
    if billing is not None:
        for name in ("firstName", "lastName", "country", "addressLine1", "city"):
            c.string(billing, f"billingInformation.{name}")
        c.pattern(
            billing,
            "billingInformation.countryCode",
            _LETTERS[2],
            "The CountryCode field must be an ISO 3166-1 alpha-2 code.",
        )
        c.string(billing, "billingInformation.zipCode", True, "zipcode")

    if is_mit is True:
        recurring = c.boolean(payload, "isRecurring")
        c.moment(payload, "expiryDateUtc")
        if recurring is True:
            subscription = c.obj(payload, "subscription")
            if subscription is not None:
                c.string(subscription, "subscription.subscriptionId")
                c.string(subscription, "subscription.interval")
                c.integer(subscription, "subscription.price")
                c.string(subscription, "subscription.currency")
            secure = c.obj(payload, "threeDSecure")
            if secure is not None:
                for name in ("ecommerceIndicator", "authenticationValue", "directoryServerTransactionId"):
                    c.string(secure, f"threeDSecure.{name}")
    elif payload.get("isMIT") is None or payload.get("isMIT") is False:  # a CIT; a non-boolean is reported
        c.string(payload, "customerIp")
    return c.errors


def decide(payload: dict[str, Any]) -> str:
    """The scenario table of the module docstring, for a valid request."""
    last4 = payload["paymentMethod"]["cardLast4Digits"]
    if payload.get("isMIT") is True:
        return APPROVED if last4 == "3184" else SUBMITTED
    if last4 == "1111":
        phone = (payload.get("payer") or {}).get("phone")
        return CHALLENGE if isinstance(phone, str) and phone.strip() else DECLINED
    if last4 == "0002":
        return DECLINED
    if last4 == "0259":
        return CHALLENGE
    if str(payload.get("transactionType") or "").upper() == "AUTHORIZATION":
        return CAPTUREREQUIRED
    return APPROVED


def _capture_failed(status: int, errors: list[dict[str, str]], order_id: Any = None) -> Response:
    body = {
        "status": "FAILED",
        "success": False,
        "result": "Failed",
        "statusCode": status,
        "orderId": order_id if isinstance(order_id, str) else None,
        "errors": errors,
        "customProperties": {},
    }
    return json_response(status, body)


def _succeeded(**fields: Any) -> dict[str, Any]:
    return {
        "status": "SUCCESS",
        "success": True,
        "result": "Success",
        "statusCode": 200,
        **fields,
        "errors": [],
        "customProperties": {},
    }


def _json_object(request: Request, *, empty_ok: bool = False, **loads: Any) -> dict[str, Any] | None:
    """The request's JSON object (``{}`` for an empty body when ``empty_ok``); None otherwise."""
    raw = request.get_data(cache=False)
    if empty_ok and not raw.strip():
        return {}
    try:
        body = json.loads(raw or b"null", **loads)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _query_moment(value: str, end_of_day: bool) -> datetime | None:
    value = _SPACED_OFFSET.sub(r"\1+\2", value)  # an unencoded "+" offset arrives as a space
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if end_of_day and _DATE_ONLY.fullmatch(value):
        parsed += timedelta(days=1) - timedelta(microseconds=1)
    return parsed


def parse_list_query(args: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The filters, order and page of ``GET /v1/orders``, and every bad parameter."""
    errors: dict[str, list[str]] = {}

    def value(name: str) -> str | None:
        raw = args.get(name)
        return raw.strip() if raw and raw.strip() else None

    def page_int(name: str, default: int, most: int | None) -> int:
        raw = value(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1 or (most is not None and int(raw) > most):
            upper = f" and at most {most}" if most is not None else ""
            errors[name] = [f"The {name} parameter must be an integer of at least 1{upper}."]
            return default
        return int(raw)

    query: dict[str, Any] = {"status": None, "from": None, "to": None}
    status = value("status")
    if status is not None:
        if _INT_STRING.fullmatch(status) and int(status) in OrderStatus._value2member_map_:
            query["status"] = int(status)
        elif status.lower() in STATUS_NAMES:
            query["status"] = STATUS_NAMES[status.lower()]
        else:
            names = ", ".join([s.name for s in OrderStatus] + [EXPIRED])
            errors["status"] = [f"The status parameter must be 0..7 or one of {names}."]
    for name in ("from", "to"):
        raw = value(name)
        if raw is not None:
            query[name] = _query_moment(raw, end_of_day=name == "to")
            if query[name] is None:
                errors[name] = [f"The {name} parameter must be an ISO 8601 date or date and time."]
    if query["from"] and query["to"] and query["from"] > query["to"]:
        errors["to"] = ["The to parameter must not be before from."]
    order_by = value("orderBy") or "orderPlacedDate"
    if order_by.lower() != "orderplaceddate":
        errors["orderBy"] = ["The orderBy parameter must be orderPlacedDate."]
    sort = (value("sort") or "desc").lower()
    if sort not in ("asc", "desc"):
        errors["sort"] = ["The sort parameter must be asc or desc."]
    query["descending"] = sort == "desc"
    query["pageSize"] = page_int("pageSize", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
    query["pageNumber"] = page_int("pageNumber", 1, None)
    return query, errors


def _config_errors(body: dict[str, Any]) -> dict[str, str]:
    """What is wrong with a ``POST /__emulator/config`` body (empty: nothing)."""
    errors: dict[str, str] = {}

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    known = {"step_seconds", "capture_window_seconds", "webhook_url", "webhook_key", "webhook_content_type", "webhooks"}
    for name in sorted(set(body) - known):
        errors[name] = "unknown setting"
    for name in ("step_seconds", "capture_window_seconds"):
        if name in body and not (number(body[name]) and body[name] > 0):
            errors[name] = "must be a number > 0"
    url = body.get("webhook_url")
    if url not in (None, ""):
        try:
            host = httpx.URL(url).host if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
        except httpx.InvalidURL:
            host = ""
        if not host:
            errors["webhook_url"] = "must be an http(s) URL or null"
    if "webhook_key" in body:
        try:
            base64.b64decode(body["webhook_key"], validate=True)
            if not body["webhook_key"]:
                raise ValueError("empty")
        except (TypeError, ValueError):
            errors["webhook_key"] = "must be a non-empty base64 string"
    if "webhook_content_type" in body and not (
        isinstance(body["webhook_content_type"], str) and body["webhook_content_type"].strip()
    ):
        errors["webhook_content_type"] = "must be a non-empty string"
    switches = body.get("webhooks", {})
    if not isinstance(switches, dict):
        return {**errors, "webhooks": "must be an object"}
    for name, value in switches.items():
        if name in ("drop", "duplicate", "reorder", "delay_probability"):
            if not (number(value) and 0 <= value <= 1):
                errors[f"webhooks.{name}"] = "must be a probability 0..1"
        elif name == "delay":
            if not (number(value) and value >= 0):
                errors["webhooks.delay"] = "must be seconds >= 0"
        elif name == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                errors["webhooks.seed"] = "must be an integer or null"
        elif name == "retries":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
                errors["webhooks.retries"] = "must be an integer 0..10"
        else:
            errors[f"webhooks.{name}"] = "unknown switch"
    return errors


# -- the emulator ---------------------------------------------------------------------


class FlexFactorEmulator(Emulator):
    name = "flexfactor"

    def __init__(
        self,
        *,
        app_key: str = DEFAULT_APP_KEY,
        app_secret: str = DEFAULT_APP_SECRET,
        token_ttl_seconds: float = DEFAULT_TOKEN_TTL,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        capture_window_seconds: float = DEFAULT_CAPTURE_WINDOW,
        webhook_url: str | None = None,
        webhook_key: str = DEFAULT_WEBHOOK_KEY,
        webhook_content_type: str = DEFAULT_WEBHOOK_CONTENT_TYPE,
    ) -> None:
        super().__init__()
        problems = _config_errors(
            {
                "step_seconds": step_seconds,
                "capture_window_seconds": capture_window_seconds,
                "webhook_url": webhook_url,
                "webhook_key": webhook_key,
                "webhook_content_type": webhook_content_type,
            }
        )
        if problems:
            raise ValueError(f"invalid FlexFactor emulator settings: {problems}")
        self.app_key = app_key
        self.app_secret = app_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.step_seconds = float(step_seconds)
        self.capture_window_seconds = float(capture_window_seconds)
        self.webhook_url = webhook_url or None
        self.webhook_key = webhook_key
        self.webhook_content_type = webhook_content_type
        self.switches = Switches()
        self._random = random.Random()
        self._signing_secret = secrets.token_bytes(32)
        self._token_expiry: dict[str, float] = {}  # jti -> expiry (epoch seconds, exact)
        self.evaluations: dict[str, Evaluation] = {}
        self.orders: dict[str, Order] = {}
        self.created: dict[str, int] = {}  # idempotency key -> orders created for it
        self.captures: dict[str, _Replay] = {}  # capture idempotencyKey -> the success
        self.cancels: dict[str, _Replay] = {}  # cancel idempotencyKey -> the success
        self.webhook_log: list[WebhookEntry] = []
        self._store_lock = threading.Lock()
        self._changed = threading.Condition(self._store_lock)  # wakes the sender and flushes
        self._clock_offset = 0.0
        self._seq = itertools.count(1)
        self._timeline: list[tuple[float, int, str, Step]] = []  # heap of scheduled order steps
        self._jobs: list[tuple[tuple[float, int, int], int, _Job]] = []  # heap of deliveries
        self._held: dict[str, list[WebhookEntry]] = {}  # order id -> reordered events held back
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._http: httpx.Client | None = None

    def rules(self) -> list[Rule]:
        return [
            Rule("/v1/oauth2/token", methods=["POST"], endpoint="token"),
            Rule("/v1/evaluate", methods=["POST"], endpoint="evaluate"),
            Rule("/v1/orders", methods=["GET"], endpoint="list_orders"),
            Rule("/v1/orders/<order_id>", methods=["GET"], endpoint="get_order"),
            Rule("/v1/orders/<order_id>/cancel", methods=["POST"], endpoint="cancel_order"),
            Rule("/v1/orders/<order_id>/refund", methods=["POST"], endpoint="refund_order"),
            Rule("/v1/capture", methods=["POST"], endpoint="capture"),
            Rule("/__emulator/clock", methods=["GET", "POST"], endpoint="admin_clock"),
            Rule("/__emulator/config", methods=["GET", "POST"], endpoint="admin_config"),
            Rule("/__emulator/orders", methods=["GET"], endpoint="admin_orders"),
            Rule("/__emulator/orders/<order_id>/chargeback", methods=["POST"], endpoint="admin_chargeback"),
            Rule("/__emulator/webhooks", methods=["GET"], endpoint="admin_webhooks"),
            Rule("/__emulator/webhooks/flush", methods=["POST"], endpoint="admin_flush"),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.start_background()
        return super().__call__(environ, start_response)

    # -- background work ------------------------------------------------------------

    def start_background(self) -> None:
        """Start the clock and webhook threads (once; the first request does it)."""
        if self._threads:
            return
        with self._store_lock:
            if self._threads or self._stopping.is_set():
                return
            self._threads = [
                threading.Thread(target=self._tick_loop, name="flexfactor-clock", daemon=True),
                threading.Thread(target=self._send_loop, name="flexfactor-webhooks", daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=WEBHOOK_TIMEOUT + 1)
        if self._http is not None:
            self._http.close()

    def now_ts(self) -> float:
        """Emulator time: real time plus the offset ``POST /__emulator/clock`` adds."""
        return time.time() + self._clock_offset

    def now(self) -> datetime:
        return _moment(self.now_ts())

    def _tick_loop(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            with self._changed:
                if self._process_due():
                    self._changed.notify_all()

    def _process_due(self) -> bool:
        """Apply every scheduled step now due (the caller holds the store lock)."""
        now, applied = self.now_ts(), False
        while self._timeline and self._timeline[0][0] <= now:
            due, _, order_id, step = heapq.heappop(self._timeline)
            order = self.orders[order_id]
            if order.status_name != step.expect:
                continue  # a cancel, capture or refund came first
            at = _moment(due)
            if step.to is not None:
                order.move(step.to, at, step.name)
            for event in step.events:
                self._emit(order, event, at)
            applied = True
        return applied

    def _push_job(self, job: _Job) -> None:
        heapq.heappush(self._jobs, (job.key, next(self._seq), job))

    def _emit(self, order: Order, event: str, at: datetime, data: dict[str, Any] | None = None) -> WebhookEntry:
        """Log an event and plan its delivery under the switches (store lock held)."""
        if data is None:
            data = {"status": order.status_name, "amount": order.charged} if event.startswith("order.") else {}
        entry = WebhookEntry(
            id=len(self.webhook_log) + 1,
            event=event,
            order_id=order.id,
            external_order_id=order.reference_number,
            timestamp=_iso(at),
            data=data,
        )
        self.webhook_log.append(entry)
        if not self.webhook_url:
            entry.fate = "no-url"
            return entry
        switches = self.switches
        drop, duplicate, reorder, delay = (self._random.random() for _ in range(4))
        if drop < switches.drop:
            entry.fate = "dropped"
        elif duplicate < switches.duplicate:
            entry.fate = "duplicated"
        elif reorder < switches.reorder:
            entry.fate = "reordered"
        elif switches.delay > 0 and delay < switches.delay_probability:
            entry.fate = "delayed"
        now = self.now_ts()
        if entry.fate == "dropped":
            return entry
        if entry.fate == "reordered":
            entry.held = True
            self._held.setdefault(order.id, []).append(entry)
            hold = now + REORDER_HOLD_STEPS * self.step_seconds
            self._push_job(_Job(entry, kind="release", key=(hold, next(self._seq), 0)))
        else:
            entry.release = self._held.pop(order.id, [])
            due = now + (switches.delay if entry.fate == "delayed" else 0.0)
            self._send_copies(entry, (due, next(self._seq), 0))
        self._changed.notify_all()
        return entry

    def _send_copies(self, entry: WebhookEntry, key: tuple[float, int, int]) -> None:
        for copy in range(2 if entry.fate == "duplicated" else 1):
            entry.open_copies += 1
            self._push_job(_Job(entry, copy=copy, key=key))

    def _release(self, entries: list[WebhookEntry], after: tuple[float, int, int]) -> None:
        """Send held events right after the job keyed ``after`` (store lock held)."""
        for sub, entry in enumerate(entries, start=after[2] + 1):
            if not entry.held:
                continue  # its hold ran out first
            entry.held = False
            held = self._held.get(entry.order_id, [])
            if entry in held:
                held.remove(entry)
            self._send_copies(entry, (after[0], after[1], sub))

    def _next_job(self) -> _Job | None:
        if self._jobs and self._jobs[0][0][0] <= self.now_ts():
            return heapq.heappop(self._jobs)[2]
        return None

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                job = self._next_job()
                if job is None:
                    self._changed.wait(TICK_SECONDS)
                    continue
                if job.kind == "release":
                    self._release([job.entry], (self.now_ts(), next(self._seq), 0))
                    self._changed.notify_all()
                    continue
                url, key, content_type = self.webhook_url, self.webhook_key, self.webhook_content_type
                if url is None:  # unset since the event was planned
                    job.entry.fate, job.entry.open_copies = "no-url", job.entry.open_copies - 1
                    self._changed.notify_all()
                    continue
                self._in_flight += 1
            status, error = self._post(job, url, key, content_type)
            with self._changed:
                self._in_flight -= 1
                self._finish(job, status, error)
                self._changed.notify_all()

    def _post(self, job: _Job, url: str, key: str, content_type: str) -> tuple[int | None, str | None]:
        body = job.entry.body(resent=job.copy > 0 or job.attempt > 0)
        host = httpx.URL(url).netloc.decode("ascii")
        headers = {"Host": host, "Content-Type": content_type, **sign_webhook(body, key, host)}
        try:
            if self._http is None:
                self._http = httpx.Client(timeout=WEBHOOK_TIMEOUT)
            return self._http.post(url, content=body, headers=headers).status_code, None
        except Exception as exc:  # noqa: BLE001 - the sender thread must outlive any failure
            return None, type(exc).__name__

    def _finish(self, job: _Job, status: int | None, error: str | None) -> None:
        entry = job.entry
        entry.attempts += 1
        entry.last_status, entry.last_error = status, error
        if job.copy == 0 and job.attempt == 0 and entry.release:
            self._release(entry.release, job.key)
            entry.release = []
        if status is not None and 200 <= status < 300:
            entry.delivered += 1
            entry.open_copies -= 1
        elif job.attempt < self.switches.retries:
            job.attempt += 1
            job.key = (self.now_ts() + RETRY_BACKOFF * 2 ** (job.attempt - 1), next(self._seq), 0)
            self._push_job(job)
        else:
            entry.fate = "failed"
            entry.open_copies -= 1

    def _pending(self) -> int:
        return sum(entry.pending for entry in self.webhook_log)

    # -- admin ----------------------------------------------------------------------

    def admin_stats(self, request: Request) -> Response:
        with self._store_lock:
            webhooks: dict[str, int] = {
                "events": len(self.webhook_log),
                "attempts": sum(entry.attempts for entry in self.webhook_log),
                "pending": self._pending(),
                **dict.fromkeys(FATES, 0),
            }
            for entry in self.webhook_log:
                webhooks[entry.fate] += 1
            body = {
                "counts": dict(self.counts),
                "evaluations": dict(self.created),
                "orders": len(self.orders),
                "webhooks": webhooks,
            }
        return json_response(200, body)

    def admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = _json_object(request)
            advance = (body or {}).get("advance")
            if not (isinstance(advance, int | float) and not isinstance(advance, bool) and 0 <= advance < math.inf):
                return _problem(400, "advance must be a number of seconds >= 0")
            with self._changed:
                self._clock_offset += float(advance)
                self._process_due()
                self._changed.notify_all()
        return json_response(200, {"now": _iso(self.now()), "offset": self._clock_offset})

    def _config_json(self) -> dict[str, Any]:
        return {
            "step_seconds": self.step_seconds,
            "capture_window_seconds": self.capture_window_seconds,
            "webhook_url": self.webhook_url,
            "webhook_key": self.webhook_key,
            "webhook_content_type": self.webhook_content_type,
            "webhooks": vars(self.switches).copy(),
        }

    def admin_config(self, request: Request) -> Response:
        if request.method == "GET":
            with self._store_lock:
                return json_response(200, self._config_json())
        body = _json_object(request)
        if body is None:
            return _problem(400, "the config must be a JSON object")
        errors = _config_errors(body)
        if errors:
            return json_response(400, {"status": 400, "title": "invalid emulator config", "errors": errors})
        with self._changed:
            for name in ("step_seconds", "capture_window_seconds"):
                if name in body:
                    setattr(self, name, float(body[name]))
            if "webhook_url" in body:
                self.webhook_url = body["webhook_url"] or None
            if "webhook_key" in body:
                self.webhook_key = body["webhook_key"]
            if "webhook_content_type" in body:
                self.webhook_content_type = body["webhook_content_type"].strip()
            switches = body.get("webhooks", {})
            for name, value in switches.items():
                setattr(self.switches, name, float(value) if name not in ("seed", "retries") else value)
            if "seed" in switches:
                self._random.seed(switches["seed"])
            self._changed.notify_all()
            return json_response(200, self._config_json())

    def admin_orders(self, request: Request) -> Response:
        with self._store_lock:
            self._process_due()
            orders = [order.admin_json() for order in sorted(self.orders.values(), key=lambda o: o.seq)]
        return json_response(200, {"orders": orders})

    def admin_chargeback(self, request: Request, order_id: str) -> Response:
        body = _json_object(request, empty_ok=True)
        amount = (body or {}).get("amount")
        if body is None or (amount is not None and (isinstance(amount, bool) or not isinstance(amount, int))):
            return _problem(400, 'the body must be empty or {"amount": cents}')
        with self._changed:
            self._process_due()
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            if order.status not in (OrderStatus.Completed, OrderStatus.Returned):
                return _problem(409, f"a chargeback needs a Completed or Returned order, not {order.status_name}")
            order.chargebacks += 1
            data = {"status": order.status_name, "amount": amount if amount is not None else order.charged}
            entry = self._emit(order, "payment.chargeback.received", self.now(), data)
            return json_response(200, entry.as_json())

    def _webhooks_json(self) -> dict[str, Any]:
        return {"pending": self._pending(), "webhooks": [entry.as_json() for entry in self.webhook_log]}

    def admin_webhooks(self, request: Request) -> Response:
        with self._store_lock:
            return json_response(200, self._webhooks_json())

    def admin_flush(self, request: Request) -> Response:
        body = _json_object(request, empty_ok=True) or {}
        timeout = body.get("timeout", FLUSH_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 60:
            return _problem(400, "timeout must be 0..60 seconds")
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending() or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, TICK_SECONDS))
            return json_response(200, self._webhooks_json())

    def _fault(self, endpoint: str) -> Response | None:
        fault = self.take_fault(endpoint)
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _fault_response(int(fault["status"]))
        return None

    # -- token ----------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        faulted = self._fault("token")
        if faulted:
            return faulted
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _token_failed()
        key, secret = body.get("AppKey"), body.get("AppSecret")
        if not (isinstance(key, str) and isinstance(secret, str)):
            return _token_failed()
        key_ok = hmac.compare_digest(key.encode(), self.app_key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.app_secret.encode())
        if not (key_ok and secret_ok):
            return _token_failed()
        now = time.time()
        expires = now + self.token_ttl_seconds
        jti = uuid.uuid4().hex
        claims = {
            "sub": self.app_key,
            "iss": "flexfactor-emulator",
            "jti": jti,
            "iat": int(now),
            "exp": math.ceil(expires),  # NumericDate; the exact expiry is enforced server-side
        }
        token = jwt.encode(claims, self._signing_secret, algorithm="HS256")
        with self._store_lock:
            self._token_expiry = {k: v for k, v in self._token_expiry.items() if v > now}
            self._token_expiry[jti] = expires
        return json_response(
            200,
            {
                "accessToken": token,
                "refreshToken": secrets.token_urlsafe(32),
                "expires": int(expires * 1000),
                "id": str(uuid.uuid4()),
                "success": True,
                "result": "Success",
                "status": "SUCCESS",
                "statusCode": 200,
                "errors": [],
                "customProperties": {},
            },
        )

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            claims = jwt.decode(
                token.strip(), self._signing_secret, algorithms=["HS256"], options={"require": ["exp", "jti"]}
            )
        except jwt.InvalidTokenError:
            return False
        with self._store_lock:
            expires = self._token_expiry.get(str(claims["jti"]))
        return expires is not None and time.time() < expires

    def _gate(self, request: Request, fault: str) -> Response | None:
        """The bearer check, then the endpoint's next fault: an answer, or None to go on."""
        if not self.authorized(request):
            return _unauthorized()
        return self._fault(fault)

    # -- evaluate -------------------------------------------------------------------

    def evaluate(self, request: Request) -> Response:
        refused = self._gate(request, "evaluate")
        if refused:
            return refused
        try:
            payload = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _validation_failed({"$": ["The request body must be a JSON object."]})
        errors = validate(payload)
        if errors:
            return _validation_failed(errors)

        key = str(uuid.UUID(payload["idempotencyKey"]))
        fingerprint = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self._changed:
            seen = self.evaluations.get(key)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(200, seen.response)
            status = decide(payload)
            order = self._new_order(payload, key, status)
            response = {
                "orderSessionKey": order.id,
                "senseKey": payload.get("senseKey"),
                "orderId": order.id,
                "success": True,
                "result": "Success",
                "status": status,
                "statusCode": 200,
                "errors": [],
                "customProperties": {},
            }
            self.evaluations[key] = Evaluation(fingerprint, response)
        return json_response(200, response)

    def _new_order(self, payload: dict[str, Any], key: str, status: str) -> Order:
        """Record the order an evaluation creates and schedule its scenario (store lock held)."""
        is_mit = payload.get("isMIT") is True
        expiry = None
        if is_mit:
            expiry = datetime.fromisoformat(payload["expiryDateUtc"].strip())
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
        placed = self.now_ts()
        order = Order(
            id=str(uuid.uuid4()),
            reference_number=payload["orderId"],
            amount=payload["transaction"]["amount"],
            currency=payload["transaction"]["currency"].upper(),
            is_mit=is_mit,
            status=INITIAL_ORDER_STATUS[status],
            idempotency_key=key,
            placed=_moment(placed),
            expiry=expiry,
            seq=next(self._seq),
        )
        expiry_after = expiry.timestamp() - placed if expiry else None
        order.scenario, steps = plan(status, payload, self.step_seconds, self.capture_window_seconds, expiry_after)
        for after, step in steps:
            heapq.heappush(self._timeline, (placed + after, next(self._seq), order.id, step))
        self.orders[order.id] = order
        self.created[key] = self.created.get(key, 0) + 1
        return order

    # -- orders ---------------------------------------------------------------------

    def get_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "orders")
        if refused:
            return refused
        with self._changed:
            self._process_due()
            order = self.orders.get(order_id.lower())
            body = order.as_json() if order else None
        if body is None:
            return _problem(404, "Not Found")
        return json_response(200, body)

    def list_orders(self, request: Request) -> Response:
        refused = self._gate(request, "orders")
        if refused:
            return refused
        query, errors = parse_list_query(request.args)
        if errors:
            return _validation_failed(errors)
        wanted = query["status"]
        with self._changed:
            self._process_due()
            found = [
                order
                for order in self.orders.values()
                if (wanted is None or wanted in (int(order.status), order.status_name))
                and (query["from"] is None or order.placed >= query["from"])
                and (query["to"] is None or order.placed <= query["to"])
            ]
            found.sort(key=lambda o: (o.placed, o.seq), reverse=query["descending"])
            size, number = query["pageSize"], query["pageNumber"]
            items = [order.as_json() for order in found[(number - 1) * size : number * size]]
        pages = math.ceil(len(found) / size)
        return json_response(
            200,
            {
                "items": items,
                "pageNumber": number,
                "pageSize": size,
                "pageCount": pages,
                "totalCount": len(found),
                "hasNextPage": number < pages,
                "hasPreviousPage": number > 1,
            },
        )

    @staticmethod
    def _replayed(store: dict[str, _Replay], key: str, now: float) -> _Replay | None:
        seen = store.get(key)
        if seen is not None and seen.expires <= now:
            del store[key]
            return None
        return seen

    def capture(self, request: Request) -> Response:
        refused = self._gate(request, "capture")
        if refused:
            return refused
        body = _json_object(request)
        if body is None:
            return _capture_failed(400, [{"key": "$", "error": "The request body must be a JSON object."}])
        errors: list[dict[str, str]] = []
        key, order_id = body.get("idempotencyKey"), body.get("orderId")
        amount, currency = body.get("amount"), body.get("currency")
        for name, value in (("IdempotencyKey", key), ("OrderId", order_id)):
            if not isinstance(value, str) or not value.strip():
                errors.append({"key": name, "error": f"The {name} field is required (a string)."})
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            errors.append({"key": "Amount", "error": "The Amount field must be an integer number of cents >= 1."})
        if not isinstance(currency, str) or not _LETTERS[3].fullmatch(currency):
            errors.append({"key": "Currency", "error": "The Currency field must be an ISO 4217 code."})
        if errors:
            return _capture_failed(400, errors, order_id)
        fingerprint = _canonical(body)
        with self._changed:
            now = self.now_ts()
            self._process_due()
            seen = self._replayed(self.captures, key, now)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    conflict = "The idempotency key was used with another request."
                    return _capture_failed(409, [{"key": "IdempotencyKey", "error": conflict}], order_id)
                return json_response(seen.status, seen.body)
            order = self.orders.get(order_id.strip().lower())
            if order is None:
                return _capture_failed(404, [{"key": "OrderId", "error": "The order does not exist."}], order_id)
            if order.status != OrderStatus.Capturerequired:
                state = f"The order is {order.status_name}; only a Capturerequired order can be captured."
                return _capture_failed(409, [{"key": "OrderId", "error": state}], order_id)
            if amount > order.amount:
                too_much = f"The Amount field must not exceed the order amount ({order.amount} cents)."
                return _capture_failed(400, [{"key": "Amount", "error": too_much}], order_id)
            if currency.upper() != order.currency:
                other = f"The Currency field must be the order's currency ({order.currency})."
                return _capture_failed(400, [{"key": "Currency", "error": other}], order_id)
            order.captured = amount
            order.move(OrderStatus.Completed, _moment(now))
            self._emit(order, "order.completed", _moment(now))
            answer = _succeeded(
                orderId=order.id,
                capturedAmount=amount,
                currency=order.currency,
                orderStatus=int(order.status),
                statusName=order.status_name,
            )
            self.captures[key] = _Replay(fingerprint, 200, answer, now + IDEMPOTENCY_WINDOW)
        return json_response(200, answer)

    def cancel_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "cancel")
        if refused:
            return refused
        body = _json_object(request, empty_ok=True)
        if body is None:
            return _validation_failed({"$": ["The request body must be empty or a JSON object."]})
        key = body.get("idempotencyKey")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            return _validation_failed({"IdempotencyKey": ["The IdempotencyKey field must be a non-empty string."]})
        fingerprint = _canonical({**body, "orderId": order_id.lower()})
        with self._changed:
            now = self.now_ts()
            self._process_due()
            seen = self._replayed(self.cancels, key, now) if key else None
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(seen.status, seen.body)
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            if order.is_mit:
                allowed = (OrderStatus.Draft, OrderStatus.Processing, OrderStatus.Capturerequired)
            else:
                allowed = (OrderStatus.Capturerequired,)
            if order.status not in allowed:
                kind = (
                    "a MIT order in Draft, Processing or Capturerequired"
                    if order.is_mit
                    else ("a CIT order in Capturerequired")
                )
                return _problem(409, f"The order is {order.status_name}; only {kind} can be cancelled.")
            order.move(OrderStatus.Cancelled, _moment(now))
            self._emit(order, "order.cancelled", _moment(now))
            answer = _succeeded(orderId=order.id, orderStatus=int(order.status), statusName=order.status_name)
            if key:
                self.cancels[key] = _Replay(fingerprint, 200, answer, now + IDEMPOTENCY_WINDOW)
        return json_response(200, answer)

    def refund_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "refund")
        if refused:
            return refused
        body = _json_object(request, parse_float=Decimal)
        if body is None:
            return _validation_failed({"$": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        amount, message = body.get("amountToRefund"), body.get("refundMessage")
        dollars = Decimal(0)
        if amount is None:
            errors["AmountToRefund"] = ["The AmountToRefund field is required."]
        elif isinstance(amount, bool) or not isinstance(amount, int | Decimal):
            errors["AmountToRefund"] = ["The AmountToRefund field must be a number (dollars)."]
        else:
            try:
                dollars = Decimal(amount)
                if dollars <= 0 or dollars != dollars.quantize(Decimal("0.01")):
                    raise InvalidOperation
            except InvalidOperation:
                errors["AmountToRefund"] = ["The AmountToRefund field must be > 0 with at most 2 decimals."]
        if message is not None and not isinstance(message, str):
            errors["RefundMessage"] = ["The RefundMessage field must be a string."]
        if errors:
            return _validation_failed(errors)
        cents = int(dollars * 100)
        with self._changed:
            now = self.now_ts()
            self._process_due()
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            already = order.status == OrderStatus.Returned
            if not already:
                if order.status != OrderStatus.Completed:
                    return _problem(409, f"The order is {order.status_name}; only a Completed order can be refunded.")
                if cents > order.charged:
                    too_much = f"The AmountToRefund field must not exceed {Decimal(order.charged) / 100:.2f}."
                    return _validation_failed({"AmountToRefund": [too_much]})
                order.refunded = cents
                order.move(OrderStatus.Returned, _moment(now))
                self._emit(order, "order.refunded", _moment(now), {"status": order.status_name, "amount": cents})
            answer = _succeeded(
                orderId=order.id,
                amountRefunded=float(Decimal(order.refunded) / 100),
                alreadyRefunded=already,
                orderStatus=int(order.status),
                statusName=order.status_name,
            )
        return json_response(200, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description="FlexFactor decline-rescue API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_TOKEN_TTL, help="access token lifetime, seconds")
    parser.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS, help="one lifecycle step")
    parser.add_argument("--capture-window", type=float, default=DEFAULT_CAPTURE_WINDOW, help="seconds before a void")
    parser.add_argument("--webhook-url", default=None, help="where webhooks go (none are sent without it)")
    parser.add_argument("--webhook-key", default=DEFAULT_WEBHOOK_KEY, help="base64 subscriber key")
    args = parser.parse_args()
    emulator = FlexFactorEmulator(
        app_key=args.app_key,
        app_secret=args.app_secret,
        token_ttl_seconds=args.token_ttl,
        step_seconds=args.step_seconds,
        capture_window_seconds=args.capture_window,
        webhook_url=args.webhook_url,
        webhook_key=args.webhook_key,
    )
    serve_forever(emulator, args.host, args.port)


if __name__ == "__main__":
    main()
