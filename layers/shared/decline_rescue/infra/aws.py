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

# Every AWS call ends well inside every function's timeout (10 s at the least): at most
# ATTEMPTS tries of CONNECT + READ seconds, with standard-mode backoff between them (under
# 1 s after a first failure). DynamoDB and SQS answer in milliseconds; a call that takes
# seconds has failed, and the function must still answer (503) or report the failure
# before Lambda kills it, instead of dying with work half done.
CONNECT_SECONDS = 1.0
READ_SECONDS = 2.0
ATTEMPTS = 2
WORST_CALL_SECONDS = ATTEMPTS * (CONNECT_SECONDS + READ_SECONDS) + 1.0

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
        config=Config(
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            connect_timeout=CONNECT_SECONDS,
            read_timeout=_read_seconds(),
        ),
    )


def _read_seconds() -> float:
    """READ_SECONDS; ``AWS_READ_TIMEOUT_SECONDS`` overrides it for moto at scale (a Query of
    tens of thousands of items takes it seconds), never set by the template."""
    import os

    value = os.environ.get("AWS_READ_TIMEOUT_SECONDS", "").strip()
    return float(value) if value else READ_SECONDS


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
