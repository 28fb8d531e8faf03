"""The emulator's own endpoints, for tests and the local stack to drive and inspect it.

Emulator clock and admin endpoints (no auth):

- ``GET /__emulator/clock`` -> ``{"now", "offset"}``; ``POST /__emulator/clock
  {"advance": seconds >= 0}`` moves the clock on and applies whatever became due before
  answering. ``now() = real time + offset``; a background thread applies due steps every
  50 ms, so tests advance the clock instead of sleeping.
- ``GET``/``POST /__emulator/config``: any of ``step_seconds``, ``capture_window_seconds``
  (changes apply to orders created after them), ``webhook_url`` (null: none),
  ``webhook_key`` (base64 subscriber key), ``webhook_content_type`` (``text/plain;
  charset=utf-8`` by default), ``errorShape`` (how a 400 for missing or invalid fields
  looks: ``flat``, the sandbox's and the default, ``legacy`` ``{"status": "400", "errors"}``
  or ``problem``, ProblemDetails) and ``webhooks: {drop, duplicate, reorder, delay,
  delay_probability, seed, retries}`` (merged into the current switches; a ``seed``
  reseeds). Answers the config; an unknown or bad setting is a 400 naming it.
- ``GET /__emulator/orders`` -> ``{"orders": [{id, referenceNumber, isMIT, scenario,
  status, statusName, final, history: [[statusName, iso]], capturedAmount,
  refundedAmount (minor units, all refunds), chargebacks, mid, ...}]}``; ``final`` is true
  in CANCELLED (or EXPIRED), COMPLETED and RETURNED.
- ``POST /__emulator/orders/{id}/chargeback``, optional ``{"amount": cents}``: a COMPLETED
  or RETURNED order sends ``payment.chargeback.received`` (409 otherwise).
- ``GET /__emulator/webhooks`` -> ``{"pending", "webhooks": [{id, event, OrderId,
  ExternalOrderId, ConfirmationId, TimeStamp, EventData, fate, pending, attempts,
  delivered, lastHttpStatus, lastError}]}``, one entry per event;
  ``POST /__emulator/webhooks/flush``, optional ``{"timeout": seconds}`` (10 by default),
  waits until no delivery is pending (or the timeout) and answers the same.
- ``GET /__emulator/stats``: ``counts``, ``evaluations`` (orders created per idempotency
  key), ``orders`` (the total) and ``webhooks`` (events, attempts, pending, one count per
  fate); ``POST``/``DELETE /__emulator/faults`` as the package docstring says.
"""

from __future__ import annotations

import collections
import math
import random
import threading
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.emulators.base import json_response
from devstack.emulators.flexfactor.clock import TICK_SECONDS
from devstack.emulators.flexfactor.orders import Order, OrderStatus, _iso
from devstack.emulators.flexfactor.responses import _problem
from devstack.emulators.flexfactor.validation import _config_errors, _json_object
from devstack.emulators.flexfactor.webhooks import FATES, Switches, WebhookEntry

FLUSH_TIMEOUT = 10.0


class AdminEndpoints:
    """Mixed into the emulator, whose ``__init__`` sets the state below; the clock comes from
    :class:`~.clock.Clock`, ``_emit`` and ``_pending`` from :class:`~.webhooks.WebhookDelivery`."""

    counts: collections.Counter[str]
    step_seconds: float
    capture_window_seconds: float
    webhook_url: str | None
    webhook_key: str
    webhook_content_type: str
    error_shape: str
    switches: Switches
    orders: dict[str, Order]
    created: dict[str, int]
    webhook_log: list[WebhookEntry]
    _random: random.Random
    _store_lock: threading.Lock
    _changed: threading.Condition
    _clock_offset: float
    _in_flight: int

    def admin_stats(self, request: Request) -> Response:
        with self._store_lock:
            webhooks: dict[str, int] = {
                "events": len(self.webhook_log),
                "attempts": sum(entry.attempts for entry in self.webhook_log),
                "pending": self._pending(),
                **dict.fromkeys(FATES, 0),
            }
            for entry in self.webhook_log:
                webhooks[entry.fate] += 1
            body = {
                "counts": dict(self.counts),
                "evaluations": dict(self.created),
                "orders": len(self.orders),
                "webhooks": webhooks,
            }
        return json_response(200, body)

    def admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = _json_object(request)
            advance = (body or {}).get("advance")
            if not (isinstance(advance, int | float) and not isinstance(advance, bool) and 0 <= advance < math.inf):
                return _problem(400, "advance must be a number of seconds >= 0")
            with self._changed:
                self._clock_offset += float(advance)
                self._process_due()
                self._changed.notify_all()
        return json_response(200, {"now": _iso(self.now()), "offset": self._clock_offset})

    def _config_json(self) -> dict[str, Any]:
        return {
            "step_seconds": self.step_seconds,
            "capture_window_seconds": self.capture_window_seconds,
            "webhook_url": self.webhook_url,
            "webhook_key": self.webhook_key,
            "webhook_content_type": self.webhook_content_type,
            "errorShape": self.error_shape,
            "webhooks": vars(self.switches).copy(),
        }

    def admin_config(self, request: Request) -> Response:
        if request.method == "GET":
            with self._store_lock:
                return json_response(200, self._config_json())
        body = _json_object(request)
        if body is None:
            return _problem(400, "the config must be a JSON object")
        errors = _config_errors(body)
        if errors:
            return json_response(400, {"status": 400, "title": "invalid emulator config", "errors": errors})
        with self._changed:
            for name in ("step_seconds", "capture_window_seconds"):
                if name in body:
                    setattr(self, name, float(body[name]))
            if "webhook_url" in body:
                self.webhook_url = body["webhook_url"] or None
            if "webhook_key" in body:
                self.webhook_key = body["webhook_key"]
            if "webhook_content_type" in body:
                self.webhook_content_type = body["webhook_content_type"].strip()
            if "errorShape" in body:
                self.error_shape = body["errorShape"]
            switches = body.get("webhooks", {})
            for name, value in switches.items():
                setattr(self.switches, name, float(value) if name not in ("seed", "retries") else value)
            if "seed" in switches:
                self._random.seed(switches["seed"])
            self._changed.notify_all()
            return json_response(200, self._config_json())

    def admin_orders(self, request: Request) -> Response:
        with self._store_lock:
            self._process_due()
            orders = [order.admin_json() for order in sorted(self.orders.values(), key=lambda o: o.seq)]
        return json_response(200, {"orders": orders})

    def admin_chargeback(self, request: Request, order_id: str) -> Response:
        body = _json_object(request, empty_ok=True)
        amount = (body or {}).get("amount")
        if body is None or (amount is not None and (isinstance(amount, bool) or not isinstance(amount, int))):
            return _problem(400, 'the body must be empty or {"amount": cents}')
        with self._changed:
            self._process_due()
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            if order.status not in (OrderStatus.Completed, OrderStatus.Returned):
                return _problem(409, f"a chargeback needs a Completed or Returned order, not {order.status_name}")
            order.chargebacks += 1
            data = {"status": order.status_name, "amount": amount if amount is not None else order.charged}
            entry = self._emit(order, "payment.chargeback.received", self.now(), data)
            return json_response(200, entry.as_json())

    def _webhooks_json(self) -> dict[str, Any]:
        return {"pending": self._pending(), "webhooks": [entry.as_json() for entry in self.webhook_log]}

    def admin_webhooks(self, request: Request) -> Response:
        with self._store_lock:
            return json_response(200, self._webhooks_json())

    def admin_flush(self, request: Request) -> Response:
        body = _json_object(request, empty_ok=True) or {}
        timeout = body.get("timeout", FLUSH_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 60:
            return _problem(400, "timeout must be 0..60 seconds")
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending() or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, TICK_SECONDS))
            return json_response(200, self._webhooks_json())
