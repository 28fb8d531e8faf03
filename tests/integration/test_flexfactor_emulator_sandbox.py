"""The FlexFactor emulator behaves as real sandbox traffic showed (PROVIDERS.md section 2,
"What real FlexFactor traffic shows"; issue 11 item 6), over real HTTP on loopback:
ASP.NET binding and what /evaluate accepts and refuses, the three 400 shapes, the token
endpoint, orders and their list, capture, cancel and external-cancel, partial refunds in
the currency's minor units, and the webhooks it sends.

Each test gets a fresh emulator (1 step = 100 s of emulator time, driven by
``POST /__emulator/clock``) whose webhooks go to a fresh receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from werkzeug.wrappers import Request, Response

from decline_rescue.domain import statuses as st
from decline_rescue.providers.flexfactor import vocabulary
from devstack.emulators.base import ServerThread
from devstack.emulators.flexfactor import FlexFactorEmulator
from tests.integration.test_flexfactor_emulator import CREDENTIALS, payload

STEP = 100.0
KEY = base64.b64encode(b"sandbox-test-subscriber-key-0123456789").decode()
TRACE_ID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
# the recorded sandbox 400 (the open-source Ruby gateway's unit test), TraceId aside
RECORDED_400 = {
    "OrderId": ["Merchant's orderId is required"],
    "IsDeclined": ["The IsDeclined field is required."],
    "IdempotencyKey": ["The IdempotencyKey field is required."],
    "Transaction.Id": ["The Id field is required."],
    "Transaction.ResponseCode": ["The ResponseCode field is required."],
    "Transaction.AvsResultCode": ["The AvsResultCode field is required."],
    "Transaction.CvvResultCode": ["The CvvResultCode field is required."],
    # a later run of the same remote test (tests/fixtures/real/flexcharge_sandbox_400_flat_required_fields.json)
    "Transaction.CavvResultCode": ["The CavvResultCode field is required."],
    "Transaction.ResponseCodeSource": ["The ResponseCodeSource field is required."],
}


# -- a webhook receiver and the emulator under test ---------------------------------


@dataclass
class Receiver:
    """Records every webhook's raw body and headers; answers 200."""

    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.requests.append((request.get_data(), {k.lower(): v for k, v in request.headers.items()}))
        return Response("", status=200)(environ, start_response)

    def received(self, order_id: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        with self.lock:
            requests = list(self.requests)
        return [(json.loads(body), headers) for body, headers in requests if json.loads(body)["OrderId"] == order_id]


@dataclass
class FF:
    url: str
    http: httpx.Client
    receiver: Receiver

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/v1/evaluate", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def admin_order(self, order_id: str) -> dict[str, Any]:
        return next(o for o in self.http.get("/__emulator/orders").json()["orders"] if o["id"] == order_id)

    def advance(self, steps: float = 1) -> None:
        self.http.post("/__emulator/clock", json={"advance": steps * STEP}).raise_for_status()

    def configure(self, **body: Any) -> httpx.Response:
        return self.http.post("/__emulator/config", json=body)

    def flush(self) -> None:
        self.http.post("/__emulator/webhooks/flush", json={"timeout": 5}).raise_for_status()

    def captured(self, amount: int = 1999, capture: int = 1500, currency: str = "USD") -> str:
        """A CIT order authorised then captured for ``capture`` (minor units)."""
        body = payload(transactionType="Authorization")
        body["transaction"].update(amount=amount, currency=currency)
        order_id = self.evaluate(body)["orderSessionKey"]
        key = str(uuid.uuid4())
        done = self.http.post(
            "/v1/capture", json={"idempotencyKey": key, "orderId": order_id, "amount": capture, "currency": currency}
        )
        assert done.json()["status"] == "SUCCESS", done.text
        return order_id


@pytest.fixture
def ff() -> Iterator[FF]:
    receiver = Receiver()
    with ServerThread(receiver) as hooks:
        emulator = FlexFactorEmulator(step_seconds=STEP, webhook_url=hooks.url + "/hooks", webhook_key=KEY)
        with ServerThread(emulator) as server:
            token = httpx.post(server.url + "/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
                yield FF(server.url, http, receiver)


def flat_errors(response: httpx.Response) -> dict[str, list[str]]:
    """The default 400: flat, a TraceId beside the fields; answers the fields."""
    assert response.status_code == 400, response.text
    body = dict(response.json())
    trace = body.pop("TraceId")
    assert len(trace) == 1 and TRACE_ID.fullmatch(trace[0])
    return body


def recorded_request() -> dict[str, Any]:
    """The request of the recorded sandbox transcript (the Ruby gateway's): no timestampUtc,
    no customerIp, no isMIT, timezoneUtcOffset "-5", amount 100 cents, a payer phone."""
    return {
        "siteId": str(uuid.uuid4()),
        "mid": str(uuid.uuid4()),
        "isDeclined": True,
        "orderId": str(uuid.uuid4()),
        "idempotencyKey": str(uuid.uuid4()),
        "transaction": {
            "id": str(uuid.uuid4()),
            "dynamicDescriptor": "MyShoesStore",
            "timezoneUtcOffset": "-5",
            "amount": 100,
            "currency": "USD",
            "responseCode": "100",
            "responseCodeSource": "nmi",
            "avsResultCode": "200",
            "cvvResultCode": "111",
            "cavvResultCode": "111",
            "cardNotPresent": True,
        },
        "paymentMethod": {
            "holderName": "Longbob Longsen",
            "cardType": "CREDIT",
            "cardBrand": "VISA",
            "cardCountry": "CA",
            "expirationMonth": 9,
            "expirationYear": 2030,
            "cardBinNumber": "411111",
            "cardLast4Digits": "1111",
            "cardNumber": "4111111111111111",
        },
        "billingInformation": {
            "firstName": "Cure",
            "lastName": "Tester",
            "country": "CA",
            "phone": "(555)555-5555",
            "countryCode": "CA",
            "addressLine1": "456 My Street",
            "state": "ON",
            "city": "Ottawa",
            "zipCode": "K1C2N6",
        },
        "payer": {"email": "test@gmail.com", "phone": "+99.2001a/+99.2001b"},
    }


# -- 1. /v1/evaluate accepts what the sandbox accepts --------------------------------


def test_the_recorded_sandbox_request_is_answered_as_the_sandbox_did(ff):
    answer = ff.evaluate(recorded_request())
    assert answer["status"] == "CHALLENGE"
    assert answer["statusCode"] is None and answer["senseKey"] is None


def test_property_names_bind_in_any_case_at_every_level(ff):
    body = {
        "IsDeclined": True,
        "OrderId": "Order-Mixed-1",
        "IDEMPOTENCYKEY": "k-mixed-1",
        "IsMit": True,
        "Source": "api",
        "ExtraData": {"anything": [1, 2]},
        "Transaction": {
            "Id": "t-1",
            "Amount": 1999,
            "CURRENCY": "usd",
            "ResponseCode": "51",
            "ResponseCodeSource": "nmi",
            "AvsResultCode": "Y",
            "CvvResultCode": "M",
            "CavvResultCode": "2",
        },
        "PaymentMethod": {"Token": True, "CardNumber": "tok_abc", "CardLast4Digits": "3184"},
        "threeDSecure": {"EcommerceIndicator": "02"},
    }
    answer = ff.evaluate(body)
    assert answer["status"] == "APPROVED"  # IsMit bound: a MIT on 3184
    order = ff.order(answer["orderSessionKey"])
    assert (order["referenceNumber"], order["currency"], order["isMIT"]) == ("Order-Mixed-1", "USD", True)
    # the same request in other spellings is the same request: replayed, no second order
    again = json.loads(json.dumps(body).replace('"IDEMPOTENCYKEY"', '"idempotencyKey"').replace('"Amount"', '"amount"'))
    assert ff.evaluate(again) == answer
    assert ff.http.get("/__emulator/stats").json()["evaluations"] == {"k-mixed-1": 1}


def test_a_bare_card_number_picks_the_scenario_and_a_token_does_not(ff):
    phone = {"email": "NA", "phone": "+1 555 0100"}
    pan = payload(payer=phone)
    pan["paymentMethod"] = {"cardNumber": "4111111111111111"}  # no cardLast4Digits: the PAN's end
    assert ff.evaluate(pan)["status"] == "CHALLENGE"
    token = payload(payer=phone)
    token["paymentMethod"] = {"Token": True, "cardNumber": "4111111111111111"}  # a token is not a card number
    assert ff.evaluate(token)["status"] == "APPROVED"


def minimal() -> dict[str, Any]:
    """Only what the sandbox requires, and what an order needs (amount, currency)."""
    return {
        "isDeclined": True,
        "orderId": f"min-{uuid.uuid4().hex[:8]}",
        "idempotencyKey": uuid.uuid4().hex[:10],
        "transaction": {
            "id": "t-1",
            "amount": 1999,
            "currency": "USD",
            "responseCode": "05",
            "responseCodeSource": "nmi",
            "avsResultCode": "Y",
            "cvvResultCode": "M",
            "cavvResultCode": "2",
        },
    }


def test_the_minimal_request_is_accepted(ff):
    answer = ff.evaluate(minimal())
    assert answer["status"] == "APPROVED"
    assert ff.order(answer["orderSessionKey"])["isMIT"] is False


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DROP:
        node.pop(last, None)
    else:
        node[last] = value
    return body


_DROP = object()
ACCEPTED: list[dict[str, Any]] = [
    {"transaction.timestampUtc": _DROP, "transaction.timestamp": "2024-04-04T13:29:08Z"},  # the gateway's
    {"customerIp": _DROP},
    {"isMIT": _DROP},
    {"isRecurring": _DROP},
    {"transaction.timezoneUtcOffset": _DROP},
    {"transaction.timezoneUtcOffset": "-5"},
    {"transaction.timezoneUtcOffset": -5},
    {"orderSource": "Site1"},
    {"transactionType": "Purchase"},
    {"transactionType": "Authorization"},
    {"payer.email": "NA"},
    {"paymentMethod": {"Token": True, "cardNumber": "tok_0123456789"}},
    {"transaction.responseStatus": "Approved"},
    {"idempotencyKey": "k1"},
    {"transaction.amount": "1999"},  # ASP.NET's web defaults read numbers from strings
    {"payer": _DROP, "billingInformation": _DROP, "siteId": _DROP, "paymentMethod": _DROP},
]


@pytest.mark.parametrize("changes", ACCEPTED, ids=[",".join(c)[:40] + f"-{i}" for i, c in enumerate(ACCEPTED)])
def test_the_sandbox_accepts(ff, changes):
    body = payload()
    for path, value in changes.items():
        _set(body, path, value)
    response = ff.http.post("/v1/evaluate", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "changes",
    [
        {"expiryDateUtc": None},
        {"expiryDateUtc": _DROP},
        {"subscription": {"subscriptionId": "s", "interval": "monthly", "price": "19.99", "currency": "USD"}},
        {"subscription": {"price": 1999}},
        {"threeDSecure": _DROP, "subscription": _DROP},
    ],
    ids=["expiry-null", "expiry-absent", "price-string", "price-number", "no-3ds-no-subscription"],
)
def test_the_sandbox_accepts_a_mit(ff, changes):
    body = payload(mit=True)
    for path, value in changes.items():
        _set(body, path, value)
    answer = ff.evaluate(body)
    assert answer["status"] == "SUBMITTED"
    expected = "2025-03-08T12:30:00Z" if body.get("expiryDateUtc") else None
    assert ff.order(answer["orderSessionKey"])["expiryDate"] == expected


def test_a_mit_without_expiry_never_expires(ff):
    answer = ff.evaluate(_set(payload(mit=True, last4="0077"), "expiryDateUtc", None))
    ff.advance(50)
    assert ff.order(answer["orderSessionKey"])["statusName"] == "PROCESSING"


REFUSED = [
    ("orderId", _DROP, {"OrderId": ["Merchant's orderId is required"]}),
    ("orderId", "", {"OrderId": ["Merchant's orderId is required"]}),
    ("isDeclined", _DROP, {"IsDeclined": ["The IsDeclined field is required."]}),
    ("idempotencyKey", "", {"IdempotencyKey": ["The IdempotencyKey field is required."]}),
    ("transaction.id", _DROP, {"Transaction.Id": ["The Id field is required."]}),
    ("transaction.responseCode", _DROP, {"Transaction.ResponseCode": ["The ResponseCode field is required."]}),
    ("transaction.avsResultCode", _DROP, {"Transaction.AvsResultCode": ["The AvsResultCode field is required."]}),
    ("transaction.cvvResultCode", _DROP, {"Transaction.CvvResultCode": ["The CvvResultCode field is required."]}),
    ("transaction.cavvResultCode", _DROP, {"Transaction.CavvResultCode": ["The CavvResultCode field is required."]}),
    (
        "transaction.responseCodeSource",
        "",
        {"Transaction.ResponseCodeSource": ["The ResponseCodeSource field is required."]},
    ),
    ("expiryDateUtc", "", {"ExpiryDateUtc": ["The field ExpiryDateUtc is invalid."]}),
    ("transaction.amount", "abc", {"Transaction.Amount": ["The field Amount is invalid."]}),
    ("transaction.amount", 19.99, {"Transaction.Amount": ["The field Amount is invalid."]}),
    ("isMIT", "yes", {"IsMIT": ["The field IsMIT is invalid."]}),
    (
        "paymentMethod.expirationMonth",
        13,
        {"PaymentMethod.ExpirationMonth": ["The field ExpirationMonth must be between 1 and 12."]},
    ),
    (
        "paymentMethod.expirationYear",
        "25",
        {"PaymentMethod.ExpirationYear": ["The field ExpirationYear must have 4 digits."]},
    ),
]


@pytest.mark.parametrize(("path", "value", "errors"), REFUSED, ids=[f"{p}={v!r}"[:40] for p, v, _ in REFUSED])
def test_the_sandbox_refuses(ff, path, value, errors):
    assert flat_errors(ff.http.post("/v1/evaluate", json=_set(payload(), path, value))) == errors


@pytest.mark.parametrize(("amount", "accepted"), [(10, False), (11, True), (100, True), (19999, True), (20000, False)])
def test_the_sandbox_money_rule(ff, amount, accepted):
    response = ff.http.post("/v1/evaluate", json=_set(payload(), "transaction.amount", amount))
    assert (response.status_code == 200) is accepted
    if not accepted:
        assert list(flat_errors(response)) == ["Transaction.Amount"]


def test_the_recorded_400_in_full(ff):
    body = payload()
    for name in ("orderId", "isDeclined", "idempotencyKey"):
        del body[name]
    for name in ("id", "responseCode", "avsResultCode", "cvvResultCode", "cavvResultCode"):
        del body["transaction"][name]
    body["transaction"]["responseCodeSource"] = ""  # as the gateway sent it
    assert flat_errors(ff.http.post("/v1/evaluate", json=body)) == RECORDED_400


# -- 2. answer shapes ---------------------------------------------------------------


def test_error_shapes_switch(ff):
    body = {"transaction": {"amount": 1999, "currency": "USD"}, "paymentMethod": {"cardLast4Digits": "4242"}}
    expected = {**RECORDED_400}
    assert ff.http.get("/__emulator/config").json()["errorShape"] == "flat"
    flat = ff.http.post("/v1/evaluate", json=body)
    assert flat_errors(flat) == expected
    assert next(iter(flat.json())) == "TraceId"

    assert ff.configure(errorShape="legacy").json()["errorShape"] == "legacy"
    legacy = ff.http.post("/v1/evaluate", json=body)
    assert legacy.status_code == 400 and set(legacy.json()) == {"status", "errors"}
    assert legacy.json()["status"] == "400"
    errors = dict(legacy.json()["errors"])
    assert TRACE_ID.fullmatch(errors.pop("TraceId")[0]) and errors == expected

    ff.configure(errorShape="problem")
    problem = ff.http.post("/v1/evaluate", json=body)
    assert problem.status_code == 400
    answer = problem.json()
    assert set(answer) == {"type", "title", "status", "traceId", "errors"}
    assert (answer["status"], answer["title"]) == (400, "One or more validation errors occurred.")
    assert answer["type"].startswith("https://tools.ietf.org/html/rfc9110#section-15.5.1")
    assert TRACE_ID.fullmatch(answer["traceId"]) and answer["errors"] == expected

    # every 400 for bad fields follows the switch: the orders list, a refund body
    assert set(ff.http.get("/v1/orders", params={"orderBy": "price"}).json()["errors"]) == {"orderBy"}
    ff.configure(errorShape="flat")
    assert flat_errors(ff.http.get("/v1/orders", params={"orderBy": "price"})) == {
        "orderBy": ["The orderBy parameter must be createdOn or amount."]
    }
    bad = ff.configure(errorShape="xml")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"errorShape"}


def test_evaluate_answer_shape(ff):
    answer = ff.evaluate(payload())
    assert set(answer) == {
        "orderSessionKey",
        "senseKey",
        "orderId",
        "success",
        "result",
        "status",
        "statusCode",
        "errors",
        "customProperties",
    }
    assert (answer["senseKey"], answer["statusCode"], answer["result"]) == (None, None, "Success")
    assert answer["orderId"] == answer["orderSessionKey"]


# -- 3. token -----------------------------------------------------------------------


@pytest.mark.parametrize("names", [("AppKey", "AppSecret"), ("appKey", "appSecret"), ("APPKEY", "appsecret")], ids=str)
def test_token_credentials_bind_in_any_case(ff, names):
    body = {names[0]: CREDENTIALS["AppKey"], names[1]: CREDENTIALS["AppSecret"]}
    response = httpx.post(ff.url + "/v1/oauth2/token", json=body)
    assert response.status_code == 200, response.text
    access = response.json()["accessToken"]
    assert httpx.get(ff.url + "/v1/orders", headers={"Authorization": f"Bearer {access}"}).status_code == 200


def test_token_answer_and_claims_as_the_sandbox(ff):
    before = time.time()
    body = httpx.post(
        ff.url + "/v1/oauth2/token", json={"appKey": "ff-local-app-key", "appSecret": "ff-local-app-secret"}
    ).json()
    assert set(body) == {
        "accessToken",
        "refreshToken",
        "expires",
        "id",
        "session",
        "daysToEnforceMFA",
        "skipAvailable",
        "success",
        "result",
        "status",
        "statusCode",
        "errors",
        "customProperties",
    }
    nulls = ("session", "daysToEnforceMFA", "skipAvailable", "result", "status", "statusCode")
    assert all(body[name] is None for name in nulls)
    assert (body["success"], body["errors"], body["customProperties"]) == (True, [], {})
    assert abs(body["expires"] - (before + 600) * 1000) < 3000
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert set(claims) == {"sub", "unique_name", "jti", "iat", "aud", "custom:mid", "nbf", "exp", "iss"}
    assert claims["sub"] == claims["unique_name"] == body["id"]
    assert uuid.UUID(claims["jti"]) and uuid.UUID(claims["custom:mid"])
    assert isinstance(claims["iat"], str) and abs(int(claims["iat"]) - before * 1000) < 3000
    assert isinstance(claims["aud"], list) and claims["aud"]
    assert claims["iss"] == "Api-Client-Service"
    assert claims["nbf"] <= claims["exp"] and abs(claims["exp"] - (before + 600)) < 3


@pytest.mark.parametrize(
    "body",
    [{"appKey": "ff-local-app-key", "appSecret": "wrong"}, {"AppKey": "someone"}, {}, ["not", "an", "object"]],
    ids=["wrong-secret", "no-secret", "empty", "array"],
)
def test_bad_credentials_are_a_400(ff, body):
    response = httpx.post(ff.url + "/v1/oauth2/token", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "result": None,
        "status": None,
        "statusCode": None,
        "errors": [{"key": "", "error": "Invalid credentials"}],
        "customProperties": {},
    }


# -- 4. orders ----------------------------------------------------------------------


def test_status_names_are_upper_case_and_the_layer_reads_them(ff):
    approved = ff.evaluate(payload())["orderSessionKey"]
    capture = ff.evaluate(payload(transactionType="authorization"))["orderSessionKey"]
    draft = ff.evaluate(payload(mit=True))["orderSessionKey"]
    declined = ff.evaluate(payload(last4="0002"))["orderSessionKey"]
    expiring = ff.evaluate(payload(mit=True, last4="0077", expiryDateUtc="2000-01-01T00:00:00Z"))["orderSessionKey"]
    ff.advance(1)
    seen = {key: ff.order(key) for key in (approved, capture, draft, declined, expiring)}
    assert {key: (o["status"], o["statusName"]) for key, o in seen.items()} == {
        approved: (7, "COMPLETED"),
        capture: (5, "CAPTUREREQUIRED"),
        draft: (4, "PROCESSING"),
        declined: (2, "CANCELLED"),
        expiring: (2, "EXPIRED"),
    }
    # the layer's reader compares case-insensitively (vocabulary.py)
    assert {key: vocabulary.from_provider_order(o)[0] for key, o in seen.items()} == {
        approved: st.APPROVED,
        capture: st.CAPTUREREQUIRED,
        draft: st.PROCESSING,
        declined: st.CANCELLED,
        expiring: st.EXPIRED,
    }
    assert [h[0] for h in ff.admin_order(draft)["history"]] == ["DRAFT", "PROCESSING"]
    listed = ff.http.get("/v1/orders", params={"status": "capturerequired"}).json()["items"]
    assert [o["id"] for o in listed] == [capture]


def test_order_has_currency_code_symbol_and_correlation_id(ff):
    usd = ff.evaluate(payload())["orderSessionKey"]
    eur = ff.evaluate(_set(payload(), "transaction.currency", "eur"))["orderSessionKey"]
    first, again = ff.order(usd), ff.order(usd)
    assert (first["currencyCode"], first["currencySymbol"]) == ("USD", "$")
    assert uuid.UUID(first["correlationId"]) and first["correlationId"] == again["correlationId"]
    assert (ff.order(eur)["currency"], ff.order(eur)["currencyCode"], ff.order(eur)["currencySymbol"]) == (
        "EUR",
        "EUR",
        "€",
    )


def test_list_pages_ten_by_default_and_orders_by_created_on_or_amount(ff):
    ids = []
    for amount in (1500, 1100, 1900, 1300, 1700, 1200, 1800, 1400, 1600, 1000, 1950, 1050):
        ids.append(ff.evaluate(_set(payload(), "transaction.amount", amount))["orderSessionKey"])
    page = ff.http.get("/v1/orders").json()
    assert (page["pageSize"], len(page["items"]), page["totalCount"], page["pageCount"]) == (10, 10, 12, 2)
    assert page["hasNextPage"] is True
    assert [o["id"] for o in page["items"]] == ids[::-1][:10]  # createdOn, newest first

    def listed(**params: Any) -> list[str]:
        response = ff.http.get("/v1/orders", params={"pageSize": 100, **params})
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["items"]]

    by_amount = [ids[i] for i in sorted(range(12), key=lambda i: ff.order(ids[i])["amount"])]
    assert listed(orderBy="amount", sort="asc") == by_amount
    assert listed(orderBy="Amount") == by_amount[::-1]
    assert listed(orderBy="createdOn", sort="asc") == ids
    assert listed(orderBy="orderPlacedDate", sort="asc") == ids  # still accepted
    assert listed(ORDERBY="amount", SORT="asc") == by_amount  # parameter names in any case


def test_list_query_and_mid_filters(ff):
    token = httpx.post(ff.url + "/v1/oauth2/token", json=CREDENTIALS).json()["accessToken"]
    own_mid = jwt.decode(token, options={"verify_signature": False})["custom:mid"]
    other_mid = str(uuid.uuid4())
    plain = ff.evaluate(payload(orderId="Shop-Order-42"))["orderSessionKey"]
    other = ff.evaluate(payload(orderId="other-7", mid=other_mid))["orderSessionKey"]

    def listed(**params: Any) -> set[str]:
        return {o["id"] for o in ff.http.get("/v1/orders", params=params).json()["items"]}

    assert listed(query="order-42") == {plain}  # the merchant's orderId, any case
    assert listed(query=plain[:8]) == {plain}  # FlexFactor's id
    assert listed(query="nothing-like-it") == set()
    assert listed(mid=other_mid.upper()) == {other}
    assert listed(mid=own_mid) == {plain}  # no mid sent: the merchant of the credentials
    assert listed(mid=other_mid, query="order-42") == set()


# -- 5. capture, cancel, external-cancel --------------------------------------------


def test_capture_failure_is_a_200_failed(ff):
    approved = ff.evaluate(payload())["orderSessionKey"]
    open_ = ff.evaluate(payload(transactionType="AUTHORIZATION"))["orderSessionKey"]

    def capture(order: str, **changes: Any) -> httpx.Response:
        body = {"idempotencyKey": str(uuid.uuid4()), "orderId": order, "amount": 1999, "currency": "USD", **changes}
        return ff.http.post("/v1/capture", json=body)

    for response, key in (
        (capture(approved), "OrderId"),  # COMPLETED, not CAPTUREREQUIRED
        (capture(open_, amount=2000), "Amount"),
        (capture(open_, currency="EUR"), "Currency"),
    ):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["status"], answer["success"]) == ("FAILED", False)
        assert [e["key"] for e in answer["errors"]] == [key]
    assert "COMPLETED" in capture(approved).json()["errors"][0]["error"]
    assert capture(open_, amount="19.99").status_code == 400  # malformed
    assert capture(str(uuid.uuid4())).status_code == 404
    # property names bind in any case here too
    done = ff.http.post(
        "/v1/capture", json={"IdempotencyKey": "cap-1", "OrderId": open_, "Amount": 1999, "Currency": "USD"}
    )
    assert (done.status_code, done.json()["status"], done.json()["statusCode"]) == (200, "SUCCESS", None)
    assert ff.order(open_)["statusName"] == "COMPLETED"


def test_cancel_answers_an_empty_object(ff):
    mit = ff.evaluate(payload(mit=True))["orderSessionKey"]
    cit = ff.evaluate(payload(transactionType="authorization"))["orderSessionKey"]
    first = ff.http.post(f"/v1/orders/{mit}/cancel", json={"idempotencyKey": "c-1"})
    assert (first.status_code, first.json()) == (200, {})
    replay = ff.http.post(f"/v1/orders/{mit}/cancel", json={"idempotencyKey": "c-1"})
    assert (replay.status_code, replay.json()) == (200, {})
    assert (ff.http.post(f"/v1/orders/{cit}/cancel").status_code, ff.order(cit)["statusName"]) == (200, "CANCELLED")
    refused = ff.http.post(f"/v1/orders/{mit}/cancel")  # no key: the state decides
    assert refused.status_code == 409 and "CANCELLED" in refused.json()["title"]


def test_external_cancel_by_the_merchants_order_id(ff):
    body = payload(mit=True, orderId="Merchant-Order-9")
    order_id = ff.evaluate(body)["orderSessionKey"]
    assert ff.http.post("/v1/orders/merchant-order-9/external-cancel").status_code == 404  # matched as stored
    done = ff.http.post("/v1/orders/Merchant-Order-9/external-cancel")
    assert (done.status_code, done.json()) == (200, {})
    assert ff.order(order_id)["statusName"] == "CANCELLED"
    again = ff.http.post("/v1/orders/Merchant-Order-9/external-cancel")
    assert (again.status_code, again.json()) == (200, {})  # already cancelled: the same answer
    ff.flush()
    assert [b["Event"] for b, _ in ff.receiver.received(order_id)] == ["order.cancelled"]

    unknown = ff.http.post(f"/v1/orders/{uuid.uuid4()}/external-cancel")
    assert unknown.status_code == 404
    problem = unknown.json()
    assert {"type", "title", "status", "traceId"} <= set(problem)
    assert (problem["status"], problem["title"]) == (404, "Not Found") and TRACE_ID.fullmatch(problem["traceId"])


def test_external_cancel_follows_the_cancel_rules(ff):
    ff.evaluate(payload(orderId="cit-done"))  # a CIT approved: COMPLETED
    refused = ff.http.post("/v1/orders/cit-done/external-cancel")
    assert refused.status_code == 409 and "COMPLETED" in refused.json()["title"]
    order_id = ff.evaluate(payload(orderId="cit-open", transactionType="Authorization"))["orderSessionKey"]
    assert ff.http.post("/v1/orders/cit-open/external-cancel").json() == {}
    assert ff.order(order_id)["statusName"] == "CANCELLED"
    anonymous = httpx.post(ff.url + "/v1/orders/cit-open/external-cancel")
    assert anonymous.status_code == 401


# -- 6. refunds ---------------------------------------------------------------------


def refund(ff: FF, order_id: str, amount: Any, **more: Any) -> httpx.Response:
    return ff.http.post(f"/v1/orders/{order_id}/refund", json={"amountToRefund": amount, **more})


def assert_refund_failed(response: httpx.Response, message: str) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {
        "responseCode": "2001",
        "responseMessage": message,
        "transactionId": None,
        "success": False,
        "result": None,
        "status": "FAILED",
        "statusCode": None,
        "errors": [{"item1": message, "item2": "2001", "item3": "2001", "item4": True}],
        "customProperties": {},
    }


def test_partial_refunds_up_to_the_captured_amount(ff):
    order_id = ff.captured(amount=1999, capture=1500)
    first = refund(ff, order_id, 5.00, refundMessage="goodwill")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert uuid.UUID(answer.pop("transactionId"))
    assert answer == {
        "success": True,
        "status": "SUCCESS",
        "result": "Success",
        "statusCode": None,
        "responseCode": "0",
        "responseMessage": "Refunded",
        "errors": [],
        "customProperties": {},
        "amountRefunded": 5.0,
    }
    assert ff.order(order_id)["statusName"] == "COMPLETED"  # partly refunded: still Completed
    assert refund(ff, order_id, "5.00").json()["success"] is True  # a numeric string binds
    too_much = "Amount to refund (5.01) is greater than maximum refund amount in (5.00))"
    assert_refund_failed(refund(ff, order_id, 5.01), too_much)
    assert refund(ff, order_id, 5).json()["amountRefunded"] == 5.0
    assert (ff.order(order_id)["status"], ff.order(order_id)["statusName"]) == (6, "RETURNED")
    assert ff.admin_order(order_id)["refundedAmount"] == 1500
    assert_refund_failed(
        refund(ff, order_id, 1), "Amount to refund (1.00) is greater than maximum refund amount in (0.00))"
    )
    ff.flush()
    refunds = [b["EventData"] for b, _ in ff.receiver.received(order_id) if b["Event"] == "order.refunded"]
    assert refunds == [
        {"status": "COMPLETED", "amount": 500, "refundedAmount": 500},
        {"status": "COMPLETED", "amount": 500, "refundedAmount": 1000},
        {"status": "RETURNED", "amount": 500, "refundedAmount": 1500},
    ]


def test_refund_of_an_order_in_another_state(ff):
    draft = ff.evaluate(payload(mit=True))["orderSessionKey"]
    assert_refund_failed(refund(ff, draft, 1), "Order in status DRAFT cannot be refunded")
    open_ = ff.evaluate(payload(transactionType="authorization"))["orderSessionKey"]
    assert_refund_failed(refund(ff, open_, 1), "Order in status CAPTUREREQUIRED cannot be refunded")
    assert ff.admin_order(draft)["refundedAmount"] == 0


@pytest.mark.parametrize(
    ("currency", "too_precise", "ok", "ok_json", "left"),
    [
        ("USD", 1.005, 1.5, 1.5, "Amount to refund (20.00) is greater than maximum refund amount in (18.49))"),
        ("JPY", 1.5, 150, 150, "Amount to refund (2000) is greater than maximum refund amount in (1849))"),
        ("KWD", 0.0005, 0.15, 0.15, "Amount to refund (2.000) is greater than maximum refund amount in (1.849))"),
        ("BHD", 1.2345, "0.150", 0.15, "Amount to refund (2.000) is greater than maximum refund amount in (1.849))"),
    ],
)
def test_refund_amounts_follow_the_currency_exponent(ff, currency, too_precise, ok, ok_json, left):
    order_id = ff.captured(amount=1999, capture=1999, currency=currency)
    errors = flat_errors(refund(ff, order_id, too_precise))
    assert list(errors) == ["AmountToRefund"] and currency in errors["AmountToRefund"][0]
    done = refund(ff, order_id, ok)
    assert done.json()["amountRefunded"] == ok_json
    assert ff.admin_order(order_id)["refundedAmount"] == 150
    big = {"USD": 20, "JPY": 2000, "KWD": 2, "BHD": 2}[currency]
    assert_refund_failed(refund(ff, order_id, big), left)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"AmountToRefund": ["The AmountToRefund field is required."]}),
        ({"amountToRefund": "abc"}, {"AmountToRefund": ["The field AmountToRefund is invalid."]}),
        ({"amountToRefund": True}, {"AmountToRefund": ["The field AmountToRefund is invalid."]}),
        ({"amountToRefund": 0}, {"AmountToRefund": ["The field AmountToRefund must be greater than 0."]}),
        ({"amountToRefund": -1}, {"AmountToRefund": ["The field AmountToRefund must be greater than 0."]}),
        ({"amountToRefund": 1, "refundMessage": 7}, {"RefundMessage": ["The field RefundMessage is invalid."]}),
    ],
    ids=["missing", "text", "boolean", "zero", "negative", "message"],
)
def test_refund_body_errors(ff, body, errors):
    order_id = ff.evaluate(payload())["orderSessionKey"]
    assert flat_errors(ff.http.post(f"/v1/orders/{order_id}/refund", json=body)) == errors


def test_refund_binds_names_in_any_case_and_unknown_order_is_404(ff):
    order_id = ff.evaluate(payload())["orderSessionKey"]
    response = ff.http.post(f"/v1/orders/{order_id}/refund", json={"AmountToRefund": 1, "RefundMessage": "x"})
    assert response.json()["success"] is True
    assert refund(ff, str(uuid.uuid4()), 1).status_code == 404


# -- 7. webhooks --------------------------------------------------------------------


def test_webhooks_are_text_plain_with_null_event_data_for_order_completed(ff):
    order_id = ff.evaluate(payload())["orderSessionKey"]  # cit-approved: order.completed after a step
    cancelled = ff.evaluate(payload(mit=True))["orderSessionKey"]
    ff.http.post(f"/v1/orders/{cancelled}/cancel").raise_for_status()
    ff.advance(1)
    ff.flush()
    [(completed, headers)] = ff.receiver.received(order_id)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert completed["Event"] == "order.completed" and completed["EventData"] is None
    [(cancel, _)] = ff.receiver.received(cancelled)
    assert cancel["EventData"] == {"status": "CANCELLED", "amount": 1999}
    # the signature scheme is unchanged: the body's HMAC under the subscriber key
    raw = next(body for body, _ in ff.receiver.requests if json.loads(body)["OrderId"] == order_id)
    signature = base64.b64encode(hmac.new(base64.b64decode(KEY), raw, hashlib.sha512).digest()).decode()
    assert hmac.compare_digest(headers["x-fc-signature"], signature)
    assert headers["x-fc-content-sha512"] == base64.b64encode(hashlib.sha512(raw).digest()).decode()
