"""Microform v2 capture contexts and transient-token verification, through API Gateway
proxy events to issue_capture_context with the template's environment, moto (the orders
table, Secrets Manager) and the Cybersource emulator over HTTP: the token is made the way
Microform's iframe makes it (a JWE to the context's flx.origin + flx.path)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import httpx
import jwt
import pytest

from devstack.card_entry import context_claims, encrypt_card, post_token
from tests.conftest import api_event, invoke
from tests.integration.test_cybersource_client import make_client, resign

FUNCTION = "IssueCaptureContextFunction"
MICROFORM = "issue_capture_context/post_microform.json"
VERIFY = "issue_capture_context/post_verify_transient_token.json"
SHOP = "https://shop.example"
ORIGINS = f"{SHOP},http://localhost:8083,http://127.0.0.1:8083"
ASK = {"integration": "microform", "targetOrigins": [SHOP], "allowedCardNetworks": ["VISA", "MASTERCARD"]}
VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
FULLWIDTH_VISA = "".join(chr(0xFF10 + int(d)) for d in VISA)  # the same digits, Unicode fullwidth


@pytest.fixture
def handler(function_env):
    module, _ = function_env(FUNCTION, CHECKOUT_ORIGINS=ORIGINS)
    return module


def call(handler, sample, body):
    result = invoke(handler, api_event(sample, body))
    return result["statusCode"], json.loads(result["body"])


def counts(url: str) -> dict[str, int]:
    return httpx.get(url + "/__emulator/stats").json()["counts"]


def card(number: str, *, cvv: str = "123", month: str = "12", year: str = "2031") -> dict:
    return {
        "paymentInformation": {
            "card": {"number": number, "securityCode": cvv, "expirationMonth": month, "expirationYear": year}
        }
    }


def tokenize(context: str, data: dict) -> str:
    """What Microform's number iframe does: encrypt to flx.jwk (RSA-OAEP-256 + A256GCM) and
    post to flx.origin + flx.path; the transient token it answers."""
    answer = post_token(context, encrypt_card(context, data, alg="RSA-OAEP-256"))
    assert answer.status == 201, answer.body
    return answer.body


def issue(handler, **changes) -> dict:
    status, body = call(handler, MICROFORM, {**ASK, **changes})
    assert status == 201, body
    return body


# -- Microform capture contexts ----------------------------------------------------------


def test_a_microform_context_is_verified_and_names_its_client_library(handler, cybersource_url):
    before = counts(cybersource_url).get("microform_sessions", 0)
    body = issue(handler)
    assert counts(cybersource_url)["microform_sessions"] == before + 1
    assert body["integration"] == "microform"
    assert body["targetOrigins"] == [SHOP]
    assert body["allowedCardNetworks"] == ["VISA", "MASTERCARD"]
    assert body["allowedPaymentTypes"] == ["CARD"]
    claims = context_claims(body["captureContext"])
    (ctx,) = claims["ctx"]
    assert ctx["type"] == "mf-2.1.0"
    assert body["clientLibrary"] == ctx["data"]["clientLibrary"]
    assert body["clientLibraryIntegrity"] == ctx["data"]["clientLibraryIntegrity"]
    assert body["keyId"] == claims["flx"]["jwk"]["kid"]
    assert body["expiresAt"].endswith("Z")
    # the integrity hash is the script's: a browser loading clientLibrary with it accepts it
    script = httpx.get(body["clientLibrary"])
    assert script.status_code == 200
    algorithm, digest = body["clientLibraryIntegrity"].split("-", 1)
    assert base64.b64decode(digest) == hashlib.new(algorithm, script.content).digest()
    # signed by Cybersource's published key
    kid = jwt.get_unverified_header(body["captureContext"])["kid"]
    key = jwt.PyJWK(httpx.get(f"{cybersource_url}/flex/v2/public-keys/{kid}").json(), algorithm="RS256")
    jwt.decode(body["captureContext"], key.key, algorithms=["RS256"])


def test_the_session_asked_of_cybersource_carries_the_configured_client_version(function_env, cybersource_url):
    module, _ = function_env(FUNCTION, CHECKOUT_ORIGINS=SHOP, MICROFORM_CLIENT_VERSION="v2")
    status, body = call(module, MICROFORM, ASK)
    assert status == 201, body
    assert context_claims(body["captureContext"])["ctx"][0]["data"].get("clientVersion") == "v2"


@pytest.mark.parametrize(
    ("origins", "field"),
    [
        (["https://evil.example"], "targetOrigins[0]"),
        ([SHOP, "https://other.example"], "targetOrigins[1]"),
        (["http://localhost:9999"], "targetOrigins[0]"),
    ],
)
def test_an_origin_outside_checkout_origins_gets_no_context(handler, cybersource_url, origins, field):
    before = counts(cybersource_url).get("microform_sessions", 0)
    status, body = call(handler, MICROFORM, {**ASK, "targetOrigins": origins})
    assert status == 422
    assert body["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert [(d["field"], d["rule"]) for d in body["error"]["details"]] == [(field, "not_allowed")]
    assert counts(cybersource_url).get("microform_sessions", 0) == before  # Cybersource never asked


def test_the_default_port_is_the_same_origin(handler, cybersource_url):
    assert issue(handler, targetOrigins=["https://shop.example:443"])["targetOrigins"] == ["https://shop.example:443"]


def test_without_checkout_origins_no_page_gets_a_context(function_env, cybersource_url):
    module, _ = function_env(FUNCTION, CHECKOUT_ORIGINS="")
    status, body = call(module, MICROFORM, ASK)
    assert status == 422 and body["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert "CheckoutOrigins" in body["error"]["message"]


def test_a_misconfigured_checkout_origin_is_the_operators_error(function_env, cybersource_url):
    module, _ = function_env(FUNCTION, CHECKOUT_ORIGINS="https://shop.example/checkout")
    status, body = call(module, MICROFORM, ASK)
    assert status == 503 and body["error"]["code"] == "CONFIGURATION_ERROR"
    assert "CHECKOUT_ORIGINS" in body["error"]["message"]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"integration": "paypal"}, "integration", "enum"),
        ({"targetOrigins": []}, "targetOrigins", "type"),
        ({"targetOrigins": ["http://shop.example"]}, "targetOrigins[0]", "scheme"),
        ({"targetOrigins": [SHOP + "/pay"]}, "targetOrigins[0]", "no_path"),
        ({"targetOrigins": [SHOP] * 2}, "targetOrigins", "duplicate"),
        ({"targetOrigins": [f"https://s{i}.example" for i in range(11)]}, "targetOrigins", "type"),
        ({"allowedCardNetworks": ["VISA", "DINERS"]}, "allowedCardNetworks", "enum"),
        ({"allowedCardNetworks": []}, "allowedCardNetworks", "enum"),
        ({"allowedPaymentTypes": ["CHECK"]}, "allowedPaymentTypes", "enum"),
        ({"fields": {}}, "fields", "unknown"),
    ],
)
def test_a_bad_microform_request_names_the_field_and_rule(handler, change, field, rule):
    status, body = call(handler, MICROFORM, {**ASK, **change})
    assert status == 400
    assert (body["error"]["details"][0]["field"], body["error"]["details"][0]["rule"]) == (field, rule)


def test_integration_flex_is_todays_capture_context(handler, cybersource_url):
    fields = {"paymentInformation": {"card": {"number": {}}}}
    status, body = call(handler, MICROFORM, {"integration": "flex", "fields": fields})
    assert status == 201 and body["requiredFields"] == ["paymentInformation.card.number"]
    assert context_claims(body["captureContext"])["ctx"][0]["type"] == "api-0.1.0"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda data: data.update(type="api-0.1.0"), "not_microform"),
        (lambda data: data["data"].update(targetOrigins=["https://evil.example"]), "origins_mismatch"),
        (lambda data: data["data"].update(allowedCardNetworks=["AMEX"]), "networks_mismatch"),
        (lambda data: data["data"].update(clientLibraryIntegrity="md5-abc"), "client_library"),
        (lambda data: data["data"].update(clientLibrary="http://cdn.example/mf.js"), "client_library"),
        (lambda data: data["data"].pop("clientLibrary"), "client_library"),
    ],
)
def test_a_microform_context_not_as_asked_fails_verification(cybersource, cybersource_url, change, reason):
    from decline_rescue.domain.errors import CaptureContextUnverified

    emulator, _ = cybersource
    client = make_client(cybersource_url)
    token = client.create_microform_session(
        {"clientVersion": "v2.0", "targetOrigins": [SHOP], "allowedCardNetworks": ["VISA", "MASTERCARD"]}
    )
    claims = context_claims(token)
    change(claims["ctx"][0])
    forged = resign(token, emulator, ctx=claims["ctx"])
    with pytest.raises(CaptureContextUnverified) as caught:
        client.verify_microform(forged, target_origins=(SHOP,), networks=("VISA", "MASTERCARD"))
    assert caught.value.reason == reason


# -- transient tokens ------------------------------------------------------------------


@pytest.mark.parametrize(("number", "card_type", "brand"), [(VISA, "001", "VISA"), (MASTERCARD, "002", "MASTERCARD")])
def test_a_token_verifies_once_into_a_card_summary(handler, cybersource_url, captured_logs, number, card_type, brand):
    context = issue(handler)["captureContext"]
    token = tokenize(context, card(number))
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": context})
    assert status == 200, body
    claims = jwt.decode(token, options={"verify_signature": False})
    assert body["verified"] is True and body["tokenId"] == claims["jti"] and body["type"] == "mf-2.0.0"
    assert body["card"] == {
        "maskedNumber": "X" * 12 + number[-4:],
        "bin": number[:6],
        "last4": number[-4:],
        "type": card_type,
        "brand": brand,
        "expirationMonth": "12",
        "expirationYear": "2031",
        "securityCode": True,
        "detectedCardTypes": [card_type],
    }
    # once: the same token again is a replay
    status, again = call(handler, VERIFY, {"transientToken": token, "captureContext": context})
    assert status == 409 and again["error"]["code"] == "TRANSIENT_TOKEN_USED"
    assert number not in captured_logs.getvalue() and token not in captured_logs.getvalue()


def test_a_flex_api_token_verifies_too(handler, cybersource_url):
    fields = {"paymentInformation": {"card": {"number": {}, "securityCode": {"required": False}}}}
    status, issued = call(handler, MICROFORM, {"fields": fields})
    assert status == 201
    token = tokenize(issued["captureContext"], {"paymentInformation": {"card": {"number": VISA}}})
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": issued["captureContext"]})
    assert status == 200, body
    assert body["type"] == "gda-0.9.0" and body["card"]["maskedNumber"] == "XXXXXXXXXXXX1111"
    assert body["card"]["securityCode"] is False


def test_a_token_from_another_context_is_refused(handler, cybersource_url):
    first, second = issue(handler)["captureContext"], issue(handler)["captureContext"]
    token = tokenize(first, card(VISA))
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": second})
    assert status == 422
    assert (body["error"]["code"], body["error"]["reason"]) == ("TRANSIENT_TOKEN_REJECTED", "wrong_context")
    # refused tokens are not spent: with its own context it still verifies
    assert call(handler, VERIFY, {"transientToken": token, "captureContext": first})[0] == 200


def _session_key(emulator, context: str):
    return emulator.contexts[context_claims(context)["flx"]["jwk"]["kid"]].key


def _signed(emulator, context: str, **claims) -> str:
    kid = context_claims(context)["flx"]["jwk"]["kid"]
    now = int(time.time())
    body = {"iss": "Flex/07", "type": "mf-2.0.0", "iat": now, "exp": now + 900, "jti": "J" * 64}
    body["content"] = {"paymentInformation": {"card": {"number": {"maskedValue": "XXXXXXXXXXXX1111", "bin": "411111"}}}}
    body.update(claims)
    return jwt.encode(body, _session_key(emulator, context), algorithm="RS256", headers={"kid": kid})


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda emu, ctx, tok: tok[:-6] + ("AAAAAA" if not tok.endswith("AAAAAA") else "BBBBBB"), "signature"),
        (lambda emu, ctx, tok: "not-a-jwt", "malformed"),
        (lambda emu, ctx, tok: _signed(emu, ctx, iat=int(time.time()) - 2000, exp=int(time.time()) - 1000), "expired"),
        (lambda emu, ctx, tok: _signed(emu, ctx, iss="Evil/00"), "issuer"),
        (
            lambda emu, ctx, tok: _signed(
                emu, ctx, content={"paymentInformation": {"card": {"number": {"maskedValue": VISA}}}}
            ),
            "content",
        ),
        (lambda emu, ctx, tok: _signed(emu, ctx, content={}), "content"),
        (lambda emu, ctx, tok: jwt.encode({"a": 1}, "s" * 32, algorithm="HS256"), "bad_algorithm"),
    ],
)
def test_a_token_that_does_not_verify_names_what_failed(
    handler, cybersource, cybersource_url, captured_logs, make, reason
):
    emulator, _ = cybersource
    context = issue(handler)["captureContext"]
    token = make(emulator, context, tokenize(context, card(VISA)))
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": context})
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["reason"]) == ("TRANSIENT_TOKEN_REJECTED", reason)
    # an unmasked number in a token is refused, never echoed nor logged
    assert VISA not in json.dumps(body) and VISA not in captured_logs.getvalue()


def test_a_token_made_after_its_context_expired_is_refused(handler, cybersource, cybersource_url):
    emulator, _ = cybersource
    context = issue(handler)["captureContext"]
    late = context_claims(context)["exp"] + 120
    token = _signed(emulator, context, iat=late, exp=late + 900)
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": context})
    # (its own lifetime starts in the future too: whichever the verifier meets first)
    assert status == 422 and body["error"]["reason"] in ("context_expired", "not_yet_valid")


def test_a_forged_capture_context_is_refused(handler, cybersource_url):
    from cryptography.hazmat.primitives.asymmetric import rsa

    context = issue(handler)["captureContext"]
    token = tokenize(context, card(VISA))
    claims = context_claims(context)
    kid = jwt.get_unverified_header(context)["kid"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": kid})
    status, body = call(handler, VERIFY, {"transientToken": token, "captureContext": forged})
    assert status == 422 and body["error"]["reason"] == "capture_context_bad_signature"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"transientToken": "x"}, "captureContext", "missing"),
        ({"captureContext": "x"}, "transientToken", "missing"),
        ({"transientToken": 5, "captureContext": "x"}, "transientToken", "type"),
        ({"transientToken": "x" * 9000, "captureContext": "x"}, "transientToken", "type"),
        ({"transientToken": "x", "captureContext": "x", "card": "4111 1111 1111 1111"}, "card", "unknown"),
    ],
)
def test_a_bad_verify_request_names_the_field_and_rule(handler, body, field, rule):
    status, answer = call(handler, VERIFY, body)
    assert status == 400
    assert (answer["error"]["details"][0]["field"], answer["error"]["details"][0]["rule"]) == (field, rule)
    assert "4111" not in json.dumps(answer)


def _transient_items(moto_url: str, table: str) -> list[dict]:
    from tests.conftest import aws_client

    pages = aws_client(moto_url, "dynamodb").get_paginator("scan").paginate(TableName=table)
    return [i for page in pages for i in page["Items"] if i["pk"]["S"].startswith("TRANSIENT#")]


@pytest.mark.parametrize(
    "hostile",
    [
        {"transientToken": "4111 1111 1111 1111", "captureContext": "x"},
        {"transientToken": FULLWIDTH_VISA, "captureContext": "x"},
        {"transientToken": 4111111111111111, "captureContext": "x"},
        {"transientToken": "x", "captureContext": "x", "card_Number": "4111-1111-1111-1111"},
        {"transientToken": "x", "captureContext": "x", "CVV2": "123"},
        {"transientToken": {"number": "4111111111111111"}, "captureContext": "x"},
    ],
)
def test_hostile_verify_bodies_are_refused_and_leave_nothing(
    handler, stack, moto_url, cybersource_url, captured_logs, hostile
):
    table = stack.functions[FUNCTION].environment["ORDERS_TABLE"]
    before = _transient_items(moto_url, table)
    status, body = call(handler, VERIFY, hostile)
    assert status in (400, 422), body
    text = json.dumps(body) + captured_logs.getvalue()
    for form in ("4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", FULLWIDTH_VISA[:4]):
        assert form not in text
    assert _transient_items(moto_url, table) == before


def test_a_verified_token_leaves_only_its_id_and_times(handler, stack, moto_url, cybersource_url):
    table = stack.functions[FUNCTION].environment["ORDERS_TABLE"]
    context = issue(handler)["captureContext"]
    token = tokenize(context, card(VISA))
    assert call(handler, VERIFY, {"transientToken": token, "captureContext": context})[0] == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    (item,) = [i for i in _transient_items(moto_url, table) if i["pk"]["S"] == f"TRANSIENT#{jti}"]
    assert set(item) == {"pk", "sk", "verifiedAt", "expiresAt"}
    assert int(item["expiresAt"]["N"]) >= jwt.decode(token, options={"verify_signature": False})["exp"] + 86400
