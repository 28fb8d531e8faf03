"""The Cybersource emulator as a provider: HTTP Signature checks on /flex/v2/sessions,
and /flex/v2/tokens on the Flex origin (flx.origin, its own port) driven by an
independent JOSE library (joserfc) as the card-entry client."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from decline_rescue.providers.cybersource import http_signature
from devstack import card_entry
from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import (
    TESTREST_KEY_ID,
    TESTREST_MERCHANT_ID,
    TESTREST_SHARED_SECRET,
    TOKEN_TYPE,
    CybersourceEmulator,
)

BODY = json.dumps({"fields": {"paymentInformation": {"card": {"number": {}, "securityCode": {"required": False}}}}})


def signed(url: str, body: str = BODY, **override) -> dict[str, str]:
    host = url.split("//", 1)[1]
    args = dict(
        method="POST",
        path="/flex/v2/sessions",
        host=host,
        body=body.encode(),
        merchant_id=TESTREST_MERCHANT_ID,
        key_id=TESTREST_KEY_ID,
        shared_secret_b64=TESTREST_SHARED_SECRET,
        date=http_signature.http_date(time.time()),
    )
    args.update(override)
    return http_signature.signature_headers(**args)


def post_session(url: str, headers: dict[str, str], body: str = BODY) -> httpx.Response:
    return httpx.post(
        url + "/flex/v2/sessions",
        content=body.encode(),
        headers={**headers, "Content-Type": "application/json;charset=utf-8", "Accept": "application/jwt"},
    )


def test_signed_request_gets_a_capture_context(cybersource_url):
    response = post_session(cybersource_url, signed(cybersource_url))
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/jwt")
    claims = card_entry.context_claims(response.text)
    assert claims["ctx"][0]["data"] == {
        "requiredFields": ["paymentInformation.card.number"],
        "optionalFields": ["paymentInformation.card.securityCode"],
    }
    assert claims["exp"] - claims["iat"] == 900 and len(claims["jti"]) == 16
    assert claims["iss"] == "Flex API" and claims["flx"]["path"] == "/flex/v2/tokens"
    jwk = claims["flx"]["jwk"]
    assert jwk["kty"] == "RSA" and jwk["use"] == "enc" and len(base64.urlsafe_b64decode(jwk["n"] + "==")) == 256


def test_each_context_has_its_own_one_time_key(cybersource_url):
    keys = {
        card_entry.context_claims(post_session(cybersource_url, signed(cybersource_url)).text)["flx"]["jwk"]["n"]
        for _ in range(3)
    }
    assert len(keys) == 3


def test_body_without_fields_wrapper_is_accepted(cybersource_url):
    body = json.dumps({"paymentInformation": {"card": {"number": {}}}})
    assert post_session(cybersource_url, signed(cybersource_url, body), body).status_code == 201


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "body_changed_after_digest", "stale_date", "unknown_merchant", "unsigned"],
)
def test_bad_signatures_are_401_like_the_provider(cybersource_url, tamper):
    headers = signed(cybersource_url)
    body = BODY
    if tamper == "wrong_secret":
        headers = signed(cybersource_url, shared_secret_b64=base64.b64encode(b"x" * 32).decode())
    elif tamper == "body_changed_after_digest":
        body = BODY.replace(": ", ":")
    elif tamper == "stale_date":
        headers = signed(cybersource_url, date=http_signature.http_date(time.time() - 3600))
    elif tamper == "unknown_merchant":
        headers = signed(cybersource_url, merchant_id="someone-else")
    elif tamper == "unsigned":
        headers = {}
    response = post_session(cybersource_url, headers, body)
    assert response.status_code == 401
    assert response.json() == {"response": {"rmsg": "Authentication Failed"}}


def test_signature_variants_in_the_wild_are_accepted(cybersource_url):
    """(request-target) spelling and v-c-date instead of date, as older/newer clients send."""
    import hashlib
    import hmac

    host = cybersource_url.split("//", 1)[1]
    date = http_signature.http_date(time.time())
    digest = http_signature.digest(BODY.encode())
    lines = [
        f"host: {host}",
        f"v-c-date: {date}",
        "(request-target): post /flex/v2/sessions",
        f"digest: {digest}",
        f"v-c-merchant-id: {TESTREST_MERCHANT_ID}",
    ]
    sig = base64.b64encode(
        hmac.new(base64.b64decode(TESTREST_SHARED_SECRET), "\n".join(lines).encode(), hashlib.sha256).digest()
    ).decode()
    headers = {
        "v-c-merchant-id": TESTREST_MERCHANT_ID,
        "v-c-date": date,
        "Digest": digest,
        "Signature": f'keyid="{TESTREST_KEY_ID}", algorithm="HmacSHA256", '
        f'headers="host v-c-date (request-target) digest v-c-merchant-id", signature="{sig}"',
    }
    assert post_session(cybersource_url, headers).status_code == 201


def test_unknown_field_is_400_in_the_provider_shape(cybersource_url):
    body = json.dumps({"fields": {"paymentInformation": {"card": {"number": {}, "pin": {}}}}})
    response = post_session(cybersource_url, signed(cybersource_url, body), body)
    assert response.status_code == 400
    status = response.json()["responseStatus"]
    assert status["reason"] == "VALIDATION_ERROR"
    assert status["details"][0]["location"] == "paymentInformation.card.pin"


def test_public_key_endpoint_and_rotation(cybersource_url):
    token = post_session(cybersource_url, signed(cybersource_url)).text
    kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    key = httpx.get(f"{cybersource_url}/flex/v2/public-keys/{kid}").json()
    assert key["kty"] == "RSA" and key["kid"] == kid
    rotated = httpx.post(cybersource_url + "/__emulator/rotate-signing-key", json={"retire": True}).json()
    assert rotated["previous"] == kid
    assert httpx.get(f"{cybersource_url}/flex/v2/public-keys/{kid}").status_code == 404
    assert httpx.get(f"{cybersource_url}/flex/v2/public-keys/{rotated['kid']}").status_code == 200


# -- /flex/v2/tokens with joserfc as the card-entry client -------------------------------


@pytest.fixture
def context(cybersource_url) -> str:
    return post_session(cybersource_url, signed(cybersource_url)).text


CARD = {"paymentInformation": {"card": {"number": "4111111111111111", "securityCode": "123"}}}


@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256"])
@pytest.mark.parametrize("framing", ["jwt", "json"])
@pytest.mark.parametrize("flat", [False, True], ids=["nested", "dotted"])
def test_transient_token(context, alg, framing, flat):
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, CARD, alg=alg, flat=flat), framing=framing)
    assert answer.status == 201, answer.body
    assert answer.digest_ok
    claims = card_entry.verify_transient_token(context, answer.body)
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) == 64 and claims["jti"].isalnum() and claims["jti"].upper() == claims["jti"]
    card = claims["content"]["paymentInformation"]["card"]
    assert card["number"] == {"maskedValue": "XXXXXXXXXXXX1111", "bin": "411111"}
    assert card["securityCode"] == {} and card["type"] == {"value": "001"}
    assert "4111111111111111" not in answer.body and "123" not in json.dumps(card["securityCode"])
    assert card_entry.TRANSIENT_TOKEN_ISSUER.fullmatch(claims["iss"]) and claims["type"] == TOKEN_TYPE == "gda-0.9.0"


def test_tokens_are_served_only_by_the_flex_origin(cybersource, cybersource_url, context):
    """flx.origin names the Flex origin, not the REST host (testflex.cybersource.com is not
    apitest.cybersource.com); the card-entry client posts there, and the REST host's
    /flex/v2/tokens is 404 as the real one's is."""
    emulator, _ = cybersource
    flx = card_entry.context_claims(context)["flx"]
    assert flx["origin"] == emulator.flex_origin != cybersource_url and flx["path"] == "/flex/v2/tokens"
    assert card_entry.token_url(context) == emulator.flex_origin + "/flex/v2/tokens"
    jwe_token = card_entry.encrypt_card(context, CARD)
    on_rest = httpx.post(
        cybersource_url + "/flex/v2/tokens", content=jwe_token, headers={"Content-Type": "application/jwt"}
    )
    assert on_rest.status_code == 404
    assert httpx.get(cybersource_url + "/__emulator/health").json()["emulator"] == "cybersource"
    before = emulator.counts["tokens"]
    answer = card_entry.post_token(context, jwe_token)  # follows flx.origin + flx.path
    assert answer.status == 201 and emulator.counts["tokens"] == before + 1
    # the Flex origin serves tokens only: sessions and public keys stay on the REST host
    assert httpx.post(flx["origin"] + "/flex/v2/sessions", content=BODY).status_code == 404
    kid = json.loads(base64.urlsafe_b64decode(context.split(".")[0] + "=="))["kid"]
    assert httpx.get(f"{flx['origin']}/flex/v2/public-keys/{kid}").status_code == 404


def test_transient_token_issuer_is_any_flex_nn(cybersource, context):
    """Real issuers are Flex/00, Flex/08, ...: the client accepts any two-digit suffix and
    nothing else; the emulator draws one per one-time key."""
    emulator, _ = cybersource
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, CARD))
    session = emulator.contexts[card_entry.context_claims(context)["flx"]["jwk"]["kid"]]
    claims = card_entry.verify_transient_token(context, answer.body)
    assert claims["iss"] == session.issuer
    import jwt as pyjwt

    def resigned(iss: str) -> str:
        return pyjwt.encode({**claims, "iss": iss}, session.key, algorithm="RS256", headers={"kid": session.kid})

    for iss in ("Flex/00", "Flex/04", "Flex/99"):
        assert card_entry.verify_transient_token(context, resigned(iss))["iss"] == iss
    for iss in ("Flex API", "Flex/1", "Flex/100", "Microform/00"):
        with pytest.raises(ValueError, match="not Flex/NN"):
            card_entry.verify_transient_token(context, resigned(iss))


def test_expired_context_is_refused(cybersource, context):
    emulator, _ = cybersource
    kid = card_entry.context_claims(context)["flx"]["jwk"]["kid"]
    emulator.contexts[kid].expires = int(time.time()) - 1
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, CARD))
    assert answer.status == 400 and answer.error_reason() == "CAPTURE_CONTEXT_EXPIRED"


def test_foreign_context_is_refused(cybersource_url, context):
    """A context from another Flex instance: its one-time key is unknown here."""
    other = CybersourceEmulator(pool_size=1)
    server = ServerThread(other).start()
    try:
        foreign = post_session(server.url, signed(server.url)).text
    finally:
        server.stop()
    jwe_token = card_entry.encrypt_card(foreign, CARD)
    response = httpx.post(card_entry.token_url(context), content=jwe_token, headers={"Content-Type": "application/jwt"})
    assert response.status_code == 400
    assert response.json()["responseStatus"]["reason"] == "CAPTURE_CONTEXT_INVALID"


def test_context_swapped_inside_the_jwe_is_refused(cybersource_url, context):
    other = post_session(cybersource_url, signed(cybersource_url)).text
    jwe_token = card_entry.encrypt_card(context, CARD)
    # encrypted to `context`'s key but claiming to belong to `other`
    import json as _json

    from joserfc import jwe
    from joserfc.jwk import RSAKey

    jwk = card_entry.context_claims(context)["flx"]["jwk"]
    plaintext = _json.dumps({"data": CARD, "context": other, "index": 0}).encode()
    jwe_token = jwe.encrypt_compact(
        {"kid": jwk["kid"], "alg": "RSA-OAEP", "enc": "A256GCM"},
        plaintext,
        RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")}),
        algorithms=card_entry.JOSE_ALGORITHMS,
    )
    answer = card_entry.post_token(context, jwe_token)
    assert answer.status == 400 and answer.error_reason() == "CAPTURE_CONTEXT_INVALID"


def test_missing_required_field_is_refused_naming_it(context):
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, {"paymentInformation": {"card": {}}}))
    assert answer.status == 400
    details = json.loads(answer.body)["responseStatus"]["details"]
    assert {"location": "paymentInformation.card.number", "message": "required"} in details


def test_field_outside_the_context_is_refused(context):
    data = {
        "paymentInformation": {"card": {"number": "4111111111111111"}},
        "orderInformation": {"billTo": {"email": "a@example.com"}},
    }
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, data))
    assert answer.status == 400
    assert "orderInformation.billTo.email" in answer.body


def test_invalid_card_number_is_refused(context):
    data = {"paymentInformation": {"card": {"number": "4111111111111112"}}}
    answer = card_entry.post_token(context, card_entry.encrypt_card(context, data))
    assert answer.status == 400 and "invalid card number" in answer.body


def test_tampered_jwe_is_refused(context):
    parts = card_entry.encrypt_card(context, CARD).split(".")
    parts[3] = parts[3][:-2] + ("AA" if not parts[3].endswith("AA") else "BB")
    answer = card_entry.post_token(context, ".".join(parts))
    assert answer.status == 400 and answer.error_reason() == "VALIDATION_ERROR"
