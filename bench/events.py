"""Order events (issue 9): the publisher's events per second, and the latency of an order
event from its write to a consumer, each against a bare PutEvents loop.

Since the writers stopped publishing, an order's change reaches the bus this way: the
single writer commits the state item and the change's history item in one transaction;
the orders table's stream carries the history item; the stream's event source mapping
(filter: new history items with a ``changeId``, batches of up to 100) invokes
PublishOrderEventsFunction, which puts one event per change on the bus, ten per
PutEvents request. Here:

- **The writes** go through the real writer (``services.writer.create``, the intake
  claim with its idempotency key, then ``writer.apply``, the /evaluate answer: two
  changes per order, as a customer-initiated decline makes them), with the function's
  environment as the template sets it (EvaluateDeclineFunction's, through the harness).
- **The mapping** is ``devstack.pollers.StreamPoller`` with the template's mapping (its
  filter, batch size, partial batch failures, retries, on-failure queue), invoking
  PublishOrderEventsFunction's handler in this process (the harness runs handlers
  in-process; so do the tests' ``EventPublisher``). Writer, mapping and handler share one
  thread, interleaved as below: Powertools' metrics are one object per process, which
  the writer and the handler both write, and it is not thread-safe.
- **The consumer**: an EventBridge rule on the bus (``{"source": ["decline-rescue"]}``)
  to an SQS queue, read by a thread (long polls, ten messages a receive), as
  ``tests/integration/test_order_updates.py: bus_events`` reads the bus.
- **The baseline**: a bare PutEvents loop in this process: the same number of events with
  details of the same shape and size (``Change.event_detail()`` of the same statuses,
  ids of the same length), ten entries a request, to the same bus, rule and queue.

Figures:

1. **Events per second** (target: at least 0.5x the bare loop). A backlog: the changes
   are written first (untimed), then the mapping drains the stream (timed: until every
   change is published); the baseline puts as many events as fast as it can. Per event,
   ours does what the bare loop does (a tenth of a PutEvents of ten entries) plus its
   share of reading the stream (a shard iterator and GetRecords per batch of 100, two to
   three stream records per change, of which the filter keeps one) and building the event
   from the history item. With batches of 100 that is well under the puts themselves, so
   a publisher at less than half the bare loop's rate would be spending more on the
   stream than on the bus: 0.5x is where that starts. Done in chunks of ``CHUNK`` changes
   on a renewed table (see moto below), alternating with the baseline, so that drift hits
   both sides alike.
2. **End-to-end latency** (target: p99 at most 500 ms above the baseline's p99). Changes
   are written at a steady ``RATE`` a second (under what the writer sustains against
   moto), in runs of ``LATENCY_CHUNK`` on a renewed table; the mapping polls as Lambda
   does, four times a second (``POLL_INTERVAL``), and at once again after a poll that
   found records. Writer and mapping take turns in one thread: a poll that falls due
   while a write is in flight waits for it (moto serialises DynamoDB and stream requests
   anyway), and a write due while the publisher runs waits (its time is stamped when it
   starts, so that wait is not counted). Latency: from the change's ``time``
   (stamped by the writer just before its transaction) to the moment the consumer's
   receive returns the event. Baseline: the bare loop at the same rate of events (a
   request of ten every ten events' time), from the put (``time`` stamped just before
   it) to the read. The difference is the price of the outbox: up to one poll interval
   (250 ms, by design: Lambda's polling rate), plus one GetRecords, one invocation and one
   PutEvents; the rest of the budget (250 ms) is room for those on a shared machine. The
   p99 difference is the verdict; the ratio of the p99s is reported.

What moto adds (and AWS would not, or would differently): every request is served by
one Python process (DynamoDB and its streams under one lock, ``devstack.moto_server``),
at milliseconds of CPU each; stream records are readable the moment the write returns
(DynamoDB Streams: usually well under a second, not zero); a put event reaches the SQS
target inside the PutEvents call (EventBridge delivers asynchronously, typically tens of
milliseconds later: the same on both sides, so the difference holds); no GetRecords
limits (5 a second per shard on AWS); and TransactWriteItems deep-copies the table and
its stream for its rollback, so writes slow down as a table grows: each chunk and the
latency run start on a renewed table (``bench.declines.OrdersTable``: the template's keys,
index, stream and TTL), whose new stream gets a new poller. The local poller also asks
DescribeStream and a fresh shard iterator on each poll: counted on our side. The
invocation is an in-process call (no Lambda invoke latency, no JSON of the event).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import threading
import time
import uuid
import warnings
from datetime import datetime
from typing import Any

from bench.core import BenchEnv, Row, Stats
from bench.declines import OrdersTable, cit_body
from bench.harness import Harness

BENCHMARK = "events"
WRITER_FUNCTION = "EvaluateDeclineFunction"  # the claim and the answer are its writes
PUBLISHER = "PublishOrderEventsFunction"
CHUNK = 100  # changes per renewed table in the throughput run (one batch of the mapping)
RATE = 10.0  # changes a second in the latency run
LATENCY_CHUNK = 40  # changes per renewed table in the latency run
POLL_INTERVAL = 0.25  # Lambda polls a shard four times a second
THROUGHPUT_LIMIT = 0.5  # ours / bare loop, at least
LATENCY_OVERHEAD_LIMIT_S = 0.5  # p99(ours) - p99(bare loop), at most
READ_TIMEOUT_S = 60.0


def _epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


class Consumer:
    """The events queue's reader: long polls (ten a receive), each event timed when its
    receive returned, then deleted. ``start``/``stop`` on a thread (latency), or
    ``read_until`` in the caller's (throughput, after the timed part)."""

    def __init__(self, sqs, queue_url: str) -> None:
        self.sqs = sqs
        self.url = queue_url
        self.events: dict[str, tuple[float, dict[str, Any]]] = {}  # changeId -> (read at, event)
        self.duplicates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _receive(self, wait: int) -> int:
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        )
        read_at = time.time()
        if not messages:
            return 0
        with self._lock:
            for message in messages:
                body = json.loads(message["Body"])
                change = body["detail"]["changeId"]
                if change in self.events:
                    self.duplicates += 1
                else:
                    self.events[change] = (read_at, body)
        self.sqs.delete_message_batch(
            QueueUrl=self.url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        return len(messages)

    def start(self) -> Consumer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-events-consumer")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._receive(1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def count(self, ids: set[str]) -> int:
        with self._lock:
            return len(ids & self.events.keys())

    def wait_for(self, ids: set[str], timeout: float = READ_TIMEOUT_S) -> bool:
        """(thread running) Until every event of ``ids`` was read."""
        deadline = time.monotonic() + timeout
        while self.count(ids) < len(ids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def read_until(self, ids: set[str], timeout: float = READ_TIMEOUT_S) -> bool:
        """(no thread) Read until every event of ``ids`` was read."""
        deadline = time.monotonic() + timeout
        while self.count(ids) < len(ids):
            if time.monotonic() > deadline:
                return False
            self._receive(1)
        return True


class RequestClock:
    """Seconds spent in the requests of some clients (botocore's before-call and
    after-call events), by operation, while ``on``."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.count: collections.Counter[str] = collections.Counter()
        self.on = False

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before, unique_id=f"bench-clock-before-{id(self)}")
        client.meta.events.register("after-call", self._after, unique_id=f"bench-clock-after-{id(self)}")

    def _before(self, context: dict[str, Any], **_: Any) -> None:
        if self.on:
            context["bench_clock"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if "bench_clock" in context:
            self.seconds[model.name] += time.perf_counter() - context.pop("bench_clock")
            self.count[model.name] += 1

    def describe(self) -> str:
        return ", ".join(
            f"{op} {self.count[op]} ({self.seconds[op]:.2f} s)" for op in sorted(self.seconds, key=self.seconds.get)
        )


class World:
    """The harness's stack with the events queue on the bus, the writer's environment and
    the publisher's handler loaded, and the orders table renewable with its stream."""

    def __init__(self, harness: Harness) -> None:
        assert harness.stack is not None
        self.h = harness
        self.stack = harness.stack
        self.mapping = next(m for m in self.stack.event_sources if m.function == PUBLISHER)
        self.bus = self.stack.physical_ids["OrderEventBus"]
        self.sqs = harness.client("sqs")
        self.events_client = harness.client("events")  # the baseline's (a plain client, as any producer's)
        self.streams = harness.client("dynamodbstreams")
        self.table = OrdersTable(harness)
        # one process environment for both functions (they agree on every shared name)
        harness.load(WRITER_FUNCTION)
        self.publisher = harness.load(PUBLISHER)
        self.spec = self.stack.functions[PUBLISHER]
        from decline_rescue.infra import aws

        self.clock = RequestClock()  # the mapping's stream reads and the publisher's puts
        self.clock.watch(self.streams)
        self.clock.watch(aws.client("events"))  # the client the publisher's handler uses
        from decline_rescue.services import declines, writer

        self.declines, self.writer = declines, writer
        self.rule = f"bench-events-{uuid.uuid4().hex[:10]}"
        self.queue_url = self.sqs.create_queue(QueueName=self.rule)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events_client.put_rule(
            Name=self.rule, EventBusName=self.bus, EventPattern=json.dumps({"source": ["decline-rescue"]})
        )
        self.events_client.put_targets(Rule=self.rule, EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn}])
        self.consumer = Consumer(self.sqs, self.queue_url)
        self.failures: list[str] = []
        self.commit_seconds: list[float] = []
        self.handler_seconds = 0.0  # inside the publisher's handler (what Lambda bills)

    def close(self) -> None:
        self.consumer.stop()
        with contextlib.suppress(Exception):
            self.events_client.remove_targets(Rule=self.rule, EventBusName=self.bus, Ids=["queue"])
            self.events_client.delete_rule(Name=self.rule, EventBusName=self.bus)
            self.sqs.delete_queue(QueueUrl=self.queue_url)

    # -- the mapping and the publisher -----------------------------------------------

    def poller(self):
        """A poller of the (renewed) table's stream, from its start."""
        from devstack.pollers import StreamPoller

        mapping = dataclasses.replace(self.mapping, stream_arn=self.table.stream_arn, starting_position="TRIM_HORIZON")
        return StreamPoller(
            mapping, self.streams, self.sqs, self._invoke, retry_delay=0.01, poll_interval=POLL_INTERVAL
        )

    def _invoke(self, function: str, event: dict[str, Any]) -> tuple[bool, Any]:
        began = time.perf_counter()
        try:
            return True, self.publisher.lambda_handler(event, self.h.context(self.spec.name, self.spec.timeout))
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it to the poller
            self.failures.append(f"{function}: {type(exc).__name__}: {exc}")
            return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        finally:
            self.handler_seconds += time.perf_counter() - began

    def check(self, poller) -> None:
        trouble = {
            "retries": poller.retries,
            "bisections": poller.bisections,
            "records discarded": poller.records_discarded,
            "sent to the on-failure queue": poller.sent_to_destination,
        }
        trouble = {k: v for k, v in trouble.items() if v}
        if trouble or self.failures:
            raise RuntimeError(f"the publisher did not publish cleanly: {trouble} {self.failures[:3]}")

    # -- the writer --------------------------------------------------------------------

    def order(self) -> tuple[Any, str]:
        request = self.declines.parse(cit_body())
        return request, request.order_id

    def claim(self, request) -> str:
        """Change 1: the intake claim (RECEIVED, with its idempotency key and lease)."""
        from decline_rescue.domain.updates import FINGERPRINT

        began = time.perf_counter()
        self.writer.create(
            request.safe_summary(),
            status="RECEIVED",
            source="api",
            fields={FINGERPRINT: request.fingerprint(), "leaseUntil": int(time.time() * 1000) + 30_000},
            idempotency_key=request.idempotency_key,
        )
        self.commit_seconds.append(time.perf_counter() - began)
        return f"{request.order_id}:1"

    def answer(self, request) -> str:
        """Change 2: FlexFactor's answer (APPROVED), as the decline function records it."""
        from decline_rescue.domain.updates import ANSWER, FINGERPRINT, OrderUpdate, Result

        session_key = str(uuid.uuid4())
        reply = {"orderId": request.order_id, "status": "APPROVED", "orderSessionKey": session_key, "submitted": True}
        stored = {
            **request.safe_summary(),
            "senseKey": uuid.uuid4().hex,
            FINGERPRINT: request.fingerprint(),
            ANSWER: reply,
        }
        for name in ("orderId", "idempotencyKey"):
            stored.pop(name)
        update = OrderUpdate(
            updateId=f"api:{request.idempotency_key}",
            source="api",
            orderId=request.order_id,
            orderSessionKey=session_key,
            status="APPROVED",
            providerStatus="APPROVED",
        )
        state = {"orderId": request.order_id, "status": "RECEIVED", "version": 1}
        began = time.perf_counter()
        outcome = self.writer.apply(update, state=state, fields=stored, remove=("leaseUntil",))
        self.commit_seconds.append(time.perf_counter() - began)
        if outcome.result != Result.APPLIED:
            raise RuntimeError(f"the answer was not applied: {outcome}")
        return f"{request.order_id}:2"

    def changes(self, n: int):
        """Write ``n`` changes (n / 2 orders), yielding each change's id once written."""
        for _ in range(n // 2):
            request, _ = self.order()
            yield self.claim(request)
            yield self.answer(request)

    # -- the baseline --------------------------------------------------------------------

    def bare_details(self, n: int) -> list[dict[str, Any]]:
        """Details of the same shape and size as the publisher's: the same two changes per
        order, with ids of the same length."""
        from decline_rescue.domain.clock import iso
        from decline_rescue.domain.updates import Change

        out = []
        for _ in range(n // 2):
            order_id = cit_body()["orderId"]
            out.append(Change(order_id, None, "RECEIVED", 1, "api", iso()).event_detail())
            out.append(Change(order_id, "RECEIVED", "APPROVED", 2, "api", iso()).event_detail())
        return out

    def put(self, details: list[dict[str, Any]]) -> None:
        """One PutEvents of up to ten entries (``time`` stamped now, just before it)."""
        from decline_rescue.domain.clock import iso

        now = iso()
        entries = [
            {
                "Source": "decline-rescue",
                "DetailType": "OrderStatusChanged",
                "Detail": json.dumps({**d, "time": now}),
                "EventBusName": self.bus,
            }
            for d in details
        ]
        answer = self.events_client.put_events(Entries=entries)
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"bare PutEvents: {answer['FailedEntryCount']} entries failed")


# -- 1. events per second --------------------------------------------------------------


def throughput(world: World, n: int) -> Row:
    ours_seconds = bare_seconds = 0.0
    ours_ids: set[str] = set()
    bare_ids: set[str] = set()
    batches = records = skipped = 0
    handler_seconds = 0.0
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        # ours: a backlog of `size` changes on a fresh table, drained by the mapping
        world.table.renew()
        poller = world.poller()
        written = set(world.changes(size))
        world.clock.on = True
        handler_before = world.handler_seconds
        began = time.perf_counter()
        drained = poller.drain(timeout=120)
        ours_seconds += time.perf_counter() - began
        world.clock.on = False
        handler_seconds += world.handler_seconds - handler_before
        if not drained:
            raise RuntimeError("the orders stream was not drained in 120 s")
        world.check(poller)
        batches, records, skipped = (
            batches + poller.batches,
            records + poller.records_invoked,
            skipped + poller.records_skipped,
        )
        if not world.consumer.read_until(written):
            raise RuntimeError(f"{len(written) - world.consumer.count(written)} events never reached the queue")
        ours_ids |= written
        # the baseline: as many events, ten a request, as fast as it goes
        details = world.bare_details(size)
        began = time.perf_counter()
        for i in range(0, len(details), 10):
            world.put(details[i : i + 10])
        bare_seconds += time.perf_counter() - began
        ids = {d["changeId"] for d in details}
        if not world.consumer.read_until(ids):
            raise RuntimeError(f"{len(ids) - world.consumer.count(ids)} bare events never reached the queue")
        bare_ids |= ids
    ours, bare = len(ours_ids) / ours_seconds, len(bare_ids) / bare_seconds
    in_requests = sum(world.clock.seconds.values())
    reads = sum(v for k, v in world.clock.seconds.items() if k != "PutEvents")
    ratio = ours / bare
    size_ours = _mean_detail(world, ours_ids)
    size_bare = _mean_detail(world, bare_ids)
    return Row(
        BENCHMARK,
        "publisher's events per second (a backlog, drained from the stream)",
        f"{ours:.0f} /s",
        f"{bare:.0f} /s",
        ratio,
        f">= {THROUGHPUT_LIMIT:g}x",
        ratio >= THROUGHPUT_LIMIT,
        f"{len(ours_ids)} changes (tables of {CHUNK}) drained in {ours_seconds:.2f} s: {batches} invocations, "
        f"{records} records handed over, {skipped} stream records left out by the filter (state items, "
        f"idempotency keys); of the {ours_seconds:.2f} s, {in_requests:.2f} s in requests ({world.clock.describe()}), "
        f"{reads:.2f} s of them the mapping's stream reads (moto answering and botocore parsing 2-3 records per "
        f"change, the state items' images the largest; on AWS Lambda's poller reads, off the function's clock); "
        f"the function alone {handler_seconds:.2f} s = {len(ours_ids) / handler_seconds:.0f} events/s "
        f"({len(ours_ids) / handler_seconds / bare:.2f}x the bare loop); "
        f"per event {ours_seconds / len(ours_ids) * 1000:.2f} ms vs "
        f"{bare_seconds / len(bare_ids) * 1000:.2f} ms; baseline: the same number of events put ten a request by a "
        f"bare loop ({bare_seconds:.2f} s), same bus, rule and queue; mean detail {size_ours:.0f} B vs "
        f"{size_bare:.0f} B; every event read from the queue (duplicates read: {world.consumer.duplicates})",
    )


def _mean_detail(world: World, ids: set[str]) -> float:
    sizes = [len(json.dumps(world.consumer.events[i][1]["detail"])) for i in ids]
    return sum(sizes) / len(sizes)


# -- 2. end-to-end latency -------------------------------------------------------------


def _paced(world: World, poller, size: int) -> tuple[list[str], float]:
    """Write ``size`` changes at RATE a second while the mapping polls as Lambda does
    (again at once after a poll that found records, else after POLL_INTERVAL); then keep
    polling until the consumer has read them all. The ids written, and the seconds the
    writes took."""
    consumer = world.consumer
    ids: list[str] = []
    writes = world.changes(size)
    began = time.monotonic()
    next_poll = began

    def poll_if_due() -> bool:
        nonlocal next_poll
        if time.monotonic() < next_poll:
            return False
        handed = poller.poll_once()
        next_poll = time.monotonic() + (0 if handed else POLL_INTERVAL)
        return True

    while len(ids) < size:
        if poll_if_due():  # the mapping first: a writer running late must not starve it
            continue
        due = began + len(ids) / RATE
        if time.monotonic() >= due:
            ids.append(next(writes))
            continue
        time.sleep(max(0.0, min(due, next_poll) - time.monotonic()))
    seconds = time.monotonic() - began
    wanted = set(ids)
    deadline = time.monotonic() + READ_TIMEOUT_S
    while consumer.count(wanted) < len(wanted) and time.monotonic() < deadline:
        if not poll_if_due():
            time.sleep(max(0.0, min(0.01, next_poll - time.monotonic())))
    if consumer.count(wanted) < len(wanted):
        raise RuntimeError(f"{len(wanted) - consumer.count(wanted)} events never reached the queue")
    return ids, seconds


def latency(world: World, n: int) -> Row:
    # ours: changes written at RATE a second, in runs of LATENCY_CHUNK on a renewed table
    world.commit_seconds.clear()
    samples: list[float] = []
    batches = 0
    write_seconds = 0.0
    consumer = world.consumer.start()
    try:
        for start in range(0, n, LATENCY_CHUNK):
            world.table.renew()
            poller = world.poller()
            poller.poll_once()  # the new stream's shard learnt (nothing on it yet)
            ids, seconds = _paced(world, poller, min(LATENCY_CHUNK, n - start))
            world.check(poller)
            batches += poller.batches
            write_seconds += seconds
            samples += [consumer.events[i][0] - _epoch(consumer.events[i][1]["detail"]["time"]) for i in ids]
    finally:
        consumer.stop()
    ours = Stats(samples)
    commits = Stats(list(world.commit_seconds))

    # the baseline: the bare loop at the same rate of events, ten a request
    details = world.bare_details(n)
    consumer = world.consumer.start()
    try:
        began = time.monotonic()
        for k, i in enumerate(range(0, len(details), 10)):
            time.sleep(max(0.0, began + k * 10 / RATE - time.monotonic()))
            world.put(details[i : i + 10])
        bare_ids = {d["changeId"] for d in details}
        consumer.wait_for(bare_ids)
    finally:
        consumer.stop()
    if consumer.count(bare_ids) < len(bare_ids):
        raise RuntimeError(f"{len(bare_ids) - consumer.count(bare_ids)} bare events never reached the queue")
    bare = Stats([consumer.events[i][0] - _epoch(consumer.events[i][1]["detail"]["time"]) for i in bare_ids])

    overhead = ours.p99 - bare.p99
    return Row(
        BENCHMARK,
        "event latency, write to consumer, p99 (steady writes)",
        f"{ours.p99 * 1000:.0f} ms",
        f"{bare.p99 * 1000:.0f} ms",
        ours.p99 / bare.p99 if bare.p99 > 0 else None,
        f"<= {LATENCY_OVERHEAD_LIMIT_S * 1000:.0f} ms over the baseline p99",
        overhead <= LATENCY_OVERHEAD_LIMIT_S,
        f"overhead p99 {overhead * 1000:.0f} ms, p50 {(ours.median - bare.median) * 1000:.0f} ms; ours (change's "
        f"time, stamped before its transaction, to the receive that read it) {ours.describe()}; baseline (bare "
        f"PutEvents, ten a request, put to read) {bare.describe()}; {n} changes at {n / write_seconds:.1f} /s "
        f"(target {RATE:g} /s, tables of {LATENCY_CHUNK}), {batches} invocations (mean batch "
        f"{n / max(batches, 1):.1f}); the mapping polls every {POLL_INTERVAL * 1000:.0f} ms when idle, as Lambda "
        f"does (up to that much of the latency is the poll interval); of the latency, the writer's own "
        f"transaction {commits.describe()}",
    )


def run(env: BenchEnv) -> list[Row]:
    n_throughput = env.n(1000, 200)
    n_latency = env.n(300, 100)
    with Harness() as harness:
        world = World(harness)
        try:
            # EMF metrics are Lambda's stdout; the publisher warns when a batch has none
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="No application metrics to publish")
                # warm up: clients, connections, the secret, the handler's first invocation
                world.table.renew()
                poller = world.poller()
                warm = set(world.changes(10))
                poller.drain(timeout=30)
                world.put(world.bare_details(10))
                world.consumer.read_until(warm)
                world.consumer.events.clear()
                world.failures.clear()
                rows = [throughput(world, n_throughput), latency(world, n_latency)]
        finally:
            world.close()
    return rows
