"""Hostile and broken input, misconfiguration and slow providers: every one gets a
clear answer (never a 500), in time, with no card data in it."""

from __future__ import annotations

import base64
import json
import textwrap
import time

import pytest

from decline_rescue.domain.carddata import find_pans
from devstack.provision import FunctionSpec
from devstack.stack import FunctionWorker, LogSink, ensure_free
from tests.conftest import api_event, invoke, put_cybersource_secret, queue_faults

FUNCTION = "IssueCaptureContextFunction"
SAMPLE = "issue_capture_context/post_default_fields.json"


@pytest.fixture
def handler(function_env):
    module, _ = function_env(FUNCTION)
    return module


def call(module, event):
    result = invoke(module, event)
    return result["statusCode"], json.loads(result["body"]), result


def raw_event(body: str, *, b64: bool = False):
    event = api_event(SAMPLE)
    event["body"], event["isBase64Encoded"] = body, b64
    return event


@pytest.mark.parametrize(
    ("body", "b64", "rule"),
    [
        (base64.b64encode(b"\xff\xfe{").decode(), True, "json"),  # not UTF-8
        ("%%%not-base64%%%", True, "json"),
        ("[" * 50_000, False, "json"),  # deeper than the parser goes
        (json.dumps({"fields": {"x": "y" * 70_000}}), False, "too_large"),
    ],
    ids=["non-utf8", "bad-base64", "deep", "oversized"],
)
def test_unusable_bodies_are_400_not_500(handler, body, b64, rule):
    status, answer, _ = call(handler, raw_event(body, b64=b64))
    assert status == 400
    assert answer["error"]["details"][0] == {**answer["error"]["details"][0], "field": "body", "rule": rule}


def test_many_problems_make_a_bounded_answer(handler):
    fields = {f"f{i}": {} for i in range(2000)}
    status, answer, result = call(handler, raw_event(json.dumps({"fields": fields})))
    assert status == 400
    assert len(answer["error"]["details"]) == 25
    assert answer["error"]["omittedDetails"] == 2000 - 25
    assert len(result["body"]) < 8_000


def test_a_card_number_sent_as_a_field_name_is_not_echoed(handler):
    body = {"fields": {"paymentInformation": {"card": {"number": {}, "4111111111111111": {}}}}}
    status, answer, result = call(handler, raw_event(json.dumps(body)))
    assert status == 400
    assert find_pans(result["body"]) == []
    assert "[REDACTED_PAN]" in answer["error"]["details"][0]["field"]


def test_malformed_shared_secret_is_a_configuration_error(
    handler, cybersource_url, stack, moto_url, cybersource_credentials
):
    put_cybersource_secret(stack, moto_url, {**cybersource_credentials, "sharedSecret": "abc"})
    try:
        status, answer, _ = call(handler, api_event(SAMPLE))
    finally:
        put_cybersource_secret(stack, moto_url, cybersource_credentials)
    assert status == 503
    assert answer["error"] == {**answer["error"], "code": "CONFIGURATION_ERROR", "reason": "malformed"}


@pytest.mark.parametrize(
    ("required", "optional"),
    [
        ("", "paymentInformation.card.number"),  # the card number only optional
        ("paymentInformation.card.numbr", ""),  # a typo
    ],
)
def test_invalid_configured_default_fields_are_a_configuration_error(function_env, required, optional):
    module, _ = function_env(FUNCTION, CAPTURE_REQUIRED_FIELDS=required, CAPTURE_OPTIONAL_FIELDS=optional)
    status, answer, _ = call(module, api_event(SAMPLE))
    assert status == 503
    assert answer["error"]["code"] == "CONFIGURATION_ERROR"
    assert "CAPTURE_REQUIRED_FIELDS" in answer["error"]["message"]


def test_budget_covers_the_whole_invocation(function_env, cybersource_url):
    """Two slow calls (session, then key fetch) share one budget: 504 within it."""
    module, _ = function_env(FUNCTION, CYBERSOURCE_BUDGET_SECONDS="0.8", CYBERSOURCE_READ_TIMEOUT_SECONDS="0.7")
    queue_faults(cybersource_url, "sessions", {"delay": 0.5})
    queue_faults(cybersource_url, "public-keys", {"delay": 0.5}, {"delay": 0.5}, {"delay": 0.5})
    started = time.monotonic()
    status, answer, _ = call(module, api_event(SAMPLE))
    elapsed = time.monotonic() - started
    assert status == 504, answer
    assert elapsed < 1.5


def test_a_trickling_answer_is_cut_at_the_budget(function_env, cybersource_url):
    module, _ = function_env(FUNCTION, CYBERSOURCE_BUDGET_SECONDS="1", CYBERSOURCE_MAX_ATTEMPTS="1")
    queue_faults(cybersource_url, "sessions", {"trickle": 0.2})  # ~20 chunks x 0.2 s
    started = time.monotonic()
    status, answer, _ = call(module, api_event(SAMPLE))
    assert status == 504 and answer["error"]["code"] == "PROVIDER_TIMEOUT"
    assert time.monotonic() - started < 2.0


def test_429_is_retried(handler, cybersource_url):
    queue_faults(cybersource_url, "sessions", {"status": 429}, {"status": 429})
    assert call(handler, api_event(SAMPLE))[0] == 201


def test_403_is_an_authentication_failure(handler, cybersource_url):
    queue_faults(cybersource_url, "sessions", {"status": 403}, {"status": 403})
    status, answer, _ = call(handler, api_event(SAMPLE))
    assert status == 502 and answer["error"]["code"] == "PROVIDER_AUTH_FAILED"


def test_local_runtime_enforces_the_function_timeout(tmp_path):
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            import time

            def handler(event, context):
                time.sleep(event["sleep"])
                return {"slept": event["sleep"]}
            """
        )
    )
    spec = FunctionSpec("Slow", "slow-fn", "slow.handler", str(tmp_path), [], {}, timeout=1, memory=128, runtime="")
    logs = LogSink(tmp_path / "log", echo=False)
    worker = FunctionWorker(spec, {"PATH": "/usr/bin:/bin"}, logs)
    try:
        worker.wait_ready()
        assert worker.invoke({"sleep": 0.1}) == (True, {"slept": 0.1})
        ok, error = worker.invoke({"sleep": 3})
        assert not ok and error["errorType"] == "Sandbox.Timedout"
        assert worker.invoke({"sleep": 0}) == (True, {"slept": 0}), "the environment serves the next event"
    finally:
        worker.stop()
        logs.close()


def test_a_port_in_use_is_named(cybersource_url):
    port = int(cybersource_url.rsplit(":", 1)[1])
    with pytest.raises(SystemExit, match=f"port {port}.*CYBERSOURCE_EMULATOR_PORT"):
        ensure_free(port, "Cybersource emulator", "CYBERSOURCE_EMULATOR_PORT")


# -- declines ----------------------------------------------------------------------------------


@pytest.fixture
def evaluate(function_env, flexfactor_url):
    module, _ = function_env("EvaluateDeclineFunction")
    return module


def decline_body(**transaction) -> dict:
    from devstack import samples

    body = samples.decline()
    body["transaction"].update(transaction)
    return body


def post_decline(module, body=None, raw=None):
    result = invoke(module, api_event("evaluate_decline/post_cit.json", body, raw_body=raw))
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"transaction": {"timestampUtc": "0001-01-01T00:00:00+05:00"}}, "transaction.timestampUtc", "datetime_range"),
        (
            {"additionalFields": [{"key": "note", "value": "card 4111 1111 1111 1111"}]},
            "additionalFields[0].value",
            "card_number_not_allowed",
        ),
        (
            {"payer": {"email": "a@example.com", "nickname": "5555555555554444"}},
            "payer.nickname",
            "card_number_not_allowed",
        ),
    ],
    ids=["timestamp-overflow", "pan-in-additional-fields", "pan-in-unknown-field"],
)
def test_bad_declines_are_400_naming_the_field(evaluate, change, field, rule):
    body = decline_body()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key].update(value)
        else:
            body[key] = value
    code, answer = post_decline(evaluate, body)
    assert code == 400, answer
    assert {"field": field, "rule": rule}.items() <= answer["error"]["details"][0].items()
    assert find_pans(json.dumps(answer)) == []


def test_a_timestamp_in_the_future_is_accepted_with_a_warning(evaluate):
    # a merchant's clock is wrong, not its payment: the time of receipt is used instead
    body = decline_body(timestampUtc="2999-01-01T00:00:00Z")
    code, answer = post_decline(evaluate, body)
    assert code == 200, answer
    assert ("transaction.timestampUtc", "in_future") in {(w["field"], w["rule"]) for w in answer["warnings"]}


@pytest.mark.parametrize("raw", ["", "null", "[]", '"text"', "{", "{" * 5000 + "}" * 5000])
def test_empty_or_odd_decline_bodies_are_400(evaluate, raw):
    code, answer = post_decline(evaluate, raw=raw)
    assert code == 400 and answer["error"]["code"] == "INVALID_REQUEST"
