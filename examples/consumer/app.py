"""An example consumer of decline-rescue's order events (schemas/events/): a Lambda
function behind an EventBridge rule on the ``<stack>-orders`` bus (rule-pattern.json:
orders that became APPROVED, and refunds; template.yaml wires it).

Delivery is at least once, and EventBridge does not keep an order's events in order, so:

- **once per change**: each event is recorded under its ``changeId`` (``orderId:version``)
  with a conditional put (``attribute_not_exists``), in one DynamoDB transaction with its
  effect on the consumer's copy of the order; a redelivered event fails the condition and
  is acknowledged as a duplicate, never applied twice. Markers expire after 30 days
  (EventBridge stops retrying after 24 hours).
- **in version order**: the copy keeps ``lastVersion``; an event newer than it sets the
  status, an older one (late) only adds its facts (a refund's amount, an approval time)
  and never takes the status back. The write is conditional on the ``lastVersion`` read,
  so two invocations racing on one order cannot both win; the loser reads again.
- **gaps noted**: versions skipped between ``lastVersion`` and a newer event are kept in
  ``gaps`` (and removed when a late event fills one). Versions have no gaps at the
  source, so with a rule that delivers every event a gap that stays is an event missed;
  with a filtering rule (as rule-pattern.json) most gaps are the versions it filtered out.
  An order's whole history is ``GET /orders/{orderId}``.

Table: one string key ``pk``: ``CHANGE#<changeId>`` (the markers, TTL ``expiresAt``) and
``ORDER#<orderId>`` (``lastVersion``, ``status``, ``approvedAt``, ``refunds``,
``refundedAmount``, ``chargebacks``, ``changes``, ``gaps``). Replace ``_effect`` with what
your system does; keep it to writes in the same transaction, or make it idempotent by
``changeId``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

KEEP_SECONDS = 30 * 86400
MAX_ATTEMPTS = 5
MAX_GAP = 100  # versions noted at most per event

_client: Any = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _client
    if _client is None:
        _client = boto3.client("dynamodb")
    return handle(event, _client, os.environ["CONSUMER_TABLE"])


def handle(event: dict[str, Any], ddb: Any, table: str, *, now: float | None = None) -> dict[str, Any]:
    """Apply one event once: ``{"result": "applied" | "late" | "duplicate", ...}``.
    Raises when it cannot (Lambda retries the event, then sends it to the on-failure
    destination)."""
    detail = event["detail"]
    change_id, order_id, version = str(detail["changeId"]), str(detail["orderId"]), int(detail["version"])
    if change_id != f"{order_id}:{version}":
        raise ValueError(f"changeId {change_id!r} is not orderId:version")
    moment = time.time() if now is None else now
    for _ in range(MAX_ATTEMPTS):
        order = ddb.get_item(TableName=table, Key=_key(f"ORDER#{order_id}"), ConsistentRead=True).get("Item")
        last = int(order["lastVersion"]["N"]) if order else 0
        gaps = list(range(last + 1, version))[:MAX_GAP]
        marker = {
            "Put": {
                "TableName": table,
                "Item": {
                    **_key(f"CHANGE#{change_id}"),
                    "orderId": {"S": order_id},
                    "version": {"N": str(version)},
                    "detailType": {"S": str(event.get("detail-type"))},
                    "receivedAt": {"N": str(int(moment))},
                    "expiresAt": {"N": str(int(moment) + KEEP_SECONDS)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        update = _order_update(table, event, order_id, version, last, gaps, exists=order is not None)
        try:
            ddb.transact_write_items(TransactItems=[marker, update])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                logger.info("duplicate event %s: already applied", change_id)
                return {"result": "duplicate", "changeId": change_id}
            continue  # the order changed since it was read (another invocation): read it again
        if gaps:
            logger.info("order %s: versions %s not seen (filtered by the rule, late or missed)", order_id, gaps)
        result = "applied" if version > last else "late"
        return {"result": result, "changeId": change_id, "gaps": gaps}
    raise RuntimeError(f"order {order_id} kept changing; the event will be retried")


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _order_update(
    table: str, event: dict[str, Any], order_id: str, version: int, last: int, gaps: list[int], *, exists: bool
) -> dict[str, Any]:
    detail = event["detail"]
    sets, adds, deletes = [], ["changes :one"], []
    values: dict[str, Any] = {":one": {"N": "1"}}
    names: dict[str, str] = {}
    if version > last:  # the newest: it says what the order is now
        sets += ["lastVersion = :version", "lastChangeId = :changeId", "#status = :status", "updatedAt = :time"]
        names["#status"] = "status"
        values.update(
            {
                ":version": {"N": str(version)},
                ":changeId": {"S": str(detail["changeId"])},
                ":status": {"S": str(detail["status"])},
                ":time": {"S": str(detail["time"])},
            }
        )
        if gaps:
            adds.append("gaps :gaps")
            values[":gaps"] = {"NS": [str(v) for v in gaps]}
    else:  # late: it fills a gap, and never takes the status back
        deletes.append("gaps :late")
        values[":late"] = {"NS": [str(version)]}
    effect_sets, effect_adds, effect_values = _effect(event)
    sets += effect_sets
    adds += effect_adds
    values.update(effect_values)
    expression = "SET " + ", ".join(sets) if sets else ""
    expression += " ADD " + ", ".join(adds)
    if deletes:
        expression += " DELETE " + ", ".join(deletes)
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _key(f"ORDER#{order_id}"),
        "UpdateExpression": expression.strip(),
        "ExpressionAttributeValues": values,
    }
    if names:
        update["ExpressionAttributeNames"] = names
    if exists:  # conditional on the version read: a racing invocation makes this one read again
        update["ConditionExpression"] = "lastVersion = :last"
        values[":last"] = {"N": str(last)}
    else:
        update["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Update": update}


def _effect(event: dict[str, Any]) -> tuple[list[str], list[str], dict[str, Any]]:
    """What the event does to the consumer's order (SET clauses, ADD clauses, values):
    here, an approval's time, and refunds counted and summed (exact: each change is
    applied once)."""
    detail = event["detail"]
    if event.get("detail-type") == "OrderStatusChanged" and detail.get("status") == "APPROVED":
        return ["approvedAt = :approvedAt"], [], {":approvedAt": {"S": str(detail["time"])}}
    if event.get("detail-type") == "OrderRefunded":
        refund = detail.get("refund")  # ours has the amount; one FlexFactor reported does not
        if isinstance(refund, dict):
            values = {":refund": {"N": "1"}, ":amount": {"N": str(int(refund["amount"]))}}
            return [], ["refunds :refund", "refundedAmount :amount"], values
        return [], ["refunds :refund"], {":refund": {"N": "1"}}
    if event.get("detail-type") == "OrderChargebackReceived":
        return [], ["chargebacks :chargeback"], {":chargeback": {"N": "1"}}
    return [], [], {}
