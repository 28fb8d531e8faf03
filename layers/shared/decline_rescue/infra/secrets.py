"""Provider credentials from Secrets Manager, read once and cached for a while."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from decline_rescue.domain.errors import ConfigurationError
from decline_rescue.runtime.observability import logger

UNAVAILABLE = "provider credentials are not available; the function's logs say why"
_cache: dict[str, tuple[float, dict[str, Any]]] = {}  # secret id -> (valid until, value)


def _unavailable(secret_id: str, why: str) -> ConfigurationError:
    """Log which secret and why; tell the caller only that credentials are missing."""
    logger.error("provider secret unusable", extra={"secret_id": secret_id, "why": why})
    return ConfigurationError(UNAVAILABLE, reason=why.split(":")[0])


def json_secret(secret_id: str, *, max_age: int, force: bool = False, botocore: bool = False) -> dict[str, Any]:
    """The secret's JSON object; cached for ``max_age`` seconds, re-read when ``force``.
    ``botocore``: read it with the botocore client, for a function that makes botocore
    clients anyway and no provider calls (``ingest_webhook``: the signed request here
    would import the providers' HTTP client for it alone).

    (Powertools' ``parameters.get_secret`` did this; its import brings boto3 and its own
    boto3 session, a good part of a cold start; the cache and errors are the same.)"""
    now = time.monotonic()
    cached = _cache.get(secret_id)
    if cached is not None and not force and now < cached[0]:
        return cached[1]
    try:
        answer = _get_secret_value(secret_id, botocore=botocore)
        raw = answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"]
    except Exception as exc:  # noqa: BLE001 - whatever failed, the secret is unreadable
        raise _unavailable(secret_id, f"unreadable: {_short(exc)}") from None
    try:
        value = json.loads(raw)
    except Exception:  # noqa: BLE001 - not JSON, whichever way
        raise _unavailable(secret_id, "not_json: the secret is not a JSON object") from None
    if not isinstance(value, dict):
        raise _unavailable(secret_id, "not_json: the secret is not a JSON object")
    _cache[secret_id] = (now + max_age, value)
    return value


def _get_secret_value(secret_id: str, *, botocore: bool = False) -> dict[str, Any]:
    """GetSecretValue, signed here when the environment says plainly where and as whom
    (``infra.secretsmanager``: no botocore import on a cold start), else by botocore."""
    from decline_rescue.infra import secretsmanager

    url = None if botocore else secretsmanager.endpoint()
    if url is not None:
        return secretsmanager.get_secret_value(secret_id, url)
    from decline_rescue.infra.aws import client

    return client("secretsmanager").get_secret_value(SecretId=secret_id)


def reset() -> None:
    """Forget the secrets read (a new execution environment)."""
    _cache.clear()


def require_keys(secret_id: str, value: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    missing = [k for k in keys if not isinstance(value.get(k), str) or not value[k].strip()]
    if missing:
        raise _unavailable(secret_id, f"incomplete: the secret lacks {', '.join(missing)}")
    return {k: value[k].strip() for k in keys}


def require_base64(secret_id: str, key: str, value: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _unavailable(secret_id, f"malformed: {key} is not standard base64") from None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
