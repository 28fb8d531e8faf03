"""The event contract (``schemas/events/``) against what the publisher really emits: every
source of change driven through the functions' handlers (the claim and the answer of
``/declines``, the declines queue, webhooks, the poller, capture, cancel, our refunds, a
chargeback, NOT_SUBMITTED three ways), the table's stream read by the conftest's
``EventPublisher`` (PublishOrderEventsFunction's handler, as the event source mapping
invokes it), the events caught off the stack's bus by a rule, each one validated.

The test has its own orders table (with the template's stream), order-updates queue and
declines queue, so that the poller sees only its orders and every event is its own."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack import event_schemas
from devstack.pollers import StreamPoller, sqs_event
from tests.conftest import EVENTS, EventPublisher, api_event, aws_client, invoke, load_handler
from tests.integration.test_declines import EVALUATE, cit, mit
from tests.integration.test_declines import post as post_decline
from tests.integration.test_order_updates import INGEST, payload, raw, webhook_event

APPLY = "ApplyOrderUpdateFunction"
ORDERS = "OrdersApiFunction"
POLL = "PollOrdersFunction"
DISPATCH = "DispatchPollsFunction"
SCHEDULED = json.loads((EVENTS / "dispatch_polls" / "scheduled.json").read_text())
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:contract"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TablePublisher(EventPublisher):
    """The conftest's EventPublisher, reading this test's table's stream (from its start)
    with the template's mapping (filter, batch size, retries, bisection)."""

    def __init__(self, stack, moto_url: str, stream_arn: str) -> None:
        mapping = next(m for m in stack.event_sources if m.function == "PublishOrderEventsFunction")
        self.spec = stack.functions["PublishOrderEventsFunction"]
        self.handler = load_handler(self.spec.code_dir, "PublishOrderEventsFunction")
        self.moto_url = moto_url
        self.bus = self.spec.environment["EVENT_BUS_NAME"]
        self.poller = StreamPoller(
            dataclasses.replace(mapping, stream_arn=stream_arn, starting_position="TRIM_HORIZON", on_failure=None),
            aws_client(moto_url, "dynamodbstreams"),
            aws_client(moto_url, "sqs"),
            self._invoke,
            retry_delay=0.01,
        )


class World:
    """The stack's functions on the test's own table and queues, and what reached the bus."""

    def __init__(self, function_env, stack, moto_url: str, flexfactor_url: str) -> None:
        self.function_env = function_env
        self.flex = flexfactor_url
        self.ddb = aws_client(moto_url, "dynamodb")
        self.sqs = aws_client(moto_url, "sqs")
        self.events_client = aws_client(moto_url, "events")
        suffix = uuid.uuid4().hex[:8]
        template = self.ddb.describe_table(TableName=stack.physical_ids["OrdersTable"])["Table"]
        self.table = f"contract-{suffix}"
        created = self.ddb.create_table(
            TableName=self.table,
            KeySchema=template["KeySchema"],
            AttributeDefinitions=template["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in template["GlobalSecondaryIndexes"]
            ],
            StreamSpecification={**template["StreamSpecification"], "StreamEnabled": True},
        )["TableDescription"]
        self.updates_url = self.sqs.create_queue(QueueName=f"contract-updates-{suffix}")["QueueUrl"]
        self.declines_url = self.sqs.create_queue(QueueName=f"contract-declines-{suffix}")["QueueUrl"]
        self.work_url = self.sqs.create_queue(QueueName=f"contract-poll-work-{suffix}")["QueueUrl"]
        self.env = {
            "POLL_WORK_QUEUE_URL": self.work_url,
            "ORDERS_TABLE": self.table,
            "ORDER_UPDATES_QUEUE_URL": self.updates_url,
            "DECLINES_QUEUE_URL": self.declines_url,
            "POLL_FIRST_DELAY_SECONDS": "60",
        }
        self.publisher = TablePublisher(stack, moto_url, created["LatestStreamArn"])
        # the bus: a rule sends every event to a queue the test reads
        self.bus = stack.physical_ids["OrderEventBus"]
        self.rule = f"contract-{suffix}"
        self.caught_url = self.sqs.create_queue(QueueName=f"contract-events-{suffix}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.caught_url, AttributeNames=["QueueArn"])["Attributes"]
        self.events_client.put_rule(
            Name=self.rule, EventBusName=self.bus, EventPattern=json.dumps({"source": ["decline-rescue"]})
        )
        self.events_client.put_targets(
            Rule=self.rule, EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn["QueueArn"]}]
        )
        self.caught: list[dict[str, Any]] = []

    def close(self) -> None:
        self.events_client.remove_targets(Rule=self.rule, EventBusName=self.bus, Ids=["queue"])
        self.events_client.delete_rule(Name=self.rule, EventBusName=self.bus)
        for url in (self.updates_url, self.declines_url, self.caught_url, self.work_url):
            self.sqs.delete_queue(QueueUrl=url)
        self.ddb.delete_table(TableName=self.table)

    # -- the functions --------------------------------------------------------------------

    def use(self, logical_id: str):
        module, _ = self.function_env(logical_id, **self.env)
        return module

    def decline(self, body: dict) -> tuple[int, dict]:
        return post_decline(self.use(EVALUATE), body)

    def declines_queue(self) -> None:
        """The declines queue's messages, to evaluate_decline as its SQS event."""
        messages = self._receive(self.declines_url)
        assert messages, "nothing on the declines queue"
        assert invoke(self.use(EVALUATE), sqs_event(messages, QUEUE_ARN)) == {"batchItemFailures": []}

    def action(self, order_id: str, action: str, body=None) -> tuple[int, dict]:
        """POST /orders/{orderId}/<action> through OrdersApiFunction's handler."""
        event = api_event(f"orders_api/post_{action}.json", body)
        if body is None:
            event["body"] = None
        event["path"], event["pathParameters"] = f"/orders/{order_id}/{action}", {"orderId": order_id}
        result = invoke(self.use(ORDERS), event, name=ORDERS)
        return result["statusCode"], json.loads(result["body"])

    def webhook(self, order_id: str, session_key: str, event: str, **changes) -> None:
        """A webhook FlexFactor signed about the order, ingested, then applied by the writer."""
        body = payload(event, ExternalOrderId=order_id, OrderId=session_key, **changes)
        result = invoke(self.use(INGEST), webhook_event(raw(body)), name=INGEST)
        assert result["statusCode"] == 200, result["body"]
        self.apply_updates()

    def apply_updates(self) -> None:
        messages = self._receive(self.updates_url)
        assert messages, "nothing on the order-updates queue"
        assert invoke(self.use(APPLY), sqs_event(messages, QUEUE_ARN), name=APPLY) == {"batchItemFailures": []}

    def poll(self) -> None:
        """A tick: the dispatcher, then each poll work item to a worker, as its SQS event."""
        invoke(self.use(DISPATCH), copy.deepcopy(SCHEDULED), name=DISPATCH)
        while messages := self._receive(self.work_url):
            for message in messages:
                result = invoke(self.use(POLL), sqs_event([message], QUEUE_ARN), name=POLL)
                assert result == {"batchItemFailures": []}, result

    def claim(self, order_id: str, created: datetime) -> None:
        """An intake claim whose request died before FlexFactor answered (see test_polling)."""
        from decline_rescue.services import writer

        self.use(POLL)
        order = {"orderId": order_id, "idempotencyKey": str(uuid.uuid4()), "amount": 1999, "currency": "USD"}
        writer.create({**order, "isMIT": False}, status="RECEIVED", source="api")
        self.set_state(order_id, createdAt=iso(created), nextPollAt=iso(datetime.now(UTC) - timedelta(seconds=1)))

    def state(self, order_id: str) -> dict:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.ddb.get_item(TableName=self.table, Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}})
        return {k: TypeDeserializer().deserialize(v) for k, v in item["Item"].items()}

    def set_state(self, order_id: str, **fields: str) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": {"S": value} for i, value in enumerate(fields.values())}
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # -- the bus --------------------------------------------------------------------------

    def events(self) -> list[dict]:
        """Every event published so far (the stream drained first), as a rule's target gets it."""
        self.publisher.drain()
        self.caught += [json.loads(m["Body"]) for m in self._receive(self.caught_url)]
        return list(self.caught)

    def _receive(self, url: str) -> list[dict]:
        out: list[dict] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return out
            out += messages
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


@pytest.fixture
def world(function_env, stack, moto_url, flexfactor_url):
    world = World(function_env, stack, moto_url, flexfactor_url)
    yield world
    world.close()


def every_source(world: World) -> dict[str, str]:
    """Each source of change once at least; the orders by what they went through."""
    orders: dict[str, str] = {}

    # the claim and the answer: APPROVED at once
    body = cit()
    assert world.decline(body)[1]["status"] == "APPROVED"
    orders["approved at once"] = body["orderId"]

    # DECLINED by FlexFactor; NOT_SUBMITTED by a never-retry code (no FlexFactor call)
    body = cit(paymentMethod__cardLast4Digits="0002")
    assert world.decline(body)[1]["status"] == "DECLINED"
    orders["declined"] = body["orderId"]
    body = cit(transaction__responseCode="14")
    assert world.decline(body)[1]["status"] == "NOT_SUBMITTED"
    orders["never retry"] = body["orderId"]

    # capture, then a refund of ours (partial, then the rest)
    body = cit(transactionType="AUTHORIZATION")
    assert world.decline(body)[1]["status"] == "CAPTUREREQUIRED"
    assert world.action(body["orderId"], "capture", {"amount": 1999})[1]["status"] == "APPROVED"
    assert world.action(body["orderId"], "refund", {"amount": 500, "reason": "one item"})[0] == 200
    assert world.action(body["orderId"], "refund", {})[1]["refundedAmount"] == 1999
    orders["captured and refunded"] = body["orderId"]

    # the merchant's cancel
    body = cit(transactionType="AUTHORIZATION")
    assert world.decline(body)[1]["status"] == "CAPTUREREQUIRED"
    assert world.action(body["orderId"], "cancel")[1]["status"] == "CANCELLED"
    orders["cancelled"] = body["orderId"]

    # webhooks: a challenge passed, then FlexFactor's refund and a chargeback
    body = cit(paymentMethod__cardLast4Digits="0259")
    answer = world.decline(body)[1]
    assert answer["status"] == "CHALLENGE"
    key = answer["orderSessionKey"]
    world.webhook(body["orderId"], key, "order.completed")
    world.webhook(body["orderId"], key, "order.refunded", EventData={"amount": 1999, "refundedAmount": 1999})
    world.webhook(body["orderId"], key, "payment.chargeback.received", EventData={"reasonCode": "10.4"})
    orders["webhooks"] = body["orderId"]

    # a merchant-initiated decline: queued, sent from the declines queue, then completed
    # and refunded at FlexFactor, which the poller finds
    body = mit()
    code, answer = world.decline(body)
    assert (code, answer["status"]) == (202, "QUEUED"), answer
    world.declines_queue()
    state = world.state(body["orderId"])
    assert state["status"] == "SUBMITTED"
    httpx.post(world.flex + "/__emulator/clock", json={"advance": 10}).raise_for_status()
    from decline_rescue.runtime.wiring import flexfactor

    world.use(POLL)
    amount = f"{int(state['amount']) // 100}.{int(state['amount']) % 100:02d}"
    assert flexfactor().refund(order_session_key=state["orderSessionKey"], amount=amount).ok
    orders["queued, polled"] = body["orderId"]

    # NOT_SUBMITTED: a claim FlexFactor never had, closed by the poller, and one the merchant cancels
    now = datetime.now(UTC)
    orders["abandoned"] = f"cit-{uuid.uuid4().hex[:12]}"
    world.claim(orders["abandoned"], now - timedelta(hours=2))
    orders["cancelled claim"] = f"cit-{uuid.uuid4().hex[:12]}"
    world.claim(orders["cancelled claim"], now - timedelta(hours=2))
    assert world.action(orders["cancelled claim"], "cancel")[1]["status"] == "NOT_SUBMITTED"

    world.set_state(orders["queued, polled"], nextPollAt=iso(now - timedelta(seconds=1)))
    world.poll()
    world.apply_updates()
    assert world.state(orders["queued, polled"])["status"] == "APPROVED"
    assert world.state(orders["abandoned"])["status"] == "NOT_SUBMITTED"
    return orders


def test_every_event_the_publisher_emits_matches_its_schema(world):
    # Given every source of change
    orders = every_source(world)

    # When the stream is published and the bus read
    events = [e for e in world.events() if e["detail"].get("orderId") in orders.values()]

    # Then every event validates against the schema of its detail-type
    problems = {e["detail"]["changeId"]: event_schemas.validate_event(e) for e in events}
    assert {k: v for k, v in problems.items() if v} == {}
    assert world.publisher.poller.records_discarded == 0
    # every version of every order, the claim included, has its event
    for order_id in orders.values():
        versions = sorted(e["detail"]["version"] for e in events if e["detail"]["orderId"] == order_id)
        assert versions == list(range(1, int(world.state(order_id)["version"]) + 1)), order_id
    # and each detail-type from each of its sources was seen
    seen = Counter((e["detail-type"], e["detail"]["source"]) for e in events)
    for kind, source in [
        ("OrderStatusChanged", "api"),
        ("OrderStatusChanged", "queue"),
        ("OrderStatusChanged", "webhook"),
        ("OrderStatusChanged", "poll"),
        ("OrderStatusChanged", "capture"),
        ("OrderStatusChanged", "cancel"),
        ("OrderRefunded", "refund"),
        ("OrderRefunded", "webhook"),
        ("OrderRefunded", "poll"),
        ("OrderChargebackReceived", "webhook"),
    ]:
        assert seen[(kind, source)] >= 1, (kind, source, seen)
    statuses = {e["detail"]["status"] for e in events}
    assert statuses >= {"RECEIVED", "QUEUED", "SUBMITTED", "CHALLENGE", "CAPTUREREQUIRED", "APPROVED"}
    assert statuses >= {"DECLINED", "CANCELLED", "NOT_SUBMITTED"}
    ours = [e["detail"]["refund"] for e in events if "refund" in e["detail"]]
    assert [(r["amount"], r["refundedAmount"]) for r in ours] == [(500, 500), (1499, 1999)]

    # and a detail that breaks the contract does not validate
    for kind in ("OrderStatusChanged", "OrderRefunded", "OrderChargebackReceived"):
        event = next(e for e in events if e["detail-type"] == kind)
        missing = copy.deepcopy(event)
        del missing["detail"]["changeId"]
        assert any("changeId" in p for p in event_schemas.validate_event(missing)), kind
        as_text = copy.deepcopy(event)
        as_text["detail"]["version"] = str(event["detail"]["version"])
        assert any(p.startswith("detail/version") for p in event_schemas.validate_event(as_text)), kind
