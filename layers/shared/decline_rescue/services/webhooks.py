"""FlexFactor webhooks: verify the signature (``providers.flexfactor.signatures``), refuse
replays, queue the update for the single writer.

The date must be within ``WEBHOOK_MAX_SKEW_SECONDS`` of now and the nonce never seen
before (kept in DynamoDB past the skew window). A valid webhook is put on the
order-updates queue; the provider gets 200 at once, duplicates included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from decline_rescue.domain.carddata import redact
from decline_rescue.domain.errors import FieldProblem, InvalidRequest
from decline_rescue.domain.updates import OrderUpdate
from decline_rescue.providers.flexfactor import vocabulary
from decline_rescue.providers.flexfactor.signatures import WebhookRejected, verify
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer

MAX_BODY_BYTES = 64 * 1024
__all__ = ["WebhookRejected", "ingest", "to_update", "verify"]


# -- webhook body -> update -----------------------------------------------------------


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidRequest([FieldProblem(name, "type", "must be a string")])
    text = str(value).strip()
    if len(text) > 200:
        raise InvalidRequest([FieldProblem(name, "max_length", "must be at most 200 characters")])
    return text or None


def to_update(payload: Any, nonce: str) -> OrderUpdate | None:
    """The update a webhook body says, or None for events that concern no order."""
    if not isinstance(payload, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    event = _text(payload, "Event")
    if not event:
        raise InvalidRequest([FieldProblem("Event", "missing", "is required")])
    name = event.lower()
    if name in vocabulary.WEBHOOK_IGNORED:
        return None
    stamp = _text(payload, "TimeStamp")
    common = {
        "updateId": f"webhook:{nonce}",
        "source": "webhook",
        "orderId": _text(payload, "ExternalOrderId"),
        "orderSessionKey": _text(payload, "OrderId"),
        "providerStatus": event[:100],
        "observedAt": stamp,
    }
    if name in vocabulary.WEBHOOK_STATUS:
        return OrderUpdate(**common, status=vocabulary.WEBHOOK_STATUS[name])
    if name in vocabulary.WEBHOOK_EVENT:
        kind = vocabulary.WEBHOOK_EVENT[name]
        confirmation = _text(payload, "ConfirmationId") or ""
        reason = {"eventData": redact(payload.get("EventData"))} if payload.get("EventData") else None
        if reason and len(json.dumps(reason)) > 2048:
            reason = None
        key = f"{kind}#{stamp or confirmation or nonce}"
        return OrderUpdate(**common, event=kind, eventKey=key[:300], reason=reason)
    # challenge outcomes and events we do not know: only a reason to look at the order
    return OrderUpdate(**common, checkOnly=True)


# -- the whole intake -----------------------------------------------------------------


def ingest(method: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify, refuse replays, queue: the 200 answer's body. Raises WebhookRejected (401)
    or InvalidRequest (400, a signed body that is not a webhook)."""
    cfg = settings.lifecycle()
    lowered = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
    try:
        nonce = verify(
            method,
            body,
            lowered,
            keys=wiring.webhook_keys(),
            now=datetime.now(UTC),
            max_skew_seconds=cfg.webhook_max_skew_seconds,
        )
    except WebhookRejected as exc:
        metrics.add_metric(name=m.WEBHOOK_REJECTED, unit="Count", value=1)
        logger.warning("webhook rejected", extra={"reason": exc.reason})
        raise
    if not wiring.orders().claim_nonce(nonce, keep_seconds=2 * cfg.webhook_max_skew_seconds + 60):
        metrics.add_metric(name=m.WEBHOOK_REJECTED, unit="Count", value=1)
        logger.warning("webhook rejected", extra={"reason": "replayed_nonce"})
        raise WebhookRejected("replayed_nonce", "this x-fc-nonce was seen before")
    try:
        payload = json.loads(body.decode("utf-8-sig"), parse_constant=writer.no_constant, parse_float=writer.finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON (UTF-8, finite numbers)")]) from None
    update = to_update(payload, nonce)
    if update is None:
        metrics.add_metric(name=m.WEBHOOK_IGNORED, unit="Count", value=1)
        return {"received": True, "queued": False}
    try:
        writer.enqueue([update])
    except Exception:
        # not queued: forget the nonce, so the provider's retry of this very request is
        # accepted instead of refused as a replay
        wiring.orders().release_nonce(nonce)
        raise
    metrics.add_metric(name=m.WEBHOOK_ACCEPTED, unit="Count", value=1)
    logger.info("webhook accepted", extra={"orderId": update.orderId, "event": update.providerStatus})
    return {"received": True, "queued": True}
