"""The orders table (DynamoDB): one state item per order, one history item per change,
and the per-card reattempt counters.

Items (``pk`` / ``sk``):
- ``ORDER#<orderId>`` / ``STATE``: status, version, orderSessionKey, amount, currency,
  isMIT, expiryDateUtc, card {bin, last4, brand, expiry}, reason, timestamps;
- ``ORDER#<orderId>`` / ``HIST#<version, 6 digits>``: one per applied change;
- ``ORDER#<orderId>`` / ``HIST#<version>#<kind>#<update id>``: an update recorded but
  not applied (duplicate, stale, untrusted), sorted after the change it was measured against;
- ``CARD#<card key>`` / ``DAY#<yyyy-mm-dd>#<idempotencyKey>``: one per reattempt (a
  retried request writes the same item again, so it counts once); expires after 32 days;
- ``NONCE#<x-fc-nonce>`` / ``NONCE``: a webhook nonce seen, kept past the allowed skew;
- ``UNMATCHED#<ExternalOrderId>`` / ``<time>#<update id>``: a webhook for no known order.

Pending orders carry ``pendingShard`` (``P0``..``P7``, from the orderId) and ``nextPollAt``:
the sparse GSI ``pending`` that the poller queries for what is due. They are removed
in the same write that ends the order.

Every change is one transaction: the state item (conditional: absent on create, at the
version read on update) and its history item. No card number or CVV is ever written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.infra import dynamodb_json
from decline_rescue.infra.aws import client

PENDING_INDEX = "pending"
PUBLISH_LEASE_MS = 15_000  # how long a writer owns publishing the change it wrote
PENDING_SHARDS = 8  # fixed: changing it would hide pending orders written under another count


class OrderConflict(DeclineRescueError):
    """The order exists already (another request) or moved on since it was read."""

    status_code = 409
    code = "ORDER_CONFLICT"


def _marshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: dynamodb_json.serialize(_plain(v)) for k, v in item.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _native(dynamodb_json.deserialize(v)) for k, v in item.items()}


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


def shard_of(order_id: str) -> str:
    """The pending-index partition of an order: spreads a large backlog over partitions."""
    import hashlib

    return f"P{int(hashlib.blake2b(order_id.encode(), digest_size=2).hexdigest(), 16) % PENDING_SHARDS}"


@dataclass(frozen=True)
class Change:
    """One applied change, as written to history and published as an event: a status
    change, or (``event`` set) something that happened to the order without changing
    its status (a refund, a chargeback)."""

    order_id: str
    previous: str | None
    status: str
    version: int
    source: str
    at: str
    detail: dict[str, Any] | None = None
    event: str | None = None


KEEP = "keep"  # transition(): leave the pending-index keys as they are


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
        self,
        order: dict[str, Any],
        *,
        status: str,
        source: str,
        detail: dict[str, Any] | None = None,
        next_poll_at: str | None = None,
    ) -> Change:
        """Write a new order at version 1 with its first history item; 409 if it exists.
        ``next_poll_at`` puts it on the pending index."""
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
        if next_poll_at:
            state["pendingShard"] = shard_of(order["orderId"])
            state["nextPollAt"] = next_poll_at
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
        next_poll_at: str | None = KEEP,
        event: str | None = None,
        event_key: str | None = None,
        also_put: list[dict[str, Any]] | None = None,
    ) -> Change:
        """Apply a change if the order is still at ``expected_version``: the state item
        and its history item in one transaction. ``next_poll_at`` schedules the next
        poll (None takes the order off the pending index); ``event_key`` is remembered
        so that the same refund or chargeback is never recorded twice. The change is
        marked ``eventPending`` until ``mark_published`` (the outbox the writer drains), and
        claimed for publishing by this writer for ``PUBLISH_LEASE_MS``. ``also_put``: other
        items (DynamoDB JSON, e.g. ``attempt_item``) written in the same transaction."""
        at = now_iso()
        change = Change(order_id, previous, status, expected_version + 1, source, at, detail, event)
        values: dict[str, Any] = {
            ":status": status,
            ":v": expected_version,
            ":next": expected_version + 1,
            ":at": at,
            ":source": source,
            ":claim": int(time.time() * 1000) + PUBLISH_LEASE_MS,
        }
        sets = [
            "#status = :status",
            "version = :next",
            "updatedAt = :at",
            "lastSource = :source",
            "eventPending = :next",
            "eventClaimedUntil = :claim",
        ]
        removes: list[str] = []
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
        if next_poll_at is None:
            removes += ["pendingShard", "nextPollAt", "polls"]
        elif next_poll_at != KEEP:
            sets += ["pendingShard = :shard", "nextPollAt = :poll", "polls = :zero"]
            values.update({":shard": shard_of(order_id), ":poll": next_poll_at, ":zero": 0})
        if event_key:
            sets.append("eventKeys = list_append(if_not_exists(eventKeys, :empty), :ek)")
            values.update({":empty": [], ":ek": [event_key]})
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._key(order_id),
                            "UpdateExpression": expression,
                            # a change whose event is not out yet blocks the next one: the
                            # writer publishes it first (one pending event per order)
                            "ConditionExpression": "version = :v AND attribute_not_exists(eventPending)",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _marshal(values),
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": _marshal(self._history(change))}},
                    *({"Put": {"TableName": self.table, "Item": item}} for item in also_put or ()),
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                raise OrderConflict(f"order {order_id} changed since version {expected_version}") from None
            raise
        return change

    def mark_published(self, order_id: str, version: int) -> None:
        """The change at ``version`` is on the bus: clear the outbox mark (if still it)."""
        self._outbox(order_id, version, "REMOVE eventPending, eventClaimedUntil")

    def release_publish(self, order_id: str, version: int) -> None:
        """Publishing failed: give up the claim, so the next writer publishes at once."""
        self._outbox(order_id, version, "REMOVE eventClaimedUntil")

    def claim_publish(self, order_id: str, version: int) -> bool:
        """Take over publishing a pending change whose writer's claim has lapsed (it
        failed or crashed); False when someone else holds it or it is done."""
        now = int(time.time() * 1000)
        return self._outbox(
            order_id,
            version,
            "SET eventClaimedUntil = :until",
            extra_condition=" AND (attribute_not_exists(eventClaimedUntil) OR eventClaimedUntil < :now)",
            values={":until": {"N": str(now + PUBLISH_LEASE_MS)}, ":now": {"N": str(now)}},
        )

    def _outbox(
        self,
        order_id: str,
        version: int,
        expression: str,
        *,
        extra_condition: str = "",
        values: dict[str, Any] | None = None,
    ) -> bool:
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._key(order_id),
                UpdateExpression=expression,
                ConditionExpression="eventPending = :v" + extra_condition,
                ExpressionAttributeValues={":v": {"N": str(version)}, **(values or {})},
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise
            return False
        return True

    def change_at(self, order_id: str, version: int) -> Change | None:
        """The applied change recorded at ``version`` (to publish it again)."""
        item = (
            client("dynamodb")
            .get_item(
                TableName=self.table,
                Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": f"HIST#{version:06d}"}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item:
            return None
        h = _unmarshal(item)
        return Change(
            order_id, h.get("previous"), h["status"], version, h["source"], h["at"], h.get("detail"), h.get("event")
        )

    def note(
        self, order_id: str, *, version: int, kind: str, update_id: str, source: str, detail: dict[str, Any]
    ) -> None:
        """Record an update that was not applied (duplicate, stale, untrusted): history
        keeps it, the order does not change. Written once per update id."""
        safe_id = "".join(ch for ch in update_id if ch.isalnum() or ch in "-_:.")[:80] or "none"
        client("dynamodb").put_item(
            TableName=self.table,
            Item=_marshal(
                {
                    "pk": f"ORDER#{order_id}",
                    "sk": f"HIST#{version:06d}#{kind}#{safe_id}",
                    "kind": kind,
                    "source": source,
                    "at": now_iso(),
                    "detail": detail,
                }
            ),
        )

    # -- polling --------------------------------------------------------------------

    def due(self, shard: str, now: str, *, limit: int, start: dict[str, Any] | None = None):
        """One page of the shard's pending orders due by ``now``, earliest first:
        (items, the key to continue from or None)."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "pendingShard = :s AND nextPollAt <= :now",
            "ExpressionAttributeValues": {":s": {"S": shard}, ":now": {"S": now}},
            "Limit": limit,
        }
        if start:
            args["ExclusiveStartKey"] = start
        response = client("dynamodb").query(**args)
        return [_unmarshal(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey")

    def schedule_poll(self, order_id: str, next_poll_at: str, *, version: int | None = None, count: bool) -> bool:
        """Move a pending order's next poll (``count``: one more poll done). Conditional
        on the order still pending (and at ``version``): a change applied meanwhile
        keeps the schedule it set. False when the condition failed."""
        values: dict[str, Any] = {":poll": {"S": next_poll_at}}
        condition = "attribute_exists(pendingShard)"
        expression = "SET nextPollAt = :poll"
        if count:
            expression += ", polls = if_not_exists(polls, :zero) + :one"
            values.update({":zero": {"N": "0"}, ":one": {"N": "1"}})
        if version is not None:
            condition += " AND version = :v"
            values[":v"] = {"N": str(version)}
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._key(order_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                return False
            raise
        return True

    # -- webhooks -------------------------------------------------------------------

    def claim_nonce(self, nonce: str, *, keep_seconds: int) -> bool:
        """Remember a webhook nonce; False when it was seen before (a replay)."""
        expires = int(datetime.now(UTC).timestamp()) + keep_seconds
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item={"pk": {"S": f"NONCE#{nonce}"}, "sk": {"S": "NONCE"}, "expiresAt": {"N": str(expires)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                return False
            raise
        return True

    def release_nonce(self, nonce: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"pk": {"S": f"NONCE#{nonce}"}, "sk": {"S": "NONCE"}})

    def record_unmatched(self, external_order_id: str, update_id: str, detail: dict[str, Any]) -> None:
        """A webhook about no order of ours: kept 90 days for investigation."""
        expires = int(datetime.now(UTC).timestamp()) + 90 * 86400
        client("dynamodb").put_item(
            TableName=self.table,
            Item=_marshal(
                {
                    "pk": f"UNMATCHED#{external_order_id or '-'}",
                    "sk": f"{now_iso()}#{update_id}",
                    "detail": detail,
                    "expiresAt": expires,
                }
            ),
        )

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
            "event": change.event,
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
        client("dynamodb").put_item(TableName=self.table, Item=self.attempt_item(card, today, idempotency_key))

    @staticmethod
    def attempt_item(card: str, today: date, idempotency_key: str) -> dict[str, Any]:
        """The reattempt item (DynamoDB JSON), for ``record_attempt`` or ``transition(also_put=...)``."""
        expires = int(datetime.combine(today + timedelta(days=32), datetime.min.time(), UTC).timestamp())
        return {
            "pk": {"S": f"CARD#{card}"},
            "sk": {"S": f"DAY#{today.isoformat()}#{idempotency_key}"},
            "expiresAt": {"N": str(expires)},
        }
