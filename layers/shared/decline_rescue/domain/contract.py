"""The FlexFactor ``POST /v1/evaluate`` contract (seed 003) as pydantic models.

**The sandbox is the truth, the seed is advice.** Every object and field of the seed is
here, but a field the seed calls "required" that FlexFactor's sandbox accepts missing
(PROVIDERS.md, "What real FlexFactor traffic shows"; the recorded exchanges under
``tests/fixtures/real/``) is accepted, forwarded as sent, and named in the answer's
``warnings`` (``advisories``: field, rule, message), so a merchant can improve its data
without being turned away:

- refused (400), as the sandbox refuses: a missing ``orderId``, ``isDeclined``,
  ``idempotencyKey``, ``transaction.id``, ``.responseCode``, ``.avsResultCode``,
  ``.cvvResultCode``, ``.cavvResultCode`` or ``.responseCodeSource`` (``""`` is missing);
  ``expiryDateUtc: ""`` (the sandbox: "The field ExpiryDateUtc is
  invalid"); and what costs money or breaks a rule of ours: ``isDeclined`` not true,
  amounts that are not integer minor units or exceed ``max_amount`` (the currency's ISO
  4217 exponent: JPY 0, USD 2, KWD 3), an unknown currency, expiry month 13 or a year that
  is not four digits, a BIN or last four that is not digits, an MIT ``expiryDateUtc`` in
  the past, card data (below). We also need ``transaction.amount``/``currency`` and
  ``paymentMethod.cardNumber`` (the token) to do our job;
- warned (``seed_required``): ``transaction.timestampUtc``, ``timezoneUtcOffset``,
  ``cardNotPresent``, ``payer`` and its
  ``email``, ``billingInformation`` and its fields, every ``paymentMethod`` field but the
  token (real clients send ``{Token: true, cardNumber: <token>}`` alone), the fields of the
  optional objects, ``isMIT`` (absent: customer-initiated), ``isRecurring`` and
  ``expiryDateUtc`` on an MIT, ``subscription``/``threeDSecure`` on a recurring MIT,
  ``customerIp`` on a CIT; and as formats: a non-UUID ``idempotencyKey`` (the seed's own
  examples use short keys), ``payer.email`` that is not an address ("NA"), codes outside
  the seed's lists (``orderSource "Site1"``, ``transactionType``, ``cardType``, country
  codes), ``subscription.price`` as a string, US zip and state formats, a bad
  ``customerIp``, a BIN of other than 6 or 8 digits (the Node sample sends 5), and
  ``transaction.responseStatus`` saying "Approved" while ``isDeclined`` is true (the Node
  sample does; ``isDeclined`` decides, the warning says a double charge is at stake).
  Dates may be ISO 8601 or RFC 1123 (the Node sample's ``Date.toUTCString()``); ISO 8601
  is forwarded;
- rules that need a missing field fall back to the time of receipt and say so
  (``fallback``): the MIT same-day rule without a timestamp (``transaction.timestamp``,
  which the Ruby gateway sends, stands in for ``timestampUtc``), the retry window without
  ``expiryDateUtc`` (``PendingMaxHours`` from receipt), the expired-card rule without an
  expiry (not applied). A card without BIN and last four is identified for the reattempt
  budgets by its token's hash.

**Keys bind case-insensitively** (``canonical_keys``), as FlexFactor's ASP.NET binder
binds them: ``PaymentMethod.Token``, ``threeDSecure.EcommerceIndicator``, ``OrderId`` are
read, and forwarded in the contract's spelling; one field sent in two casings is a 400
(``duplicate_key``). Codes the seed lists are normalised (``us`` -> ``US``); others are
forwarded as sent.

**What is forwarded: the contract's fields and the vetted extras, nothing else.** What
goes to FlexFactor, onto the declines queue and into the idempotency fingerprint is
``to_provider()``: the seed's fields, as validated, plus ``VETTED_EXTRAS``:

- ``transaction.merchantAdviceCode``: Mastercard's merchant advice code, which eligibility
  reads (rule ``mastercard_advice``); 1-4 letters or digits, or an integer 0-99.
- ``transaction.timestamp``: the Ruby gateway's name for the declined attempt's time (an
  ISO 8601 date-time), read when ``timestampUtc`` is missing.

Real clients' own root fields ``source`` and ``extraData`` (the gateway's ``Source``,
``ExtraData``: strings) are fields of the model and forwarded. Any other field a caller
sends is **dropped**, not refused: this is FlexFactor's own request, whose clients send
fields of their own, and a field we do not know is one we must not pass on, store or queue. Dropped fields are
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
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import (
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
from decline_rescue.domain.data.iso import COUNTRIES, CURRENCIES, US_STATES, exponent
from decline_rescue.domain.errors import FieldProblem, InvalidRequest
from decline_rescue.domain.strict_json import MAX_DEPTH, ORDER_ID, ORDER_ID_RULE, check_depth, child

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
OptText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024)] | None
Cents = Annotated[StrictInt, Field(gt=0, le=10**14)]  # and at most max_amount(currency)
ItemCents = Annotated[StrictInt, Field(ge=-(10**12), le=10**12)]  # an item's amount, discount or tax
Count = Annotated[StrictInt, Field(ge=-(10**9), le=10**9)]  # quantities, payment and sequence numbers
MAX_MAJOR_UNITS = 10**10  # ten billion of any currency: an amount above is a unit mistake
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


def _soft_code(allowed: frozenset[str], *, lower: bool = False):
    """A code the seed lists: normalised when it is one (``us`` -> ``US``), forwarded as
    sent when not (a warning names it: the sandbox accepts any string)."""

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            code = value.strip().lower() if lower else value.strip().upper()
            return code if code in allowed else value
        return value

    return BeforeValidator(normalise)


_ORDER_SOURCES = frozenset({"ecommerce", "terminal", "vterminal"})
_TRANSACTION_TYPES = frozenset({"AUTHORIZATION", "PURCHASE"})
_CARD_TYPES = frozenset({"CREDIT", "DEBIT", "PREPAID"})
SoftCountry = Annotated[OptText, _soft_code(COUNTRIES)]


def max_amount(currency: str) -> int:
    """The largest amount in a currency's minor units (its ISO 4217 exponent: JPY 0, USD 2,
    KWD 3): ``MAX_MAJOR_UNITS`` major units."""
    return MAX_MAJOR_UNITS * 10 ** exponent(currency)


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


def _rfc1123(value: Any) -> Any:
    """A date-time as JavaScript's ``Date.toUTCString()`` writes it (RFC 1123: FlexCharge's
    Node sample sends ``expiryDateUtc`` so) is read; ISO 8601 is what is forwarded."""
    if isinstance(value, str) and _RFC1123.match(value.strip()):
        try:
            return parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return value
    return value


_RFC1123 = re.compile(r"^[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} (GMT|UTC|[+-]\d{4})$")
Moment = Annotated[datetime, BeforeValidator(_rfc1123)]


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
    _warnings: tuple[FieldProblem, ...] = PrivateAttr(default=())
    # Fields seed 003 calls required that the sandbox accepts missing (PROVIDERS.md, "What
    # real FlexFactor traffic shows"): optional here, a warning when absent.
    SEED_REQUIRED: ClassVar[tuple[str, ...]] = ()
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


def _timestamp(value: Any) -> Any:
    """transaction.timestamp (vetted extra): what a real client (the Ruby gateway) sends
    in place of timestampUtc; a date-time, forwarded as sent."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = _rfc1123(value)
            as_utc(
                parsed if isinstance(parsed, datetime) else datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            )
            return value.strip()
        except (ValueError, PydanticCustomError):
            pass
    raise PydanticCustomError(
        "datetime", "must be an ISO 8601 date-time (the declined attempt's time)", {"extra_field": "timestamp"}
    )


# Fields outside the contract that are forwarded (see the module docstring).
VETTED_EXTRAS = {"transaction.merchantAdviceCode": _advice_code, "transaction.timestamp": _timestamp}


class Transaction(Part):
    VETTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"merchantAdviceCode": _advice_code, "timestamp": _timestamp}
    # (the sandbox refuses a missing cavvResultCode and an empty responseCodeSource)
    SEED_REQUIRED = ("timestampUtc", "timezoneUtcOffset", "cardNotPresent")

    id: Text
    dynamicDescriptor: OptText = None
    timestampUtc: Moment | None = None
    timezoneUtcOffset: Offset | None = None
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
    cardNotPresent: StrictBool | None = None

    @field_validator("timestampUtc")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    def declined_at(self) -> datetime | None:
        """When the declined attempt happened: ``timestampUtc``, else the ``timestamp`` a
        real client sends in its place, else unknown (None)."""
        if self.timestampUtc is not None:
            return self.timestampUtc
        stamp = (self.model_extra or {}).get("timestamp")
        if not stamp:
            return None
        parsed = _rfc1123(stamp)
        return as_utc(parsed if isinstance(parsed, datetime) else datetime.fromisoformat(stamp.replace("Z", "+00:00")))


class Payer(Part):
    SEED_REQUIRED = ("email",)

    email: OptText = None
    phone: OptText = None
    id: OptText = None
    birthdate: date | datetime | None = None


class Affiliate(Part):
    id: OptText = None
    name: OptText = None


class Address(Part):
    SEED_REQUIRED = ("firstName", "lastName", "country", "countryCode", "addressLine1", "city", "zipCode")

    firstName: OptText = None
    lastName: OptText = None
    phone: OptText = None
    country: OptText = None
    countryCode: SoftCountry = None
    addressLine1: OptText = None
    addressLine2: OptText = None
    state: OptText = None
    city: OptText = None
    zipCode: OptText = None


class BillingInformation(Address):
    pass


class ShippingInformation(Address):
    pass


class PaymentMethod(Part):
    SEED_REQUIRED = (
        "holderName",
        "cardType",
        "cardBrand",
        "cardCountry",
        "expirationMonth",
        "expirationYear",
        "cardBinNumber",
        "cardLast4Digits",
    )

    holderName: OptText = None
    cardType: Annotated[OptText, _soft_code(_CARD_TYPES)] = None
    cardBrand: OptText = None
    cardCountry: SoftCountry = None
    cardIssuer: OptText = None
    cardLevel: OptText = None
    cardFingerprint: OptText = None
    expirationMonth: Annotated[int, BeforeValidator(_int_not_bool)] | None = None
    expirationYear: Annotated[int, BeforeValidator(_int_not_bool)] | None = None
    # 6 digits, or 8 (the eight-digit BINs issued since 2022; real answers carry them);
    # FlexCharge's own Node sample sends 5: 4-8 digits are accepted, a warning says so
    cardBinNumber: Annotated[str, StringConstraints(pattern=r"^\d{4,8}$")] | None = None
    cardLast4Digits: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] | None = None
    cardNumber: Text
    verificationValue: OptText = None
    token: StrictBool | None = None

    @field_validator("expirationMonth")
    @classmethod
    def _month(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 12:
            hint = " (month and year swapped?)" if value >= 1000 else ""
            raise PydanticCustomError("month", f"must be a month, 1-12{hint}")
        return value

    @field_validator("expirationYear")
    @classmethod
    def _year(cls, value: int | None) -> int | None:
        if value is not None and not 2000 <= value <= 2099:
            hint = " (month and year swapped?)" if 1 <= value <= 12 else ""
            raise PydanticCustomError("year", f"must be a four-digit year{hint}")
        return value

    @property
    def brand(self) -> str:
        return (self.cardBrand or "").strip().upper()

    def expiry(self) -> tuple[int, int] | None:
        """(year, month), or None when either is missing."""
        if self.expirationYear is None or self.expirationMonth is None:
            return None
        return self.expirationYear, self.expirationMonth


class DeviceDetails(Part):
    SEED_REQUIRED = ("deviceType", "deviceName", "deviceOS", "browser", "userAgent")

    deviceType: OptText = None
    deviceName: OptText = None
    deviceOS: OptText = None
    browser: OptText = None
    userAgent: OptText = None


class Merchant(Part):
    SEED_REQUIRED = ("id", "mcc", "country")

    id: OptText = None
    name: OptText = None
    mcc: Annotated[StrictInt, Field(ge=0, le=9999)] | None = None
    country: SoftCountry = None


def _price(value: Any) -> Any:
    """subscription.price: integer cents; FlexCharge's generated models type it as a
    string, so a string of digits is accepted (a warning says so) and forwarded as sent."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,13}", value.strip()):
        return value.strip()
    return value


class Subscription(Part):
    SEED_REQUIRED = ("subscriptionId", "interval", "price", "currency")

    subscriptionId: OptText = None
    schemeTransactionId: OptText = None
    schemeBrand: OptText = None
    interval: OptText = None
    price: Annotated[Cents | str, BeforeValidator(_price)] | None = None
    currency: Currency | None = None
    paymentNumber: Count | OptText = None
    totalPayments: Count | OptText = None

    @field_validator("price")
    @classmethod
    def _price_digits(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and (not value.isdigit() or int(value) == 0):
            raise PydanticCustomError("int_type", "must be a positive integer number of cents")
        return value


class ThreeDSecure(Part):
    SEED_REQUIRED = ("ecommerceIndicator", "authenticationValue", "directoryServerTransactionId")

    threeDsVersion: OptText = None
    ecommerceIndicator: OptText = None
    authenticationValue: OptText = None
    directoryServerTransactionId: OptText = None
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


IdempotencyKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]


class EvaluateRequest(Part):
    SEED_REQUIRED = ("payer", "billingInformation")

    isDeclined: StrictBool
    transactionType: Annotated[OptText, _soft_code(_TRANSACTION_TYPES)] = None
    mid: OptText = None
    orderId: Text
    siteId: OptText = None  # filled from the FlexFactor secret when absent (declines.parse)
    customerIp: OptText = None
    siteUrl: OptText = None
    orderSource: Annotated[OptText, _soft_code(_ORDER_SOURCES, lower=True)] = None
    idempotencyKey: IdempotencyKey
    # real clients' own fields (the Ruby gateway sends Source and ExtraData): forwarded
    source: OptText = None
    extraData: OptText = None
    sequenceNumber: Count | OptText = None
    isMIT: StrictBool | None = None
    isRecurring: StrictBool | None = None
    expiryDateUtc: Moment | None = None
    senseKey: OptText = None
    transaction: Transaction
    payer: Payer | None = None
    billingInformation: BillingInformation | None = None
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
        """The key as we index it: a UUID in its canonical (lower-case) form, any other
        key as sent (short non-UUID keys are the seed's own examples)."""
        try:
            return str(uuid.UUID(self.idempotencyKey))
        except ValueError:
            return self.idempotencyKey

    @property
    def warnings(self) -> list[FieldProblem]:
        """What the seed would have wanted and the sandbox does not enforce (set by
        ``validate_request``): field and rule, for the answer."""
        return list(self._warnings)

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
        body["idempotencyKey"] = self.idempotency_key  # as indexed: another casing of a UUID is the same key
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
        empty = error["type"] == "string_too_short" and (error.get("ctx") or {}).get("min_length") == 1
        rule = "missing" if error["type"] == "missing" or empty else error["type"]
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
    """What is really wrong and depends on more than one field (refused, 400)."""
    problems: list[FieldProblem] = []
    transaction = request.transaction
    top = max_amount(transaction.currency)
    if transaction.amount > top:
        problems.append(
            FieldProblem(
                "transaction.amount",
                "less_than_equal",
                f"must be at most {top} ({transaction.currency} minor units: ISO 4217 exponent "
                f"{exponent(transaction.currency)})",
            )
        )
    if request.is_mit and request.expiryDateUtc is not None and request.expiryDateUtc <= now:
        message = "must be in the future: FlexFactor retries until then"
        problems.append(FieldProblem("expiryDateUtc", "in_past", message))
    pm = request.paymentMethod
    digits = card_digits(pm.cardNumber) if allow_card_numbers else None
    if digits and (
        (pm.cardBinNumber and not digits.startswith(pm.cardBinNumber))
        or (pm.cardLast4Digits and digits[-4:] != pm.cardLast4Digits)
    ):
        problems.append(
            FieldProblem(
                "paymentMethod.cardBinNumber",
                "card_mismatch",
                "cardBinNumber and cardLast4Digits must match the card number",
            )
        )
    return problems


# -- warnings: what the seed wants and the sandbox does not enforce ----------------------

SEED_RULE = "seed_required"
_SEED_MESSAGE = "is required by FlexFactor's specification (seed 003); the sandbox accepts it missing: send it"


def _seed_required(model: Part, path: str) -> Iterator[FieldProblem]:
    """A warning for every seed-required field missing from every object present."""
    stack: list[tuple[str, Part]] = [(path, model)]
    while stack:
        where, part = stack.pop()
        for name in part.SEED_REQUIRED:
            if getattr(part, name) is None:
                yield FieldProblem(child(where, name), SEED_RULE, _SEED_MESSAGE)
        for name in reversed(type(part).model_fields):
            value = getattr(part, name)
            if isinstance(value, Part):
                stack.append((child(where, name), value))


def advisories(request: EvaluateRequest, *, now: datetime) -> list[FieldProblem]:
    """Warnings for the answer: each names a field and a rule; nothing here refuses."""
    warnings = sorted(_seed_required(request, "body"), key=lambda w: w.field)

    def warn(field: str, rule: str, message: str) -> None:
        warnings.append(FieldProblem(field, rule, message))

    try:
        uuid.UUID(request.idempotencyKey)
    except ValueError:
        warn("idempotencyKey", "uuid", "should be a UUID (seed 003); accepted as sent")
    if not request.siteId and not request.siteUrl:
        warn("siteId", SEED_RULE, "(or siteUrl) names the merchant's site: send it, or set siteId in the secret")
    if request.isMIT is None:
        warn("isMIT", SEED_RULE, "is missing: the decline is taken as customer-initiated, as FlexFactor takes it")
    if request.transactionType is not None and request.transactionType.upper() not in _TRANSACTION_TYPES:
        warn("transactionType", "enum", "should be AUTHORIZATION or PURCHASE; forwarded as sent")
    if request.orderSource is not None and request.orderSource.lower() not in _ORDER_SOURCES:
        warn("orderSource", "enum", "should be ecommerce, terminal or vterminal; forwarded as sent")

    transaction = request.transaction
    if transaction.responseStatus and transaction.responseStatus.strip().upper() in DECLINED_STATUS_WORDS:
        warn(
            "transaction.responseStatus",
            "not_declined",
            "says the transaction was approved while isDeclined is true: check your mapping "
            "(a payment that went through and is rescued again is charged twice)",
        )
    declined_at = transaction.declined_at()
    if transaction.timestampUtc is None and declined_at is not None:
        warn("transaction.timestampUtc", "fallback", "is missing: transaction.timestamp is used in its place")
    elif declined_at is None and request.is_mit:
        warn(
            "transaction.timestampUtc",
            "fallback",
            "is missing: the same-day rule for merchant-initiated declines counts from the time of receipt",
        )
    if declined_at is not None and declined_at > now + timedelta(minutes=5):
        warn("transaction.timestampUtc", "in_future", "is in the future: the time of receipt is used instead")

    payer = request.payer
    if payer is not None and payer.email is not None and not _EMAIL.match(payer.email):
        warn("payer.email", "email", "is not an email address; forwarded as sent")

    if request.is_mit:
        if request.isRecurring is None:
            warn("isRecurring", SEED_RULE, "is required for merchant-initiated transactions (isMIT) by the seed")
        if request.expiryDateUtc is None:
            warn(
                "expiryDateUtc",
                "fallback",
                "is missing: the order's retry window is counted from the time of receipt "
                "(PendingMaxHours, then the order is closed EXPIRED)",
            )
        if request.isRecurring:
            for name in ("subscription", "threeDSecure"):
                if getattr(request, name) is None:
                    warn(name, SEED_RULE, "is required for recurring merchant-initiated transactions by the seed")
    elif not request.customerIp:
        warn("customerIp", SEED_RULE, "is required for customer-initiated transactions by the seed")
    if request.customerIp:
        try:
            ipaddress.ip_address(request.customerIp)
        except ValueError:
            warn("customerIp", "ip_address", "is not an IPv4 or IPv6 address; forwarded as sent")

    pm = request.paymentMethod
    if pm.cardType is not None and pm.cardType.upper() not in _CARD_TYPES:
        warn("paymentMethod.cardType", "enum", "should be CREDIT, DEBIT or PREPAID; forwarded as sent")
    if not pm.cardFingerprint and not (pm.cardBinNumber and pm.cardLast4Digits) and not find_pans(pm.cardNumber):
        warn(
            "paymentMethod.cardFingerprint",
            "fallback",
            "missing, with no BIN and last four: the card's reattempt budget counts only what comes with this "
            "token; send cardFingerprint (or BIN and last four) so every reattempt of the card counts",
        )
    if pm.cardBinNumber is not None and len(pm.cardBinNumber) not in (6, 8):
        warn("paymentMethod.cardBinNumber", "bin_length", "should be the card's first 6 or 8 digits")
    if pm.expiry() is None:
        missing = "paymentMethod.expirationMonth" if pm.expirationMonth is None else "paymentMethod.expirationYear"
        warn(missing, "fallback", "card expiry unknown: the expired-card rule is not applied")
    countries = [("paymentMethod.cardCountry", pm.cardCountry)]
    if request.merchant is not None:
        countries.append(("merchant.country", request.merchant.country))
    billing = request.billingInformation
    for name, address in (("billingInformation", billing), ("shippingInformation", request.shippingInformation)):
        if address is None:
            continue
        countries.append((f"{name}.countryCode", address.countryCode))
        if (address.countryCode or "").upper() == "US":
            if address.zipCode and not _US_ZIP.match(address.zipCode):
                warn(f"{name}.zipCode", "zip_code", "should be 5 or 9 digits for the US")
            if address.state and address.state.upper() not in US_STATES:
                warn(f"{name}.state", "state", "is not a US state code (INCITS 38)")
    for field, code in countries:
        if code is not None and code.upper() not in COUNTRIES:
            warn(field, "country_code", "is not an ISO 3166-1 alpha-2 country code; forwarded as sent")
    if (pm.cardCountry or "").upper() == "US" and billing is not None and not billing.state:
        warn("billingInformation.state", SEED_RULE, "is required for US cards by the seed")
    if request.subscription is not None and isinstance(request.subscription.price, str):
        warn("subscription.price", "type", "should be an integer number of cents, not a string; forwarded as sent")
    return warnings


# -- keys bind case-insensitively, as ASP.NET binds them ------------------------------


def _nested_part(annotation: Any) -> tuple[type[Part] | None, bool]:
    """The contract object a field holds (and whether in a list), from its annotation."""
    stack, is_list = [annotation], False
    while stack:
        tp = stack.pop()
        if isinstance(tp, type) and issubclass(tp, Part):
            return tp, is_list
        origin = get_origin(tp)
        if origin is list:
            is_list = True
        stack.extend(get_args(tp))
    return None, False


_BINDINGS: dict[type[Part], dict[str, tuple[str, type[Part] | None, bool]]] = {}


def _binding(model: type[Part]) -> dict[str, tuple[str, type[Part] | None, bool]]:
    """lower-case name -> (the contract's spelling, the object it holds, is a list)."""
    known = _BINDINGS.get(model)
    if known is None:
        known = {}
        for name, info in model.model_fields.items():
            nested, is_list = _nested_part(info.annotation)
            known[name.lower()] = (name, nested, is_list)
        for name in model.VETTED:
            known[name.lower()] = (name, None, False)
        _BINDINGS[model] = known
    return known


def canonical_keys(raw: Any, model: type[Part] | None = None, path: str = "body") -> tuple[Any, list[FieldProblem]]:
    """``raw`` with every known key in the contract's spelling, whatever its case
    (``PaymentMethod.Token`` -> ``paymentMethod.token``), as FlexFactor's ASP.NET binder
    reads it; a field sent twice in two casings is a 400 (which one would win is the
    binder's secret). Unknown keys stay as sent (they are dropped later)."""
    model = model or EvaluateRequest
    problems: list[FieldProblem] = []
    if not isinstance(raw, dict):
        return raw, problems
    table = _binding(model)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        bound = table.get(key.lower()) if isinstance(key, str) else None
        if bound is None:
            out[key] = value
            continue
        name, nested, is_list = bound
        if name in out:
            problems.append(FieldProblem(child(path, name), "duplicate_key", "is sent twice, in two casings"))
            continue
        where = child(path, name)
        if nested is not None and is_list and isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                fixed, found = canonical_keys(item, nested, child(where, i))
                items.append(fixed)
                problems += found
            value = items
        elif nested is not None and isinstance(value, dict):
            value, found = canonical_keys(value, nested, where)
            problems += found
        out[name] = value
    return out, problems


def validate_request(raw: Any, *, allow_card_numbers: bool = False, now: datetime | None = None) -> EvaluateRequest:
    """The validated request (its ``warnings`` set), or ``InvalidRequest`` naming every
    field and rule that is really wrong."""
    now = now or datetime.now(UTC)
    if not isinstance(raw, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    deep = check_depth(raw, MAX_DEPTH)
    if deep is not None:
        raise InvalidRequest([deep])
    raw, duplicates = canonical_keys(raw)
    guard = duplicates + card_guard(raw, allow_card_numbers=allow_card_numbers)
    try:
        request = EvaluateRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(guard + [p for p in _problems(exc) if p.field not in {g.field for g in guard}]) from None
    except RecursionError:  # (cannot happen within MAX_DEPTH: a 400 all the same, never a 500)
        raise InvalidRequest(guard or [FieldProblem("body", "too_deep", "nests too deeply")]) from None
    problems = guard + conditional_rules(request, now=now, allow_card_numbers=allow_card_numbers)
    if problems:
        raise InvalidRequest(problems)
    request._warnings = tuple(advisories(request, now=now))
    return request
