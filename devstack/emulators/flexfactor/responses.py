"""The emulator's answers in the provider's shapes: the bearer 401, the three validation
400 shapes, ProblemDetails, the token failure, the ``Failed``/``Success`` envelopes of
capture and refund, and injected faults. One place, so every endpoint answers alike.
"""

from __future__ import annotations

import secrets
from typing import Any

from werkzeug.wrappers import Response

from devstack.emulators.base import json_response

# how a 400 for missing or invalid fields looks (``POST /__emulator/config {"errorShape"}``)
ERROR_SHAPES = ("flat", "legacy", "problem")
DEFAULT_ERROR_SHAPE = "flat"
VALIDATION_TITLE = "One or more validation errors occurred."
PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
}


def _trace_id() -> str:
    """A W3C trace context id, as ASP.NET puts in its answers (sampled: ``-01``)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _unauthorized() -> Response:
    return json_response(401, {"title": "Unauthorized", "status": 401}, {"WWW-Authenticate": "Bearer"})


def _token_failed() -> Response:
    """Bad or missing app credentials: the sandbox answers 400, not 401 (seen); the body is
    emulated after the provider's envelope."""
    body = {
        "success": False,
        "result": None,
        "status": None,
        "statusCode": None,
        "errors": [{"key": "", "error": "Invalid credentials"}],
        "customProperties": {},
    }
    return json_response(400, body)


def _problem(status: int, title: str) -> Response:
    return json_response(status, {"status": status, "title": title})


def _problem_details(status: int, title: str, detail: str | None = None) -> Response:
    """A full RFC 9457 ProblemDetails, as ASP.NET writes it."""
    body: dict[str, Any] = {"type": PROBLEM_TYPES.get(status), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["traceId"] = _trace_id()
    return json_response(status, body)


def _fault_response(status: int) -> Response:
    if status == 401:
        return _unauthorized()
    if status == 409:
        return _problem(409, "an idempotent request is still in progress")
    return _problem(status, "injected fault")


def _validation_failed(errors: dict[str, list[str]], shape: str = DEFAULT_ERROR_SHAPE) -> Response:
    """A 400 naming every bad field (PascalCase dotted keys) in one of the provider's shapes:

    - ``flat`` (the sandbox today): ``{"TraceId": ["00-..-01"], "OrderId": [...], ...}``
    - ``legacy`` (older sandbox answers): ``{"status": "400", "errors": {..., "TraceId": [...]}}``
    - ``problem`` (the docs): ``{"type", "title", "status": 400, "traceId", "errors": {...}}``
    """
    trace = _trace_id()
    if shape == "legacy":
        body: dict[str, Any] = {"status": "400", "errors": {**errors, "TraceId": [trace]}}
    elif shape == "problem":
        body = {"type": PROBLEM_TYPES[400], "title": VALIDATION_TITLE, "status": 400, "traceId": trace}
        body["errors"] = errors
    else:
        body = {"TraceId": [trace], **errors}
    return json_response(400, body)


def _capture_failed(status: int, errors: list[dict[str, str]], order_id: Any = None) -> Response:
    """``status: FAILED``: HTTP 200 when the order cannot be captured (as the sandbox),
    400/404/409 for a malformed body, an unknown order or a reused key (emulated)."""
    body = {
        "status": "FAILED",
        "success": False,
        "result": "Failed",
        "statusCode": None,
        "orderId": order_id if isinstance(order_id, str) else None,
        "errors": errors,
        "customProperties": {},
    }
    return json_response(status, body)


def _refund_failed(message: str, code: str = "2001") -> Response:
    """The sandbox's refund failure, HTTP 200 (seen, with code 2001 for too much)."""
    body = {
        "responseCode": code,
        "responseMessage": message,
        "transactionId": None,
        "success": False,
        "result": None,
        "status": "FAILED",
        "statusCode": None,
        "errors": [{"item1": message, "item2": code, "item3": code, "item4": True}],
        "customProperties": {},
    }
    return json_response(200, body)


def _succeeded(**fields: Any) -> dict[str, Any]:
    return {
        "status": "SUCCESS",
        "success": True,
        "result": "Success",
        "statusCode": None,
        **fields,
        "errors": [],
        "customProperties": {},
    }
