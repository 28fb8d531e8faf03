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
- ``IDEM#<idempotencyKey>`` / ``IDEM``: the order a decline's idempotency key names
  (written with the order's claim, so one key never names two orders); kept 7 days;
- ``NONCE#<x-fc-nonce>`` / ``NONCE``: a webhook nonce seen, kept past the allowed skew;
- ``UNMATCHED#<ExternalOrderId>`` / ``<time>#<update id>``: a webhook for no known order.

Pending orders carry ``pendingShard`` (``P0``..``P7``, from the orderId) and ``nextPollAt``:
the sparse GSI ``pending`` that the poller queries for what is due. They are removed
in the same write that ends the order.

Every change is one transaction made by ``commit``: the state item (conditional: absent at
version 1, at the version read after) and its history item, which carries ``changeId``.
The table's stream delivers each new history item with a ``changeId`` to the event
publisher (``services.order_events``): events are derived from what was written, so no
change is ever written without its event, nor published without being written. No card
number or CVV is ever written.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from decline_rescue.domain.clock import iso as now_iso
from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.domain.updates import ADOPTABLE, Change
from decline_rescue.infra import dynamodb_json
from decline_rescue.infra.aws import client

PENDING_INDEX = "pending"
PENDING_SHARDS = 8  # fixed: changing it would hide pending orders written under another count


class OrderConflict(DeclineRescueError):
    """The order exists already (another request) or moved on since it was read."""

    status_code = 409
    code = "ORDER_CONFLICT"


class ClaimRefused(OrderConflict):
    """An intake claim was refused: the orderId exists (``order_exists``) and/or the
    idempotency key is taken (``key_taken``)."""

    def __init__(self, message: str, *, order_exists: bool, key_taken: bool) -> None:
        super().__init__(message)
        self.order_exists = order_exists
        self.key_taken = key_taken


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


def shard_of(order_id: str) -> str:
    """The pending-index partition of an order: spreads a large backlog over partitions."""
    import hashlib

    return f"P{int(hashlib.blake2b(order_id.encode(), digest_size=2).hexdigest(), 16) % PENDING_SHARDS}"


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

    def commit(
        self,
        change: Change,
        *,
        order: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
        next_poll_at: str | None = KEEP,
        event_key: str | None = None,
        also_put: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
        key_ttl_seconds: int = 7 * 86400,
    ) -> Change:
        """Write one change: the order's state item and the change's history item in one
        transaction, conditional on the order being at ``change.version - 1`` (absent, for
        version 1: ``order`` is then the new order's fields). OrderConflict when it is not.

        ``fields`` are set and ``remove`` removed with the change; ``next_poll_at`` schedules
        the next poll (None takes the order off the pending index, KEEP leaves it);
        ``event_key`` is remembered so that the same refund or chargeback is never recorded
        twice; ``also_put`` items (DynamoDB JSON, e.g. ``attempt_item``) go in the same
        transaction. ``idempotency_key`` (version 1 only): the key is taken for this order
        in the same transaction (``IDEM#<key>``, kept ``key_ttl_seconds``), so that one key
        never names two orders; ClaimRefused says which of the two was taken."""
        if change.version == 1:
            write = self._create_item(change, order or {}, fields, next_poll_at)
        else:
            write = self._update_item(change, fields, remove, next_poll_at, event_key)
        claims = [self._key_item(idempotency_key, change, key_ttl_seconds)] if idempotency_key else []
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    write,
                    *claims,
                    {"Put": {"TableName": self.table, "Item": _marshal(self._history(change))}},
                    *({"Put": {"TableName": self.table, "Item": item}} for item in also_put or ()),
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                if change.version == 1:
                    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                    order_exists = not reasons or reasons[0] == "ConditionalCheckFailed"
                    key_taken = bool(claims) and len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed"
                    raise ClaimRefused(
                        f"order {change.order_id} exists already" if order_exists else "the idempotencyKey is taken",
                        order_exists=order_exists,
                        key_taken=key_taken,
                    ) from None
                raise OrderConflict(f"order {change.order_id} changed since version {change.version - 1}") from None
            raise
        return change

    def _key_item(self, key: str, change: Change, ttl_seconds: int) -> dict[str, Any]:
        expires = int(datetime.now(UTC).timestamp()) + ttl_seconds
        return {
            "Put": {
                "TableName": self.table,
                "Item": _marshal({"pk": f"IDEM#{key}", "sk": "IDEM", "orderId": change.order_id, "expiresAt": expires}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    # -- leases: which request works on a claimed order --------------------------------

    def take_lease(self, order_id: str, *, version: int, status: str, until_ms: int) -> bool:
        """Take the order's lease (still at ``version`` and ``status``, no live lease held):
        the request that holds it may submit the order. False when another holds it or
        the order moved on. Not a change of the order: no version, no history, no event."""
        now = int(time.time() * 1000)
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._key(order_id),
                UpdateExpression="SET leaseUntil = :until",
                ConditionExpression=(
                    "version = :v AND #s = :s AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":until": {"N": str(until_ms)},
                    ":v": {"N": str(version)},
                    ":s": {"S": status},
                    ":now": {"N": str(now)},
                },
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                return False
            raise
        return True

    def mark_adoptable(self, order_id: str, *, version: int) -> None:
        """The claim's request never reached FlexFactor as valid: a corrected one may take it."""
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._key(order_id),
                UpdateExpression="SET fingerprint = :adoptable REMOVE leaseUntil",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":adoptable": {"S": ADOPTABLE}, ":v": {"N": str(version)}},
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise

    def release_lease(self, order_id: str, *, until_ms: int) -> None:
        """Give the lease back (the request failed before deciding): a retry may go on at once."""
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._key(order_id),
                UpdateExpression="REMOVE leaseUntil",
                ConditionExpression="leaseUntil = :until",
                ExpressionAttributeValues={":until": {"N": str(until_ms)}},
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise

    def _create_item(
        self, change: Change, order: dict[str, Any], fields: dict[str, Any] | None, next_poll_at: str | None
    ) -> dict[str, Any]:
        state = {
            **order,
            **(fields or {}),
            "orderId": change.order_id,
            "pk": f"ORDER#{change.order_id}",
            "sk": "STATE",
            "status": change.status,
            "version": 1,
            "createdAt": change.at,
            "updatedAt": change.at,
            "lastSource": change.source,
        }
        if change.detail:
            state["reason"] = change.detail
        if next_poll_at and next_poll_at != KEEP:
            state["pendingShard"] = shard_of(change.order_id)
            state["nextPollAt"] = next_poll_at
        return {
            "Put": {"TableName": self.table, "Item": _marshal(state), "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _update_item(
        self,
        change: Change,
        fields: dict[str, Any] | None,
        remove: tuple[str, ...],
        next_poll_at: str | None,
        event_key: str | None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":status": change.status,
            ":v": change.version - 1,
            ":next": change.version,
            ":at": change.at,
            ":source": change.source,
        }
        sets = ["#status = :status", "version = :next", "updatedAt = :at", "lastSource = :source"]
        removes = list(remove)
        names = {"#status": "status"}
        for i, (name, value) in enumerate((fields or {}).items()):
            if value is None:
                continue
            sets.append(f"#f{i} = :f{i}")
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
        if change.detail:
            sets.append("reason = :reason")
            values[":reason"] = change.detail
        if next_poll_at is None:
            removes += ["pendingShard", "nextPollAt", "polls"]
        elif next_poll_at != KEEP:
            sets += ["pendingShard = :shard", "nextPollAt = :poll", "polls = :zero"]
            values.update({":shard": shard_of(change.order_id), ":poll": next_poll_at, ":zero": 0})
        if event_key:
            sets.append("eventKeys = list_append(if_not_exists(eventKeys, :empty), :ek)")
            values.update({":empty": [], ":ek": [event_key]})
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(change.order_id),
                "UpdateExpression": expression,
                "ConditionExpression": "version = :v",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _marshal(values),
            }
        }

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
            "changeId": change.change_id,  # the stream's filter: only applied changes are events
            "orderId": change.order_id,
            "version": change.version,
            "status": change.status,
            "previous": change.previous,
            "source": change.source,
            "at": change.at,
            "detail": change.detail,
            "event": change.event,
        }

    @staticmethod
    def change_from_item(item: dict[str, Any]) -> Change:
        """The change a history item records, from its DynamoDB JSON (a stream record's
        ``NewImage``); ValueError when it is not an applied change's history item."""
        h = _unmarshal(item)
        try:
            order_id, version = str(h["orderId"]), int(h["version"])
            if h.get("changeId") != f"{order_id}:{version}":
                raise ValueError("changeId does not match orderId and version")
            return Change(
                order_id,
                h.get("previous"),
                str(h["status"]),
                version,
                str(h["source"]),
                str(h["at"]),
                h.get("detail"),
                h.get("event"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a change's history item: {exc}") from None

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
