"""Polling: reconcile pending orders with FlexFactor, because webhooks can be lost.

The work fans out (issue 15): a scheduled dispatcher (``dispatch``) puts one work item per
pending-index shard on the poll-work queue; SQS-triggered workers (``handle_work``, at
most the mapping's MaximumConcurrency at once) each reconcile one item:
1. read one page of the shard's due orders, earliest ``nextPollAt`` first (items read grow
   with the orders due, not with every order stored); a full page hands the shard's next
   page on at once, so a deep shard is worked by parallel workers, page by page;
2. take each order with one conditional write that moves its next poll (backoff,
   capped, never past the order's expiry plus grace) on condition that it is still where
   it was read: only the worker that moved it polls it, so no order is polled twice for
   one dispatch, whatever duplicates or overlaps the queue delivers;
3. look it up (``GET /v1/orders/{orderSessionKey}``) with bounded concurrency, inside
   the invocation's time budget, and queue what changed on the order-updates queue (the
   single writer applies it), ten updates per request, beside the lookups;
4. close as EXPIRED an order still pending after its ``expiryDateUtc`` (or, without one,
   ``PENDING_MAX_HOURS`` after creation) plus ``EXPIRY_GRACE_SECONDS``, after a final check;
5. reconcile orders claimed ``RECEIVED`` whose submitting request died before recording
   FlexFactor's answer: find FlexFactor's order by reference number in ``GET /v1/orders``;
   after ``ABANDON_AFTER_SECONDS`` with none there, cancel it by the merchant's orderId
   (``external-cancel``, so a customer is never charged for an order we think was not
   submitted): FlexFactor has none (404) -> NOT_SUBMITTED; it had one and cancelled it ->
   CANCELLED; it refused (the order moved on) -> looked at again later;
6. send a merchant-initiated decline still ``QUEUED`` after ``QUEUED_RESEND_SECONDS`` to
   the declines queue again (the consumer is idempotent on the decline's key).

What a worker does not reach in its budget is handed on (a rest bounded by its page: the
orders polled meanwhile are no longer due, so nothing starves and nothing is read twice
but the remainder). When FlexFactor keeps failing (``STOP_AFTER_FAILURES`` in a row) the
worker opens the poller's breaker (an item in the orders table): the whole fleet backs
off, not each worker on its own; its work waits on the queue (SQS delay) until the breaker
closes, doubling per opening in a row up to ``BREAKER_MAX_SECONDS``; a success closes it.
The shard count (``PENDING_SHARDS``) may grow without a migration: new writes spread over
more shards and the dispatcher reads all of them; it must never shrink.
"""

from __future__ import annotations

import contextvars
import random
import re
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
from decline_rescue.runtime.observability import batched_provider_calls, emit, logger, metrics
from decline_rescue.services import writer

# Settings (``settings.lifecycle()``): a work item's page (POLL_PAGE_SIZE, 1000: ~300 KB of
# projected items, under a Query's 1 MB answer; a full page hands the next one to a
# sibling worker at once), its budget (POLL_WORK_BUDGET_SECONDS, 50: the worker's timeout
# is 60 s) and the breaker's first opening (POLL_BREAKER_SECONDS, 30).
STOP_AFTER_FAILURES = 10  # consecutive provider failures that open the breaker
RESERVE_SECONDS = 3.0  # left at the end of a work item for the last sends and writes
BREAKER_MAX_SECONDS = 900  # SQS's longest delay
STALLED_DELAY_SECONDS = 5  # a rest handed on by a worker that reached no order waits this long
MAX_HOPS = 10_000  # a work item handed on more often than this is dropped (a loop, never a backlog)
ABANDON_LEASE_SECONDS = 300  # a given-up claim's lease while it is cancelled and closed (the close is queued)


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
        self._succeeded = False  # one lookup answered (closes an opened breaker)
        self._breaker_opens = 0  # openings in a row, as read at the start

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
            # under the order's lease, as a given-up claim: the declines consumer may be at
            # work on it right now (its lease taken, FlexFactor asked); closing it then would
            # say NOT_SUBMITTED of an order FlexFactor has. Whoever holds the lease decides.
            until_ms = int((time.time() + ABANDON_LEASE_SECONDS) * 1000)
            version = int(state.get("version") or item["version"])
            if not self.table.take_lease(item["orderId"], version=version, status=st.QUEUED, until_ms=until_ms):
                return Plan([], self.next_poll(item), "claim_waiting")
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

    # -- one work item ----------------------------------------------------------------

    def _claim(self, item: dict[str, Any]) -> str | None:
        """Take the order for this poll: move its next poll to where this poll puts it,
        on condition that it is still where it was read (``nextPollAt``, ``version``). One
        conditional write per order, the one a poll always made: whoever moves it polls it,
        so two workers reading the same order (a duplicate work item, overlapping
        dispatches, a redelivery) never both ask FlexFactor. None: someone else has it."""
        moved = self.next_poll(item)
        taken = writer.schedule_poll(
            item["orderId"], moved, version=int(item["version"]), count=True, seen=item.get("nextPollAt")
        )
        return moved if taken else None

    def _work(self, item: dict[str, Any]) -> Plan:
        if self._claim(item) is None:
            return Plan([], outcome="taken")
        try:
            plan = self.plan(item)
        except DeclineRescueError as exc:
            self._failures_in_a_row += 1
            logger.warning("poll failed", extra={"orderId": item.get("orderId"), "error": exc.code})
            return Plan([], outcome="failed")  # polled again after its backoff, as any unchanged order
        self._failures_in_a_row = 0
        self._succeeded = True
        return plan

    def run_item(self, work: WorkItem, *, budget_seconds: float, lambda_context: Any = None) -> dict[str, Any]:
        """Reconcile one work item (a page of one shard's due orders) within the budget.

        A full page hands the shard's next page on at once (a sibling work item, so a deep
        shard is worked by parallel workers, page by page, oldest first); what this
        invocation does not reach is handed on as a rest bounded by its page (what was
        polled meanwhile is no longer due, so the rest re-reads only what is left). After
        ``STOP_AFTER_FAILURES`` failures in a row here, or as many across the fleet's work
        items that had nothing but failures, the poller's breaker opens for the whole
        fleet and the rest waits it out."""
        started = time.monotonic()
        breaker = self.table.poll_breaker()
        open_for = _open_for(breaker, self.now)
        if open_for > 0:
            self.counts["deferred"] = 1
            hand_on([work], delay_seconds=open_for)
            return self._summary(work, started)
        self._breaker_opens = int((breaker or {}).get("opens") or 0)
        items, cursor = self.table.due(work.shard, work.bound, limit=self.cfg.poll_page_size, start=work.start)
        self.counts["read"] += len(items)
        if cursor is not None and work.until is None:
            hand_on([work.sibling(cursor)])  # the shard's next page, worked beside this one
            self.counts["handed_on"] += 1
        self._emit_lag(items)
        with batched_provider_calls():  # one EMF record per hundred lookups, not one each
            reached = self._poll(items, budget_seconds=budget_seconds, lambda_context=lambda_context)
        delay = 0
        if self._failures_in_a_row >= STOP_AFTER_FAILURES:
            delay = self._open_breaker()
        elif self.counts["failed"] and not self._succeeded:
            # failures only: the fleet's count (one write per such item, none otherwise);
            # the worker that takes it to STOP_AFTER_FAILURES opens the breaker for all
            if self.table.add_poll_failures(self.counts["failed"]) >= STOP_AFTER_FAILURES:
                delay = self._open_breaker()
        elif self._succeeded and (self._breaker_opens or int((breaker or {}).get("failures") or 0)):
            self.table.close_poll_breaker()  # FlexFactor answers: the count starts again
        if reached < len(items):
            if not reached:  # no time for even one order (a nearly spent budget): not at once again
                delay = max(delay, STALLED_DELAY_SECONDS)
            hand_on([work.rest(str(items[-1]["nextPollAt"]))], delay_seconds=delay)
            self.counts["handed_on"] += 1
        return self._summary(work, started)

    def _open_breaker(self) -> int:
        """Open the fleet's breaker (one worker does; the others find it open) for
        ``POLL_BREAKER_SECONDS`` doubled per opening in a row, at most ``BREAKER_MAX_SECONDS``:
        the seconds the rest waits."""
        base = self.cfg.poll_breaker_seconds
        seconds = min(base * 2 ** min(self._breaker_opens, 10), BREAKER_MAX_SECONDS)
        until = self.now + timedelta(seconds=seconds)
        if not self.table.open_poll_breaker(iso(until), now=iso(self.now)):
            seconds = max(_open_for(self.table.poll_breaker(), self.now), 1)  # opened by another worker
        self.counts["breaker_opened"] = 1
        metrics.add_metric(name=m.POLLER_BACKING_OFF, unit="Count", value=1)
        logger.warning("FlexFactor keeps failing: the poller backs off", extra={"seconds": seconds})
        return int(seconds)

    def _poll(self, items: list[dict[str, Any]], *, budget_seconds: float, lambda_context: Any) -> int:
        """Work ``items`` in order with bounded concurrency until the budget or the
        failures end it; their changes go to the order-updates queue, ten per request,
        beside the lookups. How many items were reached (taken, worked or skipped)."""
        outbox: list[OrderUpdate] = []
        reached = 0
        with (
            within(budget_seconds, lambda_context=lambda_context) as deadline,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="poll-send") as sender,
        ):
            stop_at = min(time.monotonic() + max(budget_seconds - RESERVE_SECONDS, 0.5), deadline - RESERVE_SECONDS)
            sends: list[Future] = []

            def send(batch: list[OrderUpdate]) -> None:
                # full batches go out beside the lookups; a failed send fails the work item
                # (SQS redelivers it; what was not queued is found again, due or not)
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

                for item in items:
                    if time.monotonic() >= stop_at or self._failures_in_a_row >= STOP_AFTER_FAILURES:
                        self.counts["stopped_early"] = 1
                        break
                    # each task runs in a copy of this context: the invocation's deadline
                    # bounds the provider calls made in the pool's threads too
                    running.add(pool.submit(contextvars.copy_context().run, self._work, item))
                    reached += 1
                    if len(running) >= self.cfg.poll_concurrency * 2:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        collect(done)
                done, _ = wait(running)
                collect(done)
            if outbox:
                send(outbox)
            for future in sends:
                future.result()
        return reached

    def _emit_lag(self, items: list[dict[str, Any]]) -> None:
        """PollerLag: how long the oldest order of this page had been due when the work
        began (0 for an empty page; the shard's first page carries the shard's oldest)."""
        due_since = _parse(items[0].get("nextPollAt")) if items else None
        lag = max((self.now - due_since).total_seconds(), 0.0) if due_since else 0.0
        emit([(m.POLLER_LAG, "Seconds", round(lag, 3))], {})

    def _summary(self, work: WorkItem, started: float) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "counts": dict(self.counts),
            "shard": work.shard,
            "hops": work.hops,
            "seconds_ms": int((time.monotonic() - started) * 1000),
        }
        for name, metric in m.POLL_COUNTS.items():
            if self.counts[name]:
                metrics.add_metric(name=metric, unit="Count", value=self.counts[name])
        logger.info("poll work item", extra=summary)
        return summary


def _open_for(breaker: dict[str, Any] | None, now: datetime) -> int:
    """Seconds the breaker stays open (0: closed)."""
    until = _parse((breaker or {}).get("openUntil"))
    return int((until - now).total_seconds()) + 1 if until and until > now else 0


# -- work items and the dispatcher -------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """A slice of one pending-index shard for one dispatch: orders with ``nextPollAt`` up
    to ``due_by`` (the dispatch's instant), from ``start`` (a page's key) on, or, for a
    rest handed on, up to ``until`` (its page's last ``nextPollAt``)."""

    shard: str
    due_by: str
    start: dict[str, Any] | None = None
    until: str | None = None
    hops: int = 0

    @property
    def bound(self) -> str:
        return min(self.until, self.due_by) if self.until else self.due_by

    def sibling(self, cursor: dict[str, Any]) -> WorkItem:
        return WorkItem(self.shard, self.due_by, cursor, None, self.hops + 1)

    def rest(self, until: str) -> WorkItem:
        return WorkItem(self.shard, self.due_by, self.start, until, self.hops + 1)

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"v": 1, "shard": self.shard, "dueBy": self.due_by, "hops": self.hops}
        if self.start:
            message["start"] = self.start
        if self.until:
            message["until"] = self.until
        return message

    @classmethod
    def from_message(cls, body: str) -> WorkItem:
        """A poll-work message, or ``ValueError`` naming what is wrong with it."""
        import json

        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("not a poll work item (v 1)")
        shard, due_by, hops = data.get("shard"), data.get("dueBy"), data.get("hops", 0)
        if not isinstance(shard, str) or not _SHARD.fullmatch(shard):
            raise ValueError("shard must be P<n>")
        for name, value in (("dueBy", due_by), ("until", data.get("until"))):
            if value is not None and (not isinstance(value, str) or _parse(value) is None):
                raise ValueError(f"{name} must be an ISO 8601 time")
        if due_by is None:
            raise ValueError("dueBy is required")
        if not isinstance(hops, int) or isinstance(hops, bool) or hops < 0:
            raise ValueError("hops must be a non-negative integer")
        start = data.get("start")
        if start is not None and not (
            isinstance(start, dict)
            and start
            and all(
                isinstance(k, str) and isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
                for k, v in start.items()
            )
        ):
            raise ValueError("start must be a DynamoDB key of strings")
        return cls(shard, due_by, start, data.get("until"), hops)


_SHARD = re.compile(r"P[0-9]{1,4}")


def hand_on(work: list[WorkItem], *, delay_seconds: int = 0) -> None:
    """Put work items on the poll-work queue (at most 900 s later: SQS's longest delay)."""
    from decline_rescue.infra import sqs

    url = settings.lifecycle().require("poll_work_queue_url")
    delay = max(0, min(int(delay_seconds), 900))
    sqs.send(url, [(w.to_message(), sqs.attributes(shard=w.shard)) for w in work], delay_seconds=delay)


def dispatch(*, now: datetime | None = None) -> dict[str, Any]:
    """The schedule's tick: one work item per pending-index shard, all due by now (one
    batch send per ten shards). While the breaker is open nothing is dispatched: the
    work handed back resumes when it closes, and the next tick covers the rest."""
    now = now or now_utc()
    table = wiring.orders()
    open_for = _open_for(table.poll_breaker(), now)
    if open_for > 0:
        metrics.add_metric(name=m.POLLER_BACKING_OFF, unit="Count", value=1)
        logger.warning("the poller's breaker is open: nothing dispatched", extra={"seconds": open_for})
        return {"dispatched": 0, "backing_off_seconds": open_for}
    shards = settings.pending_shards()
    due_by = iso(now)
    hand_on([WorkItem(f"P{i}", due_by) for i in range(shards)])
    logger.info("poll dispatched", extra={"shards": shards, "dueBy": due_by})
    return {"dispatched": shards, "dueBy": due_by}


def handle_work(body: str, *, lambda_context: Any = None, budget_seconds: float | None = None) -> dict[str, Any]:
    """One poll-work message. A malformed one can never succeed: it is logged and
    dropped (its shard is dispatched again next tick)."""
    try:
        work = WorkItem.from_message(body)
    except (ValueError, TypeError, RecursionError) as exc:
        metrics.add_metric(name=m.POLL_WORK_REJECTED, unit="Count", value=1)
        logger.error("malformed poll work item dropped", extra={"why": str(exc)[:200]})
        return {"counts": {"rejected": 1}}
    if work.hops > MAX_HOPS:  # (1000 orders a page: ten million due orders in one shard)
        metrics.add_metric(name=m.POLL_WORK_REJECTED, unit="Count", value=1)
        logger.error("poll work item handed on too often: dropped", extra={"shard": work.shard, "hops": work.hops})
        return {"counts": {"rejected": 1}}
    poller = Poller()
    budget = poller.cfg.poll_work_budget_seconds if budget_seconds is None else budget_seconds
    return poller.run_item(work, budget_seconds=budget, lambda_context=lambda_context)
