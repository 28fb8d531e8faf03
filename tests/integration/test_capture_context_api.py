"""issue_capture_context through API Gateway proxy events, with the template's
environment, moto (Secrets Manager) and the Cybersource emulator over HTTP."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import jwt
import pytest

from decline_rescue.services.capture_contexts import FLEX_FIELDS
from tests.conftest import api_event, invoke, put_cybersource_secret, queue_faults

FUNCTION = "IssueCaptureContextFunction"
SAMPLE = "issue_capture_context/post_default_fields.json"


@pytest.fixture
def handler(function_env):
    module, _ = function_env(FUNCTION)
    return module


def call(handler, body=None, raw_body=None, sample=SAMPLE):
    result = invoke(handler, api_event(sample, body, raw_body=raw_body))
    return result["statusCode"], json.loads(result["body"]), result


def header(result, name):
    """A response header, whether the resolver answered in headers or multiValueHeaders."""
    single = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (result.get("multiValueHeaders") or {}).items()}
    return single.get(name.lower()) or ",".join(multi.get(name.lower(), []))


def test_default_fields(handler, cybersource_url):
    status, body, result = call(handler)
    assert status == 201
    assert header(result, "Content-Type") == "application/json"
    assert header(result, "Cache-Control") == "no-store"
    assert body["requiredFields"] == ["paymentInformation.card.number"]
    assert set(body["optionalFields"]) == {
        "paymentInformation.card.securityCode",
        "paymentInformation.card.expirationMonth",
        "paymentInformation.card.expirationYear",
        "paymentInformation.card.type",
    }
    claims = jwt.decode(body["captureContext"], options={"verify_signature": False})
    assert body["keyId"] == claims["flx"]["jwk"]["kid"]
    assert datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00")).timestamp() == claims["exp"]
    assert body["expiresAt"].endswith("Z")
    # the token really is the provider's: it verifies with the provider's published key
    kid = jwt.get_unverified_header(body["captureContext"])["kid"]
    key = jwt.PyJWK(httpx.get(f"{cybersource_url}/flex/v2/public-keys/{kid}").json(), algorithm="RS256")
    jwt.decode(body["captureContext"], key.key, algorithms=["RS256"])


def test_custom_fields_from_the_sample_event(handler, cybersource_url):
    status, body, _ = call(handler, sample="issue_capture_context/post_custom_fields.json")
    assert status == 201
    assert set(body["requiredFields"]) == {
        "paymentInformation.card.number",
        "paymentInformation.card.expirationMonth",
        "paymentInformation.card.expirationYear",
        "orderInformation.billTo.postalCode",
    }
    assert set(body["optionalFields"]) == {"paymentInformation.card.securityCode", "orderInformation.billTo.email"}


def test_every_capturable_field(handler, cybersource_url):
    tree: dict = {}
    for path in FLEX_FIELDS:
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = {}
    status, body, _ = call(handler, {"fields": tree})
    assert status == 201
    assert set(body["requiredFields"]) == FLEX_FIELDS


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        (
            '{"fields": {"paymentInformation": {"card": {"pan": {}}}}}',
            "fields.paymentInformation.card.pan",
            "unknown_field",
        ),
        (
            '{"fields": {"paymentInformation": {"card": {"number": {"required": "no"}}}}}',
            "fields.paymentInformation.card.number.required",
            "type",
        ),
        ("{not json", "body", "json"),
        ("[]", "body", "type"),
    ],
)
def test_bad_input_is_400_naming_field_and_rule(handler, cybersource_url, raw, field, rule):
    before = httpx.get(cybersource_url + "/__emulator/stats").json()["counts"].get("sessions", 0)
    status, body, _ = call(handler, raw_body=raw)
    assert status == 400
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert {"field": field, "rule": rule}.items() <= body["error"]["details"][0].items()
    after = httpx.get(cybersource_url + "/__emulator/stats").json()["counts"].get("sessions", 0)
    assert after == before, "bad input must not reach the provider"


def test_unknown_route_is_404_not_500(handler):
    event = api_event(SAMPLE)
    event["path"] = event["resource"] = "/nope"
    result = invoke(handler, event)
    assert result["statusCode"] == 404


def test_wrong_credentials_are_502_with_a_clear_reason_and_no_secret(
    handler, cybersource_url, cybersource_credentials, wrong_cybersource_secret
):
    before = httpx.get(cybersource_url + "/__emulator/stats").json()["counts"].get("sessions", 0)
    status, body, result = call(handler)
    after = httpx.get(cybersource_url + "/__emulator/stats").json()["counts"]["sessions"]
    assert status == 502
    assert body["error"]["code"] == "PROVIDER_AUTH_FAILED"
    assert "credentials" in body["error"]["message"]
    assert after - before == 2, "one call, one re-read of the secret, one retry"
    for value in (wrong_cybersource_secret["sharedSecret"], cybersource_credentials["sharedSecret"]):
        assert value not in result["body"]


def test_rotated_secret_is_picked_up_by_the_reread_on_401(
    handler, cybersource_url, stack, moto_url, cybersource_credentials, wrong_cybersource_secret
):
    """Warm function with cached (now stale) credentials: a 401 re-reads the secret once."""
    assert call(handler)[0] == 502  # caches the wrong credentials
    put_cybersource_secret(stack, moto_url, cybersource_credentials)
    assert call(handler)[0] == 201


def test_provider_5xx_then_success(handler, cybersource_url):
    queue_faults(cybersource_url, "sessions", {"status": 503})
    assert call(handler)[0] == 201


def test_provider_down_is_503(handler, cybersource_url):
    queue_faults(cybersource_url, "sessions", *[{"status": 500}] * 3)
    status, body, _ = call(handler)
    assert status == 503
    assert body["error"]["code"] == "PROVIDER_UNAVAILABLE" and body["error"]["provider"] == "cybersource"


def test_provider_too_slow_is_504(function_env, cybersource_url):
    module, _ = function_env(FUNCTION, CYBERSOURCE_READ_TIMEOUT_SECONDS="0.2", CYBERSOURCE_BUDGET_SECONDS="0.5")
    queue_faults(cybersource_url, "sessions", *[{"delay": 0.6}] * 3)
    status, body, _ = call(module)
    assert status == 504
    assert body["error"]["code"] == "PROVIDER_TIMEOUT"


def test_provider_unreachable_is_503(function_env):
    from devstack.stack import free_port

    module, _ = function_env(FUNCTION, CYBERSOURCE_BASE_URL=f"http://127.0.0.1:{free_port()}")
    status, body, _ = call(module)
    assert status == 503
    assert body["error"]["code"] == "PROVIDER_UNAVAILABLE" and "unreachable" in body["error"]["reason"]


@pytest.mark.parametrize("mode", ["bad_signature", "expired", "unknown_kid", "fields_mismatch", "garbage"])
def test_unverifiable_capture_context_is_502_and_a_metric(handler, cybersource_url, captured_logs, capfd, mode):
    queue_faults(cybersource_url, "sessions", {"jwt": mode})
    status, body, _ = call(handler)
    assert status == 502
    assert body["error"]["code"] == "CAPTURE_CONTEXT_UNVERIFIED"
    assert body["error"]["reason"]
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for blob in emf for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert "CaptureContextVerificationFailed" in names
    assert "capture context failed verification" in captured_logs.getvalue()


def test_missing_secret_is_a_clear_configuration_error(function_env):
    module, _ = function_env(FUNCTION, CYBERSOURCE_SECRET_ID="no-such-secret")
    status, body, _ = call(module)
    assert status == 503
    assert body["error"]["code"] == "CONFIGURATION_ERROR"
    assert body["error"]["reason"] == "unreadable"
    assert "no-such-secret" not in json.dumps(body), "the caller learns nothing about our secrets"
