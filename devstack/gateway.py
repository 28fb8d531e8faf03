"""A local API Gateway (REST API, Lambda proxy integration) for the template's routes.

Maps each request to the route's function as an API Gateway proxy event (v1, the
format REST APIs send), enforces ``x-api-key`` where the template asks for it (403
``Forbidden``, as API Gateway answers), and turns the function's answer back into HTTP
(502 ``Internal server error`` when the function fails, as API Gateway does).

The server is threaded (``ServerThread``: a thread per request), so concurrent requests
reach the function concurrently, each in an execution environment of its own, as far as
the function's limit allows (``devstack.environments``). Every answer from a function
carries ``X-Local-Pid``, the process of the environment that served it (local only).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.provision import Route

Invoke = Callable[[str, dict[str, Any]], tuple[bool, Any]]


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
    ) -> None:
        self.routes = [(route, route.pattern()) for route in routes]
        self.local_routes = local_routes or {}
        self.invoke = invoke
        self.api_key = api_key
        self.stage = stage
        self.api_id = "localapi01"

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None

    def event(self, request: Request, route: Route, path_params: dict[str, str]) -> dict[str, Any]:
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
        if route.api_key_required and request.headers.get("x-api-key") != self.api_key:
            return _message(403, "Forbidden")(environ, start_response)
        outcome = self.invoke(route.function, self.event(request, route, params))
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
