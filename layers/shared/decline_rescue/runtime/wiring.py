"""The wiring of an execution environment: every client a function builds lazily, built
once and reused across invocations (connections, tokens and key caches stay warm), and
the one ``reset`` that forgets them all (a new execution environment; tests between cases).

Imports are lazy, here and only here: a function imports what its first invocation uses
(``tests/unit/test_cold_imports.py`` keeps it so).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from decline_rescue.runtime import settings

_lock = threading.Lock()  # the poller's threads must share one FlexFactor client (one token)
_flexfactor: Any = None
_cybersource: Any = None


@lru_cache(maxsize=1)
def orders():
    """The orders table (state, history, nonces, reattempt counters)."""
    from decline_rescue.infra.orders_store import OrdersTable

    return OrdersTable(settings.orders_table())


def flexfactor():
    """The FlexFactor client: credentials from Secrets Manager (re-read once on a 401),
    one connection pool and one access token for the execution environment."""
    global _flexfactor
    if _flexfactor is not None:
        return _flexfactor
    with _lock:
        if _flexfactor is None:
            _flexfactor = _build_flexfactor()
    return _flexfactor


def _build_flexfactor():
    from decline_rescue.infra.http import ProviderHttp
    from decline_rescue.infra.secrets import json_secret, require_keys
    from decline_rescue.providers.flexfactor.client import Credentials, FlexFactorClient

    cfg = settings.flexfactor()

    def credentials(force: bool) -> Credentials:
        raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds, force=force)
        values = require_keys(cfg.secret_id, raw, ("appKey", "appSecret"))
        return Credentials(values["appKey"], values["appSecret"])

    return FlexFactorClient(
        ProviderHttp("flexfactor", cfg.base_url, cfg.calls, retry_statuses=frozenset({409})), credentials
    )


def flexfactor_merchant() -> dict[str, str]:
    """mid and siteId from the FlexFactor secret, for declines that do not carry them."""
    from decline_rescue.infra.secrets import json_secret

    cfg = settings.flexfactor()
    raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds)
    return {k: str(raw[k]) for k in ("mid", "siteId") if raw.get(k)}


def webhook_keys() -> list[bytes]:
    """The webhook subscriber key(s) from the FlexFactor secret: ``webhookSubscriberKey``
    and, while rotating, ``webhookSubscriberKeyPrevious`` (base64)."""
    import base64
    import binascii

    from decline_rescue.infra.secrets import json_secret, require_base64, require_keys

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


def cybersource():
    """The Cybersource Flex client (connections and the public-key cache kept warm)."""
    global _cybersource
    if _cybersource is None:
        from decline_rescue.infra.http import ProviderHttp
        from decline_rescue.infra.secrets import json_secret, require_base64, require_keys
        from decline_rescue.providers.cybersource.client import Credentials, CybersourceClient

        cfg = settings.cybersource()

        def credentials(force: bool) -> Credentials:
            raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds, force=force)
            values = require_keys(cfg.secret_id, raw, ("merchantId", "keyId", "sharedSecret"))
            require_base64(cfg.secret_id, "sharedSecret", values["sharedSecret"])
            return Credentials(values["merchantId"], values["keyId"], values["sharedSecret"])

        _cybersource = CybersourceClient(
            ProviderHttp("cybersource", cfg.base_url, cfg.calls), credentials, leeway_seconds=cfg.jwt_leeway_seconds
        )
    return _cybersource


def reset() -> None:
    """Forget everything an execution environment keeps: settings, AWS clients, secrets
    read, provider clients, the orders table."""
    global _flexfactor, _cybersource
    from decline_rescue.infra import aws, secrets

    with _lock:
        _flexfactor = None
        if _cybersource is not None:
            _cybersource.http.close()
        _cybersource = None
    orders.cache_clear()
    aws.reset()
    secrets.reset()
    settings.reset()
