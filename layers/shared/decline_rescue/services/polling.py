"""Polling: reconcile pending orders with FlexFactor, because webhooks can be lost.

One run (``poll_orders``, on a schedule):
1. reads the pending index shard by shard, earliest ``nextPollAt`` first, only what is due
   (items read grow with the orders due, not with every order ever stored), the next
   page while the current one is worked on;
2. looks each order up (``GET /v1/orders/{orderSessionKey}``) with bounded concurrency,
   inside the invocation's time budget;
3. queues what changed on the order-updates queue (the single writer applies it), ten
   updates per request, sent beside the lookups rather than between them;
4. pushes back the next poll of unchanged orders with exponential backoff (capped, and
   never past the order's expiry plus grace);
5. closes as EXPIRED an order still pending after its ``expiryDateUtc`` (or, without one,
   ``PENDING_MAX_HOURS`` after creation) plus ``EXPIRY_GRACE_SECONDS``, after a final check;
6. reconciles orders claimed ``RECEIVED`` whose submitting request died before recording
   FlexFactor's answer: finds FlexFactor's order by reference number in ``GET /v1/orders``;
   after ``ABANDON_AFTER_SECONDS`` with none there, cancels it by the merchant's orderId
   (``external-cancel``, so a customer is never charged for an order we think was not
   submitted): FlexFactor has none (404) -> NOT_SUBMITTED; it had one and cancelled it ->
   CANCELLED; it refused (the order moved on) -> looked at again on the next run;
7. sends a merchant-initiated decline still ``QUEUED`` after ``QUEUED_RESEND_SECONDS`` to
   the declines queue again (its first send failed, or its message was lost; the
   consumer is idempotent on the decline's key, so a second copy costs nothing).

Orders not reached in a run stay due with their old ``nextPollAt``, so the next run starts
with them: a backlog is worked through, oldest first, without starving any order. When
FlexFactor keeps failing, the run stops early instead of hammering it.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from decline_rescue.domain import statuses as st
from decline_rescue.domain.clock import iso, now_utc
from decline_rescue.domain.clock import parse as _parse
from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.domain.updates import QUEUED_MESSAGE, OrderUpdate
from decline_rescue.providers.flexfactor import vocabulary
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import emit, logger, metrics
from decline_rescue.services import writer

# due orders per index read: ~300 KB of projected items, under a Query's 1 MB answer;
# few, large reads, each made while the previous page is worked on
PAGE = 1000
STOP_AFTER_FAILURES = 10  # consecutive provider failures that end a run early
RESERVE_SECONDS = 3.0  # left at the end of a run for the last sends and writes
ABANDON_LEASE_SECONDS = 300  # a given-up claim's lease while it is cancelled and closed (the close is queued)
QUICK_READ_SECONDS = 0.25  # an index read quicker than this: the shards' first pages at once


@dataclass
class Plan:
    """What a run decided for one order."""

    updates: list[OrderUpdate]
    next_poll_at: str | None = None  # set when the order stays as it is
    outcome: str = "unchanged"


class Poller:
    def __init__(self, *, now: datetime | None = None, rng: random.Random | None = None) -> None:
        self.cfg = settings.lifecycle()
        self.table = wiring.orders()
        self.now = now or now_utc()
        self.rng = rng or random.Random()
        self.counts: Counter[str] = Counter()
        self._failures_in_a_row = 0
        self._oldest_due: str | None = None  # the earliest nextPollAt read (the index's order: text)

    # -- timing ---------------------------------------------------------------------

    def expiry_of(self, item: dict[str, Any]) -> datetime | None:
        expiry = _parse(item.get("expiryDateUtc"))
        if expiry is None:
            created = _parse(item.get("createdAt"))
            expiry = created + timedelta(hours=self.cfg.pending_max_hours) if created else None
        return expiry

    def closing(self, item: dict[str, Any]) -> bool:
        expiry = self.expiry_of(item)
        return expiry is not None and self.now >= expiry + timedelta(seconds=self.cfg.expiry_grace_seconds)

    def next_poll(self, item: dict[str, Any]) -> str:
        polls = int(item.get("polls") or 0)
        interval = min(self.cfg.poll_first_delay_seconds * (2 ** min(polls, 20)), self.cfg.poll_max_interval_seconds)
        interval = max(interval, 1.0) * self.rng.uniform(0.9, 1.1)
        moment = self.now + timedelta(seconds=interval)
        expiry = self.expiry_of(item)
        if expiry is not None:
            last_check = expiry + timedelta(seconds=self.cfg.expiry_grace_seconds)
            if self.now < last_check < moment:
                moment = last_check  # the final check happens on time
        return iso(moment)

    # -- one order ------------------------------------------------------------------

    def _update(self, item: dict[str, Any], **fields: Any) -> OrderUpdate:
        return OrderUpdate(
            updateId=f"poll:{item['orderId']}:{item['version']}:{fields.get('status') or fields.get('event')}",
            source="poll",
            orderId=item["orderId"],
            observedAt=iso(self.now),
            **fields,
        )

    def plan(self, item: dict[str, Any]) -> Plan:
        """Decide one order (calls FlexFactor; raises on provider failure)."""
        status = item["status"]
        key = item.get("orderSessionKey")
        if status == st.QUEUED:
            return self._resend(item)
        if status in st.INTAKE or not key:
            return self._plan_claim(item)
        found = wiring.flexfactor().get_order(str(key))
        if found is None:
            if self.closing(item):
                reason = {"rule": "expired", "detail": "FlexFactor has no such order and its expiry has passed"}
                return Plan([self._update(item, status=st.EXPIRED, reason=reason)], outcome="expired")
            return Plan([], self.next_poll(item), "not_found")
        reference = found.get("referenceNumber")
        if reference and str(reference) != item["orderId"]:
            metrics.add_metric(name=m.POLL_UNTRUSTED, unit="Count", value=1)
            logger.warning("polled order belongs to another reference", extra={"orderId": item["orderId"]})
            return Plan([], self.next_poll(item), "untrusted")
        mapped, event = vocabulary.from_provider_order(found)
        provider_status = vocabulary.provider_status_text(found)[:100]
        updates = []
        if mapped and st.allowed(status, mapped):
            updates.append(self._update(item, status=mapped, providerStatus=provider_status))
        if event:
            updates.append(self._update(item, event=event, providerStatus=provider_status))
        if updates:
            return Plan(updates, outcome="changed")
        if self.closing(item):
            reason = {
                "rule": "expired",
                "detail": f"still {provider_status or status} at FlexFactor after its expiry and grace",
            }
            return Plan(
                [self._update(item, status=st.EXPIRED, providerStatus=provider_status, reason=reason)],
                outcome="expired",
            )
        return Plan([], self.next_poll(item))

    def _resend(self, item: dict[str, Any]) -> Plan:
        """A decline still QUEUED when it is due: its message goes to the declines queue
        again; past its expiry and grace, the order ends NOT_SUBMITTED instead."""
        from decline_rescue.infra import sqs

        state = self.table.get_state(item["orderId"]) or {}
        message = state.get(QUEUED_MESSAGE)
        if state.get("status") != st.QUEUED or not message:
            return Plan([], self.next_poll(item), "unchanged")
        if self.closing(item):  # FlexFactor could no longer retry it: it is never sent
            reason = {"rule": "expired", "detail": "still queued when its expiry and grace had passed"}
            return Plan([self._update(item, status=st.NOT_SUBMITTED, reason=reason)], outcome="expired")
        sqs.send(self.cfg.require("declines_queue_url"), [(message, sqs.attributes(orderId=item["orderId"]))])
        logger.info("queued decline sent again", extra={"orderId": item["orderId"]})
        return Plan([], self.next_poll(item), "resent")

    def _plan_claim(self, item: dict[str, Any]) -> Plan:
        """An order claimed RECEIVED whose request never recorded FlexFactor's answer."""
        created = _parse(item.get("createdAt")) or self.now
        window = {
            "from": iso(created - timedelta(minutes=5)),
            "to": iso(created + timedelta(minutes=15)),
            "pageSize": 100,
            "orderBy": "createdOn",  # the sandbox's sort keys: createdOn, amount
            "sort": "asc",
        }
        for page in range(1, 11):
            answer = wiring.flexfactor().list_orders(**window, pageNumber=page)
            for order in answer.get("items") or []:
                if isinstance(order, dict) and str(order.get("referenceNumber")) == item["orderId"]:
                    mapped, _ = vocabulary.from_provider_order(order)
                    return Plan(
                        [
                            self._update(
                                item,
                                status=mapped or st.SUBMITTED,
                                orderSessionKey=str(order.get("id")),
                                providerStatus=vocabulary.provider_status_text(order)[:100],
                            )
                        ],
                        outcome="recovered",
                    )
            if not answer.get("hasNextPage"):
                break
        if (self.now - created).total_seconds() >= self.cfg.abandon_after_seconds:
            return self._abandon(item)
        return Plan([], self.next_poll(item), "claim_waiting")

    def _abandon(self, item: dict[str, Any]) -> Plan:
        """A claim FlexFactor's list never showed: cancel it by our orderId first, so that an
        order FlexFactor did create (its answer lost) can never charge the customer. The
        claim's lease is taken first (``ABANDON_LEASE_SECONDS``): a retry of the decline
        under its key cannot submit it while it is being closed (it gets 409, then the
        closed order's answer)."""
        until_ms = int((time.time() + ABANDON_LEASE_SECONDS) * 1000)
        if not self.table.take_lease(
            item["orderId"], version=int(item["version"]), status=str(item["status"]), until_ms=until_ms
        ):
            return Plan([], self.next_poll(item), "claim_waiting")  # a request is at work on it right now
        cancelled = wiring.flexfactor().external_cancel(external_order_id=item["orderId"])
        if cancelled is None:
            reason = {
                "rule": "abandoned",
                "detail": "the submitting request ended before FlexFactor answered, and FlexFactor has no such order",
            }
            return Plan([self._update(item, status=st.NOT_SUBMITTED, reason=reason)], outcome="abandoned")
        if cancelled.ok:
            reason = {
                "rule": "abandoned_cancelled",
                "detail": "the submitting request ended before FlexFactor answered; FlexFactor had the order "
                "and cancelled it by our orderId (external-cancel)",
            }
            update = self._update(item, status=st.CANCELLED, reason=reason, providerStatus="external-cancel")
            return Plan([update], outcome="abandoned_cancelled")
        self.table.release_lease(item["orderId"], until_ms=until_ms)
        logger.warning(
            "external-cancel of an abandoned claim refused",
            extra={"orderId": item["orderId"], "http": cancelled.http_status, "why": cancelled.message[:200]},
        )
        return Plan([], self.next_poll(item), "claim_waiting")

    # -- the run --------------------------------------------------------------------

    def _due(self):
        """Due orders, shards interleaved page by page, earliest first within a shard. The
        next page is read (in its own thread) while this one's orders are worked on, so
        the lookups never wait for a read; ``read`` counts what was read, a page read
        ahead by a run that ends early included."""
        from decline_rescue.infra.orders_store import PENDING_SHARDS

        now = iso(self.now)
        turns: deque[tuple[str, Any]] = deque((f"P{i}", None) for i in range(PENDING_SHARDS))

        def read(shard: str, start: Any) -> tuple[str, list[dict[str, Any]], Any]:
            items, cursor = self.table.due(shard, now, limit=PAGE, start=start)
            return shard, items, cursor

        with ThreadPoolExecutor(max_workers=PENDING_SHARDS, thread_name_prefix="poll-read") as reader:

            def submit(turn: tuple[str, Any]) -> Future:
                return reader.submit(contextvars.copy_context().run, read, *turn)

            # the first page of every shard is read at once (on a cold start the run is
            # mostly these round trips; the first read makes the client the others use),
            # then one page ahead of the work, as the shards take turns. Only while reads
            # are quick: the second one is timed, and a slow index (a large backlog, a
            # table that is throttled or overloaded) is not sent a burst of reads at once
            ahead: deque[Future] = deque([submit(turns.popleft())])
            ahead[0].result()
            if turns:
                began = time.monotonic()
                ahead.append(submit(turns.popleft()))
                ahead[-1].result()
                if time.monotonic() - began < QUICK_READ_SECONDS:
                    ahead.extend(submit(turns.popleft()) for _ in range(len(turns)))
            try:
                while ahead:
                    shard, items, cursor = ahead.popleft().result()
                    self.counts["read"] += len(items)
                    self._saw_due(items)
                    if cursor is not None:
                        turns.append((shard, cursor))  # this shard's next page, after the others'
                    if not ahead and turns:
                        ahead.append(submit(turns.popleft()))
                    yield from items
            finally:  # pages read ahead of a run that stopped early were read all the same
                for future in ahead:
                    with suppress(Exception):
                        self.counts["read"] += len(future.result()[1])
                        self._saw_due(future.result()[1])
                self._emit_lag()

    def _saw_due(self, items: list[dict[str, Any]]) -> None:
        """A page of due orders, earliest first (the index's sort key is ``nextPollAt``)."""
        first = items[0].get("nextPollAt") if items else None
        if isinstance(first, str) and (self._oldest_due is None or first < self._oldest_due):
            self._oldest_due = first

    def _emit_lag(self) -> None:
        """PollerLag: how long the oldest due order this run read had been due when the run
        began (0 when none was due); once per run, whether it ended well or not. Every
        shard's first page is read first, so the oldest of all is seen, unless a run whose
        index reads are slow stopped before reaching a shard."""
        due_since = _parse(self._oldest_due)
        lag = max((self.now - due_since).total_seconds(), 0.0) if due_since else 0.0
        emit([(m.POLLER_LAG, "Seconds", round(lag, 3))], {})

    def _work(self, item: dict[str, Any]) -> Plan:
        try:
            plan = self.plan(item)
        except DeclineRescueError as exc:
            self._failures_in_a_row += 1
            logger.warning("poll failed", extra={"orderId": item.get("orderId"), "error": exc.code})
            plan = Plan([], self.next_poll(item), "failed")
        else:
            self._failures_in_a_row = 0
        if plan.next_poll_at:
            writer.schedule_poll(item["orderId"], plan.next_poll_at, version=int(item["version"]), count=True)
        return plan

    def run(self, *, budget_seconds: float, lambda_context: Any = None) -> dict[str, int]:
        started = time.monotonic()
        outbox: list[OrderUpdate] = []
        stop_at = started + max(budget_seconds - RESERVE_SECONDS, 0.5)
        with (
            within(budget_seconds, lambda_context=lambda_context) as deadline,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="poll-send") as sender,
        ):
            stop_at = min(stop_at, deadline - RESERVE_SECONDS)
            sends: list[Future] = []

            def send(batch: list[OrderUpdate]) -> None:
                # full batches go out beside the lookups; a failed send fails the run (what
                # it would have queued stays due: the next run finds it again)
                for future in [f for f in sends if f.done()]:
                    future.result()
                    sends.remove(future)
                sends.append(sender.submit(contextvars.copy_context().run, writer.enqueue, batch))

            with ThreadPoolExecutor(max_workers=self.cfg.poll_concurrency, thread_name_prefix="poll") as pool:
                running: set[Future] = set()

                def collect(done: set[Future]) -> None:
                    for future in done:
                        plan = future.result()
                        self.counts[plan.outcome] += 1
                        self.counts["queued"] += len(plan.updates)
                        outbox.extend(plan.updates)
                    while len(outbox) >= 10:
                        send(outbox[:10])
                        del outbox[:10]

                with closing(self._due()) as due:
                    for item in due:
                        if time.monotonic() >= stop_at or self._failures_in_a_row >= STOP_AFTER_FAILURES:
                            self.counts["stopped_early"] = 1
                            break
                        # each task runs in a copy of this context: the invocation's deadline
                        # bounds the provider calls made in the pool's threads too
                        running.add(pool.submit(contextvars.copy_context().run, self._work, item))
                        if len(running) >= self.cfg.poll_concurrency * 2:
                            done, running = wait(running, return_when=FIRST_COMPLETED)
                            collect(done)
                done, _ = wait(running)
                collect(done)
            if outbox:
                send(outbox)
            for future in sends:
                future.result()
        summary = dict(self.counts)
        summary["seconds_ms"] = int((time.monotonic() - started) * 1000)
        for name, metric in m.POLL_COUNTS.items():
            if self.counts[name]:
                metrics.add_metric(name=metric, unit="Count", value=self.counts[name])
        logger.info("poll run", extra=summary)
        return summary


def run(*, lambda_context: Any = None, budget_seconds: float | None = None) -> dict[str, int]:
    """One poller run within the invocation (its remaining time less a margin)."""
    if budget_seconds is None:
        budget_seconds = 55.0
    return Poller().run(budget_seconds=budget_seconds, lambda_context=lambda_context)
