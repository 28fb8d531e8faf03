"""The emulator's answers in the provider's shapes: the bearer 401, ProblemDetails (plain
and validation), the ``Failed``/``Success`` envelopes of the token and capture calls, and
injected faults. One place, so every endpoint answers alike.
"""

from __future__ import annotations

import secrets
from typing import Any

from werkzeug.wrappers import Response

from devstack.emulators.base import json_response


def _unauthorized() -> Response:
    return json_response(401, {"title": "Unauthorized", "status": 401}, {"WWW-Authenticate": "Bearer"})


def _token_failed() -> Response:
    body = {
        "success": False,
        "result": "Failed",
        "status": "FAILED",
        "statusCode": 401,
        "errors": [{"error": "invalid credentials"}],
    }
    return json_response(401, body)


def _problem(status: int, title: str) -> Response:
    return json_response(status, {"status": status, "title": title})


def _fault_response(status: int) -> Response:
    if status == 401:
        return _unauthorized()
    if status == 409:
        return _problem(409, "an idempotent request is still in progress")
    return _problem(status, "injected fault")


def _validation_failed(errors: dict[str, list[str]]) -> Response:
    body = {
        "status": 400,
        "title": "One or more validation errors occurred.",
        "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
        "errors": errors,
    }
    return json_response(400, body)


def _capture_failed(status: int, errors: list[dict[str, str]], order_id: Any = None) -> Response:
    body = {
        "status": "FAILED",
        "success": False,
        "result": "Failed",
        "statusCode": status,
        "orderId": order_id if isinstance(order_id, str) else None,
        "errors": errors,
        "customProperties": {},
    }
    return json_response(status, body)


def _succeeded(**fields: Any) -> dict[str, Any]:
    return {
        "status": "SUCCESS",
        "success": True,
        "result": "Success",
        "statusCode": 200,
        **fields,
        "errors": [],
        "customProperties": {},
    }
