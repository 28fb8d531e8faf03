"""The recovery metrics (``runtime/metric_names.py``, issue 13) as the functions print them:
CloudWatch embedded-metric (EMF) records on stdout, read back from real handler
invocations (API Gateway, SQS and Scheduler events) against moto and the emulators. Each
metric comes with the dimension sets ``metric_names.DIMENSION_SETS`` names (which the
template's dashboard and alarms read, ``tests/unit/test_template.py``), this stack's
Stack, and never an order id."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from decline_rescue.runtime import metric_names as m
from tests.conftest import api_event, invoke, queue_faults
from tests.integration.test_declines import EVALUATE, cit, post
from tests.integration.test_order_updates import INGEST, OTHER_KEY, payload, raw, set_headers, webhook_event
from tests.integration.test_polling import World, isolated, mit, now  # noqa: F401 - isolated: a fixture

STACK = "test-stack"  # the stack conftest provisions: STACK_NAME, from the template's Globals
SERVICE = "decline-rescue"


def records(out: str) -> list[dict]:
    """Every EMF record printed: {"name", "unit", "value" (the values), "dims", "sets"}."""
    found = []
    for line in out.splitlines():
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "DeclineRescue"
            names = {name for dims in directive["Dimensions"] for name in dims}
            for metric in directive["Metrics"]:
                found.append(
                    {
                        "name": metric["Name"],
                        "unit": metric["Unit"],
                        "value": blob[metric["Name"]],
                        "dims": {name: blob[name] for name in names},
                        "sets": {tuple(sorted(dims)) for dims in directive["Dimensions"]},
                    }
                )
    return found


def of(found: list[dict], name: str, **dims: str) -> list[dict]:
    return [r for r in found if r["name"] == name and all(r["dims"].get(k) == v for k, v in dims.items())]


def one(found: list[dict], name: str, **dims: str) -> dict:
    """The one record of ``name`` with ``dims``, printed with the dimension sets the
    dashboard and alarms expect, for this stack and service."""
    (record,) = of(found, name, **dims)
    expected = {
        ("service",) if dims_set == m.SERVICE_ALONE else tuple(sorted(("service", "Stack", *dims_set)))
        for dims_set in m.DIMENSION_SETS[name]
    }
    assert record["sets"] == expected, (name, record["sets"])
    assert (record["dims"]["Stack"], record["dims"]["service"]) == (STACK, SERVICE)
    return record


@pytest.fixture
def evaluate(function_env, flexfactor_url):
    module, _ = function_env(EVALUATE)
    return module


@pytest.fixture
def world(function_env, isolated, moto_url, flexfactor_url) -> World:  # noqa: F811 - test_polling's, on its table
    return World(function_env, isolated, moto_url, flexfactor_url)


# -- the funnel, customer-initiated: answered at once -----------------------------------


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "APPROVED"),
        (
            {
                "paymentMethod__cardLast4Digits": "1111",
                "paymentMethod__cardBinNumber": "411111",
                "paymentMethod__cardBrand": "VISA",
                "payer__phone": None,
            },
            "DECLINED",
        ),
    ],
)
def test_a_decline_answered_at_once_is_received_submitted_and_resolved(evaluate, capsys, changes, outcome):
    # Given a customer-initiated decline FlexFactor decides in its /evaluate answer
    body = cit(**changes)
    capsys.readouterr()

    # When it is posted
    code, answer = post(evaluate, body)
    out = capsys.readouterr().out
    found = records(out)

    # Then it counts once at each step, by path
    assert code == 200 and answer["status"] == outcome
    assert one(found, m.DECLINE_RECEIVED, Path="CIT")["value"] == [1.0]
    submitted = one(found, m.DECLINE_SUBMITTED, Path="CIT")
    assert (submitted["value"], submitted["unit"]) == ([1.0], "Count")
    assert len(of(found, m.DECLINE_SUBMITTED)) == 1, "counted by the writer alone, not again by the handler"
    resolved = one(found, m.ORDERS_RESOLVED, Path="CIT", Outcome=outcome)
    assert resolved["value"] == [1.0]
    # And its time to resolution (submission to terminal) is the /evaluate call's, in seconds
    ttr = one(found, m.TIME_TO_RESOLUTION, Path="CIT", Outcome=outcome)
    assert ttr["unit"] == "Seconds" and 0 <= ttr["value"][0] < 10
    # And a rescue's amount is counted in the currency's minor units, by currency
    rescued = of(found, m.RESCUED_AMOUNT)
    if outcome == "APPROVED":
        amount = one(found, m.RESCUED_AMOUNT, Path="CIT", Currency="USD")
        assert (amount["value"], amount["unit"]) == ([1999.0], "None")
    else:
        assert rescued == []
    # And the FlexFactor call is measured (latency, and no error)
    call = one(found, m.PROVIDER_LATENCY, Provider="flexfactor", Operation="evaluate")
    assert call["unit"] == "Milliseconds" and call["value"][0] > 0
    assert one(found, m.PROVIDER_ERRORS, Provider="flexfactor", Operation="evaluate")["value"] == [0.0]
    # And no dimension names the order
    assert body["orderId"] not in "".join(line for line in out.splitlines() if '"_aws"' in line)


def test_a_decline_a_rule_stops_is_counted_not_submitted_by_rule(evaluate, capsys):
    body = cit(transaction__amount=50000)  # above AmountMaxExclusiveCents
    capsys.readouterr()

    code, answer = post(evaluate, body)
    found = records(capsys.readouterr().out)

    assert code == 200 and answer["status"] == "NOT_SUBMITTED"
    assert answer["reason"]["rule"] == "amount_out_of_range"
    assert one(found, m.DECLINE_RECEIVED, Path="CIT")["value"] == [1.0]
    stopped = one(found, m.DECLINE_NOT_SUBMITTED, Path="CIT", Rule="amount_out_of_range")
    assert stopped["value"] == [1.0]
    assert len(of(found, m.DECLINE_NOT_SUBMITTED)) == 1
    assert of(found, m.DECLINE_SUBMITTED) == [] and of(found, m.ORDERS_RESOLVED) == []
    assert of(found, m.PROVIDER_LATENCY) == [], "no provider call"


def test_a_flexfactor_outage_is_a_provider_error_by_operation(evaluate, flexfactor_url, capsys):
    queue_faults(flexfactor_url, "evaluate", {"status": 503}, {"status": 503}, {"status": 503})
    capsys.readouterr()

    code, answer = post(evaluate, cit())
    found = records(capsys.readouterr().out)

    assert code == 503 and answer["error"]["code"] == "PROVIDER_UNAVAILABLE"
    failed = one(found, m.PROVIDER_ERRORS, Provider="flexfactor", Operation="evaluate")
    assert (failed["value"], failed["unit"]) == ([1.0], "Count")
    assert one(found, m.PROVIDER_LATENCY, Provider="flexfactor", Operation="evaluate")["value"][0] > 0
    assert one(found, m.DECLINE_RECEIVED, Path="CIT")["value"] == [1.0]
    assert of(found, m.DECLINE_SUBMITTED) == [], "the claim waits: its retry may still submit it"


def test_a_cybersource_call_is_measured(function_env, cybersource_url, capsys):
    module, _ = function_env("IssueCaptureContextFunction")
    capsys.readouterr()

    result = invoke(module, api_event("issue_capture_context/post_default_fields.json"))
    found = records(capsys.readouterr().out)

    assert result["statusCode"] == 201
    call = one(found, m.PROVIDER_LATENCY, Provider="cybersource", Operation="create_session")
    assert call["value"][0] > 0
    assert one(found, m.PROVIDER_ERRORS, Provider="cybersource", Operation="create_session")["value"] == [0.0]


# -- merchant-initiated, through the queue, the poller and the single writer -------------


def test_a_queued_decline_polled_to_approved_counts_mit_with_its_time_to_resolution(world: World, capsys):
    # Given a merchant-initiated decline taken off the declines queue and submitted
    body = mit("0007")
    capsys.readouterr()
    world.submit_mit(body)
    found = records(capsys.readouterr().out)
    assert one(found, m.DECLINE_RECEIVED, Path="MIT")["value"] == [1.0]
    assert one(found, m.DECLINE_SUBMITTED, Path="MIT")["value"] == [1.0]
    state = world.state(body["orderId"])
    assert state["status"] == "SUBMITTED" and state["submittedAt"] <= state["updatedAt"]

    # When FlexFactor completes it, and a poller run finds it two minutes after it was due
    world.advance(10)
    world.make_due(body["orderId"], at=now() - timedelta(seconds=120))
    world.poll()
    found = records(capsys.readouterr().out)

    # Then the workers report their lag (one record per work item, one item per shard; the
    # alarm reads the Maximum): how long the oldest due order had waited
    lags = of(found, m.POLLER_LAG)
    assert len(lags) == 8 and {r["unit"] for r in lags} == {"Seconds"}
    assert 119 <= max(r["value"][0] for r in lags) < 400
    assert one(found, m.PROVIDER_LATENCY, Provider="flexfactor", Operation="get_order")["value"][0] > 0

    # And when the writer applies the update, the order is resolved, rescued, and timed
    messages = world.updates()
    assert world.apply(messages) == {"batchItemFailures": []}
    found = records(capsys.readouterr().out)
    state = world.state(body["orderId"])
    assert state["status"] == "APPROVED"
    assert one(found, m.ORDERS_RESOLVED, Path="MIT", Outcome="APPROVED")["value"] == [1.0]
    ttr = one(found, m.TIME_TO_RESOLUTION, Path="MIT", Outcome="APPROVED")["value"][0]
    from decline_rescue.domain.clock import parse

    expected = (parse(state["updatedAt"]) - parse(state["submittedAt"])).total_seconds()
    assert ttr == pytest.approx(expected, abs=0.01)
    amount = one(found, m.RESCUED_AMOUNT, Path="MIT", Currency="USD")
    assert amount["value"] == [float(body["transaction"]["amount"])]
    assert of(found, m.DECLINE_SUBMITTED) == [], "an order is submitted once"

    # And the same update applied again (a redelivery) counts nothing twice
    assert world.apply(messages) == {"batchItemFailures": []}
    again = records(capsys.readouterr().out)
    assert of(again, m.ORDERS_RESOLVED) == of(again, m.TIME_TO_RESOLUTION) == of(again, m.RESCUED_AMOUNT) == []


def test_an_expired_order_is_resolved_expired(world: World, capsys):
    body = mit("0077")  # stays Processing at FlexFactor until its expiry
    world.submit_mit(body)
    world.make_due(body["orderId"], expiryDateUtc=(now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    world.poll()
    capsys.readouterr()

    world.apply(world.updates())
    found = records(capsys.readouterr().out)

    assert world.state(body["orderId"])["status"] == "EXPIRED"
    assert one(found, m.ORDERS_RESOLVED, Path="MIT", Outcome="EXPIRED")["value"] == [1.0]
    assert one(found, m.TIME_TO_RESOLUTION, Path="MIT", Outcome="EXPIRED")["value"][0] >= 0
    assert of(found, m.RESCUED_AMOUNT) == []


def test_a_poller_run_with_nothing_due_reports_no_lag(world: World, capsys):
    capsys.readouterr()
    summary = world.poll()
    found = records(capsys.readouterr().out)

    assert summary["read"] == 0 and summary["items"] == 8
    assert [r["value"] for r in of(found, m.POLLER_LAG)] == [[0.0]] * 8


# -- webhooks refused, by reason --------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "reason", "status"),
    [
        ({"key": OTHER_KEY}, "bad_signature", 401),
        ({"date": now() - timedelta(minutes=10)}, "stale_date", 401),
        ({"sign_host": "elsewhere.example.com"}, "host_not_served", 401),
    ],
)
def test_a_refused_webhook_is_counted_by_reason(function_env, capsys, signing, reason, status):
    module, _ = function_env(INGEST)
    event = webhook_event(raw(payload()), **signing)
    if "sign_host" in signing:  # signed for another endpoint, replayed here with its Host
        set_headers(event, {**event["headers"], "Host": signing["sign_host"]})
    capsys.readouterr()

    result = invoke(module, event, name=INGEST)
    found = records(capsys.readouterr().out)

    assert result["statusCode"] == status and reason in result["body"]
    refused = one(found, m.WEBHOOK_REJECTED, Reason=reason)
    assert (refused["value"], refused["unit"]) == ([1.0], "Count")
    assert len(of(found, m.WEBHOOK_REJECTED)) == 1, "by reason, by stack and by service: one record"


def test_a_signed_body_that_is_no_webhook_is_counted_invalid_body(function_env, capsys):
    module, _ = function_env(INGEST)
    capsys.readouterr()

    result = invoke(module, webhook_event(b'{"NoEvent": true}'), name=INGEST)
    found = records(capsys.readouterr().out)

    assert result["statusCode"] == 400
    assert one(found, m.WEBHOOK_REJECTED, Reason="invalid_body")["value"] == [1.0]


# -- a metric never fails the work it measures ------------------------------------------


def test_a_metric_that_cannot_be_printed_is_dropped_not_raised(monkeypatch, capsys):
    from decline_rescue.runtime.observability import emit

    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)  # EMF refuses a record without one
    emit([(m.POLLER_LAG, "Seconds", 1.0)], {})
    assert records(capsys.readouterr().out) == []


def test_records_printed_from_many_threads_stay_one_a_line(monkeypatch, capsys):
    """The poller measures its provider calls from a pool of threads: each record is one
    line of JSON, however the writes interleave."""
    from concurrent.futures import ThreadPoolExecutor

    from decline_rescue.runtime.observability import emit

    monkeypatch.setenv("STACK_NAME", STACK)

    def burst(i: int) -> None:
        for _ in range(100):
            emit([(m.PROVIDER_LATENCY, "Milliseconds", i), (m.PROVIDER_ERRORS, "Count", 0)], {"Provider": "p"})

    capsys.readouterr()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(burst, range(8)))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 800 and all(json.loads(line)["_aws"] for line in lines)
