"""examples/consumer/: the de-duplicating consumer against DynamoDB (the moto server of
tests/conftest.py), and its rule pattern on an EventBridge bus there; the events are
what ``Change.event_detail()`` makes, checked against the event contract first."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import pytest

from decline_rescue.domain.updates import Change
from devstack import event_schemas
from devstack.template import load_raw
from tests.conftest import aws_client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumer"
ORDER = "ord-consumer-1"


def load_consumer():
    spec = importlib.util.spec_from_file_location("example_consumer_app", EXAMPLE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


consumer = load_consumer()


def event(change: Change) -> dict:
    """The event a rule's target gets for ``change``; valid by the contract."""
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": change.detail_type(),
        "source": "decline-rescue",
        "account": "123456789012",
        "time": "2026-11-22T10:00:01Z",
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(json.dumps(change.event_detail())),
    }
    assert event_schemas.validate_event(envelope) == []
    return envelope


def at(second: int) -> str:
    return f"2026-11-22T10:00:{second:02d}.000Z"


def refund(version: int, amount: int, total: int) -> dict:
    facts = {"refundId": f"rf-{version}", "amount": amount, "currency": "USD", "refundedAmount": total}
    return event(Change(ORDER, "APPROVED", "APPROVED", version, "refund", at(version), event="REFUNDED", refund=facts))


APPROVED = event(Change(ORDER, "CAPTUREREQUIRED", "APPROVED", 3, "capture", at(3)))
FIRST_REFUND = refund(4, 500, 500)
LAST_REFUND = refund(5, 1499, 1999)


@pytest.fixture
def ddb(moto_url):
    return aws_client(moto_url, "dynamodb")


@pytest.fixture
def table(ddb):
    """The consumer's table, as examples/consumer/template.yaml declares it."""
    resource = load_raw(EXAMPLE / "template.yaml")["Resources"]["ConsumerTable"]["Properties"]
    name = f"consumer-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=resource["AttributeDefinitions"],
        KeySchema=resource["KeySchema"],
        BillingMode=resource["BillingMode"],
    )
    yield name
    ddb.delete_table(TableName=name)


def order(ddb, table: str) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    item = ddb.get_item(TableName=table, Key={"pk": {"S": f"ORDER#{ORDER}"}}, ConsistentRead=True)["Item"]
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def test_a_redelivered_event_is_applied_once(ddb, table):
    first = consumer.handle(FIRST_REFUND, ddb, table)
    again = consumer.handle(FIRST_REFUND, ddb, table)
    # (EventBridge redelivers the same event; a republished change is a new event, same changeId)
    republished = consumer.handle({**FIRST_REFUND, "id": str(uuid.uuid4())}, ddb, table)

    assert first["result"] == "applied"
    assert again == republished == {"result": "duplicate", "changeId": f"{ORDER}:4"}
    state = order(ddb, table)
    assert (state["changes"], state["refunds"], state["refundedAmount"]) == (1, 1, 500)
    marker = ddb.get_item(TableName=table, Key={"pk": {"S": f"CHANGE#{ORDER}:4"}})["Item"]
    assert int(marker["expiresAt"]["N"]) - int(marker["receivedAt"]["N"]) == consumer.KEEP_SECONDS


def test_events_out_of_order_and_again_end_as_in_order_once(ddb, table):
    results = [
        consumer.handle(e, ddb, table)["result"]
        for e in (LAST_REFUND, APPROVED, FIRST_REFUND, FIRST_REFUND, LAST_REFUND, APPROVED)
    ]

    assert results == ["applied", "late", "late", "duplicate", "duplicate", "duplicate"]
    state = order(ddb, table)
    assert (state["lastVersion"], state["lastChangeId"], state["status"]) == (5, f"{ORDER}:5", "APPROVED")
    assert (state["changes"], state["refunds"], state["refundedAmount"]) == (3, 2, 1999)
    assert state["approvedAt"] == at(3)
    # versions 1 and 2 never came (the rule filters them out): noted; 3 and 4 came late
    assert state["gaps"] == {1, 2}


def test_a_late_event_never_takes_the_status_back(ddb, table):
    # a consumer of every event (a rule on source alone) gets the challenge after the approval
    challenge = event(Change(ORDER, "SUBMITTED", "CHALLENGE", 2, "webhook", at(2)))
    assert consumer.handle(APPROVED, ddb, table) == {"result": "applied", "changeId": f"{ORDER}:3", "gaps": [1, 2]}
    assert consumer.handle(challenge, ddb, table)["result"] == "late"

    state = order(ddb, table)
    assert (state["status"], state["lastVersion"], state["gaps"]) == ("APPROVED", 3, {1})


def test_two_invocations_racing_on_an_order_both_apply_once(ddb, table):
    # Given an invocation that read the order just before another one wrote it
    class StaleRead:
        def __init__(self, real, event):
            self.real, self.event, self.reads = real, event, 0

        def get_item(self, **kwargs):
            self.reads += 1
            answer = self.real.get_item(**kwargs)
            if self.reads == 1:  # the other invocation writes now
                consumer.handle(self.event, self.real, table)
            return answer

        def transact_write_items(self, **kwargs):
            return self.real.transact_write_items(**kwargs)

    racing = StaleRead(ddb, FIRST_REFUND)

    # When it writes
    result = consumer.handle(LAST_REFUND, racing, table)

    # Then its write was refused, it read again, and both events count once
    assert result["result"] == "applied" and racing.reads == 2
    state = order(ddb, table)
    assert (state["lastVersion"], state["changes"], state["refundedAmount"]) == (5, 2, 1999)


def test_an_event_whose_change_id_is_not_its_order_and_version_is_refused(ddb, table):
    bad = json.loads(json.dumps(FIRST_REFUND))
    bad["detail"]["changeId"] = f"{ORDER}:9"
    with pytest.raises(ValueError, match="changeId"):
        consumer.handle(bad, ddb, table)


def test_the_lambda_entry_point_reads_its_table_from_the_environment(ddb, table, moto_url, monkeypatch):
    for name, value in {
        "CONSUMER_TABLE": table,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(consumer, "_client", None)
    assert consumer.lambda_handler(APPROVED, None)["result"] == "applied"
    assert consumer.lambda_handler(APPROVED, None)["result"] == "duplicate"


# -- the rule -------------------------------------------------------------------------


def test_the_template_wires_the_rule_pattern_to_the_handler():
    template = load_raw(EXAMPLE / "template.yaml")
    function = template["Resources"]["OrderEventsConsumerFunction"]["Properties"]
    (rule,) = function["Events"].values()
    assert rule["Type"] == "EventBridgeRule"
    assert rule["Properties"]["Pattern"] == json.loads((EXAMPLE / "rule-pattern.json").read_text())
    assert function["Handler"] == "app.lambda_handler" and callable(consumer.lambda_handler)
    assert "CONSUMER_TABLE" in function["Environment"]["Variables"]


def test_the_rule_delivers_approvals_and_refunds_only(moto_url):
    events, sqs = aws_client(moto_url, "events"), aws_client(moto_url, "sqs")
    name = f"consumer-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=name)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=name, EventPattern=(EXAMPLE / "rule-pattern.json").read_text())
    events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "queue", "Arn": arn}])
    published = [
        event(Change(ORDER, None, "RECEIVED", 1, "api", at(1))),
        event(Change(ORDER, "RECEIVED", "CAPTUREREQUIRED", 2, "api", at(2))),
        APPROVED,
        FIRST_REFUND,
        event(Change(ORDER, "APPROVED", "APPROVED", 5, "webhook", at(5), event="CHARGEBACK")),
        event(Change("ord-2", "CHALLENGE", "CANCELLED", 3, "webhook", at(6))),
        event(Change("ord-3", "PROCESSING", "PROCESSING", 3, "poll", at(7), event="REFUNDED")),
    ]
    try:
        events.put_events(
            Entries=[
                {
                    "Source": e["source"],
                    "DetailType": e["detail-type"],
                    "Detail": json.dumps(e["detail"]),
                    "EventBusName": name,
                }
                for e in published
            ]
        )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        change_ids = sorted(json.loads(m["Body"])["detail"]["changeId"] for m in received)
        assert change_ids == sorted([f"{ORDER}:3", f"{ORDER}:4", "ord-3:3"])
    finally:
        events.remove_targets(Rule=name, EventBusName=name, Ids=["queue"])
        events.delete_rule(Name=name, EventBusName=name)
        events.delete_event_bus(Name=name)
        sqs.delete_queue(QueueUrl=url)
