"""Emulator time and the order timeline: ``now()`` is real time plus the offset
``POST /__emulator/clock`` adds, and the clock thread applies the scheduled order steps
as they fall due, so tests advance the clock instead of sleeping.
"""

from __future__ import annotations

import heapq
import threading
import time
from datetime import datetime

from devstack.emulators.flexfactor.orders import Order, Step, _moment

TICK_SECONDS = 0.05  # how often the background threads look for due work


class Clock:
    """Mixed into the emulator, whose ``__init__`` sets the state below; ``_process_due``
    sends each step's events through ``_emit`` (:class:`~.webhooks.WebhookDelivery`)."""

    orders: dict[str, Order]
    _changed: threading.Condition
    _stopping: threading.Event
    _clock_offset: float
    _timeline: list[tuple[float, int, str, Step]]

    def now_ts(self) -> float:
        """Emulator time: real time plus the offset ``POST /__emulator/clock`` adds."""
        return time.time() + self._clock_offset

    def now(self) -> datetime:
        return _moment(self.now_ts())

    def _tick_loop(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            with self._changed:
                if self._process_due():
                    self._changed.notify_all()

    def _process_due(self) -> bool:
        """Apply every scheduled step now due (the caller holds the store lock)."""
        now, applied = self.now_ts(), False
        while self._timeline and self._timeline[0][0] <= now:
            due, _, order_id, step = heapq.heappop(self._timeline)
            order = self.orders[order_id]
            if order.status_name != step.expect:
                continue  # a cancel, capture or refund came first
            at = _moment(due)
            if step.to is not None:
                order.move(step.to, at, step.name)
            for event in step.events:
                self._emit(order, event, at)
            applied = True
        return applied
