"""Polling at scale (issue 5, item 5): what one poller run reads and how long it takes,
versus the orders due, with 1k, 10k and 50k pending orders stored.

The data is real where it matters and bulk-loaded where it does not:
- FlexFactor's orders are real emulator orders, made by ``POST /v1/evaluate`` (nine in ten
  customer-initiated AUTHORIZATIONs, Capturerequired, which stay pending; one in ten
  merchant-initiated ones that complete after two emulator steps, i.e. changes whose
  webhooks were lost, which the poller finds and queues for the writer);
- the orders table is a fresh table with the template's schema; its state items are
  copies of items the real writer wrote (a CIT decline through ``EvaluateDeclineFunction``,
  a MIT one through the declines queue, an approved one), with their orderId,
  idempotencyKey, orderSessionKey, ``pendingShard`` and ``nextPollAt`` replaced, written
  with ``BatchWriteItem`` (25 per call, in threads). Next to the pending orders lie as many
  ended ones (no ``pendingShard``/``nextPollAt``: off the sparse index);
- each run is ``PollOrdersFunction``'s handler with the function's environment (the
  configured ``POLL_CONCURRENCY``), its scheduled event and a 60 s Lambda context.

Items read are counted twice: the run's own summary (``read``) and, independently, a
botocore ``after-call`` hook on the poller's DynamoDB client adding up each Query
answer's ``Count`` and ``ScannedCount``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.core import ROOT, BenchEnv, Row, svg_lines
from bench.harness import Harness, event, hex_id, idempotency_key

NAME = "polling"
BUDGET_SECONDS = 55.0  # polling.run()'s invocation budget (the function's timeout is 60 s)
FIXTURES = ROOT / "tests" / "fixtures"
MIT_EVERY = 10  # one due order in ten changed at FlexFactor (its webhooks lost)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seed(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())["request"]


def cit_body(order_id: str, *, authorization: bool = True) -> dict[str, Any]:
    body = copy.deepcopy(_seed("seed_cit_corrected.json"))
    body.update(orderId=order_id, idempotencyKey=idempotency_key())
    if authorization:
        body["transactionType"] = "AUTHORIZATION"
    body["transaction"].update(timestampUtc=datetime.now(UTC).isoformat(), amount=1999, responseCode="51")
    body["paymentMethod"].update(cardLast4Digits="4444", cardFingerprint=hex_id())
    return body


def mit_body(order_id: str) -> dict[str, Any]:
    body = copy.deepcopy(_seed("seed_mit_corrected.json"))
    body.update(orderId=order_id, idempotencyKey=idempotency_key())
    body["transaction"]["timestampUtc"] = datetime.now(UTC).isoformat()
    body["expiryDateUtc"] = _iso(datetime.now(UTC) + timedelta(days=10))
    body["paymentMethod"].update(cardLast4Digits="0007", cardFingerprint=hex_id())
    return body


def order_id_of(i: int) -> str:
    return f"bench-{i:06d}"


@dataclass
class Run:
    stored: int  # pending orders in the table (as many ended ones lie next to them)
    due: int
    seconds: float
    summary: dict[str, Any]
    query_count: int  # sum of the Query answers' Count
    query_scanned: int  # ... and ScannedCount
    queries: int
    query_seconds: float
    updates: int  # UpdateItem calls (next polls pushed back)
    sqs_sends: int
    calls: dict[str, int] = field(default_factory=dict)
    concurrency: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process during the run

    @property
    def read(self) -> int:
        return int(self.summary.get("read", 0))

    @property
    def reconciled(self) -> int:
        s = self.summary
        return sum(int(s.get(k, 0)) for k in ("unchanged", "changed", "expired", "not_found", "recovered", "abandoned"))


class World:
    def __init__(self, harness: Harness, threads: int = 8) -> None:
        self.h = harness
        self.threads = threads
        self._local = threading.local()
        self.keys: list[str] = []  # FlexFactor order ids, by order index
        self.templates: dict[str, dict[str, Any]] = {}
        self.queue_url = ""

    def ddb(self):
        client = getattr(self._local, "ddb", None)
        if client is None:
            client = self._local.ddb = self.h.client("dynamodb")
        return client

    # -- FlexFactor's side ----------------------------------------------------------

    def provider_orders(self, count: int) -> float:
        """``count`` real emulator orders (POST /v1/evaluate); seconds it took."""
        from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET

        url = self.h.flexfactor_url
        token = httpx.post(
            url + "/v1/oauth2/token", json={"AppKey": DEFAULT_APP_KEY, "AppSecret": DEFAULT_APP_SECRET}
        ).json()["accessToken"]
        extra = {"mid": "bench-mid", "siteId": "5f1d3a1e-8c2b-4d7a-9e61-0c4b2a9d7f10"}
        local = threading.local()

        def create(i: int) -> str:
            client = getattr(local, "http", None)
            if client is None:
                client = local.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            oid = order_id_of(i)
            body = mit_body(oid) if i % MIT_EVERY == MIT_EVERY - 1 else cit_body(oid)
            answer = client.post("/v1/evaluate", json={**body, **extra})
            answer.raise_for_status()
            return answer.json()["orderSessionKey"]

        started = time.perf_counter()
        with ThreadPoolExecutor(self.threads) as pool:
            self.keys = list(pool.map(create, range(count)))
        return time.perf_counter() - started

    # -- our side -------------------------------------------------------------------

    def new_table(self) -> str:
        ddb = self.h.client("dynamodb")
        template = ddb.describe_table(TableName=self.h.stack.physical_ids["OrdersTable"])["Table"]
        name = f"bench-orders-{uuid.uuid4().hex[:8]}"
        ddb.create_table(
            TableName=name,
            KeySchema=template["KeySchema"],
            AttributeDefinitions=template["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in template["GlobalSecondaryIndexes"]
            ],
        )
        return name

    def new_queue(self) -> str:
        return self.h.client("sqs").create_queue(QueueName=f"bench-updates-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    def writer_templates(self) -> None:
        """State items as the real writer writes them: a CIT decline (CAPTUREREQUIRED), a
        MIT one submitted by the declines queue (SUBMITTED), and an ended one (APPROVED)."""
        from devstack.runtime import LambdaContext

        table = self.new_table()
        module = self.h.load("EvaluateDeclineFunction", ORDERS_TABLE=table)
        ids = {"cit": f"tpl-cit-{uuid.uuid4().hex[:8]}", "ended": f"tpl-end-{uuid.uuid4().hex[:8]}"}
        for kind, authorization in (("cit", True), ("ended", False)):
            api = event("evaluate_decline/post_cit.json")
            api["body"] = json.dumps(cit_body(ids[kind], authorization=authorization))
            with contextlib.redirect_stdout(io.StringIO()):
                answer = module.lambda_handler(api, LambdaContext("bench", 512, 30))
            assert answer["statusCode"] == 200, answer
        ids["mit"] = f"tpl-mit-{uuid.uuid4().hex[:8]}"
        sqs = event("evaluate_decline/sqs_mit.json")
        sqs["Records"][0]["body"] = json.dumps(mit_body(ids["mit"]))
        sqs["Records"][0]["messageId"] = str(uuid.uuid4())
        with contextlib.redirect_stdout(io.StringIO()):
            assert module.lambda_handler(sqs, LambdaContext("bench", 512, 30)) == {"batchItemFailures": []}
        ddb = self.h.client("dynamodb")
        for kind, oid in ids.items():
            item = ddb.get_item(TableName=table, Key={"pk": {"S": f"ORDER#{oid}"}, "sk": {"S": "STATE"}})["Item"]
            self.templates[kind] = item
        assert self.templates["cit"]["status"]["S"] == "CAPTUREREQUIRED", self.templates["cit"]
        assert self.templates["mit"]["status"]["S"] == "SUBMITTED", self.templates["mit"]
        assert "pendingShard" not in self.templates["ended"], self.templates["ended"]
        ddb.delete_table(TableName=table)

    def item(self, i: int, *, ended: bool = False, next_poll_at: str | None = None) -> dict[str, Any]:
        from decline_rescue.infra.orders_store import shard_of

        kind = "ended" if ended else ("mit" if i % MIT_EVERY == MIT_EVERY - 1 else "cit")
        item = copy.deepcopy(self.templates[kind])
        oid = f"bench-ended-{i:06d}" if ended else order_id_of(i)
        key = self.keys[i] if not ended and i < len(self.keys) else str(uuid.UUID(int=random.getrandbits(128)))
        item["pk"] = {"S": f"ORDER#{oid}"}
        item["orderId"] = {"S": oid}
        item["idempotencyKey"] = {"S": str(uuid.UUID(int=random.getrandbits(128)))}
        item["orderSessionKey"] = {"S": key}
        if not ended:
            item["pendingShard"] = {"S": shard_of(oid)}
            item["nextPollAt"] = {"S": next_poll_at or _iso(datetime.now(UTC) + timedelta(minutes=30))}
        return item

    def put(self, table: str, items: list[dict[str, Any]]) -> None:
        def write(chunk: list[dict[str, Any]]) -> None:
            request = {table: [{"PutRequest": {"Item": it}} for it in chunk]}
            while request:
                request = self.ddb().batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))

    def fill(self, table: str, start: int, stop: int) -> None:
        """Pending orders ``start..stop-1`` (not due: next poll within the hour) and as
        many ended ones."""
        now = datetime.now(UTC)
        items = []
        for i in range(start, stop):
            later = _iso(now + timedelta(seconds=random.uniform(600, 3600)))
            items.append(self.item(i, next_poll_at=later))
            items.append(self.item(i, ended=True))
        self.put(table, items)

    def set_due(self, table: str, due: int, was_due: int) -> None:
        """Orders ``0..due-1`` due now (earliest first, as a backlog), and those due in the
        previous run but not in this one back to later (the writer would have applied or
        rescheduled them)."""
        now = datetime.now(UTC)
        items = [self.item(i, next_poll_at=_iso(now - timedelta(seconds=due - i + 1))) for i in range(due)]
        items += [
            self.item(i, next_poll_at=_iso(now + timedelta(seconds=random.uniform(600, 3600))))
            for i in range(due, was_due)
        ]
        self.put(table, items)

    def poll(self, table: str, stored: int, due: int) -> Run:
        """One PollOrdersFunction invocation on ``table``, metered."""
        from decline_rescue.infra import aws
        from devstack.runtime import LambdaContext

        queue = self.new_queue()
        # (moto answers a Query over tens of thousands of items in seconds: past the 2 s the
        # functions allow an AWS call, which DynamoDB answers in milliseconds)
        module = self.h.load(
            "PollOrdersFunction", ORDERS_TABLE=table, ORDER_UPDATES_QUEUE_URL=queue, AWS_READ_TIMEOUT_SECONDS="20"
        )
        spec = self.h.stack.functions["PollOrdersFunction"]
        counts: dict[str, Any] = {"Count": 0, "ScannedCount": 0, "queries": 0, "query_seconds": 0.0}
        calls: dict[str, int] = {}
        lock = threading.Lock()

        def before(context: dict[str, Any], **_: Any) -> None:
            context["bench_started"] = time.perf_counter()

        def after(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            with lock:
                calls[model.name] = calls.get(model.name, 0) + 1
                if model.name == "Query":
                    counts["Count"] += int(parsed.get("Count", 0))
                    counts["ScannedCount"] += int(parsed.get("ScannedCount", 0))
                    counts["queries"] += 1
                    counts["query_seconds"] += time.perf_counter() - context.get("bench_started", time.perf_counter())

        for service in ("dynamodb", "sqs"):
            events = aws.client(service).meta.events
            events.register("before-call", before)
            events.register("after-call", after)
        context = LambdaContext(spec.name, spec.memory, spec.timeout)
        before = self.cpu()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the function's EMF metrics line
            summary = module.lambda_handler(event("poll_orders/scheduled.json"), context)
        seconds = time.perf_counter() - started
        after = self.cpu()
        self.h.client("sqs").delete_queue(QueueUrl=queue)
        return Run(
            stored,
            due,
            seconds,
            summary,
            counts["Count"],
            counts["ScannedCount"],
            counts["queries"],
            counts["query_seconds"],
            calls.get("UpdateItem", 0),
            calls.get("SendMessageBatch", 0) + calls.get("SendMessage", 0),
            calls,
            int(os.environ.get("POLL_CONCURRENCY") or 16),
            {k: after[k] - before[k] for k in after},
        )

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by moto, the FlexFactor emulator and this process (the
        poller's own work: the function runs here)."""
        pids = {"moto": self.h.processes[0].pid, "emulator": self.h.processes[2].pid, "poller": os.getpid()}
        return {name: _cpu_seconds(pid) for name, pid in pids.items()}


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def calibrate(world: World, table: str, stored: int) -> dict[str, float]:
    """moto's CPU per operation the poller makes, one at a time on ``table``: a next-poll
    UpdateItem (the poller's own write) and an index Query answering 1000 items."""
    from decline_rescue.runtime import wiring

    world.h.load("PollOrdersFunction", ORDERS_TABLE=table, AWS_READ_TIMEOUT_SECONDS="20")
    orders = wiring.orders()
    later = _iso(datetime.now(UTC) + timedelta(hours=2))
    moto = world.h.processes[0].pid
    n = min(300, stored)
    first = stored - n  # never-due orders at the end of the range
    version = {k: int(world.templates[k]["version"]["N"]) for k in ("cit", "mit")}
    start_cpu, start = _cpu_seconds(moto), time.perf_counter()
    for i in range(first, stored):
        kind = "mit" if i % MIT_EVERY == MIT_EVERY - 1 else "cit"
        orders.schedule_poll(order_id_of(i), later, version=version[kind], count=True)
    update_cpu, update_wall = (_cpu_seconds(moto) - start_cpu) / n, (time.perf_counter() - start) / n
    start_cpu, start = _cpu_seconds(moto), time.perf_counter()
    items, _ = orders.due("P0", _iso(datetime.now(UTC) + timedelta(days=1)), limit=1000)
    query_cpu, query_wall = _cpu_seconds(moto) - start_cpu, time.perf_counter() - start
    return {
        "update_cpu_ms": update_cpu * 1000,
        "update_wall_ms": update_wall * 1000,
        "query_items": len(items),
        "query_cpu_s": query_cpu,
        "query_wall_s": query_wall,
    }


def run(env: BenchEnv) -> list[Row]:
    sizes = (1000, 10000, 50000) if not env.quick else (500, 2000, 5000)
    due_small = env.n(1000, 200)
    due_big = env.n(10000, 2000)
    sweep = [env.n(2500, 1000)]
    saved = dict(os.environ)
    try:
        with Harness() as harness:
            world = World(harness)
            runs, calibration = _measure(world, sizes, due_small, due_big, sweep, env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return _report(runs, calibration, sizes, due_small, due_big, env)


def _measure(world: World, sizes, due_small: int, due_big: int, sweep: list[int], env: BenchEnv):
    made = world.provider_orders(due_big)
    print(f"   {due_big} FlexFactor orders made (POST /v1/evaluate) in {made:.1f} s", flush=True)
    world.writer_templates()
    table = world.new_table()
    runs: list[Run] = []
    calibration: dict[str, float] = {}
    stored = 0
    was_due = 0
    for size in sizes:
        t0 = time.perf_counter()
        world.fill(table, stored, size)
        print(f"   {size} pending + {size} ended orders stored ({time.perf_counter() - t0:.1f} s)", flush=True)
        stored = size
        plan = [due_small]
        if size == sizes[1]:
            plan += [*sweep, due_big]
        for due in plan:
            world.set_due(table, due, was_due)
            was_due = due
            result = world.poll(table, stored, due)
            runs.append(result)
            print(
                f"   {stored} pending, {due} due: {result.seconds:.1f} s, read {result.read} (Query Count "
                f"{result.query_count}, ScannedCount {result.query_scanned}, {result.queries} queries), "
                f"reconciled {result.reconciled}; CPU s {json.dumps({k: round(v, 1) for k, v in result.cpu.items()})}",
                flush=True,
            )
        if size == sizes[1]:
            calibration = calibrate(world, table, stored)
    return runs, calibration


def _report(runs: list[Run], calibration: dict[str, float], sizes, due_small: int, due_big: int, env: BenchEnv):
    rows = []
    for r in runs:
        if r.due != due_small:
            continue
        independent = r.query_scanned == r.read and r.query_count == r.read
        ratio = r.read / r.due
        rows.append(
            Row(
                NAME,
                f"items read / due orders: {r.due:,} due, {r.stored:,} pending + {r.stored:,} ended stored",
                f"{r.read:,} items read",
                f"{r.due:,} due",
                ratio,
                "= 1.0x",
                abs(ratio - 1.0) < 1e-9 and independent and r.reconciled == r.due,
                f"botocore Query hook: Count {r.query_count:,}, ScannedCount {r.query_scanned:,} in "
                f"{r.queries} queries; {r.reconciled:,} reconciled in {r.seconds:.1f} s",
            )
        )
    big = next(r for r in runs if r.due == due_big)
    complete = big.reconciled == due_big and not big.summary.get("stopped_early")
    rate = big.reconciled / big.seconds if big.seconds else 0.0
    needed = big.seconds if complete else (due_big / rate if rate else float("inf"))
    how = (
        f"all {due_big:,} reconciled in one run"
        if complete
        else f"{big.reconciled:,} reconciled before the run stopped at its budget ({big.seconds:.1f} s; the rest "
        f"stay due, first in the next run); {due_big:,} at that rate ({rate:.0f}/s) need {needed:.0f} s"
    )
    per = max(big.reconciled, 1)
    rows.append(
        Row(
            NAME,
            f"{due_big:,} due orders reconciled in one invocation",
            f"{needed:.1f} s" + ("" if complete else " (projected)"),
            f"{BUDGET_SECONDS:.0f} s budget",
            needed / BUDGET_SECONDS,
            "<= 1.0x",
            complete and big.seconds <= BUDGET_SECONDS,
            f"{how}; concurrency {big.concurrency}; CPU per order: moto {big.cpu.get('moto', 0) / per * 1000:.1f} ms, "
            f"poller {big.cpu.get('poller', 0) / per * 1000:.1f} ms, emulator "
            f"{big.cpu.get('emulator', 0) / per * 1000:.1f} ms",
        )
    )
    _section(runs, calibration, sizes, due_small, due_big, big, needed, env)
    return rows


def _section(runs, calibration, sizes, due_small, due_big, big: Run, needed: float, env: BenchEnv) -> None:
    reads = [(r.stored, r.read) for r in runs if r.due == due_small]
    scanned = [(r.stored, r.query_scanned) for r in runs if r.due == due_small]
    top = svg_lines(
        f"Items read per poller run, {due_small:,} due",
        "pending orders stored (as many ended ones besides)",
        "DynamoDB items read",
        {
            "read (run summary)": reads,
            "ScannedCount (hook)": scanned,
            "orders due": [(s, due_small) for s in sizes],
            "a scan (all items)": [(s, 2 * s) for s in sizes],
        },
    )
    swept = sorted((r for r in runs if r.stored == sizes[1]), key=lambda r: r.due)
    bottom = svg_lines(
        f"Poller run time vs orders due ({sizes[1]:,} pending stored)",
        "orders due",
        "seconds",
        {
            "run time": [(r.due, r.seconds) for r in swept],
            "all due reconciled": [(r.due, r.seconds) for r in swept if r is not big] + [(big.due, needed)],
            "budget (55 s)": [(0, BUDGET_SECONDS), (due_big, BUDGET_SECONDS)],
        },
    )
    (ROOT / "bench" / "polling.svg").write_text(_stack(top, bottom))
    lines = [
        "## Polling at scale",
        "",
        "![polling](polling.svg)",
        "",
        "Each run is `PollOrdersFunction`'s handler with the function's environment (the template's "
        f"`PollConcurrency`, {big.concurrency}) on a fresh table with the template's schema. FlexFactor orders are "
        "real emulator orders (`POST /v1/evaluate`): nine in ten customer-initiated authorizations "
        "(Capturerequired, unchanged, so the run pushes their next poll back: one UpdateItem each), one in ten "
        "merchant-initiated orders completed at FlexFactor whose webhooks were lost (the run queues them for the "
        "writer, ten per SQS request). State items are copies of items the real writer wrote, bulk-loaded with "
        "BatchWriteItem; ended orders carry no `pendingShard`/`nextPollAt`. Items read come from the run's summary "
        "and, independently, from a botocore `after-call` hook adding up each Query answer's `Count` and "
        "`ScannedCount`. CPU is each process's user+system time during the run (`/proc`).",
        "",
        "| pending stored | ended stored | due | run time | items read | Query Count / ScannedCount | queries "
        "| reconciled | changed (queued) | next polls written | SQS requests | CPU s: moto / poller / emulator |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        cpu = " / ".join(f"{r.cpu.get(k, 0):.1f}" for k in ("moto", "poller", "emulator"))
        lines.append(
            f"| {r.stored:,} | {r.stored:,} | {r.due:,} | {r.seconds:.1f} s | {r.read:,} | {r.query_count:,} / "
            f"{r.query_scanned:,} | {r.queries} | {r.reconciled:,} | {r.summary.get('changed', 0):,} | {r.updates:,} "
            f"| {r.sqs_sends} | {cpu} |"
        )
    if calibration:
        per = max(big.reconciled, 1)
        read_ms = calibration["query_cpu_s"] * 1000 / max(calibration["query_items"], 1)
        floor_ms = calibration["update_cpu_ms"] + read_ms
        lines += [
            "",
            f"Where the time goes ({big.due:,} due): the run is bound by moto, which serves every DynamoDB and SQS "
            f"request in one Python process: {big.cpu.get('moto', 0) / per * 1000:.1f} ms of moto CPU per order "
            f"reconciled, against {big.cpu.get('poller', 0) / per * 1000:.1f} ms in the poller (the function) and "
            f"{big.cpu.get('emulator', 0) / per * 1000:.1f} ms in the FlexFactor emulator. Measured one at a time on "
            f"the {sizes[1]:,}-order table, moto spends {calibration['update_cpu_ms']:.1f} ms of CPU on one next-poll "
            f"UpdateItem ({calibration['update_wall_ms']:.1f} ms round trip) and {calibration['query_cpu_s']:.2f} s on "
            f"one index Query answering {calibration['query_items']:,} items ({read_ms:.1f} ms per item: it scans "
            "every item of the table and deep-copies each one it answers, where DynamoDB reads only the index "
            "range). An order costs the poller one index item read and one conditional write (or a tenth of an SQS "
            f"request): at moto's prices that floor is {floor_ms:.1f} ms of one core per order, so {due_big:,} orders "
            f"need about {due_big * floor_ms / 1000:.0f} s of moto alone, whatever the poller does. In side "
            "experiments (not repeated by `make bench`) concurrency 4, 8 and 16 gave the same throughput (moto is "
            "saturated), and the poller's two changes (index pages of 1000 read ahead of the lookups instead of "
            "pages of 100 read between them; SQS batches sent beside the lookups instead of inline) cut a "
            "3,000-due run from 31-36 s to 22-26 s. Reading every shard's first page at once (a cold-start "
            "change) made eight concurrent Queries here: moto spent 2.5x the CPU of the same eight in a row and "
            "answered other requests after the functions' 5 s read timeout, failing the run; the poller now does "
            "that only when an index read is quick (under 0.25 s, as DynamoDB's are), and otherwise reads one page "
            "ahead of the work.",
        ]
    env.extra_sections.append("\n".join(lines))


def _stack(*charts: str) -> str:
    """Several svg_lines charts, one above the other, as one SVG."""
    height = 360
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{height * len(charts)}">']
    for i, chart in enumerate(charts):
        parts.append(chart.replace("<svg ", f'<svg y="{i * height}" ', 1))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
