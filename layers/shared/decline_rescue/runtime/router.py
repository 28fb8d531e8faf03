"""API Gateway plumbing shared by the HTTP handlers (REST API, proxy integration): the
routes of a function, and the one place errors become answers.

Every ``DeclineRescueError`` maps to its own status and JSON body; a failing AWS
dependency to a 503; anything unexpected is logged and answered as a generic 500 that
leaks nothing (a bug, never a design path); a path no route takes is a 404.

``Router`` matches routes as Powertools' ``APIGatewayRestResolver`` does (same rules,
static routes before dynamic ones) and answers exactly what it answered here before
(``tests/unit/test_proxy.py`` runs both on the same events), without its import: about
25 ms of every cold start, for a few routes per function that need none of its features.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from decline_rescue.domain import strict_json
from decline_rescue.domain.carddata import redact
from decline_rescue.domain.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime.observability import logger, metrics

JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}

Answer = tuple[int, Any]  # (status, JSON body)


# -- errors -> answers ----------------------------------------------------------------


def known_error(exc: DeclineRescueError) -> Answer:
    level = logger.warning if exc.status_code < 500 else logger.error
    level(
        "request refused",
        extra={"error_code": exc.code, "status": exc.status_code, "reason": exc.reason},
    )
    # an error body may name what the caller sent (a field name): never card data
    return exc.status_code, redact(exc.body())


def aws_unavailable(exc: Exception) -> Answer:
    # DynamoDB, SQS or EventBridge refused or failed after botocore's own retries:
    # nothing half-done is left that a retry with the same idempotencyKey cannot finish
    logger.error("AWS dependency failed", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
    metrics.add_metric(name=m.DEPENDENCY_FAILURE, unit="Count", value=1)
    return 503, {"error": {"code": "DEPENDENCY_UNAVAILABLE", "message": "a storage or queue service failed; retry"}}


def unexpected_error(exc: Exception) -> Answer:
    logger.exception("unexpected error")
    metrics.add_metric(name=m.UNEXPECTED_ERROR, unit="Count", value=1)
    return 500, {"error": {"code": "INTERNAL_ERROR", "message": "unexpected error; it has been logged"}}


def not_found() -> Answer:
    return 404, {"error": {"code": "NOT_FOUND", "message": "no such route"}}


def error_answer(exc: Exception) -> Answer:
    """What an exception a route raised becomes (call it inside the ``except`` block)."""
    if isinstance(exc, DeclineRescueError):
        return known_error(exc)
    from decline_rescue.infra.aws import is_aws_failure

    if is_aws_failure(exc):
        return aws_unavailable(exc)
    return unexpected_error(exc)


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The proxy integration's answer: a JSON body, never cached."""
    merged = {**NO_STORE, **(headers or {})}
    merged.setdefault("Content-Type", JSON)
    return {
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "multiValueHeaders": {name: [value] for name, value in merged.items()},
    }


# -- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One API Gateway REST proxy event, and the Lambda context it came with."""

    event: Mapping[str, Any]
    context: Any

    @property
    def method(self) -> str:
        return self.event["httpMethod"]

    @property
    def headers(self) -> Mapping[str, str]:
        return self.event.get("headers") or {}

    def json_body(self) -> Any:
        """The request body as JSON, ``None`` when empty; else ``strict_json.loads``: a
        400 naming the field and rule for a body that is not UTF-8 JSON, larger than
        ``MAX_BODY_BYTES``, nested deeper than 32, or holding a duplicate key or a
        non-finite number."""
        raw = self.event.get("body")
        if raw is None or not raw.strip():
            return None
        encoded = bool(self.event.get("isBase64Encoded"))
        if len(raw) > MAX_BODY_BYTES * (4 / 3 if encoded else 1):
            raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
        if encoded:
            try:
                data: str | bytes = base64.b64decode(raw.encode())
            except (ValueError, binascii.Error):
                raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON (UTF-8)")]) from None
        else:
            data = raw
        return strict_json.loads(data, max_bytes=MAX_BODY_BYTES)

    def raw_body(self) -> bytes:
        """The request body's exact bytes (signatures are over them), whatever the content type."""
        raw = self.event.get("body") or ""
        encoded = bool(self.event.get("isBase64Encoded"))
        if len(raw) > MAX_BODY_BYTES * (4 / 3 if encoded else 1) + 4:
            raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
        if encoded:
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest([FieldProblem("body", "encoding", "is not valid base64")]) from None
        return raw.encode("utf-8")


# -- routes ---------------------------------------------------------------------------

Route = Callable[..., dict[str, Any]]  # route(request, **path_parameters) -> response(...)

# Powertools' route rules: ``<name>`` is one path segment of URI characters
_DYNAMIC = re.compile(r"(<\w+>)")
_SAFE_URI = "-._~()'!*:@,;=+&$"
_UNSAFE_URI = r"%<> \[\]{}|^"  # API Gateway decodes them
_SEGMENT = rf"(?P\1[{_SAFE_URI}{_UNSAFE_URI}\\w]+)"


class Router:
    """A function's routes: ``@router.get("/orders/<orderId>")`` gives the route
    ``orderId`` as a keyword argument. Static routes are tried before dynamic ones,
    each kind in the order added; none matches: 404; a route raises: its error's answer."""

    def __init__(self) -> None:
        self._static: list[tuple[str, re.Pattern[str], Route]] = []
        self._dynamic: list[tuple[str, re.Pattern[str], Route]] = []

    def route(self, method: str, rule: str) -> Callable[[Route], Route]:
        def register(func: Route) -> Route:
            # as the REST resolver: trailing slashes of the rule and of the path do not count
            pattern = re.compile(f"^{_DYNAMIC.sub(_SEGMENT, rule.rstrip('/'))}/*$")
            (self._dynamic if pattern.groups else self._static).append((method.upper(), pattern, func))
            return func

        return register

    def get(self, rule: str) -> Callable[[Route], Route]:
        return self.route("GET", rule)

    def post(self, rule: str) -> Callable[[Route], Route]:
        return self.route("POST", rule)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        method = event["httpMethod"].upper()
        path = event["path"]
        for route_method, pattern, func in (*self._static, *self._dynamic):
            found = pattern.match(path) if route_method == method else None
            if found:
                try:
                    return func(Request(event, context), **found.groupdict())
                except Exception as exc:  # noqa: BLE001 - every error becomes an answer
                    return response(*error_answer(exc))
        return response(*not_found())
