"""Secrets Manager's GetSecretValue without botocore: one request signed here (AWS
Signature Version 4) and sent with the providers' HTTP client.

A function that reads one secret and otherwise talks only to a provider
(``issue_capture_context``) spent most of its cold start importing botocore and building
its client for that one request (about 0.3 s of 0.4 s, ``bench/capture_context.py``).
Lambda puts the function's credentials and region in its environment (and the local
stack its endpoint, ``AWS_ENDPOINT_URL``), so when they are there the request is signed
here; the signature is checked against botocore's own signer in
``tests/unit/test_secretsmanager.py``. Anything less usual (no credentials in the
environment, FIPS or dual-stack endpoints, a partition other than aws and aws-us-gov)
makes ``endpoint()`` None, and the caller uses botocore as before.

Retries as the botocore client's (standard mode, 4 attempts): timeouts, transport
errors, 5xx, 429 and throttling, with backoff, within the invocation's time budget.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from decline_rescue.runtime import deadline

SERVICE = "secretsmanager"
TARGET = "secretsmanager.GetSecretValue"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_ATTEMPTS = 2  # throttled answers, as infra.aws.ATTEMPTS: every call ends inside the function timeout
# regions of the aws and aws-us-gov partitions, whose endpoints are secretsmanager.<region>.amazonaws.com
_STANDARD_REGION = re.compile(r"(us|eu|ap|sa|ca|me|af|il|mx)-(gov-)?[a-z]+-\d+")
_THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "ThrottledException"}
)

_clients: dict[str, Any] = {}  # endpoint URL -> ProviderHttp (connections kept)


class SecretsManagerError(Exception):
    """A refused or failed GetSecretValue; worded as botocore's ClientError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"An error occurred ({code}) when calling the GetSecretValue operation: {message}")
        self.code = code


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def endpoint() -> str | None:
    """The Secrets Manager endpoint to sign for, or None when botocore should be used."""
    env = os.environ
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY") and _region()):
        return None
    if _flag("AWS_USE_FIPS_ENDPOINT") or _flag("AWS_USE_DUALSTACK_ENDPOINT"):
        return None
    configured = (
        ""
        if _flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        else (env.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or env.get("AWS_ENDPOINT_URL") or "")
    )
    if configured.strip():
        parts = urlsplit(configured.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            return None
        return f"{parts.scheme}://{parts.netloc}"
    region = _region()
    if not _STANDARD_REGION.fullmatch(region):
        return None
    return f"https://secretsmanager.{region}.amazonaws.com"


def _region() -> str:
    return (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "").strip()


def signature_headers(
    *,
    host: str,
    region: str,
    body: bytes,
    target: str,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    now: datetime,
) -> dict[str, str]:
    """The headers of a signed AWS JSON 1.1 POST to ``/`` (Signature Version 4)."""
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"content-type": CONTENT_TYPE, "host": host, "x-amz-date": amz_date, "x-amz-target": target}
    if session_token:
        headers["x-amz-security-token"] = session_token
    names = sorted(headers)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def _client(url: str):
    http = _clients.get(url)
    if http is None:
        from decline_rescue.infra import aws
        from decline_rescue.infra.http import ProviderHttp
        from decline_rescue.runtime.settings import ProviderCallSettings

        # as the botocore clients of infra.aws
        calls = ProviderCallSettings(
            connect_timeout=aws.CONNECT_SECONDS,
            read_timeout=aws.READ_SECONDS,
            max_attempts=aws.ATTEMPTS,
            budget_seconds=aws.WORST_CALL_SECONDS,
            backoff_base=0.1,
        )
        http = _clients[url] = ProviderHttp(SERVICE, url, calls)
    return http


def get_secret_value(secret_id: str, url: str) -> dict[str, Any]:
    """GetSecretValue's answer: ``SecretString``, or ``SecretBinary`` as bytes (as botocore
    gives them). Raises SecretsManagerError, or the provider client's errors (timeouts,
    unreachable, 5xx after the retries)."""
    from decline_rescue.infra.http import Prepared

    http = _client(url)
    body = json.dumps({"SecretId": secret_id}, separators=(",", ":")).encode()

    def prepare() -> Prepared:
        env = os.environ
        headers = signature_headers(
            host=http.host,
            region=_region(),
            body=body,
            target=TARGET,
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            session_token=env.get("AWS_SESSION_TOKEN"),
            now=datetime.now(UTC),
        )
        return Prepared(headers=headers, content=body)

    attempt = 1
    while True:
        response = http.request("POST", "/", prepare)  # retries 5xx, 429 and transport errors itself
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.status_code == 200:
            if isinstance(answer.get("SecretString"), str):
                return {"SecretString": answer["SecretString"]}
            if isinstance(answer.get("SecretBinary"), str):
                return {"SecretBinary": base64.b64decode(answer["SecretBinary"])}
            raise SecretsManagerError("MalformedAnswer", "neither SecretString nor SecretBinary in the answer")
        code = str(answer.get("__type") or answer.get("code") or f"HTTP{response.status_code}").rsplit("#", 1)[-1]
        message = str(answer.get("Message") or answer.get("message") or "")
        pause = 0.1 * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        ends = deadline.current()
        if code not in _THROTTLED or attempt >= MAX_ATTEMPTS or (ends is not None and time.monotonic() + pause >= ends):
            raise SecretsManagerError(code, message)
        time.sleep(pause)
        attempt += 1
