"""Webhooks: their signature, the delivery switches, the log and the sender.

Each event is one log entry. When ``webhook_url`` is unset nothing is sent and
the fate is ``no-url``. Otherwise a sender thread POSTs the compact JSON body ``{"Event",
"TimeStamp", "EventData", "ExternalOrderId", "OrderId", "ConfirmationId", "IsTestMode":
true, "IsResent"}`` (``EventData`` null for ``order.completed``, as FlexCharge's sample) with
``Content-Type: webhook_content_type`` (``text/plain; charset=utf-8`` by default: the
provider's webhooks are "not sent in application/json") and the headers of
:func:`sign_webhook` (``host`` is the URL's host[:port], sent as the Host header). Every
attempt is signed afresh (new nonce and date); a redelivery (duplicate, retry) says
``"IsResent": true``. ``x-fc-date`` is wall-clock time (receivers bound its skew),
``TimeStamp`` emulator time. Switches, drawn per event from a ``random.Random`` seeded by
``seed``, at most one per event, in this order:

| Switch      | Value       | Fate         | Effect                                                               |
|-------------|-------------|--------------|----------------------------------------------------------------------|
| `drop`      | probability | `dropped`    | never sent                                                           |
| `duplicate` | probability | `duplicated` | sent twice, the second copy `IsResent`                               |
| `reorder`   | probability | `reordered`  | held, sent right after the next sent event of its order (or 2 steps) |
| `delay`     | seconds     | `delayed`    | sent that much (emulator time) later; for `delay_probability` (1)    |
| `retries`   | count (3)   | `failed`     | non-2xx or no connection: retried after 0.2, 0.4, 0.8 ... s          |

Other events are ``delivered``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import random
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from typing import Any

import httpx

from devstack.emulators.flexfactor.clock import TICK_SECONDS
from devstack.emulators.flexfactor.orders import Order, _iso

DEFAULT_WEBHOOK_KEY = base64.b64encode(b"ff-local-webhook-subscriber-key!").decode()
DEFAULT_WEBHOOK_CONTENT_TYPE = "text/plain; charset=utf-8"  # "not sent in application/json"
DEFAULT_RETRIES = 3
WEBHOOK_TIMEOUT = 5.0
RETRY_BACKOFF = 0.2
REORDER_HOLD_STEPS = 2
FATES = ("delivered", "dropped", "duplicated", "reordered", "delayed", "failed", "no-url")
_DEFAULT: Any = object()


def event_data(order: Order, event: str) -> dict[str, Any] | None:
    """An event's ``EventData``: null for ``order.completed`` (as FlexCharge's own sample),
    ``{"status", "amount"}`` for the other order.* events (emulated), ``{}`` otherwise."""
    if event == "order.completed":
        return None
    if event.startswith("order."):
        return {"status": order.status_name, "amount": order.charged}
    return {}


def sign_webhook(
    body: bytes, key_b64: str, host: str, nonce: str | None = None, date: str | None = None
) -> dict[str, str]:
    """The signature headers of a webhook (PROVIDERS.md section 2), keyed by the base64
    subscriber key; ``host`` is the Host header the request is sent with."""
    key = base64.b64decode(key_b64)
    nonce = nonce or secrets.token_hex(16)
    date = date or formatdate(usegmt=True)
    content_hash = base64.b64encode(hashlib.sha512(body).digest()).decode()
    signed = f"POST\n{nonce};{date};{host};{content_hash}".encode()
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha512).digest()).decode()
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content_hash,
        "x-fc-authorization": (
            f"HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature={signature}"
        ),
        "x-fc-signature": base64.b64encode(hmac.new(key, body, hashlib.sha512).digest()).decode(),
    }


@dataclass
class Switches:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_probability: float = 1.0
    seed: int | None = None
    retries: int = DEFAULT_RETRIES


@dataclass(eq=False)  # entries compare by identity
class WebhookEntry:
    """One event in the delivery log."""

    id: int
    event: str
    order_id: str
    external_order_id: str
    timestamp: str
    data: dict[str, Any] | None
    confirmation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fate: str = "delivered"
    attempts: int = 0
    delivered: int = 0  # copies that got a 2xx
    last_status: int | None = None
    last_error: str | None = None
    open_copies: int = 0  # copies not yet delivered nor given up
    held: bool = False  # a reordered event not yet released
    release: list[WebhookEntry] = field(default_factory=list)  # held events to send after this one

    @property
    def pending(self) -> bool:
        return self.held or self.open_copies > 0

    def body(self, resent: bool) -> bytes:
        message = {
            "Event": self.event,
            "TimeStamp": self.timestamp,
            "EventData": self.data,
            "ExternalOrderId": self.external_order_id,
            "OrderId": self.order_id,
            "ConfirmationId": self.confirmation_id,
            "IsTestMode": True,
            "IsResent": resent,
        }
        return json.dumps(message, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "OrderId": self.order_id,
            "ExternalOrderId": self.external_order_id,
            "ConfirmationId": self.confirmation_id,
            "TimeStamp": self.timestamp,
            "EventData": self.data,
            "fate": self.fate,
            "pending": self.pending,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "lastHttpStatus": self.last_status,
            "lastError": self.last_error,
        }


@dataclass
class _Job:
    """A delivery attempt to make (or, ``release``, a held event's hold running out)."""

    entry: WebhookEntry
    kind: str = "send"
    copy: int = 0
    attempt: int = 0  # attempts already made for this copy
    key: tuple[float, int, int] = (0.0, 0, 0)  # (due, seq, sub): heap order


class WebhookDelivery:
    """Mixed into the emulator, whose ``__init__`` sets the state below (emulator time comes
    from :class:`~.clock.Clock`). Events are planned and logged under the store lock; the
    sender thread (``_send_loop``) posts them outside it, one at a time, and records how
    each attempt went."""

    step_seconds: float
    webhook_url: str | None
    webhook_key: str
    webhook_content_type: str
    switches: Switches
    webhook_log: list[WebhookEntry]
    _random: random.Random
    _changed: threading.Condition
    _stopping: threading.Event
    _seq: itertools.count[int]
    _jobs: list[tuple[tuple[float, int, int], int, _Job]]
    _held: dict[str, list[WebhookEntry]]
    _in_flight: int
    _http: httpx.Client | None

    def _push_job(self, job: _Job) -> None:
        heapq.heappush(self._jobs, (job.key, next(self._seq), job))

    def _emit(self, order: Order, event: str, at: datetime, data: Any = _DEFAULT) -> WebhookEntry:
        """Log an event and plan its delivery under the switches (store lock held)."""
        if data is _DEFAULT:
            data = event_data(order, event)
        entry = WebhookEntry(
            id=len(self.webhook_log) + 1,
            event=event,
            order_id=order.id,
            external_order_id=order.reference_number,
            timestamp=_iso(at),
            data=data,
        )
        self.webhook_log.append(entry)
        if not self.webhook_url:
            entry.fate = "no-url"
            return entry
        switches = self.switches
        drop, duplicate, reorder, delay = (self._random.random() for _ in range(4))
        if drop < switches.drop:
            entry.fate = "dropped"
        elif duplicate < switches.duplicate:
            entry.fate = "duplicated"
        elif reorder < switches.reorder:
            entry.fate = "reordered"
        elif switches.delay > 0 and delay < switches.delay_probability:
            entry.fate = "delayed"
        now = self.now_ts()
        if entry.fate == "dropped":
            return entry
        if entry.fate == "reordered":
            entry.held = True
            self._held.setdefault(order.id, []).append(entry)
            hold = now + REORDER_HOLD_STEPS * self.step_seconds
            self._push_job(_Job(entry, kind="release", key=(hold, next(self._seq), 0)))
        else:
            entry.release = self._held.pop(order.id, [])
            due = now + (switches.delay if entry.fate == "delayed" else 0.0)
            self._send_copies(entry, (due, next(self._seq), 0))
        self._changed.notify_all()
        return entry

    def _send_copies(self, entry: WebhookEntry, key: tuple[float, int, int]) -> None:
        for copy in range(2 if entry.fate == "duplicated" else 1):
            entry.open_copies += 1
            self._push_job(_Job(entry, copy=copy, key=key))

    def _release(self, entries: list[WebhookEntry], after: tuple[float, int, int]) -> None:
        """Send held events right after the job keyed ``after`` (store lock held)."""
        for sub, entry in enumerate(entries, start=after[2] + 1):
            if not entry.held:
                continue  # its hold ran out first
            entry.held = False
            held = self._held.get(entry.order_id, [])
            if entry in held:
                held.remove(entry)
            self._send_copies(entry, (after[0], after[1], sub))

    def _next_job(self) -> _Job | None:
        if self._jobs and self._jobs[0][0][0] <= self.now_ts():
            return heapq.heappop(self._jobs)[2]
        return None

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                job = self._next_job()
                if job is None:
                    self._changed.wait(TICK_SECONDS)
                    continue
                if job.kind == "release":
                    self._release([job.entry], (self.now_ts(), next(self._seq), 0))
                    self._changed.notify_all()
                    continue
                url, key, content_type = self.webhook_url, self.webhook_key, self.webhook_content_type
                if url is None:  # unset since the event was planned
                    job.entry.fate, job.entry.open_copies = "no-url", job.entry.open_copies - 1
                    self._changed.notify_all()
                    continue
                self._in_flight += 1
            status, error = self._post(job, url, key, content_type)
            with self._changed:
                self._in_flight -= 1
                self._finish(job, status, error)
                self._changed.notify_all()

    def _post(self, job: _Job, url: str, key: str, content_type: str) -> tuple[int | None, str | None]:
        body = job.entry.body(resent=job.copy > 0 or job.attempt > 0)
        host = httpx.URL(url).netloc.decode("ascii")
        headers = {"Host": host, "Content-Type": content_type, **sign_webhook(body, key, host)}
        try:
            if self._http is None:
                self._http = httpx.Client(timeout=WEBHOOK_TIMEOUT)
            return self._http.post(url, content=body, headers=headers).status_code, None
        except Exception as exc:  # noqa: BLE001 - the sender thread must outlive any failure
            return None, type(exc).__name__

    def _finish(self, job: _Job, status: int | None, error: str | None) -> None:
        entry = job.entry
        entry.attempts += 1
        entry.last_status, entry.last_error = status, error
        if job.copy == 0 and job.attempt == 0 and entry.release:
            self._release(entry.release, job.key)
            entry.release = []
        if status is not None and 200 <= status < 300:
            entry.delivered += 1
            entry.open_copies -= 1
        elif job.attempt < self.switches.retries:
            job.attempt += 1
            job.key = (self.now_ts() + RETRY_BACKOFF * 2 ** (job.attempt - 1), next(self._seq), 0)
            self._push_job(job)
        else:
            entry.fate = "failed"
            entry.open_copies -= 1

    def _pending(self) -> int:
        return sum(entry.pending for entry in self.webhook_log)
