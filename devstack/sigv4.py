"""SigV4 for httpx: how the local stack's callers (the demo, the chaos run, the tests) sign
requests to the local API gateway when the stack runs with ``ApiAuth=IAM``, exactly as a
merchant's code signs for API Gateway (botocore's signer, service ``execute-api``)."""

from __future__ import annotations

from collections.abc import Generator

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# headers a proxy or the HTTP stack may change on the way: left out of the signature
_UNSIGNED = frozenset({"user-agent", "accept-encoding", "connection", "content-length", "accept"})


class SigV4(httpx.Auth):
    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "execute-api"):
        self.credentials = Credentials(access_key, secret_key)
        self.region = region
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _UNSIGNED}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(self.credentials, self.service, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date"):
            request.headers[name] = signed.headers[name]
        yield request
