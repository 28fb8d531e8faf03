"""FlexFactor webhooks: verify the signature, refuse replays, queue the update.

The signature (PROVIDERS.md, keyed by the merchant's base64 ``subscriberKey``):
- ``x-fc-content-sha512 = base64(SHA512(raw body))``;
- ``x-fc-authorization: HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature=<sig>``
  with ``sig = base64(HMAC-SHA512(key, "POST\\n" + nonce + ";" + date + ";" + host + ";" + contentHash))``;
- ``x-fc-signature = base64(HMAC-SHA512(key, raw body))``.

Everything is computed over the raw body bytes (whatever the content type says), with
the Host header the request arrived with; comparisons are constant-time; the date must
be within ``WEBHOOK_MAX_SKEW_SECONDS`` of now and the nonce never seen before (kept in
DynamoDB past the skew window). A valid webhook is put on the order-updates queue for
the single writer; the provider gets 200 at once, duplicates included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from decline_rescue.domain.carddata import redact
from decline_rescue.domain.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.runtime import settings
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer as lifecycle

SIGNED_HEADERS = ("x-fc-nonce", "x-fc-date", "host", "x-fc-content-sha512")
REQUIRED_HEADERS = ("x-fc-nonce", "x-fc-date", "x-fc-content-sha512", "x-fc-authorization", "x-fc-signature", "host")
MAX_BODY_BYTES = 64 * 1024
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,128}")
_AUTHORIZATION = re.compile(r"^HMAC-SHA512\s+SignedHeaders=([^&\s]+)&Signature=(\S+)$", re.IGNORECASE)


class WebhookRejected(DeclineRescueError):
    """Not a webhook FlexFactor signed for us (or a replay): 401 with the reason."""

    status_code = 401
    code = "WEBHOOK_REJECTED"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode("ascii"))


def verify(
    method: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    keys: list[bytes],
    now: datetime,
    max_skew_seconds: float,
) -> str:
    """Check a webhook's signature and date; its nonce when valid, else WebhookRejected.
    ``headers`` are lower-cased names; ``keys`` are the accepted subscriber keys."""
    for name in REQUIRED_HEADERS:
        if not headers.get(name, "").strip():
            raise WebhookRejected("missing_header", f"the {name} header is missing")
    nonce = headers["x-fc-nonce"].strip()
    if not _NONCE.fullmatch(nonce):
        raise WebhookRejected("bad_nonce", "x-fc-nonce is not a nonce")
    content_hash = _b64(hashlib.sha512(body).digest())
    if not _same(headers["x-fc-content-sha512"], content_hash):
        raise WebhookRejected("content_hash_mismatch", "x-fc-content-sha512 does not match the body")
    found = _AUTHORIZATION.match(headers["x-fc-authorization"].strip())
    if not found:
        raise WebhookRejected(
            "bad_authorization", "x-fc-authorization is not HMAC-SHA512 SignedHeaders=...&Signature=..."
        )
    signed = tuple(h.strip().lower() for h in found.group(1).split(";"))
    if signed != SIGNED_HEADERS:
        raise WebhookRejected("bad_signed_headers", f"SignedHeaders must be {';'.join(SIGNED_HEADERS)}")
    date = headers["x-fc-date"].strip()
    host = headers["host"].strip()
    canonical = f"{method.upper()}\n{nonce};{date};{host};{content_hash}".encode()
    if not any(_same(found.group(2), _b64(hmac.new(k, canonical, hashlib.sha512).digest())) for k in keys):
        raise WebhookRejected("bad_signature", "x-fc-authorization's signature does not match")
    if not any(_same(headers["x-fc-signature"], _b64(hmac.new(k, body, hashlib.sha512).digest())) for k in keys):
        raise WebhookRejected("bad_body_signature", "x-fc-signature does not match the body")
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        raise WebhookRejected("bad_date", "x-fc-date is not an RFC 1123 date") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs((now - sent).total_seconds()) > max_skew_seconds:
        raise WebhookRejected("stale_date", f"x-fc-date is more than {max_skew_seconds:g}s from now")
    return nonce


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


def to_update(payload: Any, nonce: str) -> lifecycle.OrderUpdate | None:
    """The update a webhook body says, or None for events that concern no order."""
    if not isinstance(payload, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    event = _text(payload, "Event")
    if not event:
        raise InvalidRequest([FieldProblem("Event", "missing", "is required")])
    name = event.lower()
    if name in lifecycle.WEBHOOK_IGNORED:
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
    if name in lifecycle.WEBHOOK_STATUS:
        return lifecycle.OrderUpdate(**common, status=lifecycle.WEBHOOK_STATUS[name])
    if name in lifecycle.WEBHOOK_EVENT:
        kind = lifecycle.WEBHOOK_EVENT[name]
        confirmation = _text(payload, "ConfirmationId") or ""
        reason = {"eventData": redact(payload.get("EventData"))} if payload.get("EventData") else None
        if reason and len(json.dumps(reason)) > 2048:
            reason = None
        key = f"{kind}#{stamp or confirmation or nonce}"
        return lifecycle.OrderUpdate(**common, event=kind, eventKey=key[:300], reason=reason)
    # challenge outcomes and events we do not know: only a reason to look at the order
    return lifecycle.OrderUpdate(**common, checkOnly=True)


# -- the whole intake -----------------------------------------------------------------


def ingest(method: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify, refuse replays, queue: the 200 answer's body. Raises WebhookRejected (401)
    or InvalidRequest (400, a signed body that is not a webhook)."""
    from decline_rescue.runtime import wiring as clients

    cfg = settings.lifecycle()
    lowered = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
    try:
        nonce = verify(
            method,
            body,
            lowered,
            keys=clients.webhook_keys(),
            now=datetime.now(UTC),
            max_skew_seconds=cfg.webhook_max_skew_seconds,
        )
    except WebhookRejected as exc:
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        logger.warning("webhook rejected", extra={"reason": exc.reason})
        raise
    if not lifecycle.orders().claim_nonce(nonce, keep_seconds=2 * cfg.webhook_max_skew_seconds + 60):
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        logger.warning("webhook rejected", extra={"reason": "replayed_nonce"})
        raise WebhookRejected("replayed_nonce", "this x-fc-nonce was seen before")
    try:
        payload = json.loads(
            body.decode("utf-8-sig"), parse_constant=lifecycle._no_constant, parse_float=lifecycle._finite
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON (UTF-8, finite numbers)")]) from None
    update = to_update(payload, nonce)
    if update is None:
        metrics.add_metric(name="WebhookIgnored", unit="Count", value=1)
        return {"received": True, "queued": False}
    try:
        lifecycle.enqueue([update])
    except Exception:
        # not queued: forget the nonce, so the provider's retry of this very request is
        # accepted instead of refused as a replay
        lifecycle.orders().release_nonce(nonce)
        raise
    metrics.add_metric(name="WebhookAccepted", unit="Count", value=1)
    logger.info("webhook accepted", extra={"orderId": update.orderId, "event": update.providerStatus})
    return {"received": True, "queued": True}
