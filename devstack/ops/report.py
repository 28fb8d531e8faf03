"""``report --since 7d``: the recovery funnel of the orders received since a moment.

From the orders table alone (each order's state and its history of applied changes):

- received: orders claimed in the window (``RECEIVED``, or ``QUEUED`` for a queued
  merchant-initiated decline);
- submitted: orders FlexFactor took (any status past intake but ``NOT_SUBMITTED``);
- not submitted: ended ``NOT_SUBMITTED``, by the rule that stopped them;
- waiting: still in intake; pending: submitted and not ended;
- rescued: ``APPROVED``; declined, cancelled, expired: the other ends;
- rescue rate: rescued / submitted;
- recovered: the rescued orders' amounts, by currency (refunds shown apart);
- time to resolution: from the change that recorded FlexFactor's first answer (the
  submission) to the change into a final status, p50/p95/max (nearest rank) over the
  orders resolved in the window;

each for all orders and by path (CIT, MIT).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict
from typing import Any

from devstack.ops import store
from devstack.ops.render import OpsError, Out, amount, seconds
from devstack.ops.target import Target

PATHS = ("all", "CIT", "MIT")
STATE_FIELDS = [
    "pk",
    "sk",
    "orderId",
    "status",
    "isMIT",
    "amount",
    "currency",
    "createdAt",
    "reason",
    "refundedAmount",
    "orderSessionKey",
]
HISTORY_FIELDS = ["version", "status", "at", "changeId", "event"]


def percentile(values: list[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least ``share`` of the values at or under it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def resolution_seconds(history: list[dict[str, Any]]) -> float | None:
    """Seconds from the first change into a submitted status to the first change into a
    final status FlexFactor decided (not NOT_SUBMITTED); None while unresolved."""
    from decline_rescue.domain import statuses as st
    from decline_rescue.domain.clock import parse

    submitted_at = resolved_at = None
    for change in sorted(history, key=lambda h: int(h.get("version") or 0)):
        status = change.get("status")
        if status in st.INTAKE or status == st.NOT_SUBMITTED or status is None:
            continue
        if submitted_at is None:
            submitted_at = parse(change.get("at"))
        if status in st.TERMINAL:
            resolved_at = parse(change.get("at"))
            break
    if submitted_at is None or resolved_at is None:
        return None
    return max(0.0, (resolved_at - submitted_at).total_seconds())


def funnel(orders: list[dict[str, Any]], history: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The figures of ``report`` for these orders (states) and their applied changes."""
    from decline_rescue.domain import statuses as st

    out: dict[str, Any] = {}
    for path in PATHS:
        chosen = [o for o in orders if path == "all" or (path == "MIT") == bool(o.get("isMIT"))]
        status = Counter(str(o.get("status")) for o in chosen)
        rules = Counter(
            str((o.get("reason") or {}).get("rule") or "unknown") if isinstance(o.get("reason"), dict) else "unknown"
            for o in chosen
            if o.get("status") == st.NOT_SUBMITTED
        )
        submitted = [o for o in chosen if o.get("status") not in (*st.INTAKE, st.NOT_SUBMITTED)]
        rescued = [o for o in chosen if o.get("status") == st.APPROVED]
        recovered: dict[str, int] = defaultdict(int)
        refunded: dict[str, int] = defaultdict(int)
        for order in rescued:
            currency = str(order.get("currency") or "?")
            recovered[currency] += int(order.get("amount") or 0)
            if order.get("refundedAmount"):
                refunded[currency] += int(order["refundedAmount"])
        durations = [d for o in chosen if (d := resolution_seconds(history.get(str(o.get("orderId")), []))) is not None]
        out[path] = {
            "received": len(chosen),
            "submitted": len(submitted),
            "notSubmitted": status[st.NOT_SUBMITTED],
            "notSubmittedByRule": dict(sorted(rules.items())),
            "waiting": sum(status[s] for s in st.INTAKE),
            "pending": sum(status[s] for s in st.PENDING),
            "rescued": len(rescued),
            "declined": status[st.DECLINED],
            "cancelled": status[st.CANCELLED],
            "expired": status[st.EXPIRED],
            "rescueRate": round(len(rescued) / len(submitted), 4) if submitted else None,
            "recovered": {c: {"minor": v, "amount": amount(v, c)} for c, v in sorted(recovered.items())},
            "refunded": {c: {"minor": v, "amount": amount(v, c)} for c, v in sorted(refunded.items())},
            "timeToResolution": {
                "resolved": len(durations),
                "p50Seconds": percentile(durations, 0.50),
                "p95Seconds": percentile(durations, 0.95),
                "maxSeconds": max(durations) if durations else None,
            },
        }
    return out


def read(
    target: Target, since_iso: str, until_iso: str, max_read: int
) -> tuple[list[dict[str, Any]], dict[str, list], store.Scanned]:
    """The orders received in [since, until) and their applied changes (all of them, the
    ones made after ``until`` too: an order is reported as it stands), in one bounded scan."""
    names = {"#pk": "pk", "#sk": "sk", "#created": "createdAt", "#at": "at", "#change": "changeId"}
    scanned = store.scan(
        target.client("dynamodb"),
        target.resource("OrdersTable"),
        filter_expression=(
            "begins_with(#pk, :order) AND ((#sk = :state AND #created >= :since AND #created < :until) "
            "OR (attribute_exists(#change) AND #at >= :since))"
        ),
        names=names,
        values={":order": "ORDER#", ":state": "STATE", ":since": since_iso, ":until": until_iso},
        projection=sorted({*STATE_FIELDS, *HISTORY_FIELDS}),
        max_read=max_read,
    )
    orders, history = [], defaultdict(list)
    for item in scanned.items:
        order_id = str(item.get("pk", "")).removeprefix("ORDER#")
        if item.get("sk") == "STATE":
            orders.append(item)
        else:
            history[order_id].append(item)
    return orders, history, scanned


def report(target: Target, args: argparse.Namespace, out: Out) -> int:
    from decline_rescue.domain.clock import iso

    since_iso = iso(args.since)
    until_iso = iso(args.until) if args.until else iso()
    if until_iso <= since_iso:
        raise OpsError(f"--until ({until_iso}) must be after --since ({since_iso})", code=2)
    orders, history, scanned = read(target, since_iso, until_iso, args.max_read)
    figures = funnel(orders, history)
    if args.json:
        out.json(
            {
                "target": target.describe(),
                "since": since_iso,
                "until": until_iso,
                "paths": figures,
                "read": scanned.read,
                "truncated": scanned.truncated,
            }
        )
        return 0
    out.line(f"recovery funnel: orders received from {since_iso} to {until_iso} on the {target.describe()}")
    out.line()

    def row(label: str, pick) -> list[Any]:
        return [label, *(pick(figures[p]) for p in PATHS)]

    rows = [
        row("received", lambda f: f["received"]),
        row("submitted to FlexFactor", lambda f: f["submitted"]),
        row("not submitted", lambda f: f["notSubmitted"]),
    ]
    rules = sorted({r for p in PATHS for r in figures[p]["notSubmittedByRule"]})
    rows += [row(f"  rule {rule}", lambda f, rule=rule: f["notSubmittedByRule"].get(rule, 0)) for rule in rules]
    rows += [
        row("waiting (intake)", lambda f: f["waiting"]),
        row("pending at FlexFactor", lambda f: f["pending"]),
        row("rescued (APPROVED)", lambda f: f["rescued"]),
        row("declined", lambda f: f["declined"]),
        row("cancelled", lambda f: f["cancelled"]),
        row("expired", lambda f: f["expired"]),
        row("rescue rate", lambda f: f"{f['rescueRate'] * 100:.1f}%" if f["rescueRate"] is not None else None),
    ]
    currencies = sorted({c for p in PATHS for c in figures[p]["recovered"]})
    rows += [row(f"recovered {c}", lambda f, c=c: f["recovered"].get(c, {}).get("amount", "0")) for c in currencies]
    refunded = sorted({c for p in PATHS for c in figures[p]["refunded"]})
    rows += [
        row(f"  of which refunded {c}", lambda f, c=c: f["refunded"].get(c, {}).get("amount", "0")) for c in refunded
    ]
    rows += [
        row("resolved (timed)", lambda f: f["timeToResolution"]["resolved"]),
        row("time to resolution p50", lambda f: seconds(f["timeToResolution"]["p50Seconds"])),
        row("time to resolution p95", lambda f: seconds(f["timeToResolution"]["p95Seconds"])),
        row("time to resolution max", lambda f: seconds(f["timeToResolution"]["maxSeconds"])),
    ]
    out.table(["", *PATHS], rows, right=(1, 2, 3))
    out.line()
    out.line("rescue rate: rescued / submitted; time to resolution: FlexFactor's first answer to the final status")
    out.line(scanned.note())
    return 0
