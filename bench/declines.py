"""Decline evaluation (issue 5, item 3; issues 9 and 15): the AWS requests of a customer-initiated
decline (the target), its latency over the FlexFactor floor (information), MIT throughput.

- **AWS requests per customer-initiated decline** (the target; issues 9 and 15): every
  request the function sends during each measured decline, counted by operation from
  botocore's own event hooks on every client created while the benchmark runs
  (``before-call``: one per API call; ``before-send``: one per HTTP attempt, so a retry
  would show), plus the Secrets Manager reads the package signs itself (no botocore:
  counted where they are sent). A count, so moto's CPU cannot blur it. Target: at most
  ``REQUESTS_LIMIT`` = 3 in every decline (the worst one counts), the number the
  single-writer design needs on this path:
  1. the card's counters (``Query`` of ``CARD#<card>``, ``DAY#`` items over the widest
     budget window): eligibility and the reservation's cap must be decided before anything
     is written (an ineligible decline is recorded NOT_SUBMITTED with its rule, no provider
     call), and a transaction's conditions cannot add a window's days up;
  2. the claim (``TransactWriteItems``: the order's state at version 1 with its lease, its
     ``IDEM#<key>`` item, the history item that becomes the claim's event on the stream,
     the card's day counter reserved under ``n < cap``), which must be durable before
     FlexFactor is called, so that a retry or a concurrent request with the same key or
     card never submits twice nor past the card's budget;
  3. the answer (``TransactWriteItems``: the state with FlexFactor's answer, which a
     repeat is answered with, and its history item), the single writer's one conditional
     commit of the change; it cannot ride with the claim since it follows the provider call.
  The secret is read once per execution environment (cached ``SECRET_MAX_AGE_SECONDS``,
  300 s: a warm decline reads none) and events come from the table's stream (none on this
  path), so a fourth request is one too many. The note says what was measured: the
  operations of each decline in order and the items each transaction wrote, by key kind.
- **CIT latency** (information): ``POST /declines`` through EvaluateDeclineFunction (its
  API Gateway event ``events/evaluate_decline/post_cit.json``, the template's environment,
  moto server and the FlexFactor emulator in their own processes), a fresh orderId,
  idempotencyKey and card fingerprint each call (so the card's reattempt budget never
  stops one), versus the floor: the bare FlexFactor round trip for the same evaluate
  (httpx, the token fetched once, ``POST /v1/evaluate`` with a body made as the handler
  makes its own, ``declines.parse(...).to_provider()``, fresh ids too). Calls alternate;
  the orders table is renewed before each (``OrdersTable``, with the template's keys,
  index, stream and TTL), outside the timings. Reported: p99(handler) - p99(floor), with
  the time spent in the decline's AWS requests against moto server (most of it: moto's
  CPU per request, which DynamoDB does not have), so no target (issue 9's was 25 ms).
- **MIT throughput**: N merchant-initiated declines put on the DeclinesQueue (batch sends),
  drained by one consumer: the local SQS poller (``devstack.pollers.SqsPoller.poll_once``,
  the template's batch size, partial batch failure) invoking the handler. Baseline: the
  same consumer loop (same queue, same batches, receive and delete) whose record handler
  does only what every MIT decline cannot avoid, one bare FlexFactor evaluate. A consumer
  that only received and deleted would make a ratio of queue plumbing against everything,
  and a bare evaluate loop without the queue would leave the queue's cost on one side only;
  this baseline is the ceiling any consumer of this queue and provider can reach, so the
  ratio says how much of it our bookkeeping (idempotency key, order, history, counters)
  leaves.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.core import ROOT, BenchEnv, Row, Stats
from bench.harness import Harness, event, hex_id, idempotency_key
from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET
from devstack.pollers import SqsPoller

FUNCTION = "EvaluateDeclineFunction"
BENCHMARK = "declines"
CIT_EVENT = "evaluate_decline/post_cit.json"
FIXTURES = ROOT / "tests" / "fixtures"
SEED_CIT = json.loads((FIXTURES / "seed_cit_corrected.json").read_text())["request"]
SEED_MIT = json.loads((FIXTURES / "seed_mit_corrected.json").read_text())["request"]
# AWS requests per customer-initiated decline: the card's counters (Query), the claim and the
# answer (TransactWriteItems each); see the module docstring
REQUESTS_LIMIT = 3


def cit_body() -> dict[str, Any]:
    """A fresh customer-initiated decline FlexFactor approves (as tests/integration/test_declines.py)."""
    body = copy.deepcopy(SEED_CIT)
    body["orderId"] = f"bench-{hex_id(16)}"
    body["idempotencyKey"] = idempotency_key()
    body["transaction"].update(timestampUtc=datetime.now(UTC).isoformat(), amount=1999, responseCode="51")
    body["paymentMethod"].update(
        cardLast4Digits="4444", cardBinNumber="555555", cardBrand="MASTERCARD", cardFingerprint=hex_id()
    )
    return body


def mit_body() -> dict[str, Any]:
    body = copy.deepcopy(SEED_MIT)
    body["orderId"] = f"bench-mit-{hex_id(16)}"
    body["idempotencyKey"] = idempotency_key()
    body["transaction"]["timestampUtc"] = datetime.now(UTC).isoformat()
    body["expiryDateUtc"] = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    body["paymentMethod"].update(cardFingerprint=hex_id(), cardLast4Digits="0007")
    return body


def provider_body(raw: dict[str, Any]) -> dict[str, Any]:
    """The body the handler sends to /v1/evaluate for ``raw`` (mid and siteId from the secret)."""
    from decline_rescue.services import declines

    return declines.parse(raw).to_provider()


class Floor:
    """The bare FlexFactor evaluate: a kept httpx client, one token for the run."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        answer = self.client.post("/v1/oauth2/token", json={"AppKey": DEFAULT_APP_KEY, "AppSecret": DEFAULT_APP_SECRET})
        answer.raise_for_status()
        self.headers = {
            "Authorization": f"Bearer {answer.json()['accessToken']}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            "/v1/evaluate", content=json.dumps(body, separators=(",", ":")).encode(), headers=self.headers
        )
        if response.status_code != 200:
            raise RuntimeError(f"FlexFactor answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def close(self) -> None:
        self.client.close()


class OrdersTable:
    """Renews the orders table between measurements. moto's TransactWriteItems deep-copies
    the whole table for each item of a transaction (its rollback; the table's stream and
    its records included), and a table keeps an entry for every partition key ever
    written even once its items are deleted: left alone, each decline's two transactions
    cost more than the last (7 ms at the start, 19 ms after 500 declines), a cost DynamoDB
    does not have. So the table is deleted and made again, empty, with the template's
    keys, index, stream (StreamSpecification, as the table has one) and TTL, outside the
    timings. A renewed table has a new stream (``stream_arn``)."""

    def __init__(self, harness: Harness) -> None:
        assert harness.stack is not None
        self.name = harness.stack.physical_ids["OrdersTable"]
        self.ddb = harness.client("dynamodb")
        table = self.ddb.describe_table(TableName=self.name)["Table"]
        self.spec: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": table["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        indexes = [
            {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in table.get("GlobalSecondaryIndexes") or []
        ]
        if indexes:
            self.spec["GlobalSecondaryIndexes"] = indexes
        stream = table.get("StreamSpecification") or {}
        if stream.get("StreamEnabled"):
            self.spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        ttl = self.ddb.describe_time_to_live(TableName=self.name)["TimeToLiveDescription"]
        self.ttl = (
            {"AttributeName": ttl["AttributeName"], "Enabled": True}
            if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            else None
        )
        self.stream_arn: str | None = table.get("LatestStreamArn")

    def state(self, order_id: str) -> dict[str, Any] | None:
        key = {"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}}
        return self.ddb.get_item(TableName=self.name, Key=key, ConsistentRead=True).get("Item")

    def renew(self) -> float:
        """Delete the table and make it again, empty; the seconds it took (left out of a measurement)."""
        began = time.perf_counter()
        self.ddb.delete_table(TableName=self.name)
        made = self.ddb.create_table(**self.spec)["TableDescription"]
        if self.ttl:
            self.ddb.update_time_to_live(TableName=self.name, TimeToLiveSpecification=self.ttl)
        self.stream_arn = made.get("LatestStreamArn")
        if "StreamSpecification" in self.spec and not self.stream_arn:
            raise RuntimeError(f"the renewed table {self.name} has no stream")
        return time.perf_counter() - began


class AwsRequests:
    """Counts and times the AWS requests the function makes, from botocore's own event
    hooks on every client created while ``installed`` (the function's clients are made
    lazily, on its first invocation): ``before-call``/``after-call`` for each API call
    (the time includes botocore's own work), ``before-send`` for each HTTP attempt (a
    retry is a second request), and ``before-parameter-build`` for what each
    TransactWriteItems wrote. Secrets Manager reads the package signs itself (no
    botocore) are counted where they are sent. Only requests made inside ``counting()``
    are counted, one tally per ``counting()`` (one decline)."""

    def __init__(self) -> None:
        self.tallies: list[collections.Counter[str]] = []
        self.attempts = 0
        self.seconds: collections.Counter[str] = collections.Counter()
        self.transactions: collections.Counter[str] = collections.Counter()
        self.sequences: collections.Counter[str] = collections.Counter()  # the operations of a decline, in order
        self._current: collections.Counter[str] | None = None
        self._sequence: list[str] = []

    @contextlib.contextmanager
    def installed(self):
        import botocore.session

        from decline_rescue.infra import secretsmanager

        create_client = botocore.session.Session.create_client
        signed_read = secretsmanager.get_secret_value
        meter = self

        def watched(session, *args: Any, **kwargs: Any):
            made = create_client(session, *args, **kwargs)
            events = made.meta.events
            events.register("before-parameter-build", meter._params, unique_id=f"bench-req-params-{id(meter)}")
            events.register("before-call", meter._before, unique_id=f"bench-req-before-{id(meter)}")
            events.register("after-call", meter._after, unique_id=f"bench-req-after-{id(meter)}")
            events.register("before-send", meter._send, unique_id=f"bench-req-send-{id(meter)}")
            return made

        def counted_read(*args: Any, **kwargs: Any) -> Any:
            if meter._current is not None:
                meter._current["GetSecretValue (signed, no botocore)"] += 1
                meter._sequence.append("GetSecretValue")
                meter.attempts += 1
            return signed_read(*args, **kwargs)

        botocore.session.Session.create_client = watched
        secretsmanager.get_secret_value = counted_read
        try:
            yield self
        finally:
            botocore.session.Session.create_client = create_client
            secretsmanager.get_secret_value = signed_read

    @contextlib.contextmanager
    def counting(self):
        self._current, self._sequence = collections.Counter(), []
        try:
            yield
        finally:
            self.tallies.append(self._current)
            self.sequences[" -> ".join(self._sequence)] += 1
            self._current = None

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self._current is None or model.name != "TransactWriteItems":
            return
        kinds = []
        for entry in params.get("TransactItems") or []:
            (_, body), *_rest = entry.items()
            key = body.get("Item") or body.get("Key") or {}
            pk = str(key.get("pk", {}).get("S", "?")).split("#", 1)[0]
            sk = str(key.get("sk", {}).get("S", "?")).split("#", 1)[0]
            kinds.append(f"{pk} {sk}")
        self.transactions[" + ".join(kinds)] += 1

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._current is None:
            return
        self._current[model.name] += 1
        self._sequence.append(model.name)
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if "bench_started" in context:
            self.seconds[model.name] += time.perf_counter() - context.pop("bench_started")

    def _send(self, **_: Any) -> None:
        if self._current is not None:
            self.attempts += 1

    @property
    def total(self) -> collections.Counter[str]:
        out: collections.Counter[str] = collections.Counter()
        for tally in self.tallies:
            out.update(tally)
        return out

    def per_decline(self) -> list[int]:
        return [sum(t.values()) for t in self.tallies]

    def describe(self) -> str:
        n = len(self.tallies) or 1
        total = self.total
        return ", ".join(
            f"{op} {c / n:g}" + (f" ({self.seconds[op] / c * 1000:.1f} ms)" if self.seconds[op] else "")
            for op, c in sorted(total.items())
        )


def _invoke(harness: Harness, module, ev: dict[str, Any]) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics (Lambda's stdout)
        return module.lambda_handler(ev, harness.context(FUNCTION, 30))


def cit(harness: Harness, env: BenchEnv) -> list[Row]:
    requests = AwsRequests()
    with requests.installed():  # before the handler is loaded: every client it makes is watched
        return _cit(harness, env, requests)


def _cit(harness: Harness, env: BenchEnv, requests: AwsRequests) -> list[Row]:
    module = harness.load(FUNCTION)
    floor = Floor(harness.flexfactor_url)
    template = event(CIT_EVENT)
    n, warmup = env.n(200, 40), 10
    handler_samples: list[float] = []
    floor_samples: list[float] = []
    statuses: dict[str, int] = {}
    table = OrdersTable(harness)
    get_item: list[float] = []  # what one DynamoDB request costs against moto server, for scale
    try:
        for i in range(warmup + n):
            table.renew()
            began = time.perf_counter()
            table.state("no-such-order")
            get_item.append(time.perf_counter() - began)
            # the floor: the same payload shape, its own fresh ids
            body = provider_body(cit_body())
            began = time.perf_counter()
            floor.evaluate(body)
            floor_elapsed = time.perf_counter() - began

            ev = copy.deepcopy(template)
            ev["body"] = json.dumps(cit_body())
            counting = requests.counting() if i >= warmup else contextlib.nullcontext()
            with counting:
                began = time.perf_counter()
                result = _invoke(harness, module, ev)
                elapsed = time.perf_counter() - began
            answer = json.loads(result["body"])
            if result["statusCode"] != 200 or not answer.get("submitted"):
                raise RuntimeError(f"POST /declines answered {result['statusCode']}: {answer}")
            statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
            if i >= warmup:
                handler_samples.append(elapsed)
                floor_samples.append(floor_elapsed)
    finally:
        floor.close()
    handler, bare, one = Stats(handler_samples), Stats(floor_samples), Stats(get_item[warmup:])
    overhead = handler.p99 - bare.p99
    counts = requests.per_decline()
    worst, mean = max(counts), sum(counts) / len(counts)
    in_requests = sum(requests.seconds.values()) / n
    mean_overhead = (sum(handler_samples) - sum(floor_samples)) / n
    made = ", ".join(f"{k} x{v / n:g}" for k, v in sorted(requests.transactions.items()))
    by_count = ", ".join(f"{c} requests: {k}" for c, k in sorted(collections.Counter(counts).items()))
    sequences = "; ".join(f"{k} (x{v})" for k, v in requests.sequences.most_common())
    return [
        Row(
            BENCHMARK,
            "CIT POST /declines, AWS requests per decline (worst)",
            f"{worst} requests",
            "-",
            None,
            f"<= {REQUESTS_LIMIT} (card counters, claim, answer)",
            0 < worst <= REQUESTS_LIMIT,
            f"{n} customer-initiated declines, each counted from botocore's hooks on every client the function "
            f"made (and its own signed Secrets Manager reads): {by_count} declines; mean {mean:g}, by operation "
            f"{requests.describe()}; HTTP attempts {requests.attempts / n:g} per decline (retries included); "
            f"in order: {sequences}; transactions (items by key kind, per decline): {made}; the target is what "
            "the single writer needs: the card's counters read before deciding, the claim (order, key, history, "
            "reservation) durable before FlexFactor is called, the answer recorded after it; the secret is cached "
            "(300 s) and events come from the table's stream",
        ),
        Row(
            BENCHMARK,
            "CIT POST /declines, p99 overhead over the FlexFactor round trip (information)",
            f"{overhead * 1000:.1f} ms",
            f"{bare.p99 * 1000:.1f} ms",
            None,
            "reported (no target)",
            True,
            f"handler {handler.describe()}; floor (bare /v1/evaluate, token reused) {bare.describe()}; "
            f"p50 overhead {(handler.median - bare.median) * 1000:.1f} ms; mean overhead {mean_overhead * 1000:.1f} "
            f"ms, of which {in_requests * 1000:.1f} ms in the decline's {mean:g} AWS requests against moto server "
            f"(by operation, count and mean time: {requests.describe()}), {(mean_overhead - in_requests) * 1000:.1f} "
            f"ms outside them; answers {statuses}; one DynamoDB GetItem against moto server "
            f"{one.describe()}; no target: the overhead is mostly moto's CPU per request (the request count above "
            "is the target)",
        ),
    ]


def _queue_url(harness: Harness, mapping) -> str:
    name = mapping.queue_arn.rsplit(":", 1)[1]
    return harness.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _enqueue(sqs, queue_url: str, bodies: list[dict[str, Any]]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(b, separators=(",", ":")),
                "MessageAttributes": {"orderId": {"DataType": "String", "StringValue": b["orderId"]}},
            }
            for i, b in enumerate(bodies[start : start + 10])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"enqueue failed: {failed[:2]}")


def _drain(poller: SqsPoller, expected: int) -> tuple[int, float]:
    done, idle = 0, 0
    began = time.perf_counter()
    while done < expected and idle < 20:
        n = poller.poll_once()
        done += n
        idle = 0 if n else idle + 1
    return done, time.perf_counter() - began


def mit(harness: Harness, env: BenchEnv) -> Row:
    module = harness.load(FUNCTION)
    assert harness.stack is not None
    mapping = next(m for m in harness.stack.event_sources if m.function == FUNCTION)
    sqs = harness.client("sqs")
    queue_url = _queue_url(harness, mapping)
    n = env.n(120, 30)
    failures: list[Any] = []
    table = OrdersTable(harness)
    excluded = [0.0]  # seconds spent checking and renewing the orders table inside the drain

    statuses: dict[str, int] = {}

    def handler(function: str, ev: dict[str, Any]) -> tuple[bool, Any]:
        result = _invoke(harness, module, ev)
        failures.extend(result.get("batchItemFailures") or [])
        began = time.perf_counter()
        for record in ev["Records"]:  # submitted, not stopped by a rule nor left behind
            state = table.state(json.loads(record["body"])["orderId"])
            status = state["status"]["S"] if state else "MISSING"
            statuses[status] = statuses.get(status, 0) + 1
        excluded[0] += time.perf_counter() - began + table.renew()
        return True, result

    floor = Floor(harness.flexfactor_url)

    def bare(function: str, ev: dict[str, Any]) -> tuple[bool, Any]:
        for record in ev["Records"]:
            floor.evaluate(provider_body(json.loads(record["body"])))
        excluded[0] += table.renew()
        return True, {"batchItemFailures": []}

    runs: dict[str, list[float]] = {"handler": [], "floor": []}
    try:
        # two rounds each, alternating, half the declines a round: drift hits both alike
        for _ in range(2):
            for name, invoke in (("floor", bare), ("handler", handler)):
                bodies = [mit_body() for _ in range(n // 2)]
                _enqueue(sqs, queue_url, bodies)
                poller = SqsPoller(mapping, sqs, invoke, retry_delay=0, wait_seconds=0)
                excluded[0] = 0.0
                done, seconds = _drain(poller, len(bodies))
                seconds -= excluded[0]
                if done != len(bodies):
                    raise RuntimeError(f"{name}: drained {done} of {len(bodies)} messages")
                runs[name].append(len(bodies) / seconds)
    finally:
        floor.close()
    if failures:
        raise RuntimeError(f"the handler failed {len(failures)} record(s): {failures[:3]}")
    if set(statuses) & {"MISSING", "QUEUED", "RECEIVED", "NOT_SUBMITTED"}:
        raise RuntimeError(f"MIT declines were not all submitted: {statuses}")
    ours, ceiling = Stats(runs["handler"]).median, Stats(runs["floor"]).median
    return Row(
        BENCHMARK,
        f"MIT declines per second per consumer (batches of {mapping.batch_size})",
        f"{ours:.0f} /s",
        f"{ceiling:.0f} /s",
        ours / ceiling,
        "reported (no target)",
        True,
        f"{n} MIT declines through the DeclinesQueue per side, in 2 alternating rounds ({statuses}; rates "
        f"{', '.join(f'{r:.0f}' for r in runs['handler'])} /s vs {', '.join(f'{r:.0f}' for r in runs['floor'])} /s); "
        f"per decline {1000 / ours:.1f} ms vs {1000 / ceiling:.1f} ms; baseline: the same SqsPoller loop "
        "(receive, delete) with one bare /v1/evaluate per record, the ceiling of any consumer of this queue "
        "and provider",
    )


def run(env: BenchEnv) -> list[Row]:
    with Harness() as harness:
        return [*cit(harness, env), mit(harness, env)]
