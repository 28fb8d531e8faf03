"""poll_orders and the merchant actions through their real triggers (the EventBridge
Scheduler event, API Gateway events, SQS events) against moto server and the FlexFactor
emulator over HTTP. Each test gets its own orders table and order-updates queue (same
schema as the template's), so what the poller reads is only what the test wrote."""

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
SCHEDULED = json.loads((EVENTS / "poll_orders" / "scheduled.json").read_text())


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cit(last4: str = "4444", **top) -> dict:
    body = copy.deepcopy(SEED_CIT)
    body.update(orderId=f"cit-{uuid.uuid4().hex[:12]}", idempotencyKey=str(uuid.uuid4()), **top)
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
    yield {"ORDERS_TABLE": name, "ORDER_UPDATES_QUEUE_URL": queue, "POLL_FIRST_DELAY_SECONDS": "60"}
    ddb.delete_table(TableName=name)
    sqs.delete_queue(QueueUrl=queue)


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

    def poll(self, **extra: str) -> dict:
        return invoke(self.use("PollOrdersFunction", **extra), copy.deepcopy(SCHEDULED))

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


def test_provider_outage_stops_the_run_early_and_nothing_is_lost(world, flexfactor_url):
    orders = [world.submit_cit(cit(transactionType="AUTHORIZATION"))["orderId"] for _ in range(14)]
    for order_id in orders:
        world.make_due(order_id)
    queue_faults(flexfactor_url, "orders", *[{"status": 503}] * 200)

    summary = world.poll(POLL_CONCURRENCY="1", FLEXFACTOR_MAX_ATTEMPTS="1")

    httpx.delete(flexfactor_url + "/__emulator/faults")
    assert summary["failed"] >= 10 and summary.get("stopped_early") == 1
    failed = [o for o in orders if int(world.state(o).get("polls", 0)) == 1]
    untouched = [o for o in orders if int(world.state(o).get("polls", 0)) == 0]
    assert len(failed) == summary["failed"] and len(failed) + len(untouched) == len(orders)
    assert all(world.state(o)["status"] == "CAPTUREREQUIRED" for o in orders)
    # the next run, with FlexFactor back, reaches the rest
    assert world.poll()["read"] == len(untouched)


def test_a_backlog_is_worked_through_across_runs_without_starving_any_order(world):
    from decline_rescue.services import polling

    orders = [world.submit_cit(cit(transactionType="AUTHORIZATION"))["orderId"] for _ in range(20)]
    for i, order_id in enumerate(orders):
        world.make_due(order_id, at=now() - timedelta(minutes=20 - i))  # oldest first
    world.use("PollOrdersFunction", POLL_CONCURRENCY="2")
    seen: list[int] = []
    for _ in range(15):
        summary = polling.Poller().run(budget_seconds=3.15)  # 0.15 s of work per run
        seen.append(summary.get("unchanged", 0))
        if sum(seen) >= len(orders):
            break
    polls = [int(world.state(o).get("polls", 0)) for o in orders]
    assert len(seen) > 1, "the backlog should need more than one run"
    assert polls == [1] * len(orders), polls  # every order once, none starved, none twice


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
