"""SQS: one sender for every queue (declines, order updates) and one dead-letter sender."""

from __future__ import annotations

import json
from typing import Any

from decline_rescue.infra.aws import client


def attributes(**values: str | None) -> dict[str, Any]:
    """String message attributes from keyword arguments (None left out, 256 characters at most)."""
    return {name: {"DataType": "String", "StringValue": str(value)[:256]} for name, value in values.items() if value}


def send(queue_url: str, messages: list[tuple[Any, dict[str, Any]]], *, delay_seconds: int = 0) -> None:
    """Send (body, attributes) messages, ten per request (a body that is not a string is
    sent as compact JSON), each ``delay_seconds`` later (0-900); raises when any failed
    (SQS's batch answer lists the failures; every consumer here is idempotent, so
    re-sending the whole call is harmless)."""
    sqs = client("sqs")
    delay = {"DelaySeconds": delay_seconds} if delay_seconds else {}

    def text(body: Any) -> str:
        return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))

    if len(messages) == 1:
        body, attrs = messages[0]
        sqs.send_message(QueueUrl=queue_url, MessageBody=text(body), MessageAttributes=attrs, **delay)
        return
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(i), "MessageBody": text(body), "MessageAttributes": attrs, **delay}
            for i, (body, attrs) in enumerate(messages[start : start + 10])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise RuntimeError(f"{len(failed)} message(s) could not be queued ({failed[0].get('Code')})")


def dead_letter(queue_url: str, rejected: Any, error: Any, message_id: str, *, reason: str = "invalid") -> None:
    """A message that can never succeed, put on its dead-letter queue at once with why.
    ``rejected`` and ``error`` must already be redacted."""
    send(
        queue_url,
        [
            (
                {"rejected": rejected, "error": error, "messageId": message_id},
                attributes(reason=reason, sourceMessageId=message_id or "unknown"),
            )
        ],
    )
