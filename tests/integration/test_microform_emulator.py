"""The Cybersource emulator speaking Microform Integration v2, over real HTTP on loopback:
``/microform/v2/sessions`` on the REST host, and on the Flex origin the client library
(with the SRI hash the context names), the field iframe (framed only by the session's
origins) and ``mf-2.0.0`` transient tokens. The JWEs here are built with ``cryptography``
directly, as the library's WebCrypto code builds them (RSA-OAEP-256 + A256GCM).

Then the library itself in headless Chromium (Playwright, Debian's /usr/bin/chromium): a
page on loopback loads the script with its integrity hash, the fields load as iframes, a
typed card becomes a transient token whose claims are checked here with the context's
``flx.jwk``, and the errors a page sees have Cybersource's shapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from decline_rescue.providers.cybersource import http_signature
from devstack.emulators import microform
from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import (
    TESTREST_KEY_ID,
    TESTREST_MERCHANT_ID,
    TESTREST_SHARED_SECRET,
    CybersourceEmulator,
    start_flex_origin,
)
from tests.conftest import queue_faults

SHOP = "https://shop.example"
BODY = {"clientVersion": "v2.0", "targetOrigins": [SHOP], "allowedCardNetworks": ["VISA", "MASTERCARD"]}
VISA = "4111111111111111"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def post_session(url: str, body: Any = BODY, path: str = "/microform/v2/sessions", sign: bool = True) -> httpx.Response:
    raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {"Content-Type": "application/json;charset=utf-8", "Accept": "application/jwt"}
    if sign:
        headers |= http_signature.signature_headers(
            method="POST",
            path=path,
            host=url.split("//", 1)[1],
            body=raw,
            merchant_id=TESTREST_MERCHANT_ID,
            key_id=TESTREST_KEY_ID,
            shared_secret_b64=TESTREST_SHARED_SECRET,
            date=http_signature.http_date(time.time()),
        )
    return httpx.post(url + path, content=raw, headers=headers)


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def context(url: str, body: Any = BODY) -> str:
    response = post_session(url, body)
    assert response.status_code == 201, response.text
    return response.text


def encrypt_card(capture_context: str, card: dict[str, Any]) -> str:
    """What the number iframe sends: a compact JWE, RSA-OAEP-256 wrapping a fresh A256GCM
    key, AAD the encoded protected header."""
    jwk = claims_of(capture_context)["flx"]["jwk"]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(jwk["e"]), "big"), int.from_bytes(b64url_decode(jwk["n"]), "big")
    ).public_key()
    header = b64url(json.dumps({"kid": jwk["kid"], "alg": "RSA-OAEP-256", "enc": "A256GCM"}).encode())
    cek, iv = os.urandom(32), os.urandom(12)
    plaintext = json.dumps({"data": {"paymentInformation": {"card": card}}, "context": capture_context, "index": 0})
    sealed = AESGCM(cek).encrypt(iv, plaintext.encode(), header.encode())
    wrapped = public.encrypt(
        cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    return ".".join([header, b64url(wrapped), b64url(iv), b64url(sealed[:-16]), b64url(sealed[-16:])])


def post_token(capture_context: str, jwe: str) -> httpx.Response:
    flx = claims_of(capture_context)["flx"]
    return httpx.post(flx["origin"] + flx["path"], content=jwe, headers={"Content-Type": "application/jwt"})


def verify_token(capture_context: str, token: str) -> dict[str, Any]:
    """The transient token's claims, its signature checked with the context's one-time key."""
    jwk = claims_of(capture_context)["flx"]["jwk"]
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps({k: jwk[k] for k in ("kty", "n", "e")}))
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    return jwt.decode(token, key, algorithms=["RS256"])


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


# -- POST /microform/v2/sessions ------------------------------------------------------------


def test_session_answers_a_signed_microform_context(cybersource, cybersource_url):
    emulator, _ = cybersource

    response = post_session(cybersource_url)

    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/jwt")
    kid = jwt.get_unverified_header(response.text)["kid"]
    public = httpx.get(f"{cybersource_url}/flex/v2/public-keys/{kid}")
    assert public.status_code == 200
    key = jwt.algorithms.RSAAlgorithm.from_jwk(public.text)
    claims = jwt.decode(response.text, key, algorithms=["RS256"])
    assert claims["iss"] == "Flex API" and claims["exp"] - claims["iat"] == 900 and len(claims["jti"]) == 16
    flx = claims["flx"]
    assert flx["path"] == "/flex/v2/tokens" and flx["origin"] == emulator.flex_origin != cybersource_url
    assert flx["jwk"]["kty"] == "RSA" and flx["jwk"]["use"] == "enc" and flx["jwk"]["kid"]
    assert claims["ctx"] == [
        {
            "type": "mf-2.1.0",
            "data": {
                "clientLibrary": emulator.flex_origin + "/microform/bundle/v2.0/flex-microform.min.js",
                "clientLibraryIntegrity": sri(Path(microform.ASSETS, "flex-microform.js").read_bytes()),
                "targetOrigins": [SHOP],
                "mfOrigin": emulator.flex_origin,
                "allowedCardNetworks": ["VISA", "MASTERCARD"],
                "allowedPaymentTypes": ["CARD"],
                "clientVersion": "v2.0",
            },
        }
    ]
    session = emulator.contexts[flx["jwk"]["kid"]]
    assert session.kind == "microform" and session.target_origins == (SHOP,)


def test_session_defaults_and_accepted_origins(cybersource_url):
    origins = [
        "https://shop.example",
        "https://pay.shop.example:8443",
        "http://localhost:3000",
        "http://127.0.0.1:8083",
    ]

    claims = claims_of(context(cybersource_url, {"targetOrigins": origins}))

    data = claims["ctx"][0]["data"]
    assert data["targetOrigins"] == origins
    assert data["allowedCardNetworks"] == list(microform.CARD_NETWORKS) and len(microform.CARD_NETWORKS) == 15
    assert data["allowedPaymentTypes"] == ["CARD"] and data["clientVersion"] == "v2.0"


def test_unsigned_session_request_is_401(cybersource_url):
    response = post_session(cybersource_url, sign=False)
    assert response.status_code == 401 and "responseStatus" not in response.text


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "targetOrigins"),
        ({"targetOrigins": []}, "targetOrigins"),
        ({"targetOrigins": "https://shop.example"}, "targetOrigins"),
        ({"targetOrigins": ["ftp://shop.example"]}, "targetOrigins[0]"),
        ({"targetOrigins": [SHOP, "http://shop.example"]}, "targetOrigins[1]"),
        ({"targetOrigins": ["https://shop.example/checkout"]}, "targetOrigins[0]"),
        ({"targetOrigins": ["https://shop.example/"]}, "targetOrigins[0]"),
        ({"targetOrigins": ["https://shop.example?x=1"]}, "targetOrigins[0]"),
        ({"targetOrigins": ["https://shop.example#pay"]}, "targetOrigins[0]"),
        ({"targetOrigins": ["https://user@shop.example"]}, "targetOrigins[0]"),
        ({"targetOrigins": ["shop.example"]}, "targetOrigins[0]"),
        ({"targetOrigins": [42]}, "targetOrigins[0]"),
        ({"targetOrigins": [SHOP], "allowedCardNetworks": ["VISA", "PAYPAL"]}, "allowedCardNetworks[1]"),
        ({"targetOrigins": [SHOP], "allowedCardNetworks": ["visa"]}, "allowedCardNetworks[0]"),
        ({"targetOrigins": [SHOP], "allowedCardNetworks": []}, "allowedCardNetworks"),
        ({"targetOrigins": [SHOP], "allowedPaymentTypes": ["APPLEPAY"]}, "allowedPaymentTypes[0]"),
        ({"targetOrigins": [SHOP], "clientVersion": 2}, "clientVersion"),
        ({"targetOrigins": [SHOP], "transientTokenResponseOptions": {"includeCardPrefix": "yes"}}, None),
        ({"targetOrigins": [SHOP], "fields": {}}, "fields"),
        ([SHOP], "body"),
    ],
)
def test_invalid_session_request_is_400_naming_the_location(cybersource_url, body, location):
    response = post_session(cybersource_url, body)

    assert response.status_code == 400
    status = response.json()["responseStatus"]
    assert status["reason"] == "VALIDATION_ERROR" and status["status"] == 400
    locations = [d["location"] for d in status["details"]]
    assert (location or "transientTokenResponseOptions.includeCardPrefix") in locations


def test_microform_session_faults(cybersource_url):
    queue_faults(cybersource_url, "microform-sessions", {"status": 503}, {"jwt": "origins_mismatch"})

    assert post_session(cybersource_url).status_code == 503
    mismatched = claims_of(context(cybersource_url))
    assert mismatched["ctx"][0]["data"]["targetOrigins"] == ["https://origins-mismatch.invalid"]
    assert claims_of(context(cybersource_url))["ctx"][0]["data"]["targetOrigins"] == [SHOP]


# -- the Flex origin: client library and field iframe -----------------------------------------


def test_client_library_is_served_with_its_sri_hash(cybersource_url):
    data = claims_of(context(cybersource_url))["ctx"][0]["data"]

    response = httpx.get(data["clientLibrary"], headers={"Origin": SHOP})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"].startswith("application/javascript")
    assert sri(response.content) == data["clientLibraryIntegrity"]
    assert b"window.Flex" in response.content or b"global.Flex" in response.content
    assert "console.log" not in response.text


def test_field_iframe_is_framed_only_by_the_sessions_origins(cybersource_url):
    origins = [SHOP, "http://127.0.0.1:8083"]
    claims = claims_of(context(cybersource_url, {"targetOrigins": origins}))
    mf_origin, kid = claims["ctx"][0]["data"]["mfOrigin"], claims["flx"]["jwk"]["kid"]

    page = httpx.get(mf_origin + "/microform/bundle/v2.0/iframe.html", params={"kid": kid, "field": "number"})

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = dict(directive.strip().split(" ", 1) for directive in page.headers["content-security-policy"].split(";"))
    assert policy["frame-ancestors"] == "https://shop.example http://127.0.0.1:8083"
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    config = json.loads(re.search(r'id="mf-config" type="application/json">(.*?)</script>', page.text).group(1))
    assert config == {"kid": kid, "field": "number", "targetOrigins": origins}
    script = httpx.get(mf_origin + "/microform/bundle/v2.0/iframe.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert "console.log" not in script.text


def test_field_iframe_for_an_unknown_key_is_a_404_page(cybersource_url):
    flex_context = post_session(
        cybersource_url, {"fields": {"paymentInformation": {"card": {"number": {}}}}}, path="/flex/v2/sessions"
    ).text
    mf_origin = claims_of(flex_context)["flx"]["origin"]
    iframe = mf_origin + "/microform/bundle/v2.0/iframe.html"

    unknown = httpx.get(iframe, params={"kid": "nope", "field": "number"})
    flex_kid = httpx.get(iframe, params={"kid": claims_of(flex_context)["flx"]["jwk"]["kid"], "field": "number"})
    bad_field = httpx.get(
        iframe, params={"kid": claims_of(context(cybersource_url))["flx"]["jwk"]["kid"], "field": "x"}
    )

    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in unknown.headers["content-security-policy"]
    assert flex_kid.status_code == 404 and bad_field.status_code == 400


def test_library_is_not_on_the_rest_host(cybersource_url):
    assert httpx.get(cybersource_url + microform.SCRIPT_PATH).status_code == 404


# -- /flex/v2/tokens for Microform sessions -------------------------------------------------------


def test_microform_token(cybersource_url):
    ctx = context(cybersource_url)
    card = {"number": VISA, "securityCode": "123", "expirationMonth": "12", "expirationYear": "2031"}

    response = post_token(ctx, encrypt_card(ctx, card))

    assert response.status_code == 201, response.text
    assert VISA not in response.text
    claims = verify_token(ctx, response.text)
    assert claims["type"] == "mf-2.0.0" and re.fullmatch(r"Flex/\d\d", claims["iss"])
    assert claims["exp"] - claims["iat"] == 900 and re.fullmatch(r"[A-Z0-9]{64}", claims["jti"])
    assert claims["content"] == {
        "paymentInformation": {
            "card": {
                "number": {"maskedValue": "XXXXXXXXXXXX1111", "bin": "411111", "detectedCardTypes": ["001"]},
                "securityCode": {},
                "expirationMonth": {"value": "12"},
                "expirationYear": {"value": "2031"},
                "type": {"value": "001"},
            }
        }
    }


@pytest.mark.parametrize(
    ("number", "card_type"),
    [
        ("5555555555554444", "002"),
        ("2223003122003222", "002"),
        ("378282246310005", "003"),
        ("6011111111111117", "004"),
        ("36227206271667", "005"),
        ("3530111333300000", "007"),
        ("6759649826438453", "042"),
        ("6200000000000005", "062"),
    ],
)
def test_detected_card_types(cybersource_url, number, card_type):
    ctx = context(cybersource_url, {"targetOrigins": [SHOP]})

    response = post_token(ctx, encrypt_card(ctx, {"number": number}))

    assert response.status_code == 201, response.text
    card = verify_token(ctx, response.text)["content"]["paymentInformation"]["card"]
    assert card["number"]["detectedCardTypes"] == [card_type] and card["type"] == {"value": card_type}
    assert card["number"]["maskedValue"] == "X" * (len(number) - 4) + number[-4:]


def test_card_outside_allowed_networks_is_refused(cybersource_url):
    ctx = context(cybersource_url, {"targetOrigins": [SHOP], "allowedCardNetworks": ["MASTERCARD"]})

    refused = post_token(ctx, encrypt_card(ctx, {"number": VISA}))
    accepted = post_token(ctx, encrypt_card(ctx, {"number": "5555555555554444"}))

    assert refused.status_code == 400 and VISA not in refused.text
    status = refused.json()["responseStatus"]
    assert status["reason"] == "VALIDATION_ERROR"
    assert [d["location"] for d in status["details"]] == ["paymentInformation.card.number"]
    assert "VISA" in status["details"][0]["message"]
    assert accepted.status_code == 201


def test_microform_token_refuses_what_flex_refuses(cybersource_url):
    ctx = context(cybersource_url)

    luhn = post_token(ctx, encrypt_card(ctx, {"number": "4111111111111112"}))
    missing = post_token(ctx, encrypt_card(ctx, {"securityCode": "123"}))

    assert luhn.status_code == 400 and "invalid card number" in luhn.text
    assert missing.status_code == 400
    assert {"location": "paymentInformation.card.number", "message": "required"} in missing.json()["responseStatus"][
        "details"
    ]


def test_card_prefix_left_out_when_asked(cybersource_url):
    body = {"targetOrigins": [SHOP], "transientTokenResponseOptions": {"includeCardPrefix": False}}
    ctx = context(cybersource_url, body)

    response = post_token(ctx, encrypt_card(ctx, {"number": VISA}))

    number = verify_token(ctx, response.text)["content"]["paymentInformation"]["card"]["number"]
    assert number == {"maskedValue": "XXXXXXXXXXXX1111", "detectedCardTypes": ["001"]}


def test_flex_api_sessions_and_tokens_are_unchanged(cybersource_url):
    flex = post_session(
        cybersource_url, {"fields": {"paymentInformation": {"card": {"number": {}}}}}, path="/flex/v2/sessions"
    )
    assert flex.status_code == 201
    assert claims_of(flex.text)["ctx"][0]["type"] == "api-0.1.0"

    response = post_token(flex.text, encrypt_card(flex.text, {"number": VISA}))

    claims = verify_token(flex.text, response.text)
    assert claims["type"] == "gda-0.9.0"
    assert claims["content"]["paymentInformation"]["card"]["number"] == {
        "maskedValue": "XXXXXXXXXXXX1111",
        "bin": "411111",
    }


# -- the library in headless Chromium ---------------------------------------------------------------

# as tests/browser finds it: CHROMIUM_PATH, else chromium on PATH, else Debian's
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>microform test page</title>
<script src="{library}" integrity="{integrity}" crossorigin="anonymous"></script>
</head><body>
<div id="number-container" style="height:40px;border:1px solid #999"></div>
<div id="securityCode-container" style="height:40px;border:1px solid #999"></div>
<script>
window.events = [];
window.errorOf = (e) => e && {{name: e.name, reason: e.reason, message: e.message, details: e.details}};
window.mount = (captureContext, fields) => {{
  try {{
    window.mf = new Flex(captureContext).microform({{styles: {{input: {{"font-size": "16px", color: "#222"}}}}}});
  }} catch (e) {{
    return errorOf(e);
  }}
  window.fields = {{}};
  for (const type of fields) {{
    const field = mf.createField(type, {{placeholder: type}});
    for (const name of ["change", "load", "focus", "blur", "error"]) {{
      field.on(name, (data) => events.push({{field: type, name, data: name === "error" ? errorOf(data) : data}}));
    }}
    field.load("#" + type + "-container");
    window.fields[type] = field;
  }}
  return null;
}};
window.token = (options) => new Promise((resolve) =>
  mf.createToken(options, (err, token) => resolve({{err: errorOf(err), token}})));
</script>
</body></html>
"""


def _page_app(pages: dict[str, str]):
    def app(environ, start_response):
        body = pages.get(environ["PATH_INFO"])
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [body.encode()]

    return app


@pytest.fixture(scope="module")
def browser_stack(request) -> Iterator[dict[str, Any]]:
    """Its own emulator (its Flex origin can be stopped), two page origins and Chromium
    (the session's one: ``browser`` in tests/conftest.py)."""
    pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI ({CHROMIUM} is missing)")
        warnings.warn(f"Microform library browser tests SKIPPED: no Chromium at {CHROMIUM}", stacklevel=1)
        pytest.skip(f"Chromium is not installed ({CHROMIUM}): the Microform library browser tests are skipped")
    emulator = CybersourceEmulator(pool_size=4)
    flex = start_flex_origin(emulator)
    rest = ServerThread(emulator).start()
    pages: dict[str, str] = {}
    shop = ServerThread(_page_app(pages)).start()
    elsewhere = ServerThread(_page_app(pages)).start()
    browser = request.getfixturevalue("browser")
    try:
        yield {
            "emulator": emulator,
            "rest": rest.url,
            "shop": shop.url,
            "elsewhere": elsewhere.url,
            "pages": pages,
            "browser": browser,
            "flex": flex,
        }
    finally:
        for server in (elsewhere, shop, rest, flex):
            server.stop()


class Checkout:
    """One browser page on the shop origin with a capture context for it."""

    def __init__(self, stack: dict[str, Any], body: dict[str, Any] | None = None, origin: str | None = None) -> None:
        self.stack = stack
        self.context = context(stack["rest"], body or {"targetOrigins": [stack["shop"]]})
        data = claims_of(self.context)["ctx"][0]["data"]
        path = f"/checkout-{len(stack['pages'])}.html"
        stack["pages"][path] = PAGE.format(library=data["clientLibrary"], integrity=data["clientLibraryIntegrity"])
        self.browser_context = stack["browser"].new_context()
        self.page = self.browser_context.new_page()
        self.requests: list[tuple[str, str]] = []
        self.console: list[str] = []
        self.page.on("request", lambda r: self.requests.append((r.url, r.post_data or "")))
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.goto((origin or stack["shop"]) + path)
        self.page.wait_for_function("typeof window.Flex === 'function'", timeout=10_000)

    def mount(self, fields: tuple[str, ...] = ("number", "securityCode")) -> dict[str, Any] | None:
        error = self.page.evaluate("([ctx, fields]) => mount(ctx, fields)", [self.context, list(fields)])
        if error is None:
            self.page.wait_for_function(
                f"events.filter(e => e.name === 'load').length === {len(fields)}", timeout=10_000
            )
        return error

    def input(self, field: str):
        return self.page.frame_locator(f"#{field}-container iframe").locator("input")

    def type_into(self, field: str, value: str) -> dict[str, Any]:
        """Fill a field inside its iframe and wait for the change event it sends the page."""
        changes = f"events.filter(e => e.field === '{field}' && e.name === 'change').length"
        before = self.page.evaluate(changes)
        self.input(field).fill(value)
        self.page.wait_for_function(f"{changes} > {before}", timeout=10_000)
        return self.last_change(field)

    def last_change(self, field: str) -> dict[str, Any]:
        return self.page.evaluate(f"events.filter(e => e.field === '{field}' && e.name === 'change').at(-1).data")

    def token(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.page.evaluate("(options) => token(options)", options or {})

    def close(self) -> None:
        self.browser_context.close()


@pytest.fixture
def checkout(browser_stack) -> Iterator[Checkout]:
    page = Checkout(browser_stack)
    yield page
    page.close()


@pytest.mark.browser
def test_browser_visa_becomes_a_transient_token(checkout):
    assert checkout.mount() is None

    checkout.type_into("number", VISA)
    checkout.type_into("securityCode", "123")
    result = checkout.token({"expirationMonth": "12", "expirationYear": "2031"})

    assert result["err"] is None, result["err"]
    claims = verify_token(checkout.context, result["token"])
    assert claims["type"] == "mf-2.0.0"
    card = claims["content"]["paymentInformation"]["card"]
    assert card == {
        "number": {"maskedValue": "XXXXXXXXXXXX1111", "bin": "411111", "detectedCardTypes": ["001"]},
        "securityCode": {},
        "expirationMonth": {"value": "12"},
        "expirationYear": {"value": "2031"},
        "type": {"value": "001"},
    }
    change = checkout.last_change("number")
    assert change["valid"] is True and change["empty"] is False
    assert [(c["name"], c["cybsCardType"]) for c in change["card"]] == [("visa", "001")]
    assert checkout.last_change("securityCode")["valid"] is True
    # the digits never reach the page: not its DOM, its events, any request or the console
    assert VISA not in checkout.page.content() and VISA not in json.dumps(checkout.page.evaluate("events"))
    token_posts = [body for url, body in checkout.requests if url.endswith("/flex/v2/tokens")]
    assert len(token_posts) == 1 and token_posts[0].count(".") == 4
    assert not any(VISA in url or VISA in body or "123" in body.split(".")[0] for url, body in checkout.requests)
    assert not any(VISA in line for line in checkout.console)


@pytest.mark.browser
def test_browser_card_detection_as_typed(checkout):
    checkout.mount(("number",))

    ambiguous = {c["name"] for c in checkout.type_into("number", "3")["card"]}
    mastercard = checkout.type_into("number", "5555 5555 5555 4444")
    empty = checkout.type_into("number", "")

    assert ambiguous == {"amex", "diners-club", "jcb"}
    assert mastercard["valid"] is True and [c["cybsCardType"] for c in mastercard["card"]] == ["002"]
    assert empty == {"card": [], "valid": False, "couldBeValid": True, "empty": True}


@pytest.mark.browser
def test_browser_invalid_number_makes_no_token(checkout):
    checkout.mount()

    checkout.type_into("number", "4111111111111112")
    checkout.type_into("securityCode", "123")
    result = checkout.token({"expirationMonth": "12", "expirationYear": "2031"})

    change = checkout.last_change("number")
    assert change["valid"] is False and change["card"][0]["name"] == "visa"  # could still be a 19-digit Visa
    assert result["token"] is None
    assert result["err"]["name"] == "MicroformError" and result["err"]["reason"] == "CREATE_TOKEN_VALIDATION_FIELDS"
    assert result["err"]["details"] == [{"location": "number", "message": "Validation error"}]
    assert not [url for url, _ in checkout.requests if url.endswith("/flex/v2/tokens")]


@pytest.mark.browser
def test_browser_invalid_security_code_is_named(checkout):
    checkout.mount()

    checkout.type_into("number", "378282246310005")
    checkout.type_into("securityCode", "123")  # Amex takes four digits
    result = checkout.token({"expirationMonth": "01", "expirationYear": "2030"})

    assert result["err"]["reason"] == "CREATE_TOKEN_VALIDATION_FIELDS"
    assert result["err"]["details"] == [{"location": "securityCode", "message": "Validation error"}]


@pytest.mark.browser
def test_browser_network_outside_the_context_is_not_valid(browser_stack):
    page = Checkout(browser_stack, {"targetOrigins": [browser_stack["shop"]], "allowedCardNetworks": ["MASTERCARD"]})
    try:
        page.mount(("number",))
        visa = page.type_into("number", VISA)
        refused = page.token()
        page.type_into("number", "5555555555554444")
        accepted = page.token()
    finally:
        page.close()

    assert visa["valid"] is False and visa["card"][0]["name"] == "visa" and visa["card"][0]["valid"] is False
    assert refused["err"]["reason"] == "CREATE_TOKEN_VALIDATION_FIELDS"
    assert accepted["err"] is None
    assert verify_token(page.context, accepted["token"])["content"]["paymentInformation"]["card"]["type"] == {
        "value": "002"
    }


@pytest.mark.browser
def test_browser_parameter_and_loading_errors(checkout):
    error = checkout.page.evaluate(
        """(ctx) => {
            const mf = new Flex(ctx).microform({});
            const found = {};
            try { mf.createField("cardholder"); } catch (e) { found.type = e.reason; }
            const number = mf.createField("number");
            try { mf.createField("number"); } catch (e) { found.duplicate = e.reason; }
            try { number.load("#no-such-container"); } catch (e) { found.container = e.reason; }
            try { new Flex("not-a-jwt"); } catch (e) { found.context = e.reason; }
            return new Promise((resolve) => mf.createToken({}, (err) => resolve({...found, notLoaded: err.reason})));
        }""",
        checkout.context,
    )
    checkout.mount(("number",))
    checkout.type_into("number", VISA)
    month = checkout.token({"expirationMonth": "13", "expirationYear": "2031"})
    year = checkout.token({"expirationMonth": "12", "expirationYear": "31"})

    assert error == {
        "type": "CREATE_FIELD_INVALID_FIELD_TYPE",
        "duplicate": "CREATE_FIELD_DUPLICATE",
        "container": "FIELD_LOAD_CONTAINER_SELECTOR",
        "context": "CAPTURE_CONTEXT_INVALID",
        "notLoaded": "CREATE_TOKEN_NO_FIELDS_LOADED",
    }
    assert month["err"]["reason"] == "CREATE_TOKEN_VALIDATION_PARAMS"
    assert month["err"]["details"] == [{"location": "expirationMonth", "message": "Invalid value"}]
    assert year["err"]["details"] == [{"location": "expirationYear", "message": "Invalid value"}]


@pytest.mark.browser
def test_browser_server_side_refusal(browser_stack, checkout):
    checkout.mount(("number",))
    checkout.type_into("number", VISA)
    kid = claims_of(checkout.context)["flx"]["jwk"]["kid"]
    browser_stack["emulator"].contexts[kid].expires = int(time.time()) - 1

    result = checkout.token({"expirationMonth": "12", "expirationYear": "2031"})

    assert result["err"]["reason"] == "CREATE_TOKEN_VALIDATION_SERVERSIDE"
    assert "expired" in result["err"]["message"]


@pytest.mark.browser
def test_browser_page_outside_target_origins_is_refused(browser_stack):
    page = Checkout(browser_stack, origin=browser_stack["elsewhere"])  # context for the shop origin only
    try:
        error = page.mount()
        kid = claims_of(page.context)["flx"]["jwk"]["kid"]
        mf_origin = claims_of(page.context)["ctx"][0]["data"]["mfOrigin"]
        # a page that frames the field document itself: the browser refuses it (frame-ancestors)
        page.page.evaluate(
            """(src) => { const f = document.createElement("iframe"); f.src = src;
               document.getElementById("number-container").appendChild(f); }""",
            f"{mf_origin}/microform/bundle/v2.0/iframe.html?kid={kid}&field=number",
        )
        page.page.wait_for_timeout(1000)
        framed_inputs = page.input("number").count()
    finally:
        page.close()

    assert error["name"] == "MicroformError" and error["reason"] == "CAPTURE_CONTEXT_INVALID"
    assert browser_stack["elsewhere"] in error["message"]
    assert framed_inputs == 0


@pytest.mark.browser
def test_browser_field_refuses_a_foreign_context(browser_stack, checkout):
    """A page that hands the field iframe some other context than the one it was made for:
    the iframe disables itself and says why."""
    checkout.mount(("number",))
    other = context(browser_stack["rest"], {"targetOrigins": [browser_stack["shop"]]})
    reply = checkout.page.evaluate(
        """([other, mfOrigin]) => new Promise((resolve) => {
            const frame = document.querySelector("#number-container iframe");
            const f = document.createElement("iframe");
            f.src = frame.src;
            window.addEventListener("message", (event) => {
              if (event.source === f.contentWindow && event.data.type === "ready") {
                f.contentWindow.postMessage({source: "flex-microform", type: "init", captureContext: other,
                                             instance: "x", options: {}}, mfOrigin);
              } else if (event.source === f.contentWindow && event.data.type === "error") {
                resolve(event.data);
              }
            });
            document.body.appendChild(f);
        })""",
        [other, claims_of(other)["ctx"][0]["data"]["mfOrigin"]],
    )
    assert reply["reason"] == "CAPTURE_CONTEXT_INVALID"


@pytest.mark.browser
def test_browser_network_failure_is_an_xhr_error(browser_stack):
    """Its own emulator: the Flex origin stops after the fields load."""
    emulator = CybersourceEmulator(pool_size=1)
    flex = start_flex_origin(emulator)
    rest = ServerThread(emulator).start()
    stack = {**browser_stack, "rest": rest.url}
    page = Checkout(stack)
    try:
        page.mount(("number",))
        page.type_into("number", VISA)
        flex.stop()
        result = page.token({"expirationMonth": "12", "expirationYear": "2031"})
    finally:
        page.close()
        rest.stop()

    assert result["err"]["reason"] == "CREATE_TOKEN_XHR_ERROR"


@pytest.mark.browser
def test_browser_server_error_and_timeout(browser_stack, checkout):
    """A 5xx from the Flex origin is an XHR error; an answer that never comes in time is a
    timeout (the page's clock runs 30 s ahead while the emulator holds the request)."""
    checkout.mount(("number",))
    checkout.type_into("number", VISA)
    queue_faults(browser_stack["rest"], "tokens", {"status": 502}, {"delay": 2})

    server_error = checkout.token({"expirationMonth": "12", "expirationYear": "2031"})
    checkout.page.clock.install()
    checkout.page.evaluate(
        "() => { window.outcome = null; token({expirationMonth: '12', expirationYear: '2031'})"
        ".then((r) => { window.outcome = r; }); }"
    )
    time.sleep(0.3)  # the request is on its way (the page's own timers are fake now)
    checkout.page.clock.run_for(31_000)
    timed_out = checkout.page.evaluate("window.outcome")

    assert server_error["err"]["reason"] == "CREATE_TOKEN_XHR_ERROR" and "502" in server_error["err"]["message"]
    assert timed_out["err"]["reason"] == "CREATE_TOKEN_TIMEOUT" and timed_out["token"] is None
