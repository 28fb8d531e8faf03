"""Rescue eligibility: each rule of eligibility.decide, from the seed's corrected CIT
example (validated by the contract) changed one field at a time.

Code lists are written out here from PROVIDERS.md section 3, not read from
retry_rules.json, so a wrong edit of the data fails these tests.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from decline_rescue.domain.contract import EvaluateRequest, validate_request
from decline_rescue.domain.eligibility import (
    Decision,
    Limits,
    budget_limits,
    card_key,
    decide,
    merchant_advice_code,
    network,
)

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "seed_cit_corrected.json"
RULES_FILE = ROOT / "layers" / "shared" / "decline_rescue" / "domain" / "data" / "retry_rules.json"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SANDBOX = Limits(amount_min_exclusive=10, amount_max_exclusive=20000)
PAN = "4111111111111111"
TOKEN = "zJb6YF7pL5gk8x9VhRnSwHd4q2t"
MASTERCARD = {"paymentMethod.cardBrand": "MASTERCARD", "paymentMethod.cardBinNumber": "555555"}
DELETE = object()

VISA_CATEGORY_1 = ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"]
VISA_CATEGORY_2 = ["03", "19", "51", "59", "61", "62", "65", "75", "78", "86", "91", "93", "96", "N3", "N4"]
VISA_CATEGORY_3 = ["54", "55", "82", "6P", "N7", "1A"]
MAC_STOP = ["01", "03", "04", "21"]
MAC_RETRY = ["02", "24", "25", "26", "27", "28", "29", "30"]


def build(changes: dict[str, Any] | None = None, *, now: datetime = NOW, **kwargs: Any) -> EvaluateRequest:
    """The corrected CIT example with dotted paths changed, through the contract."""
    raw = copy.deepcopy(json.loads(FIXTURE.read_text())["request"])
    for path, value in (changes or {}).items():
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = raw
        for key in parents:
            node = node[key]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return validate_request(raw, now=now, **kwargs)


def as_mit(declined_at: datetime, **more: Any) -> dict[str, Any]:
    return {
        "isMIT": True,
        "isRecurring": False,
        "expiryDateUtc": "2099-01-01T00:00:00Z",
        "transaction.timestampUtc": declined_at.isoformat(),
        **more,
    }


def run(changes: dict[str, Any] | None = None, *, limits: Limits = SANDBOX, now: datetime = NOW, **kw) -> Decision:
    return decide(build(changes, now=now), limits=limits, now=now, **kw)


def outcome(decision: Decision) -> str:
    return decision.rule or "eligible"


def test_seed_example_is_eligible():
    decision = run()
    assert decision.eligible is True and decision.rule is None
    assert decision.facts["network"] == "visa"


# -- amount bounds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "amount", "expected"),
    [
        (SANDBOX, 10, "amount_out_of_range"),
        (SANDBOX, 11, "eligible"),
        (SANDBOX, 19999, "eligible"),
        (SANDBOX, 20000, "amount_out_of_range"),
        (SANDBOX, 5, "amount_out_of_range"),
        (SANDBOX, 150000, "amount_out_of_range"),
        (Limits(), 1, "eligible"),
        (Limits(), 10, "eligible"),
        (Limits(), 19999, "eligible"),
        (Limits(), 20000, "amount_out_of_range"),
        (Limits(), 20001, "amount_out_of_range"),
    ],
    ids=[
        "sandbox-10",
        "sandbox-11",
        "sandbox-19999",
        "sandbox-20000",
        "sandbox-5",
        "sandbox-150000",
        "seed-1-cent",
        "seed-10",
        "seed-19999",
        "seed-20000",
        "seed-20001",
    ],
)
def test_amount_bounds(limits, amount, expected):
    decision = run({"transaction.amount": amount}, limits=limits)
    assert outcome(decision) == expected
    assert decision.eligible is (expected == "eligible")
    if not decision.eligible:
        assert decision.facts["amount"] == amount


def test_seed_default_limits():
    assert Limits().amount_min_exclusive == 0
    assert Limits().amount_max_exclusive == 20000


# -- card expiry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "year", "expected"),
    [
        (10, 2026, "card_expired"),
        (11, 2026, "eligible"),
        (12, 2026, "eligible"),
        (12, 2025, "card_expired"),
        (1, 2027, "eligible"),
    ],
    ids=["last-month", "expiry-month", "next-month", "last-year", "next-year"],
)
def test_card_expiry(month, year, expected):
    decision = run({"paymentMethod.expirationMonth": month, "paymentMethod.expirationYear": year})
    assert outcome(decision) == expected


@pytest.mark.parametrize(
    "missing",
    [
        ["paymentMethod.expirationMonth"],
        ["paymentMethod.expirationYear"],
        ["paymentMethod.expirationMonth", "paymentMethod.expirationYear"],
    ],
    ids=["no-month", "no-year", "neither"],
)
def test_card_expiry_unknown_skips_the_expired_card_rule(missing):
    # with both known this card expired years ago (the control)
    expired = {"paymentMethod.expirationMonth": 1, "paymentMethod.expirationYear": 2020}
    assert outcome(run(expired)) == "card_expired"
    request = build({**expired, **dict.fromkeys(missing, DELETE)})
    assert request.paymentMethod.expiry() is None
    assert outcome(decide(request, limits=SANDBOX, now=NOW)) == "eligible"
    assert (missing[0], "fallback") in {(w.field, w.rule) for w in request.warnings}


def test_card_expired_at_the_first_instant_of_the_next_month():
    changes = {"paymentMethod.expirationMonth": 11, "paymentMethod.expirationYear": 2026}
    assert outcome(run(changes, now=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))) == "eligible"
    assert outcome(run(changes, now=datetime(2026, 12, 1, 0, 0, tzinfo=UTC))) == "card_expired"


# -- Visa response-code categories ------------------------------------------------


@pytest.mark.parametrize("code", VISA_CATEGORY_1)
def test_visa_category_1_never_reattempted(code):
    decision = run({"transaction.responseCode": code})
    assert outcome(decision) == "issuer_never_approves"
    assert decision.facts["responseCode"] == code and decision.facts["visaCategory"] == 1
    assert code in decision.detail


@pytest.mark.parametrize("code", ["04", "41", "R1"])
def test_category_1_applies_to_every_network(code):
    assert outcome(run({"transaction.responseCode": code, **MASTERCARD})) == "issuer_never_approves"


@pytest.mark.parametrize("code", VISA_CATEGORY_3)
def test_visa_category_3_is_data_quality(code):
    decision = run({"transaction.responseCode": code})
    assert outcome(decision) == "data_quality"
    assert decision.facts["visaCategory"] == 3


@pytest.mark.parametrize("code", ["54", "N7"])
def test_category_3_is_a_visa_rule_only(code):
    assert outcome(run({"transaction.responseCode": code, **MASTERCARD})) == "eligible"


@pytest.mark.parametrize("code", [*VISA_CATEGORY_2, "05", "203", "00", "999"])
def test_visa_category_2_and_generic_are_eligible(code):
    decision = run({"transaction.responseCode": code})
    assert outcome(decision) == "eligible"
    assert decision.facts["responseCode"] == code


@pytest.mark.parametrize(
    ("code", "normalised", "expected"),
    [
        ("5", "05", "eligible"),
        ("4", "04", "issuer_never_approves"),
        ("7", "07", "issuer_never_approves"),
        ("3", "03", "eligible"),
        ("r0", "R0", "issuer_never_approves"),
        ("6p", "6P", "data_quality"),
        (" 51 ", "51", "eligible"),
    ],
    ids=["5-is-05", "4-is-04", "7-is-07", "3-is-03", "lower-r0", "lower-6p", "padded"],
)
def test_response_code_normalised(code, normalised, expected):
    decision = run({"transaction.responseCode": code})
    assert outcome(decision) == expected
    assert decision.facts["responseCode"] == normalised


# -- Mastercard merchant advice codes ---------------------------------------------


def _mac_via_additional_fields(mac: str, key: str = "merchantAdviceCode") -> dict[str, Any]:
    return {**MASTERCARD, "additionalFields": [{"key": "other", "value": "x"}, {"key": key, "value": mac}]}


def _mac_via_transaction(mac: Any) -> dict[str, Any]:
    return {**MASTERCARD, "transaction.merchantAdviceCode": mac}


VIAS = {"additionalFields": _mac_via_additional_fields, "transaction": _mac_via_transaction}


@pytest.mark.parametrize("via", list(VIAS))
@pytest.mark.parametrize("mac", MAC_STOP)
def test_mastercard_advice_stops(mac, via):
    decision = run(VIAS[via](mac))
    assert outcome(decision) == "mastercard_advice"
    assert decision.facts["merchantAdviceCode"] == mac
    assert decision.facts["network"] == "mastercard"


@pytest.mark.parametrize("via", list(VIAS))
@pytest.mark.parametrize("mac", [*MAC_RETRY, "99"])
def test_mastercard_advice_allows(mac, via):
    assert outcome(run(VIAS[via](mac))) == "eligible"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (_mac_via_transaction(3), "03"),
        (_mac_via_transaction("3"), "03"),
        (_mac_via_transaction(" 21 "), "21"),
        (_mac_via_additional_fields("1"), "01"),
        (_mac_via_additional_fields("03", key="MAC"), "03"),
        (_mac_via_additional_fields("03", key="Merchant Advice Code"), "03"),
        (_mac_via_additional_fields("03", key="merchant_advice_code"), "03"),
        (MASTERCARD, None),
        ({**MASTERCARD, "additionalFields": [{"key": "note", "value": "03"}]}, None),
    ],
    ids=["int", "single-digit", "padded", "af-single-digit", "af-MAC", "af-spaced", "af-snake", "absent", "other-key"],
)
def test_merchant_advice_code_sources(changes, expected):
    assert merchant_advice_code(build(changes)) == expected


def test_transaction_field_wins_over_additional_fields():
    changes = {**_mac_via_additional_fields("02"), "transaction.merchantAdviceCode": "03"}
    assert merchant_advice_code(build(changes)) == "03"
    assert outcome(run(changes)) == "mastercard_advice"


def test_advice_code_ignored_on_visa():
    changes = {
        "additionalFields": [{"key": "merchantAdviceCode", "value": "03"}],
        "transaction.merchantAdviceCode": "21",
    }
    assert outcome(run(changes)) == "eligible"


# -- networks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brand", "bin6", "expected"),
    [
        ("VISA", "411111", "visa"),
        ("Visa", "411111", "visa"),
        ("MASTERCARD", "555555", "mastercard"),
        ("Mastercard", "555555", "mastercard"),
        ("MC", "555555", "mastercard"),
        ("Maestro", "675964", "mastercard"),
        ("CARD", "411111", "visa"),
        ("CARD", "510000", "mastercard"),
        ("CARD", "222100", "mastercard"),
        ("CARD", "272099", "mastercard"),
        ("CARD", "272100", "other"),
        ("AMEX", "378282", "other"),
        ("DISCOVER", "601111", "other"),
    ],
    ids=lambda v: v,
)
def test_network(brand, bin6, expected):
    assert network(build({"paymentMethod.cardBrand": brand, "paymentMethod.cardBinNumber": bin6})) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"paymentMethod.cardBrand": DELETE, "paymentMethod.cardBinNumber": DELETE}, "other"),
        ({"paymentMethod": {"token": True, "cardNumber": TOKEN}}, "other"),
        ({"paymentMethod.cardBrand": DELETE}, "visa"),
        ({"paymentMethod.cardBrand": DELETE, "paymentMethod.cardBinNumber": "55555555"}, "mastercard"),
        ({"paymentMethod.cardBinNumber": DELETE}, "visa"),
    ],
    ids=["no-brand-no-bin", "token-only", "bin-without-brand", "8-digit-bin-without-brand", "brand-without-bin"],
)
def test_network_with_card_facts_missing(changes, expected):
    assert network(build(changes)) == expected


def test_token_only_card_is_budgeted_as_another_network():
    decision = run({"paymentMethod": {"token": True, "cardNumber": TOKEN}}, limits=Limits(), attempts_in={30: 20})
    assert outcome(decision) == "reattempt_budget"
    assert decision.facts["network"] == "other"


# -- merchant-initiated: same day -------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(minutes=5), "eligible"),
        (timedelta(hours=1), "eligible"),
        (timedelta(hours=23, minutes=59), "eligible"),
        (timedelta(hours=24), "eligible"),
        (timedelta(hours=24, seconds=1), "mit_not_same_day"),
        (timedelta(hours=25), "mit_not_same_day"),
        (timedelta(days=14), "mit_not_same_day"),
    ],
    ids=["5-min", "1-h", "23h59", "24h-exactly", "24h-and-1s", "25-h", "2-weeks"],
)
def test_mit_must_be_sent_the_day_it_failed(age, expected):
    decision = run(as_mit(NOW - age), limits=Limits(mit_max_age_hours=24))
    assert outcome(decision) == expected


def test_mit_age_reads_the_offset_of_the_timestamp():
    # 08:00 at UTC-5 is 13:00 UTC: 23 h before the next day's 12:00 UTC, the same day
    declined = "2026-11-21T08:00:00-05:00"
    assert outcome(run(as_mit(NOW, **{"transaction.timestampUtc": declined}), limits=Limits())) == "eligible"


@pytest.mark.parametrize(
    ("age", "expected"),
    [(timedelta(hours=1), "eligible"), (timedelta(hours=30), "mit_not_same_day")],
    ids=["1-h", "30-h"],
)
def test_mit_same_day_rule_reads_transaction_timestamp_when_timestamp_utc_is_missing(age, expected):
    declined = (NOW - age).isoformat().replace("+00:00", "Z")
    changes = as_mit(NOW, **{"transaction.timestampUtc": DELETE, "transaction.timestamp": declined})
    decision = run(changes, limits=Limits(mit_max_age_hours=24))
    assert outcome(decision) == expected
    if expected != "eligible":
        assert decision.facts["declinedAt"] == (NOW - age).isoformat()


def test_timestamp_utc_wins_over_transaction_timestamp_for_the_same_day_rule():
    changes = as_mit(NOW - timedelta(hours=1), **{"transaction.timestamp": (NOW - timedelta(hours=30)).isoformat()})
    assert outcome(run(changes, limits=Limits(mit_max_age_hours=24))) == "eligible"


def test_mit_without_any_timestamp_passes_the_same_day_rule_and_is_warned():
    request = build(as_mit(NOW, **{"transaction.timestampUtc": DELETE}))
    assert ("transaction.timestampUtc", "fallback") in {(w.field, w.rule) for w in request.warnings}
    assert outcome(decide(request, limits=Limits(mit_max_age_hours=24), now=NOW)) == "eligible"


@pytest.mark.parametrize("age", [timedelta(hours=25), timedelta(days=400)], ids=["25-h", "a-year"])
def test_cit_has_no_same_day_rule(age):
    changes = {"transaction.timestampUtc": (NOW - age).isoformat()}
    assert outcome(run(changes, limits=Limits(mit_max_age_hours=24))) == "eligible"


def test_seed_cit_timestamp_placeholder_is_eligible():
    # the seed's "0001-01-01T00:00:00Z" placeholder is harmless for a CIT
    assert outcome(run(limits=Limits())) == "eligible"


# -- reattempt budgets ------------------------------------------------------------

AFTER = datetime(2026, 11, 22, 12, tzinfo=UTC)
BEFORE = datetime(2025, 5, 24, 23, 59, tzinfo=UTC)
SWITCH = datetime(2025, 5, 25, 0, 0, tzinfo=UTC)
AMEX = {"paymentMethod.cardBrand": "AMEX", "paymentMethod.cardBinNumber": "378282"}


@pytest.mark.parametrize(
    ("card", "now", "attempts", "expected"),
    [
        ({}, AFTER, None, "eligible"),
        ({}, AFTER, {30: 19}, "eligible"),
        ({}, AFTER, {30: 20}, "reattempt_budget"),
        ({}, AFTER, {30: 50}, "reattempt_budget"),
        ({}, AFTER, {1: 50}, "eligible"),
        ({}, BEFORE, {30: 14}, "eligible"),
        ({}, BEFORE, {30: 15}, "reattempt_budget"),
        ({}, SWITCH, {30: 15}, "eligible"),
        ({}, SWITCH, {30: 20}, "reattempt_budget"),
        (MASTERCARD, AFTER, {1: 9, 30: 9}, "eligible"),
        (MASTERCARD, AFTER, {1: 10, 30: 10}, "reattempt_budget"),
        (MASTERCARD, AFTER, {1: 10}, "reattempt_budget"),
        (MASTERCARD, AFTER, {1: 0, 30: 34}, "eligible"),
        (MASTERCARD, AFTER, {1: 0, 30: 35}, "reattempt_budget"),
        (MASTERCARD, AFTER, {1: 0, 30: 20}, "eligible"),
        (AMEX, AFTER, {30: 19}, "eligible"),
        (AMEX, AFTER, {30: 20}, "reattempt_budget"),
        (AMEX, BEFORE, {30: 15}, "reattempt_budget"),
    ],
    ids=[
        "visa-none-used",
        "visa-19-of-20",
        "visa-20-of-20",
        "visa-50",
        "visa-ignores-daily-count",
        "visa-before-2025-05-25-14-of-15",
        "visa-before-2025-05-25-15-of-15",
        "visa-on-2025-05-25-15-of-20",
        "visa-on-2025-05-25-20-of-20",
        "mastercard-9-today",
        "mastercard-10-today",
        "mastercard-10-today-only-day-window",
        "mastercard-34-in-30-days",
        "mastercard-35-in-30-days",
        "mastercard-not-visa-limit",
        "other-uses-visa-19",
        "other-uses-visa-20",
        "other-uses-visa-before-switch",
    ],
)
def test_reattempt_budget(card, now, attempts, expected):
    decision = run(card, now=now, limits=Limits(), attempts_in=attempts)
    assert outcome(decision) == expected


def test_reattempt_budget_facts():
    decision = run(MASTERCARD, limits=Limits(), attempts_in={1: 3, 30: 40})
    assert decision.facts == {"network": "mastercard", "windowDays": 30, "used": 40, "max": 35}


@pytest.mark.parametrize(
    ("net", "day", "expected"),
    [
        ("visa", date(2025, 5, 24), [(30, 15)]),
        ("visa", date(2025, 5, 25), [(30, 20)]),
        ("visa", date(2026, 11, 22), [(30, 20)]),
        ("other", date(2024, 1, 1), [(30, 15)]),
        ("other", date(2026, 1, 1), [(30, 20)]),
        ("mastercard", date(2026, 11, 22), [(1, 10), (30, 35)]),
    ],
    ids=["visa-before", "visa-switch-day", "visa-now", "other-before", "other-after", "mastercard"],
)
def test_budget_limits(net, day, expected):
    assert sorted(budget_limits(net, day)) == expected


# -- card key ---------------------------------------------------------------------


def test_card_key_is_stable():
    assert card_key(build()) == card_key(build())
    assert card_key(build({"transaction.amount": 999, "orderId": "other"})) == card_key(build())


def test_card_key_uses_the_fingerprint_when_present():
    first = build({"paymentMethod.cardBinNumber": "411111", "paymentMethod.cardLast4Digits": "1111"})
    same_fp = build({"paymentMethod.cardBinNumber": "400000", "paymentMethod.cardLast4Digits": "3184"})
    other_fp = build({"paymentMethod.cardFingerprint": "zzzz9999"})
    assert card_key(first) == card_key(same_fp)
    assert card_key(first) != card_key(other_fp)


def test_card_key_without_fingerprint_uses_card_facts():
    base = {"paymentMethod.cardFingerprint": DELETE}
    key = card_key(build(base))
    assert card_key(build({**base, "paymentMethod.cardBrand": "Visa"})) == key
    assert card_key(build({**base, "paymentMethod.cardNumber": "another-token"})) == key
    assert card_key(build({**base, "paymentMethod.cardLast4Digits": "1112"})) != key
    assert card_key(build({**base, "paymentMethod.cardBinNumber": "411112"})) != key
    assert card_key(build({**base, "paymentMethod.expirationYear": 2029})) != key
    assert card_key(build({**base, "paymentMethod.expirationMonth": 11})) != key
    assert card_key(build()) != key


def _token_only(token: str, **more: Any) -> EvaluateRequest:
    return build({"paymentMethod": {"Token": True, "cardNumber": token, **more}})


def test_card_key_of_a_token_only_card_is_its_token_hashed():
    key = card_key(_token_only(TOKEN))
    assert card_key(_token_only(TOKEN)) == key
    assert card_key(build({"paymentMethod": {"token": True, "cardNumber": TOKEN}, "orderId": "other"})) == key
    assert card_key(_token_only("tok_another_card")) != key
    assert card_key(build()) != key  # not the key of the card described by its facts
    assert TOKEN not in key and TOKEN[:8] not in key
    assert hashlib.sha256(TOKEN.encode()).hexdigest()[:16] not in key


def test_card_key_with_bin_without_last4_falls_back_to_the_token():
    bin_only = _token_only(TOKEN, cardBinNumber="411111")
    assert card_key(bin_only) == card_key(_token_only(TOKEN))
    assert card_key(_token_only("tok_another_card", cardBinNumber="411111")) != card_key(bin_only)


def test_card_key_reads_the_first_six_digits_of_an_eight_digit_bin():
    base = {"paymentMethod.cardFingerprint": DELETE}
    six = card_key(build(base))
    assert card_key(build({**base, "paymentMethod.cardBinNumber": "41111111"})) == six
    assert card_key(build({**base, "paymentMethod.cardBinNumber": "41111211"})) != six


@pytest.mark.parametrize("fingerprint", [DELETE, "abcd1234"], ids=["without-fingerprint", "with-fingerprint"])
def test_card_key_never_holds_the_card_number(fingerprint):
    changes = {"paymentMethod.cardNumber": PAN, "paymentMethod.cardFingerprint": fingerprint}
    with_pan = build(changes, allow_card_numbers=True)
    key = card_key(with_pan)
    assert PAN not in key and "1111" not in key and "411111" not in key
    tokenised = build({"paymentMethod.cardFingerprint": fingerprint})
    assert key == card_key(tokenised)  # the number itself is not an input


# -- the decision's reason ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"transaction.responseCode": "04"}, "issuer_never_approves"),
        ({"transaction.amount": 20000}, "amount_out_of_range"),
        ({"paymentMethod.expirationYear": 2020}, "card_expired"),
        ({}, None),
    ],
    ids=["issuer_never_approves", "amount_out_of_range", "card_expired", "eligible"],
)
def test_reason_carries_rule_detail_and_rules_version(changes, rule):
    version = json.loads(RULES_FILE.read_text())["version"]
    decision = run(changes)
    reason = decision.reason()
    assert reason["rule"] == rule
    assert reason["detail"] == decision.detail
    assert reason["rulesVersion"] == version
    assert {k: reason[k] for k in decision.facts} == decision.facts
    if rule:
        assert decision.detail
    json.dumps(reason)


@pytest.mark.parametrize(
    ("source", "code", "rule"),
    [
        ("NMI", "250", "issuer_never_approves"),
        ("nmi", "252", "issuer_never_approves"),
        ("NMI", "223", "issuer_never_approves"),
        ("NMI", "225", "data_quality"),
        ("NMI", "203", None),
        ("NMI", "202", None),
        ("Braintree", "250", None),  # not NMI's table: an ISO code 250 is generic
    ],
)
def test_gateway_codes_by_response_code_source(source, code, rule):
    from decline_rescue.domain.contract import validate_request

    body = json.loads((Path(__file__).parent.parent / "fixtures" / "seed_cit_corrected.json").read_text())["request"]
    body["transaction"].update(responseCodeSource=source, responseCode=code)
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    decision = decide(validate_request(body, now=now), limits=Limits(), now=now, attempts_in={})
    assert decision.rule == rule and decision.eligible is (rule is None)
