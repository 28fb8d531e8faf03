"""Cost per 1M declines (issue 5, item 6): the AWS requests each lifecycle makes, counted
from botocore's event hooks during a run of the real handlers, turned into dollars with
the public on-demand prices kept in ``bench/prices.json``.

Three lifecycles, ``N`` declines each, every step through the function the template
routes it to (one execution environment per function, warm; the template's environment):
- CIT sale: ``POST /declines`` (EvaluateDeclineFunction) -> APPROVED; FlexFactor's
  ``order.completed`` webhook (IngestWebhookFunction) -> order-updates queue ->
  ApplyOrderUpdateFunction (a duplicate, recorded);
- CIT authorization: ``POST /declines`` -> CAPTUREREQUIRED; FlexFactor's
  ``order.capturerequired`` webhook; the poller while the order waits; the merchant's
  ``POST /orders/{id}/capture`` (OrdersApiFunction) -> APPROVED; ``order.completed``;
- MIT: ``POST /declines`` -> QUEUED -> declines queue -> EvaluateDeclineFunction ->
  SUBMITTED; the poller while FlexFactor works on it; ``order.completed`` -> APPROVED.

FlexFactor's webhooks are the emulator's own, signed and sent to a receiver here that
hands them to IngestWebhookFunction as API Gateway events. The SQS event source mappings
are played here (one ReceiveMessage and one DeleteMessageBatch per message, batch of
one, as at low volume). Time is compressed ``SCALE`` times (poll delays, FlexFactor's
steps, the schedule), so each order is polled as often as it would be in real time.

Order events (issue 9): the writers no longer publish; the orders table's stream feeds
PublishOrderEventsFunction, the only function that calls PutEvents. Its mapping is run
here for real, not modelled: ``devstack.pollers.StreamPoller`` with the template's
mapping (its filter: new history items with a ``changeId``) reads the table's stream
after every other invocation and invokes the publisher's handler in this process
(metered like the others, under the lifecycle whose change it publishes), with batches
of one record (one change per invocation, as at low volume, like the SQS triggers). So
the publisher's Lambda requests, its duration at its memory and its PutEvents entries
are counted as measured. The stream's own reads (DescribeStream, GetShardIterator,
GetRecords by the mapping's poller) are not counted: stream reads by a Lambda trigger
are free.

DynamoDB capacity: reads from each answer's items (AWS's item-size rules); writes from
the orders table's own stream (the template's, NEW_IMAGE: each write's before-image is
the key's previous record's image, read from the stream's start, where the table began):
the larger of the before and after images, doubled in transactions, plus the pending
index's writes (one to add or drop an entry, two when its key changes). Lambda: each
invocation's measured duration at the function's configured memory (template.yaml,
through the harness's stack spec).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.core import ROOT, BenchEnv, Row
from bench.harness import WEBHOOK_KEY, Harness, event
from bench.meter import AwsMeter, Call, item_size, read_units, write_units
from bench.polling import cit_body, mit_body, work_summaries

NAME = "cost"
PRICES = ROOT / "bench" / "prices.json"
SCALE = 120  # time compression: 1 s here is 2 minutes
CAPTURE_AFTER = 600  # seconds (real time) a merchant takes to capture an authorization
MIT_SETTLES_AFTER = 3600  # seconds FlexFactor takes to settle a merchant-initiated retry
POLL_RATE = 60  # the template's PollRate, seconds
MONTHLY_DECLINES = 1_000_000  # the volume the fixed monthly costs are spread over
FUNCTIONS = (
    "EvaluateDeclineFunction",
    "IngestWebhookFunction",
    "ApplyOrderUpdateFunction",
    "OrdersApiFunction",
    "DispatchPollsFunction",
    "PollOrdersFunction",
    "PublishOrderEventsFunction",
)
PUBLISHER = "PublishOrderEventsFunction"
PATHS = {
    "cit_sale": "CIT sale: POST /declines -> APPROVED (+ order.completed webhook)",
    "cit_capture": "CIT authorization: -> CAPTUREREQUIRED, captured after 10 min (+ 2 webhooks, polls)",
    "mit": "MIT: -> QUEUED -> SUBMITTED, settled by FlexFactor after 1 h (+ webhook, polls)",
}
CIT_MIX = {"cit_sale": 0.5, "cit_capture": 0.5}  # the CIT figure: half sales, half authorizations


@dataclass
class Invocation:
    path: str
    function: str
    label: str
    seconds: float
    memory: int
    idle: bool = False  # the schedule's dispatch, or a work item with nothing due: a fixed cost, not a decline's
    polled: int = 0  # orders a poll worker read


@dataclass
class Usage:
    """What one lifecycle (or the fixed monthly work) used, summed."""

    lambda_requests: float = 0.0
    gb_seconds: float = 0.0
    apigw_requests: float = 0.0
    rru: float = 0.0
    wru_table: float = 0.0
    wru_gsi: float = 0.0
    sqs_requests: float = 0.0
    events: float = 0.0
    secrets_calls: float = 0.0
    scheduler: float = 0.0
    polls: float = 0.0  # orders read by scheduled poller runs (the marginal work of polling)
    calls: Counter = field(default_factory=Counter)  # "service:Operation" -> requests
    by_function: Counter = field(default_factory=Counter)  # invocations per function

    def scaled(self, factor: float) -> Usage:
        out = Usage(**{k: getattr(self, k) * factor for k in NUMERIC})
        out.calls = Counter({k: v * factor for k, v in self.calls.items()})
        out.by_function = Counter({k: v * factor for k, v in self.by_function.items()})
        return out

    def dollars(self, prices: dict[str, Any]) -> dict[str, float]:
        m = 1e6
        return {
            "Lambda requests": self.lambda_requests * prices["lambda"]["request_per_million"] / m,
            "Lambda duration": self.gb_seconds * prices["lambda"]["arm64_gb_second"],
            "API Gateway": self.apigw_requests * prices["api_gateway"]["rest_request_per_million"] / m,
            "DynamoDB reads": self.rru * prices["dynamodb"]["read_request_unit_per_million"] / m,
            "DynamoDB writes (table)": self.wru_table * prices["dynamodb"]["write_request_unit_per_million"] / m,
            "DynamoDB writes (index)": self.wru_gsi * prices["dynamodb"]["write_request_unit_per_million"] / m,
            "SQS": self.sqs_requests * prices["sqs"]["standard_request_per_million"] / m,
            "EventBridge events": self.events * prices["eventbridge"]["custom_event_per_million"] / m,
            "Secrets Manager calls": self.secrets_calls * prices["secrets_manager"]["api_calls_per_10k"] / 1e4,
            "Scheduler": self.scheduler * prices["eventbridge"]["scheduler_invocation_per_million"] / m,
        }


NUMERIC = (
    "lambda_requests",
    "gb_seconds",
    "apigw_requests",
    "rru",
    "wru_table",
    "wru_gsi",
    "sqs_requests",
    "events",
    "secrets_calls",
    "scheduler",
    "polls",
)


class Inbox:
    """Where the FlexFactor emulator sends its webhooks: kept for IngestWebhookFunction."""

    def __init__(self) -> None:
        self._items: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        with self._lock:
            self._items.append((request.path, dict(request.headers), request.get_data()))
        return Response('{"received": true}', 200, content_type="application/json")(environ, start_response)

    def take(self) -> list[tuple[str, dict[str, str], bytes]]:
        with self._lock:
            items, self._items = self._items, []
        return items


class Lifecycles:
    """The stack's functions as Lambda would run them, metered."""

    def __init__(self, harness: Harness, meter: AwsMeter) -> None:
        self.h = harness
        self.meter = meter
        self.ids = harness.stack.physical_ids
        self.invocations: list[Invocation] = []
        self.gateway: Counter[str] = Counter()
        self.webhooks_in: Counter[str] = Counter()
        self.failures: list[str] = []
        self._seq = itertools.count(1)
        self.modules: dict[str, Any] = {}
        self.streams: dict[str, str] = {}

    # -- set-up ---------------------------------------------------------------------

    def start(self) -> None:
        from devstack.emulators.base import ServerThread

        self.inbox = Inbox()
        self._werkzeug_level = logging.getLogger("werkzeug").level
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the receiver's request lines
        self.receiver = ServerThread(self.inbox).start()
        self.flex = httpx.Client(base_url=self.h.flexfactor_url)
        self.flex.post(
            "/__emulator/config",
            json={"webhook_url": self.receiver.url + "/webhooks/flexfactor", "webhook_key": WEBHOOK_KEY},
        ).raise_for_status()
        ddb = self.h.client("dynamodb")
        # the orders table's own stream (the template's): no other table is written
        orders = ddb.describe_table(TableName=self.ids["OrdersTable"])["Table"]
        if not (orders.get("StreamSpecification") or {}).get("StreamEnabled"):
            raise RuntimeError("the orders table has no stream: the template's StreamSpecification is gone")
        self.streams[orders["TableName"]] = orders["LatestStreamArn"]
        self.tables = {orders["TableName"]: orders}
        self.ddb = ddb  # set-up and state checks: made outside any label, never counted
        self._count_signed_secret_reads()
        self.sqs = self.h.client("sqs")
        # every function's environment at once (they agree on every shared name), with the
        # poll schedule compressed like FlexFactor's clock
        compressed = {
            "POLL_FIRST_DELAY_SECONDS": f"{120 / SCALE:g}",
            "POLL_MAX_INTERVAL_SECONDS": f"{3600 / SCALE:g}",
        }
        for logical in FUNCTIONS:
            self.modules[logical] = self.h.load(logical, **compressed)
        self.queue_arn = {
            q: self.sqs.get_queue_attributes(QueueUrl=self.ids[q], AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            for q in ("DeclinesQueue", "OrderUpdatesQueue", "PollWorkQueue")
        }
        self.ticks = 0  # the schedule's ticks (each a dispatch and its work items)
        self._start_publisher()

    def _start_publisher(self) -> None:
        """The orders stream's event source mapping (the template's filter, retries and
        on-failure queue), batches of one record; its reads are made outside any label."""
        import dataclasses

        from devstack.pollers import StreamPoller

        mapping = next(m for m in self.h.stack.event_sources if m.function == PUBLISHER)
        self._path = ""  # the lifecycle the publisher's invocations are counted under
        self.stream_poller = StreamPoller(
            dataclasses.replace(mapping, batch_size=1),
            self.h.client("dynamodbstreams"),
            self.h.client("sqs"),
            self._publish,
            retry_delay=0.01,
        )
        self.stream_poller.poll_once()  # nothing to publish yet (the table is new)
        self.published: Counter[str] = Counter()  # events put, per lifecycle
        self.changes_seen: Counter[str] = Counter()  # records the publisher was handed

    def _publish(self, function: str, payload: dict[str, Any]) -> tuple[bool, Any]:
        try:
            result, _ = self.invoke(self._path, function, payload, drain=False)
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it to the poller
            self.failures.append(f"{function} raised {type(exc).__name__}: {exc}")
            return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        self.changes_seen[self._path] += len(payload["Records"])
        failed = len((result or {}).get("batchItemFailures") or [])
        if failed:
            self.failures.append(f"{function} failed {failed} record(s)")
        self.published[self._path] += len(payload["Records"]) - failed
        return True, result

    def publish(self, path: str) -> None:
        """What Lambda's stream poller does after a write: the new changes, published."""
        self._path = path
        if not self.stream_poller.drain(timeout=20):
            self.failures.append("the orders stream was not drained in time")

    def _count_signed_secret_reads(self) -> None:
        """GetSecretValue signed by the package itself (no botocore, so no hook sees it):
        counted where it is sent."""
        self._unpatch = lambda: None
        try:
            from decline_rescue.infra import secretsmanager
        except ImportError:
            return
        original = secretsmanager.get_secret_value
        meter = self.meter

        def counted(*args: Any, **kwargs: Any) -> Any:
            meter.note("secrets-manager", "GetSecretValue")
            return original(*args, **kwargs)

        secretsmanager.get_secret_value = counted

        def unpatch() -> None:
            secretsmanager.get_secret_value = original

        self._unpatch = unpatch

    def close(self) -> None:
        self._unpatch()
        self.receiver.stop()
        self.flex.close()
        logging.getLogger("werkzeug").setLevel(self._werkzeug_level)

    def step_seconds(self, seconds: float) -> None:
        self.flex.post("/__emulator/config", json={"step_seconds": seconds}).raise_for_status()

    # -- what Lambda, API Gateway and the event source mappings do ---------------------

    def invoke(
        self, path: str, function: str, payload: dict[str, Any], *, drain: bool = True
    ) -> tuple[Any, Invocation]:
        """Invoke ``function`` as Lambda would, metered under ``path``; then (``drain``)
        the orders stream's mapping publishes the changes it wrote."""
        from devstack.runtime import LambdaContext

        spec = self.h.stack.functions[function]
        label = f"{path}|{function}|{next(self._seq)}"
        context = LambdaContext(spec.name, spec.memory, spec.timeout)
        with self.meter.labelled(label), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            started = time.perf_counter()
            result = self.modules[function].lambda_handler(payload, context)
            seconds = time.perf_counter() - started
        record = Invocation(path, function, label, seconds, spec.memory)
        self.invocations.append(record)
        if drain:
            self.publish(path)
        return result, record

    def api(self, path: str, function: str, sample: str, body: Any, *, order_id: str | None = None):
        request = event(sample)
        request["body"] = None if body is None else json.dumps(body)
        if order_id is not None:
            request["path"] = request["resource"].replace("{orderId}", order_id)
            request["pathParameters"] = {"orderId": order_id}
        self.gateway[path] += 1
        answer, _ = self.invoke(path, function, request)
        return answer["statusCode"], json.loads(answer["body"])

    def webhooks(self, path: str) -> int:
        received = self.inbox.take()
        for url_path, headers, body in received:
            request = event("ingest_webhook/post_webhook.json")
            request.pop("_comment", None)
            request.update(
                path=url_path,
                headers=headers,
                multiValueHeaders={k: [v] for k, v in headers.items()},
                body=body.decode(),
                isBase64Encoded=False,
            )
            self.gateway[path] += 1
            self.webhooks_in[path] += 1
            answer, _ = self.invoke(path, "IngestWebhookFunction", request)
            if answer["statusCode"] != 200:
                self.failures.append(f"webhook answered {answer['statusCode']}: {answer['body'][:200]}")
        return len(received)

    def esm(self, path: str, queue: str, function: str) -> int:
        """The SQS trigger: a message at a time (batches of one, as at low volume)."""
        from devstack.pollers import sqs_event

        url = self.ids[queue]
        handled = 0
        while True:
            label = f"{path}|esm:{queue}|{next(self._seq)}"
            with self.meter.labelled(label):
                messages = self.sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=1, MessageAttributeNames=["All"], AttributeNames=["All"]
                ).get("Messages", [])
            if not messages:
                self.meter.take(label)  # an empty receive: the mapping's idle polling, a fixed cost
                return handled
            answer, _ = self.invoke(path, function, sqs_event(messages, self.queue_arn[queue]))
            failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            if failed:
                self.failures.append(f"{function} failed {len(failed)} record(s)")
                self.sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(messages)
                        if m["MessageId"] in failed
                    ],
                )
            if done:
                with self.meter.labelled(label):
                    self.sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                    )
            handled += 1

    def poll(self, path: str) -> dict[str, Any]:
        """A tick of the schedule: the dispatcher (a fixed cost), then each work item it put
        on the poll-work queue to a worker as the queue's mapping hands them (one record
        each); a work item whose page had nothing due is a fixed cost too."""
        from devstack.pollers import sqs_event

        self.ticks += 1
        _, dispatch = self.invoke(path, "DispatchPollsFunction", event("dispatch_polls/scheduled.json"))
        dispatch.idle = True
        url = self.ids["PollWorkQueue"]
        read = 0
        with work_summaries() as results:
            while True:
                label = f"{path}|esm:PollWorkQueue|{next(self._seq)}"
                with self.meter.labelled(label):
                    messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
                if not messages:
                    self.meter.take(label)  # the mapping's idle polling: counted with the fixed costs
                    break
                before = len(results)
                answer, record = self.invoke(
                    path, "PollOrdersFunction", sqs_event(messages, self.queue_arn["PollWorkQueue"])
                )
                assert answer == {"batchItemFailures": []}, answer
                found = sum(int(r["counts"].get("read", 0)) for r in results[before:])
                record.idle = not found
                record.polled = found
                read += found
                with self.meter.labelled(label):
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return {"read": read}

    def settle(self, path: str, *, seconds: float, until=None, poll: bool = True) -> bool:
        """Run the stack for ``seconds`` (compressed time) or until ``until()``: the
        schedule's poller runs, webhooks in, the order-updates queue drained."""
        started = time.monotonic()
        next_poll = started
        while True:
            if poll and time.monotonic() >= next_poll:
                self.poll(path)
                next_poll += POLL_RATE / SCALE
            self.webhooks(path)
            self.esm(path, "OrderUpdatesQueue", "ApplyOrderUpdateFunction")
            if until is not None and until():
                return True
            if time.monotonic() - started >= seconds:
                return until is None
            time.sleep(0.02)

    def status(self, order_id: str) -> str | None:
        item = self.ddb.get_item(
            TableName=self.ids["OrdersTable"],
            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}},
            ConsistentRead=True,
        ).get("Item")
        return item["status"]["S"] if item else None

    # -- the three lifecycles -------------------------------------------------------

    def cit_sale(self, n: int) -> None:
        path = "cit_sale"
        self.step_seconds(0.5)
        for _ in range(n):
            status, body = self.api(
                path,
                "EvaluateDeclineFunction",
                "evaluate_decline/post_cit.json",
                cit_body(f"cost-sale-{uuid.uuid4().hex[:10]}", authorization=False),
            )
            if (status, body.get("status")) != (200, "APPROVED"):
                self.failures.append(f"CIT sale answered {status} {body}")
        self.settle(path, seconds=30, until=lambda: self.webhooks_in[path] >= n, poll=False)
        self.settle(path, seconds=0.5, poll=False)  # whatever is still on its way

    def cit_capture(self, n: int) -> None:
        path = "cit_capture"
        self.step_seconds(0.5)
        orders = []
        for _ in range(n):
            status, body = self.api(
                path,
                "EvaluateDeclineFunction",
                "evaluate_decline/post_cit.json",
                cit_body(f"cost-auth-{uuid.uuid4().hex[:10]}"),
            )
            if (status, body.get("status")) != (200, "CAPTUREREQUIRED"):
                self.failures.append(f"CIT authorization answered {status} {body}")
            orders.append(body["orderId"])
        self.settle(path, seconds=CAPTURE_AFTER / SCALE)  # the merchant ships, then captures
        for order_id in orders:
            status, body = self.api(path, "OrdersApiFunction", "orders_api/post_capture.json", None, order_id=order_id)
            if (status, body.get("status")) != (200, "APPROVED"):
                self.failures.append(f"capture answered {status} {body}")
        self.settle(path, seconds=30, until=lambda: self.webhooks_in[path] >= 2 * n)
        self.settle(path, seconds=0.5, poll=False)

    def mit(self, n: int) -> None:
        path = "mit"
        self.step_seconds(MIT_SETTLES_AFTER / 2 / SCALE)  # Processing after one step, Completed after two
        orders = []
        for _ in range(n):
            status, body = self.api(
                path,
                "EvaluateDeclineFunction",
                "evaluate_decline/post_mit.json",
                mit_body(f"cost-mit-{uuid.uuid4().hex[:10]}"),
            )
            if (status, body.get("status")) != (202, "QUEUED"):
                self.failures.append(f"MIT answered {status} {body}")
            orders.append(body["orderId"])
        self.esm(path, "DeclinesQueue", "EvaluateDeclineFunction")
        done = self.settle(
            path,
            seconds=MIT_SETTLES_AFTER / SCALE + 30,
            until=lambda: self.webhooks_in[path] >= n and all(self.status(o) == "APPROVED" for o in orders),
        )
        if not done:
            self.failures.append("MIT orders did not all reach APPROVED")
        self.settle(path, seconds=0.5, poll=False)

    # -- DynamoDB capacity, from the streams ----------------------------------------

    def stream_records(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Every change to the metered tables, per (table, key), in order. The stream is
        the template's (NEW_IMAGE): a record's before-image is the previous record's image
        of the same key (read from the stream's start, which is the table's), or none."""
        streams = self.h.client("dynamodbstreams")
        out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for table, arn in self.streams.items():
            for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                iterator = streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while iterator:
                    answer = streams.get_records(ShardIterator=iterator, Limit=1000)
                    for record in answer["Records"]:
                        change = dict(record["dynamodb"])
                        history = out[(table, _key(change["Keys"]))]
                        if "OldImage" not in change:
                            change["OldImage"] = history[-1].get("NewImage") if history else None
                        history.append(change)
                    iterator = answer.get("NextShardIterator") if answer["Records"] else None
        return out


def _key(keys: dict[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True)


def _key_of(table: dict[str, Any], item: dict[str, Any]) -> str:
    names = [k["AttributeName"] for k in table["KeySchema"]]
    return _key({n: item[n] for n in names if n in item})


class Capacity:
    """Read and write units of each metered DynamoDB call."""

    def __init__(self, tables: dict[str, dict[str, Any]], records: dict[tuple[str, str], list[dict[str, Any]]]):
        self.tables = tables
        self.records = {k: list(v) for k, v in records.items()}
        self.last: dict[tuple[str, str], dict[str, Any]] = {}
        self.indexes = {
            name: [
                (
                    [k["AttributeName"] for k in g["KeySchema"]],
                    [k["AttributeName"] for k in t["KeySchema"]] + list(g["Projection"].get("NonKeyAttributes") or []),
                )
                for g in t.get("GlobalSecondaryIndexes") or []
            ]
            for name, t in tables.items()
        }
        self.unmatched = 0

    def _write(self, table: str, key: str, ok: bool) -> tuple[int, list[int]]:
        """(table write units, index entry write units) of one item write."""
        if not ok:  # a failed condition still costs the write, at the item's size
            before = self.last.get((table, key))
            return write_units(item_size(before) if before else 0), []
        queue = self.records.get((table, key)) or []
        if not queue:
            self.unmatched += 1
            before = self.last.get((table, key))
            return write_units(item_size(before) if before else 0), []
        record = queue.pop(0)
        old, new = record.get("OldImage"), record.get("NewImage")
        self.last[(table, key)] = new
        size = max(item_size(old) if old else 0, item_size(new) if new else 0)
        index_writes: list[int] = []
        for keys, projected in self.indexes.get(table, []):
            index_writes += _index_writes(keys, projected, old, new)
        return write_units(size), index_writes

    def of(self, call: Call) -> tuple[float, float, float, int]:
        """(read units, table write units, index write units, item writes) of a call."""
        p, ok = call.params, call.status < 300
        op = call.operation
        table = p.get("TableName", "")
        if op == "GetItem":
            item = call.parsed.get("Item")
            return read_units(item_size(item) if item else 0, consistent=bool(p.get("ConsistentRead"))), 0, 0, 0
        if op == "Query":
            size = sum(item_size(i) for i in call.parsed.get("Items") or [])
            return read_units(size, consistent=bool(p.get("ConsistentRead"))), 0, 0, 0
        if op in ("PutItem", "UpdateItem", "DeleteItem") and table in self.tables:
            item = p.get("Item") if op == "PutItem" else p.get("Key")
            units, index = self._write(table, _key_of(self.tables[table], item), ok)
            return 0, units, sum(write_units(s) for s in index), 1
        if op == "TransactWriteItems":
            wru = gsi = 0.0
            items = 0
            for entry in p.get("TransactItems") or []:
                (kind, body), *_ = entry.items()
                name = body.get("TableName", "")
                if name not in self.tables:
                    continue
                item = body.get("Item") if kind == "Put" else body.get("Key")
                units, index = self._write(name, _key_of(self.tables[name], item), ok)
                wru += 2 * units
                gsi += sum(write_units(s) for s in index)
                items += 1
            return 0, wru, gsi, items
        return 0, 0, 0, 0


def _index_writes(keys: list[str], projected: list[str], old: dict | None, new: dict | None) -> list[int]:
    """Sizes of the index entries a change writes: none, one (added, dropped or updated),
    or two (its key changed: the old entry deleted, the new one put)."""

    def entry(image: dict | None) -> dict | None:
        if not image or not all(k in image for k in keys):
            return None
        return {a: image[a] for a in dict.fromkeys(keys + projected) if a in image}

    before, after = entry(old), entry(new)
    if before is None and after is None:
        return []
    if before is None:
        return [item_size(after)]
    if after is None:
        return [item_size(before)]
    if any(before.get(k) != after.get(k) for k in keys):
        return [item_size(before), item_size(after)]
    return [max(item_size(before), item_size(after))] if before != after else []


def _sqs_requests(call: Call) -> int:
    """Requests billed for one SQS call: one per 64 KB chunk of its payload."""
    chunk = 64 * 1024
    p = call.params
    if call.operation == "SendMessage":
        size = len(p.get("MessageBody", "").encode()) + _attributes_size(p.get("MessageAttributes"))
    elif call.operation == "SendMessageBatch":
        size = sum(
            len(e.get("MessageBody", "").encode()) + _attributes_size(e.get("MessageAttributes"))
            for e in p.get("Entries", [])
        )
    elif call.operation == "ReceiveMessage":
        size = sum(len(m.get("Body", "").encode()) for m in call.parsed.get("Messages") or [])
    else:
        size = 0
    return max(1, math.ceil(size / chunk))


def _attributes_size(attributes: dict[str, Any] | None) -> int:
    total = 0
    for name, value in (attributes or {}).items():
        total += len(name.encode()) + len(value.get("DataType", "").encode())
        total += len((value.get("StringValue") or "").encode()) + len(value.get("BinaryValue") or b"")
    return total


def _event_chunks(call: Call) -> int:
    total = 0
    for entry in call.params.get("Entries", []):
        size = sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
        total += max(1, math.ceil(size / (64 * 1024)))
    return total


# -- the run ---------------------------------------------------------------------------


def run(env: BenchEnv) -> list[Row]:
    n = env.n(20, 4)
    prices = json.loads(PRICES.read_text())
    saved = dict(os.environ)
    meter = AwsMeter()
    try:
        with Harness() as harness, meter.installed():
            stack = Lifecycles(harness, meter)
            stack.start()
            try:
                t0 = time.perf_counter()
                stack.cit_sale(n)
                stack.cit_capture(n)
                stack.mit(n)
                print(f"   {3 * n} lifecycles run in {time.perf_counter() - t0:.0f} s", flush=True)
                capacity = Capacity(stack.tables, stack.stream_records())
            finally:
                stack.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if stack.failures:
        env.notes.append(f"cost: {len(stack.failures)} step(s) did not go as expected: {stack.failures[:3]}")
    return _report(stack, meter, capacity, n, prices, env)


def _account(stack: Lifecycles, meter: AwsMeter, capacity: Capacity):
    """Usage per lifecycle path and for idle scheduled runs; writes per status change.

    The schedule ticks every minute whatever the volume: its dispatch and the work items
    that find nothing due (one per shard) are a fixed cost. A work item that finds orders
    due costs a lifecycle only what those orders add: the items its index query returns
    (their read units, without the per-query minimum the idle item pays), the writes and
    sends it makes for them, and its duration beyond an idle work item's."""
    idle = [i for i in stack.invocations if i.idle and i.function == "PollOrdersFunction"]
    idle_seconds = sum(i.seconds for i in idle) / len(idle) if idle else 0.0
    idle = [i for i in stack.invocations if i.idle]
    idle_labels = {i.label for i in idle}
    busy_labels = {i.label for i in stack.invocations if i.function == "PollOrdersFunction" and not i.idle}
    usage: dict[str, Usage] = defaultdict(Usage)
    changes: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: {"items": 0, "requests": 0})
    other_order_writes: Counter[str] = Counter()
    orders_table = stack.ids["OrdersTable"]
    for call in list(meter.calls):  # in the order they were made
        path = "idle" if call.label in idle_labels else call.label.split("|", 1)[0]
        u = usage[path]
        if call.label in busy_labels and call.operation == "Query":
            size = sum(item_size(i) for i in call.parsed.get("Items") or [])
            u.rru += size / 4096 * 0.5  # eventually consistent, the query's minimum left to the schedule
            continue
        u.calls[f"{call.service}:{call.operation}"] += 1
        if call.service == "dynamodb":
            rru, wru, gsi, items = capacity.of(call)
            u.rru += rru
            u.wru_table += wru
            u.wru_gsi += gsi
            if items:
                _classify_write(call, orders_table, changes, other_order_writes)
        elif call.service == "sqs":
            u.sqs_requests += _sqs_requests(call)
        elif call.service == "eventbridge":
            u.events += _event_chunks(call)
        elif call.service == "secrets-manager":
            u.secrets_calls += 1
    for inv in stack.invocations:
        u = usage["idle" if inv.idle else inv.path]
        if inv.label in busy_labels:
            u.gb_seconds += max(inv.seconds - idle_seconds, 0.0) * inv.memory / 1024
            u.polls += inv.polled
            continue
        u.lambda_requests += 1
        u.gb_seconds += math.ceil(inv.seconds * 1000) / 1000 * inv.memory / 1024
        u.by_function[inv.function] += 1
    for path, count in stack.gateway.items():
        usage[path].apigw_requests += count
    return usage, changes, other_order_writes


def _classify_write(call: Call, orders_table: str, changes, other: Counter) -> None:
    """Writes to the orders table: those of a status change (the order's items in its
    transaction, grouped by orderId and version: the state item and the history item) and
    the rest, by kind (items of other keys in a change's transaction, e.g. the claim's
    idempotency key or the answer's card attempt, are counted apart)."""
    p = call.params
    if call.operation == "TransactWriteItems":
        entries = [next(iter(e.values())) for e in p.get("TransactItems") or []]
        mine = [e for e in entries if e.get("TableName") == orders_table]
        history = [e["Item"] for e in mine if "Item" in e and e["Item"]["sk"]["S"].startswith("HIST#")]
        if history:
            h = history[0]
            change = (h["pk"]["S"], int(h["sk"]["S"][5:11]))
            order = [e for e in mine if (e.get("Key") or e.get("Item") or {}).get("pk", {}).get("S") == change[0]]
            changes[change]["items"] += len(order)
            changes[change]["requests"] += 1
            for e in mine:
                if e not in order:  # e.g. the card's reattempt counter, written with the answer
                    pk = (e.get("Key") or e.get("Item") or {}).get("pk", {}).get("S", "")
                    other[f"{pk.split('#', 1)[0].lower() or 'other'} item in a change's transaction"] += 1
        return
    if p.get("TableName") != orders_table:
        return
    key = p.get("Key") or p.get("Item") or {}
    pk = key.get("pk", {}).get("S", "")
    expression = p.get("UpdateExpression") or ""
    if call.operation == "UpdateItem" and "nextPollAt" in expression:
        other["next poll (poller, or a poll requested)"] += 1
    elif call.operation == "UpdateItem" and "leaseUntil" in expression and pk.startswith("ORDER#"):
        other["decline lease (taken, given back, adoptable)"] += 1
    elif pk.startswith("ORDER#"):
        other["history note (duplicate, stale, ...)"] += 1
    elif pk.startswith("WEBHOOK#"):
        other["webhook delivery (kept, then marked)"] += 1
    elif pk.startswith("NONCE#"):
        other["webhook nonce"] += 1
    elif pk.startswith("CARD#"):
        other["card reattempt counter"] += 1
    else:
        other[pk.split("#", 1)[0] or "other"] += 1


def _fixed_monthly(usage: dict[str, Usage], stack: Lifecycles, prices: dict[str, Any]) -> tuple[Usage, list[str]]:
    """What the stack costs a month whatever the volume: the schedule's ticks (a dispatch
    and its idle work items, as measured), the queues' event source mappings polling, the
    secret."""
    runs_per_month = 30 * 86400 / POLL_RATE
    idle = [i for i in stack.invocations if i.idle]
    fixed = Usage()
    notes = []
    if idle and stack.ticks:
        per_tick = usage["idle"].scaled(1 / stack.ticks)
        fixed = per_tick.scaled(runs_per_month)
        workers = [i for i in idle if i.function == "PollOrdersFunction"]
        mean_ms = sum(i.seconds for i in workers) / len(workers) * 1000 if workers else 0.0
        notes.append(
            f"{runs_per_month:,.0f} ticks a month, each a dispatch and its work items with nothing due as "
            f"measured here ({per_tick.calls.get('dynamodb:Query', 0):.0f} index queries, "
            f"{per_tick.lambda_requests:.1f} invocations; an idle work item {mean_ms:.0f} ms)"
        )
    fixed.scheduler = runs_per_month
    # Lambda's SQS pollers long-poll each queue: 5 pollers x one 20 s receive each
    mapping_receives = 3 * 5 * (30 * 86400 / 20)
    fixed.sqs_requests += mapping_receives
    notes.append(f"{mapping_receives:,.0f} idle long-poll receives a month (3 queues x 5 pollers x 20 s)")
    notes.append("the orders stream's mapping polling its shards: free (stream reads by a Lambda trigger are)")
    # each function reading the FlexFactor secret re-reads it every SECRET_MAX_AGE_SECONDS
    # (300) in each warm environment: one environment per function assumed
    secret_reads = 4 * 30 * 86400 / 300
    fixed.secrets_calls += secret_reads
    notes.append(f"{secret_reads:,.0f} secret reads a month (4 functions x one warm environment x every 300 s)")
    return fixed, notes


def _report(stack: Lifecycles, meter: AwsMeter, capacity: Capacity, n: int, prices, env: BenchEnv) -> list[Row]:
    usage, changes, other_writes = _account(stack, meter, capacity)
    fixed, fixed_notes = _fixed_monthly(usage, stack, prices)
    secret_month = prices["secrets_manager"]["secret_month"]  # the FlexFactor secret
    fixed_dollars = sum(fixed.dollars(prices).values()) + secret_month
    fixed_per_decline = fixed_dollars / MONTHLY_DECLINES

    per_decline = {path: usage[path].scaled(1 / n) for path in PATHS}
    dollars = {path: per_decline[path].dollars(prices) for path in PATHS}
    per_million = {path: (sum(d.values()) + fixed_per_decline) * 1e6 for path, d in dollars.items()}
    cit = sum(share * per_million[path] for path, share in CIT_MIX.items())
    mit = per_million["mit"]

    sizes = [c["items"] for c in changes.values()]
    requests = [c["requests"] for c in changes.values()]
    worst = max(sizes, default=0)
    mean = sum(sizes) / len(sizes) if sizes else 0.0
    mean_requests = sum(requests) / len(requests) if requests else 0.0
    rows = [
        Row(
            NAME,
            "DynamoDB writes per status change (items of the order)",
            f"{worst} items, {max(requests, default=0)} requests",
            "-",
            None,
            "<= 3",
            0 < worst <= 3,
            f"worst of {len(sizes)} changes; mean {mean:.2f} items in {mean_requests:.2f} requests: the state item "
            "and its history item in one transaction (no outbox mark since the events come from the table's "
            "stream; the claim's idempotency key and the answer's card attempt ride in the same transactions "
            "and are counted as other writes)",
        ),
        Row(
            NAME,
            "$ per 1M CIT declines",
            f"${cit:,.2f}",
            "-",
            None,
            "a stated figure",
            math.isfinite(cit) and cit > 0,
            f"half sales (${per_million['cit_sale']:,.2f}), half authorizations captured after 10 min "
            f"(${per_million['cit_capture']:,.2f}); on-demand us-east-1 list prices, no free tier; fixed monthly "
            f"costs spread over {MONTHLY_DECLINES:,} declines a month",
        ),
        Row(
            NAME,
            "$ per 1M MIT declines",
            f"${mit:,.2f}",
            "-",
            None,
            "a stated figure",
            math.isfinite(mit) and mit > 0,
            "queued, submitted, settled by FlexFactor after 1 h (polled meanwhile), webhook; same prices and spread",
        ),
    ]
    publisher_runs = sum(1 for i in stack.invocations if i.function == PUBLISHER)
    published = sum(stack.published.values())
    events_line = (
        f"Order events: {len(changes)} changes written, {sum(stack.changes_seen.values())} handed to "
        f"PublishOrderEventsFunction by the orders stream's mapping (its filter passes only new history items with "
        f"a changeId) in {publisher_runs} invocations, {published} put on the bus "
        f"({sum(1 for c in meter.calls if c.operation == 'PutEvents')} PutEvents requests); "
        "no other function called PutEvents"
    )
    putters = {c.label.split("|")[1] for c in meter.calls if c.operation == "PutEvents"} - {PUBLISHER}
    if putters:
        env.notes.append(f"cost: PutEvents made by {sorted(putters)}, not only by {PUBLISHER}")
        events_line = events_line.replace("no other function called PutEvents", f"PutEvents also by {sorted(putters)}")
    if published != len(changes):
        env.notes.append(f"cost: {len(changes)} changes written but {published} events published")
    env.extra_sections.append(
        _section(
            per_decline,
            dollars,
            per_million,
            fixed,
            fixed_dollars,
            fixed_notes,
            changes,
            other_writes,
            n,
            prices,
            events_line,
        )
    )
    if capacity.unmatched:
        env.notes.append(f"cost: {capacity.unmatched} DynamoDB write(s) had no stream record (sized as before).")
    return rows


def _section(
    per_decline, dollars, per_million, fixed, fixed_dollars, fixed_notes, changes, other, n, prices, events_line
) -> str:
    paths = list(PATHS)
    head = "| | " + " | ".join(paths) + " |"
    rule = "| --- |" + " --- |" * len(paths)

    def row(name: str, values: list[str]) -> str:
        return f"| {name} | " + " | ".join(values) + " |"

    functions = sorted({f for p in paths for f in per_decline[p].by_function})

    def invocations(p: str) -> str:
        made = per_decline[p].by_function
        return ", ".join(f"{made[f]:.2f} {f.removesuffix('Function')}" for f in functions if made[f])

    counts = [
        row("Lambda invocations", [invocations(p) for p in paths]),
        row("orders polled by the schedule's runs", [f"{per_decline[p].polls:.2f}" for p in paths]),
        row("Lambda GB-s", [f"{per_decline[p].gb_seconds:.4f}" for p in paths]),
        row("API Gateway requests", [f"{per_decline[p].apigw_requests:.2f}" for p in paths]),
        row("DynamoDB read units", [f"{per_decline[p].rru:.2f}" for p in paths]),
        row("DynamoDB write units, table (transactions x2)", [f"{per_decline[p].wru_table:.2f}" for p in paths]),
        row("DynamoDB write units, pending index", [f"{per_decline[p].wru_gsi:.2f}" for p in paths]),
        row("SQS requests (64 KB chunks)", [f"{per_decline[p].sqs_requests:.2f}" for p in paths]),
        row("EventBridge events", [f"{per_decline[p].events:.2f}" for p in paths]),
        row("Secrets Manager calls", [f"{per_decline[p].secrets_calls:.3f}" for p in paths]),
    ]
    requests = sorted({k for p in paths for k in per_decline[p].calls})
    calls = [row(f"`{k}`", [f"{per_decline[p].calls.get(k, 0):.2f}" for p in paths]) for k in requests]
    items = list(dollars[paths[0]])
    money = [row(k, [f"${dollars[p][k] * 1e6:,.2f}" for p in paths]) for k in items]
    money.append(row("fixed monthly costs, spread", [f"${fixed_dollars / MONTHLY_DECLINES * 1e6:,.2f}"] * len(paths)))
    money.append(row("**total per 1M declines**", [f"**${per_million[p]:,.2f}**" for p in paths]))
    sizes = Counter(c["items"] for c in changes.values())
    lines = [
        "## Cost per 1M declines",
        "",
        f"{n} declines of each kind through the real handlers against moto and the FlexFactor emulator "
        f"(time compressed {SCALE}x: poll delays, FlexFactor's steps and the schedule), every AWS request counted "
        "by botocore's `before-parameter-build`/`after-call` hooks on every client the functions made. Prices: "
        f"`bench/prices.json` (us-east-1 on-demand list prices recorded {prices['recorded']}: Lambda arm64 "
        f"${prices['lambda']['arm64_gb_second']}/GB-s and ${prices['lambda']['request_per_million']:.2f}/M requests, "
        f"API Gateway REST ${prices['api_gateway']['rest_request_per_million']:.2f}/M, DynamoDB "
        f"${prices['dynamodb']['write_request_unit_per_million']}/M WRU and "
        f"${prices['dynamodb']['read_request_unit_per_million']}/M RRU, SQS "
        f"${prices['sqs']['standard_request_per_million']:.2f}/M, EventBridge "
        f"${prices['eventbridge']['custom_event_per_million']:.2f}/M events, Secrets Manager "
        f"${prices['secrets_manager']['api_calls_per_10k']}/10k calls; no free tiers).",
        "",
        "Per decline:",
        "",
        head,
        rule,
        *counts,
        "",
        "AWS requests per decline:",
        "",
        head,
        rule,
        *calls,
        "",
        "Dollars per 1M declines:",
        "",
        head,
        rule,
        *money,
        "",
        f"Fixed monthly costs (${fixed_dollars:,.2f} a month, whatever the volume; spread here over "
        f"{MONTHLY_DECLINES:,} declines): the FlexFactor secret (${prices['secrets_manager']['secret_month']:.2f}), "
        + "; ".join(fixed_notes)
        + ".",
        "",
        f"Writes per status change: {len(changes)} changes written; items per change: "
        + ", ".join(f"{k} items x {v}" for k, v in sorted(sizes.items()))
        + ". Other writes to the orders table, per decline: "
        + (", ".join(f"{k} {v / (3 * n):.2f}" for k, v in sorted(other.items())) or "none")
        + ".",
        "",
        events_line + ".",
        "",
        "Assumptions: Lambda durations are this machine's, warm (each function's first invocation included; cold "
        "starts are in the cold-start benchmark), at each function's configured memory, billed per 1 ms; the SQS "
        "triggers deliver batches of one (low volume), and so does the orders stream's mapping (one invocation and "
        "one PutEvents per change; at volume a batch of up to 100 changes is one invocation and one PutEvents per "
        "10 events); FlexFactor sends each webhook once; a merchant captures an "
        "authorization after 10 minutes and FlexFactor settles a merchant-initiated retry after an hour (each "
        "further hour pending adds one poll: an index read, a conditional write and its two index writes). Not "
        "counted: CloudWatch Logs and metrics, X-Ray traces, DynamoDB storage (about 3 KB per decline), data "
        "transfer, the capture-context API.",
    ]
    return "\n".join(lines)
