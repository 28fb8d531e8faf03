"""API Gateway plumbing shared by the HTTP handlers: the one place errors become answers.

Every ``DeclineRescueError`` maps to its own status and JSON body; anything unexpected is
logged and answered as a generic 500 that leaks nothing (a bug, never a design path).
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from decline_rescue.carddata import redact
from decline_rescue.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.observability import logger, metrics

JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def make_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.exception_handler(DeclineRescueError)
    def known_error(exc: DeclineRescueError) -> Response:
        level = logger.warning if exc.status_code < 500 else logger.error
        level(
            "request refused",
            extra={"error_code": exc.code, "status": exc.status_code, "reason": exc.reason},
        )
        # an error body may name what the caller sent (a field name): never card data
        return json_response(exc.status_code, redact(exc.body()))

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    def aws_unavailable(exc: Exception) -> Response:
        # DynamoDB, SQS or EventBridge refused or failed after botocore's own retries:
        # nothing half-done is left that a retry with the same idempotencyKey cannot finish
        logger.error("AWS dependency failed", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
        metrics.add_metric(name="DependencyFailure", unit="Count", value=1)
        return json_response(
            503, {"error": {"code": "DEPENDENCY_UNAVAILABLE", "message": "a storage or queue service failed; retry"}}
        )

    @app.exception_handler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        logger.exception("unexpected error")
        metrics.add_metric(name="UnexpectedError", unit="Count", value=1)
        return json_response(
            500, {"error": {"code": "INTERNAL_ERROR", "message": "unexpected error; it has been logged"}}
        )

    @app.not_found
    def not_found(exc: Exception) -> Response:
        return json_response(404, {"error": {"code": "NOT_FOUND", "message": "no such route"}})

    return app


def json_body(app: APIGatewayRestResolver) -> Any:
    """The request body as JSON, ``None`` when empty; 400 naming ``body`` when not JSON."""
    event = app.current_event
    raw = event.body
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_BODY_BYTES * (4 / 3 if event.is_base64_encoded else 1):
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
    try:
        return json.loads(event.decoded_body)
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON (UTF-8)")]) from None


def raw_body(app: APIGatewayRestResolver) -> bytes:
    """The request body's exact bytes (signatures are over them), whatever the content type."""
    import base64

    event = app.current_event
    raw = event.body or ""
    if len(raw) > MAX_BODY_BYTES * (4 / 3 if event.is_base64_encoded else 1) + 4:
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {MAX_BODY_BYTES} bytes")])
    if event.is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([FieldProblem("body", "encoding", "is not valid base64")]) from None
    return raw.encode("utf-8")
