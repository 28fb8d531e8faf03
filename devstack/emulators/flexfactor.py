"""FlexFactor decline-rescue API emulator (PROVIDERS.md section 2, seed 003).

- ``POST /v1/oauth2/token``: JSON ``{"AppKey", "AppSecret"}`` (no grant_type, not
  form-encoded); answers an HS256 JWT access token signed with a per-emulator random
  secret, living ``token_ttl_seconds`` (600 by default, like the provider). Wrong or
  missing credentials: 401 with the provider's ``Failed`` envelope.
- Every other ``/v1/`` endpoint wants ``Authorization: Bearer <accessToken>``; missing,
  forged or expired: 401 ``{"title": "Unauthorized", "status": 401}``.
- ``POST /v1/evaluate``: validates the request like the provider (seed 003: required
  fields, MIT/CIT conditions, sandbox amount ``> 10 and < 20000`` cents) and answers every
  problem at once as a 400 ProblemDetails with PascalCase dotted keys. Unknown fields are
  ignored. ``timezoneUtcOffset`` may be a numeric string ("-5"), ``zipcode`` stands for
  ``zipCode`` and ``isMIT`` may be omitted (a CIT), as the sandbox accepts. Idempotent on
  ``idempotencyKey``: the same key and body replay the stored answer without a new order;
  the same key with another body is a 409.
- ``GET /v1/orders/{orderSessionKey}``: the order the evaluation created, its status an
  int (0 Draft, 1 Onhold, 2 Cancelled, 3 Problem, 4 Processing, 5 Capturerequired,
  6 Returned, 7 Completed); 404 when unknown. Orders do not progress over time (yet).

Deterministic scenarios, chosen by ``paymentMethod.cardLast4Digits``:

| Initiated | `cardLast4Digits` | Condition                                   | /evaluate status  | Order status       |
|-----------|-------------------|---------------------------------------------|-------------------|--------------------|
| MIT       | `3184`            | (sandbox card 4000002760003184)             | `APPROVED`        | 7 Completed        |
| MIT       | anything else     |                                             | `SUBMITTED`       | 0 Draft            |
| CIT       | `1111`            | `payer.phone` present                       | `CHALLENGE`       | 0 Draft            |
| CIT       | `1111`            | no `payer.phone` (sandbox 4111111111111111) | `DECLINED`        | 2 Cancelled        |
| CIT       | `0002`            |                                             | `DECLINED`        | 2 Cancelled        |
| CIT       | `0259`            |                                             | `CHALLENGE`       | 0 Draft            |
| CIT       | anything else     | `transactionType` AUTHORIZATION (any case)  | `CAPTUREREQUIRED` | 5 Capturerequired  |
| CIT       | anything else     | otherwise                                   | `APPROVED`        | 7 Completed        |

A request is a MIT when ``isMIT`` is true, a CIT otherwise (``isMIT`` false or omitted).
``transactionType`` is the top-level field (AUTHORIZATION | PURCHASE, any case).

Faults (``POST /__emulator/faults``) for the endpoints ``token``, ``evaluate`` and
``orders``: ``{"delay": seconds}`` waits then answers normally; ``{"status": n}`` answers
n (409: the provider's "still in progress", 401: unauthorized, otherwise
``{"status": n, "title": "injected fault"}``). A fault is taken after the bearer check and
before validation and idempotency, so a faulted evaluation creates no order.
``GET /__emulator/stats`` adds ``evaluations`` (orders created per idempotency key) and
``orders`` (the total).

Default credentials: ``ff-local-app-key`` / ``ff-local-app-secret``. Request bodies are
never logged (``cardNumber`` may be a real PAN for a PCI-compliant merchant).
"""

from __future__ import annotations

import argparse
import enum
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import Emulator, json_response, serve_forever

DEFAULT_APP_KEY = "ff-local-app-key"
DEFAULT_APP_SECRET = "ff-local-app-secret"
DEFAULT_TOKEN_TTL = 600

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

_INT_STRING = re.compile(r"[+-]?\d+")
_LETTERS = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}
_DIGITS = {4: re.compile(r"\d{4}"), 6: re.compile(r"\d{6}")}
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

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": int(self.status),
            "statusName": self.status.name,
            "orderPlacedDate": _iso(self.placed),
            "expiryDate": _iso(self.expiry) if self.expiry else None,
            "referenceNumber": self.reference_number,
            "amount": self.amount,
            "currency": self.currency,
            "isMIT": self.is_mit,
        }


@dataclass
class Evaluation:
    fingerprint: str
    response: dict[str, Any]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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


# -- the emulator ---------------------------------------------------------------------


class FlexFactorEmulator(Emulator):
    name = "flexfactor"

    def __init__(
        self,
        *,
        app_key: str = DEFAULT_APP_KEY,
        app_secret: str = DEFAULT_APP_SECRET,
        token_ttl_seconds: float = DEFAULT_TOKEN_TTL,
    ) -> None:
        super().__init__()
        self.app_key = app_key
        self.app_secret = app_secret
        self.token_ttl_seconds = token_ttl_seconds
        self._signing_secret = secrets.token_bytes(32)
        self._token_expiry: dict[str, float] = {}  # jti -> expiry (epoch seconds, exact)
        self.evaluations: dict[str, Evaluation] = {}
        self.orders: dict[str, Order] = {}
        self.created: dict[str, int] = {}  # idempotency key -> orders created for it
        self._store_lock = threading.Lock()

    def rules(self) -> list[Rule]:
        return [
            Rule("/v1/oauth2/token", methods=["POST"], endpoint="token"),
            Rule("/v1/evaluate", methods=["POST"], endpoint="evaluate"),
            Rule("/v1/orders/<order_id>", methods=["GET"], endpoint="get_order"),
        ]

    def admin_stats(self, request: Request) -> Response:
        with self._store_lock:
            body = {"counts": dict(self.counts), "evaluations": dict(self.created), "orders": len(self.orders)}
        return json_response(200, body)

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

    # -- evaluate -------------------------------------------------------------------

    def evaluate(self, request: Request) -> Response:
        if not self.authorized(request):
            return _unauthorized()
        faulted = self._fault("evaluate")
        if faulted:
            return faulted
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
        with self._store_lock:
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
        """Record the order an evaluation creates (the caller holds the store lock)."""
        is_mit = payload.get("isMIT") is True
        expiry = None
        if is_mit:
            expiry = datetime.fromisoformat(payload["expiryDateUtc"].strip())
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
        order = Order(
            id=str(uuid.uuid4()),
            reference_number=payload["orderId"],
            amount=payload["transaction"]["amount"],
            currency=payload["transaction"]["currency"].upper(),
            is_mit=is_mit,
            status=INITIAL_ORDER_STATUS[status],
            idempotency_key=key,
            expiry=expiry,
        )
        self.orders[order.id] = order
        self.created[key] = self.created.get(key, 0) + 1
        return order

    # -- orders ---------------------------------------------------------------------

    def get_order(self, request: Request, order_id: str) -> Response:
        if not self.authorized(request):
            return _unauthorized()
        faulted = self._fault("orders")
        if faulted:
            return faulted
        with self._store_lock:
            order = self.orders.get(order_id.lower())
            body = order.as_json() if order else None
        if body is None:
            return _problem(404, "Not Found")
        return json_response(200, body)


def main() -> None:
    parser = argparse.ArgumentParser(description="FlexFactor decline-rescue API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_TOKEN_TTL, help="access token lifetime, seconds")
    args = parser.parse_args()
    emulator = FlexFactorEmulator(app_key=args.app_key, app_secret=args.app_secret, token_ttl_seconds=args.token_ttl)
    serve_forever(emulator, args.host, args.port)


if __name__ == "__main__":
    main()
