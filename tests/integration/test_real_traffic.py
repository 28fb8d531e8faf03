"""Real FlexFactor traffic (tests/fixtures/real/, sources in its SOURCES.md) through the
contract, ``POST /declines`` on the stack, the FlexFactor emulator and the client: what the
sandbox accepted is accepted, what it refused is refused with the same field, and every
answer shape it gave is read.

Recorded and derived bodies carry 2024 times and fixed ids: each run gives them fresh ids
and re-times them to now (keeping each value's format: ISO 8601 or RFC 1123), and a card
number is either replaced by a token (``token: true``) or sent as it is with card
numbers allowed."""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from decline_rescue.domain.contract import validate_request
from decline_rescue.domain.errors import InvalidRequest, ProviderAuthError
from decline_rescue.infra.http import ProviderHttp
from decline_rescue.providers.flexfactor.client import (
    Credentials,
    FlexFactorClient,
    ProviderValidationFailed,
    validation_errors,
)
from decline_rescue.providers.flexfactor.signatures import verify
from decline_rescue.runtime.settings import ProviderCallSettings
from decline_rescue.services.webhooks import to_update
from tests.conftest import api_event, invoke
from tests.integration.test_declines import EVALUATE

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real"
FAST = ProviderCallSettings(connect_timeout=1, read_timeout=2, max_attempts=1, budget_seconds=5, backoff_base=0.01)
TOKEN = "d3e10716-6aac-4eb8-a74d-c1a3027f1d96"  # the vault token of the gateway's store answer


def fixture(name: str) -> dict[str, Any]:
    return json.loads((REAL / f"{name}.json").read_text())


def _retime(value: str, delta: timedelta) -> str:
    """``value`` (an ISO 8601 or RFC 1123 date-time, or a placeholder) moved to now + delta."""
    moment = datetime.now(UTC) + delta
    if value.startswith("<new Date().toUTCString()") or re.match(r"^[A-Z][a-z]{2}, ", value):
        return format_datetime(moment, usegmt=True)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def live(name: str, *, tokenise: bool = True) -> dict[str, Any]:
    """A fixture's request body with fresh ids, times moved to now (expiry a day ahead),
    placeholders filled, and its card number replaced by a token (unless ``tokenise`` is
    False)."""
    body = copy.deepcopy(fixture(name)["request"]["body"])
    order_id = f"real-{uuid.uuid4().hex[:12]}"
    recorded_id = body.get("orderId")

    def fill(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: fill(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if not isinstance(node, str):
            return node
        low = key.lower()
        if low == "orderid" or (low == "id" and node == recorded_id):
            return order_id
        if low == "idempotencykey":
            return str(uuid.uuid4())
        if low in ("timestamputc", "timestamp"):
            return _retime(node, timedelta(0))
        if low == "expirydateutc":
            return _retime(node, timedelta(days=1))
        if low == "subscriptionid" and node.startswith("<"):
            return str(int(datetime.now(UTC).timestamp() * 1000))
        if node.startswith("<"):
            return str(uuid.uuid4())
        return node

    body = fill(body)
    pm = {k.lower(): k for k in body.get("paymentMethod") or {}}
    if tokenise and "cardnumber" in pm:
        number = body["paymentMethod"][pm["cardnumber"]]
        if re.fullmatch(r"\d{13,19}", number):
            body["paymentMethod"][pm["cardnumber"]] = TOKEN
            body["paymentMethod"].pop(pm.get("token", "Token"), None)
            body["paymentMethod"]["Token"] = True
    return body


def pascal(node: Any) -> Any:
    """Every key PascalCase, as an ASP.NET client may send it."""
    if isinstance(node, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in node.items()}
    if isinstance(node, list):
        return [pascal(v) for v in node]
    return node


ACCEPTED = [
    "flexcharge_sandbox_cit_challenge",  # recorded: 200 CHALLENGE
    "flexcharge_sandbox_cit_declined_no_phone",
    "flexcharge_sandbox_cit_challenge_ismit_false",
    "flexcharge_sandbox_mit_approved",
    "flexcharge_sandbox_mit_approved_expiry_null",
    "flexcharge_sandbox_mit_token_uuid",
    "flexcharge_sandbox_mit_three_ds_submitted",
    "flexcharge_node_sample_evaluate_request",
    "flexcharge_node_sample_evaluate_mit_request",
    "flexcharge_node_sample_evaluate_mit_recurring_request",
]


# -- the contract ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ACCEPTED)
@pytest.mark.parametrize("tokenise", [True, False], ids=["tokenised", "card-numbers-allowed"])
def test_what_the_sandbox_accepted_is_accepted(name, tokenise):
    body = live(name, tokenise=tokenise)
    request = validate_request(body, allow_card_numbers=not tokenise)
    assert request.order_id == body["orderId"]
    # what the seed wants and the body lacks is named, never refused
    assert all(w.rule and w.field for w in request.warnings)


def test_the_recorded_cit_names_what_the_seed_wanted_as_warnings():
    request = validate_request(live("flexcharge_sandbox_cit_challenge"))
    warned = {(w.field, w.rule) for w in request.warnings}
    assert {
        ("transaction.timestampUtc", "seed_required"),
        ("customerIp", "seed_required"),
        ("isMIT", "seed_required"),
    } <= warned
    sent = request.to_provider()
    assert sent["transaction"]["timezoneUtcOffset"] == -5 and sent["isMIT"] is False


def test_the_pascal_case_variant_binds_as_the_camel_case_body():
    body = live("flexcharge_sandbox_cit_challenge")
    camel = validate_request(body).to_provider()
    assert validate_request(pascal(body)).to_provider() == camel


def test_the_node_samples_values_are_accepted_and_forwarded_as_sent():
    request = validate_request(live("flexcharge_node_sample_evaluate_mit_recurring_request"), allow_card_numbers=True)
    sent = request.to_provider()
    assert sent["orderSource"] == "Site1" and sent["subscription"]["price"] == "100"
    warned = {(w.field, w.rule) for w in request.warnings}
    assert {
        ("orderSource", "enum"),
        ("subscription.price", "type"),
        ("transaction.responseStatus", "not_declined"),
        ("paymentMethod.cardBinNumber", "bin_length"),
    } <= warned
    # the RFC 1123 expiry was read, and goes on in ISO 8601
    assert re.match(r"^\d{4}-\d{2}-\d{2}T", sent["expiryDateUtc"])


def _refused_fields(body: dict[str, Any]) -> set[str]:
    with pytest.raises(InvalidRequest) as caught:
        validate_request(body)
    return {p.field for p in caught.value.problems}


def _ours(provider_field: str) -> str:
    return ".".join(p[:1].lower() + p[1:] for p in provider_field.split("."))


def test_the_sandboxs_required_field_refusal_is_ours_field_by_field():
    # the body R4's test_failed_purchase_required_fields sent (see the fixture's body_note)
    body = live("flexcharge_sandbox_cit_challenge")
    body["orderId"] = None
    for name in ("id", "responseCode", "avsResultCode", "cvvResultCode", "cavvResultCode"):
        body["transaction"].pop(name)
    body["transaction"]["responseCodeSource"] = ""
    sandbox = fixture("flexcharge_sandbox_400_flat_required_fields")["response"]["body"]
    expected = {_ours(k) for k in sandbox if k != "TraceId"}
    assert _refused_fields(body) == expected


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("flexcharge_sandbox_400_flat_idempotency_key", ("idempotencyKey", None)),
        ("flexcharge_sandbox_400_flat_expiry_date_utc", ("expiryDateUtc", "")),
    ],
)
def test_the_sandboxs_other_refusals_are_ours(name, change):
    body = live("flexcharge_sandbox_mit_approved")
    field, value = change
    if value is None:
        body.pop(field)
    else:
        body[field] = value
    sandbox = validation_errors(fixture(name)["response"]["body"])
    assert _refused_fields(body) == {_ours(k) for k in sandbox}


# -- POST /declines on the stack ------------------------------------------------------


def post(function_env, body: dict[str, Any], **env: str) -> tuple[int, dict[str, Any]]:
    module, _ = function_env(EVALUATE, **env)
    result = invoke(module, api_event("evaluate_decline/post_cit.json", body), name=EVALUATE)
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("variant", ["as-recorded", "pascal-case"])
def test_the_recorded_cit_is_accepted_by_post_declines_with_warnings(function_env, variant):
    body = live("flexcharge_sandbox_cit_challenge")
    code, answer = post(function_env, pascal(body) if variant == "pascal-case" else body)
    assert code == 200, answer
    assert answer["orderId"] == body["orderId"] and answer["status"]
    warned = {(w["field"], w["rule"]) for w in answer["warnings"]}
    assert {("customerIp", "seed_required"), ("transaction.timestampUtc", "seed_required")} <= warned
    assert all(w["message"] for w in answer["warnings"])


def test_the_recorded_cit_with_its_card_number_is_accepted_when_card_numbers_are_allowed(function_env):
    body = live("flexcharge_sandbox_cit_challenge", tokenise=False)
    code, answer = post(function_env, body, ALLOW_CARD_NUMBERS="true")
    assert code == 200, answer
    assert "4111111111111111" not in json.dumps(answer)


def test_an_mit_with_a_null_expiry_is_queued_with_a_warning(function_env):
    body = live("flexcharge_sandbox_mit_approved_expiry_null")
    assert body["expiryDateUtc"] is None
    code, answer = post(function_env, body)
    assert (code, answer["status"]) == (202, "QUEUED"), answer
    assert {"field": "expiryDateUtc", "rule": "fallback"} in [
        {"field": w["field"], "rule": w["rule"]} for w in answer["warnings"]
    ]


def test_the_sandboxs_refusal_is_a_400_naming_the_same_fields(function_env):
    body = live("flexcharge_sandbox_mit_approved")
    body["expiryDateUtc"] = ""
    body.pop("idempotencyKey")
    code, answer = post(function_env, body)
    assert code == 400
    assert {d["field"] for d in answer["error"]["details"]} == {"expiryDateUtc", "idempotencyKey"}


# -- the emulator ---------------------------------------------------------------------


def _emulator_token(flexfactor_url: str, flexfactor_credentials) -> str:
    key, secret = flexfactor_credentials["appKey"], flexfactor_credentials["appSecret"]
    # (camelCase keys, as FlexCharge's Node sample sends them)
    answer = httpx.post(flexfactor_url + "/v1/oauth2/token", json={"appKey": key, "appSecret": secret})
    answer.raise_for_status()
    return answer.json()["accessToken"]


SANDBOX_ACCEPTED = [name for name in ACCEPTED if name.startswith("flexcharge_sandbox_")]


@pytest.mark.parametrize("name", SANDBOX_ACCEPTED)
def test_the_emulator_accepts_what_the_sandbox_accepted(flexfactor_url, flexfactor_credentials, name):
    token = _emulator_token(flexfactor_url, flexfactor_credentials)
    body = live(name, tokenise=False)
    answer = httpx.post(flexfactor_url + "/v1/evaluate", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["status"] in {"APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "SUBMITTED"}
    assert "statusCode" in data and data["statusCode"] is None


def test_the_emulator_refuses_what_the_sandbox_refused_with_the_same_fields(flexfactor_url, flexfactor_credentials):
    token = _emulator_token(flexfactor_url, flexfactor_credentials)
    body = live("flexcharge_sandbox_cit_challenge", tokenise=False)
    body["orderId"] = None
    for name in ("id", "responseCode", "avsResultCode", "cvvResultCode", "cavvResultCode"):
        body["transaction"].pop(name)
    body["transaction"]["responseCodeSource"] = ""
    answer = httpx.post(flexfactor_url + "/v1/evaluate", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
    sandbox = fixture("flexcharge_sandbox_400_flat_required_fields")["response"]["body"]
    assert set(validation_errors(answer.json())) == {k for k in sandbox if k != "TraceId"}


# -- the client reads every answer shape ----------------------------------------------


class Canned:
    """A loopback HTTP server answering each path with the next canned (status, body)."""

    def __init__(self, answers: dict[str, list[tuple[int, Any]]]) -> None:
        self.answers = {path: list(queue) for path, queue in answers.items()}
        self.seen: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.seen.append((self.path, self.rfile.read(length)))
                path = self.path.split("?")[0]
                status, body = outer.answers[path].pop(0) if outer.answers.get(path) else (404, {"title": "Not Found"})
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# the recorded token answer, its expiry (ms since the epoch) moved ten minutes from now
def token_ok() -> tuple[int, dict]:
    """The sandbox's token answer, expiring ten minutes from now (when the test runs, not
    when the module was collected: a long session would hand the client a stale token)."""
    return (
        200,
        {
            **fixture("flexcharge_sandbox_token_success")["response"]["body"],
            "expires": int((datetime.now(UTC) + timedelta(minutes=10)).timestamp() * 1000),
        },
    )


@pytest.fixture
def canned():
    servers: list[Canned] = []

    def make(answers: dict[str, list[tuple[int, Any]]]) -> tuple[FlexFactorClient, Canned, list[bool]]:
        server = Canned(answers)
        servers.append(server)
        reads: list[bool] = []

        def credentials(force: bool) -> Credentials:
            reads.append(force)
            return Credentials("app-key", "app-secret")

        http = ProviderHttp("flexfactor", server.url, FAST)
        return FlexFactorClient(http, credentials), server, reads

    yield make
    for server in servers:
        server.close()


def test_the_recorded_token_and_evaluate_answers_are_read(canned):
    recorded = fixture("flexcharge_sandbox_cit_challenge")
    client, server, _ = canned(
        {"/v1/oauth2/token": [token_ok()], "/v1/evaluate": [(200, recorded["response"]["body"])]}
    )
    answer = client.evaluate(recorded["request"]["body"])
    assert (answer.status, answer.order_session_key) == ("CHALLENGE", recorded["response"]["body"]["orderSessionKey"])
    assert answer.sense_key is None
    assert json.loads(server.seen[0][1]) == {"AppKey": "app-key", "AppSecret": "app-secret"}


@pytest.mark.parametrize(
    "shape",
    [
        "flexcharge_sandbox_400_old_shape",
        "flexcharge_sandbox_400_flat_idempotency_key",
        "flexcharge_sandbox_400_flat_required_fields",
        "flexfactor_docs_error_problem_details",
    ],
)
def test_every_400_shape_becomes_field_by_field_errors(canned, shape):
    data = fixture(shape)
    body = data["response"]["body"] if "response" in data else data["body"]
    client, _, _ = canned({"/v1/oauth2/token": [token_ok()], "/v1/evaluate": [(400, body)]})
    with pytest.raises(ProviderValidationFailed) as caught:
        client.evaluate({"orderId": "x"})
    fields = {p.field for p in caught.value.problems}
    expected = {_ours(k) for k in validation_errors(body)}
    assert fields == expected and expected and "traceId" not in fields


def test_a_400_from_the_token_endpoint_is_an_authentication_failure_after_one_reread(canned):
    client, server, reads = canned(
        {"/v1/oauth2/token": [(400, {"title": "One or more validation errors occurred."})] * 2}
    )
    with pytest.raises(ProviderAuthError) as caught:
        client.evaluate({"orderId": "x"})
    assert reads == [False, True]  # the secret was read again once
    assert "credentials" in caught.value.message and caught.value.status_code == 502
    assert len(server.seen) == 2


def test_a_refund_refused_with_flexfactors_shape_is_a_failure_with_its_message(canned):
    failed = fixture("flexcharge_sandbox_refund_failed_2001")["response"]["body"]
    client, server, _ = canned({"/v1/oauth2/token": [token_ok()], "/v1/orders/abc/refund": [(200, failed)]})
    answer = client.refund(order_session_key="abc", amount="1.00")
    assert not answer.ok and answer.http_status == 200
    assert answer.message.startswith("Amount to refund (1.00) is greater than maximum refund amount")
    assert server.seen[-1][1] == b'{"amountToRefund":1.00}'


def test_a_capture_answering_200_failed_is_a_failure_and_a_cancel_answering_an_empty_object_a_success(canned):
    client, _, _ = canned(
        {
            "/v1/oauth2/token": [token_ok()],
            "/v1/capture": [(200, {"status": "FAILED", "success": False, "errors": [{"key": "", "error": "nope"}]})],
            "/v1/orders/abc/cancel": [(200, {})],
            "/v1/orders/ord-1/external-cancel": [(200, {})],
            "/v1/orders/ord-2/external-cancel": [(404, {"title": "Not Found", "status": 404})],
            # a route miss answers plain text (the sandbox's 'Not Found'): says nothing of the order
            "/v1/orders/ord-3/external-cancel": [(404, b"Not Found")],
        }
    )
    captured = client.capture(idempotency_key="k", order_session_key="abc", amount=100, currency="USD")
    assert (captured.ok, captured.http_status, captured.message) == (False, 200, "nope")
    assert client.cancel(order_session_key="abc", idempotency_key="k").ok
    assert client.external_cancel(external_order_id="ord-1").ok
    assert client.external_cancel(external_order_id="ord-2") is None
    missed = client.external_cancel(external_order_id="ord-3")
    assert missed is not None and (missed.ok, missed.http_status) == (False, 404)


# -- the signed sample webhook ----------------------------------------------------------


def test_flexcharges_signed_sample_webhook_verifies_and_reads_with_null_event_data():
    sample = fixture("flexcharge_node_sample_webhook_signed")
    headers = {k.lower(): v for k, v in sample["headers"].items()}
    headers["host"] = sample["host"]
    moment = parsedate_to_datetime(headers["x-fc-date"])
    nonce = verify(
        "POST",
        sample["raw_body"].encode(),
        headers,
        keys=[base64.b64decode(sample["subscriber_key_base64"])],
        now=moment,
        max_skew_seconds=300,
    )
    update = to_update(json.loads(sample["raw_body"]), nonce)
    assert update is not None
    assert (update.orderId, update.orderSessionKey) == (sample["body"]["ExternalOrderId"], sample["body"]["OrderId"])
    assert update.status == "APPROVED"
