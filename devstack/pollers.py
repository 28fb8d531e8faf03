"""Local event source mappings: what Lambda's pollers do for SQS queues and DynamoDB streams.

SQS: for each mapping in the template, threads long-poll the queue (several batches in the
function at once, as Lambda's pollers scale, up to the mapping's MaximumConcurrency and
the function's environments). Each hands the function an SQS event of up to the
mapping's batch size, deletes the records that succeeded and, with
``ReportBatchItemFailures``, leaves the failed ones for redelivery (the whole batch when
the function itself fails). Redelivery waits the queue's visibility timeout on AWS; here
a failed record becomes visible again after ``retry_delay`` seconds so that local runs and
tests do not wait a minute. moto counts receives and moves a record to the DLQ after the
redrive policy's maxReceiveCount, as SQS does.

DynamoDB streams: a thread reads each shard in order and hands the function batches of
the records that pass the mapping's filters, one batch of a shard in the function at a
time (the shard's order is kept). A failing batch blocks its shard, as on AWS:
it is retried (bisected first with ``BisectBatchOnFunctionError``, or from the first
failed record with ``ReportBatchItemFailures``) until ``MaximumRetryAttempts`` or
``MaximumRecordAgeInSeconds`` give up on it; then an invocation record goes to the
on-failure SQS destination and the shard moves on. Retries wait ``retry_delay`` (short, so
local runs stay fast) and the batching window is not waited for.

Filter criteria (both kinds) use the EventBridge pattern syntax Lambda uses; records that
match no filter are dropped without an invocation, as Lambda drops them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from devstack.provision import EventSourceMapping

Invoke = Callable[[str, dict[str, Any]], tuple[bool, Any]]

# -- filter criteria ------------------------------------------------------------------

_MISSING = object()  # a field the event does not have (only {"exists": false} matches it)
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">": operator.gt, ">=": operator.ge}


def matches_any(filters: list[dict[str, Any]], event: Any) -> bool:
    """Whether ``event`` passes a mapping's FilterCriteria (no filters: everything does)."""
    return not filters or any(matches(pattern, event) for pattern in filters)


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge pattern matching, as Lambda's FilterCriteria do: every key of the
    pattern must match; an object descends into the event, an array lists what the
    field may be (literals, or ``prefix``, ``suffix``, ``equals-ignore-case``,
    ``anything-but``, ``numeric`` and ``exists`` rules)."""
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in rule):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(rule, dict):
            values = value if isinstance(value, list) else [value]
            if not any(matches(rule, v) for v in values):
                return False
        elif isinstance(rule, list):
            if not any(_matches_rule(r, value) for r in rule):
                return False
        else:
            raise ValueError(f"filter pattern: {key!r} must be an object or an array, not {rule!r}")
    return True


def _matches_rule(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict) and "exists" in rule:
        return (value is not _MISSING) == bool(rule["exists"])
    if value is _MISSING:
        return False
    values = value if isinstance(value, list) else [value]  # an array field matches if an element does
    return any(_matches_value(rule, v) for v in values)


def _matches_value(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return _equal(rule, value)
    if len(rule) != 1:
        raise ValueError(f"filter pattern: a rule has one operator: {rule!r}")
    ((name, arg),) = rule.items()
    if name == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if name == "anything-but":
        if isinstance(arg, dict):
            return isinstance(value, str) and not _matches_value(arg, value)
        return not any(_equal(excluded, value) for excluded in (arg if isinstance(arg, list) else [arg]))
    if name == "numeric":
        return _is_number(value) and all(
            _NUMERIC[op](value, bound) for op, bound in zip(arg[::2], arg[1::2], strict=True)
        )
    raise ValueError(f"filter pattern: unsupported operator {name!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(literal: Any, value: Any) -> bool:
    if _is_number(literal) and _is_number(value):
        return float(literal) == float(value)
    return type(literal) is type(value) and literal == value


# -- SQS ------------------------------------------------------------------------------


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The event Lambda's SQS poller sends, from ReceiveMessage's messages."""
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes") or {},
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _sqs_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """The record as filters see it: a JSON object body is matched as an object."""
    try:
        body = json.loads(record["body"])
    except ValueError:
        return record
    return {**record, "body": body} if isinstance(body, dict) else record


class SqsPoller:
    """Lambda's poller for one SQS event source mapping.

    ``concurrency`` threads each receive a batch and invoke the function with it, so up
    to that many batches of the queue are in the function at once, as Lambda scales a
    queue's pollers (up to the mapping's ``ScalingConfig.MaximumConcurrency``; the stack
    passes the smaller of that and the function's environment limit). ``poll_once`` runs
    one receive and invocation in the caller's thread (tests).
    """

    def __init__(
        self,
        mapping: EventSourceMapping,
        sqs: Any,
        invoke: Invoke,
        *,
        retry_delay: int = 1,
        wait_seconds: int = 1,
        concurrency: int = 1,
    ) -> None:
        self.mapping = mapping
        self.sqs = sqs
        self.invoke = invoke
        self.retry_delay = retry_delay
        self.wait_seconds = wait_seconds
        self.concurrency = max(1, concurrency)
        self.queue_url = sqs.get_queue_url(QueueName=mapping.queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"sqs-{mapping.function}-{i}")
            for i in range(self.concurrency)
        ]
        self._counts = threading.Lock()
        self.batches = 0
        self.skipped = 0  # messages deleted unseen because they matched no filter

    def start(self) -> SqsPoller:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + self.wait_seconds + 5
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, like Lambda's
                if not self._stop.is_set():
                    print(f"sqs poller {self.mapping.function}: {type(exc).__name__}: {exc}", flush=True)
                    self._stop.wait(1.0)

    def poll_once(self) -> int:
        """One receive and at most one invocation; the number of messages received."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        wanted = [m for m in messages if self._wanted(m)]
        with self._counts:
            self.skipped += len(messages) - len(wanted)
        failed: set[str] = set()
        if wanted:
            ok, result = self.invoke(self.mapping.function, sqs_event(wanted, self.mapping.queue_arn))
            with self._counts:
                self.batches += 1
            failed = {m["MessageId"] for m in wanted}
            if ok:
                if self.mapping.report_batch_item_failures and isinstance(result, dict):
                    failed = {f["itemIdentifier"] for f in result.get("batchItemFailures") or []}
                else:
                    failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        retry = [m for m in messages if m["MessageId"] in failed]
        if retry:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay}
                    for i, m in enumerate(retry)
                ],
            )
        return len(messages)

    def _wanted(self, message: dict[str, Any]) -> bool:
        if not self.mapping.filters:
            return True
        (record,) = sqs_event([message], self.mapping.queue_arn)["Records"]
        return matches_any(self.mapping.filters, _sqs_filter_view(record))


# -- DynamoDB streams -----------------------------------------------------------------


def stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to the function: event version 1.1, the
    stream's ARN and region, the creation time in epoch seconds, binary values in base64."""
    lambda_record = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": _jsonable(record["dynamodb"]),
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # deletions by TTL
        lambda_record["userIdentity"] = record["userIdentity"]
    return lambda_record


def _jsonable(value: Any) -> Any:
    """boto3 parses timestamps and base64 values; Lambda's event has them as JSON."""
    if isinstance(value, datetime):
        return float(int(value.timestamp()))  # whole seconds, as the stream records them
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class _Batch:
    """Records handed over together, and what became of them so far."""

    records: list[dict[str, Any]]
    retries: int = 0
    invocations: int = 0
    function_error: str | None = None


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    position: str | None = None  # sequence number of the last record read; None: the shard's start
    buffer: list[dict[str, Any]] = field(default_factory=list)  # read, wanted, not in a batch yet
    work: deque[_Batch] = field(default_factory=deque)  # the batch in hand (bisected: its parts, in order)
    retry_at: float = 0.0  # monotonic time before which the batch in hand is not retried
    caught_up: bool = False  # the last read reached the shard's end
    ended: bool = False  # a closed shard, read to its end

    @property
    def idle(self) -> bool:
        return self.caught_up and not self.buffer and not self.work

    @property
    def finished(self) -> bool:
        return self.ended and not self.buffer and not self.work


class StreamPoller:
    """Lambda's poller for one DynamoDB stream event source mapping.

    ``invoke(function, event)`` answers ``(ok, result)`` like ``FunctionWorker.invoke``.
    ``start``/``stop`` run it on a thread; ``poll_once`` and ``drain`` run it in the
    caller's (tests). The checkpoint is kept in memory: a new poller starts again at the
    mapping's starting position.
    """

    def __init__(
        self,
        mapping: EventSourceMapping,
        streams: Any,
        sqs: Any,
        invoke: Invoke,
        *,
        function_arn: str | None = None,
        retry_delay: float = 0.2,
        poll_interval: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mapping = mapping
        self.streams = streams
        self.sqs = sqs
        self.invoke = invoke
        _, _, _, region, account, _ = mapping.stream_arn.split(":", 5)
        self.function_arn = function_arn or f"arn:aws:lambda:{region}:{account}:function:{mapping.function}"
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval  # Lambda polls a shard 4 times a second
        self.clock = clock  # wall time in epoch seconds, for record ages
        self.destination_url = self._queue_url(mapping.on_failure) if mapping.on_failure else None
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"stream-{mapping.function}")
        self.batches = 0  # invocations
        self.records_invoked = 0  # records handed over, each retry counted again
        self.records_skipped = 0  # records that matched no filter
        self.retries = 0
        self.bisections = 0
        self.records_discarded = 0  # records given up on
        self.sent_to_destination = 0  # invocation records sent to the on-failure destination
        self._learn_shards(mapping.starting_position)

    def _queue_url(self, arn: str) -> str:
        parts = arn.split(":")
        if parts[2] != "sqs":
            raise ValueError(f"on-failure destination {arn}: only SQS queues are run locally")
        return self.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]

    # -- running --------------------------------------------------------------------

    def start(self) -> StreamPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.poll_interval + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handed = self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, like Lambda's
                if not self._stop.is_set():
                    print(f"stream poller {self.mapping.function}: {type(exc).__name__}: {exc}", flush=True)
                    self._stop.wait(1.0)
                continue
            if not handed:
                with self._lock:
                    pause = self._pause()
                self._stop.wait(pause)

    def poll_once(self) -> int:
        """Read the shards that may be read and make at most one invocation per shard;
        the number of records handed to the function."""
        with self._lock:
            return self._poll()

    def drain(self, timeout: float = 10.0) -> bool:
        """Poll until every shard is read to its end with nothing buffered and no batch
        awaiting a retry (True), or until ``timeout`` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                handed = self._poll()
                if not handed and all(shard.idle for shard in self._shards.values()):
                    return True
                pause = self._pause()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not handed:
                time.sleep(min(pause, left))

    def _pause(self) -> float:
        """Until the next retry is due, at most the poll interval."""
        due = [shard.retry_at - time.monotonic() for shard in self._shards.values() if shard.work]
        return max(0.0, min([self.poll_interval, *due]))

    # -- reading --------------------------------------------------------------------

    def _learn_shards(self, starting_position: str = "TRIM_HORIZON") -> None:
        """Add the stream's new shards. Those there when the poller starts begin at the
        mapping's starting position; those found later (a split or a closed shard's
        children) from their start, after their parent is finished, as Lambda reads them."""
        for found in self._describe_shards():
            if found["ShardId"] in self._shards:
                continue
            shard = _Shard(found["ShardId"], found.get("ParentShardId"))
            if starting_position == "LATEST":
                if "EndingSequenceNumber" in found["SequenceNumberRange"]:
                    shard.ended = shard.caught_up = True
                else:
                    shard.position = self._last_sequence_number(shard.shard_id)
            self._shards[shard.shard_id] = shard

    def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        args = {"StreamArn": self.mapping.stream_arn}
        while True:
            description = self.streams.describe_stream(**args)["StreamDescription"]
            shards += description["Shards"]
            if not description.get("LastEvaluatedShardId"):
                return shards
            args["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]

    def _iterator(self, shard_id: str, position: str | None) -> str:
        kind: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if position is not None:
            kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
        answer = self.streams.get_shard_iterator(StreamArn=self.mapping.stream_arn, ShardId=shard_id, **kind)
        return answer["ShardIterator"]

    def _last_sequence_number(self, shard_id: str) -> str | None:
        """Where LATEST starts: after the shard's last record (None: it has none yet)."""
        last = None
        iterator = self._iterator(shard_id, None)
        while iterator:
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            if not answer["Records"]:
                break
            last = answer["Records"][-1]["dynamodb"]["SequenceNumber"]
            iterator = answer.get("NextShardIterator")
        return last

    def _read(self, shard: _Shard) -> None:
        """Read on from the checkpoint until a batch is full or the shard's end is reached.

        Each read takes a fresh iterator after the last sequence number read instead of
        keeping the previous answer's NextShardIterator: moto undoes a cancelled
        TransactWriteItems by restoring a copy of the table, which leaves every iterator
        taken before on a shard that never gets another record.
        """
        iterator = self._iterator(shard.shard_id, shard.position)
        shard.caught_up = False
        while len(shard.buffer) < self.mapping.batch_size:
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            for raw in answer["Records"]:
                record = stream_record(raw, self.mapping.stream_arn)
                shard.position = record["dynamodb"]["SequenceNumber"]
                if matches_any(self.mapping.filters, record):
                    shard.buffer.append(record)
                else:
                    self.records_skipped += 1
            iterator = answer.get("NextShardIterator")
            shard.ended = iterator is None
            if shard.ended or not answer["Records"]:
                shard.caught_up = True
                return

    # -- invoking -------------------------------------------------------------------

    def _poll(self) -> int:
        self._learn_shards()
        handed = 0
        size = self.mapping.batch_size
        for shard in list(self._shards.values()):
            parent = self._shards.get(shard.parent_id or "")
            if shard.finished or (parent is not None and not parent.finished):
                continue
            if not shard.work:
                if len(shard.buffer) < size and not shard.ended:
                    self._read(shard)
                if shard.buffer:
                    shard.work.append(_Batch(shard.buffer[:size]))
                    del shard.buffer[:size]
            if shard.work and time.monotonic() >= shard.retry_at:
                handed += self._attempt(shard)
        return handed

    def _attempt(self, shard: _Shard) -> int:
        """Hand the shard's batch in hand to the function once and settle the outcome;
        the number of records handed over."""
        batch = shard.work[0]
        expired = self._expired(batch.records)
        if expired:
            self._give_up(shard, batch, expired, "RecordAgeExceeded")
            del batch.records[: len(expired)]
            if not batch.records:
                shard.work.popleft()
                return 0
        handed = len(batch.records)
        ok, result = self.invoke(self.mapping.function, {"Records": list(batch.records)})
        self.batches += 1
        self.records_invoked += handed
        batch.invocations += 1
        batch.function_error = None if ok else "Unhandled"
        failure = self._failure(ok, result, batch.records)
        if failure is None:
            shard.work.popleft()
            return handed
        first, whole_batch, reason = failure
        name = self.mapping.function
        if whole_batch and self.mapping.bisect_on_error and handed > 1:
            half = handed // 2  # a split is not a retry: the halves keep the batch's count
            shard.work.popleft()
            shard.work.appendleft(replace(batch, records=batch.records[half:]))
            shard.work.appendleft(replace(batch, records=batch.records[:half]))
            self.bisections += 1
            print(f"stream poller {name}: {reason}; batch of {handed} split in two", flush=True)
            return handed
        del batch.records[:first]
        if batch.retries == self.mapping.max_retry_attempts:  # never for -1: retry until the records expire
            self._give_up(shard, batch, batch.records, "RetryAttemptsExhausted")
            shard.work.popleft()
        else:
            batch.retries += 1
            self.retries += 1
            shard.retry_at = time.monotonic() + self.retry_delay
            start = batch.records[0]["dynamodb"]["SequenceNumber"]
            print(
                f"stream poller {name}: {reason}; retry {batch.retries} of {len(batch.records)} records from {start}",
                flush=True,
            )
        return handed

    def _failure(self, ok: bool, result: Any, records: list[dict[str, Any]]) -> tuple[int, bool, str] | None:
        """None when the batch succeeded, else (index of the first record to retry,
        whether the whole batch failed, why)."""
        if not ok:
            text = result.get("errorMessage") if isinstance(result, dict) else result
            return 0, True, f"function error: {str(text)[:200]}"
        if not self.mapping.report_batch_item_failures:
            return None
        try:
            first = _first_reported_failure(result, records)
        except ValueError as exc:  # Lambda takes an answer it cannot read as a failed batch
            return 0, True, f"invalid ReportBatchItemFailures answer: {exc}"
        return None if first is None else (first, False, "batchItemFailures reported")

    def _expired(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The leading records older than MaximumRecordAgeInSeconds."""
        if self.mapping.max_record_age < 0:
            return []
        oldest = self.clock() - self.mapping.max_record_age
        expired = 0
        while expired < len(records) and records[expired]["dynamodb"]["ApproximateCreationDateTime"] < oldest:
            expired += 1
        return records[:expired]

    def _give_up(self, shard: _Shard, batch: _Batch, records: list[dict[str, Any]], condition: str) -> None:
        first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
        where = "sent to the on-failure destination" if self.destination_url else "discarded (no destination)"
        print(
            f"stream poller {self.mapping.function}: {condition}: records {first}..{last} of {shard.shard_id} {where}",
            flush=True,
        )
        if self.destination_url:
            message = self._invocation_record(shard, batch, records, condition)
            self.sqs.send_message(QueueUrl=self.destination_url, MessageBody=json.dumps(message))
            self.sent_to_destination += 1
        self.records_discarded += len(records)

    def _invocation_record(
        self, shard: _Shard, batch: _Batch, records: list[dict[str, Any]], condition: str
    ) -> dict[str, Any]:
        """What Lambda sends an on-failure destination for a stream batch: where the
        records are in the stream, not the records themselves."""
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if batch.function_error:
            response["functionError"] = batch.function_error
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(self.clock(), "milliseconds"),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["ApproximateCreationDateTime"]),
                "approximateArrivalOfLastRecord": _iso(last["ApproximateCreationDateTime"]),
                "batchSize": len(records),
                "streamArn": self.mapping.stream_arn,
            },
        }


def _first_reported_failure(result: Any, records: list[dict[str, Any]]) -> int | None:
    """The index of the earliest record a ReportBatchItemFailures answer names (None: the
    batch succeeded); ValueError for an answer Lambda would reject."""
    if result is None:
        return None
    if not isinstance(result, dict):
        raise ValueError(f"not an object: {result!r:.80}")
    failures = result.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        raise ValueError(f"batchItemFailures is not a list: {failures!r:.80}")
    positions = {record["dynamodb"]["SequenceNumber"]: i for i, record in enumerate(records)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            raise ValueError(f"itemIdentifier {identifier!r} is not a sequence number of the batch")
        indexes.append(positions[identifier])
    return min(indexes)


def _iso(seconds: float, timespec: str = "seconds") -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
