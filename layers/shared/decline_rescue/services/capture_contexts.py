"""Capture-context issuance: which fields to capture (``domain.capture_fields``), ask
Cybersource, verify the answer."""

from __future__ import annotations

from typing import Any

from decline_rescue.domain.capture_fields import FLEX_FIELDS, FieldSelection
from decline_rescue.domain.capture_fields import parse_selection as _parse
from decline_rescue.domain.errors import CaptureContextUnverified, ConfigurationError, InvalidRequest
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics

__all__ = ["FLEX_FIELDS", "FieldSelection", "default_selection", "issue_capture_context", "parse_selection"]


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
