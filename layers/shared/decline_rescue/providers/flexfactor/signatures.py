"""FlexFactor's webhook signature: the verifier, and beside it the signer (for tests, the
emulator and anyone replaying a captured delivery on purpose).

Keyed by the merchant's base64 ``subscriberKey`` (PROVIDERS.md):
- ``x-fc-content-sha512 = base64(SHA512(raw body))``;
- ``x-fc-authorization: HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature=<sig>``
  with ``sig = base64(HMAC-SHA512(key, "POST\\n" + nonce + ";" + date + ";" + host + ";" + contentHash))``;
- ``x-fc-signature = base64(HMAC-SHA512(key, raw body))``.

Everything is computed over the raw body bytes (whatever the content type says), with the
Host header the request arrived with; comparisons are constant-time; the date must be
within the allowed skew of now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from decline_rescue.domain.errors import DeclineRescueError

SIGNED_HEADERS = ("x-fc-nonce", "x-fc-date", "host", "x-fc-content-sha512")
REQUIRED_HEADERS = ("x-fc-nonce", "x-fc-date", "x-fc-content-sha512", "x-fc-authorization", "x-fc-signature", "host")
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


def sign(body: bytes, *, key: bytes, host: str, nonce: str, date: str, method: str = "POST") -> dict[str, str]:
    """The x-fc-* headers FlexFactor sends with ``body`` (``date`` as RFC 1123)."""
    content_hash = _b64(hashlib.sha512(body).digest())
    canonical = f"{method.upper()}\n{nonce};{date};{host};{content_hash}".encode()
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content_hash,
        "x-fc-authorization": "HMAC-SHA512 SignedHeaders="
        + ";".join(SIGNED_HEADERS)
        + "&Signature="
        + _b64(hmac.new(key, canonical, hashlib.sha512).digest()),
        "x-fc-signature": _b64(hmac.new(key, body, hashlib.sha512).digest()),
    }
