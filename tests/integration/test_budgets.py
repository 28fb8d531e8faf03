"""Reattempt budgets under real concurrency: many declines for one card at once, through
evaluate_decline's handler in threads against moto server and the FlexFactor emulator.
The networks fine merchants for every reattempt past the budget, so the budget must hold
whatever the interleaving: a card's reattempts are reserved atomically in the claim's
transaction (``OrdersTable.reserve_item``), not counted before and written after."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_declines import EVALUATE, cit, evaluations, post

CONCURRENT = 20


def _card_key(body: dict) -> str:
    from decline_rescue.domain import eligibility
    from decline_rescue.domain.contract import validate_request

    return eligibility.card_key(validate_request({**body, "mid": body.get("mid") or "m"}))


def _seed(card: str, used: dict[str, int], cap_today: int | None = None) -> None:
    """Reattempts the card used on earlier days (and today, with the day's cap)."""
    from decline_rescue.runtime import wiring

    table = wiring.orders()
    for day, n in used.items():
        item = table.reserve_item(card, day, cap=cap_today if cap_today is not None else n, exists=False)["Put"]
        item["Item"]["n"] = {"N": str(n)}
        table_client = __import__("decline_rescue.infra.aws", fromlist=["client"]).client("dynamodb")
        table_client.put_item(TableName=item["TableName"], Item=item["Item"])


def _concurrently(module, bodies: list[dict]) -> list[tuple[int, dict]]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: post(module, body), bodies))


def _same_card(template: dict, n: int, **changes) -> list[dict]:
    out = []
    for _ in range(n):
        body = cit(**changes)
        body["paymentMethod"] = dict(template["paymentMethod"])
        out.append(body)
    return out


@pytest.mark.parametrize(
    ("brand", "changes", "used", "cap_today", "allowed"),
    [
        # Mastercard: 10 a day; 9 used today
        ("MASTERCARD", {}, {"today": 9}, 10, 1),
        # Visa: 20 in 30 days; 19 used on earlier days, none yet today (today's counter is
        # made by whichever request gets there first)
        (
            "VISA",
            {"paymentMethod__cardBrand": "VISA", "paymentMethod__cardBinNumber": "411111"},
            {"-3": 10, "-12": 9},
            None,
            1,
        ),
    ],
    ids=["mastercard-10-a-day", "visa-20-in-30-days"],
)
def test_concurrent_declines_for_one_card_never_exceed_its_budget(
    function_env, flexfactor_url, brand, changes, used, cap_today, allowed
):
    # Given a card with one reattempt left in its budget
    module, _ = function_env(EVALUATE)
    template = cit(**changes)
    card = _card_key(template)
    today = datetime.now(UTC).date()
    days = {(today if day == "today" else today + timedelta(days=int(day))).isoformat(): n for day, n in used.items()}
    _seed(card, days, cap_today)

    # When twenty declines for that card arrive at once
    bodies = _same_card(template, CONCURRENT, **changes)
    answers = _concurrently(module, bodies)

    # Then exactly the allowed number reached FlexFactor, the others were not submitted for
    # the budget, and every one of them has its answer (none lost, none a 5xx)
    assert all(code == 200 for code, _ in answers), answers
    statuses = [answer["status"] for _, answer in answers]
    submitted = [b for b, (_, a) in zip(bodies, answers, strict=True) if a["submitted"]]
    assert len(submitted) == allowed, statuses
    assert sum(evaluations(flexfactor_url, b["idempotencyKey"]) for b in bodies) == allowed
    refused = [a for _, a in answers if not a["submitted"]]
    assert {a["reason"]["rule"] for a in refused} == {"reattempt_budget"}

    # And the card's counters say so: the budget is spent, not overrun
    from decline_rescue.runtime import wiring

    counted, _ = wiring.orders().card_days(card, today, 30)
    assert counted[today.isoformat()] == (used.get("today", 0) + allowed)


def test_a_decline_that_ends_unsubmitted_gives_its_reattempt_back(function_env, flexfactor_url):
    """FlexFactor refuses a request as invalid: nothing reached the network, so the
    reservation made with the claim is released in the same write."""
    # Given a Mastercard card with one reattempt left today
    module, _ = function_env(EVALUATE, AMOUNT_MIN_EXCLUSIVE_CENTS="0")  # let the sandbox's own rule refuse
    template = cit()
    card = _card_key(template)
    today = datetime.now(UTC).date().isoformat()
    _seed(card, {today: 9}, 10)

    # When a decline for it is refused by FlexFactor's validation
    refused = cit(transaction__amount=5)
    refused["paymentMethod"] = dict(template["paymentMethod"])
    code, _ = post(module, refused)
    assert code == 400

    # Then the reattempt is free again: the next decline for the card is submitted
    from decline_rescue.runtime import wiring

    assert wiring.orders().card_days(card, datetime.now(UTC).date(), 30)[0][today] == 9
    again = cit()
    again["paymentMethod"] = dict(template["paymentMethod"])
    code, answer = post(module, again)
    assert (code, answer["submitted"]) == (200, True), answer


def test_an_abandoned_claim_gives_its_reattempt_back(function_env, flexfactor_url):
    """A claim whose request died holds its reservation until the poller closes it
    NOT_SUBMITTED; the writer releases it in that same transaction."""
    from decline_rescue.domain.contract import validate_request
    from decline_rescue.domain.updates import OrderUpdate
    from decline_rescue.runtime import wiring
    from decline_rescue.services import writer

    # Given a claim that reserved the card's reattempt, and whose request then died
    function_env(EVALUATE)
    body = cit()
    request = validate_request(body)
    card = _card_key(body)
    today = datetime.now(UTC).date().isoformat()
    writer.create(
        request.safe_summary(),
        status="RECEIVED",
        source="api",
        idempotency_key=request.idempotency_key,
        reservation={"card": card, "day": today, "cap": 10, "exists": False},
    )
    assert wiring.orders().card_days(card, datetime.now(UTC).date(), 30)[0] == {today: 1}

    # When the poller closes it
    writer.apply(
        OrderUpdate(
            updateId=f"poll:{uuid.uuid4().hex}",
            source="poll",
            orderId=body["orderId"],
            status="NOT_SUBMITTED",
            reason={"rule": "abandoned"},
        )
    )

    # Then the reattempt is given back, and the order no longer holds it
    assert wiring.orders().card_days(card, datetime.now(UTC).date(), 30)[0] == {today: 0}
    assert "reservation" not in wiring.orders().get_state(body["orderId"])
