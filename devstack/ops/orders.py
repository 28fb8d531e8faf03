"""``orders show|resync|list``: one order as we hold it beside FlexFactor's view, a poll
of FlexFactor now through the single writer, and the orders received since a moment."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from devstack.ops import store
from devstack.ops.render import OpsError, Out, amount, plural, short
from devstack.ops.target import Target

SHOWN_STATE = (
    "orderId",
    "status",
    "version",
    "isMIT",
    "amount",
    "currency",
    "orderSessionKey",
    "providerStatus",
    "createdAt",
    "updatedAt",
    "lastSource",
    "expiryDateUtc",
    "nextPollAt",
    "polls",
    "refundedAmount",
    "reason",
    "card",
)


def _read_order(order_id: str) -> dict[str, Any]:
    """The order as the orders API serves it (``services.orders.get_order``)."""
    from decline_rescue.services.orders import OrderNotFound, get_order

    try:
        return get_order(order_id)
    except OrderNotFound:
        raise OpsError(f"unknown order: no order {order_id!r}") from None


def _flexfactor_view(order: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(FlexFactor's order, or None; why there is none)."""
    from decline_rescue.domain.errors import DeclineRescueError
    from decline_rescue.runtime import wiring

    key = order.get("orderSessionKey")
    if not key:
        return None, "no FlexFactor order: it was never submitted (no orderSessionKey)"
    try:
        found = wiring.flexfactor().get_order(str(key))
    except DeclineRescueError as exc:
        return None, f"FlexFactor could not be asked: {exc}"
    if found is None:
        return None, f"FlexFactor has no order {key} (404)"
    return found, None


def agreement(order: dict[str, Any], found: dict[str, Any] | None) -> str:
    """Ours and FlexFactor's status compared, and what to do about a difference."""
    from decline_rescue.domain import statuses as st
    from decline_rescue.providers.flexfactor import vocabulary

    if found is None:
        return "no comparison (FlexFactor's view is not available)"
    ours = str(order.get("status"))
    mapped, event = vocabulary.from_provider_order(found)
    refunds = [h for h in order.get("history", []) if h.get("event") == st.REFUNDED and h.get("changeId")]
    if event == st.REFUNDED and not refunds:
        return f"FlexFactor shows a refund our history lacks: `decline-rescue orders resync {order['orderId']}`"
    if mapped is None:
        return f"FlexFactor's status {vocabulary.provider_status_text(found)!r} is not one we map"
    if mapped == ours:
        return "in agreement"
    if st.allowed(ours, mapped):
        return f"FlexFactor is ahead ({mapped}): `decline-rescue orders resync {order['orderId']}` applies it"
    if st.is_terminal(ours):
        return f"DIFFERENT: ours is final ({ours}) and FlexFactor says {mapped}: investigate"
    return f"FlexFactor says {mapped}, behind ours ({ours}): nothing to do"


def _events(target: Target, order_id: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    bus = target.physical_ids.get("OrderEventBus", "the stack's bus")
    if target.kind != "local":
        return None, f"not kept by a deployed stack: attach a rule to the bus {bus} to keep them"
    if not target.gateway_url:
        return None, "this local stack names no gateway (its /__local/events lists them)"
    import httpx

    try:
        response = httpx.get(f"{target.gateway_url}/__local/events", params={"orderId": order_id}, timeout=5.0)
        response.raise_for_status()
        return list(response.json().get("events") or []), None
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"the local gateway did not answer ({type(exc).__name__})"


def _history_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for h in history:
        if h.get("changeId"):
            change = f"{h.get('previous') or '-'} -> {h.get('status')}"
            if h.get("event"):
                change += f" [{h['event']}]"
            detail = h.get("refund") or h.get("detail")
            rows.append([h.get("version"), h.get("at"), h.get("source"), change, short(detail, 70) if detail else ""])
        else:
            said = h.get("detail") or {}
            what = said.get("status") or said.get("event") or ("poll" if h.get("kind") == "poll-requested" else "")
            note = f"({h.get('kind')}) {what}".strip()
            why = said.get("why") or said.get("providerStatus") or ""
            rows.append([h.get("version"), h.get("at"), h.get("source"), note, short(why, 70)])
    return rows


def show(target: Target, args: argparse.Namespace, out: Out) -> int:
    order = _read_order(args.order_id)
    found, why = _flexfactor_view(order)
    events, events_why = _events(target, args.order_id) if not args.no_events else (None, "not asked for")
    verdict = agreement(order, found)
    if args.json:
        out.json(
            {
                "target": target.describe(),
                "order": order,
                "flexfactor": found,
                "flexfactorUnavailable": why,
                "agreement": verdict,
                "events": events,
                "eventsUnavailable": events_why,
            }
        )
        return 0
    out.line(f"order {order['orderId']} on the {target.describe()}")
    out.line()
    theirs = found or {}
    status_theirs = "-"
    if found is not None:
        from decline_rescue.providers.flexfactor import vocabulary

        mapped, event = vocabulary.from_provider_order(found)
        status_theirs = f"{mapped or '?'} ({vocabulary.provider_status_text(found)})" + (f" [{event}]" if event else "")
    rows = [
        ["status", order.get("status"), status_theirs],
        ["FlexFactor order", order.get("orderSessionKey"), theirs.get("id")],
        ["orderId / reference", order.get("orderId"), theirs.get("referenceNumber")],
        [
            "amount",
            f"{amount(order.get('amount'), order.get('currency'))} {order.get('currency') or ''}".strip(),
            f"{theirs['amount']} {theirs.get('currencyCode') or theirs.get('currency') or ''}".strip()
            if theirs.get("amount") is not None
            else None,
        ],
        ["initiated", "MIT" if order.get("isMIT") else "CIT", _initiated(theirs)],
        ["created", order.get("createdAt"), theirs.get("orderPlacedDate")],
        ["expiry", order.get("expiryDateUtc"), theirs.get("expiryDate")],
        ["updated", order.get("updatedAt"), None],
        ["version", order.get("version"), None],
        ["next poll", order.get("nextPollAt") or "(not pending)", None],
    ]
    if order.get("refundedAmount"):
        rows.append(["refunded", amount(order["refundedAmount"], order.get("currency")), None])
    if order.get("reason"):
        rows.append(["reason", short(order["reason"], 70), None])
    out.table(["", "ours", "FlexFactor"], rows)
    if why:
        out.line(f"FlexFactor: {why}")
    out.line(f"verdict: {verdict}")
    out.line()
    history = order.get("history") or []
    out.line(f"history ({sum(1 for h in history if h.get('changeId'))} changes, oldest first)")
    out.table(["v", "at", "source", "change", "detail"], _history_rows(history), indent="  ")
    out.line()
    if events is None:
        out.line(f"events: {events_why}")
    else:
        out.line(f"events on the bus ({len(events)})")
        out.table(
            ["v", "time", "detail-type", "change", "changeId"],
            [
                [
                    d.get("version"),
                    d.get("time"),
                    e.get("detail-type"),
                    f"{d.get('previousStatus') or '-'} -> {d.get('status')}"
                    + (f" [{d['event']}]" if d.get("event") else ""),
                    d.get("changeId"),
                ]
                for e in events
                for d in [e.get("detail") or {}]
            ],
            indent="  ",
        )
    return 0


def _initiated(found: dict[str, Any]) -> str | None:
    if "isMIT" not in found or found.get("isMIT") is None:
        return None
    return "MIT" if found["isMIT"] else "CIT"


# -- resync ---------------------------------------------------------------------------

PLAN_SAID = {
    "changed": "FlexFactor has news",
    "expired": "past its expiry and grace: closed as the poller closes it",
    "unchanged": "FlexFactor has nothing new",
    "not_found": "FlexFactor has no such order (yet): nothing to apply",
    "untrusted": "FlexFactor's order names another reference: not applied (see the order's history)",
    "resent": "still QUEUED: its message was sent to the declines queue again",
    "claim_waiting": "a claim FlexFactor's order list does not show yet: left waiting",
    "recovered": "a claim found in FlexFactor's order list",
    "abandoned": "a claim FlexFactor never had, past ABANDON_AFTER_SECONDS: closed NOT_SUBMITTED",
    "abandoned_cancelled": "a claim FlexFactor had: cancelled there by our orderId, closed CANCELLED",
}


def resync(target: Target, args: argparse.Namespace, out: Out) -> int:
    """Poll FlexFactor for one order now, as the poller would (``Poller.plan``), and apply
    what it found through the single writer (``writer.apply``: the state machine, the
    conditional write, a duplicate of a concurrent poll recorded once); ``--due`` only
    makes the order due for the next poller run (``writer.request_poll``)."""
    from decline_rescue.domain import statuses as st
    from decline_rescue.domain.errors import DeclineRescueError
    from decline_rescue.runtime import wiring
    from decline_rescue.services import writer

    table = wiring.orders()
    before = table.get_state(args.order_id)
    if before is None:
        raise OpsError(f"unknown order: no order {args.order_id!r}")
    result: dict[str, Any] = {
        "orderId": args.order_id,
        "before": {"status": before["status"], "version": before["version"]},
    }
    if st.is_terminal(str(before["status"])):
        result.update(outcome="final", said=f"the order is {before['status']}, final: there is nothing to poll")
        return _said(out, args, result)
    if args.due:
        writer.request_poll(args.order_id)
        after = table.get_state(args.order_id) or {}
        result.update(
            outcome="due",
            said="made due now: the poller's next run (PollRate) looks it up",
            nextPollAt=after.get("nextPollAt"),
        )
        return _said(out, args, result)
    from decline_rescue.services.polling import Poller

    try:
        plan = Poller().plan(before)
    except DeclineRescueError as exc:
        raise OpsError(f"FlexFactor could not be asked about {args.order_id}: {exc}") from None
    applied = []
    for update in plan.updates:
        outcome = writer.apply(update)
        what = update.status or update.event
        applied.append({"update": what, "providerStatus": update.providerStatus, "result": str(outcome.result)})
    after = table.get_state(args.order_id) or before
    result.update(
        outcome=plan.outcome,
        said=PLAN_SAID.get(plan.outcome, plan.outcome),
        updates=applied,
        after={"status": after["status"], "version": after["version"]},
        changed=int(after["version"]) != int(before["version"]),
    )
    return _said(out, args, result)


def _said(out: Out, args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        out.json(result)
        return 0
    before = result["before"]
    out.line(f"order {result['orderId']}: {result['said']}")
    out.line(f"  before    {before['status']} (version {before['version']})")
    for update in result.get("updates", []):
        provider = f" (FlexFactor: {update['providerStatus']})" if update.get("providerStatus") else ""
        out.line(f"  update    {update['update']}{provider}: {update['result']}")
    if "after" in result:
        after = result["after"]
        change = "changed" if result.get("changed") else "unchanged"
        out.line(f"  after     {after['status']} (version {after['version']}): {change}")
    if result.get("nextPollAt"):
        out.line(f"  next poll {result['nextPollAt']}")
    return 0


# -- list -----------------------------------------------------------------------------

LIST_FIELDS = [
    "orderId",
    "status",
    "version",
    "isMIT",
    "amount",
    "currency",
    "createdAt",
    "updatedAt",
    "lastSource",
    "reason",
]


def list_orders(target: Target, args: argparse.Namespace, out: Out) -> int:
    from decline_rescue.domain import statuses as st

    wanted = [part.strip().upper() for value in args.status or [] for part in value.split(",") if part.strip()]
    unknown = [s for s in wanted if not st.is_status(s)]
    if unknown:
        raise OpsError(f"unknown status {', '.join(unknown)}: one of {', '.join(st.STATUSES)}", code=2)
    moment: datetime = args.since
    filters = "begins_with(#pk, :order) AND #sk = :state AND #created >= :since"
    values: dict[str, Any] = {":order": "ORDER#", ":state": "STATE", ":since": _iso(moment)}
    names = {"#pk": "pk", "#sk": "sk", "#created": "createdAt"}
    if wanted:
        names["#status"] = "status"
        filters += " AND #status IN (" + ", ".join(f":s{i}" for i in range(len(wanted))) + ")"
        values.update({f":s{i}": s for i, s in enumerate(wanted)})
    scanned = store.scan(
        target.client("dynamodb"),
        target.resource("OrdersTable"),
        filter_expression=filters,
        names=names,
        values=values,
        projection=LIST_FIELDS,
        max_read=args.max_read,
    )
    orders = sorted(scanned.items, key=lambda o: str(o.get("createdAt") or ""), reverse=True)
    shown = orders[: args.limit]
    if args.json:
        out.json(
            {
                "since": _iso(moment),
                "status": wanted or None,
                "count": len(orders),
                "orders": shown,
                "read": scanned.read,
                "truncated": scanned.truncated,
            }
        )
        return 0
    what = f" {'/'.join(wanted)}" if wanted else ""
    counted = plural(len(orders), f"{what.strip()} order".strip())
    out.line(f"{counted} received since {_iso(moment)} on the {target.describe()}, newest first")
    if shown:
        out.table(
            ["created", "orderId", "status", "v", "path", "amount", "cur", "updated", "by", "reason"],
            [
                [
                    o.get("createdAt"),
                    o.get("orderId"),
                    o.get("status"),
                    o.get("version"),
                    "MIT" if o.get("isMIT") else "CIT",
                    amount(o.get("amount"), o.get("currency")),
                    o.get("currency"),
                    o.get("updatedAt"),
                    o.get("lastSource"),
                    (o.get("reason") or {}).get("rule") if isinstance(o.get("reason"), dict) else None,
                ]
                for o in shown
            ],
        )
    if len(orders) > len(shown):
        out.line(f"(the newest {len(shown)} of {len(orders)}: --limit shows more)")
    out.line(scanned.note())
    return 0


def _iso(moment: datetime) -> str:
    from decline_rescue.domain.clock import iso

    return iso(moment)
