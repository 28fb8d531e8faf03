"""The merchant API's bodies as pydantic models, besides the ``/evaluate`` contract
(``domain.contract.EvaluateRequest``, the body of ``POST /declines``).

Requests the code validates with: ``CaptureRequest`` (``services.actions``) and
``RefundRequest`` (``services.refunds``), each read by its ``parse`` into the same 400
details as always (field, rule, message); ``CaptureContextRequest`` is the Flex field
selection of ``POST /capture-contexts``, built from ``capture_fields.FLEX_FIELDS``, the
list ``capture_fields.parse_selection`` checks against. The answers (``DeclineAnswer``,
``OrderView``, ``RefundAnswer``, ...) and ``ErrorAnswer`` document what the routes send.
``devstack/openapi.py`` writes ``openapi.yaml`` from all of them; a unit test fails when
the file and the models differ.

Imported by the handlers on first use only (pydantic stays out of their cold start).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from decline_rescue.domain.capture_fields import CARD_NUMBER, FLEX_FIELDS
from decline_rescue.domain.carddata import find_pans
from decline_rescue.domain.checkout import (
    CARD_NETWORKS,
    MAX_TARGET_ORIGINS,
    PAYMENT_TYPES,
    normal_origin,
    origin_problem,
)
from decline_rescue.domain.errors import FieldProblem, InvalidRequest
from decline_rescue.domain.strict_json import ORDER_ID_MAX

# strict_json.ORDER_ID, anchored (JSON Schema patterns search; ORDER_ID is full-matched)
ORDER_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{ORDER_ID_MAX - 1}}}$"
NOT_A_JSON_OBJECT = FieldProblem("body", "type", "must be a JSON object")


def _problems(exc: ValidationError, rules: dict[str, tuple[str, str]], unknown: str) -> list[FieldProblem]:
    """A model's errors as the API names them: unknown fields first (in the body's order),
    then each field's first error, as ``rules[field]`` (rule, message) says, unless the
    error is one of ours (a ``PydanticCustomError`` carries its own rule and message)."""
    extras: list[FieldProblem] = []
    fields: dict[str, FieldProblem] = {}
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "body"
        if error["type"] == "extra_forbidden":
            extras.append(FieldProblem(".".join(map(str, error["loc"])) or name, "unknown", unknown))
        elif name not in fields:
            custom = error["type"] not in _PYDANTIC_TYPES
            if error["type"] == "missing":
                fields[name] = FieldProblem(name, "missing", "is required")
                continue
            rule, message = (error["type"], error["msg"]) if custom else rules[name]
            # an item's own error names the item: targetOrigins[1]
            where = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][1:])
            fields[name] = FieldProblem(where if custom else name, rule, message)
    order = list(rules)
    return extras + sorted(fields.values(), key=lambda p: order.index(p.field) if p.field in order else len(order))


# the errors pydantic itself raises for the constraints used here (any other is ours)
_PYDANTIC_TYPES = frozenset(
    {
        "int_type",
        "int_parsing",
        "int_from_float",
        "greater_than",
        "string_type",
        "string_too_long",
        "string_too_short",
        "string_pattern_mismatch",
        "missing",
        "literal_error",
        "too_short",
        "too_long",
        "list_type",
        "bool_type",
        "model_type",
        "model_attributes_type",
        "dict_type",
    }
)


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------


class CaptureRequest(ApiModel):
    """``POST /orders/{orderId}/capture``: the body is optional; without ``amount`` the
    order's amount is captured."""

    amount: StrictInt = Field(
        default=None,
        gt=0,
        description="In the currency's minor units (its ISO 4217 exponent): above 0, at most the order's amount.",
        examples=[1500],
    )

    @field_validator("amount")
    @classmethod
    def _at_most_the_order(cls, value: int, info: ValidationInfo) -> int:
        order_amount = (info.context or {}).get("order_amount")
        if order_amount is not None and value > int(order_amount):
            raise PydanticCustomError("range", _capture_range(order_amount))
        return value

    @classmethod
    def parse(cls, body: Any, *, order_amount: Any) -> int:
        """The amount to capture (the order's when the body gives none), or
        ``InvalidRequest`` naming one field and rule."""
        if body is None:
            return int(order_amount)
        if not isinstance(body, dict):
            raise InvalidRequest([NOT_A_JSON_OBJECT])
        unknown = sorted(set(body) - set(cls.model_fields))
        if unknown:
            raise InvalidRequest([FieldProblem(unknown[0], "unknown", "is not a capture field (only amount)")])
        try:
            request = cls.model_validate(body, context={"order_amount": order_amount})
        except ValidationError as exc:
            rules = {"amount": ("type", "must be an integer amount in cents")}
            problem = _problems(exc, rules, "")[0]
            if exc.errors()[0]["type"] == "greater_than":
                problem = FieldProblem("amount", "range", _capture_range(order_amount))
            raise InvalidRequest([problem]) from None
        return int(order_amount) if request.amount is None else request.amount


def _capture_range(order_amount: Any) -> str:
    return f"must be above 0 and at most the order's amount ({order_amount})"


MAX_REFUND_REASON = 255


class RefundRequest(ApiModel):
    """``POST /orders/{orderId}/refund``: the body is optional; every field too. Without
    ``amount`` the rest is refunded; without ``idempotencyKey`` the key is derived from the
    order, the amount (or "the rest") and the reason."""

    amount: StrictInt | None = Field(
        default=None,
        gt=0,
        description="In the currency's minor units (ISO 4217 exponent: JPY 0, USD 2, KWD 3); "
        "at most what is left to refund.",
        examples=[1500],
    )
    reason: StrictStr | None = Field(
        default=None,
        max_length=MAX_REFUND_REASON,
        description="Sent to FlexFactor as the refund's message; never card data.",
        examples=["customer asked"],
    )
    idempotencyKey: StrictStr | None = Field(
        default=None,
        pattern=ORDER_ID_PATTERN,
        description="1-128 letters, digits or . _ : - (starting with a letter or digit): "
        "the same key again answers the first refund.",
        examples=["refund-2026-11-01-0001"],
    )

    @field_validator("reason")
    @classmethod
    def _no_card_number(cls, value: str | None) -> str | None:
        if value is not None and find_pans(value):
            raise PydanticCustomError("card_number_not_allowed", "holds what looks like a card number")
        return value.strip() or None if value is not None else None

    @field_validator("idempotencyKey")
    @classmethod
    def _key_is_no_card_number(cls, value: str | None) -> str | None:
        if value is not None and find_pans(value):
            raise PydanticCustomError("format", _REFUND_RULES["idempotencyKey"][1])
        return value

    @classmethod
    def parse(cls, body: Any) -> RefundRequest:
        """The request (every field ``None`` for an empty body), or ``InvalidRequest``
        naming every field and rule."""
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise InvalidRequest([NOT_A_JSON_OBJECT])
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            unknown = "is not a refund field (amount, reason, idempotencyKey)"
            raise InvalidRequest(_problems(exc, _REFUND_RULES, unknown)) from None


_REFUND_RULES = {
    "amount": ("type", "must be a positive integer in the currency's minor units (cents for USD)"),
    "reason": ("type", f"must be a string of at most {MAX_REFUND_REASON} characters"),
    "idempotencyKey": ("format", "must be 1-128 letters, digits or . _ : -"),
}


class FlexField(ApiModel):
    """One field to capture: ``{}`` (required) or ``{"required": false}`` (optional)."""

    required: StrictBool = True


class RequiredFlexField(ApiModel):
    """The card number: always selected, always required (``{}``)."""

    required: Literal[True] = True


def _selection_model(prefix: str, name: str) -> type[BaseModel]:
    """The selection tree under ``prefix``, from ``FLEX_FIELDS``: every branch an object
    of its known children (at least one), every leaf a ``FlexField``; nothing else is a
    field. The branches down to the card number require it."""
    depth = prefix.count(".")
    children = sorted({path.split(".")[depth] for path in FLEX_FIELDS if path.startswith(prefix)})
    fields: dict[str, Any] = {}
    for child in children:
        path = f"{prefix}{child}"
        on_the_way = CARD_NUMBER.startswith(f"{path}.") or path == CARD_NUMBER
        if path == CARD_NUMBER:
            kind: Any = RequiredFlexField
        elif path in FLEX_FIELDS:
            kind = FlexField
        else:
            kind = _selection_model(f"{path}.", child[:1].upper() + child[1:])
        fields[child] = (kind, ...) if on_the_way else (kind, None)  # absent, never null
    return create_model(
        f"{name}Selection",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}),
        __module__=__name__,
        **fields,
    )


FieldSelection = _selection_model("", "Field")
FieldSelection.__doc__ = (
    "The fields a capture context captures (the Flex v2 shape): a tree whose leaves are "
    '{} (required) or {"required": false} (optional), each one of the fields Flex v2 can capture; '
    "the card number must be selected, and required."
)


class WrappedFieldSelection(ApiModel):
    """The selection inside a ``fields`` wrapper (the Cybersource docs' form)."""

    integration: Literal["flex"] = Field(default=None, description="flex (the default): a Flex API v2 context.")

    fields: FieldSelection  # type: ignore[valid-type]


class DefaultSelection(ApiModel):
    """``{}``, ``{"integration": "flex"}`` (or no body at all): the configured default selection."""

    integration: Literal["flex"] = Field(default=None)


def _origin(value: str) -> str:
    problem = origin_problem(value)
    if problem is not None:
        raise PydanticCustomError(problem[0], problem[1])
    return value


Origin = Annotated[StrictStr, AfterValidator(_origin)]


class TokenResponseOptions(ApiModel):
    includeCardPrefix: StrictBool = Field(
        default=None, description="Whether the transient token carries the card's BIN (Cybersource's option)."
    )


class MicroformContextRequest(ApiModel):
    """``POST /capture-contexts`` for a web checkout: a Microform v2 capture context for
    pages on ``targetOrigins`` (each one of the stack's ``CheckoutOrigins``)."""

    integration: Literal["microform"]
    targetOrigins: list[Origin] = Field(
        min_length=1,
        max_length=MAX_TARGET_ORIGINS,
        description="The origins (scheme://host[:port]) of the pages that load the fields: https, or "
        "http://localhost / http://127.0.0.1 for development; each one of CheckoutOrigins.",
        examples=[["https://shop.example"]],
    )
    allowedCardNetworks: list[Literal[CARD_NETWORKS]] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=len(CARD_NETWORKS), examples=[["VISA", "MASTERCARD", "AMEX"]]
    )
    allowedPaymentTypes: list[Literal[PAYMENT_TYPES]] = Field(  # type: ignore[valid-type]
        default=None, min_length=1, description="Cybersource's default: CARD."
    )
    transientTokenResponseOptions: TokenResponseOptions | None = None

    @field_validator("targetOrigins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        normal = [normal_origin(o) for o in value]
        if len(set(normal)) != len(normal):
            raise PydanticCustomError("duplicate", "must not list an origin twice")
        return value

    @field_validator("allowedCardNetworks", "allowedPaymentTypes")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise PydanticCustomError("duplicate", "must not list a value twice")
        return value

    @classmethod
    def parse(cls, body: dict[str, Any]) -> MicroformContextRequest:
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            unknown = (
                "is not a Microform capture-context field (integration, targetOrigins, allowedCardNetworks, "
                "allowedPaymentTypes, transientTokenResponseOptions)"
            )
            raise InvalidRequest(_problems(exc, _MICROFORM_RULES, unknown)) from None


_MICROFORM_RULES = {
    "integration": ("enum", 'must be "microform" or "flex"'),
    "targetOrigins": ("type", f"must be a list of 1 to {MAX_TARGET_ORIGINS} origins"),
    "allowedCardNetworks": ("enum", "must be a list of card networks: " + ", ".join(CARD_NETWORKS)),
    "allowedPaymentTypes": ("enum", "must be a list of payment types: " + ", ".join(PAYMENT_TYPES)),
    "transientTokenResponseOptions": ("type", 'must be {"includeCardPrefix": true|false}'),
}


class CaptureContextRequest(
    RootModel[MicroformContextRequest | WrappedFieldSelection | FieldSelection | DefaultSelection]  # type: ignore[valid-type]
):
    """``POST /capture-contexts`` (optional body): a Microform v2 capture context for a web
    checkout (``"integration": "microform"``), or a Flex API v2 one for a server or native
    client: the selection with or without the ``fields`` wrapper (``"integration": "flex"``
    beside it, optional); without a body (or ``{}``), the configured default."""


MAX_TRANSIENT_TOKEN = 8 * 1024
MAX_CAPTURE_CONTEXT = 16 * 1024


class TransientTokenVerifyRequest(ApiModel):
    """``POST /transient-tokens/verify``: a transient token from the checkout page and the
    capture context the page used (the one the merchant's server got from us)."""

    transientToken: StrictStr = Field(
        min_length=1, max_length=MAX_TRANSIENT_TOKEN, description="The JWT createToken gave the page."
    )
    captureContext: StrictStr = Field(
        min_length=1, max_length=MAX_CAPTURE_CONTEXT, description="The capture context the token was created with."
    )

    @classmethod
    def parse(cls, body: Any) -> TransientTokenVerifyRequest:
        if not isinstance(body, dict):
            raise InvalidRequest([NOT_A_JSON_OBJECT])
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            unknown = "is not a verify field (transientToken, captureContext)"
            raise InvalidRequest(_problems(exc, _VERIFY_RULES, unknown)) from None


_VERIFY_RULES = {
    "transientToken": ("type", f"must be the transient token (a JWT of at most {MAX_TRANSIENT_TOKEN} bytes)"),
    "captureContext": ("type", f"must be the capture context (a JWT of at most {MAX_CAPTURE_CONTEXT} bytes)"),
}


# -- answers --------------------------------------------------------------------------


class FieldIssue(BaseModel):
    """One thing about one field: where it is, which rule, what to do."""

    field: str = Field(examples=["transaction.amount"])
    rule: str = Field(examples=["missing"])
    message: str = Field(examples=["is required"])


class ErrorBody(BaseModel):
    code: str = Field(description="What went wrong, for code to branch on.", examples=["INVALID_REQUEST"])
    message: str = Field(description="For people; never repeats card data.")
    reason: str | None = Field(default=None, description="A finer reason (WEBHOOK_REJECTED, PROVIDER_*, REFUND_*).")
    provider: str | None = Field(default=None, description="cybersource or flexfactor (PROVIDER_*).")
    details: list[FieldIssue] | None = Field(
        default=None, max_length=25, description="400: each field and rule (at most 25)."
    )
    omittedDetails: int | None = Field(default=None, description="400: how many problems were not listed.")


class ErrorAnswer(BaseModel):
    """Every error this API's code answers, whatever the route."""

    error: ErrorBody


class GatewayMessage(BaseModel):
    """API Gateway's own answers (403: API key or signature refused, or no such route;
    429: throttled; 502/504: the function failed or timed out): no ``error`` object."""

    model_config = ConfigDict(extra="allow")

    message: str | None = Field(default=None, examples=["Forbidden"])
    Message: str | None = Field(default=None, description="(an IAM denial spells it so)")


Status = Literal[
    "RECEIVED",
    "QUEUED",
    "SUBMITTED",
    "CHALLENGE",
    "PROCESSING",
    "CAPTUREREQUIRED",
    "APPROVED",
    "DECLINED",
    "CANCELLED",
    "EXPIRED",
    "NOT_SUBMITTED",
]


class NotSubmittedReason(BaseModel):
    """Why a decline was not submitted: the eligibility rule (or ``provider_validation``)."""

    model_config = ConfigDict(extra="allow")

    rule: str = Field(examples=["amount_out_of_range"])
    detail: str | None = None
    rulesVersion: str | None = None


class DeclineAnswer(BaseModel):
    """``POST /declines``: 200 for a customer-initiated decline (FlexFactor's status, or
    ``NOT_SUBMITTED`` with the rule), 202 ``QUEUED`` for a merchant-initiated one. A
    repeat with the same ``idempotencyKey`` gets the first answer."""

    orderId: str
    status: Status
    submitted: bool
    orderSessionKey: str | None = Field(default=None, description="FlexFactor's order (when submitted).")
    reason: NotSubmittedReason | None = None
    warnings: list[FieldIssue] | None = Field(
        default=None,
        description="Accepted, but FlexFactor's specification (seed 003) wants more: improve the data; "
        "nothing was refused. Rules: seed_required, uuid, email, enum, country_code, type, zip_code, "
        "state, ip_address, bin_length, not_declined, fallback, in_future.",
    )


class CaptureContextAnswer(BaseModel):
    """``POST /capture-contexts``: a verified Flex v2 capture context."""

    captureContext: str = Field(description="The JWT the card-entry client loads.")
    expiresAt: str = Field(examples=["2026-11-22T10:15:00Z"])
    keyId: str = Field(description="flx.jwk.kid: the one-time key the card-entry client encrypts to.")
    requiredFields: list[str]
    optionalFields: list[str]


class MicroformContextAnswer(BaseModel):
    """``POST /capture-contexts`` with ``"integration": "microform"``: a verified Microform v2
    capture context, and what the page needs to load Cybersource's fields."""

    integration: Literal["microform"]
    captureContext: str = Field(description="The JWT the page passes to new Flex(captureContext).")
    expiresAt: str = Field(examples=["2026-11-22T10:15:00Z"])
    keyId: str = Field(description="flx.jwk.kid: the one-time key the fields encrypt to.")
    clientLibrary: str = Field(description="The Microform script the page loads (from the capture context).")
    clientLibraryIntegrity: str = Field(description="Its SRI hash: the script tag's integrity attribute.")
    targetOrigins: list[str]
    allowedCardNetworks: list[str]
    allowedPaymentTypes: list[str]


class CaptureContextIssued(RootModel[MicroformContextAnswer | CaptureContextAnswer]):
    """``POST /capture-contexts``' 201: Microform (``integration`` microform) or Flex."""


class VerifiedCard(BaseModel):
    """What a transient token says about the card: never its number."""

    maskedNumber: str = Field(examples=["XXXXXXXXXXXX1111"])
    bin: str | None = Field(default=None, examples=["411111"])
    last4: str = Field(examples=["1111"])
    type: str | None = Field(default=None, description="Cybersource's card type code.", examples=["001"])
    brand: str | None = Field(default=None, examples=["VISA"])
    expirationMonth: str | None = Field(default=None, examples=["12"])
    expirationYear: str | None = Field(default=None, examples=["2031"])
    securityCode: bool = Field(description="Whether a security code was captured with the card.")
    detectedCardTypes: list[str] | None = None


class TransientTokenAnswer(BaseModel):
    """``POST /transient-tokens/verify``: the token verified (once) with its capture context."""

    verified: Literal[True]
    tokenId: str = Field(description="The token's jti: what a payment request names.")
    type: str = Field(examples=["mf-2.0.0"])
    issuedAt: str
    expiresAt: str
    card: VerifiedCard


class OrderActionAnswer(BaseModel):
    """Capture (``APPROVED``) and cancel (``CANCELLED``, or ``NOT_SUBMITTED`` for an order
    FlexFactor never had)."""

    orderId: str
    status: Status
    action: Literal["capture", "cancel"]
    result: str = Field(description="What the single writer did: applied, duplicate, stale, ...")


class RefundAnswer(BaseModel):
    """``POST /orders/{orderId}/refund``."""

    model_config = ConfigDict(extra="allow")

    orderId: str
    refundId: str = Field(description="The refund's idempotencyKey (given, or derived).")
    status: Literal["REFUNDED"]
    amount: int = Field(description="Minor units.")
    currency: str
    refundedAmount: int = Field(description="All refunded so far, minor units.")
    providerTransactionId: str | None = None
    result: str | None = Field(
        default=None, description="What the single writer did (applied, ...): the first answer only, not a replay."
    )
    replayed: bool | None = Field(default=None, description="true: the same request again, the first answer.")


class CardSummary(BaseModel):
    """What is kept of the card: never its number."""

    model_config = ConfigDict(extra="allow")

    bin: str | None = None
    last4: str | None = None
    brand: str | None = None
    expirationMonth: int | None = None
    expirationYear: int | None = None


class HistoryItem(BaseModel):
    """One change of the order (``changeId``, also the event's id), or an update recorded
    without being applied (``kind``: duplicate, stale, untrusted, poll-requested)."""

    model_config = ConfigDict(extra="allow")

    version: int
    changeId: str | None = None
    status: str | None = None
    previous: str | None = None
    source: str | None = None
    at: str | None = None
    kind: str | None = None


class OrderView(BaseModel):
    """``GET /orders/{orderId}``: the order and its whole story."""

    model_config = ConfigDict(extra="allow")

    orderId: str
    status: Status
    version: int
    idempotencyKey: str | None = None
    orderSessionKey: str | None = None
    amount: int | None = Field(default=None, description="Minor units.")
    currency: str | None = None
    isMIT: bool | None = None
    expiryDateUtc: str | None = None
    card: CardSummary | None = None
    reason: dict[str, Any] | None = None
    capturedAmount: int | None = None
    refundedAmount: int | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    history: list[HistoryItem]


class WebhookEvent(BaseModel):
    """FlexFactor's webhook (PascalCase, as FlexFactor sends it). Checked on the raw bytes
    against the x-fc-* signature headers first, whatever the content type."""

    model_config = ConfigDict(extra="allow")

    Event: Annotated[str, Field(max_length=200, examples=["order.approved"])]
    ExternalOrderId: Annotated[str, Field(pattern=ORDER_ID_PATTERN)] | None = Field(
        default=None, description="Our orderId."
    )
    OrderId: Annotated[str, Field(max_length=200)] | None = Field(default=None, description="FlexFactor's order.")
    TimeStamp: Annotated[str, Field(max_length=200)] | None = None
    ConfirmationId: Annotated[str, Field(max_length=200)] | None = None
    EventData: Any = None


class WebhookAnswer(BaseModel):
    received: bool
    queued: bool
    duplicate: bool | None = Field(default=None, description="A delivery seen (and queued) before: nothing done.")
