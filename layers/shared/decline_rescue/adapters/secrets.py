"""Provider credentials from Secrets Manager, through Powertools' cached parameters."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from decline_rescue.errors import ConfigurationError
from decline_rescue.observability import logger

UNAVAILABLE = "provider credentials are not available; the function's logs say why"


def _unavailable(secret_id: str, why: str) -> ConfigurationError:
    """Log which secret and why; tell the caller only that credentials are missing."""
    logger.error("provider secret unusable", extra={"secret_id": secret_id, "why": why})
    return ConfigurationError(UNAVAILABLE, reason=why.split(":")[0])


def json_secret(secret_id: str, *, max_age: int, force: bool = False) -> dict[str, Any]:
    """The secret's JSON object; cached for ``max_age`` seconds, re-read when ``force``."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=max_age, force_fetch=force)
    except parameters.exceptions.TransformParameterError:
        raise _unavailable(secret_id, "not_json: the secret is not a JSON object") from None
    except parameters.exceptions.GetParameterError as exc:
        raise _unavailable(secret_id, f"unreadable: {_short(exc)}") from None
    if not isinstance(value, dict):
        raise _unavailable(secret_id, "not_json: the secret is not a JSON object")
    return value


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
