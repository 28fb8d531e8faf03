"""The FlexFactor ``POST /v1/evaluate`` contract (seed 003) as pydantic models.

Every object and field of the seed, with its rules: required, "required if this object is
provided", and the MIT rules (isMIT -> isRecurring and expiryDateUtc; a recurring MIT ->
subscription and threeDSecure). Unknown fields are kept and forwarded, never rejected.

Lenient where real clients differ and the provider accepts it (``timezoneUtcOffset`` as a
numeric string, ``isMIT`` omitted on customer-initiated calls, ``zipcode`` spelled as in
the seed's examples, lower-case codes); strict where a mistake costs money (amounts are
integer cents, never strings or floats; expiry month 1-12 and a four-digit year, which
catches the seed's own swapped month/year; a transaction that was not declined).

``validate_request`` returns the model or raises ``InvalidRequest`` naming every field
and rule at once; no error message ever echoes an input value.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from decline_rescue.domain.carddata import find_pans, is_pan
from decline_rescue.domain.data.iso import COUNTRIES, CURRENCIES, US_STATES
from decline_rescue.domain.errors import FieldProblem, InvalidRequest

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
OptText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024)] | None
Cents = Annotated[StrictInt, Field(gt=0, le=10**12)]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_US_ZIP = re.compile(r"^\d{5}(?:-?\d{4})?$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
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
    """Every object of the contract: unknown fields are kept and forwarded."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class Transaction(Part):
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
    paymentNumber: StrictInt | OptText = None
    totalPayments: StrictInt | OptText = None


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
    amount: StrictInt | None = None
    discountAmount: StrictInt | None = None
    tax: StrictInt | None = None
    discountType: OptText = None
    quantity: StrictInt | OptText = None


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
    sequenceNumber: StrictInt | OptText = None
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
    orderItems: list[OrderItem] | None = None
    additionalFields: list[AdditionalField] | None = None

    @field_validator("isDeclined")
    @classmethod
    def _is_declined(cls, value: bool) -> bool:
        if value is not True:
            raise PydanticCustomError("not_declined", "must be true: only declined transactions are evaluated")
        return value

    @field_validator("orderId")
    @classmethod
    def _order_id(cls, value: str) -> str:
        if not _ORDER_ID.match(value):
            raise PydanticCustomError("format", "must be 1-128 letters, digits or . _ : - (starting alphanumeric)")
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
        """The body sent to FlexFactor: what the caller sent, normalised, extras kept."""
        body = self.model_dump(mode="json", exclude_none=True)
        body["isMIT"] = self.is_mit
        return body

    def fingerprint(self) -> str:
        """A hash of the request for idempotency: same key + other payload is refused.
        The card number and CVV are left out (never hashed, never stored)."""
        body = self.to_provider()
        body["paymentMethod"].pop("cardNumber", None)
        body["paymentMethod"].pop("verificationValue", None)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

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
        problems.append(FieldProblem(_where(loc), rule, "is required" if rule == "missing" else message))
    return problems


def card_guard(raw: Any, *, allow_card_numbers: bool) -> list[FieldProblem]:
    """The card-number guard, on the raw body (it holds even when other fields are bad):
    a card number in ``paymentMethod.cardNumber`` or in any other field, or a CVV."""
    if allow_card_numbers or not isinstance(raw, dict):
        return []
    problems = [
        FieldProblem(path, "card_number_not_allowed", "holds what looks like a card number: never send one here")
        for path in pan_paths(raw)
        if path != "paymentMethod.cardNumber"
    ]
    pm = raw.get("paymentMethod")
    if not isinstance(pm, dict):
        return problems
    number = pm.get("cardNumber")
    if isinstance(number, (str, int)) and not isinstance(number, bool) and is_pan(str(number)):
        problems.append(
            FieldProblem(
                "paymentMethod.cardNumber",
                "card_number_not_allowed",
                "looks like a card number: this stack accepts tokens only (send the token with token: true)",
            )
        )
    elif pm.get("token") is False:
        problems.append(
            FieldProblem(
                "paymentMethod.token",
                "token_required",
                "must be true: this stack accepts tokens only, not card numbers",
            )
        )
    if pm.get("verificationValue") not in (None, ""):
        problems.append(
            FieldProblem(
                "paymentMethod.verificationValue",
                "cvv_not_allowed",
                "a CVV is accepted only when the stack is deployed with card numbers allowed",
            )
        )
    return problems


# Identifiers that may legitimately be long digit runs (a Visa transaction id has 15
# digits and passes the Luhn check one time in ten): never mistaken for card numbers.
IDENTIFIER_FIELDS = frozenset(
    {
        "orderId",
        "idempotencyKey",
        "senseKey",
        "siteId",
        "mid",
        "sequenceNumber",
        "transaction.id",
        "payer.id",
        "merchant.id",
        "affiliate.id",
        "subscription.subscriptionId",
        "subscription.schemeTransactionId",
        "threeDSecure.directoryServerTransactionId",
        "threeDSecure.xid",
        "threeDSecure.authenticationValue",
        "paymentMethod.cardFingerprint",
        "paymentMethod.cardNumber",
    }
)


def pan_paths(value: Any, path: str = "") -> list[str]:
    """Where in a body something looks like a card number: any key, and any value but
    the identifier fields (``orderItems[].sku`` included)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and find_pans(key):
                found.append(f"{path}.[key]" if path else "[key]")
            elif child not in IDENTIFIER_FIELDS and not child.endswith(".sku"):
                found += pan_paths(item, child)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += pan_paths(item, f"{path}[{i}]")
    elif isinstance(value, (str, int)) and not isinstance(value, bool) and find_pans(str(value)):
        found.append(path or "body")
    return found


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
    if allow_card_numbers and is_pan(pm.cardNumber):
        digits = re.sub(r"[ .\-]", "", pm.cardNumber)
        if digits[:6] != pm.cardBinNumber or digits[-4:] != pm.cardLast4Digits:
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
    guard = card_guard(raw, allow_card_numbers=allow_card_numbers)
    try:
        request = EvaluateRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(guard + [p for p in _problems(exc) if p.field not in {g.field for g in guard}]) from None
    problems = guard + conditional_rules(request, now=now, allow_card_numbers=allow_card_numbers)
    if problems:
        raise InvalidRequest(problems)
    return request
