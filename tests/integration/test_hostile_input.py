"""Hostile input to POST /declines and the declines queue (issue 10, "Card data past the
guard" and "500s on bad input"), through the real EvaluateDeclineFunction handler with
the template's environment, against moto server and the FlexFactor emulator.

Every case of the audit is a row: a card number written with tabs or slashes between
its groups, as a JSON float, in full-width digits, under ``payer.id`` or a key named like
an identifier (``sku``); CVVs under ``cvv``, ``cvvCode``, ``card_cvv`` or a top-level
``securityCode``; an ``orderId`` that is a card number; an unknown field nested 255 deep;
``NaN``/``Infinity``; duplicate JSON keys. Each gets a 400 naming the field and the rule,
and nothing happens: no order or idempotency key in the orders table, nothing on the
declines queue, no call to FlexFactor, no card number in the answer or the logs. On the
queue, the same message is dead-lettered at once (redacted, with the field and the rule)
and acknowledged: never five retries.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from decline_rescue.domain.carddata import find_pans
from tests.conftest import EVENTS, api_event, aws_client, invoke
from tests.integration.test_declines import EVALUATE, ORDERS, PAN, cit, mit, post, queue_poller

FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in PAN)
MARK = "Qz7-replace-me-Qz7"


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        node = {"a": node}
    return node


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = body
    for key in parents:
        node = node[key]
    node[last] = value
    return body


def field_is(path: str, value: Any) -> Callable[[dict[str, Any]], str]:
    return lambda body: json.dumps(_set(body, path, value))


def raw_at(path: str, literal: str) -> Callable[[dict[str, Any]], str]:
    """The body with the JSON text ``literal`` (not a string) at ``path``."""
    return lambda body: json.dumps(_set(body, path, MARK)).replace(f'"{MARK}"', literal)


def duplicate_order_id(body: dict[str, Any]) -> str:
    text = json.dumps(body)
    return text[:-1] + ', "orderId": "' + body["orderId"] + '-again"}'


# (id, how the body is made hostile, the field named, the rule)
CASES: list[tuple[str, Callable[[dict[str, Any]], str], str, str]] = [
    ("pan-tabs-payer-id", field_is("payer.id", "4111\t1111\t1111\t1111"), "payer.id", "card_number_not_allowed"),
    ("pan-slashes-payer-id", field_is("payer.id", "4111/1111/1111/1111"), "payer.id", "card_number_not_allowed"),
    ("pan-float-payer-id", raw_at("payer.id", "4111111111111111.0"), "payer.id", "card_number_not_allowed"),
    ("pan-exponent-float", raw_at("reference", "4.111111111111111e15"), "reference", "card_number_not_allowed"),
    ("pan-full-width-payer-id", field_is("payer.id", FULL_WIDTH), "payer.id", "card_number_not_allowed"),
    ("pan-payer-id", field_is("payer.id", PAN), "payer.id", "card_number_not_allowed"),
    ("pan-sku", field_is("orderItems.0.sku", PAN), "orderItems[0].sku", "card_number_not_allowed"),
    ("pan-unknown-sku", field_is("sku", PAN), "sku", "card_number_not_allowed"),
    ("pan-transaction-id", field_is("transaction.id", PAN), "transaction.id", "card_number_not_allowed"),
    ("cvv", field_is("paymentMethod.cvv", "123"), "paymentMethod.cvv", "cvv_not_allowed"),
    ("cvvCode", field_is("paymentMethod.cvvCode", "123"), "paymentMethod.cvvCode", "cvv_not_allowed"),
    ("card_cvv", field_is("card_cvv", "123"), "card_cvv", "cvv_not_allowed"),
    ("top-securityCode", field_is("securityCode", "123"), "securityCode", "cvv_not_allowed"),
    ("orderId-pan", field_is("orderId", PAN), "orderId", "card_number_not_allowed"),
    ("unknown-255-deep", field_is("partnerData", nested(255)), "body", "too_deep"),
    ("nan", raw_at("transaction.amount", "NaN"), "transaction.amount", "not_finite"),
    ("infinity", raw_at("transaction.amount", "Infinity"), "transaction.amount", "not_finite"),
    ("overflow", raw_at("transaction.amount", "1e999"), "transaction.amount", "not_finite"),
    ("duplicate-key", duplicate_order_id, "orderId", "duplicate_key"),
]
IDS = [case[0] for case in CASES]
# what the queue path answers before the strict loader is wired into it (see the report)
QUEUE_NEEDS_LOADER = {"nan", "infinity", "overflow", "duplicate-key"}


@pytest.fixture
def evaluate(function_env, flexfactor_url):
    module, _ = function_env(EVALUATE)
    return module


def _ids(body: dict[str, Any]) -> tuple[list[str], str]:
    order_ids = [body["orderId"], f"{body['orderId']}-again", PAN]
    return order_ids, body["idempotencyKey"]


def nothing_written(stack, moto_url, body: dict[str, Any]) -> None:
    """No order (under any of the body's orderIds) and no idempotency key in the table."""
    ddb = aws_client(moto_url, "dynamodb")
    table = stack.physical_ids["OrdersTable"]
    order_ids, key = _ids(body)
    for pk in [*(f"ORDER#{o}" for o in order_ids), f"IDEM#{key}"]:
        found = ddb.query(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
        )["Items"]
        assert found == [], pk


def queued(stack, moto_url) -> int:
    sqs = aws_client(moto_url, "sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.physical_ids["DeclinesQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def provider_saw(flexfactor, key: str) -> dict[str, Any] | None:
    """What the FlexFactor emulator was sent under ``key`` (None: nothing)."""
    seen = flexfactor[0].evaluations.get(key)
    return json.loads(seen.fingerprint) if seen else None


def details(answer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(d["field"], d["rule"]) for d in answer["error"].get("details", [])}


# -- POST /declines ------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [mit, cit], ids=["mit", "cit"])
@pytest.mark.parametrize(("name", "hostile", "field", "rule"), CASES, ids=IDS)
def test_hostile_decline_is_400_and_nothing_happens(
    evaluate, stack, moto_url, flexfactor, captured_logs, base, name, hostile, field, rule
):
    # Given a decline made hostile in one way
    body = base()
    raw = hostile(copy.deepcopy(body))
    before = queued(stack, moto_url)

    # When it is posted
    result = invoke(evaluate, api_event("evaluate_decline/post_cit.json", raw_body=raw), name=EVALUATE)
    answer = json.loads(result["body"])

    # Then 400 naming the field and the rule, with no card number in the answer
    assert result["statusCode"] == 400, answer
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert (field, rule) in details(answer), answer
    assert find_pans(result["body"]) == [] and FULL_WIDTH not in result["body"]
    # and nothing happened: no order, no key, nothing queued, no provider call, no card in the logs
    nothing_written(stack, moto_url, body)
    assert queued(stack, moto_url) == before
    assert provider_saw(flexfactor, body["idempotencyKey"]) is None
    assert PAN not in find_pans(captured_logs.getvalue())


def test_card_numbers_allowed_change_only_the_card_number(function_env, stack, moto_url, flexfactor, flexfactor_url):
    # Given a stack deployed with AllowCardNumbers=true, and a CIT with the card's number
    # and CVV where they belong, and the number again under payer.id and a CVV under cvvCode
    module, _ = function_env(EVALUATE, ALLOW_CARD_NUMBERS="true")
    body = cit()
    body["paymentMethod"].update(
        cardNumber=PAN, cardBinNumber="411111", cardLast4Digits="1111", cardBrand="VISA", verificationValue="123"
    )
    body["payer"]["id"] = PAN
    body["paymentMethod"]["cvvCode"] = "123"

    # When it is posted
    code, answer = post(module, body)

    # Then only the misplaced ones are refused
    assert code == 400, answer
    assert details(answer) == {("payer.id", "card_number_not_allowed"), ("paymentMethod.cvvCode", "cvv_not_allowed")}
    nothing_written(stack, moto_url, body)
    assert provider_saw(flexfactor, body["idempotencyKey"]) is None


def test_unknown_fields_are_not_forwarded_to_flexfactor(evaluate, flexfactor):
    # Given a CIT with fields outside the contract, and the one vetted extra
    body = cit()
    body["partnerRef"] = "p-1"
    body["payer"]["loyaltyTier"] = "gold"
    body["transaction"]["merchantAdviceCode"] = "24"

    # When it is posted
    code, answer = post(evaluate, body)

    # Then it is submitted, and FlexFactor got the contract's fields and the vetted extra only
    assert code == 200, answer
    sent = provider_saw(flexfactor, body["idempotencyKey"])
    assert sent is not None
    assert "partnerRef" not in sent and "loyaltyTier" not in sent["payer"]
    assert sent["transaction"]["merchantAdviceCode"] == "24"


def test_unknown_fields_are_not_queued(evaluate, stack, moto_url, flexfactor):
    # Given an MIT with fields outside the contract
    body = mit()
    body["partnerRef"] = "p-1"
    body["subscription"]["trialDays"] = 7

    # When it is posted, then the queue delivers it
    code, answer = post(evaluate, body)
    assert code == 202, answer
    sqs = aws_client(moto_url, "sqs")
    messages = sqs.receive_message(
        QueueUrl=stack.physical_ids["DeclinesQueue"], MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    ours = [json.loads(m["Body"]) for m in messages if body["orderId"] in m["Body"]]
    poller = queue_poller(stack, moto_url, evaluate)
    for _ in range(10):
        if not poller.poll_once():
            break

    # Then neither the queued message nor what FlexFactor got holds them
    assert ours and all("partnerRef" not in m and "trialDays" not in m["subscription"] for m in ours)
    sent = provider_saw(flexfactor, body["idempotencyKey"])
    assert sent is not None and "partnerRef" not in sent and "trialDays" not in sent["subscription"]


# -- the declines queue ------------------------------------------------------------------------


def dead_letters(stack, moto_url, message_id: str) -> list[dict[str, Any]]:
    """The DLQ messages for ``message_id`` (deleted once read)."""
    sqs = aws_client(moto_url, "sqs")
    dlq = stack.physical_ids["DeclinesDeadLetterQueue"]
    found = []
    for _ in range(10):
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        mine = [m for m in messages if m["MessageAttributes"]["sourceMessageId"]["StringValue"] == message_id]
        for m in mine:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
        found += mine
        if mine or not messages:
            break
    return found


@pytest.mark.parametrize(("name", "hostile", "field", "rule"), CASES, ids=IDS)
def test_hostile_queue_message_is_dead_lettered_at_once_redacted(
    evaluate, stack, moto_url, flexfactor, captured_logs, name, hostile, field, rule
):
    # Given a billing system's message made hostile in one way
    body = mit()
    message_id = f"hostile-{uuid.uuid4().hex[:8]}"
    event = json.loads((EVENTS / "evaluate_decline" / "sqs_mit.json").read_text())
    event["Records"] = [{**event["Records"][0], "messageId": message_id, "body": hostile(copy.deepcopy(body))}]

    # When the consumer gets it
    result = invoke(evaluate, event, name=EVALUATE)

    # Then it is acknowledged (no redelivery) and dead-lettered once, naming the field and
    # the rule, with no card number or CVV in the letter; nothing else happened
    assert result == {"batchItemFailures": []}
    letters = dead_letters(stack, moto_url, message_id)
    assert len(letters) == 1
    letter = letters[0]["Body"]
    assert find_pans(letter) == [] and FULL_WIDTH not in letter and '"123"' not in letter
    error = json.loads(letter)["error"]
    assert error["code"] == "INVALID_REQUEST"
    named = {(f.split(".")[0] if r == "too_deep" else f, r) for f, r in details(json.loads(letter))}
    expected = ("body", rule) if rule == "too_deep" else (field, rule)
    assert expected in named or (rule == "too_deep" and ("partnerData", rule) in named), error
    nothing_written(stack, moto_url, body)
    assert provider_saw(flexfactor, body["idempotencyKey"]) is None
    assert PAN not in find_pans(captured_logs.getvalue())


# -- path parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_id", "rule"),
    [(PAN, "card_number_not_allowed"), ("4111-1111-1111-1111", "card_number_not_allowed"), ("x" * 200, "format")],
    ids=["pan", "pan-dashes", "too-long"],
)
def test_an_order_id_path_parameter_is_checked(function_env, order_id, rule):
    # Given GET /orders/{orderId} with an orderId no order can have
    module, _ = function_env(ORDERS)
    event = api_event("orders_api/get_order.json")
    event["path"] = f"/orders/{order_id}"
    event["pathParameters"] = {"orderId": order_id}

    # When it is read / Then 400 naming orderId and the rule (not a lookup, not a 404)
    result = invoke(module, event, name=ORDERS)
    answer = json.loads(result["body"])
    assert result["statusCode"] == 400, answer
    assert ("orderId", rule) in details(answer)
    assert find_pans(result["body"]) == []
