"""Provider clients shared by the functions, built once per execution environment."""

from __future__ import annotations

import threading
from typing import Any

_flexfactor: Any = None
_lock = threading.Lock()  # the poller's threads must share one client (one token)


def flexfactor():
    """The FlexFactor client: credentials from Secrets Manager (re-read once on a 401),
    one connection pool and one access token for the execution environment."""
    global _flexfactor
    if _flexfactor is not None:
        return _flexfactor
    with _lock:
        if _flexfactor is None:
            _flexfactor = _build()
    return _flexfactor


def _build():
    from decline_rescue.infra.http import ProviderHttp
    from decline_rescue.infra.secrets import json_secret, require_keys
    from decline_rescue.providers.flexfactor.client import Credentials, FlexFactorClient
    from decline_rescue.runtime import settings

    cfg = settings.flexfactor()

    def credentials(force: bool) -> Credentials:
        raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds, force=force)
        values = require_keys(cfg.secret_id, raw, ("appKey", "appSecret"))
        return Credentials(values["appKey"], values["appSecret"])

    return FlexFactorClient(
        ProviderHttp("flexfactor", cfg.base_url, cfg.calls, retry_statuses=frozenset({409})), credentials
    )


def webhook_keys() -> list[bytes]:
    """The webhook subscriber key(s) from the FlexFactor secret: ``webhookSubscriberKey``
    and, while rotating, ``webhookSubscriberKeyPrevious`` (base64)."""
    import base64
    import binascii

    from decline_rescue.infra.secrets import json_secret, require_base64, require_keys
    from decline_rescue.runtime import settings

    cfg = settings.flexfactor_secret()
    # read with botocore: the webhook function makes botocore clients anyway, no provider calls
    raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds, botocore=True)
    current = require_keys(cfg.secret_id, raw, ("webhookSubscriberKey",))["webhookSubscriberKey"]
    require_base64(cfg.secret_id, "webhookSubscriberKey", current)
    keys = [base64.b64decode(current)]
    previous = raw.get("webhookSubscriberKeyPrevious")
    if isinstance(previous, str) and previous.strip():
        try:
            keys.append(base64.b64decode(previous.strip(), validate=True))
        except (binascii.Error, ValueError):
            pass  # a malformed old key is simply not accepted
    return keys


def reset() -> None:
    global _flexfactor
    _flexfactor = None
