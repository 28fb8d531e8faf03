"""Card data detection and the log formatter's redaction."""

from __future__ import annotations

import io
import json

import pytest

from decline_rescue.domain.carddata import REDACTED, REDACTED_PAN, find_pans, is_pan, luhn_valid, redact

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
