"""DynamoDB stream event source mappings run locally as Lambda runs them: StreamPoller
against a real moto server, a Python callable standing in for the function; the mapping
parsed from a SAM template's DynamoDB event; and FilterCriteria, on streams and queues."""

from __future__ import annotations

import json
import math
import re
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

import pytest

from devstack.pollers import SqsPoller, StreamPoller, matches
from devstack.provision import EventSourceMapping, Provisioner
from tests.conftest import aws_client

# the template's filter: new history rows that are not notes
HISTORY_FILTER = {
    "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "HIST#"}]}, "kind": {"S": [{"exists": False}]}}},
    "eventName": ["INSERT"],
}
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:StreamFunction"
SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MILLISECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def sort_key(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"]["sk"]["S"]


def sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


@dataclass
class Function:
    """Stands in for the Lambda function. It keeps every event; a record whose sort key
    is in ``failing`` fails (that many times), reported as a batch item failure when
    ``partial``, else as a function error."""

    failing: dict[str, float] = field(default_factory=dict)
    partial: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[list[str], bool]] = field(default_factory=list)  # (sort keys, succeeded)

    def __call__(self, name: str, event: dict[str, Any]) -> tuple[bool, Any]:
        self.events.append(event)
        records = event["Records"]
        failed = [r for r in records if self.failing.get(sort_key(r), 0) > 0]
        for record in failed:
            self.failing[sort_key(record)] -= 1
        self.calls.append(([sort_key(r) for r in records], not failed))
        if not failed:
            return True, None
        if self.partial:
            return True, {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}
        return False, {"errorType": "Exception", "errorMessage": f"poison: {[sort_key(r) for r in failed]}"}

    @property
    def delivered(self) -> list[str]:
        """The sort keys of the invocations that succeeded, in order."""
        return [key for keys, ok in self.calls if ok for key in keys]


@dataclass
class Stream:
    """A fresh table with a NEW_AND_OLD_IMAGES stream, and an SQS queue for failures."""

    table: str
    arn: str
    queue_url: str
    queue_arn: str
    ddb: Any
    sqs: Any
    streams: Any

    def put(self, sk: str, pk: str = "ORDER#1", **attributes: str) -> None:
        item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attributes.items()}}
        self.ddb.put_item(TableName=self.table, Item=item)

    def poller(
        self,
        function: Function,
        *,
        batch_size: int = 10,
        report_batch_item_failures: bool = False,
        starting_position: str = "TRIM_HORIZON",
        clock=time.time,
        **mapping: Any,
    ) -> StreamPoller:
        esm = EventSourceMapping(
            "StreamFunction",
            "",
            batch_size,
            report_batch_item_failures,
            0,
            source="dynamodb",
            stream_arn=self.arn,
            starting_position=starting_position,
            on_failure=self.queue_arn,
            **mapping,
        )
        return StreamPoller(esm, self.streams, self.sqs, function, retry_delay=0.01, poll_interval=0.05, clock=clock)

    def failures(self) -> list[dict[str, Any]]:
        """The invocation records on the on-failure queue."""
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]

    def shard_id(self) -> str:
        (shard,) = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        return shard["ShardId"]


@pytest.fixture
def stream(moto_url: str) -> Stream:
    name = f"streams-{uuid.uuid4().hex[:10]}"
    ddb, sqs = aws_client(moto_url, "dynamodb"), aws_client(moto_url, "sqs")
    table = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    url = sqs.create_queue(QueueName=f"{name}-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Stream(name, table["LatestStreamArn"], url, queue_arn, ddb, sqs, aws_client(moto_url, "dynamodbstreams"))


# -- the event ------------------------------------------------------------------------


def test_the_event_holds_each_change_as_lambda_hands_it_over(stream):
    # Given a poller on the stream
    function = Function()
    poller = stream.poller(function)
    key = {"pk": {"S": "ORDER#1"}, "sk": {"S": "HIST#000001"}}

    # When an item is put (with a binary attribute), changed and deleted
    stream.ddb.put_item(TableName=stream.table, Item={**key, "status": {"S": "NEW"}, "blob": {"B": b"\x00\x01"}})
    stream.put("HIST#000001", status="PAID")
    stream.ddb.delete_item(TableName=stream.table, Key=key)
    assert poller.drain()

    # Then one event holds the three changes, in order, in Lambda's shape
    (event,) = function.events
    insert, modify, remove = event["Records"]
    assert [r["eventName"] for r in event["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    for record in event["Records"]:
        assert set(record) == {
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        }
        assert (record["eventVersion"], record["eventSource"], record["awsRegion"]) == (
            "1.1",
            "aws:dynamodb",
            "us-east-1",
        )
        assert record["eventSourceARN"] == stream.arn
        assert record["dynamodb"]["Keys"] == key
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(record["dynamodb"]["SizeBytes"], int)
        created = record["dynamodb"]["ApproximateCreationDateTime"]
        assert isinstance(created, float) and created.is_integer() and abs(created - time.time()) < 60
    assert insert["dynamodb"]["NewImage"] == {**key, "status": {"S": "NEW"}, "blob": {"B": "AAE="}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "NEW"}
    assert modify["dynamodb"]["NewImage"] == {**key, "status": {"S": "PAID"}}
    assert remove["dynamodb"]["OldImage"] == {**key, "status": {"S": "PAID"}}
    assert "NewImage" not in remove["dynamodb"]
    numbers = [int(n) for n in sequence_numbers(event)]
    assert numbers == sorted(numbers)
    # and it is plain JSON, as it crosses to the function's process in the local stack
    assert json.loads(json.dumps(event)) == event


def test_records_arrive_in_order_in_batches_of_the_batch_size(stream):
    # Given a poller with batches of 3
    function = Function()
    poller = stream.poller(function, batch_size=3)

    # When 7 items are put
    keys = [f"HIST#{i:06d}" for i in range(7)]
    for key in keys:
        stream.put(key)
    assert poller.drain()

    # Then they arrive in write order, 3, 3 and 1 at a time
    assert [len(e["Records"]) for e in function.events] == [3, 3, 1]
    assert function.delivered == keys
    assert (poller.batches, poller.records_invoked) == (3, 7)


def test_transact_write_items_appear_as_records(stream):
    # Given an order row and a poller
    stream.put("STATE", status="NEW")
    function = Function()
    poller = stream.poller(function)

    # When one transaction adds two history rows and changes the order row
    stream.ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": stream.table, "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "HIST#000001"}}}},
            {"Put": {"TableName": stream.table, "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "HIST#000002"}}}},
            {
                "Update": {
                    "TableName": stream.table,
                    "Key": {"pk": {"S": "ORDER#1"}, "sk": {"S": "STATE"}},
                    "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":s": {"S": "PAID"}},
                }
            },
        ]
    )
    assert poller.drain()

    # Then each write of the transaction is a record, after the first put
    records = [r for e in function.events for r in e["Records"]]
    assert [(r["eventName"], sort_key(r)) for r in records] == [
        ("INSERT", "STATE"),
        ("INSERT", "HIST#000001"),
        ("INSERT", "HIST#000002"),
        ("MODIFY", "STATE"),
    ]
    assert records[-1]["dynamodb"]["NewImage"]["status"] == {"S": "PAID"}


def test_latest_starts_after_the_records_already_in_the_stream(stream):
    # Given a record written before the poller starts at LATEST
    stream.put("HIST#000000")
    function = Function()
    poller = stream.poller(function, starting_position="LATEST")

    # When another is written
    stream.put("HIST#000001")
    assert poller.drain()

    # Then only the later one is handed over
    assert function.delivered == ["HIST#000001"]


def test_a_cancelled_transaction_does_not_stall_the_shard(stream):
    # Given a poller that has read the stream to its end
    stream.put("STATE")
    function = Function()
    poller = stream.poller(function)
    assert poller.drain()

    # When a transaction is cancelled by its condition, then an item is put
    with pytest.raises(stream.ddb.exceptions.TransactionCanceledException):
        stream.ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": stream.table,
                        "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "STATE"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    stream.put("HIST#000001")
    assert poller.drain()

    # Then the put is handed over (moto restores a copy of the table on a cancelled
    # transaction, which strands the shard iterators taken before it)
    assert function.delivered == ["STATE", "HIST#000001"]


def test_the_poller_thread_hands_records_over_on_its_own(stream):
    # Given a started poller
    function = Function()
    poller = stream.poller(function).start()
    try:
        # When an item is put
        stream.put("HIST#000001")
        deadline = time.monotonic() + 10
        while not function.calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        poller.stop()

    # Then the thread invoked the function with it
    assert function.delivered == ["HIST#000001"]


# -- filters --------------------------------------------------------------------------


def test_records_that_match_no_filter_are_skipped(stream):
    # Given a poller with the template's history filter
    function = Function()
    poller = stream.poller(function, filters=[HISTORY_FILTER])

    # When matching and non-matching changes are written
    stream.put("HIST#000001")  # matches
    stream.put("STATE")  # no HIST# prefix
    stream.put("HIST#000002", kind="note")  # has a kind
    stream.put("HIST#000001", status="x")  # a MODIFY
    stream.put("HIST#000003")  # matches
    assert poller.drain()

    # Then only the matching ones reach the function, in one batch, and the rest are passed
    assert function.calls == [(["HIST#000001", "HIST#000003"], True)]
    assert poller.records_skipped == 3


EVENT = {
    "eventName": "INSERT",
    "dynamodb": {"NewImage": {"sk": {"S": "HIST#1"}, "amount": 250, "note": None, "tags": ["a", "b"]}},
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["REMOVE"]}, False),
        ({"eventName": [{"anything-but": ["REMOVE"]}]}, True),
        ({"eventName": [{"anything-but": "INSERT"}]}, False),
        ({"eventName": [{"equals-ignore-case": "insert"}]}, True),
        ({"dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "HIST#"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"sk": {"S": [{"suffix": "#1"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"sk": {"S": [{"anything-but": {"prefix": "HIST#"}}]}}}}, False),
        ({"dynamodb": {"NewImage": {"amount": [{"numeric": [">", 100, "<=", 250]}]}}}, True),
        ({"dynamodb": {"NewImage": {"amount": [{"numeric": ["<", 100]}]}}}, False),
        ({"dynamodb": {"NewImage": {"amount": [250.0]}}}, True),
        ({"dynamodb": {"NewImage": {"amount": ["250"]}}}, False),  # a string is not a number
        ({"dynamodb": {"NewImage": {"note": [None]}}}, True),
        ({"dynamodb": {"NewImage": {"note": [{"exists": True}]}}}, True),
        ({"dynamodb": {"NewImage": {"missing": [None]}}}, False),  # null matches null, not an absent field
        ({"dynamodb": {"NewImage": {"missing": {"S": [{"exists": False}]}}}}, True),
        ({"dynamodb": {"NewImage": {"missing": [{"anything-but": "x"}]}}}, False),
        ({"dynamodb": {"NewImage": {"tags": ["b"]}}}, True),  # an array matches when an element does
        ({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"amount": [1]}}}, False),  # every key must match
        ({"$or": [{"eventName": ["REMOVE"]}, {"dynamodb": {"NewImage": {"amount": [250]}}}]}, True),
    ],
)
def test_filter_patterns_match_as_lambda_matches_them(pattern, expected):
    # Given a record and a pattern; When matched; Then as EventBridge patterns match
    assert matches(pattern, EVENT) is expected


def test_sqs_messages_that_match_no_filter_are_deleted_unseen(moto_url):
    # Given a queue whose mapping only wants bodies of type "wanted"
    sqs = aws_client(moto_url, "sqs")
    url = sqs.create_queue(QueueName=f"filtered-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = EventSourceMapping("QueueFunction", arn, 10, False, 0, filters=[{"body": {"type": ["wanted"]}}])
    bodies: list[str] = []
    poller = SqsPoller(
        mapping, sqs, lambda _, event: (bodies.extend(r["body"] for r in event["Records"]), (True, None))[1]
    )

    # When a wanted message, an unwanted one and a plain-text one are polled
    for body in (json.dumps({"type": "wanted"}), json.dumps({"type": "other"}), "plain text"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    poller.wait_seconds = 0
    while poller.poll_once():
        pass

    # Then only the wanted one reached the function and the queue is empty
    assert bodies == [json.dumps({"type": "wanted"})]
    assert poller.skipped == 2
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )


# -- failures -------------------------------------------------------------------------


def test_bisecting_isolates_the_poison_record(stream):
    # Given a batch of 8 whose sixth record always makes the function fail
    keys = [f"HIST#{i:06d}" for i in range(8)]
    poison = keys[5]
    function = Function(failing={poison: math.inf})
    poller = stream.poller(function, batch_size=8, bisect_on_error=True, max_retry_attempts=2)

    # When the poller works through the stream
    for key in keys:
        stream.put(key)
    assert poller.drain()

    # Then every other record is delivered, in order
    assert function.delivered == [k for k in keys if k != poison]
    # and the poison record was split down to itself (8, 4, 2, 1: splits are not
    # retries), retried twice alone, then sent to the destination by itself
    assert [len(keys) for keys, _ in function.calls if poison in keys] == [8, 4, 2, 1, 1, 1]
    assert (poller.bisections, poller.retries) == (3, 2)
    (failure,) = stream.failures()
    poison_number = sequence_numbers(function.events[0])[5]
    assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == poison_number
    assert failure["DDBStreamBatchInfo"]["endSequenceNumber"] == poison_number
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert failure["requestContext"]["approximateInvokeCount"] == 6


def test_reported_item_failures_retry_from_the_failed_record_only(stream):
    # Given a function that reports its third record failed, once
    keys = [f"HIST#{i:06d}" for i in range(5)]
    function = Function(failing={keys[2]: 1}, partial=True)
    poller = stream.poller(function, batch_size=5, report_batch_item_failures=True, bisect_on_error=True)

    # When the five records are handed over
    for key in keys:
        stream.put(key)
    assert poller.drain()

    # Then the retry starts at the failed record (a retry, not a split), and succeeds
    assert [keys for keys, _ in function.calls] == [keys, keys[2:]]
    assert (poller.retries, poller.bisections) == (1, 0)
    assert stream.failures() == []


def test_an_invalid_item_failures_answer_fails_the_whole_batch(stream):
    # Given a function whose first answer names a record that is not in the batch
    answers = iter([(True, {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}), (True, None)])
    events: list[dict[str, Any]] = []

    def function(name: str, event: dict[str, Any]) -> tuple[bool, Any]:
        events.append(event)
        return next(answers)

    poller = stream.poller(function, report_batch_item_failures=True)

    # When two records are handed over
    stream.put("HIST#000001")
    stream.put("HIST#000002")
    assert poller.drain()

    # Then the whole batch is retried
    assert [[sort_key(r) for r in e["Records"]] for e in events] == [["HIST#000001", "HIST#000002"]] * 2
    assert poller.retries == 1


def test_exhausted_retries_go_to_the_destination_and_the_shard_moves_on(stream):
    # Given a function that always fails on the second record, one retry, no bisecting
    keys = [f"HIST#{i:06d}" for i in range(4)]
    function = Function(failing={keys[1]: math.inf})
    poller = stream.poller(function, batch_size=2, max_retry_attempts=1)

    # When four records are handed over two at a time
    for key in keys:
        stream.put(key)
    assert poller.drain()

    # Then the first batch is tried twice and the next one still delivered
    assert function.calls == [(keys[:2], False), (keys[:2], False), (keys[2:], True)]
    # and one invocation record names the failed batch's place in the stream
    (failure,) = stream.failures()
    first, last = sequence_numbers(function.events[0])
    assert failure == {
        "requestContext": {
            "requestId": ANY,
            "functionArn": FUNCTION_ARN,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 2,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": ANY,
        "DDBStreamBatchInfo": {
            "shardId": stream.shard_id(),
            "startSequenceNumber": first,
            "endSequenceNumber": last,
            "approximateArrivalOfFirstRecord": ANY,
            "approximateArrivalOfLastRecord": ANY,
            "batchSize": 2,
            "streamArn": stream.arn,
        },
    }
    assert MILLISECONDS.fullmatch(failure["timestamp"])
    assert SECONDS.fullmatch(failure["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"])
    assert SECONDS.fullmatch(failure["DDBStreamBatchInfo"]["approximateArrivalOfLastRecord"])
    assert (poller.sent_to_destination, poller.records_discarded) == (1, 2)


def test_records_older_than_the_maximum_age_are_not_handed_over(stream):
    # Given a poller whose clock runs two hours ahead and a maximum record age of one hour
    function = Function()
    poller = stream.poller(function, max_record_age=3600, clock=lambda: time.time() + 7200)

    # When two records are written
    stream.put("HIST#000001")
    stream.put("HIST#000002")
    assert poller.drain()

    # Then the function never sees them and the destination hears of both
    assert function.calls == []
    (failure,) = stream.failures()
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] == 0
    assert "functionError" not in failure["responseContext"]
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2


# -- the mapping, from the template ---------------------------------------------------

TEMPLATE = textwrap.dedent(
    """\
    AWSTemplateFormatVersion: '2010-09-09'
    Transform: AWS::Serverless-2016-10-31
    Resources:
      OrdersTable:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions:
            - {AttributeName: pk, AttributeType: S}
            - {AttributeName: sk, AttributeType: S}
          KeySchema:
            - {AttributeName: pk, KeyType: HASH}
            - {AttributeName: sk, KeyType: RANGE}
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      OrderEventsFailureQueue:
        Type: AWS::SQS::Queue
      WorkQueue:
        Type: AWS::SQS::Queue
      OrderEventsFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/order_events
          Handler: app.lambda_handler
          Runtime: python3.12
          Events:
            OrdersStream:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt OrdersTable.StreamArn
                StartingPosition: TRIM_HORIZON
                BatchSize: 25
                MaximumBatchingWindowInSeconds: 1
                BisectBatchOnFunctionError: true
                MaximumRetryAttempts: 5
                MaximumRecordAgeInSeconds: 3600
                FunctionResponseTypes: [ReportBatchItemFailures]
                FilterCriteria:
                  Filters:
                    - Pattern: '$HISTORY_FILTER'
                DestinationConfig:
                  OnFailure:
                    Type: SQS
                    Destination: !GetAtt OrderEventsFailureQueue.Arn
            Work:
              Type: SQS
              Properties:
                Queue: !GetAtt WorkQueue.Arn
                FilterCriteria:
                  Filters:
                    - Pattern: '{"body": {"type": ["wanted"]}}'
    """
).replace("$HISTORY_FILTER", json.dumps(HISTORY_FILTER))


def test_provision_reads_a_dynamodb_event_into_a_stream_mapping(moto_url, tmp_path):
    # Given a SAM template with a DynamoDB stream event and an SQS event
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)

    # When it is provisioned into moto
    stack = Provisioner(moto_url, f"streams-{uuid.uuid4().hex[:8]}", {}).provision(template)

    # Then the stream event is a stream mapping with every setting of the event
    (mapping,) = [m for m in stack.event_sources if m.source == "dynamodb"]
    assert mapping == EventSourceMapping(
        function="OrderEventsFunction",
        queue_arn="",
        batch_size=25,
        report_batch_item_failures=True,
        max_batching_window=1,
        source="dynamodb",
        stream_arn=stack.attributes[("OrdersTable", "StreamArn")],
        starting_position="TRIM_HORIZON",
        filters=[HISTORY_FILTER],
        bisect_on_error=True,
        max_retry_attempts=5,
        max_record_age=3600,
        on_failure=stack.attributes[("OrderEventsFailureQueue", "Arn")],
    )
    # and the queue event is the SQS mapping it always was, with its filter
    (queue,) = [m for m in stack.event_sources if m.source == "sqs"]
    assert (queue.queue_arn, queue.batch_size, queue.stream_arn) == (stack.attributes[("WorkQueue", "Arn")], 10, "")
    assert queue.filters == [{"body": {"type": ["wanted"]}}]

    # And a poller on the provisioned stream hands over a history row written to the table
    function = Function()
    poller = StreamPoller(mapping, aws_client(moto_url, "dynamodbstreams"), aws_client(moto_url, "sqs"), function)
    table = stack.physical_ids["OrdersTable"]
    aws_client(moto_url, "dynamodb").put_item(
        TableName=table, Item={"pk": {"S": "ORDER#1"}, "sk": {"S": "HIST#000001"}}
    )
    assert poller.drain()
    assert function.delivered == ["HIST#000001"]
