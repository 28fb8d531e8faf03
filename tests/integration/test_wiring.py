"""The wiring between parts that unit tests supply by hand (issue 16), through the real
handlers with the template's environment, against moto server and the emulators:

- the budget windows reach the store: a Mastercard card's 1-day window is read and named;
- a webhook's nonce is kept well past the date skew a replay could use, and an oversized
  delivery is refused before anything is kept or queued;
- a chargeback without ``ConfirmationId`` or ``TimeStamp``, redelivered under a fresh
  nonce, is recorded once; a refund and then a chargeback on one order are both recorded
  and both published.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration import test_order_updates as updates_suite
from tests.integration.test_budgets import _card_key, _seed
from tests.integration.test_declines import EVALUATE, cit, evaluations
from tests.integration.test_declines import post as post_decline
from tests.integration.test_order_updates import deliver as deliver_updates
from tests.integration.test_order_updates import (
    make_order,
    order_and_history,
    payload,
    post,
    raw,
    sqs_event,
    webhook_event,
)

# the webhook and writer fixtures of test_order_updates, found by pytest under these names
sqs = updates_suite.sqs
queued = updates_suite.queued
dead_letters = updates_suite.dead_letters
bus_events = updates_suite.bus_events
ingest = updates_suite.ingest
writer = updates_suite.writer

# -- budgets: the windows the store reads ------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "window", "maximum"),
    [({"0": 10}, 1, 10), ({"-1": 10, "-2": 10, "-10": 10, "-29": 5}, 30, 35)],
    ids=["10-today", "35-in-30-days"],
)
def test_a_mastercard_card_over_a_window_is_not_submitted_naming_it(
    function_env, flexfactor_url, used, window, maximum
):
    # Given a Mastercard card whose reattempts fill one of its network's windows
    module, _ = function_env(EVALUATE)
    body = cit()  # a Mastercard card (BIN 555555), fingerprinted
    today = datetime.now(UTC).date()
    days = {(today + timedelta(days=int(d))).isoformat(): n for d, n in used.items()}
    _seed(_card_key(body), days, days.get(today.isoformat()))

    # When a decline for it arrives
    code, answer = post_decline(module, body)

    # Then it is answered NOT_SUBMITTED for that window, and FlexFactor never heard of it
    assert code == 200, answer
    assert (answer["status"], answer["submitted"]) == ("NOT_SUBMITTED", False)
    reason = answer["reason"]
    assert (reason["rule"], reason["windowDays"], reason["max"], reason["network"]) == (
        "reattempt_budget",
        window,
        maximum,
        "mastercard",
    )
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 0


def test_a_mastercard_card_with_a_reattempt_left_today_is_submitted(function_env, flexfactor_url):
    module, _ = function_env(EVALUATE)
    body = cit()
    today = datetime.now(UTC).date().isoformat()
    _seed(_card_key(body), {today: 9}, 10)
    code, answer = post_decline(module, body)
    assert (code, answer["submitted"]) == (200, True), answer


# -- webhook intake: what is kept, and for how long ------------------------------------------


def test_the_nonce_is_kept_for_thirty_days_far_past_the_date_skew(ingest, queued):
    from decline_rescue.runtime import settings, wiring

    # Given a delivery accepted now
    nonce = uuid.uuid4().hex
    body = payload()
    data = raw(body)
    event = webhook_event(data, nonce=nonce)
    updates_suite.set_headers(event, {**event["headers"], "User-Agent": "FlexFactor-Webhooks/1.0", "X-Other": "x"})
    assert post(ingest, event)[0] == 200

    # Then its nonce record lives 30 days: long past the skew a replay of it could be sent in
    kept = wiring.orders().delivery(nonce)
    skew = settings.lifecycle().webhook_max_skew_seconds
    lives = int(kept["expiresAt"]) - time.time()
    assert skew == 300
    assert 30 * 86400 - 120 <= lives <= 30 * 86400 + 5
    assert lives > 2 * skew
    assert kept["delivery"] == "queued" and kept["verified"] is True
    received = datetime.fromisoformat(kept["receivedAt"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - received).total_seconds()) < 60
    assert kept["bodySha512"] == hashlib.sha512(data).hexdigest()
    assert json.loads(kept["body"]) == body
    assert (kept["Event"], kept["ExternalOrderId"], kept["OrderId"]) == (
        body["Event"],
        body["ExternalOrderId"],
        body["OrderId"],
    )
    sent = {k.lower(): v for k, v in event["headers"].items()}
    kept_names = ("x-fc-nonce", "x-fc-date", "host", "content-type", "x-fc-content-sha512", "user-agent")
    assert kept["headers"] == {name: sent[name] for name in kept_names if sent.get(name)}
    assert kept["headers"]["user-agent"] == "FlexFactor-Webhooks/1.0" and kept["headers"]["x-fc-nonce"] == nonce
    assert len(queued()) == 1


@pytest.mark.parametrize("size", [64 * 1024 + 1, 200 * 1024])
def test_an_oversized_webhook_is_400_with_nothing_queued_and_no_nonce_claimed(ingest, queued, size):
    from decline_rescue.runtime import wiring

    # Given a correctly signed delivery just over 64 KiB
    body = payload()
    body["EventData"] = {"padding": ""}
    body["EventData"]["padding"] = "x" * (size - len(raw(body)))
    data = raw(body)
    assert len(data) == size
    nonce = uuid.uuid4().hex

    # When it arrives
    code, answer = post(ingest, webhook_event(data, nonce=nonce))

    # Then it is refused as too large, nothing is queued and its nonce is not taken
    assert code == 400, answer
    assert answer["error"]["details"][0]["field"] == "body"
    assert answer["error"]["details"][0]["rule"] == "too_large"
    assert queued() == []
    assert wiring.orders().delivery(nonce) is None


def test_a_webhook_of_exactly_64_kib_is_accepted(ingest, queued):
    from decline_rescue.runtime import wiring

    body = payload()
    body["EventData"] = {"padding": ""}
    body["EventData"]["padding"] = "x" * (64 * 1024 - len(raw(body)))
    data = raw(body)
    assert len(data) == 64 * 1024
    nonce = uuid.uuid4().hex
    assert post(ingest, webhook_event(data, nonce=nonce))[0] == 200
    assert len(queued()) == 1
    kept = wiring.orders().delivery(nonce)["body"]
    assert len(kept) == 16384 and data.decode().startswith(kept)  # the body as kept: its first 16 KiB


# -- refunds and chargebacks, from the webhook to the bus -------------------------------------


def _webhooks_to_writer(ingest, writer, queued, *bodies: dict) -> list[dict]:
    """Each body signed and ingested under a fresh nonce; what was queued, applied by the writer."""
    for body in bodies:
        code, answer = post(ingest, webhook_event(raw(body), nonce=uuid.uuid4().hex))
        assert code == 200, answer
    updates = [json.loads(m["Body"]) for m in queued()]
    assert len(updates) == len(bodies)
    for u in updates:
        assert deliver_updates(writer, sqs_event(u)) == []
    return updates


def test_a_chargeback_without_confirmation_or_timestamp_redelivered_is_recorded_once(
    ingest, writer, queued, bus_events
):
    # Given a bound, approved order and a chargeback webhook without ConfirmationId or TimeStamp
    order = make_order("APPROVED")
    body = payload("payment.chargeback.received", ExternalOrderId=order["orderId"], OrderId=order["orderSessionKey"])
    del body["ConfirmationId"], body["TimeStamp"]
    body["EventData"] = {"amount": 19.99, "reason": "fraud"}

    # When FlexFactor delivers it twice, each time under a fresh nonce (a resend)
    updates = _webhooks_to_writer(ingest, writer, queued, body, {**body, "IsResent": True})

    # Then both deliveries name the same chargeback, and it is recorded and published once
    assert updates[0]["eventKey"] == updates[1]["eventKey"]
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 2)
    assert len(state["eventKeys"]) == 1 and state["eventKeys"][0].startswith("CHARGEBACK#")
    assert [h.get("event") for h in history if h["sk"].count("#") == 1] == [None, "CHARGEBACK"]
    events = [e["detail-type"] for e in bus_events(order["orderId"])]
    assert events == ["OrderStatusChanged", "OrderChargebackReceived"]


def test_two_different_chargebacks_without_confirmation_or_timestamp_are_both_recorded(ingest, writer, queued):
    order = make_order("APPROVED")
    body = payload("payment.chargeback.received", ExternalOrderId=order["orderId"], OrderId=order["orderSessionKey"])
    del body["ConfirmationId"], body["TimeStamp"]
    first = {**body, "EventData": {"amount": 5.0, "caseId": "cb-1"}}
    second = {**body, "EventData": {"amount": 7.5, "caseId": "cb-2"}}
    _webhooks_to_writer(ingest, writer, queued, first, second)
    state, _ = order_and_history(order["orderId"])
    assert state["version"] == 3 and len(state["eventKeys"]) == 2


@pytest.mark.parametrize("stamped", [True, False], ids=["with-timestamps", "without-timestamps"])
def test_a_refund_then_a_chargeback_on_one_order_are_both_recorded_and_published(
    ingest, writer, queued, bus_events, stamped
):
    # Given a bound, approved order
    order = make_order("APPROVED")
    ids = {"ExternalOrderId": order["orderId"], "OrderId": order["orderSessionKey"]}
    refund = payload("order.refunded", **ids)
    chargeback = payload("payment.chargeback.received", **ids)
    if stamped:  # the same second: FlexFactor stamps to the second
        chargeback["TimeStamp"] = refund["TimeStamp"]
    else:
        for body in (refund, chargeback):
            del body["TimeStamp"], body["ConfirmationId"]

    # When FlexFactor tells us of a refund, and then of a chargeback
    _webhooks_to_writer(ingest, writer, queued, refund, chargeback)

    # Then both are recorded on the order, and both are published
    state, history = order_and_history(order["orderId"])
    assert (state["status"], state["version"]) == ("APPROVED", 3)
    assert sorted(k.split("#")[0] for k in state["eventKeys"]) == ["CHARGEBACK", "REFUNDED"]
    assert [h.get("event") for h in history if h["sk"].count("#") == 1] == [None, "REFUNDED", "CHARGEBACK"]
    events = [(e["detail-type"], e["detail"]["version"]) for e in bus_events(order["orderId"])]
    assert events == [("OrderStatusChanged", 1), ("OrderRefunded", 2), ("OrderChargebackReceived", 3)]


def test_a_chargeback_then_a_refund_are_both_recorded(ingest, writer, queued):
    order = make_order("APPROVED")
    ids = {"ExternalOrderId": order["orderId"], "OrderId": order["orderSessionKey"]}
    _webhooks_to_writer(
        ingest, writer, queued, payload("payment.chargeback.received", **ids), payload("order.refunded", **ids)
    )
    state, _ = order_and_history(order["orderId"])
    assert state["version"] == 3
    assert sorted(k.split("#")[0] for k in state["eventKeys"]) == ["CHARGEBACK", "REFUNDED"]


# -- the writer: when an order is looked at next ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "seconds"),
    [("QUEUED", 600), ("RECEIVED", 120), ("SUBMITTED", 120), ("CAPTUREREQUIRED", 120), ("APPROVED", None),
     ("NOT_SUBMITTED", None), ("EXPIRED", None)],
)  # fmt: skip
def test_first_poll_at_by_status(monkeypatch, status, seconds):
    from decline_rescue.domain.clock import parse
    from decline_rescue.runtime import settings
    from decline_rescue.services import writer as order_writer

    monkeypatch.setenv("ORDERS_TABLE", "orders")
    monkeypatch.setenv("QUEUED_RESEND_SECONDS", "600")
    monkeypatch.setenv("POLL_FIRST_DELAY_SECONDS", "120")
    settings.lifecycle.cache_clear()
    try:
        at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        due = order_writer.first_poll_at(status, at)
        assert (None if due is None else (parse(due) - at).total_seconds()) == seconds
    finally:
        settings.lifecycle.cache_clear()


def test_an_invalid_delivery_is_kept_with_its_fields_cut(ingest, queued):
    from decline_rescue.runtime import wiring

    # Given a signed delivery whose OrderId is too long to be one
    body = payload(OrderId="s" * 250)
    nonce = uuid.uuid4().hex

    # When it arrives
    code, answer = post(ingest, webhook_event(raw(body), nonce=nonce))

    # Then it is refused, nothing is queued, and it is kept (cut) and marked invalid
    assert (code, answer["error"]["details"][0]["field"]) == (400, "OrderId")
    assert queued() == []
    kept = wiring.orders().delivery(nonce)
    assert kept["OrderId"] == "s" * 200 and kept["delivery"] == "invalid"


@pytest.mark.parametrize(("status", "polled"), [("PROCESSING", True), ("APPROVED", False)])
def test_a_refund_of_an_order_not_known_complete_makes_it_due(writer, status, polled):
    from decline_rescue.domain import clock

    # Given a bound order, pending (due in ten minutes) or approved
    order = make_order(status)

    # When FlexFactor says it was refunded
    refund = {
        "updateId": f"webhook:{uuid.uuid4().hex}",
        "source": "webhook",
        "orderId": order["orderId"],
        "orderSessionKey": order["orderSessionKey"],
        "event": "REFUNDED",
        "eventKey": "REFUNDED#2026-11-22T10:00:00Z",
    }
    assert deliver_updates(writer, sqs_event(refund)) == []

    # Then a pending order is due for a poll now (the refund says it ended), an approved one never
    state, _ = order_and_history(order["orderId"])
    assert state["eventKeys"] == ["REFUNDED#2026-11-22T10:00:00Z"]
    if polled:
        assert state["nextPollAt"] <= clock.iso(datetime.now(UTC))
    else:
        assert "nextPollAt" not in state


def test_a_signed_body_that_is_not_json_is_kept_and_refused_as_json(ingest, queued):
    from decline_rescue.runtime import wiring

    nonce = uuid.uuid4().hex
    code, answer = post(ingest, webhook_event(b"Event=order.completed&OrderId=1", nonce=nonce))
    assert code == 400 and [(d["field"], d["rule"]) for d in answer["error"]["details"]] == [("body", "json")]
    assert queued() == []
    kept = wiring.orders().delivery(nonce)
    assert kept["delivery"] == "invalid" and kept["body"] == "Event=order.completed&OrderId=1"
    assert (kept["result"]["field"], kept["result"]["rule"]) == ("body", "json")


def test_a_refund_we_make_is_published_with_its_facts(function_env, bus_events):
    from tests.integration.test_refunds import approved_order
    from tests.integration.test_refunds import refund as refund_order

    # Given an approved order captured for 1500
    order_id = approved_order(function_env, captured=1500)

    # When the merchant refunds 600 of it
    code, answer = refund_order(function_env, order_id, {"amount": 600, "idempotencyKey": "rf-1"})
    assert code == 200, answer

    # Then the bus is told exactly what was refunded, in which currency, and how much in all
    (event,) = [e["detail"] for e in bus_events(order_id) if e["detail-type"] == "OrderRefunded"]
    assert event["refund"] == {"refundId": "rf-1", "amount": 600, "currency": "USD", "refundedAmount": 600}
    assert (event["event"], event["status"], event["previousStatus"]) == ("REFUNDED", "APPROVED", "APPROVED")
