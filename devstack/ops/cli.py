"""``decline-rescue``: the operator's CLI for a decline-rescue stack.

    decline-rescue --stack NAME [--region R] COMMAND ...   a deployed stack (CloudFormation)
    decline-rescue --local COMMAND ...                     the local stack (`make local`)

Commands: ``orders show|resync|list``, ``dlq list|show|redrive``, ``webhooks
list|show|replay``, ``refunds settle``, ``report``; each has ``--help``. Nothing printed holds card data:
every value passes through ``decline_rescue.domain.carddata.redact`` (``render.Out``).
Exit status: 0 done, 1 refused or failed (unknown order, no such stack, no local stack
running, AWS or FlexFactor errors), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from devstack.ops.render import OpsError, Out, since

PROG = "decline-rescue"


def _since(value: str):
    try:
        return since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _target_options() -> argparse.ArgumentParser:
    """--stack/--local and friends, accepted before or after the command (their defaults
    are suppressed, so a later parser never overwrites what an earlier one read)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("which stack")
    group.add_argument("--stack", metavar="NAME", default=argparse.SUPPRESS, help="a deployed stack's name")
    group.add_argument("--region", metavar="R", default=argparse.SUPPRESS, help="its region (default: AWS_REGION)")
    group.add_argument("--profile", metavar="P", default=argparse.SUPPRESS, help="an AWS profile (AWS_PROFILE)")
    group.add_argument(
        "--local", action="store_true", default=argparse.SUPPRESS, help="the local stack `make local` runs"
    )
    group.add_argument(
        "--local-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="where the local stack describes itself (default: .local/stack.json, or DECLINE_RESCUE_LOCAL_FILE)",
    )
    return parent


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def build_parser() -> argparse.ArgumentParser:
    from devstack.ops import dlq, orders, refunds, report, webhooks

    target = _target_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[target],
        description="Operate a decline-rescue stack: orders, dead-letter queues, webhooks and the recovery report. "
        "Card data is never printed.",
        epilog="examples:\n"
        "  decline-rescue --local report --since 24h\n"
        "  decline-rescue --stack decline-rescue-prod --region eu-west-1 orders show ord-123\n"
        "  decline-rescue --local dlq redrive updates --max 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: Any, name: str, handler: Callable, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[target], help=help_text, description=help_text, **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    # -- orders
    orders_parser = commands.add_parser(
        "orders", parents=[target], help="one order, a poll now, the orders received", description="Orders."
    )
    orders_commands = orders_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command(
        orders_commands,
        "show",
        orders.show,
        "an order's state and history, its events (local stack), and FlexFactor's view beside ours",
    )
    sub.add_argument("order_id", metavar="ORDER_ID", help="the merchant's orderId")
    sub.add_argument("--no-events", action="store_true", help="do not ask the local gateway for the order's events")
    _json_option(sub)
    sub = command(
        orders_commands,
        "resync",
        orders.resync,
        "poll FlexFactor for the order now, as the poller does, and apply what changed through the single writer",
    )
    sub.add_argument("order_id", metavar="ORDER_ID")
    sub.add_argument(
        "--due", action="store_true", help="only make the order due: the poller's next run looks it up (no call now)"
    )
    _json_option(sub)
    sub = command(orders_commands, "list", orders.list_orders, "orders received since a moment, newest first")
    sub.add_argument("--status", action="append", metavar="S", help="only these statuses (repeat, or comma-separated)")
    sub.add_argument("--since", type=_since, default=_since("24h"), help="a span (30m, 24h, 7d) or an ISO time; 24h")
    sub.add_argument("--limit", type=_positive, default=50, help="orders printed at most (50)")
    sub.add_argument("--max-read", type=_positive, default=20_000, help="table items read at most (20000)")
    _json_option(sub)

    # -- dlq
    queues = sorted(dlq.QUEUES)
    dlq_parser = commands.add_parser(
        "dlq",
        parents=[target],
        help="dead-letter queues: look, redrive",
        description=dlq.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dlq_commands = dlq_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command(dlq_commands, "list", dlq.list_messages, "the queue's depth and its messages, redacted")
    sub.add_argument("queue", choices=queues, metavar="QUEUE", help=" | ".join(queues))
    sub.add_argument("--max", type=_positive, default=20, help="messages looked at (20)")
    _json_option(sub)
    sub = command(dlq_commands, "show", dlq.show, "one message in full, redacted (the first, or MESSAGE_ID)")
    sub.add_argument("queue", choices=queues, metavar="QUEUE", help=" | ".join(queues))
    sub.add_argument("message_id", metavar="MESSAGE_ID", nargs="?")
    sub.add_argument("--scan", type=_positive, default=100, help="messages looked through for MESSAGE_ID (100)")
    _json_option(sub)
    sub = command(
        dlq_commands,
        "redrive",
        dlq.redrive,
        "move messages back to the queue whose DLQ it is (SQS's move task, or a bounded loop)",
    )
    sub.add_argument("queue", choices=queues, metavar="QUEUE", help=" | ".join(queues))
    sub.add_argument("--max", type=_positive, default=None, help="move at most N (with the loop); default: all")
    sub.add_argument(
        "--method",
        choices=("auto", "move-task", "loop"),
        default="auto",
        help="auto (default): the move task for all, the loop for --max or where the task is not available",
    )
    sub.add_argument(
        "--include-invalid", action="store_true", help="the loop moves messages dead-lettered as invalid too"
    )
    sub.add_argument("--wait", type=float, default=120.0, help="seconds to follow a move task (120)")
    _json_option(sub)

    # -- webhooks
    hooks_parser = commands.add_parser(
        "webhooks", parents=[target], help="the raw webhook log: list, show, replay", description="Webhooks."
    )
    hooks_commands = hooks_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command(
        hooks_commands, "list", webhooks.list_deliveries, "webhooks received since a moment and what became of each"
    )
    sub.add_argument("--since", type=_since, default=_since("1h"), help="a span (30m, 1h, 7d) or an ISO time; 1h")
    sub.add_argument("--order", metavar="ORDER_ID", help="only the webhooks about this order")
    sub.add_argument("--limit", type=_positive, default=50, help="webhooks printed at most (50)")
    sub.add_argument("--max-read", type=_positive, default=20_000, help="table items read at most (20000)")
    _json_option(sub)
    sub = command(hooks_commands, "show", webhooks.show, "one kept delivery: headers, body (redacted), its fate")
    sub.add_argument("nonce", metavar="NONCE", help="the delivery's x-fc-nonce (webhooks list)")
    _json_option(sub)
    sub = command(
        hooks_commands,
        "replay",
        webhooks.replay,
        "queue a kept delivery's update for the single writer again (it de-duplicates)",
    )
    sub.add_argument("nonce", metavar="NONCE")
    sub.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the writer's outcome (15; 0: none)")
    _json_option(sub)

    # -- refunds
    refunds_parser = commands.add_parser(
        "refunds",
        parents=[target],
        help="settle a refund whose answer was lost",
        description=refunds.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    refunds_commands = refunds_parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command(
        refunds_commands,
        "settle",
        refunds.settle,
        "record a held refund as made (after checking FlexFactor) or give its hold back",
    )
    sub.add_argument("order_id", metavar="ORDER_ID")
    sub.add_argument("refund_id", metavar="REFUND_ID", help="the refund's idempotencyKey (refundId)")
    verdict = sub.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--made", action="store_true", help="FlexFactor made it: record it")
    verdict.add_argument("--not-made", action="store_true", help="FlexFactor did not: give the hold back")
    sub.add_argument("--transaction-id", metavar="ID", help="FlexFactor's transaction id of the refund, if known")
    _json_option(sub)

    # -- report
    sub = command(
        commands,
        "report",
        report.report,
        "the recovery funnel, rescue rate, recovered amount and time to resolution, by CIT/MIT",
    )
    sub.add_argument("--since", type=_since, default=_since("7d"), help="a span (24h, 7d) or an ISO time; 7d")
    sub.add_argument("--until", type=_since, default=None, help="the window's end, as --since (default: now)")
    sub.add_argument("--max-read", type=_positive, default=200_000, help="table items read at most (200000)")
    _json_option(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    from decline_rescue.domain.carddata import redact_text

    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), printed by argparse
        return int(exc.code or 0) if isinstance(exc.code, int) else 2

    def fail(message: str, code: int = 1) -> int:
        err.write(redact_text(f"{PROG}: {message}") + "\n")
        return code

    from botocore.exceptions import BotoCoreError, ClientError

    from decline_rescue.domain.errors import DeclineRescueError
    from devstack.ops.target import activated, resolve

    try:
        target = resolve(
            stack=getattr(args, "stack", None),
            local=getattr(args, "local", False) or bool(getattr(args, "local_file", None)),
            local_file=getattr(args, "local_file", None),
            region=getattr(args, "region", None),
            profile=getattr(args, "profile", None),
        )
        with activated(target):
            return int(args.handler(target, args, Out(stdout)) or 0)
    except OpsError as exc:
        return fail(str(exc), exc.code)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return fail(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}")
    except BotoCoreError as exc:
        return fail(f"AWS could not be reached: {exc}")
    except DeclineRescueError as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        if stdout is None:
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
