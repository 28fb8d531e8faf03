"""Provider credentials from Secrets Manager, through Powertools' cached parameters."""

from __future__ import annotations

from typing import Any

from decline_rescue.errors import ConfigurationError


def json_secret(secret_id: str, *, max_age: int, force: bool = False) -> dict[str, Any]:
    """The secret's JSON object; cached for ``max_age`` seconds, re-read when ``force``."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=max_age, force_fetch=force)
    except parameters.exceptions.TransformParameterError:
        raise ConfigurationError(f"secret {secret_id} is not a JSON object") from None
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(f"secret {secret_id} cannot be read: {_short(exc)}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {secret_id} is not a JSON object")
    return value


def require_keys(secret_id: str, value: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    missing = [k for k in keys if not isinstance(value.get(k), str) or not value[k].strip()]
    if missing:
        raise ConfigurationError(f"secret {secret_id} lacks {', '.join(missing)}")
    return {k: value[k].strip() for k in keys}


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
