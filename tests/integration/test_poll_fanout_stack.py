"""The poller's fan-out on the local stack, as Lambda runs it: the schedule's dispatcher puts
one work item per shard on the poll-work queue; the queue's event source mapping runs poll
workers at once (MaximumConcurrency, the function's execution environments in separate
processes); every due order is polled once, none starved, and FlexFactor is asked about
each one once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devstack import samples
from devstack.stack import LocalStack, StackConfig

ORDERS = 48


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig.ephemeral(
        echo_logs=False,
        log_file=tmp_path_factory.mktemp("fanout") / "stack.log",
        schedule_seconds=3600,  # the test ticks the dispatcher itself
        parameter_overrides={"PollWorkers": "4"},
    )
    config.function_concurrency = 4
    with LocalStack(config) as local:
        yield local


def _states(stack: LocalStack, order_ids: list[str]) -> dict[str, dict]:
    ddb = stack.aws_client("dynamodb")
    table = stack.stack.physical_ids["OrdersTable"]
    out = {}
    for order_id in order_ids:
        item = ddb.get_item(TableName=table, Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}})["Item"]
        out[order_id] = item
    return out


def test_a_backlog_over_every_shard_is_reconciled_by_parallel_workers_once_each(stack):
    # Given pending customer-initiated orders (CAPTUREREQUIRED at FlexFactor) over every shard, all due
    order_ids = []
    with stack.client("checkout") as client:
        for _ in range(ORDERS):
            answer = client.post("/declines", json=samples.decline(transactionType="AUTHORIZATION"))
            assert answer.status_code == 200, answer.text
            order_ids.append(answer.json()["orderId"])
    ddb = stack.aws_client("dynamodb")
    table = stack.stack.physical_ids["OrdersTable"]
    due = datetime.now(UTC) - timedelta(minutes=5)
    for i, order_id in enumerate(order_ids):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}},
            UpdateExpression="SET nextPollAt = :p",
            ExpressionAttributeValues={":p": {"S": _iso(due + timedelta(seconds=i))}},
        )
    shards = {item["pendingShard"]["S"] for item in _states(stack, order_ids).values()}
    assert len(shards) == 8, shards
    # FlexFactor answers each lookup 0.15 s late: a work item takes a while, so they overlap
    flex = stack.flexfactor_url
    httpx.post(flex + "/__emulator/faults", json={"endpoint": "orders", "faults": [{"delay": 0.15}] * ORDERS})
    asked_before = httpx.get(flex + "/__emulator/stats").json()["counts"].get("get_order", 0)

    # When the schedule ticks, twice at once (a duplicate dispatch: no order may be polled twice)
    (first,) = stack.tick("DispatchPollsFunction")
    (second,) = stack.tick("DispatchPollsFunction")
    assert first[0] and first[1]["dispatched"] == 8 and second[1]["dispatched"] == 8

    # Then every order is polled exactly once, by workers running at the same time
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        polls = [int(s.get("polls", {}).get("N", "0")) for s in _states(stack, order_ids).values()]
        if all(p >= 1 for p in polls):
            break
        time.sleep(0.5)
    time.sleep(1.0)  # anything still running would show as a second poll
    polls = [int(s.get("polls", {}).get("N", "0")) for s in _states(stack, order_ids).values()]
    assert polls == [1] * ORDERS, polls
    asked = httpx.get(flex + "/__emulator/stats").json()["counts"]["get_order"] - asked_before
    assert asked == ORDERS  # FlexFactor was asked about each order once
    stats = stack.runtime_stats()["PollOrdersFunction"]
    assert stats["peak_busy"] >= 2, stats  # two or more invocations of the worker at once
    # and nothing is left to do: the orders are due again only after their backoff
    for state in _states(stack, order_ids).values():
        assert state["nextPollAt"]["S"] > _iso(datetime.now(UTC))
    httpx.delete(flex + "/__emulator/faults")
