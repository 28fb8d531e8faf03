"""The shop server's client for the decline-rescue API, standard library only.

The shop holds the API credentials; the browser never does. Two ways to authenticate, as
the stack's ``ApiAuth`` parameter says: ``IAM`` (the default) wants every call signed with
SigV4 for ``execute-api`` by a principal holding the template's CheckoutCallerPolicy, plus
the API key (``x-api-key``, for the usage plan); ``API_KEY`` wants the API key alone.

The SigV4 signer is here, in 50 lines, so the sample has no dependency to install; it signs
as botocore's ``SigV4Auth`` does (the repository's tests compare the two). A shop that has
boto3 may use botocore's signer instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Credentials:
    """SigV4 credentials (an IAM user's access key, or a role's temporary ones)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str = "us-east-1"


def sigv4_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    *,
    service: str = "execute-api",
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to sign this request with AWS Signature Version 4: ``X-Amz-Date``,
    ``Authorization`` (and ``X-Amz-Security-Token`` for temporary credentials). Every header
    in ``headers`` is signed, and ``Host``, taken from ``url``."""
    when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = when[:8]
    parts = urlsplit(url)
    added = {"X-Amz-Date": when}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in {**headers, **added}.items()}
    signed["host"] = parts.netloc
    names = sorted(signed)
    query = "&".join(sorted(p for p in parts.query.split("&") if p)) if parts.query else ""
    canonical = "\n".join(
        [
            method.upper(),
            parts.path or "/",
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{credentials.region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", when, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + credentials.secret_access_key).encode()
    for part in (day, credentials.region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return added


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> dict[str, Any]:
        """The API's error object (``{"code", "message", "details"?}``), or one made up
        from what came back (API Gateway's ``{"message"}``, or nothing readable)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]
        message = self.body.get("message") if isinstance(self.body, dict) else None
        return {"code": f"HTTP_{self.status}", "message": message or f"the API answered HTTP {self.status}"}


class DeclineRescueApi:
    """The two calls a checkout makes: a Microform capture context for the page, and the
    verification of the transient token the page sends back."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.credentials = credentials
        self.timeout = timeout

    @property
    def auth(self) -> str:
        return "IAM" if self.credentials else "API_KEY"

    def capture_context(self, target_origins: list[str], card_networks: list[str]) -> ApiAnswer:
        return self.post(
            "/capture-contexts",
            {
                "integration": "microform",
                "targetOrigins": target_origins,
                "allowedCardNetworks": card_networks,
                "allowedPaymentTypes": ["CARD"],
            },
        )

    def verify(self, transient_token: str, capture_context: str) -> ApiAnswer:
        return self.post(
            "/transient-tokens/verify", {"transientToken": transient_token, "captureContext": capture_context}
        )

    def post(self, path: str, payload: dict[str, Any]) -> ApiAnswer:
        url = self.base_url + path
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if self.credentials:
            headers.update(sigv4_headers("POST", url, headers, body, self.credentials))
        headers["Accept"] = "application/json"  # not signed: proxies may rewrite it
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"the API base URL must be http(s): {self.base_url}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return ApiAnswer(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return ApiAnswer(error.code, _json(error.read()))
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            message = f"the decline-rescue API is unreachable: {reason}"
            return ApiAnswer(503, {"error": {"code": "API_UNREACHABLE", "message": message}})


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace")}
