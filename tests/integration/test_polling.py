"""The poller (dispatch_polls, then poll_orders per work item) and the merchant actions
through their real triggers (the EventBridge Scheduler event, SQS events of the poll-work
queue, API Gateway events) against moto server and the FlexFactor emulator over HTTP.
Each test gets its own orders table, order-updates queue and poll-work queue (same schema
as the template's), so what the poller reads is only what the test wrote."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devstack.pollers import sqs_event
from tests.conftest import api_event, aws_client, invoke, queue_faults

EVENTS = Path(__file__).resolve().parents[2] / "events"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED_CIT = json.loads((FIXTURES / "seed_cit_corrected.json").read_text())["request"]
SEED_MIT = json.loads((FIXTURES / "seed_mit_corrected.json").read_text())["request"]
SCHEDULED = json.loads((EVENTS / "dispatch_polls" / "scheduled.json").read_text())
WORK_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:poll-work"


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cit(last4: str = "4444", **top) -> dict:
    body = copy.deepcopy(SEED_CIT)
    body.update({"orderId": f"cit-{uuid.uuid4().hex[:12]}", "idempotencyKey": str(uuid.uuid4()), **top})
    body["transaction"].update(timestampUtc=now().isoformat(), amount=1999, responseCode="51")
    body["paymentMethod"].update(cardLast4Digits=last4, cardFingerprint=uuid.uuid4().hex)
    return body


def mit(last4: str = "0007", expires: timedelta = timedelta(days=10)) -> dict:
    body = copy.deepcopy(SEED_MIT)
    body.update(orderId=f"mit-{uuid.uuid4().hex[:12]}", idempotencyKey=str(uuid.uuid4()))
    body["transaction"]["timestampUtc"] = now().isoformat()
    body["expiryDateUtc"] = (now() + expires).isoformat()
    body["paymentMethod"].update(cardLast4Digits=last4, cardFingerprint=uuid.uuid4().hex)
    return body


@pytest.fixture
def isolated(moto_url, stack):
    """A fresh orders table and order-updates queue for this test (the template's schema)."""
    ddb = aws_client(moto_url, "dynamodb")
    sqs = aws_client(moto_url, "sqs")
    template_table = ddb.describe_table(TableName=stack.physical_ids["OrdersTable"])["Table"]
    name = f"orders-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=template_table["KeySchema"],
        AttributeDefinitions=template_table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in template_table["GlobalSecondaryIndexes"]
        ],
    )
    queue = sqs.create_queue(QueueName=f"updates-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    work = sqs.create_queue(QueueName=f"poll-work-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield {
        "ORDERS_TABLE": name,
        "ORDER_UPDATES_QUEUE_URL": queue,
        "POLL_WORK_QUEUE_URL": work,
        "POLL_FIRST_DELAY_SECONDS": "60",
    }
    ddb.delete_table(TableName=name)
    sqs.delete_queue(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=work)


class World:
    """The functions of the stack, all on the test's table and queue."""

    def __init__(self, function_env, env: dict[str, str], moto_url: str, flexfactor_url: str) -> None:
        self.function_env = function_env
        self.env = env
        self.flex = flexfactor_url
        self.ddb = aws_client(moto_url, "dynamodb")
        self.sqs = aws_client(moto_url, "sqs")

    def use(self, logical_id: str, **extra: str):
        module, _ = self.function_env(logical_id, **{**self.env, **extra})
        return module

    def submit_cit(self, body: dict) -> dict:
        module = self.use("EvaluateDeclineFunction")
        result = invoke(module, api_event("evaluate_decline/post_cit.json", body))
        assert result["statusCode"] == 200, result["body"]
        return json.loads(result["body"])

    def submit_mit(self, body: dict) -> None:
        module = self.use("EvaluateDeclineFunction")
        event = json.loads((EVENTS / "evaluate_decline" / "sqs_mit.json").read_text())
        event["Records"][0]["body"] = json.dumps(body)
        event["Records"][0]["messageId"] = str(uuid.uuid4())
        assert invoke(module, event) == {"batchItemFailures": []}

    def dispatch(self, **extra: str) -> dict:
        return invoke(self.use("DispatchPollsFunction", **extra), copy.deepcopy(SCHEDULED))

    def work(self, **extra: str) -> list[dict]:
        """Each poll work item visible on the queue, one worker invocation each (as the
        mapping's BatchSize 1 hands them), until none is left; the workers' summaries."""
        module = self.use("PollOrdersFunction", **extra)
        summaries: list[dict] = []
        url = self.env["POLL_WORK_QUEUE_URL"]
        from decline_rescue.runtime.observability import logger

        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return summaries
            for message in messages:
                with capture_summaries(logger) as seen:
                    result = invoke(module, sqs_event([message], WORK_QUEUE_ARN))
                assert result == {"batchItemFailures": []}, result
                summaries.extend(seen)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def poll(self, **extra: str) -> dict:
        """One tick: the dispatcher, then every work item (and what they hand on) worked;
        the workers' counts added up."""
        dispatched = self.dispatch(**extra)
        total: dict = {"dispatched": dispatched.get("dispatched", 0), "items": 0}
        for summary in self.work(**extra):
            total["items"] += 1
            for key, value in summary.items():
                total[key] = total.get(key, 0) + value
        return total

    def state(self, order_id: str) -> dict:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.ddb.get_item(
            TableName=self.env["ORDERS_TABLE"], Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}}
        )["Item"]
        return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}

    def make_due(self, order_id: str, at: datetime | None = None, **fields) -> None:
        names, values, sets = {}, {":p": {"S": iso(at or now() - timedelta(seconds=1))}}, ["nextPollAt = :p"]
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            values[f":f{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
            sets.append(f"#f{i} = :f{i}")
        self.ddb.update_item(
            TableName=self.env["ORDERS_TABLE"],
            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}},
            UpdateExpression="SET " + ", ".join(sets),
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues=values,
        )

    def updates(self) -> list[dict]:
        """Everything on the test's order-updates queue (received and deleted)."""
        out = []
        url = self.env["ORDER_UPDATES_QUEUE_URL"]
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            out.extend(messages)
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def apply(self, messages: list[dict]) -> dict:
        module = self.use("ApplyOrderUpdateFunction")
        return invoke(module, sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:updates"))

    def order_api(self, order_id: str, action: str | None = None, body=None) -> tuple[int, dict]:
        module = self.use("OrdersApiFunction")
        if action is None:
            event = api_event("orders_api/get_order.json")
            event["path"] = f"/orders/{order_id}"
        else:
            event = api_event(f"orders_api/post_{action}.json")
            event["path"] = f"/orders/{order_id}/{action}"
            event["body"] = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        event["pathParameters"] = {"orderId": order_id}
        result = invoke(module, event)
        return result["statusCode"], json.loads(result["body"])

    def advance(self, seconds: float) -> None:
        httpx.post(self.flex + "/__emulator/clock", json={"advance": seconds}).raise_for_status()

    def provider_order(self, session_key: str) -> dict:
        orders = httpx.get(self.flex + "/__emulator/orders").json()["orders"]
        return next(o for o in orders if o["id"] == session_key)


class capture_summaries:
    """The "poll work item" log lines' summaries while inside (the worker's answer to SQS
    is the batch response; what it did is in its log line, as on AWS)."""

    def __init__(self, logger) -> None:
        import logging

        self.logger = logger
        self.seen: list[dict] = []
        outer = self

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage() in ("poll work item", "malformed poll work item dropped"):
                    outer.seen.append(getattr(record, "counts", {"rejected": 1}))

        self.handler = _Keep()

    def __enter__(self) -> list[dict]:
        self.logger._logger.addHandler(self.handler)
        return self.seen

    def __exit__(self, *exc) -> None:
        self.logger._logger.removeHandler(self.handler)


@pytest.fixture
def world(function_env, isolated, moto_url, flexfactor_url) -> World:
    return World(function_env, isolated, moto_url, flexfactor_url)


# -- what the poller reads ------------------------------------------------------------


def test_a_run_reads_only_the_orders_that_are_due(world):
    pending = [world.submit_cit(cit(transactionType="AUTHORIZATION"))["orderId"] for _ in range(8)]
    terminal = [world.submit_cit(cit())["orderId"] for _ in range(5)]  # APPROVED at once
    due = pending[:3]
    for order_id in due:
        world.make_due(order_id)

    summary = world.poll()

    assert summary["read"] == 3  # not the 5 not-yet-due, not the 5 ended ones
    assert summary.get("unchanged") == 3
    for order_id in due:
        state = world.state(order_id)
        assert state["nextPollAt"] > iso(now())  # pushed back
        assert int(state["polls"]) == 1
    for order_id in pending[3:]:
        assert int(world.state(order_id).get("polls", 0)) == 0
    for order_id in terminal:
        assert "nextPollAt" not in world.state(order_id) and "pendingShard" not in world.state(order_id)
    assert world.updates() == []  # nothing changed at FlexFactor
    assert world.poll()["read"] == 0  # nothing due any more


def test_backoff_grows_and_stops_at_the_final_check(world):
    order_id = world.submit_cit(cit(transactionType="AUTHORIZATION"))["orderId"]
    gaps = []
    for _ in range(4):
        world.make_due(order_id)
        before = now()
        world.poll(POLL_FIRST_DELAY_SECONDS="10")
        after = datetime.fromisoformat(world.state(order_id)["nextPollAt"].replace("Z", "+00:00"))
        gaps.append((after - before).total_seconds())
    # 10 s, 20 s, 40 s, 80 s, each +-10 %
    for gap, expected in zip(gaps, (10, 20, 40, 80), strict=True):
        assert expected * 0.85 <= gap <= expected * 1.15, gaps


def test_a_change_found_by_polling_is_applied_by_the_writer(world):
    body = mit("0007")
    world.submit_mit(body)
    state = world.state(body["orderId"])
    assert state["status"] == "SUBMITTED" and state["pendingShard"].startswith("P")
    world.advance(10)  # the emulator completes it (its webhook goes nowhere in tests)
    world.make_due(body["orderId"])

    summary = world.poll()
    messages = world.updates()

    assert summary["changed"] == 1 and len(messages) == 1
    update = json.loads(messages[0]["Body"])
    assert update["status"] == "APPROVED" and update["source"] == "poll"
    assert world.apply(messages) == {"batchItemFailures": []}
    state = world.state(body["orderId"])
    assert state["status"] == "APPROVED" and state["lastSource"] == "poll"
    assert "pendingShard" not in state and "nextPollAt" not in state and "eventPending" not in state
    # applying the same message again is a duplicate: recorded, not applied
    assert world.apply(messages) == {"batchItemFailures": []}
    assert world.state(body["orderId"])["version"] == state["version"]


def test_an_order_past_its_expiry_is_closed_expired_after_a_final_check(world, flexfactor_url):
    body = mit("0077")  # stays Processing at FlexFactor until its expiry
    world.submit_mit(body)
    key = world.state(body["orderId"])["orderSessionKey"]
    world.make_due(body["orderId"], expiryDateUtc=iso(now() - timedelta(hours=1)))
    before = httpx.get(flexfactor_url + "/__emulator/stats").json()["counts"].get("get_order", 0)

    summary = world.poll()
    messages = world.updates()

    assert httpx.get(flexfactor_url + "/__emulator/stats").json()["counts"]["get_order"] == before + 1
    assert summary["expired"] == 1
    update = json.loads(messages[0]["Body"])
    assert update["status"] == "EXPIRED" and update["reason"]["rule"] == "expired"
    world.apply(messages)
    assert world.state(body["orderId"])["status"] == "EXPIRED"
    assert world.provider_order(key)["final"] is False  # FlexFactor had not ended it: we did


def test_an_order_ended_at_flexfactor_is_not_expired_when_the_final_check_finds_it(world):
    body = mit("0069")  # FlexFactor cancels it after two steps
    world.submit_mit(body)
    world.advance(10)
    world.make_due(body["orderId"], expiryDateUtc=iso(now() - timedelta(hours=1)))
    world.poll()
    update = json.loads(world.updates()[0]["Body"])
    assert update["status"] == "CANCELLED"  # the truth, not EXPIRED


def test_a_provider_outage_backs_off_the_whole_fleet_and_resumes(world, flexfactor_url):
    import time

    from decline_rescue.infra.orders_store import shard_of

    # four due orders in each of the eight shards: whatever order the work items come in,
    # the fleet's count reaches ten on the third item, and five items are still to come
    world.use("PollOrdersFunction")
    ids = (f"cit-{uuid.uuid4().hex[:12]}" for _ in range(100_000))
    by_shard: dict[str, list[str]] = {f"P{i}": [] for i in range(8)}
    for order_id in ids:
        if len(by_shard[shard_of(order_id)]) < 4:
            by_shard[shard_of(order_id)].append(order_id)
        if all(len(v) == 4 for v in by_shard.values()):
            break
    chosen = [order_id for shard in by_shard.values() for order_id in shard]
    orders = [world.submit_cit(cit(transactionType="AUTHORIZATION", orderId=i))["orderId"] for i in chosen]
    for order_id in orders:
        world.make_due(order_id)
    queue_faults(flexfactor_url, "orders", *[{"status": 503}] * 200)
    knobs = {"POLL_CONCURRENCY": "1", "FLEXFACTOR_MAX_ATTEMPTS": "1", "POLL_BREAKER_SECONDS": "2"}

    summary = world.poll(**knobs)

    # no worker saw ten failures of its own (four orders a shard): the fleet's count did
    assert summary["failed"] == 12 and summary["breaker_opened"] == 1, summary
    assert summary["deferred"] == 5  # the shards after it waited
    breaker = world.ddb.get_item(
        TableName=world.env["ORDERS_TABLE"], Key={"pk": {"S": "POLLER#BREAKER"}, "sk": {"S": "BREAKER"}}
    )["Item"]
    assert int(breaker["opens"]["N"]) == 1 and breaker["openUntil"]["S"] > iso(now())
    # the whole fleet waits: a tick dispatches nothing, and no work item is visible
    assert world.dispatch(**knobs)["dispatched"] == 0
    assert world.work(**knobs) == []
    failed = [o for o in orders if int(world.state(o).get("polls", 0)) == 1]
    untouched = [o for o in orders if int(world.state(o).get("polls", 0)) == 0]
    assert len(failed) == summary["failed"] and len(untouched) == len(orders) - len(failed)
    assert all(world.state(o)["status"] == "CAPTUREREQUIRED" for o in orders)

    # FlexFactor back; once the breaker's time is up, the work handed back resumes by itself
    httpx.delete(flexfactor_url + "/__emulator/faults")
    time.sleep(3.2)
    resumed: dict = {}
    for summary_ in world.work(**knobs):
        for key, value in summary_.items():
            resumed[key] = resumed.get(key, 0) + value
    assert resumed.get("read") == len(untouched) and resumed.get("unchanged") == len(untouched), resumed
    assert all(int(world.state(o).get("polls", 0)) == 1 for o in untouched)
    # a success closed it: the next opening starts from the shortest wait again
    breaker = world.ddb.get_item(
        TableName=world.env["ORDERS_TABLE"], Key={"pk": {"S": "POLLER#BREAKER"}, "sk": {"S": "BREAKER"}}
    )["Item"]
    assert int(breaker["opens"]["N"]) == 0
    assert world.dispatch(**knobs)["dispatched"] == 8


def test_a_deep_shard_fans_out_page_by_page_and_no_order_is_polled_twice(world):
    orders = [world.submit_cit(cit(transactionType="AUTHORIZATION"))["orderId"] for _ in range(24)]
    for i, order_id in enumerate(orders):
        world.make_due(order_id, at=now() - timedelta(minutes=30 - i))
    knobs = {"POLL_PAGE_SIZE": "2"}
    # two ticks' work on the queue at once (a duplicate dispatch, an overlap): each order is
    # still polled once, the second reader of an order finds it taken
    world.dispatch(**knobs)
    summary = world.poll(**knobs)

    polls = [int(world.state(o).get("polls", 0)) for o in orders]
    assert polls == [1] * len(orders), polls
    assert summary["unchanged"] == len(orders)
    assert summary["items"] > 16 and summary["handed_on"] >= len(orders) // 2 - 8, summary
    # every order was read at most twice (once per dispatch), and most only once
    assert summary["read"] <= 2 * len(orders)
    assert summary.get("taken", 0) == summary["read"] - len(orders)


def test_what_a_worker_does_not_reach_is_handed_on_and_none_starves(world):
    from decline_rescue.infra.orders_store import shard_of

    world.use("PollOrdersFunction")
    ids = (f"cit-{uuid.uuid4().hex[:12]}" for _ in range(10_000))
    in_p0 = [i for i in ids if shard_of(i) == "P0"][:12]  # one deep shard
    orders = [world.submit_cit(cit(transactionType="AUTHORIZATION", orderId=i))["orderId"] for i in in_p0]
    for i, order_id in enumerate(orders):
        world.make_due(order_id, at=now() - timedelta(minutes=20 - i))  # oldest first
    # 0.05 s of work per item: its page of 12 cannot be done by one invocation
    summary = world.poll(POLL_CONCURRENCY="1", POLL_WORK_BUDGET_SECONDS="3.05")
    polls = [int(world.state(o).get("polls", 0)) for o in orders]
    assert summary["stopped_early"] >= 1 and summary["handed_on"] >= 1, summary
    assert polls == [1] * len(orders), polls  # every order once, none starved, none twice
    assert summary["unchanged"] == len(orders)


def test_a_malformed_or_looping_work_item_is_dropped_not_retried(world, captured_logs):
    module = world.use("PollOrdersFunction")
    bodies = (
        "not json",
        json.dumps({"v": 2}),
        json.dumps({"v": 1, "shard": "X1", "dueBy": iso(now())}),
        json.dumps({"v": 1, "shard": "P1", "dueBy": "yesterday"}),
        json.dumps({"v": 1, "shard": "P1", "dueBy": iso(now()), "start": {"pk": {"N": "1"}}}),
        json.dumps({"v": 1, "shard": "P1", "dueBy": iso(now()), "hops": 10_001}),  # handed on in a loop
    )
    for body in bodies:
        message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": body, "Attributes": {}}
        # not a failure: SQS would only deliver it again; the next tick covers its shard
        assert invoke(module, sqs_event([message], WORK_QUEUE_ARN)) == {"batchItemFailures": []}
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.startswith('{"level"')]
    dropped = [line for line in lines if "dropped" in line["message"]]
    assert len(dropped) == len(bodies)
    assert not any(line["message"] == "poll work item" for line in lines)  # no index read, no order taken
    assert world.work() == []  # nothing handed on


# -- claims whose request died --------------------------------------------------------


def _claim(world, order_id: str, created: datetime) -> None:
    """An intake claim written by the single writer (as evaluate_decline does) whose request then died."""
    from decline_rescue.services import writer

    world.use("PollOrdersFunction")
    writer.create(
        {"orderId": order_id, "idempotencyKey": str(uuid.uuid4()), "amount": 1999, "currency": "USD", "isMIT": False},
        status="RECEIVED",
        source="api",
    )
    world.make_due(order_id, createdAt=iso(created))


def test_a_dead_claim_is_matched_to_flexfactors_order_by_reference(world, flexfactor_url):
    from decline_rescue.runtime.wiring import flexfactor

    body = cit()
    world.use("PollOrdersFunction")
    answer = flexfactor().evaluate(body)  # FlexFactor got it; our request died before recording
    _claim(world, body["orderId"], now() - timedelta(minutes=3))

    world.poll()
    update = json.loads(world.updates()[0]["Body"])

    assert update["orderSessionKey"] == answer.order_session_key and update["status"] == "APPROVED"


def test_a_dead_claim_flexfactor_never_saw_is_closed_not_submitted(world):
    order_id = f"cit-{uuid.uuid4().hex[:12]}"
    _claim(world, order_id, now() - timedelta(hours=2))
    world.poll()
    update = json.loads(world.updates()[0]["Body"])
    assert update["status"] == "NOT_SUBMITTED" and update["reason"]["rule"] == "abandoned"


# -- merchant actions -----------------------------------------------------------------


def test_capture_completes_a_capture_required_order_once(world, flexfactor_url):
    answer = world.submit_cit(cit(transactionType="AUTHORIZATION"))
    queue_faults(flexfactor_url, "capture", {"status": 503})  # the first try fails, the retry succeeds

    status, body = world.order_api(answer["orderId"], "capture", {"amount": 1500})

    assert (status, body["status"]) == (200, "APPROVED"), body
    provider = world.provider_order(answer["orderSessionKey"])
    assert provider["statusName"] == "COMPLETED"  # upper case, as the sandbox writes it
    order = world.order_api(answer["orderId"])[1]
    assert [h["status"] for h in order["history"] if "kind" not in h] == ["RECEIVED", "CAPTUREREQUIRED", "APPROVED"]
    assert order["capturedAmount"] == 1500
    status, again = world.order_api(answer["orderId"], "capture", {"amount": 1500})
    assert status == 409 and "APPROVED" in again["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"amount": 999999}, "amount"), ({"amount": "15.00"}, "amount"), ({"amount": 0}, "amount"), ([], "body")],
)
def test_capture_refuses_a_bad_body_naming_the_field(world, body, field):
    answer = world.submit_cit(cit(transactionType="AUTHORIZATION"))
    status, error = world.order_api(answer["orderId"], "capture", body)
    assert status == 400 and error["error"]["details"][0]["field"] == field
    assert world.state(answer["orderId"])["status"] == "CAPTUREREQUIRED"


def test_capture_of_an_order_not_capture_required_is_409_and_unknown_is_404(world):
    approved = world.submit_cit(cit())
    status, error = world.order_api(approved["orderId"], "capture")
    assert status == 409 and error["error"]["code"] == "ORDER_STATE_CONFLICT"
    assert world.order_api("no-such-order", "capture")[0] == 404


def test_cancel_follows_flexfactors_rules(world):
    body = mit("0007")
    world.submit_mit(body)
    status, answer = world.order_api(body["orderId"], "cancel")
    assert (status, answer["status"]) == (200, "CANCELLED")
    assert world.provider_order(world.state(body["orderId"])["orderSessionKey"])["statusName"] == "CANCELLED"

    challenge = world.submit_cit(cit("0259"))  # a CIT in CHALLENGE cannot be cancelled
    status, error = world.order_api(challenge["orderId"], "cancel")
    assert status == 409 and "CHALLENGE" in error["error"]["message"]

    capture = world.submit_cit(cit(transactionType="AUTHORIZATION"))
    assert world.order_api(capture["orderId"], "cancel")[1]["status"] == "CANCELLED"


def test_an_action_flexfactor_refuses_is_409_and_the_order_is_polled(world):
    answer = world.submit_cit(cit(transactionType="AUTHORIZATION"))
    world.advance(4000)  # past the capture window: FlexFactor voided it, no webhook reached us
    status, error = world.order_api(answer["orderId"], "capture")
    assert status == 409 and error["error"]["code"] == "ORDER_STATE_CONFLICT"
    assert world.state(answer["orderId"])["nextPollAt"] <= iso(now())  # due now
    world.poll()
    assert json.loads(world.updates()[0]["Body"])["status"] == "CANCELLED"


# -- merchant-initiated declines whose queue send failed ----------------------------------


def test_an_mit_whose_queue_send_failed_is_sent_again_by_the_poller(world):
    from tests.integration.test_declines import mit

    # Given an MIT accepted through the API while the declines queue could not be reached
    queue = world.sqs.create_queue(QueueName=f"declines-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    body = mit()
    evaluate = world.use("EvaluateDeclineFunction", DECLINES_QUEUE_URL=queue + "-missing")
    result = invoke(evaluate, api_event("evaluate_decline/post_cit.json", body))
    assert result["statusCode"] == 503, result["body"]
    state = world.state(body["orderId"])
    assert state["status"] == "QUEUED" and state["pendingShard"] and state["queuedMessage"]

    # When the caller never retries, and the order comes due
    world.make_due(body["orderId"])
    summary = world.poll(DECLINES_QUEUE_URL=queue)

    # Then the poller put the decline on the declines queue again, as it was accepted
    assert summary["resent"] == 1
    (message,) = world.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    sent = json.loads(message["Body"])
    assert (sent["orderId"], sent["idempotencyKey"]) == (body["orderId"], body["idempotencyKey"])
    assert world.state(body["orderId"])["nextPollAt"] > iso(now())  # and not again at once

    # And the consumer submits it; the order leaves QUEUED and forgets the message
    world.submit_mit(sent)
    state = world.state(body["orderId"])
    assert state["status"] == "SUBMITTED" and "queuedMessage" not in state
    world.sqs.delete_queue(QueueUrl=queue)


def test_a_queued_decline_past_its_expiry_is_closed_not_sent_again(world):
    from tests.integration.test_declines import mit

    # Given an MIT accepted QUEUED whose message never got through, now past its expiry and grace
    queue = world.sqs.create_queue(QueueName=f"declines-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    body = mit()
    evaluate = world.use("EvaluateDeclineFunction", DECLINES_QUEUE_URL=queue + "-missing")
    assert invoke(evaluate, api_event("evaluate_decline/post_cit.json", body))["statusCode"] == 503
    world.make_due(body["orderId"], expiryDateUtc=iso(now() - timedelta(hours=2)))

    # When the poller comes to it
    summary = world.poll(DECLINES_QUEUE_URL=queue)

    # Then it is not sent again: the writer is told to end it NOT_SUBMITTED
    assert summary.get("resent", 0) == 0 and summary["expired"] == 1
    assert world.sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    (update,) = [json.loads(m["Body"]) for m in world.updates()]
    assert (update["orderId"], update["status"], update["reason"]["rule"]) == (
        body["orderId"],
        "NOT_SUBMITTED",
        "expired",
    )
    world.sqs.delete_queue(QueueUrl=queue)


def test_a_queued_decline_past_its_expiry_is_not_closed_while_the_consumer_holds_its_lease(world):
    from tests.integration.test_declines import mit

    # Given an MIT QUEUED past its expiry and grace, whose message the declines consumer is
    # working on right now (its lease taken: FlexFactor may be being asked)
    queue = world.sqs.create_queue(QueueName=f"declines-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    body = mit()
    evaluate = world.use("EvaluateDeclineFunction", DECLINES_QUEUE_URL=queue + "-missing")
    assert invoke(evaluate, api_event("evaluate_decline/post_cit.json", body))["statusCode"] == 503
    world.make_due(body["orderId"], expiryDateUtc=iso(now() - timedelta(hours=2)))
    lease = int((now() + timedelta(seconds=30)).timestamp() * 1000)
    world.make_due(body["orderId"], leaseUntil=lease)

    # When the poller comes to it, it leaves it to the lease's holder
    summary = world.poll(DECLINES_QUEUE_URL=queue)
    assert summary.get("expired", 0) == 0 and summary["claim_waiting"] == 1, summary
    assert world.updates() == []
    assert world.state(body["orderId"])["status"] == "QUEUED"

    # and once the lease has lapsed, it takes the lease itself and closes it
    world.make_due(body["orderId"], leaseUntil=int((now() - timedelta(seconds=1)).timestamp() * 1000))
    assert world.poll(DECLINES_QUEUE_URL=queue)["expired"] == 1
    (update,) = [json.loads(m["Body"]) for m in world.updates()]
    assert update["status"] == "NOT_SUBMITTED"
    assert int(world.state(body["orderId"])["leaseUntil"]) > int(now().timestamp() * 1000)
    world.sqs.delete_queue(QueueUrl=queue)


def test_a_dead_claim_flexfactor_has_but_does_not_list_is_cancelled_by_our_order_id(world):
    from decline_rescue.runtime.wiring import flexfactor

    # Given FlexFactor created the order (its answer lost) but the list window misses it
    body = cit(transactionType="AUTHORIZATION")
    world.use("PollOrdersFunction")
    answer = flexfactor().evaluate(body)
    assert answer.status == "CAPTUREREQUIRED"
    _claim(world, body["orderId"], now() - timedelta(hours=2))

    # When the poller gives the claim up
    world.poll()
    (update,) = [json.loads(m["Body"]) for m in world.updates()]

    # Then it cancelled FlexFactor's order by our orderId first: the customer is never charged
    assert (update["status"], update["reason"]["rule"]) == ("CANCELLED", "abandoned_cancelled")
    assert world.provider_order(answer.order_session_key)["statusName"].upper() == "CANCELLED"


def test_a_dead_claim_flexfactor_will_not_cancel_stays_open_for_the_next_run(world):
    from decline_rescue.runtime.wiring import flexfactor

    body = cit()  # FlexFactor approves it at once: a customer-initiated order is not cancellable then
    world.use("PollOrdersFunction")
    assert flexfactor().evaluate(body).status == "APPROVED"
    _claim(world, body["orderId"], now() - timedelta(hours=2))

    summary = world.poll()

    assert world.updates() == [] and summary.get("claim_waiting") == 1, summary
    assert world.state(body["orderId"])["status"] == "RECEIVED"


@pytest.mark.parametrize("flexfactor_has_it", [False, True], ids=["never-reached-flexfactor", "answer-lost"])
def test_the_merchant_cancels_a_claim_flexfactor_never_answered(world, flexfactor_has_it):
    from decline_rescue.runtime.wiring import flexfactor

    body = cit(transactionType="AUTHORIZATION")
    world.use("PollOrdersFunction")
    if flexfactor_has_it:
        session_key = flexfactor().evaluate(body).order_session_key
    _claim(world, body["orderId"], now() - timedelta(hours=2))  # long past ABANDON_AFTER_SECONDS

    status, answer = world.order_api(body["orderId"], "cancel")

    assert status == 200, answer
    assert answer["status"] == ("CANCELLED" if flexfactor_has_it else "NOT_SUBMITTED")
    assert world.state(body["orderId"])["status"] == answer["status"]
    if flexfactor_has_it:
        assert world.provider_order(session_key)["statusName"].upper() == "CANCELLED"


def test_a_claim_still_being_submitted_cannot_be_cancelled(world):
    body = cit()
    _claim(world, body["orderId"], now())
    world.make_due(body["orderId"], leaseUntil=int((now() + timedelta(seconds=30)).timestamp() * 1000))

    status, answer = world.order_api(body["orderId"], "cancel")

    assert (status, answer["error"]["code"]) == (409, "ORDER_STATE_CONFLICT")
    assert world.state(body["orderId"])["status"] == "RECEIVED"


def test_a_recent_claim_flexfactor_does_not_have_yet_is_not_closed_by_a_cancel(world):
    # Given a claim whose request timed out 30 s ago: its decline may still be on its way
    body = cit(transactionType="AUTHORIZATION")
    _claim(world, body["orderId"], now() - timedelta(seconds=30))

    # When the merchant cancels it and FlexFactor has no order under its orderId (yet)
    status, answer = world.order_api(body["orderId"], "cancel")

    # Then it is not closed (FlexFactor could still create and charge it): 409, try later
    assert (status, answer["error"]["code"]) == (409, "ORDER_STATE_CONFLICT"), answer
    assert "may still be on its way" in answer["error"]["message"]
    state = world.state(body["orderId"])
    assert state["status"] == "RECEIVED" and "leaseUntil" not in state  # the lease was given back
