"""The event contract: the JSON Schemas (draft 2020-12) in ``schemas/events/``, one per
detail-type on the order event bus, and the check of an event against them.

``validate_event(event)`` takes an EventBridge event as a rule's target receives it (the
envelope with ``source``, ``detail-type`` and ``detail``) and returns its problems, an
empty list for a valid event. Besides the schema, it checks what JSON Schema cannot say:
``changeId`` is ``<orderId>:<version>``; a status change changes the status; an event on
an order (a refund, a chargeback) does not; a refund's ``refundedAmount`` is at least its
``amount``. The tests and the demo use it; consumers can use the schema files as
they are.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"
STATUS_CHANGED = "OrderStatusChanged"


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every schema, by the detail-type it describes (the file is ``<detail-type>.schema.json``)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[schema["properties"]["detail-type"]["const"]] = schema
    return found


@cache
def _validator(detail_type: str) -> Draft202012Validator:
    schema = schemas()[detail_type]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_schemas() -> dict[str, list[str]]:
    """Each schema file against the draft 2020-12 metaschema: its problems by file name."""
    problems: dict[str, list[str]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        metaschema = Draft202012Validator(Draft202012Validator.META_SCHEMA)
        problems[path.name] = [_describe(e) for e in metaschema.iter_errors(schema)]
    return problems


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(the event)"
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return f"{where}: {message}"


def validate_event(event: Any) -> list[str]:
    """The problems of ``event`` against the schema of its detail-type (``[]``: valid)."""
    if not isinstance(event, dict):
        return [f"(the event): {type(event).__name__} is not an object"]
    detail_type = event.get("detail-type")
    if detail_type not in schemas():
        return [f"detail-type: {detail_type!r} is not one of {', '.join(sorted(schemas()))}"]
    errors = sorted(_validator(detail_type).iter_errors(event), key=lambda e: e.json_path)
    return [_describe(e) for e in errors] + _rules(detail_type, event.get("detail"))


def validate_detail(detail_type: str, detail: Any) -> list[str]:
    """The problems of a bare ``detail`` (as ``Change.event_detail()`` makes it), in a
    well-formed envelope."""
    envelope = {
        "version": "0",
        "id": "00000000-0000-4000-8000-000000000000",
        "detail-type": detail_type,
        "source": "decline-rescue",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    return validate_event(envelope)


def _rules(detail_type: str, detail: Any) -> list[str]:
    """What the schemas cannot say (only where the fields are there to compare)."""
    if not isinstance(detail, dict):
        return []
    problems = []
    order_id, version, change_id = detail.get("orderId"), detail.get("version"), detail.get("changeId")
    if (
        isinstance(order_id, str)
        and _integer(version)
        and isinstance(change_id, str)
        and change_id != f"{order_id}:{version}"
    ):
        problems.append(f"detail/changeId: {change_id!r} is not orderId:version ({order_id}:{version})")
    status, previous = detail.get("status"), detail.get("previousStatus")
    if isinstance(status, str) and isinstance(previous, str):
        if detail_type == STATUS_CHANGED and status == previous:
            problems.append(f"detail/status: a status change from {previous} to itself")
        if detail_type != STATUS_CHANGED and status != previous:
            problems.append(f"detail/status: {detail_type} changed the status ({previous} -> {status})")
    refund = detail.get("refund")
    amounts = (refund.get("amount"), refund.get("refundedAmount")) if isinstance(refund, dict) else (None, None)
    if all(_integer(a) for a in amounts) and amounts[1] < amounts[0]:
        problems.append("detail/refund/refundedAmount: less than this refund's amount")
    return problems


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
