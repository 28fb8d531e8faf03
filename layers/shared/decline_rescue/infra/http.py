"""One HTTP client per provider, kept across warm invocations, with bounded retries.

Retries happen on timeouts, transport errors, 429 and 5xx (plus any status a provider
marks as "try again", e.g. FlexFactor's 409 in progress), with exponential backoff and
jitter (or the provider's Retry-After), and never past the call's time budget nor the
invocation's (``decline_rescue.runtime.deadline``): the body is read in chunks against the same
deadline, so a provider that trickles its answer cannot hold the function past it.
Everything else is returned to the caller.
"""

from __future__ import annotations

import functools
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from decline_rescue.domain.errors import ProviderTimeout, ProviderUnavailable
from decline_rescue.runtime import deadline as invocation
from decline_rescue.runtime.observability import logger
from decline_rescue.runtime.settings import ProviderCallSettings


def tls_context() -> ssl.SSLContext:
    """The TLS context every provider client shares: the one httpx would make for each
    (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), made once per execution
    environment instead of once per client (loading the CAs is ~10 ms of a cold start)."""
    cert_file = os.environ.get("SSL_CERT_FILE") or None
    changed = None
    if cert_file:
        try:
            changed = os.stat(cert_file).st_mtime_ns
        except OSError:
            pass
    return _tls_context(cert_file, os.environ.get("SSL_CERT_DIR") or None, changed)


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None, changed: int | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR itself


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
            verify=tls_context(),
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

    def _send(self, method: str, path: str, prepared: Prepared, deadline: float) -> httpx.Response:
        remaining = deadline - time.monotonic()
        timeout = httpx.Timeout(
            min(self.calls.read_timeout, remaining), connect=min(self.calls.connect_timeout, remaining)
        )
        request = self._client.build_request(
            method, path, headers=prepared.headers, content=prepared.content, timeout=timeout
        )
        response = self._client.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():  # decoded (gzip etc.), as .content would be
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer did not arrive within the budget", request=request)
            response._content = b"".join(chunks)  # httpx caches a read body here
        finally:
            response.close()
        return response

    def request(
        self,
        method: str,
        path: str,
        prepare: Callable[[], Prepared],
        *,
        retry_statuses: frozenset[int] | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """Send with retries; ``retry_statuses`` replaces the client's extra retryable
        statuses for this call (a 409 means "in progress" on one endpoint, "wrong state"
        on another); ``attempts`` caps the attempts (1: a call that must never be sent
        twice, such as a refund, which carries no idempotency key)."""
        calls = self.calls._replace(max_attempts=attempts) if attempts else self.calls
        extra = self.retry_statuses if retry_statuses is None else retry_statuses
        deadline = time.monotonic() + calls.budget_seconds
        outer = invocation.current()
        if outer is not None:
            deadline = min(deadline, outer)
        failure: str = ""
        timed_out = False
        retry_after = 0.0
        for attempt in range(1, calls.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                response = self._send(method, path, prepare(), deadline)
            except httpx.TimeoutException as exc:
                failure, timed_out = f"timed out ({type(exc).__name__})", True
            except httpx.TransportError as exc:
                failure, timed_out = f"unreachable ({type(exc).__name__})", False
            else:
                status = response.status_code
                if not (status >= 500 or status == 429 or status in extra):
                    return response
                failure, timed_out = f"HTTP {response.status_code}", False
                retry_after = _retry_after(response)
            logger.warning(
                "provider call failed",
                extra={"provider": self.provider, "path": path, "attempt": attempt, "failure": failure},
            )
            if attempt == calls.max_attempts:
                break
            pause = max(retry_after, calls.backoff_base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
            retry_after = 0.0
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


def _retry_after(response: httpx.Response) -> float:
    """Seconds the provider asked us to wait (delta-seconds form only), capped at 5."""
    value = response.headers.get("Retry-After", "")
    return min(float(value), 5.0) if value.strip().isdigit() else 0.0
