"""The orders table (DynamoDB): one state item per order, one history item per change,
and the per-card reattempt counters.

Items (``pk`` / ``sk``):
- ``ORDER#<orderId>`` / ``STATE``: status, version, orderSessionKey, amount, currency,
  isMIT, expiryDateUtc, card {bin, last4, brand, expiry}, reason, timestamps;
- ``ORDER#<orderId>`` / ``HIST#<version, 6 digits>``: one per applied change;
- ``CARD#<card key>`` / ``DAY#<yyyy-mm-dd>#<idempotencyKey>``: one per reattempt (a
  retried request writes the same item again, so it counts once); expires after 32 days.

Every change is one transaction: the state item (conditional: absent on create, at the
version read on update) and its history item. No card number or CVV is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from decline_rescue.adapters.aws import client
from decline_rescue.errors import DeclineRescueError

_SER = TypeSerializer()
_DE = TypeDeserializer()


class OrderConflict(DeclineRescueError):
    """The order exists already (another request) or moved on since it was read."""

    status_code = 409
    code = "ORDER_CONFLICT"


def _marshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(_plain(v)) for k, v in item.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _native(_DE.deserialize(v)) for k, v in item.items()}


def _native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_native(v) for v in value]
    return value


def now_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Change:
    """One applied status change, as written to history and published as an event."""

    order_id: str
    previous: str | None
    status: str
    version: int
    source: str
    at: str
    detail: dict[str, Any] | None = None


def _cancelled_by_condition(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
    return False


class OrdersTable:
    def __init__(self, table: str) -> None:
        self.table = table

    @staticmethod
    def _key(order_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}}

    def get_state(self, order_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(TableName=self.table, Key=self._key(order_id), ConsistentRead=consistent)
        item = response.get("Item")
        return _unmarshal(item) if item else None

    def get_with_history(self, order_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        pages = (
            client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"ORDER#{order_id}"}},
                ConsistentRead=True,
            )
        )
        state, history = None, []
        for page in pages:
            for raw in page.get("Items", []):
                item = _unmarshal(raw)
                if item["sk"] == "STATE":
                    state = item
                else:
                    history.append(item)
        history.sort(key=lambda h: h["sk"])
        return state, history

    def create(
        self, order: dict[str, Any], *, status: str, source: str, detail: dict[str, Any] | None = None
    ) -> Change:
        """Write a new order at version 1 with its first history item; 409 if it exists."""
        at = now_iso()
        state = {
            **order,
            "pk": f"ORDER#{order['orderId']}",
            "sk": "STATE",
            "status": status,
            "version": 1,
            "createdAt": at,
            "updatedAt": at,
            "lastSource": source,
        }
        if detail:
            state["reason"] = detail
        change = Change(order["orderId"], None, status, 1, source, at, detail)
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": _marshal(state),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": _marshal(self._history(change))}},
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                raise OrderConflict(f"order {order['orderId']} exists already") from None
            raise
        return change

    def transition(
        self,
        order_id: str,
        *,
        expected_version: int,
        previous: str,
        status: str,
        source: str,
        fields: dict[str, Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Change:
        """Move an order to ``status`` if it is still at ``expected_version``."""
        at = now_iso()
        change = Change(order_id, previous, status, expected_version + 1, source, at, detail)
        values: dict[str, Any] = {
            ":status": status,
            ":v": expected_version,
            ":next": expected_version + 1,
            ":at": at,
            ":source": source,
        }
        sets = ["#status = :status", "version = :next", "updatedAt = :at", "lastSource = :source"]
        names = {"#status": "status"}
        for i, (name, value) in enumerate((fields or {}).items()):
            if value is None:
                continue
            sets.append(f"#f{i} = :f{i}")
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
        if detail:
            sets.append("reason = :reason")
            values[":reason"] = detail
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._key(order_id),
                            "UpdateExpression": "SET " + ", ".join(sets),
                            "ConditionExpression": "version = :v",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _marshal(values),
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": _marshal(self._history(change))}},
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                raise OrderConflict(f"order {order_id} changed since version {expected_version}") from None
            raise
        return change

    @staticmethod
    def _history(change: Change) -> dict[str, Any]:
        return {
            "pk": f"ORDER#{change.order_id}",
            "sk": f"HIST#{change.version:06d}",
            "status": change.status,
            "previous": change.previous,
            "source": change.source,
            "at": change.at,
            "detail": change.detail,
        }

    # -- reattempt counters ---------------------------------------------------------

    def count_attempts(self, card: str, windows: list[int], today: date) -> dict[int, int]:
        """Reattempts of a card in each window (days, today included)."""
        widest = max(windows)
        pages = (
            client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={
                    ":pk": {"S": f"CARD#{card}"},
                    ":from": {"S": f"DAY#{(today - timedelta(days=widest - 1)).isoformat()}"},
                    ":to": {"S": f"DAY#{today.isoformat()}#~"},
                },
                ProjectionExpression="sk",
            )
        )
        days = [item["sk"]["S"][4:14] for page in pages for item in page.get("Items", [])]
        return {
            window: sum(1 for day in days if day >= (today - timedelta(days=window - 1)).isoformat())
            for window in windows
        }

    def record_attempt(self, card: str, today: date, idempotency_key: str) -> None:
        """One reattempt of a card, keyed by the request: a retried request counts once."""
        expires = int(datetime.combine(today + timedelta(days=32), datetime.min.time(), UTC).timestamp())
        client("dynamodb").put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"CARD#{card}"},
                "sk": {"S": f"DAY#{today.isoformat()}#{idempotency_key}"},
                "expiresAt": {"N": str(expires)},
            },
        )
