"""Local EventBridge Scheduler: tick the template's schedules (``ScheduleV2`` events).

Each schedule invokes its function at the template's rate (``rate(N unit)``), or every
``LOCAL_SCHEDULE_SECONDS`` when set (a local run cannot wait a minute between polls),
with the event Scheduler sends. ``cron(...)`` schedules tick only with the override.
A tick that finds the previous invocation still running is skipped, and counted.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from devstack.provision import Schedule

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def interval_of(expression: str) -> float | None:
    found = _RATE.match(expression.strip())
    return int(found.group(1)) * _UNIT[found.group(2)] if found else None


def scheduler_event(schedule: Schedule, name: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{name}"],
        "detail": "{}",
    }


class ScheduleTicker:
    def __init__(
        self,
        schedule: Schedule,
        invoke: Callable[[str, dict[str, Any]], tuple[bool, Any]],
        *,
        every_seconds: float | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.schedule = schedule
        self.invoke = invoke
        self.log = log
        self.interval = every_seconds or interval_of(schedule.expression)
        self.ticks = 0
        self.skipped = 0
        self.last_result: Any = None
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"schedule-{schedule.function}")

    def start(self) -> ScheduleTicker:
        if self.interval:
            self._thread.start()
        else:
            self.log(f"schedule {self.schedule.expression} of {self.schedule.function}: not ticked locally")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def tick(self) -> tuple[bool, Any] | None:
        """Invoke once now (None when the previous invocation is still running)."""
        if not self._busy.acquire(blocking=False):
            self.skipped += 1
            return None
        try:
            ok, result = self.invoke(self.schedule.function, scheduler_event(self.schedule, self.schedule.function))
            self.ticks += 1
            self.last_result = result
            if not ok:
                self.log(f"schedule {self.schedule.function} failed: {str(result)[:300]}")
            return ok, result
        finally:
            self._busy.release()

    def _run(self) -> None:
        assert self.interval
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a scheduler keeps ticking
                self.log(f"schedule {self.schedule.function}: {type(exc).__name__}: {exc}")
