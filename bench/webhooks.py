"""Webhook ingestion (issue 5, item 4): signed webhooks through ``ingest_webhook`` versus
the least any receiver must do.

- **handler**: IngestWebhookFunction (the template's environment, moto server) given API
  Gateway events built from ``events/ingest_webhook/post_webhook.json``: each a fresh
  ``order.completed`` body, signed live (``devstack.emulators.flexfactor.sign_webhook``)
  with the harness's subscriber key, a fresh nonce and the current date, for the event's
  own Host header. It verifies, claims the nonce (one DynamoDB PutItem) and queues the
  update (one SQS SendMessage).
- **baseline**: the same HMAC-SHA512 checks written by hand here (content hash, the
  canonical string's signature, the body signature, constant-time comparisons, the
  date's skew) plus one SQS SendMessage of the same update to the same queue with a boto3
  client made once.

Calls alternate. Target: the handler's per-event time (median) <= 1.5x the baseline's.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bench.core import BenchEnv, Row, Stats, ratio_row
from bench.harness import WEBHOOK_KEY, Harness, event
from devstack.emulators.flexfactor import sign_webhook

FUNCTION = "IngestWebhookFunction"
BENCHMARK = "webhooks"
SAMPLE = "ingest_webhook/post_webhook.json"
LIMIT = 1.5
_AUTHORIZATION = re.compile(r"^HMAC-SHA512\s+SignedHeaders=([^&\s]+)&Signature=(\S+)$", re.IGNORECASE)


def webhook_body() -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    body = {
        "Event": "order.completed",
        "TimeStamp": stamp,
        "EventData": {},
        "ExternalOrderId": f"bench-{uuid.uuid4()}",  # (a UUID: never read as a card number)
        "OrderId": str(uuid.uuid4()),
        "ConfirmationId": str(uuid.uuid4()),
        "IsTestMode": True,
        "IsResent": False,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed_event(template: dict[str, Any]) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """The sample event with a fresh body, signed now (fresh nonce, date) for its Host."""
    ev = copy.deepcopy(template)
    body = webhook_body()
    host = ev["headers"]["Host"]
    headers = {k: v for k, v in ev["headers"].items() if not k.lower().startswith("x-fc-")}
    headers.update(sign_webhook(body, WEBHOOK_KEY, host))
    ev["headers"] = headers
    ev["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    ev["body"] = body.decode()
    ev["isBase64Encoded"] = False
    return ev, body, headers


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def check_by_hand(body: bytes, headers: dict[str, str], key: bytes, max_skew: float = 300) -> str:
    """The signature checks of PROVIDERS.md, by hand; the nonce."""
    h = {k.lower(): v for k, v in headers.items()}
    nonce, date, host = h["x-fc-nonce"], h["x-fc-date"], h["host"]
    content_hash = _b64(hashlib.sha512(body).digest())
    if not hmac.compare_digest(h["x-fc-content-sha512"].encode(), content_hash.encode()):
        raise ValueError("content hash")
    found = _AUTHORIZATION.match(h["x-fc-authorization"])
    if not found or found.group(1).lower() != "x-fc-nonce;x-fc-date;host;x-fc-content-sha512":
        raise ValueError("authorization")
    canonical = f"POST\n{nonce};{date};{host};{content_hash}".encode()
    if not hmac.compare_digest(
        found.group(2).encode(), _b64(hmac.new(key, canonical, hashlib.sha512).digest()).encode()
    ):
        raise ValueError("signature")
    if not hmac.compare_digest(
        h["x-fc-signature"].encode(), _b64(hmac.new(key, body, hashlib.sha512).digest()).encode()
    ):
        raise ValueError("body signature")
    if abs(datetime.now(UTC).timestamp() - parsedate_to_datetime(date).timestamp()) > max_skew:
        raise ValueError("date")
    return nonce


def _message(nonce: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "updateId": f"webhook:{nonce}",
        "source": "webhook",
        "orderId": payload["ExternalOrderId"],
        "orderSessionKey": payload["OrderId"],
        "status": "APPROVED",
        "providerStatus": payload["Event"],
        "observedAt": payload["TimeStamp"],
    }


def _empty(sqs, queue_url: str) -> None:
    """Receive and delete whatever the queue holds (PurgeQueue is allowed once a minute)."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages")
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def run(env: BenchEnv) -> list[Row]:
    n, warmup = env.n(300, 40), 10
    with Harness() as harness:
        assert harness.stack is not None
        module = harness.load(FUNCTION)
        queue_url = harness.function_env(FUNCTION)["ORDER_UPDATES_QUEUE_URL"]
        orders_table = harness.stack.physical_ids["OrdersTable"]
        sqs, ddb = harness.client("sqs"), harness.client("dynamodb")
        key = base64.b64decode(WEBHOOK_KEY)
        template = event(SAMPLE)

        def baseline(body: bytes, headers: dict[str, str], *, claim_nonce: bool) -> float:
            began = time.perf_counter()
            nonce = check_by_hand(body, headers, key)
            if claim_nonce:  # what refusing a replay adds: the handler's conditional PutItem
                ddb.put_item(
                    TableName=orders_table,
                    Item={"pk": {"S": f"NONCE#{nonce}"}, "sk": {"S": "NONCE"}, "expiresAt": {"N": "0"}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            payload = json.loads(body)
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=json.dumps(_message(nonce, payload), separators=(",", ":")),
                MessageAttributes={
                    "source": {"DataType": "String", "StringValue": "webhook"},
                    "orderId": {"DataType": "String", "StringValue": payload["ExternalOrderId"]},
                },
            )
            return time.perf_counter() - began

        samples: dict[str, list[float]] = {"handler": [], "baseline": [], "with nonce": []}
        for i in range(warmup + n):
            # moto's SendMessage slows down as a queue fills (~8 ms at 200 messages, ~25 ms at
            # 800); SQS's does not: the queue is emptied before each round, outside the timings
            _empty(sqs, queue_url)
            ev, _, _ = signed_event(template)
            context = harness.context(FUNCTION, 10)
            with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics (Lambda's stdout)
                began = time.perf_counter()
                result = module.lambda_handler(ev, context)
                elapsed = time.perf_counter() - began
            if result["statusCode"] != 200 or not json.loads(result["body"]).get("queued"):
                raise RuntimeError(f"the handler answered {result['statusCode']}: {result['body']}")
            _, body, headers = signed_event(template)
            plain = baseline(body, headers, claim_nonce=False)
            _, body, headers = signed_event(template)
            with_nonce = baseline(body, headers, claim_nonce=True)
            if i >= warmup:
                samples["handler"].append(elapsed)
                samples["baseline"].append(plain)
                samples["with nonce"].append(with_nonce)
    ours, floor, bound = Stats(samples["handler"]), Stats(samples["baseline"]), Stats(samples["with nonce"])
    return [
        ratio_row(
            BENCHMARK,
            "signed webhook ingested, per event (median)",
            ours.median,
            floor.median,
            LIMIT,
            note=f"handler {ours.describe()} = {1 / ours.median:.0f} webhooks/s; baseline (hand-written HMAC-SHA512 "
            f"checks + one SQS SendMessage) {floor.describe()} = {1 / floor.median:.0f} webhooks/s; the handler also "
            "claims the nonce (one conditional DynamoDB PutItem) so that a replay is refused: the same baseline "
            f"with that PutItem {bound.describe()}, handler / it = {ours.median / bound.median:.2f}x",
        )
    ]
