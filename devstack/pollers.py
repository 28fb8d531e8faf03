"""Local SQS event source mappings: what Lambda's poller does for an SQS trigger.

For each mapping in the template, a thread long-polls the queue, hands the function an
SQS event of up to the mapping's batch size, deletes the records that succeeded and, with
``ReportBatchItemFailures``, leaves the failed ones for redelivery (the whole batch when
the function itself fails). Redelivery waits the queue's visibility timeout on AWS; here
a failed record becomes visible again after ``retry_delay`` seconds so that local runs and
tests do not wait a minute. moto counts receives and moves a record to the DLQ after the
redrive policy's maxReceiveCount, as SQS does.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from devstack.provision import EventSourceMapping


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


class SqsPoller:
    def __init__(
        self,
        mapping: EventSourceMapping,
        sqs: Any,
        invoke: Callable[[str, dict[str, Any]], tuple[bool, Any]],
        *,
        retry_delay: int = 1,
        wait_seconds: int = 1,
    ) -> None:
        self.mapping = mapping
        self.sqs = sqs
        self.invoke = invoke
        self.retry_delay = retry_delay
        self.wait_seconds = wait_seconds
        self.queue_url = sqs.get_queue_url(QueueName=mapping.queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sqs-{mapping.function}")
        self.batches = 0

    def start(self) -> SqsPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, like Lambda's
                if not self._stop.is_set():
                    print(f"sqs poller {self.mapping.function}: {type(exc).__name__}: {exc}", flush=True)
                    self._stop.wait(1.0)

    def poll_once(self) -> int:
        """One receive and one invocation; the number of records handed over."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        ok, result = self.invoke(self.mapping.function, sqs_event(messages, self.mapping.queue_arn))
        self.batches += 1
        failed: set[str] = {m["MessageId"] for m in messages}
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
