"""The orders table (DynamoDB): one state item per order, one history item per change,
and the per-card reattempt counters.

Items (``pk`` / ``sk``):
- ``ORDER#<orderId>`` / ``STATE``: status, version, orderSessionKey, amount, currency,
  isMIT, expiryDateUtc, card {bin, last4, brand, expiry}, reason, timestamps;
- ``ORDER#<orderId>`` / ``HIST#<version, 6 digits>``: one per applied change;
- ``ORDER#<orderId>`` / ``HIST#<version>#<kind>#<update id>``: an update recorded but
  not applied (duplicate, stale, untrusted), sorted after the change it was measured against;
- ``CARD#<card key>`` / ``DAY#<yyyy-mm-dd>``: the card's reattempt reservations that day
  (``n``) and the most the day may hold (``cap``, from the days before it); a reservation
  is one conditional ``ADD`` (``n < cap``) in the claim's transaction; expires after 32 days;
- ``IDEM#<idempotencyKey>`` / ``IDEM``: the order a decline's idempotency key names
  (written with the order's claim, so one key never names two orders); kept 7 days;
- ``WEBHOOK#<x-fc-nonce>`` / ``WEBHOOK``: every verified webhook as it came (headers that
  matter, the body's hash, the body with card data redacted), what became of it
  (``delivery``: received, queued, ignored, invalid; ``result``: the writer's outcome);
  kept 30 days, long past the allowed date skew, so a nonce is never accepted twice;
- ``UNMATCHED#<ExternalOrderId>`` / ``<time>#<update id>``: a webhook for no known order.
- ``TRANSIENT#<jti>`` / ``TRANSIENT``: a transient token verified once (``verifiedAt``), kept
  a day past the token's own expiry, so a token is never verified twice.

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
POLL_BREAKER_KEY = {"pk": {"S": "POLLER#BREAKER"}, "sk": {"S": "BREAKER"}}


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


class ReservationRefused(DeclineRescueError):
    """The card's counter for today is not as read (full, or made meanwhile): read it
    again and decide again."""

    status_code = 409
    code = "CARD_BUSY"


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


def _index_item(item: dict[str, Any]) -> dict[str, Any]:
    """A pending-index item as plain values: its attributes are strings and whole numbers
    (the index projects nothing else), read directly from DynamoDB JSON; anything else
    goes the general way (``_unmarshal``)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value and value["N"].lstrip("-").isdigit():
            out[name] = int(value["N"])
        else:
            return _unmarshal(item)
    return out


def _native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_native(v) for v in value]
    return value


def shard_of(order_id: str) -> str:
    """The pending-index partition of an order: spreads a large backlog over partitions
    (``settings.pending_shards()`` of them; the dispatcher reads every one)."""
    import hashlib

    from decline_rescue.runtime.settings import pending_shards

    return f"P{int(hashlib.blake2b(order_id.encode(), digest_size=2).hexdigest(), 16) % pending_shards()}"


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
        also_write: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
        key_ttl_seconds: int = 7 * 86400,
        add: dict[str, int] | None = None,
    ) -> Change:
        """Write one change: the order's state item and the change's history item in one
        transaction, conditional on the order being at ``change.version - 1`` (absent, for
        version 1: ``order`` is then the new order's fields). OrderConflict when it is not.

        ``fields`` are set and ``remove`` removed with the change; ``next_poll_at`` schedules
        the next poll (None takes the order off the pending index, KEEP leaves it);
        ``event_key`` is remembered so that the same refund or chargeback is never recorded
        twice; ``add``: numbers added atomically (a running total other writers also move
        without a new version, such as ``refundHeld``); ``also_write``: other transaction
        items (a card's reservation or its release) go in the same transaction; ReservationRefused when one's condition
        failed. ``idempotency_key`` (version 1 only): the key is taken for this order in
        the same transaction (``IDEM#<key>``, kept ``key_ttl_seconds``), so that one key
        never names two orders; ClaimRefused says which of the two was taken."""
        if change.version == 1:
            write = self._create_item(change, order or {}, fields, next_poll_at)
        else:
            write = self._update_item(change, fields, remove, next_poll_at, event_key, add)
        claims = [self._key_item(idempotency_key, change, key_ttl_seconds)] if idempotency_key else []
        extra = list(also_write or ())
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    write,
                    *claims,
                    {"Put": {"TableName": self.table, "Item": _marshal(self._history(change))}},
                    *extra,
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
                if failed and min(failed) >= 2 + len(claims):
                    raise ReservationRefused("the card's reattempt counter changed; read it again") from None
                if change.version == 1:
                    order_exists = not failed or 0 in failed
                    key_taken = bool(claims) and 1 in failed
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

    def take_lease(
        self,
        order_id: str,
        *,
        version: int,
        status: str,
        until_ms: int,
        reservation: dict[str, str] | None = None,
        also_write: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Take the order's lease (still at ``version`` and ``status``, no live lease held):
        the request that holds it may submit the order; with the card's ``reservation``
        (its ``also_write`` item) in the same transaction. False when another holds the
        lease or the order moved on; ReservationRefused when the card's counter refused.
        Not a change of the order: no version, no history, no event."""
        now = int(time.time() * 1000)
        values: dict[str, Any] = {
            ":until": {"N": str(until_ms)},
            ":v": {"N": str(version)},
            ":s": {"S": status},
            ":now": {"N": str(now)},
        }
        expression = "SET leaseUntil = :until"
        if reservation:
            expression += ", reservation = :r"
            values[":r"] = dynamodb_json.serialize(reservation)
        update = {
            "TableName": self.table,
            "Key": self._key(order_id),
            "UpdateExpression": expression,
            "ConditionExpression": (
                "version = :v AND #s = :s AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)"
            ),
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        try:
            if also_write:
                client("dynamodb").transact_write_items(TransactItems=[{"Update": update}, *also_write])
            else:
                client("dynamodb").update_item(**update)
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if reasons and reasons[0] != "ConditionalCheckFailed":
                raise ReservationRefused("the card's reattempt counter changed; read it again") from None
            return False
        return True

    def mark_adoptable(self, order_id: str, *, version: int, reservation: dict[str, str] | None) -> None:
        """The claim's request never reached FlexFactor as valid: a corrected one may take
        it; its card reservation, if any, is given back in the same transaction."""
        update = {
            "TableName": self.table,
            "Key": self._key(order_id),
            "UpdateExpression": "SET fingerprint = :adoptable REMOVE leaseUntil, reservation",
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": {":adoptable": {"S": ADOPTABLE}, ":v": {"N": str(version)}},
        }
        try:
            if reservation:
                client("dynamodb").transact_write_items(
                    TransactItems=[{"Update": update}, self.release_item(reservation["card"], reservation["day"])]
                )
            else:
                client("dynamodb").update_item(**update)
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
        add: dict[str, int] | None = None,
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
        adds = []
        for i, (name, value) in enumerate((add or {}).items()):
            adds.append(f"#a{i} :a{i}")
            names[f"#a{i}"] = name
            values[f":a{i}"] = value
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        expression += " ADD " + ", ".join(adds) if adds else ""
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
        return [_index_item(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey")

    def schedule_poll(
        self, order_id: str, next_poll_at: str, *, version: int | None = None, count: bool, seen: str | None = None
    ) -> bool:
        """Move a pending order's next poll (``count``: one more poll done). Conditional
        on the order still pending (and at ``version``; and, with ``seen``, still due at
        the ``nextPollAt`` read: the poller's claim): a change applied meanwhile keeps the
        schedule it set. False when the condition failed."""
        values: dict[str, Any] = {":poll": {"S": next_poll_at}}
        condition = "attribute_exists(pendingShard)"
        if seen is not None:
            condition += " AND nextPollAt = :seen"
            values[":seen"] = {"S": seen}
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

    # -- the poller's breaker: the whole fleet backs off while FlexFactor keeps failing ----

    def poll_breaker(self) -> dict[str, Any] | None:
        """``POLLER#BREAKER``: ``openUntil`` (ISO time) and ``opens`` (openings in a row)."""
        item = client("dynamodb").get_item(TableName=self.table, Key=POLL_BREAKER_KEY, ConsistentRead=True).get("Item")
        return _unmarshal(item) if item else None

    def open_poll_breaker(self, until: str, *, now: str) -> bool:
        """Open the breaker until ``until`` unless it is open already (one worker opens
        it per episode); counts the opening. False: another worker opened it first."""
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=POLL_BREAKER_KEY,
                UpdateExpression="SET openUntil = :until, failures = :zero ADD opens :one",
                ConditionExpression="attribute_not_exists(openUntil) OR openUntil <= :now",
                ExpressionAttributeValues={
                    ":until": {"S": until},
                    ":now": {"S": now},
                    ":one": {"N": "1"},
                    ":zero": {"N": "0"},
                },
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                return False
            raise
        return True

    def add_poll_failures(self, count: int) -> int:
        """Add a work item's failures (it had nothing but) to the fleet's count; the total."""
        answer = client("dynamodb").update_item(
            TableName=self.table,
            Key=POLL_BREAKER_KEY,
            UpdateExpression="ADD failures :n",
            ExpressionAttributeValues={":n": {"N": str(int(count))}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["failures"]["N"])

    def close_poll_breaker(self) -> None:
        """FlexFactor answered again: the failures count from zero, and the next opening
        starts from the shortest wait."""
        client("dynamodb").update_item(
            TableName=self.table,
            Key=POLL_BREAKER_KEY,
            UpdateExpression="SET opens = :zero, failures = :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    # -- refunds: a hold on the refundable amount while FlexFactor is asked ---------------

    @staticmethod
    def _refund_key(order_id: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"REFUND#{order_id}#{key}"}, "sk": {"S": "REFUND"}}

    def refund_record(self, order_id: str, key: str) -> dict[str, Any] | None:
        """The refund kept under ``key`` for the order (``HELD`` while FlexFactor is asked,
        ``DONE`` with its answer), or None."""
        item = (
            client("dynamodb")
            .get_item(TableName=self.table, Key=self._refund_key(order_id, key), ConsistentRead=True)
            .get("Item")
        )
        return _unmarshal(item) if item else None

    def _held_condition(self, held: int, values: dict[str, Any], name: str) -> str:
        values[name] = {"N": str(held)}
        if held == 0:
            return f"(attribute_not_exists(refundHeld) OR refundHeld = {name})"
        return f"refundHeld = {name}"

    def hold_refund(
        self, order_id: str, key: str, record: dict[str, Any], *, version: int, status: str, held: int, amount: int
    ) -> str:
        """Keep the refund under its key (``HELD``) and add its amount to the order's
        ``refundHeld``, in one transaction, on the order as read (``version``, ``status``
        and ``held``): ``held``; ``exists`` when the key is kept already; ``changed`` when
        the order moved on (read it again). Not a change of the order: no version, no
        event (the refund's change is written when FlexFactor has said yes)."""
        values: dict[str, Any] = {":v": {"N": str(version)}, ":s": {"S": status}, ":after": {"N": str(held + amount)}}
        condition = f"version = :v AND #s = :s AND {self._held_condition(held, values, ':before')}"
        item = {**record, "pk": f"REFUND#{order_id}#{key}", "sk": "REFUND", "orderId": order_id, "refundState": "HELD"}
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": _marshal(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._key(order_id),
                            "UpdateExpression": "SET refundHeld = :after",
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            return "exists" if reasons and reasons[0] == "ConditionalCheckFailed" else "changed"
        return "held"

    def release_refund(
        self, order_id: str, key: str, *, held: int, amount: int, states: tuple[str, ...] = ("HELD",)
    ) -> bool:
        """FlexFactor refused the refund (or an operator found it was never made): forget it
        and give its amount back (on the order's ``refundHeld`` as read), if the refund is in
        one of ``states``; False when that changed (read it again)."""
        values: dict[str, Any] = {":after": {"N": str(max(0, held - amount))}}
        state_values = {f":s{i}": {"S": state} for i, state in enumerate(states)}
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": self._refund_key(order_id, key),
                            "ConditionExpression": f"refundState IN ({', '.join(state_values)})",
                            "ExpressionAttributeValues": state_values,
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._key(order_id),
                            "UpdateExpression": "SET refundHeld = :after",
                            # (never an order item made from nothing)
                            "ConditionExpression": "attribute_exists(pk) AND "
                            + self._held_condition(held, values, ":before"),
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                return False
            raise
        return True

    def mark_refund_unknown(self, order_id: str, key: str, why: str) -> None:
        """FlexFactor may or may not have refunded (a timeout, a 5xx): the refund stays held
        as ``UNKNOWN`` (never asked again automatically: a refund has no idempotency key)."""
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key=self._refund_key(order_id, key),
                UpdateExpression="SET refundState = :unknown, why = :why",
                ConditionExpression="refundState = :held",
                ExpressionAttributeValues={
                    ":unknown": {"S": "UNKNOWN"},
                    ":why": {"S": why[:300]},
                    ":held": {"S": "HELD"},
                },
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise

    def refund_done_item(self, order_id: str, key: str, answer: dict[str, Any]) -> dict[str, Any]:
        """The transaction item that marks a held refund ``DONE`` with its answer (written
        with the refund's change: ReservationRefused from ``commit`` when it was not held)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._refund_key(order_id, key),
                "UpdateExpression": "SET refundState = :done, answer = :a",
                # a yes is recorded whether the refund was held or its outcome was unknown
                "ConditionExpression": "refundState IN (:held, :unknown)",
                "ExpressionAttributeValues": {
                    ":done": {"S": "DONE"},
                    ":held": {"S": "HELD"},
                    ":unknown": {"S": "UNKNOWN"},
                    ":a": dynamodb_json.serialize(answer),
                },
            }
        }

    # -- transient tokens -----------------------------------------------------------

    def claim_transient_token(self, jti: str, *, token_expires: int, keep_seconds: int = 86400) -> bool:
        """Record that the transient token ``jti`` was verified: True the first time, False
        for a token verified before (a replay). One conditional put."""
        item = {
            "pk": f"TRANSIENT#{jti}",
            "sk": "TRANSIENT",
            "verifiedAt": now_iso(),
            "expiresAt": token_expires + keep_seconds,
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table, Item=_marshal(item), ConditionExpression="attribute_not_exists(pk)"
            )
            return True
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise
        return False

    # -- webhooks -------------------------------------------------------------------

    def record_delivery(self, nonce: str, record: dict[str, Any], *, keep_seconds: int) -> str:
        """Keep a verified webhook as it came (``WEBHOOK#<nonce>``: the headers that matter,
        the body's hash, the body with card data redacted): ``new``; or, when this nonce came
        before, ``received`` (the same body, not queued yet: an earlier attempt died),
        ``queued`` (the same body, queued already) or ``other`` (another body: a replay)."""
        expires = int(datetime.now(UTC).timestamp()) + keep_seconds
        item = {"pk": f"WEBHOOK#{nonce}", "sk": "WEBHOOK", **record, "delivery": "received", "expiresAt": expires}
        try:
            client("dynamodb").put_item(
                TableName=self.table, Item=_marshal(item), ConditionExpression="attribute_not_exists(pk)"
            )
            return "new"
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise
        before = self.delivery(nonce) or {}
        if before.get("bodySha512") != record.get("bodySha512"):
            return "other"
        return "queued" if before.get("delivery") == "queued" else "received"

    def delivery(self, nonce: str) -> dict[str, Any] | None:
        """The kept webhook with this nonce (for an operator: "did FlexFactor tell us?")."""
        key = {"pk": {"S": f"WEBHOOK#{nonce}"}, "sk": {"S": "WEBHOOK"}}
        item = client("dynamodb").get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return _unmarshal(item) if item else None

    def mark_delivery(self, nonce: str, **fields: Any) -> None:
        """Note what became of a kept webhook (queued, ignored, the writer's outcome)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        try:
            client("dynamodb").update_item(
                TableName=self.table,
                Key={"pk": {"S": f"WEBHOOK#{nonce}"}, "sk": {"S": "WEBHOOK"}},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_marshal(values),
            )
        except ClientError as exc:
            if not _cancelled_by_condition(exc):  # (a record past its 30 days: nothing to note)
                raise

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
            **({"refund": change.refund} if change.refund else {}),
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
                h.get("refund"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a change's history item: {exc}") from None

    # -- reattempt reservations ------------------------------------------------------

    def card_days(self, card: str, today: date, widest: int) -> tuple[dict[str, int], int | None]:
        """The card's reservations per day over the last ``widest`` days (today included),
        and the cap on today's counter (None: there is none yet)."""
        pages = (
            client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={
                    ":pk": {"S": f"CARD#{card}"},
                    ":from": {"S": f"DAY#{(today - timedelta(days=widest - 1)).isoformat()}"},
                    ":to": {"S": f"DAY#{today.isoformat()}"},
                },
                ConsistentRead=True,
            )
        )
        days: dict[str, int] = {}
        cap = None
        for page in pages:
            for raw in page.get("Items", []):
                item = _unmarshal(raw)
                day = item["sk"][4:]
                days[day] = int(item.get("n") or 0)
                if day == today.isoformat():
                    cap = int(item.get("cap") or 0)
        return days, cap

    def reserve_item(self, card: str, day: str, *, cap: int, exists: bool) -> dict[str, Any]:
        """The transaction item that reserves one reattempt of ``card`` on ``day``: one more
        on the day's counter, only while it holds fewer than its cap; or, for the day's first,
        the counter made with ``cap``, only if nobody made it meanwhile."""
        key = {"pk": {"S": f"CARD#{card}"}, "sk": {"S": f"DAY#{day}"}}
        if exists:
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": key,
                    "UpdateExpression": "ADD n :one",
                    "ConditionExpression": "attribute_exists(pk) AND n < cap",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }
        expires = int(
            datetime.combine(date.fromisoformat(day) + timedelta(days=32), datetime.min.time(), UTC).timestamp()
        )
        item = {**key, "n": {"N": "1"}, "cap": {"N": str(cap)}, "expiresAt": {"N": str(expires)}}
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk) AND :one <= :cap",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":cap": {"N": str(cap)}},
            }
        }

    def release_item(self, card: str, day: str) -> dict[str, Any]:
        """The transaction item that gives one reservation of ``card`` on ``day`` back."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": f"CARD#{card}"}, "sk": {"S": f"DAY#{day}"}},
                "UpdateExpression": "ADD n :minus",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":minus": {"N": "-1"}},
            }
        }
