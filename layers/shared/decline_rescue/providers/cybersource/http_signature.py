"""Cybersource HTTP Signature authentication (PROVIDERS.md section 1).

Pure functions, no I/O. The digest is computed over the exact bytes that will be sent,
so callers must pass the body bytes they hand to the transport, never re-serialise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def http_date(timestamp: float) -> str:
    """RFC 1123 date as the SDK writes it, e.g. ``Thu, 01 Jan 2026 00:00:00 GMT``."""
    return formatdate(timestamp, usegmt=True)


def digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signed_headers(method: str) -> list[str]:
    names = ["host", "date", "request-target"]
    if method.upper() in BODY_METHODS:
        names.append("digest")
    names.append("v-c-merchant-id")
    return names


def signing_string(*, method: str, path: str, host: str, date: str, merchant_id: str, body_digest: str | None) -> str:
    values = {
        "host": host,
        "date": date,
        "request-target": f"{method.lower()} {path}",
        "digest": body_digest,
        "v-c-merchant-id": merchant_id,
    }
    return "\n".join(f"{name}: {values[name]}" for name in signed_headers(method))


def sign(shared_secret_b64: str, message: str) -> str:
    key = base64.b64decode(shared_secret_b64)
    mac = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def signature_headers(
    *,
    method: str,
    path: str,
    host: str,
    body: bytes,
    merchant_id: str,
    key_id: str,
    shared_secret_b64: str,
    date: str,
) -> dict[str, str]:
    """The authentication headers for one request (``Host`` included)."""
    method = method.upper()
    headers = {"v-c-merchant-id": merchant_id, "Date": date, "Host": host}
    body_digest = None
    if method in BODY_METHODS:
        body_digest = digest(body)
        headers["Digest"] = body_digest
    message = signing_string(
        method=method,
        path=path,
        host=host,
        date=date,
        merchant_id=merchant_id,
        body_digest=body_digest,
    )
    headers["Signature"] = (
        f'keyid="{key_id}", algorithm="HmacSHA256", '
        f'headers="{" ".join(signed_headers(method))}", '
        f'signature="{sign(shared_secret_b64, message)}"'
    )
    return headers
