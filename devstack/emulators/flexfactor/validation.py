"""Request checks, answering every problem at once: an ``/evaluate`` body (seed 003,
keyed like ASP.NET model state), the ``GET /v1/orders`` query and a ``POST
/__emulator/config`` body. They say what is wrong; the endpoints answer it.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request

from devstack.emulators.flexfactor.orders import EXPIRED, STATUS_NAMES, OrderStatus

AMOUNT_ABOVE = 10  # sandbox: amount must be > 10 cents ...
AMOUNT_BELOW = 20000  # ... and < 20000 cents
CARD_TYPES = ("CREDIT", "DEBIT", "PREPAID")
TRANSACTION_TYPES = ("AUTHORIZATION", "PURCHASE")
ORDER_SOURCES = ("ECOMMERCE", "TERMINAL", "VTERMINAL")

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100

_INT_STRING = re.compile(r"[+-]?\d+")
_LETTERS = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}
_DIGITS = {4: re.compile(r"\d{4}"), 6: re.compile(r"\d{6}")}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_MISSING = object()


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
