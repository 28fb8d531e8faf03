"""See what the stack publishes: a local-only rule on the order event bus copies every
event to an SQS queue, and a thread drains it into memory and the stack's log.

``GET /__local/events`` on the gateway lists them (``?orderId=`` filters); the demo reads
them to show each order's path. On AWS, attach your own rules to the bus instead.
"""

from __future__ import annotations

import json
import threading
from typing import Any

TAP_NAME = "local-events-tap"


class EventsTap:
    def __init__(self, events_client: Any, sqs_client: Any, bus_name: str, log=print) -> None:
        self.events_client = events_client
        self.sqs = sqs_client
        self.bus_name = bus_name
        self.log = log
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.queue_url = self.sqs.create_queue(QueueName=f"{bus_name}-{TAP_NAME}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events_client.put_rule(
            Name=TAP_NAME, EventBusName=bus_name, EventPattern=json.dumps({"source": [{"prefix": ""}]})
        )
        self.events_client.put_targets(Rule=TAP_NAME, EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
        self._thread = threading.Thread(target=self._run, daemon=True, name="events-tap")

    def start(self) -> EventsTap:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drain_once(self, wait_seconds: int = 0) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            detail = event.get("detail") or {}
            with self._lock:
                self.events.append(event)
            self.log(
                f"{event.get('detail-type')} {detail.get('orderId')} "
                f"{detail.get('previousStatus')} -> {detail.get('status')}"
                + (f" [{detail.get('event')}]" if detail.get("event") else "")
                + f" ({detail.get('source')})"
            )
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once(wait_seconds=1)
            except Exception as exc:  # noqa: BLE001 - keep tapping
                if not self._stop.is_set():
                    self.log(f"events tap: {type(exc).__name__}: {exc}")
                    self._stop.wait(1.0)

    def list(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self.events)
        if order_id:
            events = [e for e in events if (e.get("detail") or {}).get("orderId") == order_id]
        return events
