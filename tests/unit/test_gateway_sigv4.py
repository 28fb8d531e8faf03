"""The local gateway's SigV4 check, over werkzeug's test client: what passes, what is
refused, and that nothing refused ever reaches the function."""

from __future__ import annotations

import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client

from devstack.gateway import Gateway, Principal
from devstack.provision import Route

KEY, SECRET = "AKIATESTCALLER000001", "test-secret-000000000000000000000000001"
POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:api/qa/POST/declines"}
    ]
}


@pytest.fixture
def gateway():
    calls: list[dict] = []

    def invoke(function: str, event: dict):
        calls.append(event)
        return True, {"statusCode": 200, "body": "{}"}

    route = Route("POST", "/declines", "Fn", api_key_required=False, iam_required=True)
    principal = Principal(KEY, SECRET, "arn:aws:iam::123456789012:user/t", (POLICY,))
    gw = Gateway([route], invoke, "key", stage="qa", principals=[principal], api_id="api")
    return Client(gw), calls


def signed(body: bytes, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    request = AWSRequest("POST", "http://localhost/declines", data=body, headers={"Host": "localhost", **(extra or {})})
    SigV4Auth(Credentials(KEY, SECRET), "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers)


def test_a_signed_request_reaches_the_function_with_the_callers_identity(gateway):
    client, calls = gateway
    answer = client.post("/declines", data=b'{"a": 1}', headers=signed(b'{"a": 1}'))
    assert answer.status_code == 200
    assert calls[0]["requestContext"]["identity"]["userArn"] == "arn:aws:iam::123456789012:user/t"
    assert calls[0]["requestContext"]["stage"] == "qa"  # the policy names the stage the gateway serves


@pytest.mark.parametrize(
    "claimed",
    [hashlib.sha256(b'{"a": 1}').hexdigest(), "UNSIGNED-PAYLOAD"],
    ids=["hash-of-another-body", "unsigned-payload"],
)
def test_a_signature_over_a_claimed_body_hash_never_covers_another_body(gateway, claimed):
    client, calls = gateway
    headers = signed(b'{"a": 1}', extra={"X-Amz-Content-Sha256": claimed})
    answer = client.post("/declines", data=b'{"a": 2}', headers=headers)
    assert answer.status_code == 403 and calls == []


def test_a_garbled_signature_is_403_never_500(gateway):
    client, calls = gateway
    headers = signed(b"{}")
    headers["Authorization"] = headers["Authorization"].rsplit("Signature=", 1)[0] + "Signature=\u00e9t\u00e9"
    answer = client.post("/declines", data=b"{}", headers=headers)
    assert answer.status_code == 403 and calls == []
