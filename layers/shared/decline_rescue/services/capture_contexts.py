"""Capture-context issuance: which fields to capture (``domain.capture_fields``), ask
Cybersource, verify the answer. Two kinds: Flex API v2 (``/flex/v2/sessions``, for a
server or native client that encrypts the card itself) and Microform v2
(``/microform/v2/sessions``, for a web checkout: the fields are Cybersource's iframes), the
latter only for page origins the merchant lists (``CheckoutOrigins``).

Transient tokens (``verify_transient_token``): checked against the capture context they
came from, once each (a replay is refused), answered as a card summary."""

from __future__ import annotations

from typing import Any

from decline_rescue.domain.capture_fields import FLEX_FIELDS, FieldSelection
from decline_rescue.domain.capture_fields import parse_selection as _parse
from decline_rescue.domain.checkout import allowed_origins, configured_origin_problems, normal_origin
from decline_rescue.domain.errors import (
    CaptureContextUnverified,
    ConfigurationError,
    FieldProblem,
    InvalidRequest,
    OriginNotAllowed,
    TransientTokenUsed,
)
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics

__all__ = [
    "FLEX_FIELDS",
    "FieldSelection",
    "default_selection",
    "issue_capture_context",
    "issue_microform_context",
    "parse_request",
    "parse_selection",
    "verify_transient_token",
]


def parse_request(body: Any) -> Any:
    """A ``POST /capture-contexts`` body: a ``MicroformContextRequest`` for
    ``"integration": "microform"``, else a Flex ``FieldSelection`` (``"integration": "flex"``
    or none)."""
    if isinstance(body, dict) and "integration" in body:
        integration = body["integration"]
        if integration == "microform":
            from decline_rescue.domain.api_models import MicroformContextRequest

            return MicroformContextRequest.parse(body)
        if integration != "flex":
            raise InvalidRequest([FieldProblem("integration", "enum", 'must be "microform" or "flex" (the default)')])
        body = {k: v for k, v in body.items() if k != "integration"}
    return parse_selection(body)


def parse_selection(body: Any) -> FieldSelection:
    """A request body's field selection, or the configured default for an empty body."""
    return _parse(body) or default_selection()


def default_selection() -> FieldSelection:
    """The configured default, held to the same rules as a request's selection."""
    cfg = settings.cybersource()
    configured = FieldSelection(cfg.capture_required_fields, cfg.capture_optional_fields)
    try:
        return parse_selection({"fields": configured.as_flex_fields()})
    except InvalidRequest as exc:
        raise ConfigurationError(
            "the default capture fields (CAPTURE_REQUIRED_FIELDS / CAPTURE_OPTIONAL_FIELDS) are invalid: " + exc.message
        ) from None


def issue_capture_context(selection: FieldSelection, client=None, *, lambda_context=None):
    """Ask Cybersource for a capture context for ``selection`` and verify it, all within
    one time budget (the provider budget, and never past the Lambda timeout)."""
    client = client or wiring.cybersource()
    with within(settings.cybersource().calls.budget_seconds, lambda_context=lambda_context):
        token = client.create_session(selection.as_flex_fields())
        try:
            verified = client.verify(token, required=selection.required, optional=selection.optional)
        except CaptureContextUnverified as exc:
            metrics.add_metric(name=m.CAPTURE_CONTEXT_VERIFICATION_FAILED, unit="Count", value=1)
            logger.error("capture context failed verification", extra={"reason": exc.reason})
            raise
    metrics.add_metric(name=m.CAPTURE_CONTEXT_ISSUED, unit="Count", value=1)
    return verified


def _checkout_origins() -> frozenset[str]:
    configured = settings.cybersource().checkout_origins
    problems = configured_origin_problems(configured)
    if problems:
        raise ConfigurationError("CHECKOUT_ORIGINS (the CheckoutOrigins parameter) is invalid: " + "; ".join(problems))
    return allowed_origins(configured)


def issue_microform_context(request, client=None, *, lambda_context=None):
    """A verified Microform v2 capture context for pages on ``request.targetOrigins``, each
    one of the merchant's ``CheckoutOrigins`` (checked before Cybersource is asked)."""
    allowed = _checkout_origins()
    refused = [
        FieldProblem(f"targetOrigins[{i}]", "not_allowed", f"{origin} is not one of the stack's CheckoutOrigins")
        for i, origin in enumerate(request.targetOrigins)
        if normal_origin(origin) not in allowed
    ]
    if refused:
        if not allowed:
            raise OriginNotAllowed(
                refused, "no checkout origins are configured: set the CheckoutOrigins parameter to your pages' origins"
            )
        raise OriginNotAllowed(refused)
    cfg = settings.cybersource()
    asked: dict[str, Any] = {
        "clientVersion": cfg.microform_client_version,
        "targetOrigins": list(request.targetOrigins),
        "allowedCardNetworks": list(request.allowedCardNetworks),
    }
    if request.allowedPaymentTypes:
        asked["allowedPaymentTypes"] = list(request.allowedPaymentTypes)
    if request.transientTokenResponseOptions is not None:
        asked["transientTokenResponseOptions"] = request.transientTokenResponseOptions.model_dump(exclude_none=True)
    client = client or wiring.cybersource()
    with within(cfg.calls.budget_seconds, lambda_context=lambda_context):
        token = client.create_microform_session(asked)
        try:
            verified = client.verify_microform(
                token,
                target_origins=tuple(request.targetOrigins),
                networks=tuple(request.allowedCardNetworks),
                payment_types=tuple(request.allowedPaymentTypes or ("CARD",)),
            )
        except CaptureContextUnverified as exc:
            metrics.add_metric(name=m.CAPTURE_CONTEXT_VERIFICATION_FAILED, unit="Count", value=1)
            logger.error(
                "capture context failed verification", extra={"reason": exc.reason, "integration": "microform"}
            )
            raise
    metrics.add_metric(name=m.CAPTURE_CONTEXT_ISSUED, unit="Count", value=1)
    return verified


def verify_transient_token(body: Any, client=None, store=None, *, lambda_context=None) -> dict[str, Any]:
    """``POST /transient-tokens/verify``: the card summary of a transient token verified with
    its capture context, once (``TransientTokenUsed`` for a token verified before)."""
    from decline_rescue.domain.api_models import TransientTokenVerifyRequest
    from decline_rescue.providers.cybersource.transient_tokens import verify_transient_token as verify

    request = TransientTokenVerifyRequest.parse(body)
    client = client or wiring.cybersource()
    with within(settings.cybersource().calls.budget_seconds, lambda_context=lambda_context):
        token = verify(client, request.transientToken, request.captureContext)
    store = store or wiring.orders()
    if not store.claim_transient_token(token.jti, token_expires=int(token.expires_at.timestamp())):
        metrics.add_metric(name=m.TRANSIENT_TOKEN_REPLAYED, unit="Count", value=1)
        raise TransientTokenUsed(
            "the transient token was verified before: a token is good for one payment", reason="replay"
        )
    metrics.add_metric(name=m.TRANSIENT_TOKEN_VERIFIED, unit="Count", value=1)
    return token.summary()
