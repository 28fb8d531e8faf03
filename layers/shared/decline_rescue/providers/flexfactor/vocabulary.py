"""FlexFactor's words for an order's state, mapped onto ours (``domain.statuses``): the
/evaluate answer, the ``GET /v1/orders`` status enum and names, and webhook event names."""

from __future__ import annotations

from typing import Any

from decline_rescue.domain.statuses import (
    APPROVED,
    CANCELLED,
    CAPTUREREQUIRED,
    CHALLENGE,
    CHARGEBACK,
    DECLINED,
    EXPIRED,
    PROCESSING,
    REFUNDED,
    SUBMITTED,
)

# GET /v1/orders status enum (PROVIDERS.md): 0 Draft, 1 Onhold, 2 Cancelled, 3 Problem,
# 4 Processing, 5 Capturerequired, 6 Returned, 7 Completed
ORDER_ENUM = {
    0: (SUBMITTED, None),
    1: (PROCESSING, None),
    2: (CANCELLED, None),
    3: (PROCESSING, None),
    4: (PROCESSING, None),
    5: (CAPTUREREQUIRED, None),
    6: (APPROVED, REFUNDED),
    7: (APPROVED, None),
}
# status names across endpoints (seed 003's table), normalised: lower case, no spaces
STATUS_NAMES = {
    "draft": (SUBMITTED, None),
    "submitted": (SUBMITTED, None),
    "challenge": (CHALLENGE, None),
    "onhold": (PROCESSING, None),
    "problem": (PROCESSING, None),
    "processing": (PROCESSING, None),
    "capturerequired": (CAPTUREREQUIRED, None),
    "completed": (APPROVED, None),
    "approved": (APPROVED, None),
    "returned": (APPROVED, REFUNDED),
    "refunded": (APPROVED, REFUNDED),
    "cancelled": (CANCELLED, None),
    "canceled": (CANCELLED, None),
    "declined": (DECLINED, None),
    "expired": (EXPIRED, None),
}
# webhook events: a status, an event on the order, or only a reason to poll it
WEBHOOK_STATUS = {
    "order.completed": APPROVED,
    "order.cancelled": CANCELLED,
    "order.expired": EXPIRED,
    "order.capturerequired": CAPTUREREQUIRED,
    "challenge.presented": CHALLENGE,
}
WEBHOOK_EVENT = {"order.refunded": REFUNDED, "payment.chargeback.received": CHARGEBACK}
WEBHOOK_POLL = frozenset({"challenge.attempted", "challenge.passed", "challenge.failed"})
WEBHOOK_IGNORED = frozenset({"payout.created", "payout.updated"})


def from_provider_order(order: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, event) of a ``GET /v1/orders/{id}`` answer: the status name when it is
    one we know (it can say Expired, which the enum cannot), else the enum value."""
    name = str(order.get("statusName") or "").replace(" ", "").replace("_", "").lower()
    if name in STATUS_NAMES:
        return STATUS_NAMES[name]
    raw = order.get("status")
    if isinstance(raw, str):
        key = raw.replace(" ", "").replace("_", "").lower()
        if key in STATUS_NAMES:
            return STATUS_NAMES[key]
        raw = int(raw) if raw.strip().isdigit() else None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in ORDER_ENUM:
        return ORDER_ENUM[raw]
    return None, None


def provider_status_text(order: dict[str, Any]) -> str:
    return f"{order.get('status')} {order.get('statusName') or ''}".strip()
