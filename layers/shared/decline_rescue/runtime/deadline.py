"""One time budget per invocation, shared by every provider call made inside it.

The handler (or the domain) opens ``within(seconds)``; every provider call made inside
stops retrying, and stops reading, when the budget is spent, so the invocation answers
a 504 itself instead of being killed by the Lambda timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("decline_rescue_deadline", default=None)


@contextmanager
def within(seconds: float, *, lambda_context=None, margin_seconds: float = 1.0) -> Iterator[float]:
    """Set the invocation's deadline: ``seconds`` from now, never later than the Lambda
    context's remaining time less a margin, never later than an enclosing deadline."""
    deadline = time.monotonic() + seconds
    if lambda_context is not None:
        remaining = lambda_context.get_remaining_time_in_millis() / 1000.0 - margin_seconds
        deadline = min(deadline, time.monotonic() + max(remaining, 0.1))
    outer = _deadline.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def current() -> float | None:
    """The monotonic deadline in force, if any."""
    return _deadline.get()
