"""Request checks, answering every problem at once: an ``/evaluate`` body (bound as the
sandbox's ASP.NET server binds it, keyed like its model state), the ``GET /v1/orders``
query and a ``POST /__emulator/config`` body. They say what is wrong; the endpoints answer it.

Binding (sandbox-observed: ASP.NET's web defaults): property names match case-insensitively
at every level (``OrderId``, ``paymentMethod.Token``, ``threeDSecure.EcommerceIndicator``;
the last of two spellings wins), numbers may come as numeric strings (``"-5"``), unknown
properties are ignored. A value that cannot bind to its property's type (``amount
"abc"``, ``expiryDateUtc ""``, ``isMIT "yes"``) is ``"The field <Name> is invalid."``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request

from devstack.emulators.flexfactor.orders import EXPIRED, STATUS_NAMES, OrderStatus, status_name
from devstack.emulators.flexfactor.responses import ERROR_SHAPES

AMOUNT_ABOVE = 10  # sandbox: amount must be > 10 cents ...
AMOUNT_BELOW = 20000  # ... and < 20000 cents
TRANSACTION_TYPES = ("AUTHORIZATION", "PURCHASE")

PAGE_SIZE_DEFAULT = 10  # as the sandbox
PAGE_SIZE_MAX = 100
ORDER_BY = {"createdon": "createdOn", "amount": "amount", "orderplaceddate": "orderPlacedDate"}

_INT_STRING = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER_STRING = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_LETTERS = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_MISSING = object()

_ADDRESS = dict.fromkeys(
    (
        "firstName",
        "lastName",
        "email",
        "phone",
        "country",
        "countryCode",
        "addressLine1",
        "addressLine2",
        "city",
        "state",
        "zipCode",
    )
)
# the /evaluate model: property names as the provider spells them; a dict is a nested object
EVALUATE_MODEL: dict[str, Any] = {
    **dict.fromkeys(
        (
            "isDeclined",
            "orderId",
            "siteId",
            "mid",
            "idempotencyKey",
            "senseKey",
            "transactionType",
            "orderSource",
            "isMIT",
            "isRecurring",
            "expiryDateUtc",
            "customerIp",
            "description",
            "source",
            "extraData",
            "deviceDetails",
            "orderItems",
        )
    ),
    "transaction": dict.fromkeys(
        (
            "id",
            "timestamp",
            "timestampUtc",
            "timezoneUtcOffset",
            "amount",
            "currency",
            "dynamicDescriptor",
            "responseCode",
            "responseCodeSource",
            "responseStatus",
            "responseSubCode",
            "processorName",
            "avsResultCode",
            "cvvResultCode",
            "cavvResultCode",
            "cardNotPresent",
        )
    ),
    "payer": dict.fromkeys(("id", "email", "phone", "birthDate")),
    "paymentMethod": dict.fromkeys(
        (
            "token",
            "holderName",
            "cardType",
            "cardBrand",
            "cardCountry",
            "expirationMonth",
            "expirationYear",
            "cardBinNumber",
            "cardLast4Digits",
            "cardNumber",
            "cardFingerprint",
        )
    ),
    "billingInformation": _ADDRESS,
    "shippingInformation": _ADDRESS,
    "subscription": dict.fromkeys(
        ("subscriptionId", "interval", "price", "currency", "paymentNumber", "totalPayments")
    ),
    "threeDSecure": dict.fromkeys(
        (
            "threeDsVersion",
            "ecommerceIndicator",
            "authenticationValue",
            "authenticationValueAlgorithm",
            "directoryServerTransactionId",
            "directoryResponseStatus",
            "authenticationResponseStatus",
            "enrolled",
            "xid",
        )
    ),
}


def bind_names(value: Any, model: dict[str, Any] | None) -> Any:
    """``value`` with its property names in the model's spelling, matched case-insensitively
    (unknown names kept as sent; of two spellings of one name the last wins)."""
    if not isinstance(value, dict) or model is None:
        return value
    names = {name.lower(): name for name in model}
    bound: dict[str, Any] = {}
    for key, item in value.items():
        name = names.get(key.lower(), key)
        bound[name] = bind_names(item, model.get(name)) if isinstance(model.get(name), dict) else item
    return bound


def ci_get(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` matched case-insensitively (the last match wins), None when absent."""
    found = None
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == name.lower():
            found = value
    return found


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date and time (UTC when it has no offset); ValueError otherwise."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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

    def invalid(self, path: str) -> None:
        self.add(path, f"The field {self._name(path)} is invalid.")

    def get(self, obj: dict[str, Any], path: str, required: bool, message: str | None = None) -> Any:
        """The value at ``path`` (its last segment) in ``obj``; _MISSING when null or absent,
        and, when ``required``, when an empty string too (then reported)."""
        value = obj.get(path.rsplit(".", 1)[-1])
        blank = isinstance(value, str) and not value.strip()
        if value is None or (required and blank):
            if required:
                self.add(path, message or f"The {self._name(path)} field is required.")
            return _MISSING
        return value

    def obj(self, parent: dict[str, Any], path: str, required: bool = False) -> dict[str, Any] | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.invalid(path)
            return None
        return value

    def string(self, parent: dict[str, Any], path: str, required: bool = False, message: str | None = None):
        value = self.get(parent, path, required, message)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.invalid(path)
            return None
        return value

    def integer(self, parent: dict[str, Any], path: str, required: bool = False) -> int | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if isinstance(value, str) and _INT_STRING.fullmatch(value):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.invalid(path)
            return None
        return value

    def number(self, parent: dict[str, Any], path: str, required: bool = False) -> Decimal | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if isinstance(value, str) and _NUMBER_STRING.fullmatch(value):
            return Decimal(value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value):
            self.invalid(path)
            return None
        return Decimal(str(value))

    def boolean(self, parent: dict[str, Any], path: str, required: bool = False) -> bool | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.invalid(path)
            return None
        return value

    def moment(self, parent: dict[str, Any], path: str, required: bool = False) -> datetime | None:
        value = self.get(parent, path, required)
        if value is _MISSING:
            return None
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return parse_moment(value)
        except ValueError:
            self.invalid(path)
            return None

    def strings(self, parent: dict[str, Any], prefix: str, names: tuple[str, ...], required: bool = False) -> None:
        for name in names:
            self.string(parent, f"{prefix}.{name}" if prefix else name, required)


def bind(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An /evaluate body bound as the sandbox binds it (names in the model's spelling,
    ``transaction.amount`` an int) and every problem with it, keyed by PascalCase dotted
    path. Required (sandbox-observed): ``orderId``, ``isDeclined``, ``idempotencyKey``,
    ``transaction.id``, ``.responseCode``, ``.responseCodeSource`` (``""`` is missing),
    ``.avsResultCode``, ``.cvvResultCode``, ``.cavvResultCode``;
    (emulated) ``transaction``, ``.amount`` and ``.currency``, which the order needs."""
    model = bind_names(payload, EVALUATE_MODEL)
    c = _Checker()
    declined = c.boolean(model, "isDeclined", required=True)
    if declined is False:
        c.add("isDeclined", "The IsDeclined field must be true.")
    c.string(model, "orderId", True, "Merchant's orderId is required")
    c.string(model, "idempotencyKey", True)
    c.strings(model, "", ("siteId", "mid", "senseKey", "customerIp", "orderSource", "description"))
    kind = c.string(model, "transactionType")
    if kind is not None and kind.strip() and kind.strip().upper() not in TRANSACTION_TYPES:
        c.add("transactionType", "The TransactionType field must be Purchase or Authorization (any case).")
    c.boolean(model, "isMIT")
    c.boolean(model, "isRecurring")
    c.moment(model, "expiryDateUtc")

    transaction = c.obj(model, "transaction", required=True)
    if transaction is not None:
        # (sandbox-observed: a missing cavvResultCode and an empty responseCodeSource are refused too)
        required = ("id", "responseCode", "responseCodeSource", "avsResultCode", "cvvResultCode", "cavvResultCode")
        c.strings(transaction, "transaction", required, True)
        optional = ("responseStatus", "responseSubCode", "processorName")
        c.strings(transaction, "transaction", (*optional, "dynamicDescriptor"))
        c.moment(transaction, "transaction.timestampUtc")
        c.number(transaction, "transaction.timezoneUtcOffset")
        c.boolean(transaction, "transaction.cardNotPresent")
        amount = c.integer(transaction, "transaction.amount", True)
        if amount is not None:
            transaction["amount"] = amount
            if not AMOUNT_ABOVE < amount < AMOUNT_BELOW:
                c.add(
                    "transaction.amount",
                    f"The field Amount must be greater than {AMOUNT_ABOVE} and less than {AMOUNT_BELOW} (cents).",
                )
        currency = c.string(transaction, "transaction.currency", True)
        if currency is not None and not _LETTERS[3].fullmatch(currency.strip()):
            c.add("transaction.currency", "The Currency field must be an ISO 4217 code.")

    payer = c.obj(model, "payer")
    if payer is not None:
        c.strings(payer, "payer", ("id", "email", "phone", "birthDate"))

    method = c.obj(model, "paymentMethod")
    if method is not None:
        c.boolean(method, "paymentMethod.token")
        names = ("holderName", "cardType", "cardBrand", "cardCountry", "cardBinNumber", "cardLast4Digits")
        c.strings(method, "paymentMethod", (*names, "cardNumber", "cardFingerprint"))
        month = c.integer(method, "paymentMethod.expirationMonth")
        if month is not None and not 1 <= month <= 12:
            c.add("paymentMethod.expirationMonth", "The field ExpirationMonth must be between 1 and 12.")
        year = c.integer(method, "paymentMethod.expirationYear")
        if year is not None and not 1000 <= year <= 9999:
            c.add("paymentMethod.expirationYear", "The field ExpirationYear must have 4 digits.")

    for name in ("billingInformation", "shippingInformation"):
        address = c.obj(model, name)
        if address is not None:
            c.strings(address, name, tuple(_ADDRESS))

    subscription = c.obj(model, "subscription")
    if subscription is not None:
        c.strings(subscription, "subscription", ("subscriptionId", "interval", "currency"))
        c.number(subscription, "subscription.price")
        c.integer(subscription, "subscription.paymentNumber")
        c.integer(subscription, "subscription.totalPayments")
    secure = c.obj(model, "threeDSecure")
    if secure is not None:
        names = tuple(name for name in EVALUATE_MODEL["threeDSecure"] if name != "enrolled")
        c.strings(secure, "threeDSecure", names)
    return model, c.errors


def validate(payload: dict[str, Any]) -> dict[str, list[str]]:
    """Every problem with an /evaluate request (see :func:`bind`)."""
    return bind(payload)[1]


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
    """The filters, order and page of ``GET /v1/orders`` (parameter names in any case, as
    ASP.NET binds them), and every bad parameter."""
    errors: dict[str, list[str]] = {}
    names = {key.lower(): key for key in args}

    def value(name: str) -> str | None:
        raw = args.get(names.get(name.lower(), name))
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

    query: dict[str, Any] = {"status": None, "from": None, "to": None, "query": value("query"), "mid": value("mid")}
    status = value("status")
    if status is not None:
        if _INT_STRING.fullmatch(status) and int(status) in OrderStatus._value2member_map_:
            query["status"] = int(status)
        elif status.lower() in STATUS_NAMES:
            query["status"] = STATUS_NAMES[status.lower()]
        else:
            choices = ", ".join([status_name(s) for s in OrderStatus] + [EXPIRED])
            errors["status"] = [f"The status parameter must be 0..7 or one of {choices}."]
    for name in ("from", "to"):
        raw = value(name)
        if raw is not None:
            query[name] = _query_moment(raw, end_of_day=name == "to")
            if query[name] is None:
                errors[name] = [f"The {name} parameter must be an ISO 8601 date or date and time."]
    if query["from"] and query["to"] and query["from"] > query["to"]:
        errors["to"] = ["The to parameter must not be before from."]
    order_by = (value("orderBy") or "createdOn").lower()
    if order_by not in ORDER_BY:
        errors["orderBy"] = ["The orderBy parameter must be createdOn or amount."]
    query["orderBy"] = ORDER_BY.get(order_by, "createdOn")
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

    known = {
        "step_seconds",
        "capture_window_seconds",
        "webhook_url",
        "webhook_key",
        "webhook_content_type",
        "webhooks",
        "errorShape",
    }
    for name in sorted(set(body) - known):
        errors[name] = "unknown setting"
    if "errorShape" in body and body["errorShape"] not in ERROR_SHAPES:
        errors["errorShape"] = f"must be one of {', '.join(ERROR_SHAPES)}"
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
