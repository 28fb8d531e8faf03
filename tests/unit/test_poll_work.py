"""The poller's work items (what the dispatcher and the workers put on the poll-work
queue) and the provider calls a worker measures in batches: exact shapes written here."""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from decline_rescue.domain.errors import ProviderUnavailable
from decline_rescue.runtime.observability import EMF_MAX_VALUES, batched_provider_calls, provider_call
from decline_rescue.services.polling import WorkItem
from tests.integration.test_recovery_metrics import of, records

KEY = {
    "pk": {"S": "ORDER#a"},
    "sk": {"S": "STATE"},
    "pendingShard": {"S": "P3"},
    "nextPollAt": {"S": "2026-12-02T10:00:00.000Z"},
}


def test_a_work_item_round_trips_and_its_siblings_and_rests_are_bounded():
    item = WorkItem("P3", "2026-12-02T10:01:00.000Z")
    assert item.to_message() == {"v": 1, "shard": "P3", "dueBy": "2026-12-02T10:01:00.000Z", "hops": 0}
    sibling = item.sibling(KEY)
    assert sibling == WorkItem("P3", item.due_by, KEY, None, 1)
    rest = sibling.rest("2026-12-02T10:00:30.000Z")
    assert rest == WorkItem("P3", item.due_by, KEY, "2026-12-02T10:00:30.000Z", 2)
    assert rest.bound == "2026-12-02T10:00:30.000Z" and item.bound == item.due_by
    # a rest's bound never goes past the dispatch's instant
    assert WorkItem("P3", "2026-12-02T10:01:00.000Z", None, "2026-12-02T11:00:00.000Z").bound == item.due_by
    for work in (item, sibling, rest):
        assert WorkItem.from_message(json.dumps(work.to_message())) == work


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[]", "not a poll work item"),
        ('{"v": 2, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z"}', "not a poll work item"),
        ('{"v": 1, "shard": "X1", "dueBy": "2026-12-02T10:00:00Z"}', "shard must be P<n>"),
        ('{"v": 1, "shard": "P1"}', "dueBy is required"),
        ('{"v": 1, "shard": "P1", "dueBy": "soon"}', "dueBy must be an ISO 8601 time"),
        ('{"v": 1, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z", "until": 5}', "until must be an ISO 8601 time"),
        ('{"v": 1, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z", "hops": -1}', "hops must be a non-negative"),
        ('{"v": 1, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z", "hops": true}', "hops must be a non-negative"),
        ('{"v": 1, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z", "start": {"pk": {"N": "1"}}}', "start must be"),
        ('{"v": 1, "shard": "P1", "dueBy": "2026-12-02T10:00:00Z", "start": {}}', "start must be"),
    ],
)
def test_a_malformed_work_item_is_refused_naming_why(body, why):
    with pytest.raises(ValueError, match=why):
        WorkItem.from_message(body)


@provider_call("flexfactor", "get_order")
def _lookup(fail: bool) -> str:
    if fail:
        raise ProviderUnavailable("flexfactor", "down")
    return "ok"


def test_lookups_in_a_batch_are_printed_together_from_every_thread(capsys, monkeypatch):
    monkeypatch.setenv("STACK_NAME", "test-stack")
    calls = 2 * EMF_MAX_VALUES + 5  # three records: 99, 99 and 5 values
    with batched_provider_calls(), ThreadPoolExecutor(4) as pool:
        assert capsys.readouterr().out == ""

        def one(i: int) -> str:
            try:
                return _lookup(i % 10 == 0)
            except ProviderUnavailable:
                return "failed"

        # each task runs in a copy of this thread's context, taken when it is submitted (as the worker does)
        answers = [f.result() for f in [pool.submit(contextvars.copy_context().run, one, i) for i in range(calls)]]
        assert capsys.readouterr().out == ""  # nothing printed while the batch is open
    assert answers.count("failed") == 21 and answers.count("ok") == calls - 21
    found = records(capsys.readouterr().out)
    latency = of(found, "ProviderLatency", Provider="flexfactor", Operation="get_order")
    errors = of(found, "ProviderErrors", Provider="flexfactor", Operation="get_order")
    assert sorted(len(r["value"]) for r in latency) == [5, 99, 99]
    assert sum(sum(r["value"]) for r in errors) == 21 and sum(len(r["value"]) for r in errors) == calls


def test_outside_a_batch_each_call_is_printed_at_once(capsys):
    assert _lookup(False) == "ok"
    (latency,) = of(records(capsys.readouterr().out), "ProviderLatency")
    assert len(latency["value"]) == 1
