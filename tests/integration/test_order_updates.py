"""ingest_webhook and apply_order_update through real API Gateway and SQS events, with the
template's environment, against moto server: signed webhooks in, order updates queued,
the single writer's decisions in the orders table, and one bus event per real change."""

from __future__ import annotations

import base64
import copy
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from decline_rescue.domain import clock, statuses
from decline_rescue.domain.carddata import find_pans
from decline_rescue.runtime import wiring
from tests.conftest import EVENTS, TEST_WEBHOOK_KEY, api_event, aws_client, invoke
from tests.integration.test_declines import EVALUATE, cit
from tests.integration.test_declines import post as post_decline
from tests.unit.test_lifecycle import http_date, signed_headers

INGEST = "IngestWebhookFunction"
APPLY = "ApplyOrderUpdateFunction"
WEBHOOK_SAMPLE = "ingest_webhook/post_webhook.json"
SQS_SAMPLE = json.loads((EVENTS / "apply_order_update" / "sqs_update.json").read_text())
PAN = "4111111111111111"
OTHER_KEY = base64.b64encode(b"not-the-subscriber-key-000000000").decode()


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str = "ord") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- queues ---------------------------------------------------------------------------------


@pytest.fixture
def sqs(moto_url):
    return aws_client(moto_url, "sqs")


def drain(sqs, url: str) -> list[dict]:
    """Every visible message of a queue, deleted as read (ten per call)."""
    out: list[dict] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return out
        out += messages
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )


@pytest.fixture
def queued(stack, sqs):
    """Reads (and removes) what is on the order-updates queue; empty at the test's start."""
    url = stack.physical_ids["OrderUpdatesQueue"]
    drain(sqs, url)
    return lambda: drain(sqs, url)


@pytest.fixture
def dead_letters(stack, sqs):
    url = stack.physical_ids["OrderUpdatesDeadLetterQueue"]
    drain(sqs, url)
    return lambda: drain(sqs, url)


@pytest.fixture
def bus_events(stack, moto_url, sqs, event_publisher):
    """Every event put on the stack's bus during the test (a rule -> an SQS queue), by the
    stream's publisher (drained before each read)."""
    events = aws_client(moto_url, "events")
    bus = stack.physical_ids["OrderEventBus"]
    name = f"test-events-{uuid.uuid4().hex[:10]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["decline-rescue"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    received: list[dict] = []

    def read(order_id: str) -> list[dict]:
        event_publisher.drain()
        received.extend(json.loads(m["Body"]) for m in drain(sqs, url))
        return [e for e in received if e["detail"].get("orderId") == order_id]

    yield read
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name=name, EventBusName=bus)
    sqs.delete_queue(QueueUrl=url)


# -- webhooks -------------------------------------------------------------------------------


def payload(event: str = "order.completed", **changes) -> dict:
    body = json.loads(api_event(WEBHOOK_SAMPLE)["body"])
    body.update(
        Event=event,
        TimeStamp=now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        ExternalOrderId=new_id(),
        OrderId=str(uuid.uuid4()),
        ConfirmationId=str(uuid.uuid4()),
    )
    body.update(changes)
    return body


def raw(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def webhook_event(
    body: bytes,
    *,
    key: str = TEST_WEBHOOK_KEY,
    date: datetime | None = None,
    nonce: str | None = None,
    sign_host: str | None = None,
    content_type: str | None = None,
    as_base64: bool = False,
) -> dict:
    """The sample API Gateway event with ``body``, signed now with the event's own Host."""
    event = api_event(WEBHOOK_SAMPLE)
    host = event["headers"]["Host"]
    headers = {k: v for k, v in event["headers"].items() if not k.lower().startswith("x-fc-")}
    headers.update(
        signed_headers(body, key_b64=key, host=sign_host or host, date=http_date(date or now()), nonce=nonce)
    )
    if content_type:
        headers["Content-Type"] = content_type
    set_headers(event, headers)
    event["body"] = base64.b64encode(body).decode() if as_base64 else body.decode()
    event["isBase64Encoded"] = as_base64
    return event


def set_headers(event: dict, headers: dict[str, str]) -> None:
    event["headers"] = dict(headers)
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}


def post(module, event: dict) -> tuple[int, dict]:
    result = invoke(module, event, name=INGEST)
    return result["statusCode"], json.loads(result["body"])


@pytest.fixture
def ingest(function_env, queued):
    module, _ = function_env(INGEST)
    return module


def test_valid_webhook_is_queued_once(ingest, queued):
    body = payload()
    event = webhook_event(raw(body), nonce="0123456789abcdef0123456789abcdef")
    assert post(ingest, event) == (200, {"received": True, "queued": True})
    messages = queued()
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"]) == {
        "updateId": "webhook:0123456789abcdef0123456789abcdef",
        "source": "webhook",
        "orderId": body["ExternalOrderId"],
        "orderSessionKey": body["OrderId"],
        "status": "APPROVED",
        "providerStatus": "order.completed",
        "observedAt": body["TimeStamp"],
    }
    attributes = messages[0]["MessageAttributes"]
    assert attributes["source"]["StringValue"] == "webhook"
    assert attributes["orderId"]["StringValue"] == body["ExternalOrderId"]


def tamper_body(event):
    event["body"] = event["body"].replace("order.completed", "order.cancelled")


def tamper_header(name: str, value: str):
    def tamper(event):
        set_headers(event, {**event["headers"], name: value})

    return tamper


def drop_header(name: str):
    def drop(event):
        set_headers(event, {k: v for k, v in event["headers"].items() if k.lower() != name})

    return drop


REJECTIONS = [
    ("tampered-body", {}, tamper_body, "content_hash_mismatch"),
    ("tampered-nonce", {}, tamper_header("x-fc-nonce", "ffffffffffffffffffffffffffffffff"), "bad_signature"),
    ("tampered-date", {}, tamper_header("x-fc-date", http_date(now() - timedelta(seconds=5))), "bad_signature"),
    ("tampered-host", {"sign_host": "somewhere-else.example.com"}, None, "bad_signature"),
    ("wrong-key", {"key": OTHER_KEY}, None, "bad_signature"),
    ("stale-past", {"age": timedelta(minutes=10)}, None, "stale_date"),
    ("stale-future", {"age": -timedelta(minutes=10)}, None, "stale_date"),
    ("body-signature", {}, tamper_header("x-fc-signature", base64.b64encode(b"x" * 64).decode()), "bad_body_signature"),
    *[
        (f"missing-{h}", {}, drop_header(h), "missing_header")
        for h in ("x-fc-nonce", "x-fc-date", "x-fc-content-sha512", "x-fc-authorization", "x-fc-signature", "host")
    ],
]


@pytest.mark.parametrize(("signing", "tamper", "why"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_rejected_webhooks_are_401_and_not_queued(ingest, queued, signing, tamper, why):
    signing = dict(signing)
    if "age" in signing:  # dated when the test runs, not when it was collected
        signing["date"] = now() - signing.pop("age")
    event = webhook_event(raw(payload()), **signing)
    if tamper:
        tamper(event)
    code, answer = post(ingest, event)
    assert code == 401, answer
    assert answer["error"]["code"] == "WEBHOOK_REJECTED" and answer["error"]["reason"] == why
    assert queued() == []


def test_a_delivery_signed_for_another_host_is_refused_whatever_host_it_claims(function_env, queued):
    # Given a delivery FlexFactor signed for another endpoint, replayed here with that Host
    module, _ = function_env(INGEST)
    event = webhook_event(raw(payload()), sign_host="merchant-b.example.com")
    set_headers(event, {**event["headers"], "Host": "merchant-b.example.com"})

    # When it arrives on this API (API Gateway's requestContext.domainName is ours)
    code, body = post(module, event)

    # Then it is refused: the signed host is not one this API is served on
    assert (code, body["error"]["reason"]) == (401, "host_not_served")
    assert queued() == []

    # unless that host is one of this API's (a custom domain in WebhookHosts)
    module, _ = function_env(INGEST, WEBHOOK_HOSTS="other.example.com, merchant-b.example.com")
    assert post(module, event)[0] == 200


def test_a_replayed_delivery_changes_nothing(ingest, queued):
    # Given a delivery that was queued
    event = webhook_event(raw(payload()))
    assert post(ingest, copy.deepcopy(event))[0] == 200

    # When the very same request comes again (a provider retry, or someone replaying it)
    code, answer = post(ingest, event)

    # Then it is answered 200 and not queued again
    assert (code, answer) == (200, {"received": True, "queued": True, "duplicate": True})
    assert len(queued()) == 1


def test_a_seen_nonce_with_another_body_is_401(ingest, queued):
    nonce = uuid.uuid4().hex
    assert post(ingest, webhook_event(raw(payload()), nonce=nonce))[0] == 200
    code, answer = post(ingest, webhook_event(raw(payload("order.cancelled")), nonce=nonce))
    assert code == 401 and answer["error"]["reason"] == "replayed_nonce"
    assert len(queued()) == 1


@pytest.mark.parametrize(
    "form", [{"content_type": "text/plain"}, {"content_type": "text/plain; charset=utf-8", "as_base64": True}]
)
def test_content_type_and_encoding_do_not_matter(ingest, queued, form):
    body = payload("order.capturerequired")
    assert post(ingest, webhook_event(raw(body), **form))[0] == 200
    (message,) = queued()
    update = json.loads(message["Body"])
    assert (update["orderId"], update["status"]) == (body["ExternalOrderId"], "CAPTUREREQUIRED")


def test_redelivery_with_a_fresh_nonce_is_queued_again(ingest, queued):
    body = payload()
    assert post(ingest, webhook_event(raw(body)))[0] == 200
    assert post(ingest, webhook_event(raw({**body, "IsResent": True})))[0] == 200
    updates = [json.loads(m["Body"]) for m in queued()]
    assert len(updates) == 2 and len({u["updateId"] for u in updates}) == 2
    assert {(u["orderId"], u["status"]) for u in updates} == {(body["ExternalOrderId"], "APPROVED")}


def test_signed_body_that_is_not_json_is_400(ingest, queued):
    code, answer = post(ingest, webhook_event(b"Event=order.completed&OrderId=1"))
    assert code == 400 and answer["error"]["details"][0]["field"] == "body"
    assert queued() == []


def test_payout_events_are_accepted_but_not_queued(ingest, queued):
    assert post(ingest, webhook_event(raw(payload("payout.created")))) == (200, {"received": True, "queued": False})
    assert queued() == []


def test_queue_failure_is_503_and_the_same_request_is_accepted_on_retry(function_env, queued, stack):
    event = webhook_event(raw(payload()))
    broken, _ = function_env(INGEST, ORDER_UPDATES_QUEUE_URL=stack.physical_ids["OrderUpdatesQueue"] + "-missing")
    code, answer = post(broken, copy.deepcopy(event))
    assert code == 503, answer
    fixed, _ = function_env(INGEST)
    assert post(fixed, event)[0] == 200, "the nonce of a request that was not queued is not a replay"
    assert len(queued()) == 1


class Killed(BaseException):
    """The invocation's process dies here (nothing in the function catches it)."""


@pytest.mark.parametrize("dies", ["after_keeping", "after_queueing"])
def test_a_delivery_is_applied_once_wherever_its_invocation_dies(function_env, queued, monkeypatch, dies):
    from decline_rescue.infra.orders_store import OrdersTable
    from decline_rescue.services import webhooks

    # Given a bound order, and a webhook that completes it
    ingest, _ = function_env(INGEST)
    order = make_order("SUBMITTED")
    body = payload(ExternalOrderId=order["orderId"], OrderId=order["orderSessionKey"])
    event = webhook_event(raw(body))

    # When its first invocation dies after keeping the delivery, or after queueing it
    def die(*args, **kwargs):
        raise Killed()

    with monkeypatch.context() as patched, pytest.raises(Killed):
        if dies == "after_keeping":
            patched.setattr(webhooks.writer, "enqueue", die)
        else:
            patched.setattr(OrdersTable, "mark_delivery", die)
        post(ingest, copy.deepcopy(event))
    # and FlexFactor retries the same request
    assert post(ingest, event)[0] == 200

    # Then the update is applied exactly once
    writer_module, _ = function_env(APPLY)
    for message in queued():
        apply(writer_module, message["Body"])
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 2)
    assert [k for k in kinds(history) if "#" not in k] == ["000001", "000002"]


def test_the_kept_delivery_says_what_came_and_what_became_of_it(function_env, queued):
    from decline_rescue.runtime import wiring

    # Given a bound order and a refund webhook carrying a card number in its EventData
    ingest, _ = function_env(INGEST)
    order = make_order("APPROVED")
    nonce = uuid.uuid4().hex
    body = payload(
        "order.refunded",
        ExternalOrderId=order["orderId"],
        OrderId=order["orderSessionKey"],
        EventData={"note": f"card {PAN}", "amount": 1999},
    )
    assert post(ingest, webhook_event(raw(body), nonce=nonce))[0] == 200

    # When the writer applies it
    writer_module, _ = function_env(APPLY)
    for message in queued():
        apply(writer_module, message["Body"])

    # Then the delivery is kept: headers, the body's hash, the body without the card number,
    # that it was verified and queued, the writer's outcome, and 30 days to live
    kept = wiring.orders().delivery(nonce)
    assert kept["headers"]["x-fc-nonce"] == nonce and kept["headers"]["host"]
    assert kept["bodySha512"] == __import__("hashlib").sha512(raw(body)).hexdigest()
    assert kept["verified"] is True and kept["delivery"] == "queued" and kept["result"] == "event"
    assert (kept["Event"], kept["ExternalOrderId"]) == ("order.refunded", order["orderId"])
    assert PAN not in find_pans(json.dumps(kept)) and "[REDACTED_PAN]" in kept["body"]
    days = (kept["expiresAt"] - now().timestamp()) / 86400
    assert 29.9 < days <= 30


@pytest.mark.parametrize(
    ("why", "changes"),
    [("no OrderId", {"OrderId": None}), ("an order not bound yet", {})],
)
def test_a_webhook_binds_no_order_and_only_makes_it_due(function_env, queued, why, changes):
    # Given an order FlexFactor has not answered for yet (no orderSessionKey), or a webhook without OrderId
    unbound = why == "an order not bound yet"
    ingest, _ = function_env(INGEST)
    order = make_order("RECEIVED" if unbound else "SUBMITTED", pending=True, bound=not unbound)
    body = payload(ExternalOrderId=order["orderId"], OrderId=str(uuid.uuid4()))
    body.update({k: v for k, v in changes.items() if v is not None})
    for k, v in changes.items():
        if v is None:
            body.pop(k)
    assert post(ingest, webhook_event(raw(body)))[0] == 200

    # When the writer applies it
    writer_module, _ = function_env(APPLY)
    for message in queued():
        apply(writer_module, message["Body"])

    # Then the order is unchanged and unbound, and due for a poll
    state, history = order_and_history(order["orderId"])
    assert state["version"] == 1 and state["status"] == order["status"]
    assert state.get("orderSessionKey") == order.get("orderSessionKey")
    assert kinds(history)[-1].endswith("#untrusted")
    assert state["nextPollAt"] <= clock.iso(now())


# -- the single writer ----------------------------------------------------------------------


@pytest.fixture
def writer(function_env, dead_letters):
    module, _ = function_env(APPLY)
    return module


def make_order(status: str, *, session_key: str | None = None, pending: bool | None = None, bound: bool = True) -> dict:
    """An order at version 1 in the orders table (as evaluate_decline writes one)."""
    from decline_rescue.domain.updates import Change

    order_id = new_id()
    pending = status in statuses.PENDING if pending is None else pending
    wiring.orders().commit(
        Change(order_id, None, status, 1, "api", clock.iso()),
        order={
            "amount": 1999,
            "currency": "USD",
            "isMIT": False,
            **({"orderSessionKey": session_key or str(uuid.uuid4())} if bound else {}),
        },
        next_poll_at=clock.iso(now() + timedelta(minutes=10)) if pending else None,
    )
    return wiring.orders().get_state(order_id)


def update(order: dict | None, status: str | None = None, **fields) -> dict:
    message = {"updateId": f"webhook:{uuid.uuid4().hex}", "source": "webhook", **fields}
    if order is not None:
        message.setdefault("orderId", order["orderId"])
        message.setdefault("orderSessionKey", order["orderSessionKey"])
    if status:
        message["status"] = status
    return message


def sqs_event(*bodies: dict | str) -> dict:
    event = copy.deepcopy(SQS_SAMPLE)
    template = event["Records"][0]
    event["Records"] = [
        {**copy.deepcopy(template), "messageId": str(uuid.uuid4()), "body": b if isinstance(b, str) else json.dumps(b)}
        for b in bodies
    ]
    return event


def deliver(module, event: dict) -> list[str]:
    """The message ids the handler reports as failed."""
    result = invoke(module, event, name=APPLY)
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def apply(module, *bodies: dict | str) -> None:
    assert deliver(module, sqs_event(*bodies)) == []


def order_and_history(order_id: str) -> tuple[dict, list[dict]]:
    return wiring.orders().get_with_history(order_id)


def kinds(history: list[dict]) -> list[str]:
    """HIST#<version> for applied changes, HIST#<version>#<kind> for recorded-only updates."""
    return ["#".join(h["sk"].split("#")[1:3]) for h in history]


def test_applied_change_then_terminal_leaves_the_pending_index(writer):
    order = make_order("RECEIVED", pending=False)
    assert "pendingShard" not in order and "nextPollAt" not in order
    before = clock.iso(now())
    apply(writer, update(order, "SUBMITTED", providerStatus="SUBMITTED"))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"], state["providerStatus"]) == ("SUBMITTED", 2, "SUBMITTED")
    assert state["pendingShard"].startswith("P") and state["nextPollAt"] > before, "pending: polled later"
    assert "eventPending" not in state
    assert history[-1]["sk"] == "HIST#000002"
    assert (history[-1]["previous"], history[-1]["status"], history[-1]["source"]) == (
        "RECEIVED",
        "SUBMITTED",
        "webhook",
    )

    apply(writer, update(order, "APPROVED"))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 3)
    assert "pendingShard" not in state and "nextPollAt" not in state, "terminal: off the pending index"
    assert kinds(history) == ["000001", "000002", "000003"]
    assert (history[-1]["previous"], history[-1]["status"]) == ("SUBMITTED", "APPROVED")


def test_duplicate_is_noted_not_applied(writer):
    order = make_order("SUBMITTED")
    apply(writer, update(order, "CHALLENGE"))
    apply(writer, update(order, "CHALLENGE"))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("CHALLENGE", 2)
    assert kinds(history) == ["000001", "000002", "000002#duplicate"]
    assert history[-1]["detail"]["status"] == "CHALLENGE" and history[-1]["detail"]["current"] == "CHALLENGE"


def test_stale_update_is_noted_not_applied(writer):
    order = make_order("CAPTUREREQUIRED")
    apply(writer, update(order, "CHALLENGE"), update(order, "SUBMITTED"))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("CAPTUREREQUIRED", 1)
    assert kinds(history) == ["000001", "000001#stale", "000001#stale"]
    assert state["nextPollAt"] == order["nextPollAt"], "a stale update leaves the schedule alone"


@pytest.mark.parametrize("terminal", ["APPROVED", "DECLINED", "CANCELLED", "EXPIRED", "NOT_SUBMITTED"])
def test_terminal_never_regresses(writer, terminal):
    order = make_order(terminal)
    others = [s for s in statuses.STATUSES if s != terminal]
    apply(writer, *[update(order, s) for s in others])
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == (terminal, 1)
    assert "pendingShard" not in state and "eventPending" not in state
    assert sorted(h["detail"]["status"] for h in history[1:]) == sorted(others)
    assert {h["kind"] for h in history[1:]} == {"stale"}


def test_untrusted_session_key_only_makes_the_order_due(writer):
    order = make_order("SUBMITTED")
    assert order["nextPollAt"] > clock.iso(now())
    apply(writer, update(order, "APPROVED", orderSessionKey=str(uuid.uuid4())))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("SUBMITTED", 1)
    assert state["nextPollAt"] <= clock.iso(now()), "due now: the poller asks FlexFactor"
    assert state["orderSessionKey"] == order["orderSessionKey"]
    assert kinds(history) == ["000001", "000001#untrusted"]


def test_check_only_makes_the_order_due(writer):
    order = make_order("CHALLENGE")
    apply(writer, update(order, checkOnly=True, providerStatus="challenge.passed"))
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("CHALLENGE", 1)
    assert state["nextPollAt"] <= clock.iso(now())
    assert kinds(history) == ["000001", "000001#poll-requested"]


def test_unmatched_order_is_recorded_and_the_message_succeeds(writer, stack, moto_url):
    missing = new_id("nobody")
    apply(writer, update(None, "APPROVED", orderId=missing))
    assert wiring.orders().get_state(missing) is None
    items = aws_client(moto_url, "dynamodb").query(
        TableName=stack.physical_ids["OrdersTable"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"UNMATCHED#{missing}"}},
    )["Items"]
    assert len(items) == 1
    assert items[0]["detail"]["M"]["status"]["S"] == "APPROVED"


def test_refund_is_recorded_once(writer, bus_events):
    order = make_order("APPROVED")
    refund = update(order, event="REFUNDED", eventKey="REFUNDED#2026-11-22T10:00:00Z", providerStatus="order.refunded")
    apply(writer, refund)
    apply(writer, {**refund, "updateId": f"webhook:{uuid.uuid4().hex}"})  # redelivered, fresh nonce
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 2)
    assert state["eventKeys"] == ["REFUNDED#2026-11-22T10:00:00Z"]
    assert kinds(history) == ["000001", "000002", "000002#duplicate"]
    assert (history[1]["event"], history[1]["status"], history[1]["previous"]) == ("REFUNDED", "APPROVED", "APPROVED")
    events = bus_events(order["orderId"])
    assert [(e["detail-type"], e["detail"]["version"]) for e in events] == [
        ("OrderStatusChanged", 1),
        ("OrderRefunded", 2),
    ]
    assert events[1]["detail"]["event"] == "REFUNDED"


def test_refund_seen_by_a_poll_then_by_its_webhook_is_recorded_once(writer, bus_events):
    """A lost order.completed: the poller finds the order Returned (6) and records APPROVED
    and the refund; the order.refunded webhook, resent later, is the same refund."""
    order = make_order("PROCESSING")
    poll = {"source": "poll", "orderId": order["orderId"], "providerStatus": "6 Returned", "observedAt": "x"}
    apply(
        writer,
        {**poll, "updateId": f"poll:{order['orderId']}:1:APPROVED", "status": "APPROVED"},
        {**poll, "updateId": f"poll:{order['orderId']}:1:REFUNDED", "event": "REFUNDED"},
    )
    state, _ = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 3)
    webhook = update(order, event="REFUNDED", eventKey="REFUNDED#2026-11-22T10:00:00Z", providerStatus="order.refunded")
    apply(writer, webhook)
    state, history = order_and_history(order["orderId"])
    assert [h.get("event") for h in history if h["sk"].count("#") == 1] == [None, None, "REFUNDED"]
    assert state["version"] == 3
    assert [e["detail-type"] for e in bus_events(order["orderId"])].count("OrderRefunded") == 1


def test_malformed_messages_go_to_the_dlq_at_once(writer, dead_letters):
    order = make_order("SUBMITTED")
    bad = {
        "not json": "this is not json",
        "array": "[1, 2]",
        "status": json.dumps(update(order, "SHIPPED")),
        "updateId": json.dumps({**update(order, "APPROVED"), "updateId": 12}),
        "nothing": json.dumps(update(order)),
        "card": f'{{"updateId": "u", "source": "webhook", "note": "{PAN}"}}',
    }
    event = sqs_event(*bad.values())
    assert deliver(writer, event) == []
    letters = [json.loads(m["Body"]) for m in dead_letters()]
    assert sorted(m["messageId"] for m in letters) == sorted(r["messageId"] for r in event["Records"])
    by_id = {m["messageId"]: m for m in letters}
    for (name, _), record in zip(bad.items(), event["Records"], strict=True):
        letter = by_id[record["messageId"]]
        assert letter["error"], name
        if name in ("status", "updateId"):
            assert name in letter["error"]
    assert PAN not in find_pans(json.dumps(letters))
    state, _ = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("SUBMITTED", 1)


def test_each_real_change_is_published_exactly_once(writer, bus_events):
    order = make_order("SUBMITTED")
    steps = ["CHALLENGE", "CHALLENGE", "CAPTUREREQUIRED", "CHALLENGE", "APPROVED", "APPROVED", "DECLINED"]
    for status in steps:
        apply(writer, update(order, status))
    events = [e for e in bus_events(order["orderId"]) if e["detail"]["version"] > 1]  # after its creation
    assert [e["detail-type"] for e in events] == ["OrderStatusChanged"] * 3
    details = [e["detail"] for e in events]
    assert [(d["previousStatus"], d["status"]) for d in details] == [
        ("SUBMITTED", "CHALLENGE"),
        ("CHALLENGE", "CAPTUREREQUIRED"),
        ("CAPTUREREQUIRED", "APPROVED"),
    ]
    assert [d["changeId"] for d in details] == [f"{order['orderId']}:{v}" for v in (2, 3, 4)]
    _, history = order_and_history(order["orderId"])
    applied = {h["sk"]: h for h in history if h["sk"].count("#") == 1}
    for d in details:
        assert (
            d["orderId"] == order["orderId"]
            and d["source"] == "webhook"
            and d["changeId"] == f"{order['orderId']}:{d['version']}"
        )
        assert d["time"] == applied[f"HIST#{d['version']:06d}"]["at"]
    assert all(e["source"] == "decline-rescue" for e in events)


def test_a_bus_outage_delays_events_and_loses_none(writer, bus_events, event_publisher, stack):
    # Given changes written while the bus refuses every event
    order = make_order("SUBMITTED")
    event_publisher.bus = stack.physical_ids["OrderEventBus"] + "-missing"
    apply(writer, update(order, "PROCESSING"))
    apply(writer, update(order, "APPROVED"))
    event_publisher.poller.poll_once()  # the publisher runs, and fails

    # When the bus is back
    event_publisher.bus = stack.physical_ids["OrderEventBus"]
    details = [e["detail"] for e in bus_events(order["orderId"])]

    # Then every change is published, in order, each changeId once
    assert [(d["previousStatus"], d["status"], d["changeId"]) for d in details] == [
        (None, "SUBMITTED", f"{order['orderId']}:1"),
        ("SUBMITTED", "PROCESSING", f"{order['orderId']}:2"),
        ("PROCESSING", "APPROVED", f"{order['orderId']}:3"),
    ]
    assert event_publisher.poller.retries >= 1


def test_a_publisher_that_dies_mid_batch_loses_no_event(writer, bus_events, event_publisher, monkeypatch):
    from decline_rescue.infra import events

    # Given five versions of an order on the stream
    order = make_order("SUBMITTED")
    for status in ("CHALLENGE", "PROCESSING", "CAPTUREREQUIRED", "APPROVED"):
        apply(writer, update(order, status))

    # When the publisher's process dies after putting half of its batch on the bus
    real_put, died = events.put, []

    def dying_put(bus, entries):
        if not died:
            died.append(len(entries))
            real_put(bus, entries[: len(entries) // 2])
            raise RuntimeError("Runtime.ExitError: the process was killed")  # what Lambda reports
        return real_put(bus, entries)

    monkeypatch.setattr(events, "put", dying_put)
    change_ids = [e["detail"]["changeId"] for e in bus_events(order["orderId"])]

    # Then every change is on the bus, the ones put before it died twice, under the same changeId
    assert died == [5]
    assert sorted(set(change_ids)) == [f"{order['orderId']}:{v}" for v in range(1, 6)]
    assert len(change_ids) == 5 + 2, change_ids


def test_events_that_cannot_be_published_go_to_the_failure_queue(writer, event_publisher, stack, sqs):
    # Given a change, and a bus that stays down through every retry
    failures = stack.physical_ids["OrderEventsFailureQueue"]
    drain(sqs, failures)
    order = make_order("SUBMITTED")
    event_publisher.bus = stack.physical_ids["OrderEventBus"] + "-missing"
    try:
        # When the publisher runs out of retries
        apply(writer, update(order, "APPROVED"))
        event_publisher.drain()
    finally:
        event_publisher.bus = stack.physical_ids["OrderEventBus"]

    # Then the failure queue names the stream records that were not published
    (letter,) = [json.loads(m["Body"]) for m in drain(sqs, failures)]
    info = letter["DDBStreamBatchInfo"]
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["batchSize"] >= 1 and info["startSequenceNumber"] <= info["endSequenceNumber"]


def test_every_version_of_a_cit_has_its_event_from_the_claim_to_the_capture(function_env, flexfactor_url, bus_events):
    # Given a customer-initiated decline that FlexFactor answers CAPTUREREQUIRED
    evaluate, _ = function_env(EVALUATE)
    body = cit(transactionType="AUTHORIZATION")
    code, answer = post_decline(evaluate, body)
    assert (code, answer["status"]) == (200, "CAPTUREREQUIRED")
    order_id = body["orderId"]

    # When the merchant captures it
    orders_api, _ = function_env("OrdersApiFunction")
    event = api_event("orders_api/post_capture.json", {"amount": body["transaction"]["amount"]})
    event["path"], event["pathParameters"] = f"/orders/{order_id}/capture", {"orderId": order_id}
    result = invoke(orders_api, event, name="OrdersApiFunction")
    assert result["statusCode"] == 200 and json.loads(result["body"])["status"] == "APPROVED", result["body"]

    # Then versions 1, 2 and 3 each have their event: the claim, the answer, the capture
    details = [e["detail"] for e in bus_events(order_id)]
    assert [(d["version"], d["previousStatus"], d["status"], d["source"]) for d in details] == [
        (1, None, "RECEIVED", "api"),
        (2, "RECEIVED", "CAPTUREREQUIRED", "api"),
        (3, "CAPTUREREQUIRED", "APPROVED", "capture"),
    ]


# -- end to end, and card data --------------------------------------------------------------


class _Stdout:
    """Whatever sys.stdout is when written to (as Lambda's stdout is the log stream)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def log_lines(capsys, monkeypatch):
    """What the functions' logger writes to stdout (its handler keeps the stream it found
    at import, before this test's capture began: it is pointed at the current one)."""
    from decline_rescue.runtime.observability import logger

    monkeypatch.setattr(logger.registered_handler, "stream", _Stdout())
    return lambda: capsys.readouterr().out


def as_records(messages: list[dict]) -> dict:
    """SQS messages as the Lambda event source mapping delivers them."""
    event = sqs_event(*[m["Body"] for m in messages])
    for record, message in zip(event["Records"], messages, strict=True):
        record["messageId"] = message["MessageId"]
    return event


def test_card_numbers_in_event_data_reach_no_queue_table_or_log(
    function_env, queued, dead_letters, bus_events, stack, moto_url, log_lines, caplog
):
    function_env(APPLY)
    order = make_order("APPROVED")
    pending = make_order("SUBMITTED")
    event_data = {
        "cardNumber": PAN,
        "note": f"refund to card {PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]}",
        "pan": int(PAN),
        "amount": 19.99,
    }
    ingest, _ = function_env(INGEST)
    sent = [
        payload(
            "order.refunded",
            ExternalOrderId=order["orderId"],
            OrderId=order["orderSessionKey"],
            EventData=event_data,
        ),
        payload(
            "order.completed",
            ExternalOrderId=pending["orderId"],
            OrderId=pending["orderSessionKey"],
            EventData=event_data,
        ),
        payload(
            "challenge.failed",
            ExternalOrderId=pending["orderId"],
            OrderId=pending["orderSessionKey"],
            EventData=event_data,
        ),
    ]
    for body in sent:
        assert post(ingest, webhook_event(raw(body)))[0] == 200
    messages = queued()
    assert len(messages) == 3
    assert PAN not in find_pans(json.dumps(messages))
    refund = next(json.loads(m["Body"]) for m in messages if "event" in json.loads(m["Body"]))
    assert refund["reason"]["eventData"]["amount"] == 19.99, "the rest of EventData is kept"

    writer, _ = function_env(APPLY)
    assert deliver(writer, as_records(messages)) == []
    state, history = order_and_history(order["orderId"])
    assert state["version"] == 2 and history[1]["event"] == "REFUNDED"
    assert order_and_history(pending["orderId"])[0]["status"] == "APPROVED"

    items = aws_client(moto_url, "dynamodb").scan(TableName=stack.physical_ids["OrdersTable"])["Items"]
    assert PAN not in find_pans(json.dumps(items))
    assert PAN not in find_pans(json.dumps(bus_events(order["orderId"])))
    logged = log_lines()
    assert "webhook accepted" in logged and "order update" in logged, "the log lines were captured"
    assert PAN not in find_pans(logged)
    assert PAN not in find_pans(caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str))


def test_a_refund_with_an_out_of_range_number_is_not_retried_forever(function_env, queued, writer):
    """1e999 is a valid JSON number (Python reads it as inf): a signed refund carrying one
    must be refused at the door or recorded, never queued as a message the writer can
    never apply (redelivered until the DLQ, the refund lost)."""
    order = make_order("APPROVED")
    ingest, _ = function_env(INGEST)
    body = raw(payload("order.refunded", ExternalOrderId=order["orderId"], OrderId=order["orderSessionKey"]))
    body = body.replace(b'"EventData":{}', b'"EventData":{"amount":1e999}')
    code, _ = post(ingest, webhook_event(body))
    if code == 400:
        assert queued() == []
        return
    assert code == 200
    module, _ = function_env(APPLY)
    assert deliver(module, as_records(queued())) == []
    state, history = order_and_history(order["orderId"])
    assert state["version"] == 2 and history[-1]["event"] == "REFUNDED"


def test_an_mit_whose_first_send_failed_has_its_queued_event_once(function_env, bus_events, stack):
    from tests.integration.test_declines import mit

    # Given an MIT accepted while the declines queue cannot be reached, then retried
    body = mit()
    broken, _ = function_env(EVALUATE, DECLINES_QUEUE_URL=stack.physical_ids["DeclinesQueue"] + "-missing")
    assert post_decline(broken, body)[0] == 503
    fixed, _ = function_env(EVALUATE)
    code, answer = post_decline(fixed, body)
    assert (code, answer["status"]) == (202, "QUEUED")

    # Then the order's QUEUED claim has exactly one event, whichever attempt sent the message
    details = [e["detail"] for e in bus_events(body["orderId"])]
    assert [(d["changeId"], d["status"]) for d in details] == [(f"{body['orderId']}:1", "QUEUED")]


def test_a_stream_record_that_is_not_a_change_is_reported_never_dropped(function_env, stack):
    """The publisher reads each record; one it cannot read (a history item without its
    change's fields) is reported failed by its sequence number, so Lambda retries it and
    then hands it to the on-failure queue: it is never silently skipped. The readable one
    beside it is published."""
    # Given a batch with a real change's record and a malformed one
    publisher, _ = function_env("PublishOrderEventsFunction")
    order_id = new_id()
    good = {
        "pk": {"S": f"ORDER#{order_id}"},
        "sk": {"S": "HIST#000001"},
        "changeId": {"S": f"{order_id}:1"},
        "orderId": {"S": order_id},
        "version": {"N": "1"},
        "status": {"S": "SUBMITTED"},
        "source": {"S": "api"},
        "at": {"S": clock.iso()},
    }
    bad = {"pk": {"S": "ORDER#x"}, "sk": {"S": "HIST#000002"}, "changeId": {"S": "x:2"}}
    records = [
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "100", "NewImage": good}},
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "101", "NewImage": bad}},
    ]

    # When the publisher gets it
    answer = invoke(publisher, {"Records": records}, name="PublishOrderEventsFunction")

    # Then only the malformed record is reported
    assert answer == {"batchItemFailures": [{"itemIdentifier": "101"}]}
