"""``dlq list|show|redrive QUEUE``: the dead-letter queues, redacted, and redrive.

- ``declines``: the declines queue's DLQ (declines that failed five times, or that the
  consumer refused as invalid and dead-lettered at once, with why);
- ``updates``: the order-updates queue's DLQ (updates for the single writer);
- ``events-failure``: the orders stream's on-failure destination (descriptions of batches
  whose events could not be published: a shard and its sequence numbers). It is no
  queue's DLQ, so there is nothing to redrive it to: the changes stay in each order's
  history.

Looking at a queue receives its messages (SQS has no peek) with a short visibility
timeout and makes them visible again at once, so a look never hides a message from a
redrive for long.

Redrive moves messages back to the queue whose DLQ it is:
- with SQS's own message move task (``StartMessageMoveTask``), when the whole DLQ is
  wanted (no ``--max``) and the endpoint has it (moto does not: the loop is used then);
- otherwise with a bounded loop: receive, send a copy to the source queue, and only then
  delete the DLQ's message. A message is never lost: if the loop dies between the send and
  the delete, the message shows again in the DLQ and a later redrive sends it again, and
  the consumers are idempotent (a decline on its key, an update in the writer). Messages
  a consumer dead-lettered as invalid (they carry a ``reason`` attribute) are left where
  they are by the loop: sending them back cannot help (``--include-invalid`` moves them).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.ops.render import OpsError, Out, pretty, short
from devstack.ops.target import Target


@dataclass(frozen=True)
class Queue:
    name: str
    dlq: str  # logical id
    source: str | None  # logical id of the queue whose DLQ it is
    holds: str


QUEUES = {
    "declines": Queue(
        "declines", "DeclinesDeadLetterQueue", "DeclinesQueue", "declines that failed five times or were invalid"
    ),
    "updates": Queue(
        "updates",
        "OrderUpdatesDeadLetterQueue",
        "OrderUpdatesQueue",
        "order updates (webhooks, polls) that failed five times or were malformed",
    ),
    "events-failure": Queue(
        "events-failure", "OrderEventsFailureQueue", None, "orders-stream batches whose events were not published"
    ),
}
LOOK_VISIBILITY = 30  # seconds a looked-at message is hidden at most (made visible at once after)
MOVE_VISIBILITY = 120  # seconds a message being moved is hidden (send, then delete, within it)
SAFETY_MAX = 10_000  # the loop's bound when --max is not given
# an endpoint without the message move API (an emulator) answers these
UNSUPPORTED = frozenset({"InvalidAction", "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"})


def _queue(args: argparse.Namespace) -> Queue:
    return QUEUES[args.queue]


def _receive(sqs: Any, url: str, count: int, visibility: int, wait: int = 0) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max(1, min(10, count)),
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def _release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again now."""
    for start in range(0, len(messages), 10):
        batch = messages[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(batch)
            ],
        )


def peek(sqs: Any, url: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages, each once, left visible again."""
    seen: dict[str, dict[str, Any]] = {}
    received: list[dict[str, Any]] = []
    empty = 0
    try:
        while len(seen) < limit and empty < 2:
            batch = _receive(sqs, url, limit - len(seen), LOOK_VISIBILITY)
            received += batch
            fresh = [m for m in batch if m["MessageId"] not in seen]
            empty = empty + 1 if not fresh else 0
            for message in fresh:
                seen[message["MessageId"]] = message
    finally:
        if received:
            _release(sqs, url, received)
    return list(seen.values())


def view(message: dict[str, Any]) -> dict[str, Any]:
    """A message as shown: its ids, times, attributes and body (parsed when JSON)."""
    system = message.get("Attributes") or {}
    sent = system.get("SentTimestamp")
    try:
        body: Any = json.loads(message.get("Body") or "")
    except ValueError:
        body = message.get("Body")
    return {
        "messageId": message["MessageId"],
        "sentAt": datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        if sent
        else None,
        "receives": int(system.get("ApproximateReceiveCount") or 0),
        "attributes": {
            name: value.get("StringValue", value.get("BinaryValue"))
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "body": body,
    }


def summary(queue: Queue, shown: dict[str, Any]) -> tuple[str | None, str]:
    """(the order it concerns, what it is) for one line."""
    body, attrs = shown["body"], shown["attributes"]
    if not isinstance(body, dict):
        return attrs.get("orderId"), short(body, 70)
    if queue.name == "events-failure":
        batch = body.get("DDBStreamBatchInfo") or {}
        condition = (body.get("requestContext") or {}).get("condition")
        return None, (
            f"stream batch: {batch.get('batchSize')} records, sequence {batch.get('startSequenceNumber')}"
            f"..{batch.get('endSequenceNumber')} ({condition or 'failed'})"
        )
    if "rejected" in body and "error" in body:  # dead-lettered at once by its consumer
        error = body.get("error")
        why = error.get("code") or error.get("message") if isinstance(error, dict) else error
        rejected = body.get("rejected")
        order = attrs.get("orderId") or (rejected.get("orderId") if isinstance(rejected, dict) else None)
        return order, f"invalid: {short(why, 60)}"
    order = attrs.get("orderId") or body.get("orderId")
    if queue.name == "updates":
        what = body.get("status") or body.get("event") or ("check" if body.get("checkOnly") else "?")
        return order, f"{body.get('source')} update: {what}"
    transaction = body.get("transaction") if isinstance(body.get("transaction"), dict) else {}
    amount = f" {transaction.get('amount')} {transaction.get('currency')}" if transaction else ""
    return order, f"decline{amount}"


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)), int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def list_messages(target: Target, args: argparse.Namespace, out: Out) -> int:
    queue = _queue(args)
    sqs = target.client("sqs")
    url = target.resource(queue.dlq)
    visible, in_flight = _depth(sqs, url)
    shown = [view(m) for m in peek(sqs, url, args.max)]
    shown.sort(key=lambda s: s["sentAt"] or "")
    if args.json:
        out.json({"queue": queue.name, "url": url, "visible": visible, "inFlight": in_flight, "messages": shown})
        return 0
    out.line(f"{queue.name} ({queue.holds}): {visible} visible, {in_flight} in flight")
    out.line(f"  {url}")
    if shown:
        rows = []
        for s in shown:
            order, what = summary(queue, s)
            rows.append([s["sentAt"], s["messageId"], s["receives"], order, what])
        out.table(["sent", "messageId", "receives", "orderId", "what"], rows, indent="  ")
        if visible > len(shown):
            out.line(f"  (the first {len(shown)}: --max shows more)")
    return 0


def show(target: Target, args: argparse.Namespace, out: Out) -> int:
    queue = _queue(args)
    sqs = target.client("sqs")
    url = target.resource(queue.dlq)
    messages = peek(sqs, url, args.scan)
    if args.message_id:
        messages = [m for m in messages if m["MessageId"] == args.message_id]
        if not messages:
            raise OpsError(
                f"no message {args.message_id} in the {queue.name} DLQ (looked at {args.scan}; `dlq list` lists them)"
            )
    elif not messages:
        raise OpsError(f"the {queue.name} DLQ is empty")
    shown = view(messages[0])
    if args.json:
        out.json({"queue": queue.name, **shown})
        return 0
    order, what = summary(queue, shown)
    out.line(f"{queue.name} DLQ message {shown['messageId']}: {what}")
    out.line(f"  sent {shown['sentAt']}, received {shown['receives']} times, order {order or '-'}")
    for name, value in sorted(shown["attributes"].items()):
        out.line(f"  attribute {name}: {value}")
    out.line("  body:")
    for line in pretty(shown["body"]):
        out.line("    " + line)
    return 0


# -- redrive --------------------------------------------------------------------------


class MoveTaskUnavailable(Exception):
    pass


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def move_task(sqs: Any, mover: Any, dlq_url: str, source_url: str, *, wait: float) -> dict[str, Any]:
    """SQS's own redrive: StartMessageMoveTask from the DLQ to its source queue, followed
    until it ends (or ``wait`` seconds: it goes on in SQS). ``mover``: a client that does
    not retry (an endpoint without the API answers at once); MoveTaskUnavailable then."""
    from botocore.exceptions import ClientError

    source_arn, destination_arn = _arn(sqs, dlq_url), _arn(sqs, source_url)
    try:
        handle = mover.start_message_move_task(SourceArn=source_arn, DestinationArn=destination_arn)["TaskHandle"]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in UNSUPPORTED or code.isdigit():  # (a bare HTTP status: the endpoint has no such API)
            raise MoveTaskUnavailable(code) from None
        raise
    deadline = time.monotonic() + wait
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        status = str(task.get("Status") or "RUNNING")
        result = {
            "method": "move-task",
            "taskHandle": handle,
            "status": status,
            "moved": int(task.get("ApproximateNumberOfMessagesMoved") or 0),
            "toMove": task.get("ApproximateNumberOfMessagesToMove"),
        }
        if task.get("FailureReason"):
            result["failure"] = task["FailureReason"]
        if status in ("COMPLETED", "CANCELLED", "FAILED") or time.monotonic() >= deadline:
            return result
        time.sleep(1.0)


def move_loop(sqs: Any, dlq_url: str, source_url: str, *, limit: int, include_invalid: bool = False) -> dict[str, Any]:
    """Receive -> send a copy to the source queue -> delete, at most ``limit`` messages, of
    those in the DLQ when it started: one sent to the DLQ since (a copy that failed again,
    a message a consumer refused meanwhile) is left for a later redrive, so a run ends."""
    moved, left_invalid, left_new, unsent, undeleted = 0, [], [], 0, 0
    started_ms = int(time.time() * 1000)
    seen: set[str] = set()
    empty = 0
    while moved < limit and empty < 2:
        batch = _receive(sqs, dlq_url, limit - moved, MOVE_VISIBILITY, wait=1 if empty else 0)
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            empty += 1
            if batch:
                _release(sqs, dlq_url, batch)
            continue
        empty = 0
        for message in fresh:
            seen.add(message["MessageId"])
            attributes = dict(message.get("MessageAttributes") or {})
            if int((message.get("Attributes") or {}).get("SentTimestamp") or 0) >= started_ms:
                left_new.append(message)
                continue
            if "reason" in attributes and not include_invalid:
                left_invalid.append(message)  # kept hidden until the loop ends, then made visible
                continue
            if len(attributes) < 10:
                attributes["redriveOf"] = {"DataType": "String", "StringValue": message["MessageId"]}
            try:
                sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"], MessageAttributes=attributes)
            except Exception:  # noqa: BLE001 - not sent: left in the DLQ (visible again after the timeout)
                unsent += 1
                continue
            try:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception:  # noqa: BLE001 - sent, not deleted: shows again; the consumer is idempotent
                undeleted += 1
            moved += 1
            if moved >= limit:
                break
    if left_invalid or left_new:
        _release(sqs, dlq_url, left_invalid + left_new)
    return {
        "method": "loop",
        "status": "COMPLETED",
        "moved": moved,
        "leftInvalid": len(left_invalid),
        "leftArrivedDuring": len(left_new),
        "notSent": unsent,
        "sentNotDeleted": undeleted,
    }


def redrive(target: Target, args: argparse.Namespace, out: Out) -> int:
    from botocore.config import Config

    queue = _queue(args)
    if queue.source is None:
        raise OpsError(
            f"{queue.name} has no source queue to redrive to: it holds descriptions of orders-stream batches "
            "whose events were not published (the changes themselves stay in each order's history); "
            f"`decline-rescue dlq show {queue.name}` names the shard and sequence numbers"
        )
    sqs = target.client("sqs")
    dlq_url, source_url = target.resource(queue.dlq), target.resource(queue.source)
    method = args.method
    if method == "auto":
        method = "loop" if args.max is not None or args.include_invalid else "move-task"
    if args.max is not None and method == "move-task":
        raise OpsError("--max bounds the loop: SQS's move task moves every message (--method loop)", code=2)
    notes = []
    result: dict[str, Any] | None = None
    if method == "move-task":
        mover = target.session().client(
            "sqs", endpoint_url=target.endpoint_url, config=Config(retries={"max_attempts": 1, "mode": "standard"})
        )
        try:
            result = move_task(sqs, mover, dlq_url, source_url, wait=args.wait)
        except MoveTaskUnavailable as exc:
            if args.method == "move-task":
                raise OpsError(f"SQS's message move task is not available at this endpoint ({exc})") from None
            notes.append(f"SQS's message move task is not available here ({exc}): moved with the bounded loop")
    if result is None:
        result = move_loop(
            sqs,
            dlq_url,
            source_url,
            limit=args.max if args.max is not None else SAFETY_MAX,
            include_invalid=args.include_invalid,
        )
    visible, in_flight = _depth(sqs, dlq_url)
    result.update(queue=queue.name, to=queue.source, leftInDlq=visible, inFlightInDlq=in_flight, notes=notes)
    if args.json:
        out.json(result)
        return 0
    for note in notes:
        out.line(note)
    out.line(f"{queue.name}: {result['moved']} message(s) moved back to {queue.source} ({result['method']})")
    if result.get("status") != "COMPLETED":
        out.line(f"  the move task is {result['status']}" + (f": {result['failure']}" if result.get("failure") else ""))
    if result.get("leftInvalid"):
        out.line(
            f"  {result['leftInvalid']} left in the DLQ: dead-lettered as invalid by the consumer "
            "(`dlq show` says why; --include-invalid moves them too)"
        )
    if result.get("leftArrivedDuring"):
        out.line(f"  {result['leftArrivedDuring']} sent to the DLQ while this ran: left for a later redrive")
    if result.get("notSent"):
        out.line(f"  {result['notSent']} could not be sent: still in the DLQ")
    if result.get("sentNotDeleted"):
        out.line(f"  {result['sentNotDeleted']} sent but not deleted from the DLQ: a later redrive sends them again")
    out.line(f"  left in the DLQ: {visible} visible, {in_flight} in flight")
    return 0
