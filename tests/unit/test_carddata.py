"""Card data detection and the log formatter's redaction."""

from __future__ import annotations

import io
import json

import pytest

from decline_rescue.domain.carddata import (
    REDACTED,
    REDACTED_DEPTH,
    REDACTED_PAN,
    card_digits,
    find_pans,
    is_pan,
    luhn_valid,
    names_cvv,
    redact,
    redact_text,
)

TEST_CARDS = ["4111111111111111", "5555555555554444", "372425119311008", "4000002760003184", "6011111111111117"]


@pytest.mark.parametrize("pan", TEST_CARDS)
def test_test_cards_are_luhn_valid(pan):
    assert luhn_valid(pan) and is_pan(pan)


@pytest.mark.parametrize("text", ["4111111111111112", "411111111111", "41111111111111111111", "abc", ""])
def test_non_cards(text):
    assert not is_pan(text)


def test_find_pans_with_separators_and_context():
    text = "card 4111 1111 1111 1111 and 5555-5555-5555-4444 order 12345678901234 id x4111111111111111y"
    assert find_pans(text) == ["4111111111111111", "5555555555554444", "4111111111111111"]


def test_digits_glued_to_more_digits_are_not_split():
    # a 20-digit run is not a card, and no 16-digit window inside it is reported
    assert find_pans("12345678901234567890") == []


def test_redact_nested_values_and_sensitive_keys():
    record = {
        "message": "charging 4111111111111111 now",
        "card": {"number": "5555555555554444", "securityCode": "123", "bin": "411111", "last4": "1111"},
        "items": ["372425119311008", {"cvv": "999"}],
        "orderId": "ord-1",
        "amount": 1234,
    }
    out = redact(record)
    flat = json.dumps(out)
    for pan in TEST_CARDS[:3]:
        assert pan not in flat
    assert out["message"] == f"charging {REDACTED_PAN} now"
    assert out["card"]["securityCode"] == REDACTED
    assert out["items"][1]["cvv"] == REDACTED
    assert out["card"]["bin"] == "411111" and out["card"]["last4"] == "1111"
    assert out["orderId"] == "ord-1" and out["amount"] == 1234
    assert record["card"]["number"] == "5555555555554444", "redact must not mutate its input"


def test_logger_never_prints_card_data():
    from decline_rescue.runtime.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    try:
        log_card_data(logger)
    finally:
        logger.registered_handler.setStream(previous)
    out = buffer.getvalue()
    assert out.count("\n") >= 2
    assert find_pans(out) == []
    assert '"cvv":"[REDACTED]"' in out.replace(" ", "")
    assert "bad card [REDACTED_PAN]" in out


def log_card_data(logger) -> None:
    logger.info("payment for 4111111111111111", extra={"cardNumber": "5555555555554444", "cvv": "123"})
    try:
        raise ValueError("bad card 372425119311008")
    except ValueError:
        logger.exception("failed")


@pytest.mark.parametrize(
    "record",
    [
        {"ref": 4111111111111111},
        {"5555555555554444": "as a key"},
        {"note": "4111.1111.1111.1111"},
        {"note": "4111  1111  1111  1111"},
        {"items": {4111111111111111, 1}},
    ],
    ids=["int", "key", "dots", "double-spaces", "set"],
)
def test_redaction_covers_every_shape(record):
    assert find_pans(json.dumps(redact(record), default=str)) == []


# -- the one detector: hostile spellings ------------------------------------------------

PAN = "4111111111111111"
FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in PAN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111\t1111\t1111\t1111", [PAN]),
        ("4111/1111/1111/1111", [PAN]),
        ("4111_1111_1111_1111", [PAN]),
        ("4111\n1111\n1111\n1111", [PAN]),
        ("4111 / 1111 / 1111 / 1111", [PAN]),
        ("4111\t1111/1111.1111", [PAN]),  # mixed separators: the whole chain
        ("4111\u200b1111\u200b1111\u200b1111", [PAN]),  # zero-width spaces
        ("4111\u00a01111\u00a01111\u00a01111", [PAN]),  # no-break spaces
        ("4111\u20141111\u20141111\u20141111", [PAN]),  # em dashes
        (FULL_WIDTH, [PAN]),
        ("\uff14\uff11\uff11\uff11\uff0d1111\uff0d1111\uff0d1111", [PAN]),  # full-width digits and dashes
        ("".join(chr(0x0660 + int(d)) for d in PAN), [PAN]),  # Arabic-Indic
        ("".join(chr(0x0966 + int(d)) for d in PAN), [PAN]),  # Devanagari
        ("".join(chr(0x1D7CE + int(d)) for d in PAN), [PAN]),  # mathematical bold
        ("4111 1111 1111 1111 12/28", [PAN]),  # then the expiry
        ("4111 1111 1111 1111 1234", [PAN]),  # then more digits, same separator
        ("qty 12 4111111111111111", [PAN]),  # after a number
        ("41111111.11111111", [PAN]),
        ("372425119311008", ["372425119311008"]),
        ("3724 251193 11008", ["372425119311008"]),  # Amex grouping 4-6-5
    ],
    ids=[
        "tabs",
        "slashes",
        "underscores",
        "newlines",
        "spaced-slashes",
        "mixed",
        "zero-width",
        "nbsp",
        "em-dash",
        "full-width",
        "full-width-dashes",
        "arabic-indic",
        "devanagari",
        "math-bold",
        "before-expiry",
        "before-digits",
        "after-a-number",
        "decimal-point",
        "amex",
        "amex-grouped",
    ],
)
def test_card_numbers_are_found_however_written(text, expected):
    # Given a card number written to slip past a naive pattern / When scanned / Then found
    assert find_pans(text) == expected
    # and redacted from a log line
    assert find_pans(redact({"message": text})["message"]) == []


@pytest.mark.parametrize(
    "value",
    [
        4111111111111111,
        -4111111111111111,
        4111111111111111.0,
        4.111111111111111e15,
        41111111.11111111,
    ],
    ids=["int", "negative", "float", "float-exponent", "float-split"],
)
def test_numbers_are_card_numbers_too(value):
    assert find_pans(value) == [PAN]
    assert redact({"ref": value}) == {"ref": REDACTED_PAN}
    assert redact([value]) == [REDACTED_PAN]


@pytest.mark.parametrize(
    "text",
    [
        "2024-11-22 12:00:00,123+0000",  # Powertools' timestamp
        "2026-11-22T10:15:00.123456+00:00",  # an ISO timestamp with microseconds
        "arn:aws:lambda:us-east-1:123456789012:function:evaluate",
        "12345678-1234-1234-1234-123456789012",  # an all-digit UUID: no group of 13+
        "8a4e4e0e-5c1b-4f7e-9d0a-2b6f3c1d7e55",
        "zJb6YF7pL5gk8x9VhRnSwHd4q2t",  # a token: letters between the digits
        "4111a1111b1111c1111",
        "41111111111111111111",  # 20 digits: never split
        "4111----1111----1111----1111",  # separators longer than 3
        "4111:1111:1111:1111",  # colons separate times, not card numbers
        "+1 555-123-4567",
        "201.154.255.255",
        "4111111111111112",  # not Luhn-valid
        "",
    ],
)
def test_what_is_not_a_card_number(text):
    assert find_pans(text) == []
    assert redact({"message": text}) == {"message": text}


@pytest.mark.parametrize("value", [True, False, None, 0, 1.5, float("nan"), float("inf"), 411111111111])
def test_other_values_are_left_alone(value):
    assert find_pans(value) == []
    out = redact({"v": value})["v"]
    assert out is value or out == value or (value != value and out != out)


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        (PAN, PAN),
        ("4111 1111 1111 1111", PAN),
        (" 4111-1111-1111-1111 ", PAN),
        (FULL_WIDTH, PAN),
        (int(PAN), PAN),
        (float(PAN), PAN),
        ("card 4111111111111111", None),  # holds one, but is not one
        ("4111111111111111 1234", None),
        ("tok_4111111111111111", None),
        ("zJb6YF7pL5gk8x9VhRnSwHd4q2t", None),
    ],
)
def test_card_digits_is_one_card_number_and_nothing_else(value, digits):
    assert card_digits(value) == digits
    assert is_pan(value) is (digits is not None)


CVV_KEYS = [
    "cvv",
    "CVV",
    "cvv2",
    "cvc",
    "cvc2",
    "cvn",
    "csc",
    "cid",
    "cvd",
    "cvvCode",
    "cvv_code",
    "card_cvv",
    "cardCvv",
    "ccCvv",
    "creditCardCvv",
    "CVV_NUMBER",
    "cvvNumber",
    "cvv2Value",
    "securityCode",
    "security_code",
    "security-code",
    "SECURITY CODE",
    "cardSecurityCode",
    "paymentSecurityCode",
    "verificationValue",
    "cardVerificationValue",
    "verificationCode",
    "cardCode",
    "cidNumber",
    "\uff43\uff56\uff56",  # full-width "cvv"
]
NOT_CVV_KEYS = [
    "decidedAt",
    "cvvResultCode",
    "cavvResultCode",
    "cvcCheck",
    "cvv_check",
    "incidentId",
    "accidental",
    "security",
    "code",
    "verification",
    "authenticationValue",
    "cardNumber",
    "",
]


@pytest.mark.parametrize("key", CVV_KEYS)
def test_keys_naming_a_cvv(key):
    assert names_cvv(key)
    assert redact({key: "123"}) == {key: REDACTED}
    assert redact({"a": [{"b": {key: 123}}]}) == {"a": [{"b": {key: REDACTED}}]}


@pytest.mark.parametrize("key", NOT_CVV_KEYS)
def test_keys_that_do_not_name_a_cvv(key):
    assert not names_cvv(key)


def test_redaction_never_recurses_without_bound():
    # Given a record nested far deeper than any log record should be
    record: dict = {"leaf": PAN}
    for _ in range(5000):
        record = {"a": record}

    # When it is redacted / Then no RecursionError, and nothing of the deep part survives
    out = redact(record)
    assert find_pans(json.dumps(out)) == []
    assert REDACTED_DEPTH in json.dumps(out)


def test_logger_prints_a_deep_hostile_record_without_card_data():
    from decline_rescue.runtime.observability import logger

    deep: dict = {"pan": PAN, "float": float(PAN), "fw": FULL_WIDTH}
    for _ in range(3000):
        deep = {"a": deep}
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    try:
        logger.info("hostile", extra={"body": deep, "ref": 4.111111111111111e15, "note": "4111\t1111/1111.1111"})
    finally:
        logger.registered_handler.setStream(previous)
    out = buffer.getvalue()
    assert '"message":"hostile"' in out.replace(" ", "")
    assert find_pans(out) == []


def test_non_ascii_text_with_a_card_number_is_redacted_normalised():
    assert redact_text(f"carte {FULL_WIDTH} merci") == f"carte {REDACTED_PAN} merci"
    assert redact_text("caf\u00e9 sans num\u00e9ro") == "caf\u00e9 sans num\u00e9ro"  # nothing found: as it was


def test_a_uuid_is_an_identifier_not_a_card_number():
    """An idempotencyKey or a request id whose first groups happen to be all digits must
    not be refused or redacted as a card number (it was, about once in twenty thousand)."""
    import uuid

    all_digits = "22404997-1234-4123-8123-123456789012"  # 8+4+4 digits: Luhn-valid runs inside
    assert find_pans(all_digits) == [] and redact({"requestId": all_digits}) == {"requestId": all_digits}
    assert not any(find_pans(str(uuid.uuid4())) for _ in range(20_000))
    # a card number beside a UUID is still found
    assert find_pans(f"{all_digits} 4111 1111 1111 1111") == ["4111111111111111"]


def test_a_hex_fingerprint_or_hash_is_an_identifier_not_a_card_number():
    """A card fingerprint (32 hex) or a hash with letters in it must not be refused for a
    run of 13 decimal digits inside it (about one in five hundred were)."""
    import hashlib
    import uuid

    assert find_pans("4111111111111111")  # (a card number on its own)
    assert find_pans("ab4111111111111111cdef0123456789ab") == []  # the same 16 digits inside a hex token
    assert not any(find_pans(uuid.uuid4().hex) for _ in range(20_000))
    assert not any(find_pans(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(5_000))
    # a card number glued to a short word is still one
    assert find_pans("card4111111111111111") == ["4111111111111111"]


def _luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it pass the Luhn check."""
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def test_a_13_digit_number_is_a_card_only_when_it_starts_with_4():
    # a Visa of 13 digits (the only network that issued them) is found, alone or grouped
    visa13 = _luhn_complete("422222222222")
    assert find_pans(visa13) == [visa13] and find_pans(f"card {visa13[:4]} {visa13[4:]}") == [visa13]
    # a Luhn-valid millisecond timestamp (FlexCharge's Node sample's subscriptionId) is not
    stamp = _luhn_complete("179617330123")
    assert luhn_valid(stamp) and len(stamp) == 13
    assert find_pans(stamp) == [] and find_pans(int(stamp)) == []
    assert redact({"subscriptionId": stamp}) == {"subscriptionId": stamp}
    # 14 digits and more are cards whatever they start with
    longer = _luhn_complete("1796173301234")
    assert find_pans(longer) == [longer]
