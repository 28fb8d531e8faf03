"""Logger, tracer and metrics shared by every function (Powertools).

The logger's formatter redacts card numbers and CVVs from every record, whatever the
caller put in it. Service name, log level, metrics namespace and tracing switches come
from the POWERTOOLS_* environment variables set in the template's Globals.

The tracer is Powertools' ``Tracer``, made when a handler is first decorated with it and
only when tracing is on: made at import, it imports the X-Ray SDK (a third of a cold
start) even when tracing is off. Off (``POWERTOOLS_TRACE_DISABLED``, or outside Lambda,
by Powertools' own rule), ``capture_lambda_handler`` leaves the handler as it is, which
is what the disabled Tracer's wrapper amounts to; on (deployed), the handler is wrapped
at import by the real Tracer, which patches boto3 and httpx as before.

Metrics: ``metrics`` is the invocation's Powertools ``Metrics`` (counters by ``service``,
printed when the handler ends); ``emit`` prints the recovery metrics, which have
dimension sets of their own, and ``provider_call`` measures provider calls with it
(names and dimension sets: ``runtime.metric_names``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from decline_rescue.domain.carddata import redact
from decline_rescue.domain.errors import ProviderError
from decline_rescue.runtime import metric_names as m


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with card data removed before serialisation, by the
    detector the /evaluate contract refuses card data with (``domain.carddata``: card
    numbers after Unicode normalisation, with any separators, in strings, integers and
    floats; values under keys naming a CVV or a card number; nesting past
    ``carddata.REDACT_MAX_DEPTH`` replaced). A record redaction cannot read is never
    printed as it came: a line saying so is printed instead (a log line must not fail)."""

    def serialize(self, log: dict) -> str:
        try:
            safe = redact(log)
        except Exception as exc:  # noqa: BLE001 - the record is dropped, never printed unredacted
            kept = ("level", "timestamp", "service")  # (ours, never the caller's data)
            safe = {key: log[key] for key in kept if isinstance(log.get(key), str)}
            safe["message"] = f"log record not printed: redaction failed ({type(exc).__name__})"
        return super().serialize(safe)


def tracing_enabled() -> bool:
    """Powertools' rule (``Tracer._is_tracer_disabled``): off when POWERTOOLS_TRACE_DISABLED
    is true, outside Lambda, or in SAM's or Chalice's local emulators."""
    from aws_lambda_powertools.tracing.tracer import Tracer  # light: the X-Ray SDK is lazy there

    return not Tracer._is_tracer_disabled()


class LazyTracer:
    """Powertools' Tracer, created on first use (see the module docstring)."""

    def __init__(self) -> None:
        self._tracer: Any = None

    @property
    def real(self) -> Any:
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(self, lambda_handler: Any = None, **options: Any) -> Any:
        if lambda_handler is None:
            return functools.partial(self.capture_lambda_handler, **options)
        if not tracing_enabled():
            return lambda_handler
        return self.real.capture_lambda_handler(lambda_handler, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


logger = Logger(logger_formatter=RedactingFormatter())
tracer = LazyTracer()
metrics = Metrics()


# -- recovery metrics: their own dimension sets (runtime.metric_names) ----------------

STACK_ENV = "STACK_NAME"  # the template's Globals set it to the stack's name: the Stack dimension


def emit(
    values: Iterable[tuple[str, str, float]],
    dimensions: Mapping[str, str],
    *,
    rollups: Iterable[Iterable[str]] = (),
    service_total: bool = False,
) -> None:
    """Print ``values`` ((name, unit, value) each) at once, as one EMF record of their own:
    by ``dimensions``, and by each of ``rollups`` (names among ``dimensions``; an empty
    one: the stack alone), every set with ``service`` and ``Stack``; ``service_total``: by
    ``service`` alone too, the one set of the function-wide ``metrics``, so that a metric
    counted there before keeps its series. Powertools ``Metrics`` prints every metric of an
    invocation with one dimension set; these have others, so each is a Powertools
    ``EphemeralMetrics`` of its own (nothing shared), printed in one write (``print``
    writes the line and its newline apart: the poller's threads would interleave them).
    Never raises: a metric that cannot be printed is logged and dropped, never failing the
    work it measures."""
    values = list(values)
    try:
        from aws_lambda_powertools.metrics import EphemeralMetrics
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        record = EphemeralMetrics()
        for name, unit, value in values:
            record.add_metric(name=name, unit=unit, value=value)
        stack = os.environ.get(STACK_ENV, "").strip()
        scope = {m.STACK: stack} if stack else {}
        for name, value in {**scope, **dimensions}.items():
            record.add_dimension(name=name, value=value)
        service = {m.SERVICE: str(record.service)} if record.service else {}
        for names in rollups:
            record.add_dimensions(**service, **scope, **{name: dimensions[name] for name in names})
        if service_total and service:
            record.add_dimensions(**service)
        if not is_metrics_disabled():
            sys.stdout.write(json.dumps(record.serialize_metric_set(), separators=(",", ":")) + "\n")
    except Exception as exc:  # noqa: BLE001 - a metric must never fail the work it measures
        logger.warning("metric not emitted", extra={"metrics": [v[0] for v in values], "error": type(exc).__name__})


# EMF takes at most 100 values per metric in one record
EMF_MAX_VALUES = 99  # Powertools prints a metric set by itself at its 100th value


class _CallBatch:
    """Provider calls measured while a batch is open (``batched_provider_calls``): kept by
    (provider, operation) and printed as few EMF records, not one per call."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self.lock = threading.Lock()

    def add(self, provider: str, operation: str, elapsed_ms: float, failed: int) -> None:
        with self.lock:
            self.calls.setdefault((provider, operation), []).append((elapsed_ms, failed))

    def flush(self) -> None:
        with self.lock:
            calls, self.calls = self.calls, {}
        for (provider, operation), measured in calls.items():
            for start in range(0, len(measured), EMF_MAX_VALUES):
                chunk = measured[start : start + EMF_MAX_VALUES]
                emit(
                    [(m.PROVIDER_LATENCY, "Milliseconds", round(ms, 1)) for ms, _ in chunk]
                    + [(m.PROVIDER_ERRORS, "Count", failed) for _, failed in chunk],
                    {m.PROVIDER: provider, m.OPERATION: operation},
                    rollups=[(m.PROVIDER,)],
                )


_batch: contextvars.ContextVar[_CallBatch | None] = contextvars.ContextVar("provider_call_batch", default=None)


@contextlib.contextmanager
def batched_provider_calls() -> Iterator[None]:
    """Within: provider calls are measured as always, but printed together at the end (up
    to 100 values per metric in one EMF record, as EMF allows) instead of one record per
    call. The threads a caller starts with ``contextvars.copy_context()`` share the batch.
    For work that makes many calls at once (a poll worker: one lookup per order)."""
    batch = _CallBatch()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        batch.flush()


def provider_call(provider: str, operation: str) -> Callable[[Any], Any]:
    """Decorate a provider client's method: each call's latency (``ProviderLatency``, ms,
    retries and the token it may fetch included) and ``ProviderErrors`` (1 when it ended
    in a ``ProviderError``: timeout, unavailable after retries, credentials refused,
    refused or unreadable answer; 0 otherwise, so that its Average is the error rate), by
    provider and operation, and by provider. A refusal the provider answered on purpose
    (a 400 naming our fields, a capture it declines) is an answer, not an error."""

    def decorate(function: Any) -> Any:
        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            failed = 0
            try:
                return function(*args, **kwargs)
            except ProviderError:
                failed = 1
                raise
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                batch = _batch.get()
                if batch is not None:
                    batch.add(provider, operation, elapsed_ms, failed)
                else:
                    emit(
                        [
                            (m.PROVIDER_LATENCY, "Milliseconds", round(elapsed_ms, 1)),
                            (m.PROVIDER_ERRORS, "Count", failed),
                        ],
                        {m.PROVIDER: provider, m.OPERATION: operation},
                        rollups=[(m.PROVIDER,)],
                    )

        return measured

    return decorate
