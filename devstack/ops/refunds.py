"""``refunds settle ORDER_ID REFUND_ID --made|--not-made``: an operator's verdict on a refund
whose answer was lost.

A refund carries no idempotency key at FlexFactor, so one whose answer was lost (a
timeout, a 500) is held as ``UNKNOWN`` and never asked again automatically
(``services/refunds.py``). Look it up in FlexFactor's portal, then settle it here: ``--made``
records it through the single writer (``OrderRefunded``, ``refundedAmount``); ``--not-made``
gives the hold back, so the amount can be refunded again.
"""

from __future__ import annotations

import argparse

from devstack.ops.render import OpsError, Out
from devstack.ops.target import Target


def settle(target: Target, args: argparse.Namespace, out: Out) -> int:
    from decline_rescue.domain.errors import DeclineRescueError
    from decline_rescue.services import refunds

    try:
        answer = refunds.settle(args.order_id, args.refund_id, refunded=args.made, transaction_id=args.transaction_id)
    except DeclineRescueError as exc:
        raise OpsError(f"refund {args.refund_id} of order {args.order_id} not settled: {exc.message}") from None
    if args.json:
        out.json(answer)
    else:
        out.line(
            f"refund {args.refund_id} of order {args.order_id}: {answer['status']} ({answer['amount']} minor units)"
            + (f"; refunded in all {answer['refundedAmount']}" if "refundedAmount" in answer else "")
        )
    return 0
