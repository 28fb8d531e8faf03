"""The order state machine, the provider vocabularies, the queue message and the webhook
signature check, each against expectations written out here from PROVIDERS.md and the
lifecycle's rules (not derived from the code under test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from decline_rescue.domain import statuses
from decline_rescue.domain.errors import InvalidRequest
from decline_rescue.domain.updates import OrderUpdate
from decline_rescue.providers.flexfactor import vocabulary
from decline_rescue.services import webhooks

EVENTS = Path(__file__).resolve().parents[2] / "events"

# -- a webhook signer written from PROVIDERS.md section 2 "Webhooks" ------------------------

SIGNED_HEADERS = "x-fc-nonce;x-fc-date;host;x-fc-content-sha512"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def http_date(moment: datetime) -> str:
    """RFC 1123, as ``x-fc-date`` carries it."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def signed_headers(body: bytes, *, key_b64: str, host: str, date: str, nonce: str | None = None) -> dict[str, str]:
    """The five x-fc-* headers FlexFactor sends for ``body`` (lower-case names)."""
    key = base64.b64decode(key_b64)
    nonce = nonce or uuid.uuid4().hex
    content = b64(hashlib.sha512(body).digest())
    canonical = "POST\n" + nonce + ";" + date + ";" + host + ";" + content
    signature = b64(hmac.new(key, canonical.encode("utf-8"), hashlib.sha512).digest())
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content,
        "x-fc-authorization": f"HMAC-SHA512 SignedHeaders={SIGNED_HEADERS}&Signature={signature}",
        "x-fc-signature": b64(hmac.new(key, body, hashlib.sha512).digest()),
    }


# -- the state machine ---------------------------------------------------------------------

R, Q = "RECEIVED", "QUEUED"
SUB, CH, PROC, CAP = "SUBMITTED", "CHALLENGE", "PROCESSING", "CAPTUREREQUIRED"
APP, DEC, CAN, EXP, NOT = "APPROVED", "DECLINED", "CANCELLED", "EXPIRED", "NOT_SUBMITTED"

# every status and where it may go (forward only; intake -> anything but intake; pending ->
# a later pending status or a terminal one other than NOT_SUBMITTED; terminal -> nothing)
ALLOWED = {
    R: {SUB, CH, PROC, CAP, APP, DEC, CAN, EXP, NOT},
    Q: {SUB, CH, PROC, CAP, APP, DEC, CAN, EXP, NOT},
    SUB: {CH, PROC, CAP, APP, DEC, CAN, EXP},
    CH: {PROC, CAP, APP, DEC, CAN, EXP},
    PROC: {CAP, APP, DEC, CAN, EXP},
    CAP: {APP, DEC, CAN, EXP},
    APP: set(),
    DEC: set(),
    CAN: set(),
    EXP: set(),
    NOT: set(),
}
PAIRS = [(current, new) for current in ALLOWED for new in ALLOWED]


def test_the_table_covers_every_status():
    assert set(statuses.STATUSES) == set(ALLOWED)
    assert len(statuses.STATUSES) == len(ALLOWED)
    assert {s for s in ALLOWED if statuses.is_terminal(s)} == {APP, DEC, CAN, EXP, NOT}


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{c}->{n}" for c, n in PAIRS])
def test_allowed(current, new):
    assert statuses.allowed(current, new) is (new in ALLOWED[current])


@pytest.mark.parametrize(
    ("current", "new"), [("BOGUS", SUB), (SUB, "BOGUS"), ("", APP), (SUB, ""), ("approved", CAN), (SUB, "approved")]
)
def test_unknown_statuses_are_never_allowed(current, new):
    assert statuses.allowed(current, new) is False


# -- GET /v1/orders: the enum and the status names -------------------------------------------

# 0 Draft, 1 Onhold, 2 Cancelled, 3 Problem, 4 Processing, 5 Capturerequired, 6 Returned, 7 Completed
ENUM = {
    0: (SUB, None),
    1: (PROC, None),
    2: (CAN, None),
    3: (PROC, None),
    4: (PROC, None),
    5: (CAP, None),
    6: (APP, "REFUNDED"),
    7: (APP, None),
}


@pytest.mark.parametrize(("value", "expected"), ENUM.items(), ids=[f"enum-{v}" for v in ENUM])
def test_order_enum(value, expected):
    assert vocabulary.from_provider_order({"id": "x", "status": value}) == expected
    assert vocabulary.from_provider_order({"id": "x", "status": str(value)}) == expected  # a digit string


NAMES = [
    ("Draft", (SUB, None)),
    ("Submitted", (SUB, None)),
    ("Challenge", (CH, None)),
    ("Onhold", (PROC, None)),
    ("On hold", (PROC, None)),
    ("Problem", (PROC, None)),
    ("Processing", (PROC, None)),
    ("Capture required", (CAP, None)),
    ("Capturerequired", (CAP, None)),
    ("CAPTURE REQUIRED", (CAP, None)),
    ("capture_required", (CAP, None)),
    ("CAPTUREREQUIRED", (CAP, None)),
    ("Completed", (APP, None)),
    ("Approved", (APP, None)),
    ("APPROVED", (APP, None)),
    ("Returned", (APP, "REFUNDED")),
    ("Refunded", (APP, "REFUNDED")),
    ("Cancelled", (CAN, None)),
    ("Canceled", (CAN, None)),
    ("Declined", (DEC, None)),
    ("Expired", (EXP, None)),
    (" expired ", (EXP, None)),
    ("EXPIRED", (EXP, None)),
]


@pytest.mark.parametrize(("name", "expected"), NAMES, ids=[n for n, _ in NAMES])
def test_status_names(name, expected):
    # the name wins over the enum (the enum cannot say Expired or Declined)
    assert vocabulary.from_provider_order({"status": 4, "statusName": name}) == expected
    assert vocabulary.from_provider_order({"statusName": name}) == expected
    assert vocabulary.from_provider_order({"status": name}) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"status": 7, "statusName": "Something new"}, (APP, None)),  # an unknown name falls back to the enum
        ({"status": 8}, (None, None)),
        ({"status": -1}, (None, None)),
        ({"status": True}, (None, None)),
        ({"status": 4.5}, (None, None)),
        ({"status": "Sideways"}, (None, None)),
        ({"status": None, "statusName": None}, (None, None)),
        ({}, (None, None)),
    ],
    ids=["unknown-name-known-enum", "8", "-1", "bool", "float", "unknown-name", "nulls", "empty"],
)
def test_unknown_provider_values(order, expected):
    assert vocabulary.from_provider_order(order) == expected


# -- webhook events -> updates ---------------------------------------------------------------


def webhook_body(event: str, **changes) -> dict:
    return {
        "Event": event,
        "TimeStamp": "2026-11-22T10:00:00Z",
        "EventData": {},
        "ExternalOrderId": "ord-1",
        "OrderId": "3f2b8a4e-1c0d-4e5f-9a6b-7c8d9e0f1a2b",
        "ConfirmationId": "b1c2d3e4",
        "IsTestMode": True,
        "IsResent": False,
        **changes,
    }


WEBHOOK_EVENTS = [
    ("order.completed", APP, None, False),
    ("order.cancelled", CAN, None, False),
    ("order.expired", EXP, None, False),
    ("order.capturerequired", CAP, None, False),
    ("challenge.presented", CH, None, False),
    ("order.refunded", None, "REFUNDED", False),
    ("payment.chargeback.received", None, "CHARGEBACK", False),
    ("challenge.attempted", None, None, True),
    ("challenge.passed", None, None, True),
    ("challenge.failed", None, None, True),
    ("Order.Completed", APP, None, False),
    ("ORDER.REFUNDED", None, "REFUNDED", False),
    ("order.somethingnew", None, None, True),
]


@pytest.mark.parametrize(("event", "status", "kind", "check_only"), WEBHOOK_EVENTS, ids=[e[0] for e in WEBHOOK_EVENTS])
def test_webhook_events(event, status, kind, check_only):
    update = webhooks.to_update(webhook_body(event), "nonce0001")
    assert (update.status, update.event, update.checkOnly) == (status, kind, check_only)
    assert update.updateId == "webhook:nonce0001" and update.source == "webhook"
    assert update.orderId == "ord-1" and update.orderSessionKey == "3f2b8a4e-1c0d-4e5f-9a6b-7c8d9e0f1a2b"
    assert update.providerStatus == event and update.observedAt == "2026-11-22T10:00:00Z"
    if kind:
        assert update.eventKey == f"{kind}#2026-11-22T10:00:00Z"  # the same refund redelivered: the same key


@pytest.mark.parametrize("event", ["payout.created", "payout.updated", "Payout.Created"])
def test_payout_events_concern_no_order(event):
    assert webhooks.to_update(webhook_body(event), "nonce0001") is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([1, 2], "body"),
        ("order.completed", "body"),
        (webhook_body("order.completed", Event=None), "Event"),
        (webhook_body("order.completed", Event="  "), "Event"),
        (webhook_body("order.completed", Event={"x": 1}), "Event"),
        (webhook_body("order.completed", ExternalOrderId=["a"]), "ExternalOrderId"),
        (webhook_body("order.completed", OrderId="x" * 201), "OrderId"),
    ],
    ids=["array", "string", "no-event", "blank-event", "object-event", "list-order-id", "long-session-key"],
)
def test_webhook_body_problems_name_the_field(payload, field):
    with pytest.raises(InvalidRequest) as caught:
        webhooks.to_update(payload, "nonce0001")
    assert caught.value.problems[0].field == field


# -- the queue message -----------------------------------------------------------------------

VALID = {"updateId": "poll:ord-1:1:APPROVED", "source": "poll", "orderId": "ord-1", "status": APP}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"updateId": ""}, "updateId"),
        ({"updateId": 5}, "updateId"),
        ({"updateId": None}, "updateId"),
        ({"source": None}, "source"),
        ({"source": "email"}, "source"),
        ({"source": 3}, "source"),
        ({"orderId": 7}, "orderId"),
        ({"orderId": "x" * 301}, "orderId"),
        ({"orderSessionKey": ["k"]}, "orderSessionKey"),
        ({"status": "approved"}, "status"),
        ({"status": "SHIPPED"}, "status"),
        ({"status": None, "event": "REFUND"}, "event"),
        ({"eventKey": {"a": 1}}, "eventKey"),
        ({"checkOnly": "yes"}, "checkOnly"),
        ({"checkOnly": 1}, "checkOnly"),
        ({"reason": "because"}, "reason"),
        ({"reason": ["a"]}, "reason"),
        ({"status": None}, "status"),
        ({"providerStatus": {"status": 7}}, "providerStatus"),
        ({"observedAt": 1795341600}, "observedAt"),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else v,
)
def test_from_message_errors_name_the_field(changes, field):
    raw = {k: v for k, v in {**VALID, **changes}.items() if v is not None}
    with pytest.raises(ValueError, match=field):
        OrderUpdate.from_message(raw)


@pytest.mark.parametrize("raw", [None, [], "x", 5, True])
def test_from_message_needs_an_object(raw):
    with pytest.raises(ValueError, match="object"):
        OrderUpdate.from_message(raw)


@pytest.mark.parametrize(
    "update",
    [
        OrderUpdate(updateId="u1", source="poll", orderId="ord-1", status=APP),
        OrderUpdate(
            updateId="webhook:abc",
            source="webhook",
            orderId="ord-1",
            orderSessionKey="k-1",
            event="REFUNDED",
            eventKey="REFUNDED#2026-11-22T10:00:00Z",
            providerStatus="order.refunded",
            observedAt="2026-11-22T10:00:00Z",
            reason={"eventData": {"amount": 12.5, "items": [1, "two"]}},
        ),
        OrderUpdate(updateId="webhook:def", source="webhook", orderId="ord-2", checkOnly=True),
    ],
    ids=["status", "event", "check-only"],
)
def test_to_message_round_trip(update):
    message = json.loads(json.dumps(update.to_message()))
    assert OrderUpdate.from_message(message) == update
    assert None not in message.values()
    assert ("checkOnly" in message) is update.checkOnly


def test_from_message_ignores_unknown_fields():
    assert OrderUpdate.from_message({**VALID, "future": 1}) == OrderUpdate.from_message(VALID)


def test_the_sample_queue_event_is_a_valid_message():
    event = json.loads((EVENTS / "apply_order_update" / "sqs_update.json").read_text())
    update = OrderUpdate.from_message(json.loads(event["Records"][0]["body"]))
    assert (update.source, update.status) == ("webhook", APP)


# -- webhook signatures ----------------------------------------------------------------------

KEY = b64(b"unit-test-subscriber-key-0000001")
OLD_KEY = b64(b"unit-test-subscriber-key-0000000")
HOST = "abcdef1234.execute-api.us-east-1.amazonaws.com"
NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
SKEW = 300
BODY = json.dumps(webhook_body("order.completed"), separators=(",", ":")).encode()


def request(body: bytes = BODY, *, key: str = KEY, date: datetime = NOW, nonce: str | None = None, host: str = HOST):
    return {**signed_headers(body, key_b64=key, host=host, date=http_date(date), nonce=nonce), "host": host}


def check(headers, body: bytes = BODY, *, keys=(KEY,), now: datetime = NOW) -> str:
    return webhooks.verify(
        "POST", body, headers, keys=[base64.b64decode(k) for k in keys], now=now, max_skew_seconds=SKEW
    )


def reason(headers, body: bytes = BODY, **kwargs) -> str:
    with pytest.raises(webhooks.WebhookRejected) as caught:
        check(headers, body, **kwargs)
    assert caught.value.status_code == 401
    return caught.value.reason


def test_my_signer_reproduces_the_sample_event():
    """The sample event was signed with the key its comment names: the signer above and
    PROVIDERS.md's formula agree with it."""
    event = json.loads((EVENTS / "ingest_webhook" / "post_webhook.json").read_text())
    headers = event["headers"]
    mine = signed_headers(
        event["body"].encode(),
        key_b64="ZXhhbXBsZS1zdWJzY3JpYmVyLWtleS0wMTIzNDU2Nzg5",
        host=headers["Host"],
        date=headers["x-fc-date"],
        nonce=headers["x-fc-nonce"],
    )
    assert mine == {k: headers[k] for k in mine}


def test_valid_signature_returns_the_nonce():
    headers = request(nonce="a" * 32)
    assert check(headers) == "a" * 32


def test_valid_with_spaces_around_header_values():
    headers = {k: f" {v} " for k, v in request().items()}
    assert check(headers) == headers["x-fc-nonce"].strip()


def test_tampered_body():
    assert reason(request(), BODY.replace(b"order.completed", b"order.cancelled")) == "content_hash_mismatch"


def test_tampered_body_with_its_hash_recomputed():
    tampered = BODY.replace(b"order.completed", b"order.cancelled")
    headers = {**request(), "x-fc-content-sha512": b64(hashlib.sha512(tampered).digest())}
    assert reason(headers, tampered) == "bad_signature"


@pytest.mark.parametrize(
    ("name", "value"),
    [("x-fc-nonce", "b" * 32), ("x-fc-date", http_date(NOW - timedelta(seconds=1))), ("host", "evil.example.com")],
)
def test_tampered_signed_header(name, value):
    headers = {**request(nonce="a" * 32), name: value}
    assert reason(headers) == "bad_signature"


def test_wrong_key():
    assert reason(request(key=b64(b"someone-else-entirely-00000000"))) == "bad_signature"


def test_previous_key_is_accepted_while_rotating():
    assert check(request(key=OLD_KEY), keys=(KEY, OLD_KEY))
    assert check(request(key=KEY), keys=(KEY, OLD_KEY))
    assert reason(request(key=OLD_KEY), keys=(KEY,)) == "bad_signature"


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-SKEW + 1, True), (SKEW - 1, True), (0, True), (-SKEW - 1, False), (SKEW + 1, False), (-86400, False)],
    ids=["past-inside", "future-inside", "now", "past-outside", "future-outside", "a-day-old"],
)
def test_date_skew(offset, accepted):
    headers = request(date=NOW + timedelta(seconds=offset))
    if accepted:
        assert check(headers)
    else:
        assert reason(headers) == "stale_date"


def test_date_that_is_not_a_date():
    key = base64.b64decode(KEY)
    content = b64(hashlib.sha512(BODY).digest())
    nonce = "c" * 32
    canonical = f"POST\n{nonce};yesterday;{HOST};{content}".encode()
    headers = {
        **request(nonce=nonce),
        "x-fc-date": "yesterday",
        "x-fc-authorization": f"HMAC-SHA512 SignedHeaders={SIGNED_HEADERS}&Signature="
        + b64(hmac.new(key, canonical, hashlib.sha512).digest()),
    }
    assert reason(headers) == "bad_date"


@pytest.mark.parametrize(
    "name", ["x-fc-nonce", "x-fc-date", "x-fc-content-sha512", "x-fc-authorization", "x-fc-signature", "host"]
)
def test_missing_header(name):
    headers = request()
    assert reason({k: v for k, v in headers.items() if k != name}) == "missing_header"
    assert reason({**headers, name: "  "}) == "missing_header"


@pytest.mark.parametrize(
    "signed",
    [
        "x-fc-date;x-fc-nonce;host;x-fc-content-sha512",
        "x-fc-nonce;x-fc-date;x-fc-content-sha512",
        "x-fc-nonce;x-fc-date;host;x-fc-content-sha512;x-fc-signature",
        "x-fc-nonce",
    ],
    ids=["reordered", "without-host", "extra", "one"],
)
def test_bad_signed_headers(signed):
    headers = request()
    headers["x-fc-authorization"] = headers["x-fc-authorization"].replace(SIGNED_HEADERS, signed)
    assert reason(headers) == "bad_signed_headers"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("HMAC-SHA512", "HMAC-SHA256"),
        lambda a: "Bearer " + a.split("Signature=")[1],
        lambda a: a.split("&")[0],
        lambda a: a.replace("&Signature=", "&Sig="),
        lambda a: a.replace("SignedHeaders=", "Headers="),
        lambda a: a.replace("&", " "),
    ],
    ids=["sha256", "bearer", "no-signature", "sig", "headers", "no-ampersand"],
)
def test_malformed_authorization(mangle):
    headers = request()
    headers["x-fc-authorization"] = mangle(headers["x-fc-authorization"])
    assert reason(headers) == "bad_authorization"


def test_only_the_body_signature_wrong():
    headers = {**request(), "x-fc-signature": request(key=OLD_KEY)["x-fc-signature"]}
    assert reason(headers) == "bad_body_signature"


@pytest.mark.parametrize("nonce", ["short", "has space in it 0123", "a" * 129, "nonce/with/slash"])
def test_nonce_that_is_not_a_nonce(nonce):
    assert reason(request(nonce=nonce)) == "bad_nonce"
