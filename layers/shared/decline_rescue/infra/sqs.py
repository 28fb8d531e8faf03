"""The order-updates queue (SQS): what webhooks and polls observed, for the single writer."""

from __future__ import annotations

import json
from typing import Any

from decline_rescue.infra.aws import client


def _attributes(order_id: str | None, source: str) -> dict[str, Any]:
    attributes = {"source": {"DataType": "String", "StringValue": source}}
    if order_id:
        attributes["orderId"] = {"DataType": "String", "StringValue": order_id[:256]}
    return attributes


def send(queue_url: str, messages: list[tuple[dict[str, Any], str | None, str]]) -> None:
    """Send (body, orderId, source) messages, ten per request; raises when any failed
    (SQS's batch answer lists the failures; re-sending one is harmless: the writer
    treats a repeated update as a duplicate)."""
    sqs = client("sqs")
    if len(messages) == 1:
        body, order_id, source = messages[0]
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(body, separators=(",", ":")),
            MessageAttributes=_attributes(order_id, source),
        )
        return
    for start in range(0, len(messages), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(body, separators=(",", ":")),
                "MessageAttributes": _attributes(order_id, source),
            }
            for i, (body, order_id, source) in enumerate(messages[start : start + 10])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise RuntimeError(f"{len(failed)} order update(s) could not be queued ({failed[0].get('Code')})")
