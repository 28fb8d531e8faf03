"""POST /orders/{orderId}/refund through API Gateway events, against moto server and the
FlexFactor emulator over HTTP: full, partial, over-refund, repeats, key reuse, FlexFactor's
own failure shape, an outage (the refund held for a retry), and what the bus is told."""

from __future__ import annotations

import json
import threading
import uuid

import httpx
import pytest

from decline_rescue.runtime import wiring
from decline_rescue.services.refunds import major_units
from tests.conftest import api_event, invoke
from tests.integration.test_declines import EVALUATE, cit, get_order
from tests.integration.test_declines import post as post_decline
from tests.integration.test_order_updates import bus_events, sqs  # noqa: F401 (fixtures)

ORDERS = "OrdersApiFunction"


def call(function_env, order_id: str, action: str, body=None) -> tuple[int, dict]:
    module, _ = function_env(ORDERS)
    event = api_event(f"orders_api/post_{action}.json", body)
    if body is None:
        event["body"] = None
    event["path"], event["pathParameters"] = f"/orders/{order_id}/{action}", {"orderId": order_id}
    result = invoke(module, event, name=ORDERS)
    return result["statusCode"], json.loads(result["body"])


def refund(function_env, order_id: str, body=None) -> tuple[int, dict]:
    return call(function_env, order_id, "refund", body)


def approved_order(function_env, amount: int = 1999, captured: int | None = None) -> str:
    """A customer-initiated decline FlexFactor answers CAPTUREREQUIRED, captured."""
    evaluate, _ = function_env(EVALUATE)
    body = cit(transactionType="AUTHORIZATION")
    body["transaction"]["amount"] = amount
    code, answer = post_decline(evaluate, body)
    assert (code, answer["status"]) == (200, "CAPTUREREQUIRED"), answer
    code, answer = call(function_env, body["orderId"], "capture", {"amount": captured or amount})
    assert (code, answer["status"]) == (200, "APPROVED"), answer
    return body["orderId"]


def order_of(function_env, order_id: str) -> dict:
    code, order = get_order(function_env, order_id)
    assert code == 200
    return order


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(1234, "USD", "12.34"), (5, "USD", "0.05"), (1500, "JPY", "1500"), (1500, "KWD", "1.500"), (7, "BHD", "0.007")],
)
def test_amounts_go_to_flexfactor_in_major_units_by_the_currency_exponent(amount, currency, text):
    assert major_units(amount, currency) == text


def test_a_full_refund_without_an_amount_refunds_what_was_captured(function_env, bus_events):  # noqa: F811
    # Given an approved order captured for 1500 of its 1999
    order_id = approved_order(function_env, captured=1500)

    # When the merchant refunds it without saying how much
    code, answer = refund(function_env, order_id, {"reason": "customer asked"})

    # Then the captured amount is refunded, the order says so, and the bus is told once
    assert code == 200, answer
    assert (answer["amount"], answer["refundedAmount"], answer["currency"]) == (1500, 1500, "USD")
    order = order_of(function_env, order_id)
    assert (order["status"], order["refundedAmount"], order.get("refundHeld", 0)) == ("APPROVED", 1500, 0)
    refunds = [e["detail"] for e in bus_events(order_id) if e["detail-type"] == "OrderRefunded"]
    assert [(d["refund"]["amount"], d["refund"]["refundedAmount"], d["status"]) for d in refunds] == [
        (1500, 1500, "APPROVED")
    ]
    # and nothing is left
    code, answer = refund(function_env, order_id, {"amount": 1})
    assert (code, answer["error"]["code"]) == (409, "REFUND_EXCEEDS_REMAINING")


def test_partial_refunds_add_up_and_an_over_refund_is_409(function_env):
    order_id = approved_order(function_env)
    assert refund(function_env, order_id, {"amount": 500})[0] == 200
    code, answer = refund(function_env, order_id, {"amount": 700, "reason": "second item"})
    assert (code, answer["refundedAmount"]) == (200, 1200)

    code, answer = refund(function_env, order_id, {"amount": 800})  # 799 left
    assert (code, answer["error"]["code"]) == (409, "REFUND_EXCEEDS_REMAINING")
    assert "799" in answer["error"]["message"]
    assert order_of(function_env, order_id)["refundedAmount"] == 1200

    code, answer = refund(function_env, order_id, {"amount": 799})
    assert (code, answer["refundedAmount"]) == (200, 1999)


def test_a_repeat_is_the_same_refund_and_a_reused_key_is_409(function_env, bus_events):  # noqa: F811
    order_id = approved_order(function_env)
    first = refund(function_env, order_id, {"amount": 300, "idempotencyKey": "rf-1"})
    again = refund(function_env, order_id, {"amount": 300, "idempotencyKey": "rf-1"})
    assert first[0] == again[0] == 200
    assert again[1]["replayed"] is True and again[1]["refundId"] == first[1]["refundId"] == "rf-1"
    assert order_of(function_env, order_id)["refundedAmount"] == 300

    # a repeat without a key is the same refund too (same amount and reason)
    assert refund(function_env, order_id, {"amount": 200})[0] == 200
    code, answer = refund(function_env, order_id, {"amount": 200})
    assert (code, answer["replayed"]) == (200, True)
    assert order_of(function_env, order_id)["refundedAmount"] == 500

    code, answer = refund(function_env, order_id, {"amount": 400, "idempotencyKey": "rf-1"})
    assert (code, answer["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert len([e for e in bus_events(order_id) if e["detail-type"] == "OrderRefunded"]) == 2


def test_flexfactors_failure_shape_is_a_409_with_its_message_and_the_hold_given_back(function_env):
    # Given an order FlexFactor has already refunded in full out of band (its portal)
    order_id = approved_order(function_env)
    key = order_of(function_env, order_id)["orderSessionKey"]
    assert wiring.flexfactor().refund(order_session_key=key, amount="19.99").ok

    # When the merchant refunds it through us
    code, answer = refund(function_env, order_id, {"amount": 1000})

    # Then FlexFactor's HTTP 200 FAILED is a 409 with its message and code, nothing recorded
    assert code == 409, answer
    assert answer["error"]["code"] == "REFUND_REFUSED"
    assert "greater than maximum refund amount" in answer["error"]["message"]
    assert answer["error"]["reason"] == "2001"
    order = order_of(function_env, order_id)
    assert (order.get("refundedAmount", 0), order.get("refundHeld", 0)) == (0, 0)


def flexfactor_refunded(flexfactor_url: str, order_id: str) -> int:
    """What FlexFactor (the emulator's own record) refunded on the order, in minor units."""
    truth = httpx.get(flexfactor_url + "/__emulator/orders").json()["orders"]
    (order,) = [o for o in truth if o["referenceNumber"] == order_id]
    return int(order["refundedAmount"])


def test_flexfactor_unavailable_gives_the_hold_back_and_a_retry_refunds_once(function_env, flexfactor_url):
    order_id = approved_order(function_env)
    fault = {"endpoint": "refund", "faults": [{"status": 503}]}
    httpx.post(flexfactor_url + "/__emulator/faults", json=fault).raise_for_status()

    code, answer = refund(function_env, order_id, {"amount": 900, "idempotencyKey": "out-1"})
    # a 503 is not processed: nothing held, and the call was made once (never resent)
    assert code == 503, answer
    assert order_of(function_env, order_id).get("refundHeld", 0) == 0
    assert flexfactor_refunded(flexfactor_url, order_id) == 0

    code, answer = refund(function_env, order_id, {"amount": 900, "idempotencyKey": "out-1"})
    assert (code, answer["refundedAmount"]) == (200, 900)
    assert flexfactor_refunded(flexfactor_url, order_id) == 900


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_lost_answer_holds_the_refund_as_unknown_and_it_is_never_asked_again(function_env, flexfactor_url, status):
    # Given FlexFactor fails with a status that does not say whether it refunded
    order_id = approved_order(function_env)
    fault = {"endpoint": "refund", "faults": [{"status": status}] * 3}
    httpx.post(flexfactor_url + "/__emulator/faults", json=fault).raise_for_status()

    # When the merchant refunds, and retries with the same key once FlexFactor is back
    code, answer = refund(function_env, order_id, {"amount": 900, "idempotencyKey": "lost-1"})
    httpx.delete(flexfactor_url + "/__emulator/faults")
    again_code, again = refund(function_env, order_id, {"amount": 900, "idempotencyKey": "lost-1"})

    # Then both say the outcome is unknown, FlexFactor was asked once, the amount stays held
    assert (code, answer["error"]["code"]) == (502, "REFUND_OUTCOME_UNKNOWN"), answer
    assert (again_code, again["error"]["code"]) == (409, "REFUND_OUTCOME_UNKNOWN"), again
    assert flexfactor_refunded(flexfactor_url, order_id) == 0  # (the retry, with FlexFactor back, did not ask)
    order = order_of(function_env, order_id)
    assert (order.get("refundedAmount", 0), order["refundHeld"]) == (0, 900)
    # and the held amount counts: only 1099 can be refunded meanwhile
    assert refund(function_env, order_id, {"amount": 1100})[0] == 409
    assert refund(function_env, order_id, {"amount": 1099})[0] == 200


def test_one_request_asks_at_a_time_for_a_key(function_env, flexfactor_url):
    # Given FlexFactor slow to answer a refund
    order_id = approved_order(function_env)
    fault = {"endpoint": "refund", "faults": [{"delay": 1.0}]}
    httpx.post(flexfactor_url + "/__emulator/faults", json=fault).raise_for_status()
    results: list[tuple[int, dict]] = []

    def one() -> None:
        results.append(refund(function_env, order_id, {"amount": 800, "idempotencyKey": "same-key"}))

    # When two requests with the same key arrive together
    first = threading.Thread(target=one)
    first.start()
    import time

    time.sleep(0.4)
    one()
    first.join()

    # Then one asked FlexFactor and refunded, the other was told it is in progress
    codes = sorted((code, body.get("error", {}).get("code")) for code, body in results)
    assert codes == [(200, None), (409, "REFUND_IN_PROGRESS")], results
    assert flexfactor_refunded(flexfactor_url, order_id) == 800
    # and a repeat afterwards is the recorded refund
    code, answer = refund(function_env, order_id, {"amount": 800, "idempotencyKey": "same-key"})
    assert (code, answer["replayed"]) == (200, True)


def test_concurrent_refunds_never_exceed_the_captured_amount(function_env):
    order_id = approved_order(function_env)
    results: list[tuple[int, dict]] = []

    def one(i: int) -> None:
        results.append(refund(function_env, order_id, {"amount": 800, "idempotencyKey": f"c-{i}"}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == 2, results  # 2 x 800 <= 1999 < 3 x 800
    assert all(r[0] == 409 for r in results if r[0] != 200)
    assert order_of(function_env, order_id)["refundedAmount"] == 1600


def test_only_an_approved_order_is_refunded(function_env):
    evaluate, _ = function_env(EVALUATE)
    body = cit(transactionType="AUTHORIZATION")
    assert post_decline(evaluate, body)[1]["status"] == "CAPTUREREQUIRED"
    code, answer = refund(function_env, body["orderId"], {"amount": 100})
    assert (code, answer["error"]["code"]) == (409, "ORDER_STATE_CONFLICT")
    assert "CAPTUREREQUIRED" in answer["error"]["message"]
    code, answer = refund(function_env, f"nope-{uuid.uuid4().hex[:8]}", {"amount": 100})
    assert code == 404


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"amount": "10.00"}, "amount", "type"),
        ({"amount": 12.5}, "amount", "type"),
        ({"amount": 0}, "amount", "type"),
        ({"amount": True}, "amount", "type"),
        ({"amount": 100, "note": "x"}, "note", "unknown"),
        ({"reason": "card 4111 1111 1111 1111"}, "reason", "card_number_not_allowed"),
        ({"reason": 5}, "reason", "type"),
        ({"idempotencyKey": "has space"}, "idempotencyKey", "format"),
        ([100], "body", "type"),
    ],
)
def test_bad_refund_bodies_are_400_naming_the_field(function_env, body, field, rule):
    order_id = approved_order(function_env)
    code, answer = refund(function_env, order_id, body)
    assert code == 400, answer
    assert (field, rule) in {(d["field"], d["rule"]) for d in answer["error"]["details"]}
    assert "4111" not in json.dumps(answer)
    assert order_of(function_env, order_id).get("refundedAmount", 0) == 0


@pytest.mark.parametrize("made", [True, False], ids=["made", "not-made"])
def test_an_operator_settles_a_refund_whose_answer_was_lost(function_env, flexfactor_url, made, capsys):
    from devstack.ops.cli import main as cli

    # Given a refund held as UNKNOWN (FlexFactor answered 500)
    order_id = approved_order(function_env)
    fault = {"endpoint": "refund", "faults": [{"status": 500}]}
    httpx.post(flexfactor_url + "/__emulator/faults", json=fault).raise_for_status()
    assert refund(function_env, order_id, {"amount": 700, "idempotencyKey": "lost-7"})[0] == 502

    # When the operator, having looked in FlexFactor, settles it
    from decline_rescue.services import refunds

    answer = refunds.settle(order_id, "lost-7", refunded=made, transaction_id="tx-1" if made else None)

    # Then it is recorded (made) or its hold given back (not made), and settling again says so
    order = order_of(function_env, order_id)
    if made:
        assert (answer["status"], answer["refundedAmount"]) == ("REFUNDED", 700)
        assert (order["refundedAmount"], order["refundHeld"]) == (700, 0)
        again = refund(function_env, order_id, {"amount": 700, "idempotencyKey": "lost-7"})
        assert (again[0], again[1]["replayed"]) == (200, True)
        assert refunds.settle(order_id, "lost-7", refunded=True)["settled"] == "already recorded"
    else:
        assert answer["status"] == "NOT_REFUNDED"
        assert (order.get("refundedAmount", 0), order["refundHeld"]) == (0, 0)
        # the key is free again: the merchant may refund for real now
        code, again = refund(function_env, order_id, {"amount": 700, "idempotencyKey": "lost-7"})
        assert (code, again["refundedAmount"]) == (200, 700)
    # the CLI's command for it exists, with its help
    assert cli(["refunds", "settle", "--help"]) == 0
    assert "--not-made" in capsys.readouterr().out
