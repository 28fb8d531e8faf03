"""A local API Gateway (REST API, Lambda proxy integration) for the template's routes.

Maps each request to the route's function as an API Gateway proxy event (v1, the
format REST APIs send), enforces ``x-api-key`` where the template asks for it (403
``Forbidden``, as API Gateway answers), and turns the function's answer back into HTTP
(502 ``Internal server error`` when the function fails, as API Gateway does).

``AWS_IAM`` routes (``ApiAuth=IAM``) want a SigV4 signature (service ``execute-api``), as
API Gateway does: the signature is recomputed over the headers it names with the secret of
the access key (``Principal``: the local stack's callers, each given the template's
managed policies), the date must be within 5 minutes, and the caller's policies must
allow ``execute-api:Invoke`` on the route's ARN (``arn:aws:execute-api:<region>:<account>:
<api>/<stage>/<METHOD>/<path>``; an explicit Deny wins; ``*`` and ``?`` wildcards). Each
refusal is API Gateway's 403 and message. The event carries the caller's identity.

The server is threaded (``ServerThread``: a thread per request), so concurrent requests
reach the function concurrently, each in an execution environment of its own, as far as
the function's limit allows (``devstack.environments``). Every answer from a function
carries ``X-Local-Pid``, the process of the environment that served it (local only).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.provision import Route

Invoke = Callable[[str, dict[str, Any]], tuple[bool, Any]]
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
MAX_SKEW_SECONDS = 300
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Principal:
    """A caller the local gateway knows: its access key's secret, its ARN, its policies."""

    access_key: str
    secret_key: str = field(repr=False)
    arn: str
    policies: tuple[dict[str, Any], ...] = ()


# The local stack's callers (ApiAuth=IAM): each signs with its key and holds one of the
# template's caller policies, as a merchant's principals would (README: "Merchant
# authentication").
LOCAL_CALLERS = {
    "checkout": ("AKIALOCALCHECKOUT001", "local-checkout-secret-0000000000000000001", "CheckoutCallerPolicy"),
    "operations": ("AKIALOCALOPERATIONS1", "local-operations-secret-000000000000000001", "OperationsCallerPolicy"),
}


def local_principals(managed_policies: dict[str, dict[str, Any]]) -> list[Principal]:
    """The local callers, each with the template's policy of its name (none when the
    template has none: ApiAuth=API_KEY)."""
    return [
        Principal(key, secret, f"arn:aws:iam::{ACCOUNT_ID}:user/local-{name}", (managed_policies[policy],))
        for name, (key, secret, policy) in LOCAL_CALLERS.items()
        if policy in managed_policies
    ]


def _forbidden(message: str, key: str = "message") -> Response:
    return Response(json.dumps({key: message}), status=403, content_type="application/json")


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def allowed(policies: tuple[dict[str, Any], ...], action: str, resource: str) -> bool:
    """IAM's evaluation for one action on one resource: an explicit Deny wins, else an
    Allow is needed (identity policies only: what the local callers are given)."""
    verdict = False
    for policy in policies:
        statements = policy.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            actions = statement.get("Action", [])
            resources = statement.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if not any(_matches(a.lower(), action.lower()) for a in actions):
                continue
            if not any(_matches(r, resource) for r in resources):
                continue
            if statement.get("Effect") == "Deny":
                return False
            verdict = verdict or statement.get("Effect") == "Allow"
    return verdict


def _message(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, content_type="application/json")


class Gateway:
    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        api_key: str,
        stage: str = "local",
        local_routes: dict[str, Callable[[Request], tuple[int, Any]]] | None = None,
        principals: list[Principal] | None = None,
        api_id: str = "localapi01",
    ) -> None:
        self.routes = [(route, route.pattern()) for route in routes]
        self.local_routes = local_routes or {}
        self.invoke = invoke
        self.api_key = api_key
        self.stage = stage
        self.api_id = api_id
        self.principals = {p.access_key: p for p in principals or []}

    def route_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{method}/{path.lstrip('/')}"

    def authorize(self, request: Request, route: Route) -> tuple[Principal | None, Response | None]:
        """SigV4 and the caller's policies, as API Gateway checks an AWS_IAM route."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        header = request.headers.get("Authorization", "")
        amz_date = request.headers.get("X-Amz-Date", "")
        if not header.startswith("AWS4-HMAC-SHA256 ") or not amz_date:
            return None, _forbidden("Missing Authentication Token")
        fields = dict(part.strip().split("=", 1) for part in header[17:].split(",") if "=" in part)
        try:
            access_key, day, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
            moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            return None, _forbidden("Authorization header requires 'Credential', 'Signature', 'SignedHeaders'")
        if not _SIGNATURE.fullmatch(signature):
            return None, _forbidden("The request signature we calculated does not match the signature you provided.")
        principal = self.principals.get(access_key)
        if principal is None:
            return None, _forbidden("The security token included in the request is invalid.")
        if abs(time.time() - moment.timestamp()) > MAX_SKEW_SECONDS:
            return None, _forbidden(f"Signature expired: {amz_date} is now outside the 5 minute window.")
        if (day, region, service, terminal) != (amz_date[:8], REGION, "execute-api", "aws4_request"):
            return None, _forbidden(
                f"Credential should be scoped to {REGION} and execute-api, not {region} and {service}"
            )
        # the path as it was sent (still percent-encoded), as API Gateway signs it: the
        # decoded one (``/orders/a b`` for ``/orders/a%20b``) canonicalises differently
        raw = request.environ.get("RAW_URI") or request.full_path
        url = f"{request.scheme}://{request.host}{raw.rstrip('?')}"
        headers = {name: request.headers.get(name, "") for name in signed}
        aws_request = AWSRequest(method=request.method, url=url, data=request.get_data(cache=True), headers=headers)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(principal.access_key, principal.secret_key), "execute-api", REGION)
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request
        )
        claimed = request.headers.get("X-Amz-Content-Sha256")
        if claimed is not None and claimed != hashlib.sha256(request.get_data(cache=True)).hexdigest():
            # (a signed hash of another body, or UNSIGNED-PAYLOAD: the body would be anyone's)
            return None, _forbidden("The provided 'x-amz-content-sha256' header does not match what was computed.")
        if not hmac.compare_digest(expected, signature):
            return None, _forbidden(
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details."
            )
        resource = self.route_arn(request.method, request.path)
        if not allowed(principal.policies, "execute-api:Invoke", resource):
            return None, _forbidden(
                f"User: {principal.arn} is not authorized to perform: execute-api:Invoke on resource: {resource}",
                key="Message",
            )
        return principal, None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None

    def event(
        self, request: Request, route: Route, path_params: dict[str, str], caller: Principal | None = None
    ) -> dict[str, Any]:
        raw = request.get_data(cache=False)
        try:
            body, is_b64 = (raw.decode("utf-8"), False) if raw else (None, False)
        except UnicodeDecodeError:
            body, is_b64 = base64.b64encode(raw).decode("ascii"), True
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers[key] = value
            multi_headers.setdefault(key, []).append(value)
        query = {k: v for k, v in request.args.items()}
        multi_query = {k: request.args.getlist(k) for k in request.args}
        now = time.time()
        source_ip = request.remote_addr or "127.0.0.1"
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": request.method,
                "extendedRequestId": str(uuid.uuid4()),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": f"/{self.stage}{request.path}",
                "accountId": "123456789012",
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "stage": self.stage,
                "domainPrefix": "localhost",
                "requestTimeEpoch": int(now * 1000),
                "requestId": str(uuid.uuid4()),
                "identity": {
                    "sourceIp": source_ip,
                    "userAgent": request.headers.get("User-Agent"),
                    "apiKey": request.headers.get("x-api-key") if route.api_key_required else None,
                    "apiKeyId": "localkey" if route.api_key_required else None,
                    "accountId": ACCOUNT_ID if caller else None,
                    "accessKey": caller.access_key if caller else None,
                    "caller": caller.arn.rsplit("/", 1)[-1] if caller else None,
                    "user": caller.arn.rsplit("/", 1)[-1] if caller else None,
                    "userArn": caller.arn if caller else None,
                },
                "domainName": request.host,
                "apiId": self.api_id,
            },
            "body": body,
            "isBase64Encoded": is_b64,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        local = self.local_routes.get(request.path)
        if local is not None and request.method == "GET":
            status, body = local(request)
            return Response(json.dumps(body), status=status, content_type="application/json")(environ, start_response)
        found = self.match(request.method, request.path)
        if found is None:
            response = _message(403, "Missing Authentication Token")
            return response(environ, start_response)
        route, params = found
        caller = None
        if route.iam_required:
            caller, refused = self.authorize(request, route)
            if refused is not None:
                return refused(environ, start_response)
        if route.api_key_required and request.headers.get("x-api-key") != self.api_key:
            return _message(403, "Forbidden")(environ, start_response)
        outcome = self.invoke(route.function, self.event(request, route, params, caller))
        ok, result = outcome
        pid = getattr(outcome, "pid", None)
        local = {"X-Local-Pid": str(pid)} if pid is not None else {}
        if not ok or not isinstance(result, dict) or "statusCode" not in result:
            response = _message(502, "Internal server error")
            response.headers.update(local)
            return response(environ, start_response)
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        response = Response(data, status=int(result["statusCode"]))
        response.headers.clear()
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = str(value)
        for key, values in (result.get("multiValueHeaders") or {}).items():
            response.headers.remove(key)
            for value in values:
                response.headers.add(key, str(value))
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        response.headers.update(local)
        return response(environ, start_response)
