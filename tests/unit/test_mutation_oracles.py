"""Oracles written in the test, never the code under test's own output (issue 16): the card
detector and redaction, every sensitive key, every "not declined" word, every identifier
field, and the eligibility tables, each entry a parameter.

Every fixture that claims to be (or not to be) a card number is checked first with the
Luhn check written here, so a negative case fails for the reason it names: a 12- or
20-digit run that passes Luhn is refused for its length, a millisecond timestamp that
passes Luhn for its first digit, a card number glued inside a longer run for the glue.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from decline_rescue.domain import carddata
from decline_rescue.domain.carddata import card_digits, find_pans, is_pan, names_card_number, names_cvv, redact
from decline_rescue.domain.eligibility import budget_limits, budget_windows
from tests.unit.test_contract import accept as accept_request
from tests.unit.test_contract import cit, edit, problems, warnings_of
from tests.unit.test_eligibility import MASTERCARD
from tests.unit.test_eligibility import run as decide_with

PAN_MARK = "[REDACTED_PAN]"
KEY_MARK = "[REDACTED]"
DEEP_MARK = "[REDACTED_TOO_DEEP]"


def luhn(digits: str) -> bool:
    """The Luhn check, written here (the oracle for the fixtures below)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


VISA_16 = "4111111111111111"
VISA_13 = "4222222222222"
VISA_19 = "4111111111111111003"
MC_16 = "5555555555554444"
AMEX_15 = "378282246310005"
LUHN_12 = "411111111117"
LUHN_20 = "41111111111111110000"
TIMESTAMP_MS = "1730419200002"  # 2024-11-01T00:00:00.002Z: 13 digits, passes Luhn, starts with 1
GLUED_22 = "12" + VISA_16 + "3456"  # a card number inside a 22-digit run (a digit group is never split)
GLUED_18 = "9" + VISA_16 + "0"  # 18 digits (card length) whose whole run fails Luhn
ORDER_ID_20 = "20261101123456789017"  # passes Luhn, 20 digits


def test_the_fixtures_are_what_they_claim():
    for card in (VISA_16, VISA_13, VISA_19, MC_16, AMEX_15):
        assert luhn(card), card
    for not_card in (LUHN_12, LUHN_20, TIMESTAMP_MS, ORDER_ID_20):
        assert luhn(not_card), f"{not_card} must pass Luhn, so only its length or first digit tells it apart"
    assert len(LUHN_12) == 12 and len(LUHN_20) == 20 and len(ORDER_ID_20) == 20 and len(TIMESTAMP_MS) == 13
    assert len(GLUED_18) == 18 and not luhn(GLUED_18) and len(GLUED_22) == 22
    assert len(VISA_13) == 13 and len(VISA_19) == 19


# -- detection and redaction: exact outputs ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VISA_16, PAN_MARK),
        (VISA_13, PAN_MARK),
        (VISA_19, PAN_MARK),
        (MC_16, PAN_MARK),
        (AMEX_15, PAN_MARK),
        ("4111  1111  1111  1111", PAN_MARK),  # two spaces
        ("4111 - 1111 - 1111 - 1111", PAN_MARK),  # three characters: the most a separator has
        ("4111\t1111/1111.1111", PAN_MARK),  # mixed separators: the whole chain
        ("4111-1111-1111-1111", PAN_MARK),
        ("4111_1111_1111_1111", PAN_MARK),
        ("4111,1111|1111+1111", PAN_MARK),
        ("4111\u200b1111\u200b1111\u200b1111", PAN_MARK),  # zero-width space
        ("4111\n1111\n1111\n1111", PAN_MARK),
        ("3782 822463 10005", PAN_MARK),  # Amex as written: 4-6-5
        ("\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11", PAN_MARK),
        ("\u0664\u0661\u0661\u0661" * 1 + "\u0661" * 12, PAN_MARK),  # Arabic-Indic digits
        (f"card {VISA_16} here", f"card {PAN_MARK} here"),
        (f"a {VISA_16} b {MC_16} c", f"a {PAN_MARK} b {PAN_MARK} c"),
        ("4111 1111 1111 1111 1234", f"{PAN_MARK} 1234"),  # a card number's groups inside a longer chain
        ("4111 1111 1111 1111 12/28", f"{PAN_MARK} 12/28"),
        ("ref 99 4111 1111 1111 1111", f"ref 99 {PAN_MARK}"),
        (f"x{VISA_16}y", f"x{PAN_MARK}y"),  # letters around: still one digit group
    ],
)
def test_redact_text_exact(text, expected):
    assert redact(text) == expected
    assert redact({"note": text}) == {"note": expected}


@pytest.mark.parametrize(
    "text",
    [
        LUHN_12,
        LUHN_20,
        TIMESTAMP_MS,  # a millisecond timestamp: 13 digits not starting with 4
        f"subscriptionId={TIMESTAMP_MS}",
        GLUED_22,
        GLUED_18,
        ORDER_ID_20,
        f"order-{ORDER_ID_20}",
        "4111    1111    1111    1111",  # four spaces: no separator
        "4111:1111:1111:1111",  # ":" is never a separator (times, ARNs)
        "4111a1111b1111c1111",  # letters between digit groups
        "4111 1111 1111 1112",  # fails Luhn
        "12:30:45 2026-11-01 1234 5678",
        "41111111-1111-4111-8111-111111111111",  # a UUID
        "ab4111111111111111cdef0123456789",  # a hex token (a fingerprint, a hash)
        "411111111111",  # 12 digits
        "short 4111",
        "no digits at all in this text",
        "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    ],
)
def test_not_card_numbers_come_through_unchanged(text):
    assert find_pans(text) == []
    assert redact(text) == text
    assert redact({"note": text}) == {"note": text}
    assert is_pan(text) is False


def test_find_pans_gives_the_digits_in_order():
    assert find_pans(f"a {MC_16} b 4111-1111-1111-1111 c") == [MC_16, VISA_16]
    assert find_pans("4111 1111 1111 1111 1234") == [VISA_16]
    assert find_pans(VISA_19) == [VISA_19]
    assert find_pans(VISA_13) == [VISA_13]
    assert find_pans(int(VISA_16)) == [VISA_16]
    assert find_pans(4111111111111111.0) == [VISA_16]
    assert find_pans(True) == [] and find_pans(None) == [] and find_pans(411111111117) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4111111111111111, PAN_MARK),
        (-4111111111111111, PAN_MARK),
        (4111111111111111.0, PAN_MARK),
        (4.111111111111111e15, PAN_MARK),
        (4222222222222, PAN_MARK),
        (1730419200002, 1730419200002),  # a timestamp in ms
        (411111111117, 411111111117),
        (41111111111111110000, 41111111111111110000),
        (12.5, 12.5),
        (float("nan"), None),  # (compared below)
        (True, True),
        (None, None),
        (0, 0),
    ],
)
def test_redact_numbers(value, expected):
    out = redact(value)
    if value != value:  # NaN
        assert out != out
    else:
        assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VISA_16, VISA_16),
        (" 4111 1111 1111 1111 ", VISA_16),
        ("-4111-1111-1111-1111-", VISA_16),
        (VISA_13, VISA_13),
        (VISA_19, VISA_19),
        (f"card {VISA_16}", None),
        (f"{VISA_16}0", None),
        (LUHN_20, None),
        (LUHN_12, None),
        (TIMESTAMP_MS, None),
        ("tok_4111111111111111x", None),
        (4111111111111111, VISA_16),
    ],
)
def test_card_digits_exact(value, expected):
    assert card_digits(value) == expected
    assert is_pan(value) is (expected is not None)


# -- keys: every sensitive key is a parameter ----------------------------------------------

CVV_STEMS = [
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cvn",
    "cvn2",
    "cvd",
    "csc",
    "cid",
    "cav2",
    "4dbc",
    "securitycode",
    "cardcode",
    "verificationvalue",
    "verificationcode",
    "verificationnumber",
]
CVV_KEYS = [
    *CVV_STEMS,
    "CVV",
    "cvvCode",
    "card_cvv",
    "CVV_NUMBER",
    "security-code",
    "securityCode",
    "cardVerificationValue",
    "verificationValue",
    "cvc2",
    "creditCardCvv",
    "paymentCvc",
    "ccCsc",
    "cvvDigits",
    "cvvNum",
    "cvvNo",
    "cvcValue",
    "card_cvv_code",
    "\uff23\uff36\uff36",  # full-width CVV
]
NOT_CVV_KEYS = ["cvvResultCode", "decidedAt", "cidr", "acidic", "cvvs", "codeCvv", "cardholder", "verification"]
CARD_NUMBER_KEYS = [
    "cardNumber",
    "pan",
    "PAN",
    "primaryAccountNumber",
    "accountNumber",
    "creditCardNumber",
    "ccNumber",
    "cardNo",
    "card_number",
    "card-number",
]


@pytest.mark.parametrize("key", CVV_KEYS)
def test_every_cvv_key_is_redacted_whole(key):
    assert names_cvv(key) is True
    assert names_card_number(key) is False
    assert redact({key: "123", "other": "1"}) == {key: KEY_MARK, "other": "1"}
    assert redact({"outer": [{key: 4567}]}) == {"outer": [{key: KEY_MARK}]}


@pytest.mark.parametrize("key", CARD_NUMBER_KEYS)
def test_every_card_number_key_is_redacted_whole(key):
    assert names_card_number(key) is True
    assert names_cvv(key) is False
    assert redact({key: "tok_abc", "n": 1}) == {key: KEY_MARK, "n": 1}


@pytest.mark.parametrize("key", NOT_CVV_KEYS)
def test_keys_that_only_contain_a_cvv_name_are_not_cvv_keys(key):
    assert names_cvv(key) is False
    assert redact({key: "M"}) == {key: "M"}


@pytest.mark.parametrize("empty", [None, "", [], {}, ()])
def test_an_empty_value_under_a_sensitive_key_is_no_data(empty):
    assert redact({"cvv": empty}) == {"cvv": [] if empty == () else empty}
    assert redact({"cardNumber": empty}) == {"cardNumber": [] if empty == () else empty}


def test_nested_containers_and_keys():
    value = {
        VISA_16: "key holds it",
        "list": [VISA_16, "ok", 7, None, True],
        "tuple": (MC_16,),
        "set": {VISA_13},
        "deep": {"cvv": "1", "x": {"pan": "p", "y": f"n {VISA_16}"}},
        5: "five",
    }
    assert redact(value) == {
        PAN_MARK: "key holds it",
        "list": [PAN_MARK, "ok", 7, None, True],
        "tuple": [PAN_MARK],
        "set": [PAN_MARK],
        "deep": {"cvv": KEY_MARK, "x": {"pan": KEY_MARK, "y": f"n {PAN_MARK}"}},
        5: "five",
    }


def test_redaction_depth_is_bounded_exactly():
    value = VISA_16
    for _ in range(70):
        value = [value]
    expected = DEEP_MARK
    for _ in range(64):
        expected = [expected]
    assert redact(value) == expected
    shallow = VISA_16
    for _ in range(63):
        shallow = [shallow]
    expected = PAN_MARK
    for _ in range(63):
        expected = [expected]
    assert redact(shallow) == expected


def test_other_objects_are_redacted_through_their_text():
    assert redact(ValueError(f"card {VISA_16} refused")) == f"card {PAN_MARK} refused"
    assert redact(date(2026, 1, 2)) == "2026-01-02"


def test_the_markers():
    assert (carddata.REDACTED, carddata.REDACTED_PAN, carddata.REDACTED_DEPTH) == (KEY_MARK, PAN_MARK, DEEP_MARK)


# -- the contract: every "not declined" word, every identifier field -----------------------

NOT_DECLINED_WORDS = ["APPROVED", "APPROVAL", "SUCCESS", "CAPTURED", "SETTLED", "AUTHORIZED", "PAID"]


@pytest.mark.parametrize("word", [*NOT_DECLINED_WORDS, " authorized ", "Success"])
def test_every_not_declined_word_is_warned(word):
    request = accept_request(edit(cit(), {"transaction.responseStatus": word}))
    assert ("transaction.responseStatus", "not_declined") in warnings_of(request)


@pytest.mark.parametrize("word", ["DECLINED", "Do Not Honor", "FAILED", "05"])
def test_a_declined_word_is_not_warned(word):
    request = accept_request(edit(cit(), {"transaction.responseStatus": word}))
    assert ("transaction.responseStatus", "not_declined") not in warnings_of(request)


IDENTIFIER_FIELDS = {  # the field as a problem names it: the path as ``edit`` writes it
    "orderId": "orderId",
    "idempotencyKey": "idempotencyKey",
    "transaction.id": "transaction.id",
    "payer.id": "payer.id",
    "siteId": "siteId",
    "mid": "mid",
    "orderItems[0].sku": "orderItems.0.sku",
    "subscription.subscriptionId": "subscription.subscriptionId",
}


def guard_problems(raw) -> set[tuple[str, str]]:
    try:
        accept_request(raw)
    except Exception:  # noqa: BLE001 - InvalidRequest: its problems
        return problems(raw)
    return set()


def with_subscription(raw):
    raw = edit(raw, {})
    raw["subscription"] = {"subscriptionId": "sub-1", "schemeTransactionId": "987654321234567"}
    return raw


@pytest.mark.parametrize("field", sorted(IDENTIFIER_FIELDS))
@pytest.mark.parametrize("pan", [VISA_16, "4111-1111-1111-1111", AMEX_15])
def test_a_card_number_in_every_identifier_field_is_refused_there(field, pan):
    raw = edit(with_subscription(cit()), {IDENTIFIER_FIELDS[field]: pan})
    assert (field, "card_number_not_allowed") in guard_problems(raw)


@pytest.mark.parametrize("field", sorted(IDENTIFIER_FIELDS))
@pytest.mark.parametrize("value", [ORDER_ID_20, TIMESTAMP_MS, LUHN_12, GLUED_22])
def test_identifier_fields_with_long_digit_runs_that_are_no_cards_pass_the_guard(field, value):
    raw = edit(with_subscription(cit()), {IDENTIFIER_FIELDS[field]: value})
    assert not {p for p in guard_problems(raw) if p[1] == "card_number_not_allowed"}


def test_a_visa_transaction_id_is_allowed_only_in_its_field():
    luhn_tid = next(f"98765432123456{d}" for d in "0123456789" if luhn(f"98765432123456{d}"))
    raw = with_subscription(cit())
    raw["subscription"]["schemeTransactionId"] = luhn_tid
    assert not {p for p in guard_problems(raw) if p[1] == "card_number_not_allowed"}
    assert ("payer.id", "card_number_not_allowed") in guard_problems(edit(cit(), {"payer.id": luhn_tid}))
    for could_be_a_card in (AMEX_15, VISA_16):  # starts with 3 (Amex); 16 digits
        raw["subscription"]["schemeTransactionId"] = could_be_a_card
        assert ("subscription.schemeTransactionId", "card_number_not_allowed") in guard_problems(raw)


# -- eligibility: the tables, written from the networks' rules -------------------------------


def test_budget_windows_are_every_networks():
    assert budget_windows() == [1, 30]
    assert budget_limits("mastercard", date(2026, 1, 1)) == [(1, 10), (30, 35)]
    assert budget_limits("visa", date(2025, 5, 24)) == [(30, 15)]
    assert budget_limits("visa", date(2025, 5, 25)) == [(30, 20)]
    assert budget_limits("other", date(2026, 1, 1)) == [(30, 20)]


VISA_NEVER = ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"]
VISA_DATA_QUALITY = ["54", "55", "82", "6P", "N7", "1A"]
MAC_STOP = {"01": "new account information", "03": "do not try again", "04": "token", "21": "stop recurring"}
NMI_NEVER = ["221", "222", "223", "250", "251", "252", "253", "261", "262"]
NMI_DATA_QUALITY = ["220", "224", "225", "263"]


@pytest.mark.parametrize("code", VISA_NEVER)
def test_every_visa_category_1_code_is_never_retried(code):
    decision = decide_with({"transaction.responseCode": code})
    assert (decision.eligible, decision.rule) == (False, "issuer_never_approves")


@pytest.mark.parametrize("code", VISA_DATA_QUALITY)
def test_every_visa_category_3_code_is_data_quality(code):
    decision = decide_with({"transaction.responseCode": code})
    assert (decision.eligible, decision.rule) == (False, "data_quality")


@pytest.mark.parametrize("mac", sorted(MAC_STOP))
def test_every_stopping_merchant_advice_code(mac):
    decision = decide_with({**MASTERCARD, "transaction.responseCode": "05", "transaction.merchantAdviceCode": mac})
    assert (decision.eligible, decision.rule) == (False, "mastercard_advice")
    assert MAC_STOP[mac] in decision.detail


@pytest.mark.parametrize("mac", ["02", "24", "25", "26", "27", "28", "29", "30"])
def test_every_retrying_merchant_advice_code(mac):
    decision = decide_with({**MASTERCARD, "transaction.responseCode": "05", "transaction.merchantAdviceCode": mac})
    assert decision.eligible is True


@pytest.mark.parametrize(("codes", "rule"), [(NMI_NEVER, "issuer_never_approves"), (NMI_DATA_QUALITY, "data_quality")])
def test_every_nmi_hard_decline(codes, rule):
    for code in codes:
        decision = decide_with({"transaction.responseCode": code, "transaction.responseCodeSource": "nmi"})
        assert (decision.eligible, decision.rule) == (False, rule), code


@pytest.mark.parametrize(
    ("network", "attempts", "eligible", "window"),
    [
        (MASTERCARD, {1: 9, 30: 9}, True, None),
        (MASTERCARD, {1: 10, 30: 10}, False, 1),
        (MASTERCARD, {1: 0, 30: 34}, True, None),
        (MASTERCARD, {1: 0, 30: 35}, False, 30),
        ({}, {30: 19}, True, None),
        ({}, {30: 20}, False, 30),
    ],
)
def test_budget_limits_at_their_edges(network, attempts, eligible, window):
    decision = decide_with({**network, "transaction.responseCode": "05"}, attempts_in=attempts)
    assert decision.eligible is eligible
    if window is not None:
        assert decision.rule == "reattempt_budget" and decision.facts["windowDays"] == window


def test_now_is_fixed():
    assert datetime(2026, 11, 22, tzinfo=UTC).year == 2026


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("411 111 111 111 1111 1234", f"{PAN_MARK} 1234"),  # 3-digit groups: the shortest a window takes
        ("999 411111 111111 1111", f"999 {PAN_MARK}"),  # 6-digit groups: the longest
        ("9 9 4111 1111 1111 1111", f"9 9 {PAN_MARK}"),  # 1-digit groups never start a window
    ],
)
def test_windows_of_groups_at_their_bounds(text, expected):
    whole = "".join(c for c in text if c.isdigit())
    assert len(whole) > 19 or not luhn(whole), "the whole chain must not be a card number by itself"
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        (VISA_16, True),
        ("4111111111111112", False),
        ("0", True),
        ("18", True),
        ("4111 1111 1111 1111", False),  # not digits only
        ("\u0664\u0661\u0661\u0661" + "\u0661" * 12, False),  # not ASCII digits
        ("", False),
    ],
)
def test_luhn_valid_exact(digits, expected):
    assert carddata.luhn_valid(digits) is expected


# card numbers written in groups inside a longer chain of digit groups, at every parity of
# their position (the window's Luhn sum is read from prefix sums of either parity)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 4111 1111 1111 1111", f"7 {PAN_MARK}"),  # starts at an odd position
        ("12 4111 1111 1111 1111", f"12 {PAN_MARK}"),
        ("5555 5555 5555 4444 1234", f"{PAN_MARK} 1234"),  # groups starting with other digits
        ("3782 822463 10005 1234", f"{PAN_MARK} 1234"),  # 15 digits from the chain's start
        ("1 3782 822463 10005 1234", f"1 {PAN_MARK} 1234"),
        ("4222 2222 22222 9", f"{PAN_MARK} 9"),  # a 13-digit window
        ("378 282 246 310 005 9 9 9 9 9", f"{PAN_MARK} 9 9 9 9 9"),  # five 3-digit groups
        ("411111 111111 1111 9 9 9 9", f"{PAN_MARK} 9 9 9 9"),  # 6-digit groups
        ("4111-1111-1111-1111 1234", f"{PAN_MARK} 1234"),  # one same separator within the window
        ("4111-1111 1111-1111 12345", "4111-1111 1111-1111 12345"),  # separators differ: no window
    ],
)
def test_windows_at_every_position(text, expected):
    whole = "".join(c for c in text if c.isdigit())
    assert len(whole) > 19 or not luhn(whole), "the whole chain must not be a card number by itself"
    assert redact(text) == expected


def test_keys_that_are_not_strings():
    assert redact({(1, 2): "x", frozenset({3}): "y", 7: "z", None: "n", 4111111111111111: "p"}) == {
        "(1, 2)": "x",
        "frozenset({3})": "y",
        7: "z",
        None: "n",
        PAN_MARK: "p",
    }
    assert redact({("card", VISA_16): 1}) == {f"('card', '{PAN_MARK}')": 1}


# -- the card guard on raw bodies: exact problems ------------------------------------------


def _guard(raw, allow=False):
    from decline_rescue.domain.contract import card_guard

    return [(p.field, p.rule, p.message) for p in card_guard(raw, allow_card_numbers=allow)]


PAN_IN_FIELD = "holds what looks like a card number: never send one here"
CVV_KEY_MESSAGE = "names a card security code (CVV): never send one"
CVV_ALLOWED_ONLY = "a CVV is accepted only when the stack is deployed with card numbers allowed"


@pytest.mark.parametrize(
    ("raw", "allow", "expected"),
    [
        ({"additionalFields": [VISA_16]}, False, [("additionalFields[0]", "card_number_not_allowed", PAN_IN_FIELD)]),
        ({"additionalFields": [{"key": "cvv", "value": "123"}]}, False,
         [("additionalFields[0].value", "cvv_not_allowed", CVV_KEY_MESSAGE)]),
        ({"additionalFields": [{"key": "cvv", "value": ""}]}, False, []),
        ({"additionalFields": [{"key": "note", "value": "123"}]}, False, []),
        ({"extra": {"key": "cvv", "value": "123"}}, False, []),  # only additionalFields items are key/value pairs
        ({"paymentMethod": {"verificationValue": "123"}}, False,
         [("paymentMethod.verificationValue", "cvv_not_allowed", CVV_ALLOWED_ONLY)]),
        ({"paymentMethod": {"verificationValue": "123"}}, True, []),
        ({"paymentMethod": {"securityCode": "123"}}, True,
         [("paymentMethod.securityCode", "cvv_not_allowed", CVV_KEY_MESSAGE)]),
        ({"payer": {"cvv": "123"}}, False, [("payer.cvv", "cvv_not_allowed", CVV_KEY_MESSAGE)]),
        ({"payer": {"cvv": {"n": VISA_16}}}, False, [("payer.cvv", "cvv_not_allowed", CVV_KEY_MESSAGE)]),
        ({VISA_16: 1}, False, [("[key]", "card_number_not_allowed", PAN_IN_FIELD)]),
        ({"payer": {VISA_16: 1}}, False, [("payer.[key]", "card_number_not_allowed", PAN_IN_FIELD)]),
        ({"paymentMethod": {"cardNumber": VISA_16}}, True, []),
        ({"payer": {"id": VISA_16}}, True, [("payer.id", "card_number_not_allowed", PAN_IN_FIELD)]),
        ({"paymentMethod": {"token": False, "cardNumber": "tok"}}, False,
         [("paymentMethod.token", "token_required", "must be true: this stack accepts tokens only, not card numbers")]),
        ({"paymentMethod": {"token": False, "cardNumber": "tok"}}, True, []),
        ({"payer": {"id": True, "n": 4111111111111111, "f": 4111111111111111.0}}, False,
         [("payer.n", "card_number_not_allowed", PAN_IN_FIELD), ("payer.f", "card_number_not_allowed", PAN_IN_FIELD)]),
        ([VISA_16], False, []),  # not an object: the contract refuses it elsewhere
    ],
)  # fmt: skip
def test_card_guard_exact(raw, allow, expected):
    assert _guard(raw, allow) == expected


def test_pan_paths_exact():
    from decline_rescue.domain.contract import pan_paths

    assert pan_paths({"a": {"b": [1, VISA_16]}, VISA_16: "x", "c": "ok"}) == ["a.b[1]", "[key]"]  # document order
    assert pan_paths(VISA_16) == ["body"]
    assert pan_paths({"ok": 1}) == []


def test_pan_paths_under_a_path():
    from decline_rescue.domain.contract import pan_paths

    assert pan_paths(VISA_16, "reason") == ["reason"]
    assert pan_paths({"a": VISA_16, "b": "ok"}, "reason") == ["reason.a"]
    assert pan_paths({"x": {VISA_16: "k"}}, "reason") == ["reason.x.[key]"]
    assert pan_paths({"x": [4111111111111111]}) == ["x[0]"]
    assert pan_paths({"x": 1, "y": True}, "reason") == []


def test_duplicate_keys_are_named_exactly():
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        strict_json.loads(b'{"a": 1, "b": {"c": 1, "d": 2, "c": 3}, "e": 2, "a": 4}', max_bytes=1000)
    assert sorted((p.field, p.rule) for p in info.value.problems) == [("a", "duplicate_key"), ("b.c", "duplicate_key")]


def test_a_dict_under_a_field_without_a_model_is_not_bound_as_a_request():
    raw = cit()
    raw["orderId"] = {"IsDeclined": True, "isDeclined": True}
    found = guard_problems(raw)
    assert ("orderId.isDeclined", "duplicate_key") not in found
    assert any(field == "orderId" for field, _ in found)


# -- webhook bodies -> updates: exact outputs -----------------------------------------------


def _update(payload, nonce="nonce-0001"):
    from decline_rescue.services.webhooks import to_update

    return to_update(payload, nonce)


def _problem_of(payload):
    from decline_rescue.domain.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        _update(payload)
    return [(p.field, p.rule) for p in info.value.problems]


def test_a_status_webhook_becomes_this_update():
    from decline_rescue.domain.updates import OrderUpdate

    body = {
        "Event": "order.completed",
        "ExternalOrderId": "ord-1",
        "OrderId": " sess-1 ",
        "TimeStamp": "2026-01-01T00:00:00Z",
    }
    assert _update(body) == OrderUpdate(
        updateId="webhook:nonce-0001",
        source="webhook",
        orderId="ord-1",
        orderSessionKey="sess-1",
        status="APPROVED",
        providerStatus="order.completed",
        observedAt="2026-01-01T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([], ("body", "type")),
        ({}, ("Event", "missing")),
        ({"Event": "   "}, ("Event", "missing")),
        ({"Event": True}, ("Event", "type")),
        ({"Event": ["order.completed"]}, ("Event", "type")),
        ({"Event": "order.completed", "OrderId": "s" * 201}, ("OrderId", "max_length")),
        ({"Event": "order.completed", "ExternalOrderId": VISA_16}, ("ExternalOrderId", "card_number_not_allowed")),
    ],
)
def test_webhook_bodies_refused_exactly(payload, problem):
    assert _problem_of(payload)[0] == problem


def test_webhook_text_fields():
    update = _update({"Event": "order.completed", "OrderId": "s" * 200, "ExternalOrderId": 12345})
    assert (update.orderSessionKey, update.orderId) == ("s" * 200, "12345")
    assert _update({"Event": "order.completed", "OrderId": "  "}).orderSessionKey is None
    assert _update({"Event": "x" * 150}).providerStatus == "x" * 100
    assert _update({"Event": "x" * 150}).checkOnly is True


@pytest.mark.parametrize("event", ["payout.created", "payout.updated", "PAYOUT.CREATED"])
def test_payout_webhooks_concern_no_order(event):
    assert _update({"Event": event}) is None


@pytest.mark.parametrize("event", ["challenge.attempted", "challenge.passed", "something.new"])
def test_other_webhooks_only_ask_for_a_poll(event):
    update = _update({"Event": event, "ExternalOrderId": "ord-1"})
    assert (update.checkOnly, update.status, update.event) == (True, None, None)


def test_event_keys_by_what_the_webhook_carries():
    base = {"Event": "payment.chargeback.received", "ExternalOrderId": "ord-1", "OrderId": "s-1"}
    stamped = _update({**base, "TimeStamp": "2026-01-01T00:00:00Z", "ConfirmationId": "c-1"})
    assert (stamped.event, stamped.eventKey) == ("CHARGEBACK", "CHARGEBACK#2026-01-01T00:00:00Z")
    assert _update({**base, "ConfirmationId": "c-1"}).eventKey == "CHARGEBACK#c-1"
    assert _update({**base, "Event": "order.refunded", "ConfirmationId": "c-1"}).eventKey == "REFUNDED#c-1"
    plain = _update(base, "nonce-0001").eventKey
    assert plain == _update({**base, "IsResent": True}, "nonce-0002").eventKey  # a resend: the same chargeback
    assert plain.startswith("CHARGEBACK#") and "nonce" not in plain and len(plain) == len("CHARGEBACK#") + 32
    assert _update({**base, "EventData": {"caseId": "2"}}).eventKey != plain
    assert _update({**base, "OrderId": "s-2"}).eventKey != plain


def test_event_data_is_kept_redacted_and_bounded():
    base = {"Event": "order.refunded", "ExternalOrderId": "ord-1"}
    assert _update({**base, "EventData": {"note": f"card {VISA_16}", "cvv": "123"}}).reason == {
        "eventData": {"note": f"card {PAN_MARK}", "cvv": KEY_MARK}
    }
    assert _update({**base, "EventData": {"note": "y" * 2000}}).reason == {"eventData": {"note": "y" * 2000}}
    assert _update({**base, "EventData": {"note": "y" * 2100}}).reason is None
    assert len('{"eventData": {"note": "' + "y" * 2021 + '"}}') == 2048
    assert _update({**base, "EventData": {"note": "y" * 2021}}).reason == {"eventData": {"note": "y" * 2021}}
    assert _update({**base, "EventData": {"note": "y" * 2022}}).reason is None
    assert _update({**base, "EventData": {}}).reason is None
    assert _update(base).reason is None


def test_strict_json_paths_and_sizes():
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    assert [strict_json.child(p, k) for p, k in [("", "x"), ("body", "x"), ("a", "x"), ("", 0), ("a", 2)]] == [
        "x",
        "x",
        "a.x",
        "body[0]",
        "a[2]",
    ]
    for text, rule in [("\ud800" + "a" * 200, "too_large"), ("\ud800", "json"), ("é" * 60, "too_large")]:
        with pytest.raises(InvalidRequest) as info:
            strict_json.loads(text, max_bytes=100)
        assert [(p.field, p.rule) for p in info.value.problems] == [("body", rule)], text[:5]
    assert strict_json.loads('"' + "a" * 98 + '"', max_bytes=100) == "a" * 98


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[[[]]]", False),  # exactly 3
        ("[[[[]]]]", True),
        ("[[],[[]]]", False),  # 3 brackets deep after a closed one
        ("[[],[[[]]]]", True),  # 4 deep after a closed one
        ('[[["[[[[["]]]', False),  # brackets inside strings do not count
        ("{}" * 10, False),  # many, never deep
    ],
)
def test_depth_is_counted_exactly(text, deep):
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    if deep:
        with pytest.raises(InvalidRequest) as info:
            strict_json.loads(text, max_bytes=1000, max_depth=3)
        assert [(p.field, p.rule) for p in info.value.problems] == [("body", "too_deep")]
    else:
        strict_json.loads(
            text if not text.startswith("{}{}") else "[" + ",".join(["{}"] * 10) + "]", max_bytes=1000, max_depth=3
        )


@pytest.mark.parametrize(
    ("given", "compared"),
    [
        ("api.example.com", "api.example.com"),
        (" API.Example.com:443 ", "api.example.com"),
        ("api.example.com:8443", "api.example.com:8443"),
        ("api.example.com:4430", "api.example.com:4430"),
    ],
)
def test_webhook_hosts_are_compared_without_the_default_port(given, compared):
    from decline_rescue.services.webhooks import _host

    assert _host(given) == compared


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("reattempt_budget", "reattempt_budget"),
        ("a" * 40, "a" * 40),
        ("a" * 41, "other"),
        ("", "other"),
        (None, "other"),
        ("card expired", "other"),
        ("r\u00e9gle", "other"),
        ("rule-1", "other"),
    ],
)
def test_metric_dimension_labels(value, label):
    from decline_rescue.services.writer import _label

    assert _label(value) == label


@pytest.mark.parametrize(
    ("brand", "bin_", "expected"),
    [
        ("MASTERCARD", "411111", "mastercard"),  # the brand decides before the BIN
        ("MC", "411111", "mastercard"),
        ("MAESTRO", "411111", "mastercard"),
        ("Master Card", "411111", "mastercard"),
        ("VISA", "555555", "visa"),
        ("VISA ELECTRON", "555555", "visa"),
        *[("AMEX", f"{p}1111", "mastercard") for p in ("51", "52", "53", "54", "55")],
        ("AMEX", "501111", "other"),
        ("AMEX", "561111", "other"),
        ("AMEX", "222100", "mastercard"),
        ("AMEX", "272099", "mastercard"),
        ("AMEX", "222099", "other"),
        ("AMEX", "272100", "other"),
        ("AMEX", "411111", "visa"),
        ("AMEX", "371449", "other"),
        ("AMEX", "2221", "mastercard"),  # a 4-digit BIN
        ("AMEX", "2720", "mastercard"),
    ],
)
def test_the_network_of_a_card(brand, bin_, expected):
    from decline_rescue.domain.eligibility import network
    from tests.unit.test_eligibility import build

    assert network(build({"paymentMethod.cardBrand": brand, "paymentMethod.cardBinNumber": bin_})) == expected


def _key_of(basis: str) -> str:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(basis.encode()).digest()[:18]).decode()


@pytest.mark.parametrize(
    ("changes", "basis"),
    [
        (
            {"paymentMethod.cardBrand": "MASTERCARD", "paymentMethod.expirationMonth": 1},
            "MASTERCARD|555555|4444|01|2030",
        ),
        ({"paymentMethod.cardBrand": "VISA", "paymentMethod.expirationMonth": None}, "VISA|555555|4444|00|2030"),
        ({"paymentMethod.cardBrand": "VISA", "paymentMethod.expirationYear": None}, "VISA|555555|4444|12|0"),
        ({"paymentMethod.cardFingerprint": "fp-123"}, "fp:fp-123"),
    ],
)
def test_a_cards_budget_key_is_stable(changes, basis):
    """Changing how a card is keyed would reset every card's reattempt budget: pinned."""
    from decline_rescue.domain.eligibility import card_key
    from tests.unit.test_eligibility import DELETE, build

    base = {
        "paymentMethod.cardFingerprint": DELETE,
        "paymentMethod.cardBinNumber": "555555",
        "paymentMethod.cardLast4Digits": "4444",
        "paymentMethod.expirationMonth": 12,
        "paymentMethod.expirationYear": 2030,
    }
    merged = {**base, **changes}
    merged = {k: (DELETE if v is None else v) for k, v in merged.items()}
    assert card_key(build(merged)) == _key_of(basis)


@pytest.mark.parametrize(("codes", "rule"), [(NMI_NEVER, "issuer_never_approves"), (NMI_DATA_QUALITY, "data_quality")])
def test_a_gateway_verdict_names_the_gateway(codes, rule):
    decision = decide_with({"transaction.responseCode": codes[0], "transaction.responseCodeSource": " NMI "})
    assert decision.rule == rule
    assert (decision.facts["responseCode"], decision.facts["responseCodeSource"]) == (codes[0], "nmi")


def test_an_update_source_must_be_a_string():
    from decline_rescue.domain.updates import OrderUpdate

    with pytest.raises(ValueError, match="source must be a string"):
        OrderUpdate.from_message({"updateId": "u-1", "source": ["webhook"], "status": "APPROVED"})


WEBHOOK_KEY = b"k" * 32
SIGNED_AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date", "now_offset", "valid"),
    [
        ("Sun, 22 Nov 2026 12:00:00 GMT", 300, True),  # exactly the allowed skew
        ("Sun, 22 Nov 2026 12:00:00 GMT", 301, False),
        ("Sun, 22 Nov 2026 12:00:00 GMT", -300, True),
        ("Sun, 22 Nov 2026 12:00:00 -0000", 0, True),  # no zone: read as UTC
        ("Sun, 22 Nov 2026 13:00:00 +0100", 0, True),  # 12:00 UTC
        ("Sun, 22 Nov 2026 12:00:00 +0100", 0, False),  # 11:00 UTC: an hour off
    ],
)
def test_webhook_dates_against_the_skew_exactly(date, now_offset, valid):
    from datetime import timedelta

    from decline_rescue.providers.flexfactor.signatures import WebhookRejected, sign, verify

    body = b'{"Event":"order.completed"}'
    headers = {**sign(body, key=WEBHOOK_KEY, host="api.example.com", nonce="nonce-0001", date=date)}
    headers["host"] = "api.example.com"
    now = SIGNED_AT + timedelta(seconds=now_offset)
    if valid:
        assert verify("POST", body, headers, keys=[WEBHOOK_KEY], now=now, max_skew_seconds=300) == "nonce-0001"
    else:
        with pytest.raises(WebhookRejected) as info:
            verify("POST", body, headers, keys=[WEBHOOK_KEY], now=now, max_skew_seconds=300)
        assert info.value.reason == "stale_date"


def test_a_budget_counts_each_window_and_caps_today_by_the_days_before():
    from datetime import timedelta

    from decline_rescue.domain.eligibility import Budget

    today = date(2026, 11, 22)

    def day(n: int) -> str:
        return (today + timedelta(days=n)).isoformat()

    mastercard = Budget("card", "mastercard", today, {day(-1): 5, day(0): 3, day(-29): 2, day(-30): 9})
    assert mastercard.attempts_in() == {1: 3, 30: 10}
    assert mastercard.cap() == 10  # 10 a day (none before today counts), 35 - 7 in the 30 days
    visa = Budget("card", "visa", today, {day(-29): 4, day(-30): 7, day(0): 2})
    assert visa.attempts_in() == {30: 6}
    assert visa.cap() == 16
    full = Budget("card", "mastercard", today, {day(-1): 20, day(-2): 15})
    assert full.cap() == 0
    assert full.without(day(-1)).days == {day(-1): 19, day(-2): 15}
    assert full.without(day(-5)).days == {day(-1): 20, day(-2): 15}
