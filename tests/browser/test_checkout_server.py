"""The sample shop's server on its own, against a stub of the decline-rescue API (no browser,
no stack): what it asks the API, what it puts in the page, what it accepts from the page,
and that its SigV4 signer signs as botocore's does."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import ServerThread
from examples.checkout.__main__ import config_from, parser
from examples.checkout.api import Credentials, DeclineRescueApi, sigv4_headers
from examples.checkout.server import CheckoutConfig, CheckoutServer

CONTEXT = "eyJhbGciOiJSUzI1NiJ9.eyJjdHgiOltdfQ.c2lnbmF0dXJl"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJqdGkiOiJ0b2tlbiJ9.dG9rZW4tc2ln"
LIBRARY = "https://flex.example/microform/bundle/v2.0/flex-microform.min.js"
INTEGRITY = "sha384-abcdefABCDEF0123456789abcdefABCDEF0123456789abcdefABCDEF01234567"
SUMMARY = {
    "verified": True,
    "tokenId": "token",
    "card": {"maskedNumber": "XXXXXXXXXXXX1111", "bin": "411111", "brand": "VISA", "type": "001"},
}


class StubApi:
    """POST /capture-contexts and /transient-tokens/verify, recording what they were sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.context_answer: tuple[int, Any] = (
            201,
            {
                "integration": "microform",
                "captureContext": CONTEXT,
                "keyId": "kid-1",
                "clientLibrary": LIBRARY,
                "clientLibraryIntegrity": INTEGRITY,
            },
        )
        self.verify_answer: tuple[int, Any] = (200, SUMMARY)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests.append(
                {"path": request.path, "headers": dict(request.headers), "body": request.get_json(silent=True)}
            )
        if request.path == "/capture-contexts":
            status, body = self.context_answer
        elif request.path == "/transient-tokens/verify":
            status, body = self.verify_answer
        else:
            status, body = 404, {"message": "not found"}
        return Response(json.dumps(body), status=status, content_type="application/json")(environ, start_response)


@pytest.fixture
def stub():
    api = StubApi()
    with ServerThread(api) as server:
        yield api, server.url


@pytest.fixture
def shop(stub, capsys):
    api, url = stub
    config = CheckoutConfig(
        api=DeclineRescueApi(url, api_key="key-1", credentials=Credentials("AKIATEST", "secret-1")),
        origins=["http://127.0.0.1:8999", "http://localhost:8999"],
        card_networks=["VISA", "MASTERCARD"],
    )
    with CheckoutServer(config, port=0) as server:
        yield api, server


def page_config(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="checkout-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def test_the_page_carries_the_context_and_loads_the_library_with_its_integrity(shop):
    api, server = shop

    page = httpx.get(server.url + "/")

    assert page.status_code == 200
    (asked,) = api.requests
    assert asked["path"] == "/capture-contexts"
    assert asked["body"] == {
        "integration": "microform",
        "targetOrigins": ["http://127.0.0.1:8999"],
        "allowedCardNetworks": ["VISA", "MASTERCARD"],
        "allowedPaymentTypes": ["CARD"],
    }
    assert asked["headers"]["X-Api-Key"] == "key-1"
    assert asked["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATEST/")
    config = page_config(page.text)
    assert config["captureContext"] == CONTEXT
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", config["sessionId"])
    assert f'<script src="{LIBRARY}" integrity="{INTEGRITY}" crossorigin="anonymous"></script>' in page.text
    for element in ("number-container", "securityCode-container", "expMonth", "expYear", "pay", "result"):
        assert f'id="{element}"' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' https://flex.example;" in csp and "frame-src 'self' https://flex.example;" in csp
    assert "connect-src 'self';" in csp
    assert page.headers["Cache-Control"] == "no-store"


def test_the_origin_asked_for_is_the_one_the_page_was_opened_on(shop):
    api, server = shop
    port = server.url.rsplit(":", 1)[1]

    httpx.get(server.url + "/", headers={"Host": "localhost:8999"})
    httpx.get(server.url + "/", headers={"Host": f"elsewhere.example:{port}"})

    assert [r["body"]["targetOrigins"] for r in api.requests] == [
        ["http://localhost:8999"],
        ["http://127.0.0.1:8999"],  # not one of the shop's: its first origin, which the page's is not
    ]


def test_a_refused_context_is_said_on_the_page_without_a_library(shop):
    api, server = shop
    api.context_answer = (
        422,
        {"error": {"code": "ORIGIN_NOT_ALLOWED", "message": "http://127.0.0.1:8999 is not in CheckoutOrigins"}},
    )

    page = httpx.get(server.url + "/")

    assert page.status_code == 502
    assert page_config(page.text) == {
        "error": {
            "status": 422,
            "code": "ORIGIN_NOT_ALLOWED",
            "message": "http://127.0.0.1:8999 is not in CheckoutOrigins",
        }
    }
    assert '<script src="https://' not in page.text


def test_an_unreachable_api_is_said_on_the_page():
    config = CheckoutConfig(api=DeclineRescueApi("http://127.0.0.1:9", api_key="k", timeout=2), origins=["http://x"])
    with CheckoutServer(config, port=0) as server:
        page = httpx.get(server.url + "/")
    assert page.status_code == 502
    assert page_config(page.text)["error"]["code"] == "API_UNREACHABLE"


def test_a_context_without_a_client_library_is_not_used(shop):
    # an API that answered a Flex context (no Microform support): the page says so
    api, server = shop
    api.context_answer = (201, {"captureContext": CONTEXT, "keyId": "kid-1"})

    page = httpx.get(server.url + "/")

    assert page.status_code == 502
    assert page_config(page.text)["error"]["code"] == "NO_MICROFORM_CONTEXT"


def test_pay_verifies_the_token_with_the_pages_own_context(shop):
    api, server = shop
    session_id = page_config(httpx.get(server.url + "/").text)["sessionId"]

    paid = httpx.post(server.url + "/pay", json={"sessionId": session_id, "transientToken": TOKEN})

    assert paid.status_code == 200
    assert paid.json() == SUMMARY
    verify = api.requests[-1]
    assert verify["path"] == "/transient-tokens/verify"
    assert verify["body"] == {"transientToken": TOKEN, "captureContext": CONTEXT}
    assert verify["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_pay_passes_a_refusal_on(shop):
    api, server = shop
    session_id = page_config(httpx.get(server.url + "/").text)["sessionId"]
    api.verify_answer = (409, {"error": {"code": "TOKEN_REPLAYED", "message": "already used"}})

    paid = httpx.post(server.url + "/pay", json={"sessionId": session_id, "transientToken": TOKEN})

    assert (paid.status_code, paid.json()["error"]["code"]) == (409, "TOKEN_REPLAYED")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "INVALID_REQUEST"),
        (b"[]", 400, "INVALID_REQUEST"),
        (json.dumps({"transientToken": TOKEN}).encode(), 400, "INVALID_REQUEST"),
        (json.dumps({"sessionId": "x" * 32, "transientToken": "4111111111111111"}).encode(), 400, "INVALID_REQUEST"),
        (json.dumps({"sessionId": "x" * 32, "transientToken": TOKEN}).encode(), 409, "SESSION_EXPIRED"),
    ],
)
def test_pay_refuses_what_is_not_a_token_of_a_known_page(shop, body, status, code):
    api, server = shop

    paid = httpx.post(server.url + "/pay", content=body, headers={"Content-Type": "application/json"})

    assert (paid.status_code, paid.json()["error"]["code"]) == (status, code)
    assert not [r for r in api.requests if r["path"] == "/transient-tokens/verify"]


def test_pay_wants_json_and_a_small_body(shop):
    _, server = shop
    assert httpx.post(server.url + "/pay", content=b"a=b").status_code == 415
    big = httpx.post(server.url + "/pay", content=b"x" * 20000, headers={"Content-Type": "application/json"})
    assert big.status_code == 413


def test_static_files_and_health(shop):
    _, server = shop
    script = httpx.get(server.url + "/static/checkout.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert "createToken" in script.text
    assert httpx.get(server.url + "/static/checkout.css").status_code == 200
    assert httpx.get(server.url + "/healthz").json()["ok"] is True
    assert httpx.get(server.url + "/static/../server.py").status_code == 404


def test_logs_name_paths_and_statuses_never_bodies_or_queries(shop, capsys):
    _, server = shop
    session_id = page_config(httpx.get(server.url + "/?number=4111111111111111").text)["sessionId"]
    httpx.get(server.url + "/4111-1111-1111-1111")
    httpx.post(server.url + "/pay", json={"sessionId": session_id, "transientToken": TOKEN})

    out = capsys.readouterr().out

    assert "GET / 200" in out and "POST /pay 200" in out and "GET /[digits redacted] 404" in out
    assert "transient token verified: HTTP 200 VISA XXXXXXXXXXXX1111" in out
    for secret in ("4111111111111111", TOKEN, CONTEXT, session_id, "secret-1"):
        assert secret not in out


def test_sigv4_signs_as_botocore_does():
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/transient-tokens/verify"
    body = b'{"transientToken": "a.b.c"}'
    headers = {"Content-Type": "application/json", "x-api-key": "key-1"}
    for token in (None, "session-token-1"):
        expected = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(BotoCredentials("AKIATEST", "secret-1", token), "execute-api", "eu-west-1").add_auth(expected)
        when = datetime.strptime(expected.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

        credentials = Credentials("AKIATEST", "secret-1", token, "eu-west-1")

        signed = sigv4_headers("POST", url, headers, body, credentials, now=when)

        assert signed["Authorization"] == expected.headers["Authorization"]
        assert signed.get("X-Amz-Security-Token") == expected.headers.get("X-Amz-Security-Token")


def test_the_command_line(monkeypatch):
    for name in ("CHECKOUT_API_URL", "CHECKOUT_API_AUTH", "CHECKOUT_API_KEY", "CHECKOUT_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHECKOUT_AWS_ACCESS_KEY_ID", "AKIATEST")
    monkeypatch.setenv("CHECKOUT_AWS_SECRET_ACCESS_KEY", "secret-1")
    p = parser()

    config = config_from(p.parse_args(["--api-url", "http://api.example/", "--port", "9000"]), p)

    assert config.api.auth == "IAM" and config.api.base_url == "http://api.example"
    assert config.origins == ["http://127.0.0.1:9000"]
    assert config.card_networks == ["VISA", "MASTERCARD", "AMEX"]
    with pytest.raises(SystemExit):
        config_from(p.parse_args(["--api-url", "http://a", "--origin", "http://shop.example/pay"]), p)
    with pytest.raises(SystemExit):
        config_from(p.parse_args(["--api-url", "http://a", "--auth", "API_KEY"]), p)
