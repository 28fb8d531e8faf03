"""The FlexFactor ``POST /v1/evaluate`` contract (seed 003) as pydantic models.

Every object and field of the seed, with its rules: required, "required if this object is
provided", and the MIT rules (isMIT -> isRecurring and expiryDateUtc; a recurring MIT ->
subscription and threeDSecure).

Lenient where real clients differ and the provider accepts it (``timezoneUtcOffset`` as a
numeric string, ``isMIT`` omitted on customer-initiated calls, ``zipcode`` spelled as in
the seed's examples, lower-case codes); strict where a mistake costs money (amounts are
integer cents, never strings or floats; expiry month 1-12 and a four-digit year, which
catches the seed's own swapped month/year; a transaction that was not declined).

**What is forwarded: the contract's fields and the vetted extras, nothing else.** What
goes to FlexFactor, onto the declines queue and into the idempotency fingerprint is
``to_provider()``: the seed's fields, as validated, plus ``VETTED_EXTRAS``:

- ``transaction.merchantAdviceCode``: Mastercard's merchant advice code, which eligibility
  reads (rule ``mastercard_advice``); 1-4 letters or digits, or an integer 0-99.

Any other field a caller sends is **dropped**, not refused: this is FlexFactor's own
request, whose clients send fields of their own (PROVIDERS.md: ``Source``, ``ExtraData``),
and a field we do not know is one we must not pass on, store or queue. Dropped fields are
named by ``EvaluateRequest.dropped_fields()`` (for a log line: names, never values). The
seed's own extension point, ``additionalFields`` (key/value strings), is forwarded.
(FlexFactor's *answers* are read the other way round: unknown fields kept, never
rejected; that is ``providers.flexfactor``.)

**Card data, refused before anything else** (``card_guard``, on the raw body, so it holds
even when other fields are bad, and whatever is dropped afterwards), 400 naming the field:

- ``card_number_not_allowed``: a card number (``carddata``: after Unicode normalisation,
  with any separators, as a string, an integer or a float) in **any** field or key, the
  identifiers included (``orderId``, ``payer.id``, ``transaction.id``,
  ``orderItems[].sku``, unknown fields); the one exception is ``paymentMethod.cardNumber``
  when the stack is deployed with ``AllowCardNumbers=true``. One narrow allowance
  (``NETWORK_TRANSACTION_ID_FIELDS``): a 15-digit Visa transaction identifier in
  ``subscription.schemeTransactionId`` (the seed's own example is one; one in ten passes
  the Luhn check) is not taken for a card number unless it could be a 15-digit one: Amex,
  Diners or JCB (``3...``) or UATP (``1...``).
- ``cvv_not_allowed``: a key that names a card security code (``carddata.names_cvv``:
  ``cvv``, ``cvvCode``, ``card_cvv``, ``securityCode``, ...) at any depth, and an
  ``additionalFields`` item whose ``key`` names one; the one exception is
  ``paymentMethod.verificationValue`` with ``AllowCardNumbers=true``. (An empty value,
  ``null`` or ``""``, is no CVV.)
- ``token_required``: ``paymentMethod.token: false`` when card numbers are not allowed.

**Bounded.** Nesting deeper than ``strict_json.MAX_DEPTH`` (32) is refused (``too_deep``)
before pydantic sees the body; strings are at most 1024 characters, ``orderItems`` at most
``MAX_ORDER_ITEMS`` and ``additionalFields`` at most ``MAX_ADDITIONAL_FIELDS`` items,
integers bounded; ``orderId`` is ``strict_json.ORDER_ID_RULE`` (1-128 letters, digits or
``. _ : -``, starting with a letter or digit).

``validate_request`` returns the model or raises ``InvalidRequest`` naming every field
and rule at once; no error message ever echoes an input value.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from decline_rescue.domain.carddata import card_digits, find_pans, is_empty, names_cvv
from decline_rescue.domain.data.iso import COUNTRIES, CURRENCIES, US_STATES
from decline_rescue.domain.errors import FieldProblem, InvalidRequest
from decline_rescue.domain.strict_json import MAX_DEPTH, ORDER_ID, ORDER_ID_RULE, check_depth, child

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
OptText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024)] | None
Cents = Annotated[StrictInt, Field(gt=0, le=10**12)]
ItemCents = Annotated[StrictInt, Field(ge=-(10**12), le=10**12)]  # an item's amount, discount or tax
Count = Annotated[StrictInt, Field(ge=-(10**9), le=10**9)]  # quantities, payment and sequence numbers
MAX_ORDER_ITEMS = 100
MAX_ADDITIONAL_FIELDS = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_US_ZIP = re.compile(r"^\d{5}(?:-?\d{4})?$")
DECLINED_STATUS_WORDS = frozenset({"APPROVED", "APPROVAL", "SUCCESS", "CAPTURED", "SETTLED", "AUTHORIZED", "PAID"})


def _code(allowed: frozenset[str], what: str):
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError("type", f"must be a string ({what})")
        code = value.strip().upper()
        if code not in allowed:
            raise PydanticCustomError("code", f"is not an {what}")
        return code

    return BeforeValidator(check)


Currency = Annotated[str, _code(CURRENCIES, "ISO 4217 currency code")]
Country = Annotated[str, _code(COUNTRIES, "ISO 3166-1 alpha-2 country code")]


def _offset(value: Any) -> Any:
    """timezoneUtcOffset: an integer; a numeric string such as "-5" is accepted too."""
    if isinstance(value, bool):
        raise PydanticCustomError("type", "must be an integer")
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,4}", value.strip()):
        return int(value.strip())
    return value


def _int_not_bool(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise PydanticCustomError("type", "must be an integer")
    return value


Offset = Annotated[int, BeforeValidator(_offset), Field(ge=-840, le=840)]


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC (naive ones are taken as UTC); 400, not a crash, at the edges of time."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PydanticCustomError("datetime_range", "is outside the representable range in UTC") from None


class Part(BaseModel):
    """Every object of the contract: its fields, plus the extras vetted for it (``VETTED``:
    name -> check, which returns the value kept or raises); any other field is dropped
    and its name kept in ``_dropped``."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    VETTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    _dropped: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _only_vetted_extras(self) -> Part:
        extra = self.__pydantic_extra__
        if extra:
            kept = {name: self.VETTED[name](value) for name, value in extra.items() if name in self.VETTED}
            self._dropped = tuple(name for name in extra if name not in self.VETTED)
            object.__setattr__(self, "__pydantic_extra__", kept)
        return self


def _advice_code(value: Any) -> Any:
    """transaction.merchantAdviceCode (vetted extra): Mastercard's MAC, "01"-"99" or 1-99."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return value
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9]{1,4}", value.strip()):
        return value.strip()
    raise PydanticCustomError(
        "advice_code",
        "must be a merchant advice code: 1-4 letters or digits, or an integer 0-99",
        {"extra_field": "merchantAdviceCode"},
    )


# Fields outside the contract that are forwarded (see the module docstring).
VETTED_EXTRAS = {"transaction.merchantAdviceCode": _advice_code}


class Transaction(Part):
    VETTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"merchantAdviceCode": _advice_code}

    id: Text
    dynamicDescriptor: OptText = None
    timestampUtc: datetime
    timezoneUtcOffset: Offset
    transactionType: OptText = None
    amount: Cents
    currency: Currency
    responseCode: Text
    responseDescription: OptText = None
    responseStatus: OptText = None
    responseSubStatus: OptText = None
    responseCodeSource: Text
    processorName: OptText = None
    avsResultCode: Text
    cvvResultCode: Text
    cavvResultCode: Text
    cardNotPresent: StrictBool

    @field_validator("timestampUtc")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("responseStatus")
    @classmethod
    def _declined(cls, value: str | None) -> str | None:
        if value and value.strip().upper() in DECLINED_STATUS_WORDS:
            raise PydanticCustomError(
                "not_declined", "says the transaction was not declined: only declines are rescued"
            )
        return value


class Payer(Part):
    email: Text
    phone: OptText = None
    id: OptText = None
    birthdate: date | datetime | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise PydanticCustomError("email", "is not an email address")
        return value


class Affiliate(Part):
    id: OptText = None
    name: OptText = None


class Address(Part):
    firstName: Text
    lastName: Text
    phone: OptText = None
    country: Text
    countryCode: Country
    addressLine1: Text
    addressLine2: OptText = None
    state: OptText = None
    city: Text
    zipCode: Text = Field(validation_alias=AliasChoices("zipCode", "zipcode", "ZipCode"))


class BillingInformation(Address):
    pass


class ShippingInformation(Address):
    pass


class PaymentMethod(Part):
    holderName: Text
    cardType: Annotated[str, _code(frozenset({"CREDIT", "DEBIT", "PREPAID"}), "card type: CREDIT, DEBIT or PREPAID")]
    cardBrand: Text
    cardCountry: Country
    cardIssuer: OptText = None
    cardLevel: OptText = None
    cardFingerprint: OptText = None
    expirationMonth: Annotated[int, BeforeValidator(_int_not_bool)]
    expirationYear: Annotated[int, BeforeValidator(_int_not_bool)]
    cardBinNumber: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
    cardLast4Digits: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    cardNumber: Text
    verificationValue: OptText = None
    token: StrictBool | None = None

    @field_validator("expirationMonth")
    @classmethod
    def _month(cls, value: int) -> int:
        if not 1 <= value <= 12:
            hint = " (month and year swapped?)" if value >= 1000 else ""
            raise PydanticCustomError("month", f"must be a month, 1-12{hint}")
        return value

    @field_validator("expirationYear")
    @classmethod
    def _year(cls, value: int) -> int:
        if not 2000 <= value <= 2099:
            hint = " (month and year swapped?)" if 1 <= value <= 12 else ""
            raise PydanticCustomError("year", f"must be a four-digit year{hint}")
        return value

    @property
    def brand(self) -> str:
        return self.cardBrand.strip().upper()


class DeviceDetails(Part):
    deviceType: Text
    deviceName: Text
    deviceOS: Text
    browser: Text
    userAgent: Text


class Merchant(Part):
    id: Text
    name: OptText = None
    mcc: Annotated[StrictInt, Field(ge=0, le=9999)]
    country: Country


class Subscription(Part):
    subscriptionId: Text
    schemeTransactionId: OptText = None
    schemeBrand: OptText = None
    interval: Text
    price: Cents
    currency: Currency
    paymentNumber: Count | OptText = None
    totalPayments: Count | OptText = None


class ThreeDSecure(Part):
    threeDsVersion: OptText = None
    ecommerceIndicator: Text
    authenticationValue: Text
    directoryServerTransactionId: Text
    xid: OptText = None
    authenticationValueAlgorithm: OptText = None
    directoryResponseStatus: OptText = None
    authenticationResponseStatus: OptText = None
    enrolled: OptText = None


class OrderItem(Part):
    sku: OptText = None
    name: OptText = None
    description: OptText = None
    amount: ItemCents | None = None
    discountAmount: ItemCents | None = None
    tax: ItemCents | None = None
    discountType: OptText = None
    quantity: Count | OptText = None


class AdditionalField(Part):
    key: OptText = None
    value: OptText = None


class EvaluateRequest(Part):
    isDeclined: StrictBool
    transactionType: (
        Annotated[str, _code(frozenset({"AUTHORIZATION", "PURCHASE"}), "transaction type: AUTHORIZATION or PURCHASE")]
        | None
    ) = None
    mid: OptText = None
    orderId: Text
    siteId: Text
    customerIp: OptText = None
    siteUrl: OptText = None
    orderSource: Annotated[str, BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)] | None = None
    idempotencyKey: uuid.UUID
    sequenceNumber: Count | OptText = None
    isMIT: StrictBool | None = None
    isRecurring: StrictBool | None = None
    expiryDateUtc: datetime | None = None
    senseKey: OptText = None
    transaction: Transaction
    payer: Payer
    billingInformation: BillingInformation
    paymentMethod: PaymentMethod
    shippingInformation: ShippingInformation | None = None
    deviceDetails: DeviceDetails | None = None
    merchant: Merchant | None = None
    subscription: Subscription | None = None
    threeDSecure: ThreeDSecure | None = None
    affiliate: Affiliate | None = None
    orderItems: Annotated[list[OrderItem], Field(max_length=MAX_ORDER_ITEMS)] | None = None
    additionalFields: Annotated[list[AdditionalField], Field(max_length=MAX_ADDITIONAL_FIELDS)] | None = None

    @field_validator("isDeclined")
    @classmethod
    def _is_declined(cls, value: bool) -> bool:
        if value is not True:
            raise PydanticCustomError("not_declined", "must be true: only declined transactions are evaluated")
        return value

    @field_validator("orderId")
    @classmethod
    def _order_id(cls, value: str) -> str:
        if not ORDER_ID.fullmatch(value):
            raise PydanticCustomError("format", ORDER_ID_RULE)
        return value

    @field_validator("orderSource")
    @classmethod
    def _order_source(cls, value: str | None) -> str | None:
        if value is not None and value not in ("ecommerce", "terminal", "vterminal"):
            raise PydanticCustomError("enum", "must be ecommerce, terminal or vterminal")
        return value

    @field_validator("expiryDateUtc")
    @classmethod
    def _expiry_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    # -- what the rest of the stack reads --------------------------------------------

    @property
    def is_mit(self) -> bool:
        return self.isMIT is True

    @property
    def order_id(self) -> str:
        return self.orderId

    @property
    def idempotency_key(self) -> str:
        return str(self.idempotencyKey)

    def to_provider(self) -> dict[str, Any]:
        """The body sent to FlexFactor (and queued): the contract's fields as validated,
        normalised, and the vetted extras; nothing else."""
        body = self.model_dump(mode="json", exclude_none=True)
        body["isMIT"] = self.is_mit
        return body

    def fingerprint(self) -> str:
        """A hash of the request for idempotency: same key + other payload is refused.
        A payment token counts (hashed on its own first: the same key with another card is
        another payment); a card number and a CVV never enter it (never hashed, never stored)."""
        body = self.to_provider()
        secret = body["paymentMethod"].pop("cardNumber", None)
        body["paymentMethod"].pop("verificationValue", None)
        if isinstance(secret, str) and not find_pans(secret):
            body["paymentMethod"]["tokenSha256"] = hashlib.sha256(secret.encode()).hexdigest()
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def dropped_fields(self) -> list[str]:
        """The paths of the fields the caller sent that are not forwarded (not in the
        contract, not vetted): names for a log line, never values."""
        found: list[str] = []
        stack: list[tuple[str, Part]] = [("body", self)]
        while stack:
            path, model = stack.pop()
            found += [child(path, name) for name in model._dropped]
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, Part):
                    stack.append((child(path, name), value))
                elif isinstance(value, list):
                    items = [(child(child(path, name), i), v) for i, v in enumerate(value) if isinstance(v, Part)]
                    stack.extend(items)
        return sorted(found)

    def safe_summary(self) -> dict[str, Any]:
        """What may be stored about the order: no card number, no CVV."""
        pm = self.paymentMethod
        return {
            "orderId": self.orderId,
            "idempotencyKey": self.idempotency_key,
            "amount": self.transaction.amount,
            "currency": self.transaction.currency,
            "isMIT": self.is_mit,
            "expiryDateUtc": _iso(self.expiryDateUtc),
            "responseCode": self.transaction.responseCode,
            "card": {
                "bin": pm.cardBinNumber,
                "last4": pm.cardLast4Digits,
                "brand": pm.brand,
                "expirationMonth": pm.expirationMonth,
                "expirationYear": pm.expirationYear,
            },
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


_CENTS = frozenset({"amount", "price", "discountAmount", "tax"})


# pydantic puts the union member or validator it tried into an error's location
# (``quantity.int``, ``amount.function-after[...]``): those are not fields.
_TYPE_TAG = re.compile(
    r"^(int|str|bool|float|none|bytes|date|datetime|uuid|list|dict|model|union|nullable|tagged-union|"
    r"constrained-\w+|function-\w+|lax-or-strict|json-or-python|is-instance)(\[.*\])?$"
)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _TYPE_TAG.match(str(part)):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _problems(exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        message = error["msg"]
        if error["type"] in ("int_type", "int_parsing", "int_from_float") and loc and loc[-1] in _CENTS:
            message = "must be an integer number of cents (e.g. 1999 for 19.99)"
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        rule = "missing" if error["type"] == "missing" else error["type"]
        extra = (error.get("ctx") or {}).get("extra_field")  # a vetted extra, checked by its object
        where = _where((*loc, extra) if extra else loc)
        problems.append(FieldProblem(where, rule, "is required" if rule == "missing" else message))
    return problems


_PAN_IN_FIELD = "holds what looks like a card number: never send one here"
_PAN_AS_CARD_NUMBER = "looks like a card number: this stack accepts tokens only (send the token with token: true)"
_CVV_KEY = "names a card security code (CVV): never send one"
_CVV_VERIFICATION_VALUE = "a CVV is accepted only when the stack is deployed with card numbers allowed"

# Where a 15-digit network transaction identifier belongs (Visa's TID: the seed's own
# example is 987654321234567). Such a value is not taken for a card number unless it
# could be a 15-digit one: Amex, Diners, JCB (3...) or UATP (1...).
NETWORK_TRANSACTION_ID_FIELDS = frozenset({"subscription.schemeTransactionId"})
_NETWORK_TRANSACTION_ID = re.compile(r"[024-9][0-9]{14}")
_ADDITIONAL_FIELD = re.compile(r"additionalFields\[\d+\]")


def _network_transaction_id(path: str, value: Any) -> bool:
    return (
        path in NETWORK_TRANSACTION_ID_FIELDS
        and isinstance(value, str)
        and bool(_NETWORK_TRANSACTION_ID.fullmatch(value.strip()))
    )


def _entries(raw: Any) -> Iterator[tuple[str, str, Any, Any]]:
    """(parent's path, path, key, value) for every member of every object, and (parent's
    path, path, None, item) for every array item, in document order, without recursion;
    a member whose key names a CVV is not descended into (it is refused whole)."""
    stack: list[tuple[str, str, Any, Any]] = [("", "body", None, raw)]
    while stack:
        parent, path, key, node = stack.pop()
        if parent:
            yield parent, path, key, node
        if isinstance(key, str) and names_cvv(key):
            continue
        if isinstance(node, dict):
            stack.extend((path, child(path, k), k, v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((path, child(path, i), None, v) for i, v in reversed(list(enumerate(node))))


def _holds_pan(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and bool(find_pans(value))


def card_guard(raw: Any, *, allow_card_numbers: bool) -> list[FieldProblem]:
    """The card data guard, on the raw body (it holds even when other fields are bad):
    a card number in any key or value, a key naming a CVV, ``token: false``; with card
    numbers allowed, ``paymentMethod.cardNumber`` and ``.verificationValue`` may hold them."""
    if not isinstance(raw, dict):
        return []
    problems: list[FieldProblem] = []
    for parent, path, key, value in _entries(raw):
        if isinstance(key, str) and find_pans(key):
            problems.append(FieldProblem(child(parent, "[key]"), "card_number_not_allowed", _PAN_IN_FIELD))
        if isinstance(key, str) and names_cvv(key):
            if is_empty(value) or (path == "paymentMethod.verificationValue" and allow_card_numbers):
                continue
            message = _CVV_VERIFICATION_VALUE if path == "paymentMethod.verificationValue" else _CVV_KEY
            problems.append(FieldProblem(path, "cvv_not_allowed", message))
        elif _ADDITIONAL_FIELD.fullmatch(path) and isinstance(value, dict):
            if names_cvv(value.get("key")) and not is_empty(value.get("value")):
                problems.append(FieldProblem(child(path, "value"), "cvv_not_allowed", _CVV_KEY))
        elif _holds_pan(value):
            if path == "paymentMethod.cardNumber":
                if not allow_card_numbers:
                    problems.append(FieldProblem(path, "card_number_not_allowed", _PAN_AS_CARD_NUMBER))
            elif not _network_transaction_id(path, value):
                problems.append(FieldProblem(path, "card_number_not_allowed", _PAN_IN_FIELD))
    pm = raw.get("paymentMethod")
    if (
        not allow_card_numbers
        and isinstance(pm, dict)
        and pm.get("token") is False
        and not any(p.field == "paymentMethod.cardNumber" for p in problems)
    ):
        message = "must be true: this stack accepts tokens only, not card numbers"
        problems.append(FieldProblem("paymentMethod.token", "token_required", message))
    return problems


def pan_paths(value: Any, path: str = "") -> list[str]:
    """Where in a body something looks like a card number: any key (``<object>.[key]``)
    and any value, every field included."""
    found: list[str] = []
    for parent, where, key, item in _entries(value):
        if isinstance(key, str) and find_pans(key):
            found.append(child(parent, "[key]"))
        if _holds_pan(item):
            found.append(where)
    if _holds_pan(value):
        found.append("body")
    if not path:
        return found
    return [path if p == "body" else f"{path}.{p}" for p in found]


def conditional_rules(request: EvaluateRequest, *, now: datetime, allow_card_numbers: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []

    def need(field: str, present: bool, why: str) -> None:
        if not present:
            problems.append(FieldProblem(field, "missing", f"is required {why}"))

    if request.transaction.timestampUtc > now + timedelta(minutes=5):
        problems.append(FieldProblem("transaction.timestampUtc", "in_future", "must not be in the future"))
    if request.is_mit:
        need("isRecurring", request.isRecurring is not None, "for merchant-initiated transactions (isMIT)")
        need("expiryDateUtc", request.expiryDateUtc is not None, "for merchant-initiated transactions (isMIT)")
        if request.expiryDateUtc is not None and request.expiryDateUtc <= now:
            problems.append(
                FieldProblem("expiryDateUtc", "in_past", "must be in the future: FlexFactor retries until then")
            )
        if request.isRecurring:
            need("subscription", request.subscription is not None, "for recurring merchant-initiated transactions")
            need("threeDSecure", request.threeDSecure is not None, "for recurring merchant-initiated transactions")
    else:
        need("customerIp", bool(request.customerIp), "for customer-initiated transactions")
    if request.customerIp:
        try:
            ipaddress.ip_address(request.customerIp)
        except ValueError:
            problems.append(FieldProblem("customerIp", "ip_address", "is not an IPv4 or IPv6 address"))

    billing = request.billingInformation
    if request.paymentMethod.cardCountry == "US":
        need("billingInformation.state", bool(billing.state), "for US cards")
    for name, address in (("billingInformation", billing), ("shippingInformation", request.shippingInformation)):
        if address is None:
            continue
        if address.countryCode == "US":
            if not _US_ZIP.match(address.zipCode):
                problems.append(FieldProblem(f"{name}.zipCode", "zip_code", "must be 5 or 9 digits for the US"))
            if address.state and address.state.upper() not in US_STATES:
                problems.append(FieldProblem(f"{name}.state", "state", "is not a US state code (INCITS 38)"))

    pm = request.paymentMethod
    digits = card_digits(pm.cardNumber) if allow_card_numbers else None
    if digits and (digits[:6] != pm.cardBinNumber or digits[-4:] != pm.cardLast4Digits):
        problems.append(
            FieldProblem(
                "paymentMethod.cardBinNumber",
                "card_mismatch",
                "cardBinNumber and cardLast4Digits must match the card number",
            )
        )
    return problems


def validate_request(raw: Any, *, allow_card_numbers: bool = False, now: datetime | None = None) -> EvaluateRequest:
    """The validated request, or ``InvalidRequest`` naming every field and rule."""
    now = now or datetime.now(UTC)
    if not isinstance(raw, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    deep = check_depth(raw, MAX_DEPTH)
    if deep is not None:
        raise InvalidRequest([deep])
    guard = card_guard(raw, allow_card_numbers=allow_card_numbers)
    try:
        request = EvaluateRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(guard + [p for p in _problems(exc) if p.field not in {g.field for g in guard}]) from None
    except RecursionError:  # (cannot happen within MAX_DEPTH: a 400 all the same, never a 500)
        raise InvalidRequest(guard or [FieldProblem("body", "too_deep", "nests too deeply")]) from None
    problems = guard + conditional_rules(request, now=now, allow_card_numbers=allow_card_numbers)
    if problems:
        raise InvalidRequest(problems)
    return request
