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
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from decline_rescue.domain.carddata import redact


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
