"""One HTTP client per provider, kept across warm invocations, with bounded retries.

Retries happen on timeouts, transport errors and 5xx (plus any status a provider marks
as "try again", e.g. FlexFactor's 409 in progress), with exponential backoff and jitter,
and never past the call's time budget. Everything else is returned to the caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from decline_rescue.errors import ProviderTimeout, ProviderUnavailable
from decline_rescue.observability import logger
from decline_rescue.settings import ProviderCallSettings


@dataclass(frozen=True)
class Prepared:
    """What one attempt sends: built per attempt so signatures and dates are fresh."""

    headers: dict[str, str]
    content: bytes | None = None


class ProviderHttp:
    def __init__(
        self,
        provider: str,
        base_url: str,
        calls: ProviderCallSettings,
        *,
        retry_statuses: frozenset[int] = frozenset(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.calls = calls
        self.retry_statuses = retry_statuses
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(calls.read_timeout, connect=calls.connect_timeout),
            limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60.0),
            follow_redirects=False,
        )

    @property
    def host(self) -> str:
        """The Host header value httpx sends (``host`` or ``host:port``)."""
        url = self._client.base_url
        default_port = {"http": 80, "https": 443}.get(url.scheme)
        if url.port is None or url.port == default_port:
            return url.host
        return f"{url.host}:{url.port}"

    def _retryable(self, status: int) -> bool:
        return status >= 500 or status in self.retry_statuses

    def request(self, method: str, path: str, prepare: Callable[[], Prepared]) -> httpx.Response:
        calls = self.calls
        deadline = time.monotonic() + calls.budget_seconds
        failure: str = ""
        timed_out = False
        for attempt in range(1, calls.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            prepared = prepare()
            timeout = httpx.Timeout(min(calls.read_timeout, remaining), connect=min(calls.connect_timeout, remaining))
            try:
                response = self._client.request(
                    method, path, headers=prepared.headers, content=prepared.content, timeout=timeout
                )
            except httpx.TimeoutException as exc:
                failure, timed_out = f"timed out ({type(exc).__name__})", True
            except httpx.TransportError as exc:
                failure, timed_out = f"unreachable ({type(exc).__name__})", False
            else:
                if not self._retryable(response.status_code):
                    return response
                failure, timed_out = f"HTTP {response.status_code}", False
                response.close()
            logger.warning(
                "provider call failed",
                extra={"provider": self.provider, "path": path, "attempt": attempt, "failure": failure},
            )
            if attempt == calls.max_attempts:
                break
            pause = calls.backoff_base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if time.monotonic() + pause >= deadline:
                timed_out = timed_out or not failure
                break
            self._sleep(pause)
        if timed_out:
            raise ProviderTimeout(
                self.provider,
                f"{self.provider} did not answer within {calls.budget_seconds:g}s",
                reason=failure or "budget exhausted",
            )
        raise ProviderUnavailable(
            self.provider,
            f"{self.provider} is unavailable after {attempt} attempt(s)",
            reason=failure,
        )

    def close(self) -> None:
        self._client.close()
