"""evaluate_decline and orders_api through the events API Gateway and SQS send, with the
template's environment, against moto server and the FlexFactor emulator over HTTP."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decline_rescue.domain.carddata import find_pans
from devstack.pollers import SqsPoller
from devstack.provision import EventSourceMapping
from tests.conftest import api_event, aws_client, invoke, queue_faults

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED_CIT = json.loads((FIXTURES / "seed_cit_corrected.json").read_text())["request"]
SEED_MIT = json.loads((FIXTURES / "seed_mit_corrected.json").read_text())["request"]
EVALUATE = "EvaluateDeclineFunction"
ORDERS = "OrdersApiFunction"
PAN = "4111111111111111"


def now() -> datetime:
    return datetime.now(UTC)


def cit(**changes) -> dict:
    """A fresh, valid customer-initiated decline (the corrected seed example)."""
    body = copy.deepcopy(SEED_CIT)
    body["orderId"] = f"ord-{uuid.uuid4().hex[:12]}"
    body["idempotencyKey"] = str(uuid.uuid4())
    body["transaction"]["timestampUtc"] = now().isoformat()
    body["transaction"]["amount"] = 1999
    body["transaction"]["responseCode"] = "51"
    body["paymentMethod"].update(
        cardLast4Digits="4444", cardBinNumber="555555", cardBrand="MASTERCARD", cardFingerprint=uuid.uuid4().hex
    )
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return body


def mit(**changes) -> dict:
    body = copy.deepcopy(SEED_MIT)
    body["orderId"] = f"mit-{uuid.uuid4().hex[:12]}"
    body["idempotencyKey"] = str(uuid.uuid4())
    body["transaction"]["timestampUtc"] = now().isoformat()
    body["expiryDateUtc"] = (now() + timedelta(days=10)).isoformat()
    body["paymentMethod"]["cardFingerprint"] = uuid.uuid4().hex
    body["paymentMethod"]["cardLast4Digits"] = "0007"
    body.update(changes)
    return body


@pytest.fixture
def evaluate(function_env, flexfactor_url):
    module, _ = function_env(EVALUATE)
    return module


def post(module, body, raw: str | None = None):
    result = invoke(module, api_event("evaluate_decline/post_cit.json", body, raw_body=raw), name=EVALUATE)
    return result["statusCode"], json.loads(result["body"])


def get_order(function_env, order_id: str):
    module, _ = function_env(ORDERS)
    event = api_event("orders_api/get_order.json")
    event["path"] = f"/orders/{order_id}"
    event["pathParameters"] = {"orderId": order_id}
    result = invoke(module, event, name=ORDERS)
    return result["statusCode"], json.loads(result["body"])


def evaluations(flexfactor_url: str, key: str) -> int:
    return httpx.get(flexfactor_url + "/__emulator/stats").json()["evaluations"].get(key, 0)


def stats(flexfactor_url: str) -> dict:
    return httpx.get(flexfactor_url + "/__emulator/stats").json()


# -- customer-initiated, in sync ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, "APPROVED"),
        (
            {
                "paymentMethod__cardLast4Digits": "1111",
                "paymentMethod__cardBinNumber": "411111",
                "paymentMethod__cardBrand": "VISA",
            },
            "CHALLENGE",
        ),
        (
            {
                "paymentMethod__cardLast4Digits": "1111",
                "paymentMethod__cardBinNumber": "411111",
                "paymentMethod__cardBrand": "VISA",
                "payer__phone": None,
            },
            "DECLINED",
        ),
        ({"transactionType": "AUTHORIZATION"}, "CAPTUREREQUIRED"),
    ],
    ids=["approved", "challenge", "declined", "capture-required"],
)
def test_cit_is_submitted_in_sync(evaluate, function_env, flexfactor_url, changes, status):
    body = cit(**changes)
    code, answer = post(evaluate, body)
    assert code == 200, answer
    assert answer["status"] == status and answer["submitted"] is True
    assert answer["orderId"] == body["orderId"] and uuid.UUID(answer["orderSessionKey"])
    code, order = get_order(function_env, body["orderId"])
    assert code == 200
    assert order["status"] == status and order["orderSessionKey"] == answer["orderSessionKey"]
    assert order["card"] == {
        "bin": body["paymentMethod"]["cardBinNumber"],
        "last4": body["paymentMethod"]["cardLast4Digits"],
        "brand": body["paymentMethod"]["cardBrand"],
        "expirationMonth": 12,
        "expirationYear": 2028,
    }
    assert [h["status"] for h in order["history"]] == ["RECEIVED", status]
    assert body["paymentMethod"]["cardNumber"] not in json.dumps(order)


def test_seed_cit_example_corrected_is_accepted(evaluate, flexfactor_url):
    body = copy.deepcopy(SEED_CIT)
    body["orderId"], body["idempotencyKey"] = f"seed-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    code, answer = post(evaluate, body)
    assert code == 200 and answer["submitted"] is True
    assert answer["status"] == "CHALLENGE"  # 4111...1111 with a payer phone, as the sandbox does


def test_seed_mit_example_with_month_and_year_swapped_is_refused(evaluate):
    body = mit()
    body["paymentMethod"]["expirationMonth"], body["paymentMethod"]["expirationYear"] = 2028, 12
    code, answer = post(evaluate, body)
    assert code == 400
    fields = {d["field"]: d["rule"] for d in answer["error"]["details"]}
    assert fields == {"paymentMethod.expirationMonth": "month", "paymentMethod.expirationYear": "year"}
    assert "swapped" in answer["error"]["details"][0]["message"]


def test_never_retry_code_is_not_submitted_and_no_provider_call(evaluate, function_env, flexfactor_url):
    body = cit(transaction__responseCode="14")
    before = stats(flexfactor_url)["orders"]
    code, answer = post(evaluate, body)
    assert code == 200
    assert answer["status"] == "NOT_SUBMITTED" and answer["submitted"] is False
    assert answer["reason"]["rule"] == "issuer_never_approves" and answer["reason"]["rulesVersion"]
    assert stats(flexfactor_url)["orders"] == before
    assert get_order(function_env, body["orderId"])[1]["reason"]["rule"] == "issuer_never_approves"


def test_amount_out_of_range_is_not_submitted(evaluate, flexfactor_url):
    code, answer = post(evaluate, cit(transaction__amount=20000))
    assert (code, answer["status"], answer["reason"]["rule"]) == (200, "NOT_SUBMITTED", "amount_out_of_range")


# -- idempotency --------------------------------------------------------------------------


def test_repeat_returns_the_first_answer_without_a_second_call(evaluate, flexfactor_url):
    body = cit()
    first = post(evaluate, body)
    assert [post(evaluate, body) for _ in range(3)] == [first] * 3
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_same_key_other_payload_is_409(evaluate, flexfactor_url):
    body = cit()
    assert post(evaluate, body)[0] == 200
    other = copy.deepcopy(body)
    other["transaction"]["amount"] += 1
    code, answer = post(evaluate, other)
    assert code == 409 and answer["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_order_id_reused_with_another_key_is_409(evaluate, flexfactor_url):
    body = cit()
    assert post(evaluate, body)[0] == 200
    again = copy.deepcopy(body)
    again["idempotencyKey"] = str(uuid.uuid4())
    code, answer = post(evaluate, again)
    assert code == 409 and answer["error"]["code"] == "ORDER_CONFLICT"


# -- provider behaviour -------------------------------------------------------------------


def test_provider_400_is_surfaced_field_by_field(function_env, flexfactor_url):
    module, _ = function_env(EVALUATE, AMOUNT_MIN_EXCLUSIVE_CENTS="0")  # let the sandbox rule decide
    code, answer = post(module, cit(transaction__amount=5))
    assert code == 400
    assert answer["error"]["code"] == "PROVIDER_VALIDATION_FAILED"
    assert answer["error"]["details"][0]["field"] == "transaction.amount"


def test_401_refreshes_the_token_once(evaluate, flexfactor_url):
    assert post(evaluate, cit())[0] == 200  # a token is cached
    tokens = stats(flexfactor_url)["counts"].get("token", 0)
    queue_faults(flexfactor_url, "evaluate", {"status": 401})
    code, answer = post(evaluate, cit())
    assert code == 200, answer
    assert stats(flexfactor_url)["counts"]["token"] == tokens + 1


def test_token_is_reused_across_invocations(evaluate, flexfactor_url):
    post(evaluate, cit())
    tokens = stats(flexfactor_url)["counts"].get("token", 0)
    for _ in range(3):
        post(evaluate, cit())
    assert stats(flexfactor_url)["counts"]["token"] == tokens


def test_5xx_then_success_keeps_the_idempotency_key(evaluate, flexfactor_url):
    body = cit()
    queue_faults(flexfactor_url, "evaluate", {"status": 500}, {"status": 503})
    code, answer = post(evaluate, body)
    assert code == 200 and answer["submitted"]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_409_in_progress_is_retried(evaluate, flexfactor_url):
    queue_faults(flexfactor_url, "evaluate", {"status": 409})
    assert post(evaluate, cit())[0] == 200


def test_timeout_then_retry_makes_one_rescue(function_env, flexfactor_url):
    """The provider got the first request but answered too late: the caller's retry with
    the same idempotencyKey is answered from the provider's record, not a new rescue."""
    module, _ = function_env(EVALUATE, FLEXFACTOR_READ_TIMEOUT_SECONDS="0.3", FLEXFACTOR_BUDGET_SECONDS="0.9")
    body = cit()
    queue_faults(flexfactor_url, "evaluate", {"delay": 0.5}, {"delay": 0.5}, {"delay": 0.5})
    code, answer = post(module, body)
    assert code == 504 and answer["error"]["code"] == "PROVIDER_TIMEOUT"
    import time

    time.sleep(0.6)  # the late answers land at the provider
    httpx.delete(flexfactor_url + "/__emulator/faults")  # (faults the first request's budget left unused)
    code, answer = post(module, body)
    assert code == 200 and answer["submitted"]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_provider_down_is_503_and_the_order_waits_as_received(evaluate, function_env, flexfactor_url):
    body = cit()
    queue_faults(flexfactor_url, "evaluate", *[{"status": 502}] * 3)
    code, answer = post(evaluate, body)
    assert code == 503 and answer["error"]["code"] == "PROVIDER_UNAVAILABLE"
    order = get_order(function_env, body["orderId"])[1]
    assert order["status"] == "RECEIVED" and "orderSessionKey" not in order
    code, answer = post(evaluate, body)
    assert code == 200 and answer["submitted"], "the same request succeeds once the provider is back"
    assert [h["status"] for h in get_order(function_env, body["orderId"])[1]["history"]] == ["RECEIVED", "APPROVED"]


def test_concurrent_requests_for_one_order_reach_the_provider_once(function_env, flexfactor_url):
    """Two keys, one orderId, at the same time: the order is claimed before the call."""
    from concurrent.futures import ThreadPoolExecutor

    module, _ = function_env(EVALUATE)
    first = cit()
    second = copy.deepcopy(first)
    second["idempotencyKey"] = str(uuid.uuid4())
    queue_faults(flexfactor_url, "evaluate", {"delay": 0.4}, {"delay": 0.4})
    before = stats(flexfactor_url)["orders"]
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(code for code, _ in pool.map(lambda b: post(module, b), [first, second]))
    assert codes == [200, 409]
    assert stats(flexfactor_url)["orders"] - before == 1


# -- merchant-initiated: API, queue, DLQ -----------------------------------------------------


def queue_poller(stack, moto_url, module, *, retry_delay=0, dlq=False):
    mapping = next(m for m in stack.event_sources if m.function == EVALUATE)
    if dlq:
        mapping = EventSourceMapping(EVALUATE, mapping.queue_arn, 10, True, 0)

    def call(function, event):
        try:
            return True, invoke(module, event, name=EVALUATE)
        except Exception as exc:  # noqa: BLE001 - the poller sees a function error
            return False, {"errorMessage": str(exc)}

    return SqsPoller(mapping, aws_client(moto_url, "sqs"), call, retry_delay=retry_delay, wait_seconds=0)


def drain(poller, rounds=10):
    total = 0
    for _ in range(rounds):
        n = poller.poll_once()
        total += n
        if not n:
            break
    return total


def test_mit_is_queued_then_submitted(evaluate, function_env, flexfactor_url, stack, moto_url):
    body = mit()
    code, answer = post(evaluate, body)
    assert code == 202 and answer == {"orderId": body["orderId"], "status": "QUEUED", "submitted": False}
    assert get_order(function_env, body["orderId"])[1]["status"] == "QUEUED"
    assert drain(queue_poller(stack, moto_url, evaluate)) >= 1
    code, order = get_order(function_env, body["orderId"])
    assert order["status"] == "SUBMITTED" and order["lastSource"] == "queue"
    assert [h["status"] for h in order["history"]] == ["QUEUED", "SUBMITTED"]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1
    assert post(evaluate, body) == (202, answer), "a repeat gets the first answer"


def test_mit_sync_approval_from_the_queue(evaluate, function_env, flexfactor_url, stack, moto_url):
    body = mit()
    body["paymentMethod"]["cardLast4Digits"] = "3184"  # the sandbox's MIT approval card
    post(evaluate, body)
    drain(queue_poller(stack, moto_url, evaluate))
    assert get_order(function_env, body["orderId"])[1]["status"] == "APPROVED"


def send(moto_url, stack, *bodies: str) -> None:
    sqs = aws_client(moto_url, "sqs")
    url = stack.physical_ids["DeclinesQueue"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])


def test_billing_system_messages_with_duplicates_and_a_bad_one(evaluate, function_env, flexfactor_url, stack, moto_url):
    good, other = mit(), mit()
    send(moto_url, stack, json.dumps(good), json.dumps(good), json.dumps(other), "{not json")
    poller = queue_poller(stack, moto_url, evaluate, retry_delay=0)
    drain(poller)
    for body in (good, other):
        assert get_order(function_env, body["orderId"])[1]["status"] == "SUBMITTED"
        assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_partial_batch_failure_reports_only_the_failed_record(evaluate, function_env, flexfactor_url, stack, moto_url):
    """A transient failure is reported for redelivery; an invalid record goes to the DLQ
    at once (redacted), not through five useless receives; the good one is done."""
    event = json.loads((Path(__file__).parents[2] / "events" / "evaluate_decline" / "sqs_mit.json").read_text())
    failing, good = copy.deepcopy(event["Records"][0]), copy.deepcopy(event["Records"][0])
    good_body = mit()
    failing["messageId"], failing["body"] = "transient-1", json.dumps(mit())
    good["messageId"], good["body"] = "good-1", json.dumps(good_body)
    invalid = copy.deepcopy(good)
    invalid["messageId"] = "invalid-1"
    invalid["body"] = json.dumps({"isDeclined": True, "paymentMethod": {"cardNumber": PAN, "verificationValue": "321"}})
    queue_faults(flexfactor_url, "evaluate", *[{"status": 500}] * 3)  # taken by the first record
    result = invoke(evaluate, {"Records": [failing, invalid, good]}, name=EVALUATE)
    assert result == {"batchItemFailures": [{"itemIdentifier": "transient-1"}]}
    assert get_order(function_env, good_body["orderId"])[1]["status"] == "SUBMITTED"
    sqs = aws_client(moto_url, "sqs")
    dlq = stack.physical_ids["DeclinesDeadLetterQueue"]
    messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    rejected = [m for m in messages if m["MessageAttributes"]["sourceMessageId"]["StringValue"] == "invalid-1"]
    assert len(rejected) == 1
    assert PAN not in rejected[0]["Body"] and "321" not in rejected[0]["Body"]
    assert json.loads(rejected[0]["Body"])["error"]["code"] == "INVALID_REQUEST"
    for m in messages:
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])


def test_one_key_names_one_decline_across_cit_and_mit(evaluate, flexfactor_url):
    # Given a customer-initiated decline answered under a key
    body = cit()
    assert post(evaluate, body)[0] == 200

    # When the same key comes with a merchant-initiated decline (another order)
    other = mit(idempotencyKey=body["idempotencyKey"])
    code, answer = post(evaluate, other)

    # Then it is refused: one key space for CIT and MIT, API and queue
    assert code == 409 and answer["error"]["code"] == "IDEMPOTENCY_KEY_REUSED", answer


def test_a_queued_decline_whose_key_is_taken_is_dead_lettered_at_once(evaluate, flexfactor_url, stack, moto_url):
    # Given a decline answered under a key, and a queued one reusing that key for another order
    body = cit()
    assert post(evaluate, body)[0] == 200
    event = json.loads((Path(__file__).parents[2] / "events" / "evaluate_decline" / "sqs_mit.json").read_text())
    record = copy.deepcopy(event["Records"][0])
    record["messageId"], record["body"] = "key-taken-1", json.dumps(mit(idempotencyKey=body["idempotencyKey"]))

    # When the consumer gets it
    result = invoke(evaluate, {"Records": [record]}, name=EVALUATE)

    # Then it is not retried five times: it is on the DLQ now, with why
    assert result == {"batchItemFailures": []}
    sqs = aws_client(moto_url, "sqs")
    dlq = stack.physical_ids["DeclinesDeadLetterQueue"]
    messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    mine = [m for m in messages if m["MessageAttributes"]["sourceMessageId"]["StringValue"] == "key-taken-1"]
    assert len(mine) == 1
    assert json.loads(mine[0]["Body"])["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    for m in messages:
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])


def test_repeated_failure_ends_in_the_dlq(evaluate, flexfactor_url, stack, moto_url):
    body = mit()
    queue_faults(flexfactor_url, "evaluate", *[{"status": 500}] * 18)
    send(moto_url, stack, json.dumps(body))
    poller = queue_poller(stack, moto_url, evaluate, retry_delay=0)
    for _ in range(6):  # maxReceiveCount is 5
        poller.poll_once()
    sqs = aws_client(moto_url, "sqs")
    dlq = sqs.receive_message(QueueUrl=stack.physical_ids["DeclinesDeadLetterQueue"], MaxNumberOfMessages=10)
    bodies = [m["Body"] for m in dlq.get("Messages", [])]
    assert any(body["orderId"] in b for b in bodies)
    for m in dlq.get("Messages", []):
        sqs.delete_message(QueueUrl=stack.physical_ids["DeclinesDeadLetterQueue"], ReceiptHandle=m["ReceiptHandle"])


def test_the_seed_mit_example_through_the_queue_event(evaluate, function_env, flexfactor_url):
    """The sample SQS event of events/, as Lambda's poller would deliver it."""
    event = json.loads((Path(__file__).parents[2] / "events" / "evaluate_decline" / "sqs_mit.json").read_text())
    body = mit()
    event["Records"][0]["body"] = json.dumps(body)
    assert invoke(evaluate, event, name=EVALUATE) == {"batchItemFailures": []}
    assert get_order(function_env, body["orderId"])[1]["status"] == "SUBMITTED"


# -- card data ------------------------------------------------------------------------------


def test_card_number_refused_by_default(evaluate, flexfactor_url):
    body = cit()
    body["paymentMethod"].update(cardNumber=PAN, token=False)
    code, answer = post(evaluate, body)
    assert code == 400
    assert answer["error"]["details"][0]["field"] == "paymentMethod.cardNumber"
    assert PAN not in json.dumps(answer)


def test_allowed_card_numbers_never_reach_tables_queues_or_logs(
    function_env, flexfactor_url, stack, moto_url, captured_logs
):
    module, _ = function_env(EVALUATE, ALLOW_CARD_NUMBERS="true")
    cit_body = cit()
    cit_body["paymentMethod"].update(
        cardNumber=PAN,
        cardBinNumber="411111",
        cardLast4Digits="1111",
        cardBrand="VISA",
        verificationValue="123",
        token=False,
    )
    assert post(module, cit_body)[0] == 200
    mit_body = mit()
    mit_body["paymentMethod"].update(cardNumber=PAN, cardBinNumber="411111", cardLast4Digits="1111", token=False)
    code, answer = post(module, mit_body)
    assert code == 200 and answer["status"] == "SUBMITTED", "a raw number is submitted in the request, not queued"
    ddb = aws_client(moto_url, "dynamodb")
    for table in ("OrdersTable",):
        items = ddb.scan(TableName=stack.physical_ids[table])["Items"]
        assert items
        for item in items:
            assert PAN not in find_pans(json.dumps(item)), item
            assert '"123"' not in json.dumps(item), item
    sqs = aws_client(moto_url, "sqs")
    for queue in ("DeclinesQueue", "DeclinesDeadLetterQueue"):
        messages = sqs.receive_message(
            QueueUrl=stack.physical_ids[queue], MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        assert PAN not in find_pans(json.dumps(messages))
    logs = captured_logs.getvalue()
    assert '"message":"decline submitted"' in logs  # the functions' log lines were really captured
    assert PAN not in find_pans(logs)
    assert '"123"' not in logs


# -- no accepted payload lost or doubled ------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from(["api", "queue"]), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_no_accepted_payload_is_lost_or_doubled(evaluate, function_env, flexfactor_url, stack, moto_url, plan):
    payloads = [mit() if i % 2 else cit() for i in range(4)]
    poller = queue_poller(stack, moto_url, evaluate, retry_delay=0)
    accepted = set()
    for index, channel, fault in plan:
        body = payloads[index]
        if fault:
            queue_faults(flexfactor_url, "evaluate", {"status": 503})
        if channel == "api":
            code, _ = post(evaluate, body)
            if code in (200, 202):
                accepted.add(index)
        else:
            send(moto_url, stack, json.dumps(body))
            accepted.add(index)
    httpx.delete(flexfactor_url + "/__emulator/faults")
    drain(poller, rounds=20)
    for index in accepted:
        body = payloads[index]
        code, order = get_order(function_env, body["orderId"])
        assert code == 200, f"accepted payload {index} has no order"
        assert order["status"] in {"APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "SUBMITTED"}
        assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1
        assert order["history"][0]["status"] in ("QUEUED", "RECEIVED")
        assert len(order["history"]) == 2


# -- crashes between steps ------------------------------------------------------------------


def test_lost_idempotency_record_is_answered_from_the_order(evaluate, flexfactor_url, stack, moto_url):
    """If the key's record is gone (its TTL), the order itself answers: no second
    provider call, no second reattempt counted."""
    from decline_rescue.domain import eligibility
    from decline_rescue.domain.contract import validate_request
    from decline_rescue.infra.orders_store import OrdersTable

    body = cit()
    first = post(evaluate, body)
    ddb = aws_client(moto_url, "dynamodb")
    table = stack.physical_ids["OrdersTable"]
    ddb.delete_item(TableName=table, Key={"pk": {"S": f"IDEM#{body['idempotencyKey']}"}, "sk": {"S": "IDEM"}})
    assert post(evaluate, body) == first
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1
    request = validate_request({**body, "mid": "m"})
    days, _ = OrdersTable(stack.physical_ids["OrdersTable"]).card_days(eligibility.card_key(request), now().date(), 30)
    assert days == {now().date().isoformat(): 1}, "one reattempt reserved, not two"


def test_queue_send_failure_is_503_and_the_retry_queues_it(function_env, flexfactor_url, stack, moto_url):
    body = mit()
    broken, _ = function_env(EVALUATE, DECLINES_QUEUE_URL=stack.physical_ids["DeclinesQueue"] + "-missing")
    code, answer = post(broken, body)
    assert code == 503 and answer["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
    assert get_order(function_env, body["orderId"])[1]["status"] == "QUEUED"
    module, _ = function_env(EVALUATE)
    assert post(module, body) == (202, {"orderId": body["orderId"], "status": "QUEUED", "submitted": False})
    drain(queue_poller(stack, moto_url, module))
    assert get_order(function_env, body["orderId"])[1]["status"] == "SUBMITTED"
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_provider_refusal_of_a_queued_decline_is_recorded_not_retried(function_env, flexfactor_url, stack, moto_url):
    module, _ = function_env(EVALUATE, AMOUNT_MIN_EXCLUSIVE_CENTS="0")
    body = mit()
    body["transaction"]["amount"] = 5  # the sandbox refuses it; our bounds let it through
    assert post(module, body)[0] == 202
    poller = queue_poller(stack, moto_url, module)
    drain(poller)
    _code, order = get_order(function_env, body["orderId"])
    assert order["status"] == "NOT_SUBMITTED"
    assert order["reason"]["rule"] == "provider_validation"
    assert order["reason"]["errors"][0]["field"] == "transaction.amount"
    assert poller.poll_once() == 0, "the message was consumed, not left to retry into the DLQ"


def test_a_queued_decline_invalid_when_dequeued_ends_not_submitted(function_env, flexfactor_url, stack, moto_url):
    """An MIT accepted QUEUED whose expiryDateUtc passes while its message waits: the order
    ends NOT_SUBMITTED with why, instead of a message dead-lettered and sent again forever."""
    import time

    # Given an MIT accepted through the API, expiring in a moment
    body = mit(expiryDateUtc=(now() + timedelta(seconds=1.5)).isoformat())
    evaluate, _ = function_env(EVALUATE)
    assert post(evaluate, body)[0] == 202

    # When its message is taken off the queue after the expiry
    time.sleep(2.0)
    event = json.loads((Path(__file__).parents[2] / "events" / "evaluate_decline" / "sqs_mit.json").read_text())
    record = copy.deepcopy(event["Records"][0])
    record["messageId"], record["body"] = "expired-1", json.dumps(body)
    assert invoke(evaluate, {"Records": [record]}, name=EVALUATE) == {"batchItemFailures": []}

    # Then the order is NOT_SUBMITTED with the rule, and nothing was dead-lettered for it
    order = get_order(function_env, body["orderId"])[1]
    assert order["status"] == "NOT_SUBMITTED" and order["reason"]["rule"] == "invalid_when_dequeued"
    assert order["reason"]["errors"][0]["field"] == "expiryDateUtc"
    sqs = aws_client(moto_url, "sqs")
    dlq = sqs.receive_message(
        QueueUrl=stack.physical_ids["DeclinesDeadLetterQueue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert not [m for m in dlq if m["MessageAttributes"]["sourceMessageId"]["StringValue"] == "expired-1"]


def test_the_same_key_with_another_card_token_is_refused(evaluate, flexfactor_url):
    # Given a decline answered under a key
    body = cit()
    assert post(evaluate, body)[0] == 200

    # When the same key comes with another card's payment token (all else the same)
    other = copy.deepcopy(body)
    other["paymentMethod"]["cardNumber"] = "tok_" + uuid.uuid4().hex

    # Then it is another payment: refused, not answered with the first card's outcome
    code, answer = post(evaluate, other)
    assert code == 409 and answer["error"]["code"] == "IDEMPOTENCY_KEY_REUSED", answer
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_a_queued_decline_is_its_orders_whatever_fingerprint_an_earlier_version_stored(
    function_env, flexfactor_url, stack, moto_url
):
    """A deploy that changes how fingerprints are made must not strand the declines
    already queued: the very message the order was accepted with is that order's."""
    # Given an MIT accepted QUEUED, whose stored fingerprint an earlier version made differently
    body = mit()
    evaluate, _ = function_env(EVALUATE)
    assert post(evaluate, body)[0] == 202
    ddb = aws_client(moto_url, "dynamodb")
    key = {"pk": {"S": f"ORDER#{body['orderId']}"}, "sk": {"S": "STATE"}}
    table = stack.physical_ids["OrdersTable"]
    ddb.update_item(
        TableName=table, Key=key, UpdateExpression="SET fingerprint = :f", ExpressionAttributeValues={":f": {"S": "v0"}}
    )
    message = ddb.get_item(TableName=table, Key=key)["Item"]["queuedMessage"]["S"]

    # When the consumer takes that message off the queue
    event = json.loads((Path(__file__).parents[2] / "events" / "evaluate_decline" / "sqs_mit.json").read_text())
    record = copy.deepcopy(event["Records"][0])
    record["messageId"], record["body"] = "queued-before-deploy", message
    assert invoke(evaluate, {"Records": [record]}, name=EVALUATE) == {"batchItemFailures": []}

    # Then it is submitted, not refused as another payload
    assert get_order(function_env, body["orderId"])[1]["status"] == "SUBMITTED"
