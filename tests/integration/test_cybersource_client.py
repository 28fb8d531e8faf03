"""The Cybersource client against the emulator over HTTP: verification of capture
contexts (good, tampered, expired, unknown kid, rotated kid, stale cached key, leeway)
and bounded retries."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest

from decline_rescue.domain.errors import CaptureContextUnverified, ProviderTimeout, ProviderUnavailable
from decline_rescue.infra.http import ProviderHttp
from decline_rescue.providers.cybersource.client import Credentials, CybersourceClient
from decline_rescue.runtime.settings import ProviderCallSettings
from devstack.emulators.cybersource import TESTREST_KEY_ID, TESTREST_MERCHANT_ID, TESTREST_SHARED_SECRET
from tests.conftest import queue_faults

REQUIRED = ("paymentInformation.card.number",)
OPTIONAL = ("paymentInformation.card.securityCode",)
FIELDS = {"paymentInformation": {"card": {"number": {}, "securityCode": {"required": False}}}}
FAST = ProviderCallSettings(
    connect_timeout=1.0, read_timeout=2.0, max_attempts=3, budget_seconds=5.0, backoff_base=0.01
)


def make_client(url: str, calls: ProviderCallSettings = FAST, leeway: float = 30.0) -> CybersourceClient:
    creds = Credentials(TESTREST_MERCHANT_ID, TESTREST_KEY_ID, TESTREST_SHARED_SECRET)
    return CybersourceClient(ProviderHttp("cybersource", url, calls), lambda force: creds, leeway_seconds=leeway)


def counts(url: str) -> dict[str, int]:
    return httpx.get(url + "/__emulator/stats").json()["counts"]


def resign(token: str, emulator, **changes) -> str:
    """Re-sign a capture context with the emulator's current key after changing claims."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    kid = emulator.signing_kid
    return jwt.encode(claims, emulator.signing_keys[kid], algorithm="RS256", headers={"kid": kid, "typ": None})


def test_good_capture_context_verifies(cybersource, cybersource_url):
    client = make_client(cybersource_url)
    token = client.create_session(FIELDS)
    verified = client.verify(token, required=REQUIRED, optional=OPTIONAL)
    assert verified.required_fields == REQUIRED and verified.optional_fields == OPTIONAL
    assert (verified.expires_at - verified.issued_at).total_seconds() == 900
    assert len(verified.jti) == 16
    assert verified.encryption_key["kty"] == "RSA" and verified.key_id == verified.encryption_key["kid"]
    # flx.origin is the Flex origin (its own port), not the REST host the client called
    assert verified.origin == cybersource[0].flex_origin != cybersource_url and verified.path == "/flex/v2/tokens"


def test_public_key_is_cached_across_verifications(cybersource_url):
    client = make_client(cybersource_url)
    before = counts(cybersource_url).get("public_keys", 0)
    for _ in range(3):
        client.verify(client.create_session(FIELDS), required=REQUIRED, optional=OPTIONAL)
    assert counts(cybersource_url)["public_keys"] - before == 1


def test_tampered_payload_fails_signature(cybersource_url):
    client = make_client(cybersource_url)
    head, payload, sig = client.create_session(FIELDS).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["ctx"][0]["data"]["requiredFields"] = [*REQUIRED, "orderInformation.billTo.email"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(CaptureContextUnverified) as caught:
        client.verify(f"{head}.{forged}.{sig}", required=REQUIRED, optional=OPTIONAL)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("bad_signature", "bad_signature"),
        ("expired", "expired"),
        ("not_yet_valid", "not_yet_valid"),
        ("unknown_kid", "unknown_kid"),
        ("fields_mismatch", "fields_mismatch"),
        ("garbage", "malformed"),
    ],
)
def test_provider_tokens_that_must_not_verify(cybersource_url, mode, reason):
    client = make_client(cybersource_url)
    queue_faults(cybersource_url, "sessions", {"jwt": mode})
    token = client.create_session(FIELDS)
    with pytest.raises(CaptureContextUnverified) as caught:
        client.verify(token, required=REQUIRED, optional=OPTIONAL)
    assert caught.value.reason == reason
    assert caught.value.status_code == 502


def test_fresh_bad_signature_is_not_refetched(cybersource_url):
    client = make_client(cybersource_url)
    queue_faults(cybersource_url, "sessions", {"jwt": "bad_signature"})
    token = client.create_session(FIELDS)
    before = counts(cybersource_url).get("public_keys", 0)
    with pytest.raises(CaptureContextUnverified):
        client.verify(token, required=REQUIRED, optional=OPTIONAL)
    assert counts(cybersource_url)["public_keys"] - before == 1


def test_rotated_signing_key_is_fetched_by_its_kid(cybersource_url):
    client = make_client(cybersource_url)
    first = client.verify(client.create_session(FIELDS), required=REQUIRED, optional=OPTIONAL)
    rotated = httpx.post(cybersource_url + "/__emulator/rotate-signing-key", json={}).json()
    second = client.verify(client.create_session(FIELDS), required=REQUIRED, optional=OPTIONAL)
    assert first.signing_kid == rotated["previous"]
    assert second.signing_kid == rotated["kid"] != first.signing_kid


def test_stale_cached_key_is_refetched_once(cybersource, cybersource_url):
    """A key replaced under the same kid: the cached copy fails, one re-fetch fixes it."""
    emulator, _ = cybersource
    client = make_client(cybersource_url)
    token = client.create_session(FIELDS)
    kid = jwt.get_unverified_header(token)["kid"]
    client.verify(token, required=REQUIRED, optional=OPTIONAL)  # caches the key
    emulator.signing_keys[kid] = emulator.pool.generate()  # the provider re-keys that kid
    renewed = client.create_session(FIELDS)
    before = counts(cybersource_url)["public_keys"]
    assert client.verify(renewed, required=REQUIRED, optional=OPTIONAL).signing_kid == kid
    assert counts(cybersource_url)["public_keys"] - before == 1


def test_leeway_on_exp_and_iat(cybersource, cybersource_url):
    emulator, _ = cybersource
    client = make_client(cybersource_url, leeway=30)
    token = client.create_session(FIELDS)
    now = int(time.time())
    just_expired = resign(token, emulator, iat=now - 910, exp=now - 10)
    client.verify(just_expired, required=REQUIRED, optional=OPTIONAL)
    slightly_future = resign(token, emulator, iat=now + 10, exp=now + 910)
    client.verify(slightly_future, required=REQUIRED, optional=OPTIONAL)
    long_expired = resign(token, emulator, iat=now - 1000, exp=now - 100)
    with pytest.raises(CaptureContextUnverified, match="expired"):
        client.verify(long_expired, required=REQUIRED, optional=OPTIONAL)


def test_unknown_payload_elements_are_tolerated(cybersource, cybersource_url):
    emulator, _ = cybersource
    client = make_client(cybersource_url)
    token = resign(client.create_session(FIELDS), emulator, newElement={"anything": [1, 2]}, jti="x" * 16)
    assert client.verify(token, required=REQUIRED, optional=OPTIONAL).jti == "x" * 16


def test_5xx_is_retried_then_succeeds(cybersource_url):
    client = make_client(cybersource_url)
    queue_faults(cybersource_url, "sessions", {"status": 503}, {"status": 500})
    before = counts(cybersource_url).get("sessions", 0)
    client.verify(client.create_session(FIELDS), required=REQUIRED, optional=OPTIONAL)
    assert counts(cybersource_url)["sessions"] - before == 3


def test_5xx_past_the_attempts_is_unavailable(cybersource_url):
    client = make_client(cybersource_url)
    queue_faults(cybersource_url, "sessions", *[{"status": 502}] * 3)
    with pytest.raises(ProviderUnavailable) as caught:
        client.create_session(FIELDS)
    assert caught.value.reason == "HTTP 502" and caught.value.status_code == 503


def test_4xx_is_not_retried(cybersource_url):
    client = make_client(cybersource_url)
    before = counts(cybersource_url).get("sessions", 0)
    from decline_rescue.domain.errors import ProviderRejected

    with pytest.raises(ProviderRejected) as caught:
        client.create_session({"paymentInformation": {"card": {"pin": {}}}})
    assert caught.value.reason == "VALIDATION_ERROR"
    assert counts(cybersource_url)["sessions"] - before == 1


def test_slow_provider_times_out_within_the_budget(cybersource_url):
    calls = ProviderCallSettings(
        connect_timeout=0.5, read_timeout=0.3, max_attempts=3, budget_seconds=0.8, backoff_base=0.01
    )
    client = make_client(cybersource_url, calls)
    queue_faults(cybersource_url, "sessions", *[{"delay": 1.0}] * 3)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        client.create_session(FIELDS)
    assert time.monotonic() - started < 1.5
    assert caught.value.status_code == 504


def test_unreachable_provider_is_unavailable():
    from devstack.stack import free_port

    client = make_client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable) as caught:
        client.create_session(FIELDS)
    assert "unreachable" in caught.value.reason
