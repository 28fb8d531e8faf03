"""``webhooks list|show|replay``: the raw webhook log.

``ingest_webhook`` keeps every verified delivery under its nonce (``WEBHOOK#<nonce>``, 30
days: the headers that matter, the body's hash, the body with card data redacted) and
notes what became of it: ``delivery`` (received, queued, ignored, invalid) and, from the
single writer, ``result`` (applied, duplicate, stale, untrusted, unmatched, ...) with
``processedAt``. Replaying a delivery queues its update for the writer again (as the
webhook function queued it); the writer decides again, so a replay of an update already
applied is recorded as a duplicate and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from devstack.ops import store
from devstack.ops.render import OpsError, Out, plural, pretty, short
from devstack.ops.target import Target

LIST_FIELDS = [
    "pk",
    "receivedAt",
    "Event",
    "ExternalOrderId",
    "OrderId",
    "delivery",
    "result",
    "processedAt",
    "replayedAt",
]


def list_deliveries(target: Target, args: argparse.Namespace, out: Out) -> int:
    from decline_rescue.domain.clock import iso

    moment = iso(args.since)
    filters = "begins_with(#pk, :webhook) AND #received >= :since"
    names = {"#pk": "pk", "#received": "receivedAt"}
    values: dict[str, Any] = {":webhook": "WEBHOOK#", ":since": moment}
    if args.order:
        filters += " AND #external = :order"
        names["#external"] = "ExternalOrderId"
        values[":order"] = args.order
    scanned = store.scan(
        target.client("dynamodb"),
        target.resource("OrdersTable"),
        filter_expression=filters,
        names=names,
        values=values,
        projection=LIST_FIELDS,
        max_read=args.max_read,
    )
    deliveries = sorted(scanned.items, key=lambda d: str(d.get("receivedAt") or ""), reverse=True)
    for delivery in deliveries:
        delivery["nonce"] = str(delivery.pop("pk", "")).removeprefix("WEBHOOK#")
    shown = deliveries[: args.limit]
    if args.json:
        out.json(
            {
                "since": moment,
                "count": len(deliveries),
                "webhooks": shown,
                "read": scanned.read,
                "truncated": scanned.truncated,
            }
        )
        return 0
    out.line(f"{plural(len(deliveries), 'webhook')} received since {moment} on the {target.describe()}, newest first")
    if shown:
        out.table(
            ["received", "nonce", "event", "orderId", "delivery", "writer", "processed"],
            [
                [
                    d.get("receivedAt"),
                    d["nonce"],
                    d.get("Event"),
                    d.get("ExternalOrderId"),
                    d.get("delivery"),
                    short(d.get("result"), 40) if d.get("result") is not None else None,
                    d.get("processedAt"),
                ]
                for d in shown
            ],
        )
    if len(deliveries) > len(shown):
        out.line(f"(the newest {len(shown)} of {len(deliveries)}: --limit shows more)")
    out.line(scanned.note())
    return 0


def _delivery(nonce: str) -> dict[str, Any]:
    from decline_rescue.runtime import wiring

    found = wiring.orders().delivery(nonce)
    if found is None:
        raise OpsError(f"unknown webhook: no delivery with nonce {nonce!r} (kept 30 days; `webhooks list`)")
    return found


def show(target: Target, args: argparse.Namespace, out: Out) -> int:
    delivery = _delivery(args.nonce)
    delivery.pop("sk", None)
    delivery["nonce"] = str(delivery.pop("pk", "")).removeprefix("WEBHOOK#")
    try:
        delivery["body"] = json.loads(delivery.get("body") or "")
    except ValueError:
        pass
    if args.json:
        out.json(delivery)
        return 0
    out.line(f"webhook {delivery['nonce']}: {delivery.get('Event')} for order {delivery.get('ExternalOrderId')}")
    for name in ("receivedAt", "delivery", "result", "processedAt", "replayedAt", "OrderId", "bodySha512"):
        if delivery.get(name) is not None:
            out.line(f"  {name}: {short(delivery[name], 100)}")
    for name, value in sorted((delivery.get("headers") or {}).items()):
        out.line(f"  header {name}: {value}")
    out.line("  body (card data redacted when kept):")
    for line in pretty(delivery.get("body")):
        out.line("    " + line)
    return 0


def replay(target: Target, args: argparse.Namespace, out: Out) -> int:
    """Queue the kept delivery's update for the single writer again, and (``--wait``) say
    what the writer did with it."""
    from decline_rescue.domain.clock import iso
    from decline_rescue.domain.errors import InvalidRequest
    from decline_rescue.runtime import wiring
    from decline_rescue.services import webhooks, writer

    delivery = _delivery(args.nonce)
    if delivery.get("delivery") == "invalid":
        why = short(delivery.get("result"), 80)
        raise OpsError(f"webhook {args.nonce} was invalid when it came ({why}): nothing to replay")
    try:
        payload = json.loads(delivery.get("body") or "")
    except ValueError:
        raise OpsError(f"webhook {args.nonce}'s kept body is not whole JSON (kept truncated?): cannot replay") from None
    try:
        update = webhooks.to_update(payload, args.nonce)
    except InvalidRequest as exc:
        raise OpsError(f"webhook {args.nonce} does not make an update: {exc}") from None
    if update is None:
        raise OpsError(
            f"webhook {args.nonce} is {payload.get('Event')}, which is acknowledged and ignored: nothing to replay"
        )
    table = wiring.orders()
    before = delivery.get("processedAt")
    writer.enqueue([update])
    marks: dict[str, Any] = {"replayedAt": iso()}
    if delivery.get("delivery") != "queued":
        marks["delivery"] = "queued"
    table.mark_delivery(args.nonce, **marks)
    result: dict[str, Any] = {
        "nonce": args.nonce,
        "orderId": update.orderId,
        "update": update.status or update.event or "check",
        "queued": True,
        "previousResult": delivery.get("result"),
    }
    deadline = time.monotonic() + max(0.0, args.wait)
    while args.wait > 0:
        now = table.delivery(args.nonce) or {}
        if now.get("processedAt") and now.get("processedAt") != before:
            result.update(writerResult=now.get("result"), processedAt=now.get("processedAt"))
            break
        if time.monotonic() >= deadline:
            result["waited"] = args.wait
            break
        time.sleep(0.5)
    if args.json:
        out.json(result)
        return 0
    out.line(f"webhook {args.nonce} ({payload.get('Event')}, order {update.orderId}): queued for the writer again")
    if "writerResult" in result:
        out.line(
            f"  the writer: {result['writerResult']} (at {result['processedAt']}; before: {result['previousResult']})"
        )
    elif args.wait > 0:
        out.line(f"  the writer has not processed it within {args.wait:g}s: `webhooks show {args.nonce}` tells later")
    return 0
