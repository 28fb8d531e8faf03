"""decline-rescue, the operator's CLI (``devstack.ops``), against a stack of its own
provisioned from template.yaml into the session's moto server (the functions' handlers
run in this process, as the other integration tests run them), against a deployed-like
stack found through moto's CloudFormation, and end to end on a local stack.

The CLI runs in this process (``main(argv, stdout=, stderr=)``) except where the console
script itself is the point; a moto-only stack describes itself to ``--local`` in a file as
the local stack does (``devstack.ops.localstate``)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from decline_rescue.domain.carddata import find_pans
from decline_rescue.domain.updates import Change
from decline_rescue.runtime import wiring
from devstack import samples
from devstack.ops import dlq as dlq_module
from devstack.ops import localstate
from devstack.ops.cli import main
from devstack.provision import Provisioner
from tests.conftest import TEST_SITE_ID, TEST_WEBHOOK_KEY, aws_client, load_handler, reset_module_state
from tests.integration.test_declines import post as post_decline
from tests.integration.test_order_updates import apply, payload, raw, webhook_event
from tests.integration.test_order_updates import post as post_webhook

ROOT = Path(__file__).resolve().parents[2]
PAN = "4111111111111111"
EVALUATE, INGEST, APPLY = "EvaluateDeclineFunction", "IngestWebhookFunction", "ApplyOrderUpdateFunction"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- a stack of the CLI's own in moto ----------------------------------------------------


@pytest.fixture(scope="module")
def ops(moto_url, cybersource, flexfactor, tmp_path_factory):
    """template.yaml provisioned under a stack name of its own (its own table and queues:
    nothing else writes there), described in a file as `make local` describes its stack."""
    from devstack.emulators.cybersource import TESTREST_KEY_ID, TESTREST_MERCHANT_ID, TESTREST_SHARED_SECRET
    from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET

    name = f"ops-{uuid.uuid4().hex[:8]}"
    parameters = {
        "Stage": "ops",
        "CybersourceBaseUrl": cybersource[1],
        "FlexFactorBaseUrl": flexfactor[1],
        "AmountMinExclusiveCents": "10",
    }
    stack = Provisioner(moto_url, name, parameters).provision()
    secrets = aws_client(moto_url, "secretsmanager")
    secrets.put_secret_value(
        SecretId=stack.physical_ids["FlexFactorSecret"],
        SecretString=json.dumps(
            {
                "appKey": DEFAULT_APP_KEY,
                "appSecret": DEFAULT_APP_SECRET,
                "mid": "ops-mid",
                "siteId": TEST_SITE_ID,
                "webhookSubscriberKey": TEST_WEBHOOK_KEY,
            }
        ),
    )
    secrets.put_secret_value(
        SecretId=stack.physical_ids["CybersourceSecret"],
        SecretString=json.dumps(
            {"merchantId": TESTREST_MERCHANT_ID, "keyId": TESTREST_KEY_ID, "sharedSecret": TESTREST_SHARED_SECRET}
        ),
    )
    state_file = tmp_path_factory.mktemp("ops") / "stack.json"
    localstate.write(
        state_file,
        {
            "pid": os.getpid(),
            "stackName": name,
            "region": "us-east-1",
            "endpoints": {"aws": moto_url},
            "physicalIds": {k: v for k, v in stack.physical_ids.items() if isinstance(v, str)},
            "parameters": parameters,
        },
    )
    return SimpleNamespace(stack=stack, name=name, file=str(state_file), moto_url=moto_url)


@pytest.fixture
def ops_env(monkeypatch, ops):
    """A function of the CLI's stack, with its template environment (as conftest's
    function_env does for the session's stack)."""

    def use(logical_id: str):
        spec = ops.stack.functions[logical_id]
        env = {
            **spec.environment,
            "AWS_ENDPOINT_URL": ops.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "FLEXFACTOR_BACKOFF_SECONDS": "0.01",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_module_state()
        return load_handler(spec.code_dir, logical_id)

    yield use
    reset_module_state()


def cli(ops, *argv: str) -> tuple[int, str, str]:
    return run("--local-file", ops.file, *argv)


def decline(ops_env, **changes) -> dict:
    """A customer-initiated decline through POST /declines of the CLI's stack: its answer."""
    module = ops_env(EVALUATE)
    body = samples.decline(**changes)
    status, answer = post_decline(module, body)
    assert status == 200, answer
    return answer


def queue_url(ops, logical_id: str) -> str:
    return ops.stack.physical_ids[logical_id]


def drain(ops, logical_id: str) -> list[dict]:
    sqs = aws_client(ops.moto_url, "sqs")
    url = queue_url(ops, logical_id)
    out: list[dict] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return out
        out += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# -- orders ------------------------------------------------------------------------------


def test_orders_show_sets_ours_beside_flexfactors_and_list_filters_newest_first(ops, ops_env):
    approved = decline(ops_env, last4="4242", bin6="424242", brand="VISA")
    capture = decline(ops_env, transactionType="AUTHORIZATION")
    assert (approved["status"], capture["status"]) == ("APPROVED", "CAPTUREREQUIRED")

    code, out, err = cli(ops, "orders", "show", approved["orderId"])
    assert (code, err) == (0, "")
    status_line = next(line for line in out.splitlines() if line.startswith("status"))
    assert status_line.split()[1:3] == ["APPROVED", "APPROVED"]  # ours, then FlexFactor's (7 COMPLETED)
    assert approved["orderSessionKey"] in out
    assert "verdict: in agreement" in out
    assert "RECEIVED -> APPROVED" in out and "- -> RECEIVED" in out  # the history, oldest first
    assert "events: this local stack names no gateway" in out

    code, out, _ = cli(ops, "orders", "show", capture["orderId"], "--json")
    shown = json.loads(out)
    assert shown["order"]["status"] == "CAPTUREREQUIRED"
    assert shown["flexfactor"]["id"] == capture["orderSessionKey"]
    assert shown["flexfactor"]["referenceNumber"] == capture["orderId"]
    assert [h["status"] for h in shown["order"]["history"]] == ["RECEIVED", "CAPTUREREQUIRED"]

    code, out, _ = cli(ops, "orders", "list", "--status", "capturerequired", "--since", "1h", "--json")
    listed = json.loads(out)
    ids = [o["orderId"] for o in listed["orders"]]
    assert code == 0 and capture["orderId"] in ids and approved["orderId"] not in ids
    assert {o["status"] for o in listed["orders"]} == {"CAPTUREREQUIRED"}

    code, out, _ = cli(ops, "orders", "list", "--since", "1h")
    assert code == 0
    assert out.index(capture["orderId"]) < out.index(approved["orderId"])  # newest first
    assert "read " in out.splitlines()[-1]

    code, _, err = cli(ops, "orders", "list", "--status", "NOPE")
    assert code == 2 and "unknown status NOPE" in err


def test_resync_polls_flexfactor_now_and_applies_through_the_writer(ops, ops_env):
    capture = decline(ops_env, transactionType="AUTHORIZATION")
    order_id, key = capture["orderId"], capture["orderSessionKey"]
    # FlexFactor moves on (captured there) and its webhook never reaches us
    ops_env(EVALUATE)
    answer = wiring.flexfactor().capture(
        idempotency_key=str(uuid.uuid4()), order_session_key=key, amount=1999, currency="USD"
    )
    assert answer.ok, answer
    assert wiring.orders().get_state(order_id)["status"] == "CAPTUREREQUIRED"

    code, out, _ = cli(ops, "orders", "show", order_id)
    assert code == 0 and f"verdict: FlexFactor is ahead (APPROVED): `decline-rescue orders resync {order_id}`" in out

    code, out, err = cli(ops, "orders", "resync", order_id)
    assert (code, err) == (0, "")
    assert "FlexFactor has news" in out
    assert "update    APPROVED (FlexFactor: 7 COMPLETED): applied" in out
    assert "after     APPROVED (version 3): changed" in out
    state, history = wiring.orders().get_with_history(order_id)
    assert (state["status"], state["version"], state["lastSource"]) == ("APPROVED", 3, "poll")
    assert "nextPollAt" not in state  # ended: off the pending index
    assert [h.get("source") for h in history if h.get("changeId")] == ["api", "api", "poll"]

    code, out, _ = cli(ops, "orders", "resync", order_id, "--json")
    assert code == 0 and json.loads(out)["outcome"] == "final"
    assert wiring.orders().get_state(order_id)["version"] == 3


def test_resync_due_only_makes_a_pending_order_due(ops, ops_env):
    challenge = decline(ops_env, last4="0259", bin6="400000", brand="VISA")
    before = wiring.orders().get_state(challenge["orderId"])
    assert before["status"] == "CHALLENGE" and before["nextPollAt"] > datetime.now(UTC).isoformat()
    code, out, _ = cli(ops, "orders", "resync", challenge["orderId"], "--due", "--json")
    result = json.loads(out)
    assert code == 0 and result["outcome"] == "due"
    after = wiring.orders().get_state(challenge["orderId"])
    assert after["nextPollAt"] < before["nextPollAt"] and after["version"] == before["version"]


def test_unknown_orders_webhooks_and_stacks_are_clear_errors(ops, ops_env, tmp_path, monkeypatch):
    ops_env(APPLY)
    environment = dict(os.environ)
    for argv in (("orders", "show", "ord-nobody"), ("orders", "resync", "ord-nobody")):
        code, out, err = cli(ops, *argv)
        assert (code, out) == (1, "")
        assert err == "decline-rescue: unknown order: no order 'ord-nobody'\n"
    assert dict(os.environ) == environment  # the command's settings are gone with it
    code, _, err = cli(ops, "webhooks", "replay", "feedface")
    assert code == 1 and "unknown webhook: no delivery with nonce 'feedface'" in err
    code, _, err = cli(ops, "webhooks", "show", "feedface")
    assert code == 1 and "unknown webhook" in err

    # no local stack: no file, or a file left by a stack whose process is gone
    code, _, err = run("--local-file", str(tmp_path / "none.json"), "report")
    assert code == 1 and "no local stack running" in err and "make local" in err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "stale.json"
    localstate.write(stale, {"pid": dead.pid, "endpoints": {"aws": ops.moto_url}})
    code, _, err = run("--local-file", str(stale), "orders", "list")
    assert code == 1 and f"process {dead.pid} is gone" in err

    # no stack named, both named, no such stack
    code, _, err = run("report")
    assert code == 2 and "which stack?" in err
    code, _, err = run("--local", "--stack", "x", "report")
    assert code == 2 and "exclude each other" in err
    for name, value in {"AWS_ENDPOINT_URL": ops.moto_url, "AWS_ACCESS_KEY_ID": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    code, out, err = run("--stack", "no-such-stack", "--region", "us-east-1", "orders", "list")
    assert (code, out, err) == (1, "", "decline-rescue: no such stack: no-such-stack in us-east-1\n")


# -- dead-letter queues ---------------------------------------------------------------------


def test_dlq_list_show_redrive_moves_each_message_back_exactly_once_and_never_prints_a_card(ops):
    sqs = aws_client(ops.moto_url, "sqs")
    dlq, source = queue_url(ops, "DeclinesDeadLetterQueue"), queue_url(ops, "DeclinesQueue")
    drain(ops, "DeclinesDeadLetterQueue")
    drain(ops, "DeclinesQueue")
    with_card = samples.decline(mit=True)
    with_card["paymentMethod"]["cardNumber"] = PAN  # what a billing system must never send
    with_card["paymentMethod"]["cvv"] = "737"
    with_card["note"] = f"card {PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]}"
    plain = samples.decline(mit=True)
    invalid = {"rejected": {"orderId": "mit-bad"}, "error": {"code": "card_number_not_allowed"}, "messageId": "m-1"}
    ids = {}
    for name, body, attributes in (
        ("card", with_card, {"orderId": {"DataType": "String", "StringValue": with_card["orderId"]}}),
        ("plain", plain, {"orderId": {"DataType": "String", "StringValue": plain["orderId"]}}),
        ("invalid", invalid, {"reason": {"DataType": "String", "StringValue": "invalid"}}),
    ):
        ids[name] = sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(body), MessageAttributes=attributes)[
            "MessageId"
        ]

    code, out, _ = cli(ops, "dlq", "list", "declines")
    assert code == 0 and "3 visible" in out
    assert all(ids[n] in out for n in ids) and "invalid: card_number_not_allowed" in out
    code, listed, _ = cli(ops, "dlq", "list", "declines", "--json")
    assert code == 0 and {m["messageId"] for m in json.loads(listed)["messages"]} == set(ids.values())
    code, shown, _ = cli(ops, "dlq", "show", "declines", ids["card"])
    assert code == 0 and "[REDACTED" in shown and with_card["orderId"] in shown
    code, shown_json, _ = cli(ops, "dlq", "show", "declines", ids["card"], "--json")
    assert json.loads(shown_json)["body"]["paymentMethod"]["cardNumber"] == "[REDACTED]"
    assert '"cvv": "[REDACTED]"' in shown and "737" not in shown + shown_json
    for text in (out, listed, shown, shown_json):
        assert find_pans(text) == [] and PAN not in text.replace(" ", "")
    code, _, err = cli(ops, "dlq", "show", "declines", "no-such-message")
    assert code == 1 and "no message no-such-message in the declines DLQ" in err

    # one at a time with --max (the loop): sent to the source queue, then deleted from the DLQ
    code, out, _ = cli(ops, "dlq", "redrive", "declines", "--max", "1", "--json")
    first = json.loads(out)
    assert (code, first["method"], first["moved"]) == (0, "loop", 1)
    assert first["leftInDlq"] == 2
    # all the rest: moto has no message move task, so the loop does it; the invalid one stays
    code, out, _ = cli(ops, "dlq", "redrive", "declines")
    assert code == 0
    assert "message move task is not available here" in out
    assert "declines: 1 message(s) moved back to DeclinesQueue (loop)" in out
    assert "1 left in the DLQ: dead-lettered as invalid" in out
    code, out, _ = cli(ops, "dlq", "redrive", "declines", "--method", "loop", "--json")
    assert (code, json.loads(out)["moved"], json.loads(out)["leftInvalid"]) == (0, 0, 1)

    moved = drain(ops, "DeclinesQueue")
    assert sorted(m["Body"] for m in moved) == sorted([json.dumps(with_card), json.dumps(plain)])  # each once
    assert {m["MessageAttributes"]["redriveOf"]["StringValue"] for m in moved} == {ids["card"], ids["plain"]}
    assert {m["MessageAttributes"]["orderId"]["StringValue"] for m in moved} == {with_card["orderId"], plain["orderId"]}
    left = drain(ops, "DeclinesDeadLetterQueue")
    assert [m["MessageId"] for m in left] == [ids["invalid"]]
    assert (
        sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "0"
    )

    code, _, err = cli(ops, "dlq", "redrive", "events-failure")
    assert code == 1 and "events-failure has no source queue" in err
    code, _, err = cli(ops, "dlq", "redrive", "declines", "--max", "2", "--method", "move-task")
    assert code == 2 and "--max bounds the loop" in err


def test_redrive_follows_sqs_message_move_task_where_the_endpoint_has_it():
    """The move-task path (moto has none) against botocore's Stubber: started from the DLQ
    to its source queue, followed until it completes; an endpoint without it says so."""
    import boto3
    from botocore.stub import Stubber

    def client():
        return boto3.client(
            "sqs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )

    sqs, mover = client(), client()
    dlq_url, source_url = "https://sqs.us-east-1.amazonaws.com/1/dlq", "https://sqs.us-east-1.amazonaws.com/1/src"
    dlq_arn, source_arn = "arn:aws:sqs:us-east-1:1:dlq", "arn:aws:sqs:us-east-1:1:src"
    with Stubber(sqs) as queues, Stubber(mover) as moves:
        queues.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": dlq_arn}},
            {"QueueUrl": dlq_url, "AttributeNames": ["QueueArn"]},
        )
        queues.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": source_arn}},
            {"QueueUrl": source_url, "AttributeNames": ["QueueArn"]},
        )
        moves.add_response(
            "start_message_move_task", {"TaskHandle": "task-1"}, {"SourceArn": dlq_arn, "DestinationArn": source_arn}
        )
        running = {
            "TaskHandle": "task-1",
            "Status": "RUNNING",
            "SourceArn": dlq_arn,
            "ApproximateNumberOfMessagesMoved": 3,
        }
        done = {"Status": "COMPLETED", "SourceArn": dlq_arn, "ApproximateNumberOfMessagesMoved": 7}
        queues.add_response("list_message_move_tasks", {"Results": [running]}, {"SourceArn": dlq_arn, "MaxResults": 10})
        queues.add_response("list_message_move_tasks", {"Results": [done]}, {"SourceArn": dlq_arn, "MaxResults": 10})
        result = dlq_module.move_task(sqs, mover, dlq_url, source_url, wait=30)
        assert result == {
            "method": "move-task",
            "taskHandle": "task-1",
            "status": "COMPLETED",
            "moved": 7,
            "toMove": None,
        }
    with Stubber(sqs) as queues, Stubber(mover) as moves:
        for url, arn in ((dlq_url, dlq_arn), (source_url, source_arn)):
            queues.add_response(
                "get_queue_attributes",
                {"Attributes": {"QueueArn": arn}},
                {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
            )
        moves.add_client_error(
            "start_message_move_task", service_error_code="UnsupportedOperation", http_status_code=400
        )
        with pytest.raises(dlq_module.MoveTaskUnavailable):
            dlq_module.move_task(sqs, mover, dlq_url, source_url, wait=30)


# -- webhooks ------------------------------------------------------------------------------


def test_webhooks_list_shows_what_came_and_replay_requeues_it_for_the_writer(ops, ops_env):
    capture = decline(ops_env, transactionType="AUTHORIZATION")
    order_id = capture["orderId"]
    drain(ops, "OrderUpdatesQueue")
    body = payload("order.completed", ExternalOrderId=order_id, OrderId=capture["orderSessionKey"])
    nonce = uuid.uuid4().hex
    ingest = ops_env(INGEST)
    assert post_webhook(ingest, webhook_event(raw(body), nonce=nonce)) == (200, {"received": True, "queued": True})
    lost = drain(ops, "OrderUpdatesQueue")  # the queued update is lost: the writer never saw it
    assert len(lost) == 1

    code, out, _ = cli(ops, "webhooks", "list", "--since", "10m")
    row = next(line for line in out.splitlines() if nonce in line)
    assert code == 0 and row.split()[2:5] == ["order.completed", order_id, "queued"] and row.split()[5] == "-"
    code, out, _ = cli(ops, "webhooks", "list", "--order", order_id, "--json")
    assert [w["nonce"] for w in json.loads(out)["webhooks"]] == [nonce]
    code, out, _ = cli(ops, "webhooks", "show", nonce)
    assert code == 0 and "x-fc-nonce" in out and '"Event": "order.completed"' in out

    # replayed: queued again for the writer, which applies it now ...
    code, out, err = cli(ops, "webhooks", "replay", nonce, "--wait", "0")
    assert (code, err) == (0, "") and "queued for the writer again" in out
    replayed = drain(ops, "OrderUpdatesQueue")
    assert [json.loads(m["Body"])["updateId"] for m in replayed] == [f"webhook:{nonce}"]
    apply(ops_env(APPLY), *[m["Body"] for m in replayed])
    state = wiring.orders().get_state(order_id)
    assert (state["status"], state["version"]) == ("APPROVED", 3)
    kept = wiring.orders().delivery(nonce)
    assert kept["result"] == "applied" and kept["replayedAt"]
    # ... and a second replay changes nothing: the writer records it as a duplicate
    code, out, _ = cli(ops, "webhooks", "replay", nonce, "--wait", "0", "--json")
    assert code == 0 and json.loads(out)["previousResult"] == "applied"
    apply(ops_env(APPLY), *[m["Body"] for m in drain(ops, "OrderUpdatesQueue")])
    assert wiring.orders().get_state(order_id)["version"] == 3
    assert wiring.orders().delivery(nonce)["result"] == "duplicate"
    code, out, _ = cli(ops, "webhooks", "list", "--order", order_id)
    assert "duplicate" in next(line for line in out.splitlines() if nonce in line)


# -- the report ------------------------------------------------------------------------------


def _write_order(order_id: str, *, mit: bool, amount: int, currency: str, changes: list[tuple[str, float, dict]]):
    """An order written by the store as the writer writes it: each change at a known time."""
    table = wiring.orders()
    previous = None
    for version, (status, at, detail) in enumerate(changes, start=1):
        change = Change(
            order_id,
            previous,
            status,
            version,
            "api",
            at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            detail or None,
        )
        if version == 1:
            table.commit(change, order={"amount": amount, "currency": currency, "isMIT": mit}, next_poll_at=None)
        else:
            table.commit(change, next_poll_at=None)
        previous = status


def test_report_counts_a_known_set_of_orders(ops, ops_env):
    ops_env(APPLY)
    base = datetime(2021, 3, 1, 12, 0, tzinfo=UTC)  # a window nothing else wrote into

    def at(seconds: float) -> datetime:
        return base + timedelta(seconds=seconds)

    never = {"rule": "issuer_never_approves"}
    tag = uuid.uuid4().hex[:6]
    known = {
        # CIT: 10 s to resolution; approved at once (0 s); not submitted; declined after 30 s; waiting
        "a": (False, 1000, "USD", [("RECEIVED", at(0), {}), ("SUBMITTED", at(1), {}), ("APPROVED", at(11), {})]),
        "b": (False, 2500, "EUR", [("RECEIVED", at(60), {}), ("APPROVED", at(62), {})]),
        "c": (False, 1999, "USD", [("RECEIVED", at(120), {}), ("NOT_SUBMITTED", at(120.5), never)]),
        "d": (False, 1999, "USD", [("RECEIVED", at(180), {}), ("CHALLENGE", at(181), {}), ("DECLINED", at(211), {})]),
        "h": (False, 1999, "USD", [("RECEIVED", at(240), {})]),
        # MIT: 120 s to resolution; expired in the queue; pending
        "e": (
            True,
            1999,
            "USD",
            [
                ("QUEUED", at(300), {}),
                ("SUBMITTED", at(305), {}),
                ("PROCESSING", at(365), {}),
                ("APPROVED", at(425), {}),
            ],
        ),
        "f": (True, 1999, "USD", [("QUEUED", at(360), {}), ("NOT_SUBMITTED", at(400), {"rule": "expired"})]),
        "g": (True, 1999, "USD", [("QUEUED", at(420), {}), ("SUBMITTED", at(425), {})]),
        # received before the window: not counted
        "old": (False, 5000, "USD", [("RECEIVED", at(-7200), {}), ("APPROVED", at(-7190), {})]),
    }
    for name, (mit, amount, currency, changes) in known.items():
        _write_order(f"rep-{tag}-{name}", mit=mit, amount=amount, currency=currency, changes=changes)

    window = ("--since", "2021-03-01T11:00:00Z", "--until", "2021-03-01T13:00:00Z")
    code, out, err = cli(ops, "report", *window, "--json")
    assert (code, err) == (0, "")
    paths = json.loads(out)["paths"]
    assert {
        p: (f["received"], f["submitted"], f["notSubmitted"], f["waiting"], f["pending"]) for p, f in paths.items()
    } == {
        "all": (8, 5, 2, 1, 1),
        "CIT": (5, 3, 1, 1, 0),
        "MIT": (3, 2, 1, 0, 1),
    }
    assert paths["all"]["notSubmittedByRule"] == {"expired": 1, "issuer_never_approves": 1}
    assert {p: (f["rescued"], f["declined"], f["rescueRate"]) for p, f in paths.items()} == {
        "all": (3, 1, 0.6),
        "CIT": (2, 1, 0.6667),
        "MIT": (1, 0, 0.5),
    }
    assert paths["all"]["recovered"] == {
        "EUR": {"minor": 2500, "amount": "25.00"},
        "USD": {"minor": 2999, "amount": "29.99"},
    }
    assert paths["MIT"]["recovered"] == {"USD": {"minor": 1999, "amount": "19.99"}}
    assert paths["all"]["timeToResolution"] == {
        "resolved": 4,
        "p50Seconds": 10.0,
        "p95Seconds": 120.0,
        "maxSeconds": 120.0,
    }
    assert paths["CIT"]["timeToResolution"] == {
        "resolved": 3,
        "p50Seconds": 10.0,
        "p95Seconds": 30.0,
        "maxSeconds": 30.0,
    }
    assert paths["MIT"]["timeToResolution"] == {
        "resolved": 1,
        "p50Seconds": 120.0,
        "p95Seconds": 120.0,
        "maxSeconds": 120.0,
    }

    code, table, _ = cli(ops, "report", *window)
    assert code == 0
    columns = [re.split(r" {4,}", line.strip()) for line in table.splitlines()]
    rows = {row[0]: row[1:] for row in columns if len(row) == 4}
    assert rows["received"] == ["8", "5", "3"]
    assert rows["submitted to FlexFactor"] == ["5", "3", "2"]
    assert rows["rule issuer_never_approves"] == ["1", "1", "0"]
    assert rows["rescued (APPROVED)"] == ["3", "2", "1"]
    assert rows["rescue rate"] == ["60.0%", "66.7%", "50.0%"]
    assert rows["recovered USD"] == ["29.99", "10.00", "19.99"]
    assert rows["recovered EUR"] == ["25.00", "25.00", "0"]
    assert rows["time to resolution p50"] == ["10.0s", "10.0s", "2m 0s"]
    assert rows["time to resolution p95"] == ["2m 0s", "30.0s", "2m 0s"]
    assert rows["time to resolution max"] == ["2m 0s", "30.0s", "2m 0s"]
    code, _, err = cli(ops, "report", "--since", "2021-03-02T00:00:00Z", "--until", "2021-03-01T00:00:00Z")
    assert code == 2 and "--until" in err


# -- a deployed stack, found through CloudFormation ------------------------------------------

MINI_TEMPLATE = {
    "Parameters": {"FlexFactorBaseUrl": {"Type": "String"}},
    "Resources": {
        "OrdersTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            },
        },
        **{
            name: {"Type": "AWS::SQS::Queue", "Properties": {}}
            for name in (
                "DeclinesQueue",
                "DeclinesDeadLetterQueue",
                "OrderUpdatesQueue",
                "OrderUpdatesDeadLetterQueue",
                "OrderEventsFailureQueue",
            )
        },
        "FlexFactorSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"SecretString": "{}"}},
    },
    "Outputs": {"DeclinesDeadLetterQueueUrl": {"Value": {"Ref": "DeclinesDeadLetterQueue"}}},
}


def test_a_deployed_stack_is_found_by_name_through_cloudformation(ops, monkeypatch):
    for name, value in {
        "AWS_ENDPOINT_URL": ops.moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    name = f"ops-cfn-{uuid.uuid4().hex[:8]}"
    cloudformation = aws_client(ops.moto_url, "cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(MINI_TEMPLATE),
        Parameters=[{"ParameterKey": "FlexFactorBaseUrl", "ParameterValue": "https://flexfactor.invalid"}],
    )
    table = cloudformation.describe_stack_resource(StackName=name, LogicalResourceId="OrdersTable")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    dlq = cloudformation.describe_stack_resource(StackName=name, LogicalResourceId="DeclinesDeadLetterQueue")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    aws_client(ops.moto_url, "sqs").send_message(QueueUrl=dlq, MessageBody=json.dumps({"pan": PAN}))

    code, out, err = run("--stack", name, "orders", "list", "--json")
    assert (code, err) == (0, "") and json.loads(out)["count"] == 0
    code, out, _ = run("--stack", name, "dlq", "list", "declines")
    assert code == 0 and "1 visible" in out and find_pans(out) == []
    code, _, err = run("orders", "show", "ord-x", "--stack", name)  # the options after the command too
    assert code == 1 and "unknown order" in err
    assert table  # (the table CloudFormation made is the one read: a scan of an empty table)


# -- the console script, and --help everywhere -------------------------------------------------


def test_every_command_has_help_and_the_console_script_is_declared():
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"] == {
        "decline-rescue": "devstack.ops.cli:main"
    }
    for argv in (
        [],
        ["orders"],
        ["orders", "show"],
        ["orders", "resync"],
        ["orders", "list"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "redrive"],
        ["webhooks"],
        ["webhooks", "list"],
        ["webhooks", "show"],
        ["webhooks", "replay"],
        ["report"],
    ):
        out = io.StringIO()
        sys_stdout, sys.stdout = sys.stdout, out
        try:
            assert main([*argv, "--help"]) == 0
        finally:
            sys.stdout = sys_stdout
        assert out.getvalue().startswith("usage: decline-rescue")
    script = Path(sys.executable).with_name("decline-rescue")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "devstack.ops"]
    finished = subprocess.run(
        [*command, "--local-file", "/nonexistent/stack.json", "report"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert finished.returncode == 1
    assert "no local stack running" in finished.stderr


# -- end to end on the local stack -------------------------------------------------------------


def _wait(condition, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def test_on_the_local_stack_it_finds_the_running_stack_shows_resyncs_replays_and_reports(tmp_path):
    from devstack.stack import LocalStack, StackConfig

    state_file = tmp_path / "stack.json"
    config = StackConfig.ephemeral(
        echo_logs=False,
        log_file=tmp_path / "stack.log",
        state_file=state_file,
        function_concurrency=1,
        flexfactor_step_seconds=0.5,
    )
    with LocalStack(config) as stack:
        described = json.loads(state_file.read_text())
        assert described["pid"] == os.getpid() and described["endpoints"]["gateway"] == stack.gateway_url
        assert described["physicalIds"]["OrdersTable"] == stack.stack.physical_ids["OrdersTable"]

        def local(*argv: str) -> tuple[int, str, str]:
            return run("--local-file", str(state_file), *argv)

        emulator = httpx.Client(base_url=stack.flexfactor_url, timeout=10)
        emulator.post("/__emulator/config", json={"webhooks": {"drop": 1.0}}).raise_for_status()
        with stack.client("operations") as api:
            challenged = samples.decline(last4="0259", bin6="400000", brand="VISA")
            assert api.post("/declines", json=challenged).json()["status"] == "CHALLENGE"
            order_id = challenged["orderId"]
            # FlexFactor's challenge passes and the order completes there; its webhooks are lost
            emulator.post("/__emulator/clock", json={"advance": 30}).raise_for_status()
            _wait(
                lambda: any(
                    o["referenceNumber"] == order_id and o["final"]
                    for o in emulator.get("/__emulator/orders").json()["orders"]
                ),
                what="FlexFactor completing the order",
            )
            _wait(lambda: len(_events(local, order_id)) == 2, what="the order's first two events")
            code, out, _ = local("orders", "show", order_id)
            assert code == 0 and "verdict: FlexFactor is ahead (APPROVED)" in out
            assert "events on the bus (2)" in out and f"{order_id}:2" in out

            code, out, _ = local("orders", "resync", order_id)
            assert code == 0 and "after     APPROVED (version 3): changed" in out
            _wait(lambda: len(_events(local, order_id)) == 3, what="the resync's event")

            # webhooks flow again: one for an order approved at once is a duplicate for the writer
            emulator.post("/__emulator/config", json={"webhooks": {"drop": 0.0}}).raise_for_status()
            approved = samples.decline(last4="4242", bin6="424242", brand="VISA")
            assert api.post("/declines", json=approved).json()["status"] == "APPROVED"

        def delivered():
            code, out, _ = local("webhooks", "list", "--order", approved["orderId"], "--json")
            hooks = json.loads(out)["webhooks"] if code == 0 else []
            return hooks if hooks and hooks[0].get("result") else None

        first = _wait(delivered, what="the webhook's delivery")[0]
        code, out, _ = local("webhooks", "replay", first["nonce"], "--wait", "20", "--json")
        replayed = json.loads(out)
        assert code == 0 and replayed["writerResult"] == "duplicate"
        assert replayed["processedAt"] > first["processedAt"]

        code, out, _ = local("report", "--since", "1h", "--json")
        figures = json.loads(out)["paths"]["all"]
        assert code == 0 and figures["received"] == 2 and figures["rescued"] == 2 and figures["rescueRate"] == 1.0
        finished = subprocess.run(
            [sys.executable, "-m", "devstack.ops", "--local-file", str(state_file), "report", "--since", "1h"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert finished.returncode == 0 and "rescued (APPROVED)" in finished.stdout
    assert not state_file.exists()  # removed when the stack stopped
    code, _, err = run("--local-file", str(state_file), "report")
    assert code == 1 and "no local stack running" in err


def _events(local, order_id: str) -> list:
    code, out, _ = local("orders", "show", order_id, "--json")
    return (json.loads(out).get("events") or []) if code == 0 else []
