"""The local runtime runs functions as Lambda does: concurrent invocations in separate
execution environments (processes) up to a limit, warm ones reused, and environments that
die mid-invocation (killed from outside, by the chaos switch, by the timeout) answered as
Lambda answers and replaced by fresh ones."""

from __future__ import annotations

import contextlib
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.environments import Chaos, FunctionWorker, Invocation
from devstack.pollers import SqsPoller
from devstack.provision import EventSourceMapping, FunctionSpec, _event_source_mapping
from devstack.stack import LocalStack, LogSink, StackConfig
from tests.conftest import queue_faults

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = "IssueCaptureContextFunction"  # no state of its own: each call is one Cybersource session
CAPTURE_EVENT = json.loads((ROOT / "events" / "issue_capture_context" / "post_default_fields.json").read_text())


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    log_file = tmp_path_factory.mktemp("stack") / "stack.log"
    config = StackConfig.ephemeral(echo_logs=False, log_file=log_file, function_concurrency=4, chaos=Chaos())
    stack = LocalStack(config)
    stack.start()
    yield stack
    stack.stop()


def post_capture_contexts(stack: LocalStack, count: int) -> list[tuple[int, int, float, float]]:
    """``count`` concurrent POST /capture-contexts: (status, pid, start, end) of each."""

    client = stack.client()

    def one(_: int) -> tuple[int, int, float, float]:
        started = time.monotonic()
        response = client.post("/capture-contexts")
        return response.status_code, int(response.headers["x-local-pid"]), started, time.monotonic()

    with client, ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def stats(stack: LocalStack, function: str = CAPTURE) -> dict:
    return stack.runtime_stats()[function]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# -- concurrency on the local stack ------------------------------------------------------


def test_concurrent_requests_run_in_separate_environments_up_to_the_limit(local_stack):
    # Given a function with one warm environment and a limit of 4, whose calls take 1 s
    # (the Cybersource emulator delays each session)
    assert local_stack.workers[CAPTURE].limit == 4
    assert stats(local_stack)["environments_started"] == 1
    queue_faults(local_stack.cybersource_url, "sessions", *[{"delay": 1}] * 4)

    # When 4 requests arrive at once through the gateway
    warm_up = post_capture_contexts(local_stack, 4)

    # Then the function scaled out to 4 environments, one process each
    assert [status for status, *_ in warm_up] == [201] * 4
    assert len({pid for _, pid, *_ in warm_up}) == 4
    assert stats(local_stack)["environments_started"] == 4

    # When 8 requests of 1 s arrive at once on the 4 warm environments
    queue_faults(local_stack.cybersource_url, "sessions", *[{"delay": 1}] * 8)
    started = time.monotonic()
    answers = post_capture_contexts(local_stack, 8)
    elapsed = time.monotonic() - started

    # Then they ran 4 at a time on the same 4 processes: two rounds of 1 s, no fifth
    # environment, and never more than 4 at once
    assert [status for status, *_ in answers] == [201] * 8
    pids = {pid for _, pid, *_ in answers}
    assert pids == {pid for _, pid, *_ in warm_up}
    assert 2.0 <= elapsed < 4.0, f"8 calls of 1 s on 4 environments took {elapsed:.2f} s"
    assert stats(local_stack)["environments_started"] == 4
    assert stats(local_stack)["peak_busy"] == 4
    overlapping = max(sum(1 for _, _, s, e in answers if s <= t < e) for _, _, t, _ in answers)
    assert overlapping >= 4


def test_sequential_invocations_reuse_one_warm_environment(local_stack):
    # Given warm environments of the function
    # When it is invoked three times in a row
    outcomes = [local_stack.invoke(CAPTURE, CAPTURE_EVENT) for _ in range(3)]

    # Then the same warm process served all three, one invocation after the other
    assert all(o.ok and o.result["statusCode"] == 201 for o in outcomes), outcomes
    assert len({o.pid for o in outcomes}) == 1
    assert [o.served for o in outcomes] == [outcomes[0].served + i for i in range(3)]
    assert not any(o.cold for o in outcomes)


def test_sqs_mappings_run_batches_concurrently_up_to_their_limit(local_stack):
    # Given the template's queue mappings (the declines queue: MaximumConcurrency 5)
    # Then each has as many pollers as the function may run at once, at most its maximum
    pollers = {p.mapping.function: p for p in local_stack.pollers if p.mapping.source == "sqs"}
    assert pollers["EvaluateDeclineFunction"].mapping.maximum_concurrency == 5
    assert pollers["EvaluateDeclineFunction"].concurrency == 4  # min(5, the 4 environments)
    assert pollers["ApplyOrderUpdateFunction"].concurrency == 4
    mapping = _event_source_mapping(
        "F", {"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q", "ScalingConfig": {"MaximumConcurrency": 2}}
    )
    assert mapping.maximum_concurrency == 2


# -- environments that die -----------------------------------------------------------------


def test_a_killed_environment_answers_an_exit_error_and_a_fresh_one_serves_next(local_stack):
    # Given a request in the function, waiting 2 s on Cybersource
    queue_faults(local_stack.cybersource_url, "sessions", {"delay": 2})
    client = local_stack.client()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/capture-contexts")
        time.sleep(0.5)

        # When its environment's process is SIGKILLed
        killed = local_stack.kill(CAPTURE, "busy")
        response = pending.result()

    # Then the request fails as API Gateway answers a function error, from that process
    assert killed is not None
    assert response.status_code == 502 and response.json() == {"message": "Internal server error"}
    assert response.headers["x-local-pid"] == str(killed)
    assert killed not in local_stack.workers[CAPTURE].pids()["idle"]
    assert stats(local_stack)["discarded_killed"] == 1

    # And the next request is served by another process
    again = client.post("/capture-contexts")
    assert again.status_code == 201 and again.headers["x-local-pid"] != str(killed)


def test_an_invocation_killed_mid_way_is_a_runtime_exit_error_and_the_next_is_a_cold_start(local_stack):
    # Given every idle environment of the function killed, and one invocation in flight
    worker = local_stack.workers[CAPTURE]
    before = set(worker.pids()["idle"])
    while local_stack.kill(CAPTURE, "any", wait=0) is not None:
        pass
    assert worker.pids() == {"busy": [], "idle": []}
    queue_faults(local_stack.cybersource_url, "sessions", {"delay": 2})
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(local_stack.invoke, CAPTURE, CAPTURE_EVENT)
        wait_until(lambda: worker.busy == 1)
        time.sleep(0.5)

        # When it is killed mid-invocation
        killed = local_stack.kill(CAPTURE, "busy")
        outcome: Invocation = pending.result()

    # Then the invocation is Lambda's function error for a runtime that exited
    assert not outcome.ok and outcome.pid == killed
    assert outcome.error_type == "Runtime.ExitError"
    assert outcome.result["errorMessage"].endswith("Runtime exited with error: signal: killed")

    # And the next invocation succeeds on a fresh process (a cold start)
    fresh = local_stack.invoke(CAPTURE, CAPTURE_EVENT)
    assert fresh.ok and fresh.result["statusCode"] == 201
    assert fresh.cold and fresh.pid not in before | {killed}
    log = local_stack.config.log_file.read_text()
    assert f'"pid": {killed}, "reason": "killed", "returncode": -9' in log


def test_chaos_kills_at_random_points_and_the_stack_keeps_serving(local_stack):
    # Given the chaos switch on for the function: half of its invocations armed, seeded
    local_stack.set_chaos(0.5, seed=20240611, functions=(CAPTURE,))
    client = local_stack.client()
    before = stats(local_stack).get("discarded_chaos", 0)

    # When callers ask for capture contexts, retrying a 502 as a client would
    statuses: list[list[int]] = []
    try:
        for _ in range(8):
            tries = []
            for _ in range(8):
                tries.append(client.post("/capture-contexts"))
                if tries[-1].status_code != 502:
                    break
            statuses.append([r.status_code for r in tries])
    finally:
        local_stack.set_chaos(0.0)

    # Then environments were killed mid-invocation, each at its own random point
    after = stats(local_stack)
    kills = after["discarded_chaos"] - before
    points = after["chaos_kills"]
    assert kills >= 2 and len(points) == kills, after
    assert len(set(points)) == len(points), points
    wait_until(lambda: local_stack.config.log_file.read_text().count('"local_runtime": "chaos-kill"') == kills)

    # And every caller got its capture context in the end; with chaos off nothing dies
    assert all(tries[-1] == 201 for tries in statuses), statuses
    assert sum(tries.count(502) for tries in statuses) == kills
    assert [s for s, *_ in post_capture_contexts(local_stack, 4)] == [201] * 4
    assert stats(local_stack)["discarded_chaos"] == after["discarded_chaos"]


def test_a_queue_batch_whose_environment_dies_is_delivered_again(local_stack, tmp_path):
    # Given a queue with a dead-letter queue, and a function polled from it by 2 pollers
    sqs = local_stack.aws_client("sqs")
    dlq_url = sqs.create_queue(QueueName="runtime-test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    url = sqs.create_queue(QueueName="runtime-test", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    calls: list[tuple[str, Invocation, float, float]] = []
    lock = threading.Lock()

    def invoke(function: str, event: dict) -> Invocation:
        started = time.monotonic()
        outcome = worker.invoke(event)
        with lock:
            calls.append((event["Records"][0]["messageId"], outcome, started, time.monotonic()))
        return outcome

    mapping = EventSourceMapping("Slow", arn, 1, True, 0)
    with slow_function(tmp_path, timeout=10, concurrency=2) as worker:
        poller = SqsPoller(mapping, sqs, invoke, retry_delay=1, concurrency=2)
        for n in range(2):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"sleep": 1.5, "n": n}))

        # When both batches are in the function at once and one environment is killed
        poller.start()
        try:
            wait_until(lambda: worker.busy == 2)
            time.sleep(0.3)
            killed = worker.kill("busy")
            wait_until(lambda: sum(1 for c in calls if c[1].ok) >= 2, timeout=20)
        finally:
            poller.stop()

    # Then the two batches ran concurrently in two processes
    first_two = sorted(calls, key=lambda c: c[2])[:2]
    assert first_two[0][1].pid != first_two[1][1].pid
    assert first_two[1][2] < first_two[0][3], "the second batch started before the first ended"

    # And the killed batch failed as a function error, was delivered again and succeeded;
    # nothing is left in the queue or dead-lettered
    failed = [c for c in calls if not c[1].ok]
    assert len(failed) == 1 and failed[0][1].pid == killed
    assert failed[0][1].error_type == "Runtime.ExitError"
    assert sorted(c[0] for c in calls if c[1].ok) == sorted({c[0] for c in calls})
    assert failed[0][0] in {c[0] for c in calls if c[1].ok}
    for queue in (url, dlq_url):
        counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessages"] == "0" and counts["ApproximateNumberOfMessagesNotVisible"] == "0"


# -- one function's pool, without the stack ------------------------------------------------

SLOW = """
import json
import os
import signal
import time


def handler(event, context):
    for record in event.get("Records", [event]):
        task = json.loads(record["body"]) if "body" in record else record
        if task.get("block_alarm"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            time.sleep(task.get("sleep", 0))
        finally:
            if task.get("mark"):
                open(task["mark"], "w").write("the handler was unwound")
    return {"pid": os.getpid()}
"""


@contextlib.contextmanager
def slow_function(
    tmp_path: Path, timeout: int = 1, concurrency: int = 4, reserved: int | None = None
) -> Iterator[FunctionWorker]:
    """A function's pool of environments, on its own: the handler sleeps as asked."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW))
    spec = FunctionSpec("Slow", "slow-fn", "slow.handler", str(tmp_path), [], {}, timeout, 128, "", reserved)
    logs = LogSink(tmp_path / "log", echo=False)
    worker = FunctionWorker(spec, {"PATH": "/usr/bin:/bin"}, logs, concurrency=concurrency)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
        logs.drain()
        logs.close()


def test_a_timeout_ends_the_environment_without_unwinding_the_handler(tmp_path):
    # Given a function with a 1 s timeout
    with slow_function(tmp_path) as worker:
        (first,) = worker.pids()["idle"]

        # When an invocation runs past it
        started = time.monotonic()
        outcome = worker.invoke({"sleep": 5, "mark": str(tmp_path / "unwound")})

        # Then it is Lambda's timeout, at the timeout; the handler's finally never ran
        assert not outcome.ok and outcome.error_type == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in outcome.result["errorMessage"]
        assert time.monotonic() - started < 2.5
        assert not (tmp_path / "unwound").exists()

        # And the next invocation runs in a fresh environment
        again = worker.invoke({})
        assert again.ok and again.cold and again.pid != first
        assert worker.stats["discarded_timeout"] == 1


def test_a_stuck_environment_is_killed_at_the_timeout_and_replaced(tmp_path):
    # Given a function with a 1 s timeout whose handler blocks the timeout's signal
    with slow_function(tmp_path) as worker:
        (first,) = worker.pids()["idle"]

        # When it runs past the timeout
        started = time.monotonic()
        outcome = worker.invoke({"sleep": 30, "block_alarm": True})

        # Then the stack kills it shortly after the timeout and answers Lambda's timeout
        assert not outcome.ok and outcome.error_type == "Sandbox.Timedout"
        assert time.monotonic() - started < 5.0
        assert worker.invoke({}).pid != first


def test_reserved_concurrency_lowers_the_limit_and_zero_throttles(tmp_path):
    # Given a function that reserves 2 concurrent executions, on a local limit of 4
    with slow_function(tmp_path / "two", concurrency=4, reserved=2) as worker:
        # When 4 invocations of 0.5 s arrive at once
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda _: worker.invoke({"sleep": 0.5}), range(4)))

        # Then 2 ran at a time, in 2 environments
        assert worker.limit == 2 and all(o.ok for o in outcomes)
        assert len({o.pid for o in outcomes}) == 2
        assert time.monotonic() - started >= 1.0
        assert worker.stats["peak_busy"] == 2

    # And a function reserving 0 is throttled, as Lambda throttles it
    with slow_function(tmp_path / "zero", reserved=0) as worker:
        outcome = worker.invoke({})
        assert not outcome.ok and outcome.error_type == "TooManyRequestsException"
