"""Order statuses and the state machine every source of change goes through.

- intake (ours, before FlexFactor decided): ``RECEIVED``, ``QUEUED``;
- pending at FlexFactor: ``SUBMITTED`` < ``CHALLENGE`` < ``PROCESSING`` < ``CAPTUREREQUIRED``;
- terminal: ``APPROVED`` (Approved, Completed), ``DECLINED``, ``CANCELLED``, ``EXPIRED``,
  and ``NOT_SUBMITTED`` (ours: never sent, with the rule that stopped it).

A change is allowed only forward: from intake to anything, from a pending status to a
later pending status or to a terminal one; a terminal status never changes again. A
refund or a chargeback is an *event* on the order (its status stays).
"""

from __future__ import annotations

RECEIVED = "RECEIVED"
QUEUED = "QUEUED"
SUBMITTED = "SUBMITTED"
CHALLENGE = "CHALLENGE"
PROCESSING = "PROCESSING"
CAPTUREREQUIRED = "CAPTUREREQUIRED"
APPROVED = "APPROVED"
DECLINED = "DECLINED"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
NOT_SUBMITTED = "NOT_SUBMITTED"

INTAKE = frozenset({RECEIVED, QUEUED})
PENDING = (SUBMITTED, CHALLENGE, PROCESSING, CAPTUREREQUIRED)  # in lifecycle order
TERMINAL = frozenset({APPROVED, DECLINED, CANCELLED, EXPIRED, NOT_SUBMITTED})
STATUSES = (*sorted(INTAKE), *PENDING, *sorted(TERMINAL))

REFUNDED = "REFUNDED"
CHARGEBACK = "CHARGEBACK"
EVENTS = frozenset({REFUNDED, CHARGEBACK})

_RANK = {RECEIVED: 0, QUEUED: 0, **{s: i + 1 for i, s in enumerate(PENDING)}, **dict.fromkeys(TERMINAL, 99)}


def is_status(value: object) -> bool:
    return value in _RANK


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def allowed(current: str, new: str) -> bool:
    """May an order at ``current`` move to ``new``? Forward only; terminal is final;
    NOT_SUBMITTED only before anything was sent."""
    if current not in _RANK or new not in _RANK or current in TERMINAL or new in INTAKE:
        return False
    if new == NOT_SUBMITTED:
        return current in INTAKE
    return _RANK[new] > _RANK[current]
