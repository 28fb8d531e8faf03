"""FlexFactor webhooks: verify the signature (``providers.flexfactor.signatures``), keep
the delivery as it came, queue the update for the single writer.

A delivery cannot be lost, nor applied twice, wherever an invocation dies:
1. the signature and date are checked (401 with the reason otherwise; an unauthenticated
   request writes nothing);
2. the delivery is kept under its nonce (``WEBHOOK#<nonce>``: headers that matter, the
   body's SHA-512, the body with card data redacted; 30 days), in one conditional write;
3. its update goes on the order-updates queue, and the delivery is marked queued.
A delivery whose nonce was seen answers by what became of it: the same body not queued
yet (the earlier attempt died between 2 and 3) is queued now; the same body queued
already is answered 200 and not queued again (a retry, or a replay of a captured
delivery: either way nothing changes); another body under a seen nonce is 401
``replayed_nonce``. An update queued twice (an attempt died after sending it, before
marking it) is applied once: the writer sees the second as a duplicate. The writer notes
its outcome on the kept delivery, so an operator can answer "did FlexFactor tell us, and
what did we do?".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from decline_rescue.domain import clock, strict_json
from decline_rescue.domain.carddata import redact
from decline_rescue.domain.errors import FieldProblem, InvalidRequest
from decline_rescue.domain.updates import OrderUpdate
from decline_rescue.providers.flexfactor import vocabulary
from decline_rescue.providers.flexfactor.signatures import WebhookRejected, verify
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.observability import emit, logger, metrics
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
    external = _text(payload, "ExternalOrderId")
    if external is not None:
        strict_json.check_order_id(external, "ExternalOrderId")  # (a card number never becomes a key)
    common = {
        "updateId": f"webhook:{nonce}",
        "source": "webhook",
        "orderId": external,
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
        key = f"{kind}#{stamp or confirmation or _content_key(payload)}"
        return OrderUpdate(**common, event=kind, eventKey=key[:300], reason=reason)
    # challenge outcomes and events we do not know: only a reason to look at the order
    return OrderUpdate(**common, checkOnly=True)


def _content_key(payload: dict[str, Any]) -> str:
    """What tells an event apart when FlexFactor sends neither ``TimeStamp`` nor
    ``ConfirmationId``: a digest of what the event says (never the nonce, which is new on
    every resend, so a resent chargeback would be recorded twice). Card data is redacted
    first: a hash of a card number could be reversed."""
    said = redact({k: payload.get(k) for k in ("Event", "OrderId", "ExternalOrderId", "EventData")})
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()[:32]


# -- the whole intake -----------------------------------------------------------------


KEEP_DELIVERIES_SECONDS = 30 * 86400
KEPT_HEADERS = ("x-fc-nonce", "x-fc-date", "host", "content-type", "x-fc-content-sha512", "user-agent")
KEPT_BODY_CHARS = 16_384


def _host(value: str) -> str:
    """A host as compared: lower case, without the default HTTPS port."""
    host = value.strip().lower()
    return host[:-4] if host.endswith(":443") else host


def ingest(method: str, body: bytes, headers: Mapping[str, str], *, served_on: str | None = None) -> dict[str, Any]:
    """Verify, keep, queue: the 200 answer's body. Raises WebhookRejected (401) or
    InvalidRequest (400, a signed body that is not a webhook).

    The signed host must be one this API is served on: ``served_on`` (API Gateway's
    ``requestContext.domainName``) or one of ``WEBHOOK_HOSTS`` (custom domains); a
    delivery signed for another endpoint is refused (``host_not_served``) whatever Host
    header it arrives with."""
    cfg = settings.lifecycle()
    lowered = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY_BYTES:
        _rejected("too_large")
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
        _rejected(exc.reason)
        logger.warning("webhook rejected", extra={"reason": exc.reason})
        raise
    served = {_host(h) for h in (served_on or "", *cfg.webhook_hosts) if h}
    if _host(lowered.get("host", "")) not in served:
        _rejected("host_not_served")
        logger.warning("webhook rejected", extra={"reason": "host_not_served"})
        raise WebhookRejected("host_not_served", "the signed host is not a host this API is served on")
    try:
        payload: Any = strict_json.loads(body.removeprefix(b"\xef\xbb\xbf"), max_bytes=MAX_BODY_BYTES)
        problem = None
    except InvalidRequest as exc:
        payload, problem = None, exc.problems[0]
    kept = {
        "headers": {name: lowered[name][:300] for name in KEPT_HEADERS if lowered.get(name)},
        "bodySha512": hashlib.sha512(body).hexdigest(),
        "body": _kept_body(payload, body),
        "verified": True,
        "receivedAt": clock.iso(),
    }
    if isinstance(payload, dict):
        kept.update(
            {k: str(payload[k])[:200] for k in ("Event", "ExternalOrderId", "OrderId") if payload.get(k) is not None}
        )
    table = wiring.orders()
    seen = table.record_delivery(nonce, kept, keep_seconds=KEEP_DELIVERIES_SECONDS)
    if seen == "other":
        _rejected("replayed_nonce")
        logger.warning("webhook rejected", extra={"reason": "replayed_nonce"})
        raise WebhookRejected("replayed_nonce", "this x-fc-nonce came before with another body")
    if seen == "queued":
        metrics.add_metric(name=m.WEBHOOK_REDELIVERED, unit="Count", value=1)
        return {"received": True, "queued": True, "duplicate": True}
    try:
        if problem is not None:
            raise InvalidRequest([problem])
        update = to_update(payload, nonce)
    except InvalidRequest as exc:
        table.mark_delivery(nonce, delivery="invalid", result=exc.problems[0].as_dict() if exc.problems else {})
        _rejected("invalid_body")
        raise
    if update is None:
        table.mark_delivery(nonce, delivery="ignored")
        metrics.add_metric(name=m.WEBHOOK_IGNORED, unit="Count", value=1)
        return {"received": True, "queued": False}
    writer.enqueue([update])  # (a crash after this and before the mark: the retry queues it again, a duplicate)
    table.mark_delivery(nonce, delivery="queued")
    metrics.add_metric(name=m.WEBHOOK_ACCEPTED, unit="Count", value=1)
    logger.info("webhook accepted", extra={"orderId": update.orderId, "event": update.providerStatus})
    return {"received": True, "queued": True}


def _rejected(reason: str | None) -> None:
    """Count a refused delivery by why (the verifier's reasons, ``host_not_served``,
    ``replayed_nonce``; ``too_large`` and ``invalid_body``, answered 400), by the stack,
    and by service alone as before."""
    emit([(m.WEBHOOK_REJECTED, "Count", 1)], {m.REASON: reason or "unknown"}, rollups=[()], service_total=True)


def _kept_body(payload: Any, body: bytes) -> str:
    """The body as kept: card data redacted (in the JSON's values and under card keys),
    at most KEPT_BODY_CHARS characters."""
    text = (
        json.dumps(redact(payload), separators=(",", ":"))
        if payload is not None
        else redact(body[:KEPT_BODY_CHARS].decode("utf-8", "replace"))
    )
    return text[:KEPT_BODY_CHARS]
