"""The FlexFactor emulator as a provider, over real HTTP on loopback: OAuth2 token and
bearer checks, /v1/evaluate validation, scenarios and idempotency, orders and faults.
What the sandbox showed beyond the seed (binding, answer shapes, refunds, external cancel)
is in ``test_flexfactor_emulator_sandbox``."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from devstack.emulators.base import ServerThread
from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, FlexFactorEmulator

CREDENTIALS = {"AppKey": DEFAULT_APP_KEY, "AppSecret": DEFAULT_APP_SECRET}
UNAUTHORIZED = {"title": "Unauthorized", "status": 401}
IN_PROGRESS = {"status": 409, "title": "an idempotent request is still in progress"}
FORGED = jwt.encode({"sub": DEFAULT_APP_KEY, "exp": int(time.time()) + 600, "jti": "x"}, "a-guessed-secret-" * 4)
TOKEN_FAILED = {
    "success": False,
    "result": None,
    "status": None,
    "statusCode": None,
    "errors": [{"key": "", "error": "Invalid credentials"}],
    "customProperties": {},
}


@pytest.fixture(scope="module")
def flexfactor() -> Iterator[tuple[FlexFactorEmulator, str]]:
    """A fresh emulator for this module (its counters start at zero)."""
    emulator = FlexFactorEmulator()
    with ServerThread(emulator) as server:
        yield emulator, server.url


@pytest.fixture(scope="module")
def token(flexfactor) -> str:
    _, url = flexfactor
    response = httpx.post(url + "/v1/oauth2/token", json=CREDENTIALS)
    response.raise_for_status()
    return response.json()["accessToken"]


@pytest.fixture
def client(flexfactor, token) -> Iterator[httpx.Client]:
    """An authorized client; the fault queue is emptied after each test."""
    _, url = flexfactor
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        yield http
        http.delete("/__emulator/faults").raise_for_status()


def queue_faults(http: httpx.Client, endpoint: str, *faults: dict[str, Any]) -> None:
    http.post("/__emulator/faults", json={"endpoint": endpoint, "faults": list(faults)}).raise_for_status()


def evaluations(http: httpx.Client, key: str) -> int:
    return http.get("/__emulator/stats").json()["evaluations"].get(key, 0)


def payload(*, mit: bool = False, last4: str = "4242", phone: str | None = None, **top: Any) -> dict[str, Any]:
    """A valid /evaluate request (seed 003) with a fresh idempotency key."""
    body: dict[str, Any] = {
        "isDeclined": True,
        "orderId": f"order-{uuid.uuid4()}",
        "siteId": str(uuid.uuid4()),
        "idempotencyKey": str(uuid.uuid4()),
        "transaction": {
            "id": str(uuid.uuid4()),
            "timestampUtc": "2025-03-01T12:30:00Z",
            "timezoneUtcOffset": 0,
            "amount": 1999,
            "currency": "USD",
            "responseCode": "51",
            "responseCodeSource": "cybersource",
            "avsResultCode": "Y",
            "cvvResultCode": "M",
            "cavvResultCode": "2",
            "cardNotPresent": True,
        },
        "payer": {"email": "payer@example.com"},
        "paymentMethod": {
            "holderName": "Jane Doe",
            "cardType": "CREDIT",
            "cardBrand": "VISA",
            "cardCountry": "US",
            "expirationMonth": 12,
            "expirationYear": 2030,
            "cardBinNumber": "411111",
            "cardLast4Digits": last4,
            "cardNumber": f"tok_{uuid.uuid4().hex}",
        },
        "billingInformation": {
            "firstName": "Jane",
            "lastName": "Doe",
            "country": "United States",
            "countryCode": "US",
            "addressLine1": "1 Main St",
            "city": "San Francisco",
            "zipCode": "94111",
        },
    }
    if phone:
        body["payer"]["phone"] = phone
    if mit:
        body.update(
            isMIT=True,
            isRecurring=True,
            expiryDateUtc="2025-03-08T12:30:00Z",
            subscription={"subscriptionId": "sub_1", "interval": "monthly", "price": 1999, "currency": "USD"},
            threeDSecure={
                "ecommerceIndicator": "02",
                "authenticationValue": "AAABBB",
                "directoryServerTransactionId": str(uuid.uuid4()),
            },
        )
    else:
        body["customerIp"] = "203.0.113.7"
    body.update(top)
    return body


# -- token and bearer ---------------------------------------------------------------


def test_token_with_the_right_credentials(flexfactor):
    _, url = flexfactor
    before = time.time()
    response = httpx.post(url + "/v1/oauth2/token", json=CREDENTIALS)
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("success", "result", "status", "statusCode", "errors", "customProperties")} == {
        "success": True,
        "result": None,
        "status": None,
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }
    assert body["refreshToken"] and uuid.UUID(body["id"])
    assert jwt.get_unverified_header(body["accessToken"])["alg"] == "HS256"
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert abs(claims["exp"] - (before + 600)) < 3
    assert abs(body["expires"] - (before + 600) * 1000) < 3000


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"AppKey": DEFAULT_APP_KEY, "AppSecret": "wrong"}},
        {"json": {"AppKey": "someone-else", "AppSecret": DEFAULT_APP_SECRET}},
        {"json": {"AppKey": DEFAULT_APP_KEY}},
        {"json": {}},
        {"data": CREDENTIALS},  # form-encoded is not how the provider takes them
    ],
    ids=["wrong-secret", "wrong-key", "no-secret", "empty", "form-encoded"],
)
def test_token_refused_without_the_right_credentials(flexfactor, request_kwargs):
    _, url = flexfactor
    response = httpx.post(url + "/v1/oauth2/token", **request_kwargs)
    assert response.status_code == 400  # the sandbox answers bad credentials with a 400, not a 401
    assert response.json() == TOKEN_FAILED


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {FORGED}",
        "Bearer not-a-jwt",
        "Basic ZmY6ZmY=",
    ],
    ids=["missing", "forged", "garbage", "basic"],
)
def test_endpoints_refuse_a_request_without_a_valid_bearer(flexfactor, authorization):
    emulator, url = flexfactor
    headers = {"Authorization": authorization} if authorization else {}
    orders_before = len(emulator.orders)
    evaluate = httpx.post(url + "/v1/evaluate", json=payload(), headers=headers)
    order = httpx.get(url + f"/v1/orders/{uuid.uuid4()}", headers=headers)
    assert (evaluate.status_code, evaluate.json()) == (401, UNAUTHORIZED)
    assert (order.status_code, order.json()) == (401, UNAUTHORIZED)
    assert len(emulator.orders) == orders_before


def test_token_expires_after_its_ttl():
    server = ServerThread(FlexFactorEmulator(token_ttl_seconds=1)).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            access = http.post("/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
            headers = {"Authorization": f"Bearer {access}"}
            assert http.post("/v1/evaluate", json=payload(), headers=headers).status_code == 200
            time.sleep(1.2)
            late = http.post("/v1/evaluate", json=payload(), headers=headers)
            assert (late.status_code, late.json()) == (401, UNAUTHORIZED)
    finally:
        server.stop()


# -- scenarios ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "order_status", "status_name"),
    [
        (payload(mit=True, last4="3184"), "APPROVED", 7, "COMPLETED"),
        (payload(mit=True, last4="4242"), "SUBMITTED", 0, "DRAFT"),
        (payload(last4="1111", phone="+1 555-123-4567"), "CHALLENGE", 0, "DRAFT"),
        (payload(last4="1111"), "DECLINED", 2, "CANCELLED"),
        (payload(last4="0002"), "DECLINED", 2, "CANCELLED"),
        (payload(last4="0259"), "CHALLENGE", 0, "DRAFT"),
        (payload(last4="4242"), "APPROVED", 7, "COMPLETED"),
        (payload(last4="4242", transactionType="authorization"), "CAPTUREREQUIRED", 5, "CAPTUREREQUIRED"),
        (payload(last4="4242", transactionType="PURCHASE"), "APPROVED", 7, "COMPLETED"),
        (payload(last4="0002", transactionType="AUTHORIZATION"), "DECLINED", 2, "CANCELLED"),
    ],
    ids=[
        "mit-3184",
        "mit-other",
        "cit-1111-phone",
        "cit-1111-no-phone",
        "cit-0002",
        "cit-0259",
        "cit-other",
        "cit-authorization",
        "cit-purchase",
        "cit-declined-authorization",
    ],
)
def test_scenarios(client, body, status, order_status, status_name):
    body = {**body, "idempotencyKey": str(uuid.uuid4())}
    response = client.post("/v1/evaluate", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == status
    assert answer["orderId"] == answer["orderSessionKey"] and uuid.UUID(answer["orderSessionKey"])
    assert {k: answer[k] for k in ("senseKey", "success", "result", "statusCode", "errors", "customProperties")} == {
        "senseKey": None,
        "success": True,
        "result": "Success",
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }
    order = client.get(f"/v1/orders/{answer['orderSessionKey']}").json()
    assert (order["status"], order["statusName"]) == (order_status, status_name)
    assert order["isMIT"] is (body.get("isMIT") is True)


def test_mit_without_recurring_and_cit_without_is_mit(client):
    mit = payload(mit=True, last4="3184", isRecurring=False)
    del mit["subscription"], mit["threeDSecure"]
    assert client.post("/v1/evaluate", json=mit).json()["status"] == "APPROVED"
    cit = payload(last4="0259")
    assert "isMIT" not in cit
    cit_explicit = payload(last4="0259", isMIT=False)
    assert client.post("/v1/evaluate", json=cit).json()["status"] == "CHALLENGE"
    assert client.post("/v1/evaluate", json=cit_explicit).json()["status"] == "CHALLENGE"


def test_sense_key_is_echoed(client):
    answer = client.post("/v1/evaluate", json=payload(senseKey="sense-123")).json()
    assert answer["senseKey"] == "sense-123"


# -- validation ---------------------------------------------------------------------

TRACE_ID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


def assert_problem(response: httpx.Response) -> dict[str, list[str]]:
    """The sandbox's flat 400 (the default shape): ``{"TraceId": [..], "Field": [..], ...}``;
    answers the field errors, TraceId left out."""
    assert response.status_code == 400, response.text
    body = dict(response.json())
    trace = body.pop("TraceId")
    assert isinstance(trace, list) and len(trace) == 1 and TRACE_ID.fullmatch(trace[0])
    assert body and all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in body.values())
    return body


def test_validation_names_every_problem_at_once(client, flexfactor):
    emulator, _ = flexfactor
    body = payload(isDeclined=False)
    body["transaction"].update(amount=5, currency="DOLLARS", cardNotPresent="yes")
    body["paymentMethod"].update(expirationMonth=13, expirationYear=30)
    before = len(emulator.orders)
    errors = assert_problem(client.post("/v1/evaluate", json=body))
    assert set(errors) == {
        "IsDeclined",
        "Transaction.Amount",
        "Transaction.Currency",
        "Transaction.CardNotPresent",
        "PaymentMethod.ExpirationMonth",
        "PaymentMethod.ExpirationYear",
    }
    assert errors["Transaction.CardNotPresent"] == ["The field CardNotPresent is invalid."]
    assert len(emulator.orders) == before
    assert evaluations(client, body["idempotencyKey"]) == 0


def test_validation_of_an_empty_request(client):
    errors = assert_problem(client.post("/v1/evaluate", json={}))
    assert errors == {
        "IsDeclined": ["The IsDeclined field is required."],
        "OrderId": ["Merchant's orderId is required"],
        "IdempotencyKey": ["The IdempotencyKey field is required."],
        "Transaction": ["The Transaction field is required."],
    }
    assert assert_problem(client.post("/v1/evaluate", content=b"not json")) == {
        "$": ["The request body must be a JSON object."]
    }


def test_validation_of_nested_required_fields(client):
    body = payload(idempotencyKey="abcd1234")  # any non-empty key, not only a UUID
    body["transaction"] = {"amount": 1999}
    body["paymentMethod"] = {"cardLast4Digits": "111"}
    errors = assert_problem(client.post("/v1/evaluate", json=body))
    assert errors == {
        "Transaction.Id": ["The Id field is required."],
        "Transaction.Currency": ["The Currency field is required."],
        "Transaction.ResponseCode": ["The ResponseCode field is required."],
        "Transaction.AvsResultCode": ["The AvsResultCode field is required."],
        "Transaction.CvvResultCode": ["The CvvResultCode field is required."],
        # the sandbox refuses these too (tests/fixtures/real/flexcharge_sandbox_400_flat_required_fields.json)
        "Transaction.CavvResultCode": ["The CavvResultCode field is required."],
        "Transaction.ResponseCodeSource": ["The ResponseCodeSource field is required."],
    }


def test_validation_of_mit_fields(client):
    body = payload(mit=True)
    del body["expiryDateUtc"], body["subscription"], body["threeDSecure"], body["isRecurring"]
    assert client.post("/v1/evaluate", json=body).status_code == 200  # none of them is required

    body = payload(mit=True, isRecurring=None, expiryDateUtc="next week")
    assert assert_problem(client.post("/v1/evaluate", json=body)) == {
        "ExpiryDateUtc": ["The field ExpiryDateUtc is invalid."]
    }

    body = payload(mit=True, subscription={"price": "a lot"}, threeDSecure={})
    assert assert_problem(client.post("/v1/evaluate", json=body)) == {
        "Subscription.Price": ["The field Price is invalid."]
    }


@pytest.mark.parametrize(("amount", "accepted"), [(10, False), (11, True), (19999, True), (20000, False)])
def test_sandbox_amount_bounds(client, amount, accepted):
    body = payload()
    body["transaction"]["amount"] = amount
    response = client.post("/v1/evaluate", json=body)
    if accepted:
        assert response.status_code == 200
    else:
        assert list(assert_problem(response)) == ["Transaction.Amount"]


@pytest.mark.parametrize(
    ("offset", "accepted"), [("-5", True), (-5, True), ("+2", True), (5.5, True), ("five", False), (True, False)]
)
def test_timezone_offset_as_int_or_numeric_string(client, offset, accepted):
    body = payload()
    body["transaction"]["timezoneUtcOffset"] = offset
    response = client.post("/v1/evaluate", json=body)
    if accepted:
        assert response.status_code == 200
    else:
        assert list(assert_problem(response)) == ["Transaction.TimezoneUtcOffset"]


def test_unknown_fields_and_zipcode_spelling_are_accepted(client):
    body = payload(somethingNew={"nested": [1, 2]}, mid="abcd1234", orderItems=[{"sku": "X", "quantity": 2}])
    body["transaction"]["futureField"] = "x"
    body["billingInformation"]["zipcode"] = body["billingInformation"].pop("zipCode")
    assert client.post("/v1/evaluate", json=body).status_code == 200


# -- idempotency --------------------------------------------------------------------


def test_repeat_with_the_same_key_and_body_replays_the_answer(client, flexfactor):
    emulator, _ = flexfactor
    body = payload()
    first = client.post("/v1/evaluate", json=body)
    orders = len(emulator.orders)
    again = client.post("/v1/evaluate", json=dict(reversed(list(body.items()))))  # same JSON, other key order
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert evaluations(client, body["idempotencyKey"]) == 1
    assert len(emulator.orders) == orders


def test_same_key_with_another_body_is_a_conflict(client):
    body = payload()
    assert client.post("/v1/evaluate", json=body).status_code == 200
    other = {**body, "transaction": {**body["transaction"], "amount": 2999}}
    response = client.post("/v1/evaluate", json=other)
    assert (response.status_code, response.json()) == (
        409,
        {"status": 409, "title": "idempotency key reused with a different payload"},
    )
    assert evaluations(client, body["idempotencyKey"]) == 1


# -- faults -------------------------------------------------------------------------


def test_fault_500_then_success_creates_one_order(client):
    body = payload()
    queue_faults(client, "evaluate", {"status": 500})
    failed = client.post("/v1/evaluate", json=body)
    assert (failed.status_code, failed.json()) == (500, {"status": 500, "title": "injected fault"})
    assert evaluations(client, body["idempotencyKey"]) == 0
    assert client.post("/v1/evaluate", json=body).status_code == 200
    assert evaluations(client, body["idempotencyKey"]) == 1


def test_fault_409_in_progress_and_401(client):
    queue_faults(client, "evaluate", {"status": 409}, {"status": 401})
    body = payload()
    busy = client.post("/v1/evaluate", json=body)
    assert (busy.status_code, busy.json()) == (409, IN_PROGRESS)
    denied = client.post("/v1/evaluate", json=body)
    assert (denied.status_code, denied.json()) == (401, UNAUTHORIZED)
    assert evaluations(client, body["idempotencyKey"]) == 0


def test_fault_delay_then_normal_answer(client):
    queue_faults(client, "evaluate", {"delay": 0.3})
    started = time.monotonic()
    response = client.post("/v1/evaluate", json=payload())
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_on_token_and_orders(client, flexfactor):
    _, url = flexfactor
    queue_faults(client, "token", {"status": 503})
    assert httpx.post(url + "/v1/oauth2/token", json=CREDENTIALS).json() == {"status": 503, "title": "injected fault"}
    assert httpx.post(url + "/v1/oauth2/token", json=CREDENTIALS).status_code == 200
    order_id = client.post("/v1/evaluate", json=payload()).json()["orderSessionKey"]
    queue_faults(client, "orders", {"status": 502})
    assert client.get(f"/v1/orders/{order_id}").status_code == 502
    assert client.get(f"/v1/orders/{order_id}").status_code == 200


# -- orders -------------------------------------------------------------------------


def test_order_by_id(client):
    body = payload(mit=True, last4="3184")
    answer = client.post("/v1/evaluate", json=body).json()
    response = client.get(f"/v1/orders/{answer['orderSessionKey']}")
    assert response.status_code == 200
    order = response.json()
    placed = order.pop("orderPlacedDate")
    assert uuid.UUID(order.pop("correlationId"))
    assert order == {
        "id": answer["orderSessionKey"],
        "status": 7,
        "statusName": "COMPLETED",
        "expiryDate": "2025-03-08T12:30:00Z",
        "referenceNumber": body["orderId"],
        "amount": 1999,
        "currency": "USD",
        "currencyCode": "USD",
        "currencySymbol": "$",
        "isMIT": True,
    }
    assert placed.endswith("Z") and placed[:4].isdigit()

    cit = client.get(f"/v1/orders/{client.post('/v1/evaluate', json=payload()).json()['orderId']}").json()
    assert cit["isMIT"] is False and cit["expiryDate"] is None


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_order_is_404(client, order_id):
    assert client.get(f"/v1/orders/{order_id}").status_code == 404


def test_stats_count_orders(client, flexfactor):
    emulator, _ = flexfactor
    stats = client.get("/__emulator/stats").json()
    assert stats["orders"] == len(emulator.orders) == sum(stats["evaluations"].values())
    assert stats["counts"]["evaluate"] >= 1


def test_cli_runs_the_emulator():
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.emulators.flexfactor", "--port", "0", "--token-ttl", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("flexfactor emulator on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert httpx.get(url + "/__emulator/health").json() == {"ok": True, "emulator": "flexfactor"}
        assert httpx.post(url + "/v1/oauth2/token", json=CREDENTIALS).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=5)
