"""AWS clients, created once per execution environment and reused (connections kept).

Made from one botocore session, not through boto3: boto3 adds nothing to a client but
its import (s3transfer, its resource layer: about 20 ms of every cold start), and one
session loads botocore's data files (endpoints, partitions) once for all the clients.
A botocore session is not thread-safe: clients are made under a lock (the poller's
threads ask for them at once), and once made they are shared (clients are thread-safe).
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_session: Any = None
_lock = threading.Lock()


def client(service: str) -> Any:
    made = _clients.get(service)
    if made is not None:
        return made
    with _lock:
        if service not in _clients:
            _clients[service] = _make(service)
        return _clients[service]


def _make(service: str) -> Any:
    global _session
    import botocore.session
    from botocore.config import Config

    if _session is None:
        _session = botocore.session.get_session()
    return _session.create_client(
        service,
        config=Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=2, read_timeout=5),
    )


def reset() -> None:
    """Forget the clients (``runtime.wiring.reset`` calls this with the other resets)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None


def is_aws_failure(exc: BaseException) -> bool:
    """A failure of an AWS service or of the call to it (after botocore's own retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError))
