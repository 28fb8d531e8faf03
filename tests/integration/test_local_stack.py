"""The local stack end to end: moto server, emulator, gateway and function runtimes as
separate processes, provisioned from template.yaml; and the demo, whose logs must hold
no card number."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from decline_rescue.domain.carddata import find_pans
from devstack import samples
from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import CybersourceEmulator
from devstack.stack import CybersourceTarget, LocalStack, StackConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    log_file = tmp_path_factory.mktemp("stack") / "stack.log"
    stack = LocalStack(StackConfig.ephemeral(echo_logs=False, log_file=log_file))
    stack.start()
    yield stack
    stack.stop()


def test_gateway_serves_capture_contexts_signed_and_with_the_api_key(local_stack):
    assert local_stack.api_auth == "IAM"  # the template's default
    with local_stack.client("checkout") as client:
        response = client.post("/capture-contexts")
    assert response.status_code == 201
    assert response.json()["captureContext"].count(".") == 2
    assert response.headers["cache-control"] == "no-store"


def _signed(caller: str, secret: str | None = None, **headers: str) -> httpx.Client:
    from devstack.gateway import LOCAL_CALLERS
    from devstack.sigv4 import SigV4

    key, real_secret, _ = LOCAL_CALLERS[caller]
    return httpx.Client(auth=SigV4(key, secret or real_secret), headers=headers, timeout=30)


def test_iam_mode_refuses_what_api_gateway_refuses(local_stack):
    url, api_key = local_stack.gateway_url, local_stack.config.api_key
    # unsigned, even with the API key
    unsigned = httpx.post(url + "/capture-contexts", headers={"x-api-key": api_key})
    assert (unsigned.status_code, unsigned.json()) == (403, {"message": "Missing Authentication Token"})
    # signed with a wrong secret
    with _signed("operations", secret="not-the-secret", **{"x-api-key": api_key}) as client:
        wrong = client.post(url + "/capture-contexts")
    assert wrong.status_code == 403 and wrong.json()["message"].startswith("The request signature we calculated")
    # signed by an unknown access key
    from devstack.sigv4 import SigV4

    with httpx.Client(auth=SigV4("AKIANOBODY0000000000", "x"), headers={"x-api-key": api_key}) as client:
        unknown = client.post(url + "/capture-contexts")
    assert unknown.json() == {"message": "The security token included in the request is invalid."}
    # signed, without the API key (usage-plan throttling still wants it)
    with _signed("operations") as client:
        keyless = client.post(url + "/capture-contexts")
    assert (keyless.status_code, keyless.json()) == (403, {"message": "Forbidden"})
    # a signature replayed with another body
    with local_stack.client("checkout") as client:
        request = client.build_request("POST", "/capture-contexts", json={})
        signed = next(client.auth.auth_flow(request))
        headers = {k: v for k, v in signed.headers.items() if k.lower() != "content-length"}
        tampered = httpx.post(url + "/capture-contexts", headers=headers, content=b'{"fields": 1}')
    assert tampered.status_code == 403 and "signature" in tampered.json()["message"]


def test_the_checkout_principal_may_not_move_money_and_the_operations_one_may(local_stack):
    decline = samples.decline(transactionType="AUTHORIZATION")
    with local_stack.client("checkout") as checkout, local_stack.client("operations") as operations:
        assert checkout.post("/declines", json=decline).json()["status"] == "CAPTUREREQUIRED"
        assert checkout.get(f"/orders/{decline['orderId']}").status_code == 200
        denied = checkout.post(f"/orders/{decline['orderId']}/capture", json={})
        assert denied.status_code == 403
        assert denied.json() == {
            "Message": "User: arn:aws:iam::123456789012:user/local-checkout is not authorized to perform: "
            "execute-api:Invoke on resource: "
            f"arn:aws:execute-api:us-east-1:123456789012:localapi01/local/POST/orders/{decline['orderId']}/capture"
        }
        assert checkout.post(f"/orders/{decline['orderId']}/refund", json={}).status_code == 403
        captured = operations.post(f"/orders/{decline['orderId']}/capture", json={})
        assert (captured.status_code, captured.json()["status"]) == (200, "APPROVED")
    # the webhook route needs neither: FlexFactor's HMAC authenticates it (401 without one)
    assert httpx.post(local_stack.gateway_url + "/webhooks/flexfactor", content=b"{}").status_code == 401


def test_api_key_mode_on_the_local_stack(tmp_path):
    config = StackConfig.ephemeral(echo_logs=False, log_file=tmp_path / "stack.log", parameters={"ApiAuth": "API_KEY"})
    with LocalStack(config) as stack:
        assert stack.api_auth == "API_KEY"
        with stack.client() as client:
            assert client.auth is None or not client.headers.get("Authorization")
            assert client.post("/capture-contexts").status_code == 201
        for headers in ({}, {"x-api-key": "not-the-key"}):
            refused = httpx.post(stack.gateway_url + "/capture-contexts", headers=headers)
            assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
        assert not stack.stack.managed_policies  # no caller policies without IAM


def test_gateway_answers_unknown_routes_like_api_gateway(local_stack):
    response = httpx.get(local_stack.gateway_url + "/nope", headers={"x-api-key": local_stack.config.api_key})
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_bad_input_through_the_gateway_is_400(local_stack):
    with local_stack.client() as client:
        response = client.post(
            "/capture-contexts",
            headers={"Content-Type": "application/json"},
            content=b'{"fields": {"paymentInformation": {"card": {"number": {}, "cvv": {}}}}}',
        )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "fields.paymentInformation.card.cvv"


def test_resources_come_from_the_template(local_stack):
    secrets = local_stack.aws_client("secretsmanager").list_secrets()["SecretList"]
    assert any(s["Name"] == "decline-rescue-local/cybersource" for s in secrets)
    assert set(local_stack.workers) == {
        "IssueCaptureContextFunction",
        "EvaluateDeclineFunction",
        "OrdersApiFunction",
        "IngestWebhookFunction",
        "DispatchPollsFunction",
        "PollOrdersFunction",
        "ApplyOrderUpdateFunction",
        "PublishOrderEventsFunction",
    }
    tables = local_stack.aws_client("dynamodb").list_tables()["TableNames"]
    assert len(tables) == 1  # orders: state, history, idempotency keys, counters, nonces
    queues = local_stack.aws_client("sqs").list_queues()["QueueUrls"]
    # three queues (declines, order updates, poll work) with their DLQs, the events' failure
    # queue, and the local events tap
    assert len(queues) == 8
    assert sorted((p.mapping.function, p.mapping.source) for p in local_stack.pollers) == [
        ("ApplyOrderUpdateFunction", "sqs"),
        ("EvaluateDeclineFunction", "sqs"),
        ("PollOrdersFunction", "sqs"),  # the poll-work queue
        ("PublishOrderEventsFunction", "dynamodb"),  # the orders table's stream
    ]
    assert [(t.schedule.function, t.schedule.expression) for t in local_stack.tickers] == [
        ("DispatchPollsFunction", "rate(1 minute)")
    ]


def test_the_schedule_dispatches_the_poller_and_events_are_listed(local_stack):
    (result,) = local_stack.tick("DispatchPollsFunction")
    ok, summary = result
    assert ok and summary["dispatched"] == 8, summary
    decline = samples.decline()  # a customer-initiated decline FlexFactor approves at once
    with local_stack.client("checkout") as client:
        answer = client.post("/declines", json=decline)
    assert answer.status_code == 200 and answer.json()["status"] == "APPROVED"
    listed: dict = {}
    for _ in range(50):  # the tap drains the bus's queue every second
        listed = httpx.get(local_stack.gateway_url + "/__local/events", params={"orderId": decline["orderId"]}).json()
        if listed["count"] >= 2:
            break
        time.sleep(0.1)
    details = sorted((e["detail"] for e in listed["events"]), key=lambda d: d["version"])
    assert [(d["changeId"], d["previousStatus"], d["status"], d["source"]) for d in details] == [
        (f"{decline['orderId']}:1", None, "RECEIVED", "api"),
        (f"{decline['orderId']}:2", "RECEIVED", "APPROVED", "api"),
    ], listed


def test_function_logs_are_collected(local_stack):
    text = local_stack.config.log_file.read_text()
    assert "[IssueCaptureContextFunction]" in text and '"service":"decline-rescue"' in text


def test_another_flex_endpoint_through_the_four_variables(monkeypatch, tmp_path):
    """CYBERSOURCE_BASE_URL/MERCHANT_ID/KEY_ID/SHARED_SECRET point the stack elsewhere."""
    secret = base64.b64encode(b"another-merchant-secret-32-bytes").decode()
    other = CybersourceEmulator(merchant_id="othermerchant", key_id="other-key", shared_secret=secret, pool_size=2)
    server = ServerThread(other).start()
    monkeypatch.setenv("CYBERSOURCE_BASE_URL", server.url)
    monkeypatch.setenv("CYBERSOURCE_MERCHANT_ID", "othermerchant")
    monkeypatch.setenv("CYBERSOURCE_KEY_ID", "other-key")
    monkeypatch.setenv("CYBERSOURCE_SHARED_SECRET", secret)
    config = StackConfig.ephemeral(
        echo_logs=False, log_file=tmp_path / "stack.log", cybersource=CybersourceTarget.from_env()
    )
    try:
        with LocalStack(config) as stack:
            assert not config.cybersource.emulated and stack.cybersource_url == server.url
            with stack.client() as client:
                response = client.post("/capture-contexts")
            assert response.status_code == 201
        assert other.counts["sessions"] == 1
    finally:
        server.stop()


def test_partial_real_provider_settings_are_refused(monkeypatch):
    monkeypatch.setenv("CYBERSOURCE_BASE_URL", "https://apitest.cybersource.com")
    for name in ("CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID", "CYBERSOURCE_SHARED_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="CYBERSOURCE_MERCHANT_ID"):
        CybersourceTarget.from_env()


def test_demo_passes_and_logs_no_card_number(tmp_path):
    log_file = tmp_path / "demo.log"
    env = {**os.environ, "DEMO_LOG_FILE": str(log_file)}
    for name in ("CYBERSOURCE_BASE_URL", "CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID", "CYBERSOURCE_SHARED_SECRET"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "devstack.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "steps passed" in result.stdout
    logs = log_file.read_text()
    # the run really logged: the function, the emulator, moto and the gateway all wrote lines
    for source in (
        "[IssueCaptureContextFunction]",
        "[EvaluateDeclineFunction]",
        "[IngestWebhookFunction]",
        "[ApplyOrderUpdateFunction]",
        "[PollOrdersFunction]",
        "[events]",
        "[cybersource-emulator]",
        "[flexfactor-emulator]",
        "[moto]",
        "[gateway]",
    ):
        assert source in logs
    test_cards = {"4111111111111111", "5555555555554444", "372425119311008"}
    assert not test_cards & set(find_pans(logs))
    assert not test_cards & set(find_pans(result.stdout + result.stderr))
    assert "ApiAuth=IAM" in result.stdout
    # the operator's report of the run, by the CLI on the demo's stack
    assert "the operator's report of this run" in result.stdout and "rescue rate" in result.stdout
    from examples.checkout.smoke import missing_reason

    # the browser checkout step runs where Chromium is (CI installs it), else it is skipped
    steps = 36 if missing_reason() else 37
    assert f"{steps}/{steps} steps passed" in result.stdout
    if steps == 37:
        assert "verified" in result.stdout.lower()
