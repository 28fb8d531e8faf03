"""Bounded reads of the orders table for the operator (the functions never scan it).

The table has no index by time (only the sparse ``pending`` index of orders still
pending), so listing orders or webhook deliveries since a moment is a Scan with a
filter: it reads items until it has read ``max_read`` of them (the filter does not make
a Scan cheaper), and says when it stopped there, so an operator knows the answer may be
partial (narrow ``--since`` or raise ``--max-read``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from decline_rescue.infra import dynamodb_json

PAGE = 1000


def native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: native(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [native(v) for v in value]
    return value


def unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: native(dynamodb_json.deserialize(v)) for k, v in item.items()}


@dataclass
class Scanned:
    items: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    truncated: bool = False

    def note(self) -> str:
        if self.truncated:
            return (
                f"read {self.read} items and stopped there (--max-read): the answer may be partial; "
                "narrow --since or raise --max-read"
            )
        return f"read {self.read} items (the whole table)"


def scan(
    dynamodb: Any,
    table: str,
    *,
    filter_expression: str,
    names: dict[str, str],
    values: dict[str, Any],
    projection: list[str] | None = None,
    max_read: int,
) -> Scanned:
    """Scan ``table`` with a filter, reading at most ``max_read`` items. ``values`` are plain
    (serialised here); ``projection`` lists attribute names (aliased here)."""
    result = Scanned()
    args: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": filter_expression,
        "ExpressionAttributeNames": dict(names),
        "ExpressionAttributeValues": {k: dynamodb_json.serialize(v) for k, v in values.items()},
    }
    if projection:
        aliases = {f"#p{i}": name for i, name in enumerate(projection)}
        args["ExpressionAttributeNames"].update(aliases)
        args["ProjectionExpression"] = ", ".join(aliases)
    start = None
    while True:
        left = max_read - result.read
        if left <= 0:
            result.truncated = True
            break
        page = dynamodb.scan(**args, Limit=min(PAGE, left), **({"ExclusiveStartKey": start} if start else {}))
        result.read += int(page.get("ScannedCount", 0))
        result.items.extend(unmarshal(item) for item in page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return result
