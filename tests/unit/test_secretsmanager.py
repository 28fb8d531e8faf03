"""infra.secretsmanager: GetSecretValue signed without botocore. The signature must be
the one botocore's own SigV4 signer computes for the same request, and anything the
environment does not say plainly must leave the read to botocore."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from decline_rescue.infra import secretsmanager

NOW = datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)
BODY = json.dumps({"SecretId": "decline-rescue-prod-CybersourceSecret"}, separators=(",", ":")).encode()


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+example/token=="])
@pytest.mark.parametrize(
    ("host", "region"),
    [("secretsmanager.eu-west-1.amazonaws.com", "eu-west-1"), ("127.0.0.1:5000", "us-east-1")],
)
def test_signature_is_botocores(token, host, region):
    ours = secretsmanager.signature_headers(
        host=host,
        region=region,
        body=BODY,
        target=secretsmanager.TARGET,
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token=token,
        now=NOW,
    )
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=BODY,
        headers={"Content-Type": secretsmanager.CONTENT_TYPE, "X-Amz-Target": secretsmanager.TARGET, "Host": host},
    )
    signer = SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "secretsmanager", region
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


LAMBDA_ENV = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (LAMBDA_ENV, "https://secretsmanager.eu-west-1.amazonaws.com"),
        ({**LAMBDA_ENV, "AWS_REGION": "us-gov-west-1"}, "https://secretsmanager.us-gov-west-1.amazonaws.com"),
        ({**LAMBDA_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000"),
        (
            {**LAMBDA_ENV, "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "https://b:2/"},
            "https://b:2",
        ),
        (
            {**LAMBDA_ENV, "AWS_ENDPOINT_URL": "http://a:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://secretsmanager.eu-west-1.amazonaws.com",
        ),
        ({k: v for k, v in LAMBDA_ENV.items() if k != "AWS_ACCESS_KEY_ID"}, None),  # a profile, SSO...: botocore
        ({k: v for k, v in LAMBDA_ENV.items() if k != "AWS_REGION"}, None),
        ({**LAMBDA_ENV, "AWS_REGION": "cn-north-1"}, None),  # another partition
        ({**LAMBDA_ENV, "AWS_REGION": "us-iso-east-1"}, None),
        ({**LAMBDA_ENV, "AWS_USE_FIPS_ENDPOINT": "true"}, None),
        ({**LAMBDA_ENV, "AWS_USE_DUALSTACK_ENDPOINT": "true"}, None),
        ({**LAMBDA_ENV, "AWS_ENDPOINT_URL": "http://proxy:1/prefix"}, None),
    ],
)
def test_endpoint_or_botocore(monkeypatch, env, expected):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert secretsmanager.endpoint() == expected
