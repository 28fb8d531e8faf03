"""The orders API's read side: an order as the merchant sees it, with its history."""

from __future__ import annotations

from typing import Any

from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.domain.updates import ANSWER, FINGERPRINT, QUEUED_MESSAGE
from decline_rescue.runtime import wiring

# bookkeeping of the store, the writer and the intake, not the merchant's business
_HIDDEN = frozenset(
    {"pk", "sk", "pendingShard", "eventKeys", "leaseUntil", "reservation", QUEUED_MESSAGE, FINGERPRINT, ANSWER}
)


class OrderNotFound(DeclineRescueError):
    status_code = 404
    code = "ORDER_NOT_FOUND"


def get_order(order_id: str) -> dict[str, Any]:
    """An order's state and its history, oldest first (applied changes with their
    ``changeId``, and the updates recorded without being applied); OrderNotFound (404)."""
    state, history = wiring.orders().get_with_history(order_id)
    if state is None:
        raise OrderNotFound("no order with this orderId")
    public = {k: v for k, v in state.items() if k not in _HIDDEN}
    public["history"] = [
        {"version": int(h["sk"][5:11]), **{k: v for k, v in h.items() if k not in ("pk", "sk", "orderId")}}
        for h in history
    ]
    return public
