"""Count the AWS requests code makes, from botocore's own event hooks.

``AwsMeter.watch(client)`` registers on one client's events; ``with meter.installed():``
registers on every client created meanwhile (boto3's default session, Powertools'
own sessions, any other), so nothing the functions do escapes it. Each call is recorded
with its parameters, its answer and its duration, under the meter's current ``label``
(calls made while ``label`` is None are not recorded: the benchmark's own set-up).

DynamoDB sizes follow AWS's item-size rules (attribute names plus values; numbers about
one byte per two digits plus one), which is what capacity units are charged on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    label: str
    service: str  # botocore's service id, hyphenized: dynamodb, sqs, eventbridge, secrets-manager
    operation: str
    params: dict[str, Any]
    parsed: dict[str, Any]
    status: int
    seconds: float


class AwsMeter:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.label: str | None = None
        self._lock = threading.Lock()

    # -- hooks ----------------------------------------------------------------------

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params
        context["bench_started"] = time.perf_counter()
        context["bench_label"] = self.label

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        label = context.get("bench_label")
        if label is None:
            return
        started = context.get("bench_started") or time.perf_counter()
        call = Call(
            label,
            model.service_model.service_id.hyphenize(),
            model.name,
            context.get("bench_params") or {},
            parsed or {},
            int(getattr(http_response, "status_code", 0) or 0),
            time.perf_counter() - started,
        )
        with self._lock:
            self.calls.append(call)

    def watch(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-parameter-build", self._before, unique_id=f"bench-meter-before-{id(self)}")
        events.register("after-call", self._after, unique_id=f"bench-meter-after-{id(self)}")
        return client

    @contextmanager
    def installed(self) -> Iterator[AwsMeter]:
        """Watch every botocore client created inside the block."""
        import botocore.session

        original = botocore.session.Session.create_client
        meter = self

        def create_client(session, *args: Any, **kwargs: Any):
            return meter.watch(original(session, *args, **kwargs))

        botocore.session.Session.create_client = create_client
        try:
            yield self
        finally:
            botocore.session.Session.create_client = original

    @contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        previous, self.label = self.label, label
        try:
            yield
        finally:
            self.label = previous

    def note(self, service: str, operation: str) -> None:
        """Record a request made without botocore (under the current label)."""
        if self.label is not None:
            with self._lock:
                self.calls.append(Call(self.label, service, operation, {}, {}, 200, 0.0))

    def take(self, label: str | None = None) -> list[Call]:
        """The calls recorded (under ``label``, or all), removed from the meter."""
        with self._lock:
            taken = [c for c in self.calls if label is None or c.label == label]
            self.calls = [c for c in self.calls if not (label is None or c.label == label)]
        return taken


# -- DynamoDB item sizes (what capacity units are charged on) ------------------------


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON (AWS's documented rules)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(str(inner).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner) if isinstance(inner, bytes) else math.ceil(len(inner) * 3 / 4)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in inner.items())
    return 1


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """On-demand write request units of one item write: 1 per started KB."""
    return max(1, math.ceil(size / 1024))


def read_units(size: int, *, consistent: bool) -> float:
    """Read request units of one read of ``size`` bytes: 1 per started 4 KB strongly
    consistent, half that eventually consistent."""
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2
