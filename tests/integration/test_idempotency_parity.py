"""decline-rescue's idempotency (the claim, its key and its lease, in the orders table,
``services/declines.py``) held to the behaviour of Powertools' idempotency, which it
replaced: the same scenarios, run on both, must give the caller the same outcomes and
FlexFactor the same number of evaluations.

Both sides do the same work, one FlexFactor ``/v1/evaluate`` through the project's client
against the emulator: Powertools' ``idempotent_function`` around it (its records in a
table of their own, as decline-rescue had it), and evaluate_decline's handler through an
API Gateway event. Outcomes: the answer, a key reused with another payload, a request
still in progress, or a failure the caller retries."""

from __future__ import annotations

import copy
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from devstack.runtime import LambdaContext
from tests.conftest import api_event, aws_client, invoke, queue_faults
from tests.integration.test_declines import EVALUATE, cit, evaluations

ANSWER, CONFLICT, IN_PROGRESS, FAILED = "answer", "conflict", "in_progress", "failed"


@dataclass(frozen=True)
class Outcome:
    kind: str
    answer: dict | None = None


class Ours:
    """evaluate_decline, as API Gateway invokes it."""

    name = "decline-rescue"

    def __init__(self, function_env) -> None:
        self.module, _ = function_env(EVALUATE)

    def call(self, body: dict) -> Outcome:
        result = invoke(self.module, api_event("evaluate_decline/post_cit.json", body), name=EVALUATE)
        answer = json.loads(result["body"])
        if result["statusCode"] == 200:
            return Outcome(ANSWER, answer)
        code = answer["error"]["code"]
        if code == "IDEMPOTENCY_KEY_REUSED":
            return Outcome(CONFLICT)
        if code == "REQUEST_IN_PROGRESS":
            return Outcome(IN_PROGRESS)
        assert result["statusCode"] >= 500, answer
        return Outcome(FAILED)

    def died_mid_way(self, body: dict, lease_ms: int) -> None:
        """What a request leaves when its invocation dies after claiming the order."""
        from decline_rescue.domain.contract import validate_request
        from decline_rescue.services import writer

        request = validate_request(body)
        writer.create(
            request.safe_summary(),
            status="RECEIVED",
            source="api",
            fields={"fingerprint": request.fingerprint(), "leaseUntil": int(time.time() * 1000) + lease_ms},
            idempotency_key=request.idempotency_key,
        )


class Powertools:
    """Powertools' idempotent_function around the same evaluation (as decline-rescue used it)."""

    name = "powertools"

    def __init__(self, function_env, moto_url: str, table: str) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        function_env(EVALUATE)  # the FlexFactor client's settings and credentials
        self.context = LambdaContext(EVALUATE, 512, 30)
        self.store = DynamoDBPersistenceLayer(table_name=table, boto3_client=aws_client(moto_url, "dynamodb"))
        self.config = IdempotencyConfig(
            event_key_jmespath="idempotencyKey",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=3600,
            raise_on_no_idempotency_key=True,
        )

        @idempotent_function(
            data_keyword_argument="key", persistence_store=self.store, config=self.config, key_prefix="submit"
        )
        def run(key: dict, body: dict) -> dict:
            from decline_rescue.domain.contract import validate_request
            from decline_rescue.runtime import wiring

            answer = wiring.flexfactor().evaluate(validate_request(body).to_provider())
            return {
                "orderId": body["orderId"],
                "status": answer.status,
                "orderSessionKey": answer.order_session_key,
                "submitted": True,
            }

        self.run = run
        self.config.register_lambda_context(self.context)  # as decline-rescue's handler did

    @staticmethod
    def _key(body: dict) -> dict:
        from decline_rescue.domain.contract import validate_request

        return {"idempotencyKey": body["idempotencyKey"], "fingerprint": validate_request(body).fingerprint()}

    def call(self, body: dict) -> Outcome:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        from decline_rescue.domain.errors import DeclineRescueError

        try:
            return Outcome(ANSWER, self.run(key=self._key(body), body=body))
        except IdempotencyValidationError:
            return Outcome(CONFLICT)
        except IdempotencyAlreadyInProgressError:
            return Outcome(IN_PROGRESS)
        except DeclineRescueError:
            return Outcome(FAILED)

    def died_mid_way(self, body: dict, lease_ms: int) -> None:
        self.store.configure(self.config, key_prefix="submit")
        self.store.save_inprogress(data=self._key(body), remaining_time_in_millis=lease_ms)


@pytest.fixture(scope="module")
def powertools_table(moto_url):
    ddb = aws_client(moto_url, "dynamodb")
    name = f"powertools-idempotency-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture(params=["powertools", "decline-rescue"])
def side(request, function_env, moto_url, powertools_table, flexfactor_url):
    if request.param == "powertools":
        return Powertools(function_env, moto_url, powertools_table)
    return Ours(function_env)


# Each scenario: what the caller sees, step by step, and how many evaluations FlexFactor
# made; the test runs it on both sides and both must match it.


def test_a_repeat_gets_the_first_answer_without_a_second_evaluation(side, flexfactor_url):
    body = cit()
    outcomes = [side.call(body) for _ in range(3)]
    assert [o.kind for o in outcomes] == [ANSWER] * 3
    assert outcomes[1].answer == outcomes[0].answer == outcomes[2].answer
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_the_same_key_with_another_payload_is_refused(side, flexfactor_url):
    body = cit()
    other = copy.deepcopy(body)
    other["transaction"]["amount"] += 1
    assert [side.call(body).kind, side.call(other).kind] == [ANSWER, CONFLICT]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_a_failed_request_is_run_again_by_its_retry(side, flexfactor_url):
    body = cit()
    queue_faults(flexfactor_url, "evaluate", *[{"status": 502}] * 3)
    assert [side.call(body).kind, side.call(body).kind] == [FAILED, ANSWER]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_a_repeat_while_the_first_is_at_work_is_told_so(side, flexfactor_url):
    body = cit()
    queue_faults(flexfactor_url, "evaluate", {"delay": 2.5})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(side.call, body)
        time.sleep(1.0)  # the first has claimed its key and is waiting on FlexFactor
        second = pool.submit(side.call, body)
        kinds = [first.result().kind, second.result().kind]
    assert kinds == [ANSWER, IN_PROGRESS]
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_a_request_that_died_holds_its_key_until_its_invocation_would_have_ended(side, flexfactor_url):
    body = cit()
    side.died_mid_way(body, lease_ms=1500)
    assert side.call(body).kind == IN_PROGRESS
    time.sleep(1.6)
    assert side.call(body).kind == ANSWER
    assert evaluations(flexfactor_url, body["idempotencyKey"]) == 1


def test_one_key_for_two_orders_is_refused(side, flexfactor_url):
    """The key names one decline, whichever order and kind: decline-rescue refuses it;
    Powertools refuses it only because the payload differs (the fingerprint covers the
    orderId)."""
    body = cit()
    other = cit(idempotencyKey=body["idempotencyKey"])
    assert [side.call(body).kind, side.call(other).kind] == [ANSWER, CONFLICT]
