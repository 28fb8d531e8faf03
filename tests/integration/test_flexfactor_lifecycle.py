"""The FlexFactor emulator's order lifecycle over real HTTP on loopback: progression on the
emulator clock, the orders list, capture, cancel, refund, and signed webhooks (with the
drop, duplicate, reorder, delay and retry switches) received by a real HTTP endpoint.

Progression is driven by ``POST /__emulator/clock`` (a step is 100 s of emulator time, so
real time never moves an order on by itself during a test); webhook signatures are checked
by an implementation of the PROVIDERS.md formula written here, not by ``sign_webhook``.

Status names are the sandbox's upper case (``CAPTUREREQUIRED``): the path table below spells
them as the provider's enum does and is compared case-insensitively (it is about the path);
every other test asserts the exact upper-case spelling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import ServerThread
from devstack.emulators.flexfactor import FlexFactorEmulator, sign_webhook
from tests.integration.test_flexfactor_emulator import CREDENTIALS, payload

STEP = 100.0  # seconds of emulator time per lifecycle step
KEY = base64.b64encode(b"lifecycle-test-subscriber-key-0123456789").decode()
WEBHOOK_CONTENT_TYPE = "text/plain; charset=utf-8"  # "not sent in application/json" [seen]
TRACE_ID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
SIGNED_HEADERS = "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature="
BODY_KEYS = {
    "Event",
    "TimeStamp",
    "EventData",
    "ExternalOrderId",
    "OrderId",
    "ConfirmationId",
    "IsTestMode",
    "IsResent",
}


# -- a webhook receiver -------------------------------------------------------------


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]  # lower-cased names

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A WSGI webhook endpoint: records every request's raw body and headers, answers the
    queued statuses first, then 200."""

    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        received = Received(request.get_data(), {k.lower(): v for k, v in request.headers.items()})
        with self.lock:
            self.requests.append(received)
            status = self.statuses.popleft() if self.statuses else 200
        return Response("", status=status)(environ, start_response)

    def bodies(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bodies = [r.json for r in self.requests]
        return [b for b in bodies if order_id is None or b["OrderId"] == order_id]

    def events(self, order_id: str | None = None) -> list[str]:
        return [b["Event"] for b in self.bodies(order_id)]


def verify(received: Received, key_b64: str, host: str) -> None:
    """The PROVIDERS.md section 2 signature, checked independently of the emulator."""
    headers, body = received.headers, received.body
    secret = base64.b64decode(key_b64)
    content_hash = base64.b64encode(hashlib.sha512(body).digest()).decode()
    nonce, date = headers["x-fc-nonce"], headers["x-fc-date"]
    assert re.fullmatch(r"[0-9a-f]{32}", nonce)
    assert date.endswith(" GMT") and abs(parsedate_to_datetime(date) - datetime.now(UTC)) < timedelta(seconds=60)
    assert headers["host"] == host
    assert hmac.compare_digest(headers["x-fc-content-sha512"], content_hash)
    signed = f"POST\n{nonce};{date};{headers['host']};{content_hash}".encode()
    signature = base64.b64encode(hmac.new(secret, signed, hashlib.sha512).digest()).decode()
    assert hmac.compare_digest(headers["x-fc-authorization"], SIGNED_HEADERS + signature)
    body_signature = base64.b64encode(hmac.new(secret, body, hashlib.sha512).digest()).decode()
    assert hmac.compare_digest(headers["x-fc-signature"], body_signature)
    assert set(json.loads(body)) == BODY_KEYS
    assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()  # compact


# -- the emulator under test --------------------------------------------------------


@dataclass
class FF:
    emulator: FlexFactorEmulator
    http: httpx.Client
    receiver: Receiver
    hook_url: str
    host: str

    def evaluate(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        body = payload(**{k: v for k, v in kwargs.items() if k in ("mit", "last4", "phone")})
        body.update({k: v for k, v in kwargs.items() if k not in ("mit", "last4", "phone")})
        response = self.http.post("/v1/evaluate", json=body)
        assert response.status_code == 200, response.text
        return response.json()["orderSessionKey"], body

    def advance(self, seconds: float) -> dict[str, Any]:
        response = self.http.post("/__emulator/clock", json={"advance": seconds})
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/__emulator/config", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def flush(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.http.post("/__emulator/webhooks/flush", json={"timeout": timeout}).json()

    def log(self, order_id: str | None = None) -> list[dict[str, Any]]:
        entries = self.http.get("/__emulator/webhooks").json()["webhooks"]
        return [e for e in entries if order_id is None or e["OrderId"] == order_id]

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def admin_order(self, order_id: str) -> dict[str, Any]:
        orders = self.http.get("/__emulator/orders").json()["orders"]
        return next(o for o in orders if o["id"] == order_id)

    def verify_all(self) -> None:
        for received in self.receiver.requests:
            verify(received, KEY, self.host)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture
def ff(receiver) -> Iterator[FF]:
    """A fresh emulator (1 step = 100 s) whose webhooks go to a fresh receiver."""
    app, receiver_url = receiver
    emulator = FlexFactorEmulator(step_seconds=STEP, webhook_url=receiver_url + "/hooks/ff", webhook_key=KEY)
    with ServerThread(emulator) as server:
        token = httpx.post(server.url + "/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            yield FF(emulator, http, app, receiver_url + "/hooks/ff", receiver_url.split("://", 1)[1])


def future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# -- lifecycle scenarios ------------------------------------------------------------

# (payload, [(steps since /evaluate, statusName (any case), every event so far)])
SCENARIOS: dict[str, tuple[dict[str, Any], list[tuple[float, str, list[str]]]]] = {
    "mit-completed": (
        {"mit": True, "last4": "4242"},
        [(0, "Draft", []), (1, "Processing", []), (2, "Completed", ["order.completed"])],
    ),
    "mit-cancelled": (
        {"mit": True, "last4": "0069"},
        [(0, "Draft", []), (1, "Processing", []), (2, "Cancelled", ["order.cancelled"])],
    ),
    "mit-expired": (
        {"mit": True, "last4": "0077", "expiryDateUtc": 9.5 * STEP},  # seconds from now, made a date below
        [(0, "Draft", []), (1, "Processing", []), (9, "Processing", []), (10, "Expired", ["order.expired"])],
    ),
    "mit-approved": (
        {"mit": True, "last4": "3184"},
        [(0, "Completed", []), (1, "Completed", ["order.completed"]), (5, "Completed", ["order.completed"])],
    ),
    "cit-challenge-passed": (
        {"last4": "0259"},
        [
            (0, "Draft", []),
            (1, "Draft", ["challenge.presented"]),
            (2, "Completed", ["challenge.presented", "challenge.passed", "order.completed"]),
        ],
    ),
    "cit-challenge-failed": (
        {"last4": "1111", "phone": "+1 555-123-4567"},
        [
            (0, "Draft", []),
            (1, "Draft", ["challenge.presented"]),
            (2, "Cancelled", ["challenge.presented", "challenge.failed", "order.cancelled"]),
        ],
    ),
    "cit-capture-required": (
        {"last4": "4242", "transactionType": "AUTHORIZATION"},
        [
            (0, "Capturerequired", []),
            (1, "Capturerequired", ["order.capturerequired"]),
            (4.9, "Capturerequired", ["order.capturerequired"]),
            (5, "Cancelled", ["order.capturerequired", "order.cancelled"]),  # voided: window = 5 steps
        ],
    ),
    "cit-approved": (
        {"last4": "4242"},
        [(0, "Completed", []), (1, "Completed", ["order.completed"])],
    ),
    "cit-declined": (
        {"last4": "0002"},
        [(0, "Cancelled", []), (3, "Cancelled", [])],
    ),
}
ORDER_EVENT_STATUS = {
    "order.completed": "Completed",
    "order.cancelled": "Cancelled",
    "order.expired": "Expired",
    "order.capturerequired": "Capturerequired",
}
STATUS = {"Draft": 0, "Cancelled": 2, "Expired": 2, "Processing": 4, "Capturerequired": 5, "Completed": 7}


def same_status(actual: str, expected: str) -> bool:
    """For the path tests only: the status, whatever the case it is spelt in."""
    return isinstance(actual, str) and actual.casefold() == expected.casefold()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_paths_and_webhooks(ff, scenario):
    request, path = SCENARIOS[scenario]
    ff.configure(capture_window_seconds=5 * STEP)
    if "expiryDateUtc" in request:
        request = {**request, "expiryDateUtc": future(request["expiryDateUtc"])}
    order_id, body = ff.evaluate(**request)
    elapsed = 0.0
    for steps, status_name, events in path:
        ff.advance(steps * STEP - elapsed)
        elapsed = steps * STEP
        ff.flush()
        order = ff.order(order_id)
        assert same_status(order["statusName"], status_name), (scenario, steps, order["statusName"])
        assert order["status"] == STATUS[status_name], (scenario, steps)
        assert ff.receiver.events(order_id) == events, (scenario, steps)
        assert [e["event"] for e in ff.log(order_id)] == events
    assert order["referenceNumber"] == body["orderId"]

    # the status history, in emulator time, and the true final state
    admin = ff.admin_order(order_id)
    assert admin["scenario"] == scenario
    assert admin["referenceNumber"] == body["orderId"] and admin["isMIT"] is (body.get("isMIT") is True)
    changes = [name for name, _ in admin["history"]]
    expected_changes = list(dict.fromkeys(name for _, name, _ in path))
    assert len(changes) == len(expected_changes), changes
    assert all(same_status(a, b) for a, b in zip(changes, expected_changes, strict=True)), changes
    placed = datetime.fromisoformat(admin["history"][0][1])
    assert placed == datetime.fromisoformat(order["orderPlacedDate"])
    assert all(datetime.fromisoformat(at) >= placed for _, at in admin["history"])
    assert same_status(admin["statusName"], path[-1][1])
    assert admin["final"] is (path[-1][1] in ("Completed", "Cancelled", "Expired"))

    # every delivery: signed, first-time, the order's ids, its event data
    for entry in ff.log(order_id):
        assert (entry["fate"], entry["attempts"], entry["lastHttpStatus"], entry["pending"]) == (
            "delivered",
            1,
            200,
            False,
        )
    for received in ff.receiver.requests:
        verify(received, KEY, ff.host)
        message = received.json
        assert message["OrderId"] == order_id and message["ExternalOrderId"] == body["orderId"]
        assert message["IsTestMode"] is True and message["IsResent"] is False
        assert uuid.UUID(message["ConfirmationId"]) and message["TimeStamp"].endswith("Z")
        assert received.headers["content-type"] == WEBHOOK_CONTENT_TYPE
        data = message["EventData"]
        if message["Event"] == "order.completed":
            assert data is None  # as FlexCharge's own sample
        elif message["Event"].startswith("order."):
            assert set(data) == {"status", "amount"} and data["amount"] == 1999, data
            assert same_status(data["status"], ORDER_EVENT_STATUS[message["Event"]]), data
        else:
            assert data == {}


def test_a_transition_is_stamped_with_its_due_time(ff):
    order_id, _ = ff.evaluate(mit=True, last4="4242")
    ff.advance(10 * STEP)  # both steps became due at once
    history = ff.admin_order(order_id)["history"]
    times = [datetime.fromisoformat(at) for _, at in history]
    assert [name for name, _ in history] == ["DRAFT", "PROCESSING", "COMPLETED"]
    assert [round((t - times[0]).total_seconds(), 3) for t in times] == [0, STEP, 2 * STEP]
    timestamp = ff.flush()["webhooks"][0]["TimeStamp"]
    assert datetime.fromisoformat(timestamp) == times[2]


def test_expired_order_by_id_and_in_the_list(ff):
    expiry = future(1.5 * STEP)
    order_id, _ = ff.evaluate(mit=True, last4="0077", expiryDateUtc=expiry)
    ff.advance(2 * STEP)
    order = ff.order(order_id)
    assert (order["status"], order["statusName"]) == (2, "EXPIRED")  # the enum has no Expired
    assert datetime.fromisoformat(order["expiryDate"]) == datetime.fromisoformat(expiry)
    assert [o["id"] for o in ff.http.get("/v1/orders", params={"status": "expired"}).json()["items"]] == [order_id]
    assert ff.http.get("/v1/orders", params={"status": "Cancelled"}).json()["items"] == []
    assert [o["id"] for o in ff.http.get("/v1/orders", params={"status": 2}).json()["items"]] == [order_id]
    ff.flush()
    assert ff.receiver.events(order_id) == ["order.expired"]
    assert ff.receiver.bodies(order_id)[0]["EventData"] == {"status": "EXPIRED", "amount": 1999}


def test_progression_runs_on_its_own_in_real_time(ff):
    """The one test that waits: the background thread applies due steps without a clock call."""
    ff.configure(step_seconds=0.05)
    order_id, _ = ff.evaluate(mit=True, last4="4242")
    deadline = time.monotonic() + 3
    while ff.emulator.orders[order_id].status_name != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ff.emulator.orders[order_id].status_name == "COMPLETED"
    assert ff.flush()["webhooks"][0]["fate"] == "delivered"


def test_clock(ff):
    before = ff.http.get("/__emulator/clock").json()
    assert before["offset"] == 0
    after = ff.advance(3600)
    assert after["offset"] == 3600
    assert datetime.fromisoformat(after["now"]) - datetime.fromisoformat(before["now"]) >= timedelta(seconds=3600)
    for bad in ({"advance": -1}, {"advance": "soon"}, {}):
        assert ff.http.post("/__emulator/clock", json=bad).status_code == 400
    # tokens live in real time: a token is still good an hour of emulator time later
    assert ff.http.get("/v1/orders").status_code == 200


# -- the orders list ----------------------------------------------------------------


def test_orders_list_filters_sorts_and_pages(ff):
    ids: dict[str, str] = {}
    placed: dict[str, datetime] = {}
    for name, request in [
        ("declined", {"last4": "0002"}),
        ("approved", {"last4": "4242"}),
        ("capture", {"last4": "4242", "transactionType": "AUTHORIZATION"}),
        ("expired", {"mit": True, "last4": "0077"}),  # its expiryDateUtc is long past: expires at step 1
        ("draft", {"mit": True, "last4": "4242"}),
    ]:
        ids[name], _ = ff.evaluate(**request)
        placed[name] = datetime.fromisoformat(ff.order(ids[name])["orderPlacedDate"])
        if name != "draft":
            ff.advance(10 * STEP)
    newest_first = [ids[n] for n in ("draft", "expired", "capture", "approved", "declined")]

    def page(**params: Any) -> dict[str, Any]:
        response = ff.http.get("/v1/orders", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def listed(**params: Any) -> list[str]:
        return [o["id"] for o in page(**params)["items"]]

    everything = page()
    assert [o["id"] for o in everything["items"]] == newest_first
    assert {k: v for k, v in everything.items() if k != "items"} == {
        "pageNumber": 1,
        "pageSize": 10,  # as the sandbox
        "pageCount": 1,
        "totalCount": 5,
        "hasNextPage": False,
        "hasPreviousPage": False,
    }
    assert everything["items"][0] == ff.order(ids["draft"])
    assert listed(sort="asc") == newest_first[::-1]
    assert listed(orderBy="orderPlacedDate", sort="DESC") == newest_first
    assert listed(orderBy="createdOn") == listed(OrderBy="CREATEDON", sort="desc") == newest_first
    assert listed(orderBy="amount", sort="asc") == newest_first[::-1]  # one amount: then when placed
    first, last, beyond = page(pageSize=2), page(pageSize=2, pageNumber=3), page(pageSize=2, pageNumber=4)
    assert [o["id"] for o in first["items"]] == newest_first[:2]
    assert (first["pageCount"], first["totalCount"], first["hasNextPage"], first["hasPreviousPage"]) == (
        3,
        5,
        True,
        False,
    )
    assert [o["id"] for o in last["items"]] == newest_first[4:]
    assert (last["hasNextPage"], last["hasPreviousPage"]) == (False, True)
    assert (beyond["items"], beyond["pageCount"], beyond["hasNextPage"]) == ([], 3, False)
    assert listed(pageSize=2, pageNumber=2, sort="asc") == newest_first[::-1][2:4]
    assert len(listed(pageSize=100)) == 5

    assert set(listed(status=2)) == {ids["declined"], ids["expired"]}
    assert listed(status="cancelled") == listed(status="CANCELLED") == [ids["declined"]]
    assert listed(status="Expired") == listed(status="EXPIRED") == [ids["expired"]]
    assert listed(status="7") == listed(status="COMPLETED") == [ids["approved"]]
    assert listed(status=5) == listed(status="CaptureRequired") == [ids["capture"]]
    assert listed(status="Draft") == [ids["draft"]]
    assert listed(status="Returned") == listed(status=6) == []
    names = {o["id"]: o["statusName"] for o in everything["items"]}
    assert [names[ids[n]] for n in ("declined", "approved", "capture", "expired", "draft")] == [
        "CANCELLED",
        "COMPLETED",
        "CAPTUREREQUIRED",
        "EXPIRED",
        "DRAFT",
    ]

    iso = {n: t.isoformat() for n, t in placed.items()}
    assert listed(**{"from": iso["approved"], "to": iso["expired"]}) == [
        ids["expired"],
        ids["capture"],
        ids["approved"],
    ]
    assert listed(**{"from": iso["capture"]}, sort="asc") == [ids["capture"], ids["expired"], ids["draft"]]
    assert listed(to=(placed["declined"] + timedelta(seconds=1)).isoformat()) == [ids["declined"]]
    assert listed(to="2999-12-31", status=0) == [ids["draft"]]
    assert listed(**{"from": "2999-01-01"}) == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "9"}, "status"),
        ({"status": "Bogus"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "to"),
        ({"orderBy": "price"}, "orderBy"),
        ({"sort": "up"}, "sort"),
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "101"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"pageNumber": "0"}, "pageNumber"),
        ({"pageNumber": "-1"}, "pageNumber"),
    ],
)
def test_orders_list_refuses_a_bad_parameter(ff, params, parameter):
    response = ff.http.get("/v1/orders", params=params)
    assert response.status_code == 400
    flat = response.json()  # the sandbox's flat 400: a TraceId beside the bad parameter
    assert list(flat) == ["TraceId", parameter]
    assert len(flat["TraceId"]) == 1 and TRACE_ID.fullmatch(flat["TraceId"][0])
    assert len(flat[parameter]) == 1 and isinstance(flat[parameter][0], str)
    ff.configure(errorShape="problem")
    problem = ff.http.get("/v1/orders", params=params).json()
    assert problem["status"] == 400 and problem["title"] == "One or more validation errors occurred."
    assert list(problem["errors"]) == [parameter] and problem["errors"][parameter] == flat[parameter]


# -- capture ------------------------------------------------------------------------


def capture_body(order_id: str, **changes: Any) -> dict[str, Any]:
    return {"idempotencyKey": str(uuid.uuid4()), "orderId": order_id, "amount": 1500, "currency": "USD", **changes}


def test_capture(ff):
    order_id, _ = ff.evaluate(last4="4242", transactionType="AUTHORIZATION")
    approved_id, _ = ff.evaluate(last4="4242")
    untouched = ff.order(order_id), ff.order(approved_id)

    def failed(body: Any, status: int, key: str) -> None:
        response = ff.http.post("/v1/capture", json=body)
        assert response.status_code == status, response.text
        answer = response.json()
        assert (answer["status"], answer["success"]) == ("FAILED", False)
        assert key in [e["key"] for e in answer["errors"]]

    # malformed, unknown: 4xx
    failed(capture_body(order_id, amount=0), 400, "Amount")
    failed(capture_body(order_id, amount="15.00"), 400, "Amount")
    failed({"amount": 1500}, 400, "IdempotencyKey")
    failed([], 400, "$")
    failed(capture_body(str(uuid.uuid4())), 404, "OrderId")
    # the order cannot be captured so: HTTP 200, status FAILED (as the sandbox)
    failed(capture_body(order_id, amount=2000), 200, "Amount")  # more than the order's 1999
    failed(capture_body(order_id, currency="EUR"), 200, "Currency")
    failed(capture_body(approved_id), 200, "OrderId")  # COMPLETED, not CAPTUREREQUIRED
    refused = ff.http.post("/v1/capture", json=capture_body(approved_id)).json()
    assert refused["orderId"] == approved_id and "COMPLETED" in refused["errors"][0]["error"]
    # no refusal changed either order, captured anything or sent anything
    assert (ff.order(order_id), ff.order(approved_id)) == untouched
    assert ff.order(order_id)["statusName"] == "CAPTUREREQUIRED"
    assert ff.admin_order(order_id)["capturedAmount"] is None
    assert [name for name, _ in ff.admin_order(order_id)["history"]] == ["CAPTUREREQUIRED"]
    assert ff.log(order_id) == [] and ff.log(approved_id) == []

    body = capture_body(order_id, currency="usd")
    first = ff.http.post("/v1/capture", json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert {k: answer[k] for k in ("status", "success", "orderId", "capturedAmount", "statusName")} == {
        "status": "SUCCESS",
        "success": True,
        "orderId": order_id,
        "capturedAmount": 1500,
        "statusName": "COMPLETED",
    }
    assert (ff.order(order_id)["status"], ff.order(order_id)["statusName"]) == (7, "COMPLETED")

    replay = ff.http.post("/v1/capture", json=dict(reversed(list(body.items()))))
    assert (replay.status_code, replay.json()) == (200, answer)
    failed({**body, "amount": 1400}, 409, "IdempotencyKey")  # same key, other payload
    failed(capture_body(order_id), 200, "OrderId")  # a new key: the order is COMPLETED now

    ff.advance(3 * 3600)  # past the capture window: a captured order is never voided
    ff.flush()
    assert ff.order(order_id)["statusName"] == "COMPLETED"
    assert ff.receiver.events(order_id) == ["order.completed"]  # once, despite the replay
    assert ff.receiver.bodies(order_id)[0]["EventData"] is None  # as FlexCharge's own sample
    assert ff.admin_order(order_id)["capturedAmount"] == 1500
    assert [name for name, _ in ff.admin_order(order_id)["history"]] == ["CAPTUREREQUIRED", "COMPLETED"]
    ff.verify_all()


def test_an_uncaptured_order_is_voided_after_the_window(ff):
    order_id, _ = ff.evaluate(last4="4242", transactionType="authorization")  # window: 3600 s by default
    ff.advance(3599)
    assert ff.order(order_id)["statusName"] == "CAPTUREREQUIRED"
    ff.advance(1)
    voided = ff.order(order_id)
    assert (voided["status"], voided["statusName"]) == (2, "CANCELLED")
    response = ff.http.post("/v1/capture", json=capture_body(order_id))
    assert response.status_code == 200  # too late: 200 FAILED, and nothing changes
    assert (response.json()["status"], response.json()["success"]) == ("FAILED", False)
    assert "CANCELLED" in response.json()["errors"][0]["error"]
    assert ff.order(order_id) == voided and ff.admin_order(order_id)["capturedAmount"] is None
    ff.flush()
    assert ff.receiver.events(order_id) == ["order.capturerequired", "order.cancelled"]
    assert [b["EventData"] for b in ff.receiver.bodies(order_id)] == [
        {"status": "CAPTUREREQUIRED", "amount": 1999},
        {"status": "CANCELLED", "amount": 1999},
    ]


# -- cancel -------------------------------------------------------------------------


def test_cancel_rules(ff):
    mit_processing, _ = ff.evaluate(mit=True, last4="0069")
    mit_long, _ = ff.evaluate(mit=True, last4="4242")
    capture, _ = ff.evaluate(last4="4242", transactionType="AUTHORIZATION")
    challenge, _ = ff.evaluate(last4="0259")
    cit_done, _ = ff.evaluate(last4="4242")
    mit_done, _ = ff.evaluate(mit=True, last4="3184")
    declined, _ = ff.evaluate(last4="0002")
    ff.advance(STEP)  # the first MIT orders are Processing now
    assert ff.order(mit_processing)["statusName"] == ff.order(mit_long)["statusName"] == "PROCESSING"
    fresh, _ = ff.evaluate(mit=True, last4="4242")  # Draft

    def cancel(order_id: str, body: Any = None) -> httpx.Response:
        return ff.http.post(f"/v1/orders/{order_id}/cancel", json=body)

    response = ff.http.post(f"/v1/orders/{fresh}/cancel")  # no body at all
    assert (response.status_code, response.json()) == (200, {}), response.text  # the sandbox's empty object
    assert (ff.order(fresh)["status"], ff.order(fresh)["statusName"]) == (2, "CANCELLED")
    for order_id, body in [(mit_processing, {"idempotencyKey": "k-1"}), (mit_long, {}), (capture, None)]:
        done = cancel(order_id, body)
        assert (done.status_code, done.json()) == (200, {}), order_id

    before = {order_id: ff.order(order_id) for order_id in (challenge, cit_done, mit_done, declined, fresh)}
    for order_id, state in [
        (challenge, "DRAFT"),
        (cit_done, "COMPLETED"),
        (mit_done, "COMPLETED"),
        (declined, "CANCELLED"),
        (fresh, "CANCELLED"),
    ]:
        refused = cancel(order_id)
        assert refused.status_code == 409
        assert refused.json()["status"] == 409 and f"The order is {state};" in refused.json()["title"]
    assert {order_id: ff.order(order_id) for order_id in before} == before  # the refusals changed nothing
    assert cancel(str(uuid.uuid4())).status_code == 404
    bad = ff.http.post(f"/v1/orders/{fresh}/cancel", content=b"not json")
    assert bad.status_code == 400

    ff.advance(5 * STEP)  # nothing cancelled moves on by itself
    ff.flush()
    for order_id in (fresh, mit_processing, mit_long, capture):
        assert ff.order(order_id)["statusName"] == "CANCELLED"
        assert ff.receiver.events(order_id)[-1] == "order.cancelled"
        assert ff.receiver.events(order_id).count("order.cancelled") == 1
        assert ff.receiver.bodies(order_id)[-1]["EventData"] == {"status": "CANCELLED", "amount": 1999}
    assert "order.completed" not in ff.receiver.events(fresh) + ff.receiver.events(mit_long)
    assert [name for name, _ in ff.admin_order(mit_processing)["history"]] == ["DRAFT", "PROCESSING", "CANCELLED"]
    ff.verify_all()


def test_cancel_idempotency_key(ff):
    first, _ = ff.evaluate(mit=True, last4="4242")
    second, _ = ff.evaluate(mit=True, last4="4242")
    key = {"idempotencyKey": str(uuid.uuid4())}
    done = ff.http.post(f"/v1/orders/{first}/cancel", json=key)
    assert (done.status_code, done.json()) == (200, {})
    again = ff.http.post(f"/v1/orders/{first}/cancel", json=key)
    assert (again.status_code, again.json()) == (200, {})  # replayed, not "already CANCELLED"
    without = ff.http.post(f"/v1/orders/{first}/cancel")  # without the key: the state decides
    assert without.status_code == 409 and "The order is CANCELLED;" in without.json()["title"]
    other = ff.http.post(f"/v1/orders/{second}/cancel", json=key)
    assert (other.status_code, other.json()["title"]) == (409, "idempotency key reused with a different payload")
    assert ff.order(second)["statusName"] == "DRAFT"
    ff.advance(24 * 3600 + 1)  # the key is forgotten after 24 h
    late = ff.http.post(f"/v1/orders/{first}/cancel", json=key)
    assert late.status_code == 409 and "CANCELLED" in late.json()["title"]
    assert len(ff.log(first)) == 1


def test_external_cancel_over_the_lifecycle(ff):
    """``/external-cancel`` by the merchant's orderId, the way out when /evaluate timed out:
    mid-path it cancels for good (signed ``order.cancelled``, the path stops), again it
    answers ``200 {}`` without a second event, an order past cancelling is refused as is."""
    reference = f"merchant-{uuid.uuid4()}"
    order_id, body = ff.evaluate(mit=True, last4="4242", orderId=reference)  # mit-completed
    done_id, done_body = ff.evaluate(mit=True, last4="4242")
    ff.advance(STEP)
    assert ff.order(order_id)["statusName"] == ff.order(done_id)["statusName"] == "PROCESSING"

    def external_cancel(external_id: str) -> httpx.Response:
        return ff.http.post(f"/v1/orders/{external_id}/external-cancel")

    done = external_cancel(reference)
    assert (done.status_code, done.json()) == (200, {}), done.text
    cancelled = ff.order(order_id)
    assert (cancelled["status"], cancelled["statusName"]) == (2, "CANCELLED")
    again = external_cancel(reference)
    assert (again.status_code, again.json()) == (200, {})  # already CANCELLED: the same answer
    assert ff.order(order_id) == cancelled

    unknown = external_cancel(f"merchant-{uuid.uuid4()}")
    assert unknown.status_code == 404
    problem = unknown.json()
    assert (problem["status"], problem["title"]) == (404, "Not Found") and TRACE_ID.fullmatch(problem["traceId"])
    assert external_cancel(order_id).status_code == 404  # FlexFactor's own id is not the merchant's

    ff.advance(STEP)  # the other order completes; the cancelled one stays where it is
    completed = ff.order(done_id)
    assert completed["statusName"] == "COMPLETED"
    refused = external_cancel(done_body["orderId"])
    assert refused.status_code == 409 and "The order is COMPLETED;" in refused.json()["title"]
    assert ff.order(done_id) == completed

    ff.advance(5 * STEP)
    ff.flush()
    assert ff.order(order_id) == cancelled
    assert ff.receiver.events(order_id) == ["order.cancelled"]  # once, and no order.completed after it
    [message] = ff.receiver.bodies(order_id)
    assert message["ExternalOrderId"] == body["orderId"] == reference
    assert message["EventData"] == {"status": "CANCELLED", "amount": 1999}
    assert ff.receiver.events(done_id) == ["order.completed"]  # the refusal sent nothing
    admin = ff.admin_order(order_id)
    assert [name for name, _ in admin["history"]] == ["DRAFT", "PROCESSING", "CANCELLED"] and admin["final"]
    ff.verify_all()
    assert all(r.headers["content-type"] == WEBHOOK_CONTENT_TYPE for r in ff.receiver.requests)


def test_external_cancel_takes_the_latest_order_of_a_reused_order_id(ff):
    """A merchant that retried a timed-out /evaluate (a new idempotency key, the same orderId)
    cancels the order it never heard of: the latest; an open authorisation is voided early."""
    reference = f"merchant-{uuid.uuid4()}"
    older, _ = ff.evaluate(last4="4242", transactionType="AUTHORIZATION", orderId=reference)
    latest, _ = ff.evaluate(last4="4242", transactionType="AUTHORIZATION", orderId=reference)
    assert older != latest
    done = ff.http.post(f"/v1/orders/{reference}/external-cancel", json={})
    assert (done.status_code, done.json()) == (200, {})
    assert (ff.order(latest)["statusName"], ff.order(older)["statusName"]) == ("CANCELLED", "CAPTUREREQUIRED")
    ff.advance(STEP)
    ff.flush()
    assert ff.receiver.events(latest) == ["order.cancelled"]  # no order.capturerequired for a state left
    assert ff.receiver.events(older) == ["order.capturerequired"]
    capture = ff.http.post("/v1/capture", json=capture_body(latest))
    assert (capture.status_code, capture.json()["status"]) == (200, "FAILED")


# -- refund -------------------------------------------------------------------------


def refund(ff: FF, order_id: str, body: Any) -> httpx.Response:
    return ff.http.post(f"/v1/orders/{order_id}/refund", json=body)


def assert_refund_failed(response: httpx.Response, message: str) -> None:
    """The sandbox's refund failure: HTTP 200, responseCode 2001, status FAILED."""
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {k: answer[k] for k in ("responseCode", "success", "status", "transactionId")} == {
        "responseCode": "2001",
        "success": False,
        "status": "FAILED",
        "transactionId": None,
    }
    assert answer["responseMessage"] == message
    assert answer["errors"] == [{"item1": message, "item2": "2001", "item3": "2001", "item4": True}]


def test_refund_never_refunds_more_than_was_charged(ff):
    order_id, _ = ff.evaluate(last4="4242")  # COMPLETED, 1999 cents
    draft, _ = ff.evaluate(mit=True, last4="4242")

    for bad in ({"amountToRefund": 0}, {"amountToRefund": -1}, {"amountToRefund": 1.234}):
        response = refund(ff, order_id, bad)
        assert response.status_code == 400 and list(response.json()) == ["TraceId", "AmountToRefund"], bad
    for bad in ({"amountToRefund": "ten"}, {}, {"amountToRefund": True}):
        assert refund(ff, order_id, bad).status_code == 400, bad
    bad_message = refund(ff, order_id, {"amountToRefund": 5, "refundMessage": 7})
    assert bad_message.status_code == 400
    assert bad_message.json()["RefundMessage"] == ["The field RefundMessage is invalid."]
    assert_refund_failed(refund(ff, draft, {"amountToRefund": 5}), "Order in status DRAFT cannot be refunded")
    assert refund(ff, str(uuid.uuid4()), {"amountToRefund": 5}).status_code == 404
    assert_refund_failed(  # more than was charged, before any refund
        refund(ff, order_id, {"amountToRefund": 20.00}),
        "Amount to refund (20.00) is greater than maximum refund amount in (19.99))",
    )
    assert ff.admin_order(order_id)["refundedAmount"] == ff.admin_order(draft)["refundedAmount"] == 0

    # partial refunds add up to what was charged, and never beyond
    done = refund(ff, order_id, {"amountToRefund": 10.50, "refundMessage": "goodwill"})
    assert done.status_code == 200, done.text
    assert {k: done.json()[k] for k in ("status", "success", "responseCode", "amountRefunded")} == {
        "status": "SUCCESS",
        "success": True,
        "responseCode": "0",
        "amountRefunded": 10.5,
    }
    assert (ff.order(order_id)["status"], ff.order(order_id)["statusName"]) == (7, "COMPLETED")  # partly refunded
    for again in ({"amountToRefund": 10.50}, {"amountToRefund": 19.99}, {"amountToRefund": 9.50}):
        asked = f"{again['amountToRefund']:.2f}"
        message = f"Amount to refund ({asked}) is greater than maximum refund amount in (9.49))"
        assert_refund_failed(refund(ff, order_id, again), message)
        assert ff.admin_order(order_id)["refundedAmount"] == 1050
    rest = refund(ff, order_id, {"amountToRefund": "9.49"})  # a numeric string binds
    assert (rest.status_code, rest.json()["amountRefunded"]) == (200, 9.49)
    assert (ff.order(order_id)["status"], ff.order(order_id)["statusName"]) == (6, "RETURNED")
    for again in ({"amountToRefund": 0.01}, {"amountToRefund": 19.99}):
        asked = f"{again['amountToRefund']:.2f}"
        message = f"Amount to refund ({asked}) is greater than maximum refund amount in (0.00))"
        assert_refund_failed(refund(ff, order_id, again), message)
    assert ff.admin_order(order_id)["refundedAmount"] == 1999  # exactly the charge
    assert ff.order(order_id)["statusName"] == "RETURNED"

    ff.advance(STEP)
    ff.flush()
    assert [b["EventData"] for b in ff.receiver.bodies(order_id)] == [
        {"status": "COMPLETED", "amount": 1050, "refundedAmount": 1050},
        {"status": "RETURNED", "amount": 949, "refundedAmount": 1999},
    ]
    # one event per refund, none for a failure; order.completed: the order left COMPLETED first
    assert ff.receiver.events(order_id) == ["order.refunded", "order.refunded"]
    assert ff.receiver.events(draft) == []


def test_a_second_full_refund_is_refused(ff):
    order_id, _ = ff.evaluate(last4="4242")
    ff.advance(STEP)  # order.completed first
    first = refund(ff, order_id, {"amountToRefund": 19.99})
    assert (first.status_code, first.json()["status"], first.json()["amountRefunded"]) == (200, "SUCCESS", 19.99)
    returned = ff.order(order_id)
    assert (returned["status"], returned["statusName"]) == (6, "RETURNED")
    message = "Amount to refund (19.99) is greater than maximum refund amount in (0.00))"
    assert_refund_failed(refund(ff, order_id, {"amountToRefund": 19.99}), message)
    assert ff.order(order_id) == returned and ff.admin_order(order_id)["refundedAmount"] == 1999
    ff.flush()
    assert ff.receiver.events(order_id) == ["order.completed", "order.refunded"]
    refunded = ff.receiver.bodies(order_id)[1]["EventData"]
    assert refunded == {"status": "RETURNED", "amount": 1999, "refundedAmount": 1999}


def test_partial_refunds_of_a_captured_order_over_the_lifecycle(ff):
    """Authorised, captured for less, refunded in parts (the captured amount is the most),
    past the capture window; every step's signed webhook, and the status history."""
    order_id, _ = ff.evaluate(last4="4242", transactionType="AUTHORIZATION")
    ff.advance(STEP)
    assert_refund_failed(
        refund(ff, order_id, {"amountToRefund": 1}), "Order in status CAPTUREREQUIRED cannot be refunded"
    )
    captured = ff.http.post("/v1/capture", json=capture_body(order_id, amount=1500))
    assert captured.json()["status"] == "SUCCESS", captured.text
    for amount in (5, 2.5):
        assert refund(ff, order_id, {"amountToRefund": amount}).json()["status"] == "SUCCESS"
    ff.advance(3 * 3600)  # past the capture window: a captured, partly refunded order stays COMPLETED
    assert ff.order(order_id)["statusName"] == "COMPLETED"
    assert_refund_failed(
        refund(ff, order_id, {"amountToRefund": 7.51}),
        "Amount to refund (7.51) is greater than maximum refund amount in (7.50))",
    )
    assert refund(ff, order_id, {"amountToRefund": 7.5}).json()["amountRefunded"] == 7.5
    assert_refund_failed(
        refund(ff, order_id, {"amountToRefund": 0.01}),
        "Amount to refund (0.01) is greater than maximum refund amount in (0.00))",
    )
    admin = ff.admin_order(order_id)
    assert (admin["capturedAmount"], admin["refundedAmount"], admin["statusName"]) == (1500, 1500, "RETURNED")
    assert [name for name, _ in admin["history"]] == ["CAPTUREREQUIRED", "COMPLETED", "RETURNED"]

    ff.flush()
    assert ff.receiver.events(order_id) == [
        "order.capturerequired",
        "order.completed",
        "order.refunded",
        "order.refunded",
        "order.refunded",
    ]
    assert [b["EventData"] for b in ff.receiver.bodies(order_id)] == [
        {"status": "CAPTUREREQUIRED", "amount": 1999},
        None,
        {"status": "COMPLETED", "amount": 500, "refundedAmount": 500},
        {"status": "COMPLETED", "amount": 250, "refundedAmount": 750},
        {"status": "RETURNED", "amount": 750, "refundedAmount": 1500},
    ]
    assert sum(b["EventData"]["amount"] for b in ff.receiver.bodies(order_id)[2:]) == admin["capturedAmount"]
    assert len({b["ConfirmationId"] for b in ff.receiver.bodies(order_id)}) == 5
    ff.verify_all()
    assert all(r.headers["content-type"] == WEBHOOK_CONTENT_TYPE for r in ff.receiver.requests)


def test_chargeback(ff):
    order_id, _ = ff.evaluate(last4="4242")
    pending, _ = ff.evaluate(mit=True, last4="4242")
    ff.advance(STEP)
    response = ff.http.post(f"/__emulator/orders/{order_id}/chargeback", json={"amount": 1000})
    assert response.status_code == 200 and response.json()["event"] == "payment.chargeback.received"
    assert ff.http.post(f"/__emulator/orders/{pending}/chargeback").status_code == 409
    assert ff.http.post(f"/__emulator/orders/{uuid.uuid4()}/chargeback").status_code == 404
    ff.flush()
    assert ff.receiver.events(order_id) == ["order.completed", "payment.chargeback.received"]
    assert [b["EventData"] for b in ff.receiver.bodies(order_id)] == [None, {"status": "COMPLETED", "amount": 1000}]
    assert ff.admin_order(order_id)["chargebacks"] == 1
    # a fully refunded (RETURNED) order can still be charged back
    assert ff.http.post(f"/v1/orders/{order_id}/refund", json={"amountToRefund": 19.99}).json()["success"] is True
    again = ff.http.post(f"/__emulator/orders/{order_id}/chargeback")
    assert again.status_code == 200 and again.json()["EventData"] == {"status": "RETURNED", "amount": 1999}
    ff.flush()
    assert ff.admin_order(order_id)["chargebacks"] == 2
    ff.verify_all()


# -- webhook switches ---------------------------------------------------------------


def test_drop(ff):
    ff.configure(webhooks={"drop": 1})
    order_id, _ = ff.evaluate(last4="4242")
    ff.advance(STEP)
    log = ff.flush()
    assert log["pending"] == 0
    assert [(e["fate"], e["attempts"], e["pending"]) for e in log["webhooks"]] == [("dropped", 0, False)]
    assert ff.receiver.requests == []
    assert ff.order(order_id)["statusName"] == "COMPLETED"


def test_duplicate(ff):
    ff.configure(webhooks={"duplicate": 1.0})
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    entry = ff.flush()["webhooks"][0]
    assert (entry["fate"], entry["attempts"], entry["delivered"]) == ("duplicated", 2, 2)
    first, second = ff.receiver.requests
    assert [first.json["IsResent"], second.json["IsResent"]] == [False, True]
    assert first.json["ConfirmationId"] == second.json["ConfirmationId"] == entry["ConfirmationId"]
    assert {k: v for k, v in first.json.items() if k != "IsResent"} == {
        k: v for k, v in second.json.items() if k != "IsResent"
    }
    assert first.headers["x-fc-nonce"] != second.headers["x-fc-nonce"]  # each copy signed afresh
    ff.verify_all()


def test_reorder_sends_the_held_event_after_the_next_one(ff):
    ff.configure(webhooks={"reorder": 1})
    order_id, _ = ff.evaluate(last4="0259")
    ff.advance(STEP)  # challenge.presented: held back
    held = ff.flush(timeout=0.3)
    assert held["pending"] == 1 and held["webhooks"][0]["pending"] is True
    assert ff.receiver.requests == []
    ff.configure(webhooks={"reorder": 0})
    ff.advance(STEP)  # challenge.passed and order.completed: sent, the held one right after the first
    log = ff.flush()
    assert log["pending"] == 0
    assert ff.receiver.events(order_id) == ["challenge.passed", "challenge.presented", "order.completed"]
    assert [(e["event"], e["fate"]) for e in log["webhooks"]] == [
        ("challenge.presented", "reordered"),
        ("challenge.passed", "delivered"),
        ("order.completed", "delivered"),
    ]
    ff.verify_all()


def test_reorder_hold_runs_out_after_two_steps(ff):
    ff.configure(webhooks={"reorder": 1})
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    assert ff.flush(timeout=0.2)["pending"] == 1
    ff.advance(2 * STEP)
    log = ff.flush()
    assert [(e["fate"], e["pending"], e["attempts"]) for e in log["webhooks"]] == [("reordered", False, 1)]
    assert ff.receiver.events() == ["order.completed"]
    assert ff.receiver.requests[0].json["IsResent"] is False


def test_delay(ff):
    ff.configure(webhooks={"delay": 30})
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    waiting = ff.flush(timeout=0.3)
    assert (waiting["pending"], waiting["webhooks"][0]["fate"]) == (1, "delayed")
    assert ff.receiver.requests == []
    ff.advance(30)
    log = ff.flush()
    assert [(e["fate"], e["attempts"], e["lastHttpStatus"]) for e in log["webhooks"]] == [("delayed", 1, 200)]
    assert ff.receiver.events() == ["order.completed"]


def run_seeded(ff: FF) -> list[dict[str, Any]]:
    ff.configure(
        webhooks={"drop": 0.2, "duplicate": 0.2, "reorder": 0.25, "delay": 5, "delay_probability": 0.3, "seed": 7}
    )
    for _ in range(6):
        ff.evaluate(last4="0259")  # three events each
        ff.evaluate(last4="4242")  # one
    ff.advance(2 * STEP)
    ff.advance(2 * STEP)  # releases whatever reordered event is still held, and the delayed ones
    log = ff.flush()
    assert log["pending"] == 0
    return log["webhooks"]


def test_seeded_switches_are_reproducible_and_the_receiver_saw_what_the_log_says(ff, receiver):
    log = run_seeded(ff)
    fates = [e["fate"] for e in log]
    assert {"dropped", "duplicated", "reordered", "delayed", "delivered"} <= set(fates), fates

    arrived = [r.json for r in ff.receiver.requests]
    for entry in log:
        copies = [m for m in arrived if m["ConfirmationId"] == entry["ConfirmationId"]]
        assert len(copies) == entry["attempts"] == entry["delivered"], entry
        expected = {"dropped": 0, "duplicated": 2}.get(entry["fate"], 1)
        assert len(copies) == expected, entry
        assert [c["IsResent"] for c in copies] == [False, True][:expected]
        assert all(c["Event"] == entry["event"] and c["OrderId"] == entry["OrderId"] for c in copies)
    # a reordered event arrives after the next event of its order that was sent straight away
    position = {}
    for index, message in enumerate(arrived):
        position.setdefault(message["ConfirmationId"], index)
    for index, entry in enumerate(log):
        if entry["fate"] != "reordered":
            continue
        later = [e for e in log[index + 1 :] if e["OrderId"] == entry["OrderId"]]
        trigger = next((e for e in later if e["fate"] not in ("dropped", "reordered")), None)
        if trigger is not None:
            assert position[entry["ConfirmationId"]] > position[trigger["ConfirmationId"]], entry
    ff.verify_all()

    # the same seed and the same events: the same fates
    app, _ = receiver
    other = FlexFactorEmulator(step_seconds=STEP, webhook_url=ff.hook_url, webhook_key=KEY)
    with ServerThread(other) as server:
        token = httpx.post(server.url + "/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            again = run_seeded(FF(other, http, app, ff.hook_url, ff.host))
    assert [(e["event"], e["fate"]) for e in again] == [(e["event"], e["fate"]) for e in log]


def test_retries_until_delivered(ff):
    ff.receiver.statuses.extend([500, 503])
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    entry = ff.flush()["webhooks"][0]
    assert (entry["fate"], entry["attempts"], entry["lastHttpStatus"], entry["delivered"]) == ("delivered", 3, 200, 1)
    assert [r.json["IsResent"] for r in ff.receiver.requests] == [False, True, True]
    assert len({r.headers["x-fc-nonce"] for r in ff.receiver.requests}) == 3
    ff.verify_all()


def test_retries_run_out(ff):
    ff.configure(webhooks={"retries": 1})
    ff.receiver.statuses.extend([500] * 5)
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    entry = ff.flush()["webhooks"][0]
    assert (entry["fate"], entry["attempts"], entry["lastHttpStatus"], entry["delivered"]) == ("failed", 2, 500, 0)
    assert len(ff.receiver.requests) == 2
    stats = ff.http.get("/__emulator/stats").json()["webhooks"]
    assert (stats["failed"], stats["attempts"], stats["events"], stats["pending"]) == (1, 2, 1, 0)


def test_unreachable_receiver_fails(ff):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ff.configure(webhook_url=f"http://127.0.0.1:{port}/hooks", webhooks={"retries": 0})
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    entry = ff.flush()["webhooks"][0]
    assert (entry["fate"], entry["attempts"], entry["lastHttpStatus"], entry["lastError"]) == (
        "failed",
        1,
        None,
        "ConnectError",
    )


def test_content_type_switch(ff):
    ff.configure(webhook_content_type="text/plain")
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    ff.flush()
    (received,) = ff.receiver.requests
    assert received.headers["content-type"] == "text/plain"
    assert received.json["Event"] == "order.completed"
    verify(received, KEY, ff.host)


def test_another_key_signs_what_follows(ff):
    other = base64.b64encode(b"rotated-key").decode()
    ff.configure(webhook_key=other)
    ff.evaluate(last4="4242")
    ff.advance(STEP)
    ff.flush()
    verify(ff.receiver.requests[0], other, ff.host)
    with pytest.raises(AssertionError):
        verify(ff.receiver.requests[0], KEY, ff.host)


def test_without_a_url_nothing_is_sent(receiver):
    app, _ = receiver
    emulator = FlexFactorEmulator(step_seconds=STEP)
    with ServerThread(emulator) as server:
        token = httpx.post(server.url + "/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            body = payload()
            http.post("/v1/evaluate", json=body).raise_for_status()
            http.post("/__emulator/clock", json={"advance": STEP}).raise_for_status()
            log = http.post("/__emulator/webhooks/flush").json()
            assert [(e["event"], e["fate"], e["attempts"]) for e in log["webhooks"]] == [
                ("order.completed", "no-url", 0)
            ]
            assert log["webhooks"][0]["ExternalOrderId"] == body["orderId"]
            stats = http.get("/__emulator/stats").json()
            assert set(stats) == {"counts", "evaluations", "orders", "webhooks"}
            assert stats["orders"] == 1 and stats["evaluations"] == {body["idempotencyKey"]: 1}
            assert stats["webhooks"]["no-url"] == 1 and stats["webhooks"]["delivered"] == 0
    assert app.requests == []


def test_sign_webhook_follows_the_formula():
    body, host = b'{"Event":"order.completed"}', "hooks.example.com:8443"
    nonce, date = "0123456789abcdef0123456789abcdef", "Sat, 01 Mar 2025 12:30:00 GMT"
    headers = sign_webhook(body, KEY, host, nonce=nonce, date=date)
    secret = base64.b64decode(KEY)
    content_hash = base64.b64encode(hashlib.sha512(body).digest()).decode()
    signed = f"POST\n{nonce};{date};{host};{content_hash}".encode()
    assert headers == {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content_hash,
        "x-fc-authorization": SIGNED_HEADERS
        + base64.b64encode(hmac.new(secret, signed, hashlib.sha512).digest()).decode(),
        "x-fc-signature": base64.b64encode(hmac.new(secret, body, hashlib.sha512).digest()).decode(),
    }
    fresh = sign_webhook(body, KEY, host)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["x-fc-nonce"]) and fresh["x-fc-date"].endswith(" GMT")


# -- admin, auth and faults ---------------------------------------------------------


def test_config_round_trip_and_validation(ff):
    config = ff.configure(step_seconds=5, webhooks={"drop": 0.5, "seed": 3})
    assert config["step_seconds"] == 5 and config["capture_window_seconds"] == 3600
    assert config["webhooks"]["drop"] == 0.5 and config["webhooks"]["seed"] == 3 and config["webhooks"]["retries"] == 3
    assert config["webhook_url"] == ff.hook_url and config["webhook_content_type"] == WEBHOOK_CONTENT_TYPE
    assert config["errorShape"] == "flat"
    assert ff.http.get("/__emulator/config").json() == config
    for shape in ("legacy", "problem", "flat"):
        assert ff.configure(errorShape=shape) == {**config, "errorShape": shape}
    for bad, names in [
        ({"step_seconds": 0}, {"step_seconds"}),
        ({"capture_window_seconds": "1h"}, {"capture_window_seconds"}),
        ({"webhook_url": "ftp://x"}, {"webhook_url"}),
        ({"webhook_key": "not base64!"}, {"webhook_key"}),
        ({"errorShape": "xml"}, {"errorShape"}),
        ({"errorShape": "legacy", "step_seconds": -1}, {"step_seconds"}),
        (
            {"webhooks": {"drop": 2, "retries": -1, "seed": "x", "jitter": 1}},
            {
                "webhooks.drop",
                "webhooks.retries",
                "webhooks.seed",
                "webhooks.jitter",
            },
        ),
        ({"colour": "blue"}, {"colour"}),
    ]:
        response = ff.http.post("/__emulator/config", json=bad)
        assert response.status_code == 400 and set(response.json()["errors"]) == names, bad
    assert ff.http.get("/__emulator/config").json() == config  # nothing applied
    assert ff.configure(webhook_url=None)["webhook_url"] is None


def test_new_endpoints_want_a_bearer(ff):
    order_id, reference = ff.evaluate(last4="4242")
    with httpx.Client(base_url=str(ff.http.base_url)) as anonymous:
        for method, path, body in [
            ("GET", "/v1/orders", None),
            ("POST", "/v1/capture", capture_body(order_id)),
            ("POST", f"/v1/orders/{order_id}/cancel", {}),
            ("POST", f"/v1/orders/{reference['orderId']}/external-cancel", None),
            ("POST", f"/v1/orders/{order_id}/refund", {"amountToRefund": 1}),
        ]:
            response = anonymous.request(method, path, json=body)
            assert (response.status_code, response.json()) == (401, {"title": "Unauthorized", "status": 401}), path
        # bad app credentials: a 400 (as the sandbox), not a 401
        bad = anonymous.post("/v1/oauth2/token", json={**CREDENTIALS, "AppSecret": "wrong"})
        assert (bad.status_code, bad.json()["success"], bad.json()["errors"][0]["error"]) == (
            400,
            False,
            "Invalid credentials",
        )
    assert ff.order(order_id)["statusName"] == "COMPLETED"
    assert ff.admin_order(order_id)["refundedAmount"] == 0


def test_faults_on_the_new_endpoints(ff):
    order_id, body = ff.evaluate(last4="4242", transactionType="AUTHORIZATION")
    for endpoint, count in (("orders", 1), ("capture", 1), ("cancel", 2), ("refund", 1)):
        faults = [{"status": 503}] * count
        ff.http.post("/__emulator/faults", json={"endpoint": endpoint, "faults": faults}).raise_for_status()
    assert ff.http.get("/v1/orders").status_code == 503
    assert ff.http.get("/v1/orders").status_code == 200
    assert ff.http.post("/v1/capture", json=capture_body(order_id)).status_code == 503
    assert ff.http.post(f"/v1/orders/{order_id}/cancel").status_code == 503
    assert ff.http.post(f"/v1/orders/{body['orderId']}/external-cancel").status_code == 503  # the cancel fault
    assert ff.order(order_id)["statusName"] == "CAPTUREREQUIRED"  # a faulted call changed nothing
    captured = ff.http.post("/v1/capture", json=capture_body(order_id))
    assert (captured.status_code, captured.json()["status"]) == (200, "SUCCESS")
    assert ff.http.post(f"/v1/orders/{order_id}/refund", json={"amountToRefund": 1}).status_code == 503
    assert ff.admin_order(order_id)["refundedAmount"] == 0
    refunded = ff.http.post(f"/v1/orders/{order_id}/refund", json={"amountToRefund": 1})
    assert (refunded.status_code, refunded.json()["status"]) == (200, "SUCCESS")
    assert ff.admin_order(order_id)["refundedAmount"] == 100


def test_cli_options():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.emulators.flexfactor",
            "--port",
            "0",
            "--step-seconds",
            "0.5",
            "--capture-window",
            "60",
            "--webhook-url",
            "http://127.0.0.1:9/hooks",
            "--webhook-key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        config = httpx.get(url + "/__emulator/config").json()
        assert {k: config[k] for k in ("step_seconds", "capture_window_seconds", "webhook_url", "webhook_key")} == {
            "step_seconds": 0.5,
            "capture_window_seconds": 60,
            "webhook_url": "http://127.0.0.1:9/hooks",
            "webhook_key": KEY,
        }
    finally:
        process.terminate()
        process.wait(timeout=5)
