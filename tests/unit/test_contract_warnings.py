"""The /evaluate contract as FlexFactor's sandbox enforces it: keys bound whatever their
case, token-only payment methods, fallbacks named as warnings, amount bounds per currency
and idempotency keys as real clients send them.

The seed's corrected examples are the baseline (helpers shared with test_contract).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.unit.test_contract import (
    DELETE,
    NOW,
    TOKEN,
    accept,
    assert_warned,
    cit,
    edit,
    forwarded_as_sent,
    mit,
    problems,
    refuse,
    warnings_of,
)

# -- keys bind case-insensitively ------------------------------------------------------


def _recase(node: Any, key_case) -> Any:
    """``node`` with every key (at every depth, list items included) re-cased."""
    if isinstance(node, dict):
        return {key_case(k): _recase(v, key_case) for k, v in node.items()}
    if isinstance(node, list):
        return [_recase(v, key_case) for v in node]
    return node


CASINGS = {
    "PascalCase": lambda k: k[:1].upper() + k[1:],
    "UPPER": str.upper,
    "lower": str.lower,
}


@pytest.mark.parametrize("casing", list(CASINGS))
@pytest.mark.parametrize("base", [cit, mit], ids=["cit", "mit"])
def test_whole_seed_body_in_another_casing_is_the_same_request(base, casing):
    # Given the seed example with every key re-cased (OrderId, PaymentMethod.CardNumber, ...)
    raw = _recase(base(), CASINGS[casing])
    assert raw != base()

    # When it is validated
    request = accept(raw)

    # Then it is the camelCase request: bound, not dropped, forwarded in the contract's spelling
    camel = accept(base())
    assert request.to_provider() == camel.to_provider()
    assert request.fingerprint() == camel.fingerprint()
    assert request.dropped_fields() == []
    assert request.warnings == []


def test_payment_method_token_in_pascal_case_is_bound():
    raw = edit(cit(), {"paymentMethod.Token": True})
    forwarded = accept(raw).to_provider()["paymentMethod"]
    assert forwarded["token"] is True
    assert "Token" not in forwarded


def test_payment_method_token_false_in_pascal_case_is_still_refused():
    assert problems(edit(cit(), {"paymentMethod.Token": False})) == {("paymentMethod.token", "token_required")}


def test_three_d_secure_ecommerce_indicator_in_pascal_case_is_bound():
    raw = edit(mit(), {"threeDSecure.ecommerceIndicator": DELETE, "threeDSecure.EcommerceIndicator": "05"})
    request = accept(raw)
    assert request.threeDSecure.ecommerceIndicator == "05"
    assert request.to_provider()["threeDSecure"] == {
        **accept(mit()).to_provider()["threeDSecure"],
        "ecommerceIndicator": "05",
    }
    assert request.warnings == []  # not taken for missing


def test_additional_field_key_and_value_in_pascal_case_are_bound():
    request = accept(edit(cit(), {"additionalFields": [{"Key": "campaign", "Value": "spring"}]}))
    assert request.to_provider()["additionalFields"] == [{"key": "campaign", "value": "spring"}]
    assert request.dropped_fields() == []


def test_additional_field_pascal_case_key_naming_a_cvv_is_refused():
    error = refuse(edit(cit(), {"additionalFields": [{"Key": "CVV", "Value": "123"}]}))
    assert {(p.field, p.rule) for p in error.problems} == {("additionalFields[0].value", "cvv_not_allowed")}
    assert "123" not in " ".join(p.message for p in error.problems)


def test_a_field_sent_under_an_unknown_spelling_is_still_dropped():
    request = accept(edit(cit(), {"order_id": "other-order"}))
    assert request.orderId == cit()["orderId"]
    assert request.dropped_fields() == ["order_id"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"OrderId": "ord-2"}, "orderId"),
        ({"ORDERID": "ord-2"}, "orderId"),
        ({"paymentMethod.token": True, "paymentMethod.Token": True}, "paymentMethod.token"),
        ({"transaction.Amount": 1999}, "transaction.amount"),
        ({"additionalFields": [{"key": "a", "Key": "b", "value": "v"}]}, "additionalFields[0].key"),
        ({"orderItems.1.SKU": "SKU999"}, "orderItems[1].sku"),
    ],
    ids=["orderId", "orderId-upper", "paymentMethod.token", "transaction.amount", "additionalFields-key", "item-sku"],
)
def test_a_field_sent_twice_in_two_casings_is_refused(changes, field):
    raw = {**cit(), **changes} if "." not in next(iter(changes)) else edit(cit(), changes)
    error = refuse(raw)
    assert {(p.field, p.rule) for p in error.problems} == {(field, "duplicate_key")}
    assert "ord-2" not in str(error) and "SKU999" not in str(error)


# -- token-only payment methods --------------------------------------------------------

CARD_FIELDS = [
    "holderName",
    "cardType",
    "cardBrand",
    "cardCountry",
    "expirationMonth",
    "expirationYear",
    "cardBinNumber",
    "cardLast4Digits",
]


def test_token_only_payment_method_is_accepted_and_every_missing_card_field_named():
    # Given what real clients send: the token, and nothing about the card
    raw = edit(cit(), {"paymentMethod": {"Token": True, "cardNumber": TOKEN}})

    # When it is validated
    request = accept(raw)

    # Then it is accepted, forwarded as sent, and each missing card field is named
    assert request.to_provider()["paymentMethod"] == {"token": True, "cardNumber": TOKEN}
    assert warnings_of(request) == sorted(
        [(f"paymentMethod.{f}", "seed_required") for f in CARD_FIELDS]
        + [("paymentMethod.expirationMonth", "fallback")]
        # the budget can count this card only by its token
        + [("paymentMethod.cardFingerprint", "fallback")]
    )
    assert request.paymentMethod.expiry() is None
    card = request.safe_summary()["card"]
    assert card == {"bin": None, "last4": None, "brand": "", "expirationMonth": None, "expirationYear": None}
    assert TOKEN not in str(request.safe_summary())


def test_payment_method_without_the_token_is_refused():
    assert problems(edit(cit(), {"paymentMethod": {"Token": True}})) == {("paymentMethod.cardNumber", "missing")}


def test_missing_expiration_year_alone_disables_the_expired_card_rule():
    request = accept(edit(cit(), {"paymentMethod.expirationYear": DELETE}))
    assert request.paymentMethod.expiry() is None
    assert warnings_of(request) == [
        ("paymentMethod.expirationYear", "fallback"),
        ("paymentMethod.expirationYear", "seed_required"),
    ]


def test_eight_digit_bin_is_accepted_and_forwarded_as_sent():
    assert_warned(cit, {"paymentMethod.cardBinNumber": "41111111"}, [])


@pytest.mark.parametrize("bin_number", ["4111", "41111", "4111111"], ids=["4-digits", "5-digits", "7-digits"])
def test_bin_of_four_to_eight_digits_but_not_six_or_eight_is_warned(bin_number):
    # FlexCharge's own Node sample sends a 5-digit BIN
    assert_warned(cit, {"paymentMethod.cardBinNumber": bin_number}, [("paymentMethod.cardBinNumber", "bin_length")])


@pytest.mark.parametrize("bin_number", ["411", "411111111", "4111 11"], ids=["3-digits", "9-digits", "space"])
def test_bin_that_is_not_four_to_eight_digits_is_refused(bin_number):
    raw = edit(cit(), {"paymentMethod.cardBinNumber": bin_number})
    assert problems(raw) == {("paymentMethod.cardBinNumber", "string_pattern_mismatch")}


def test_short_bin_is_still_matched_against_an_allowed_card_number():
    changes = {"paymentMethod.cardNumber": "4111111111111111"}
    assert accept(edit(cit(), {**changes, "paymentMethod.cardBinNumber": "41111"}), allow_card_numbers=True)
    raw = edit(cit(), {**changes, "paymentMethod.cardBinNumber": "41112"})
    assert problems(raw, allow_card_numbers=True) == {("paymentMethod.cardBinNumber", "card_mismatch")}


# -- the declined attempt's time ---------------------------------------------------------


def test_transaction_timestamp_stands_in_for_a_missing_timestamp_utc():
    # Given the Ruby gateway's transaction.timestamp in place of timestampUtc
    changes = {"transaction.timestampUtc": DELETE, "transaction.timestamp": "2026-11-22T10:15:00Z"}

    # When it is validated
    request = assert_warned(
        cit,
        changes,
        [("transaction.timestampUtc", "fallback"), ("transaction.timestampUtc", "seed_required")],
    )

    # Then the declined attempt's time is read from it, and it is forwarded as sent (not renamed)
    assert request.transaction.declined_at() == NOW.replace(hour=10, minute=15)
    forwarded = request.to_provider()["transaction"]
    assert forwarded["timestamp"] == "2026-11-22T10:15:00Z" and "timestampUtc" not in forwarded
    [fallback] = [w for w in request.warnings if w.rule == "fallback"]
    assert "transaction.timestamp" in fallback.message


def test_timestamp_utc_wins_over_transaction_timestamp():
    request = accept(
        edit(
            cit(), {"transaction.timestampUtc": "2026-11-22T11:00:00Z", "transaction.timestamp": "2026-11-20T11:00:00Z"}
        )
    )
    assert request.transaction.declined_at() == NOW.replace(hour=11)
    assert request.warnings == []


@pytest.mark.parametrize("value", ["yesterday", "", 1732270500, "2026-13-01T00:00:00Z"], ids=str)
def test_transaction_timestamp_that_is_not_a_date_time_is_refused(value):
    raw = edit(cit(), {"transaction.timestampUtc": DELETE, "transaction.timestamp": value})
    assert problems(raw) == {("transaction.timestamp", "datetime")}


def test_mit_without_any_timestamp_counts_from_receipt_and_says_so():
    request = accept(edit(mit(), {"transaction.timestampUtc": DELETE}))
    assert request.transaction.declined_at() is None
    assert warnings_of(request) == [
        ("transaction.timestampUtc", "fallback"),
        ("transaction.timestampUtc", "seed_required"),
    ]
    [fallback] = [w for w in request.warnings if w.rule == "fallback"]
    assert "receipt" in fallback.message


@pytest.mark.parametrize(
    ("ahead", "expected"),
    [(timedelta(minutes=4), []), (timedelta(hours=1), [("transaction.timestampUtc", "in_future")])],
    ids=["clock-skew", "an-hour-ahead"],
)
def test_declined_attempt_in_the_future_is_warned(ahead, expected):
    stamp = (NOW + ahead).isoformat().replace("+00:00", "Z")  # as the body forwards a UTC time
    assert_warned(cit, {"transaction.timestampUtc": stamp}, expected)


# -- expiryDateUtc -----------------------------------------------------------------------


def test_mit_with_null_expiry_date_is_accepted_and_warned():
    request = accept(edit(mit(), {"expiryDateUtc": None}))
    assert request.expiryDateUtc is None
    assert warnings_of(request) == [("expiryDateUtc", "fallback")]
    assert "expiryDateUtc" not in request.to_provider()


@pytest.mark.parametrize("base", [mit, cit], ids=["mit", "cit"])
def test_empty_expiry_date_is_refused_naming_it(base):
    # the sandbox: "The field ExpiryDateUtc is invalid"
    assert {field for field, _ in problems(edit(base(), {"expiryDateUtc": ""}))} == {"expiryDateUtc"}


# -- dates as the Node sample writes them (Date.toUTCString(): RFC 1123) -----------------


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("Sun, 24 May 2099 12:30:20 GMT", "2099-05-24T12:30:20Z"),
        ("Sun, 24 May 2099 12:30:20 +0200", "2099-05-24T10:30:20Z"),
    ],
    ids=["GMT", "offset"],
)
def test_rfc_1123_expiry_date_is_read_and_forwarded_as_iso_8601(sent, forwarded):
    request = accept(edit(mit(), {"expiryDateUtc": sent}))
    assert request.warnings == []
    assert request.to_provider()["expiryDateUtc"] == forwarded


def test_rfc_1123_expiry_date_in_the_past_is_refused():
    assert problems(edit(mit(), {"expiryDateUtc": "Wed, 24 May 2023 12:30:20 GMT"})) == {("expiryDateUtc", "in_past")}


def test_rfc_1123_timestamp_utc_is_the_declined_attempts_time():
    request = accept(edit(cit(), {"transaction.timestampUtc": "Sun, 22 Nov 2026 10:15:00 GMT"}))
    assert request.transaction.declined_at() == NOW.replace(hour=10, minute=15)
    assert request.to_provider()["transaction"]["timestampUtc"] == "2026-11-22T10:15:00Z"
    assert request.warnings == []


# -- amount bounds follow the currency's exponent --------------------------------------


@pytest.mark.parametrize(
    ("currency", "exponent", "top"),
    [("JPY", 0, 10**10), ("USD", 2, 10**12), ("KWD", 3, 10**13)],
    ids=["JPY", "USD", "KWD"],
)
def test_amount_bound_is_ten_billion_major_units_of_the_currency(currency, exponent, top):
    at_top = accept(edit(cit(), {"transaction.currency": currency, "transaction.amount": top}))
    assert at_top.transaction.amount == top

    error = refuse(edit(cit(), {"transaction.currency": currency, "transaction.amount": top + 1}))
    assert [(p.field, p.rule) for p in error.problems] == [("transaction.amount", "less_than_equal")]
    message = error.problems[0].message
    assert currency in message and f"exponent {exponent}" in message and str(top) in message
    assert str(top + 1) not in str(error)


def test_jpy_bound_is_not_the_usd_one():
    # 10**11 yen is a unit mistake; 10**11 cents is a billion dollars, within bounds
    assert accept(edit(cit(), {"transaction.amount": 10**11})).transaction.amount == 10**11
    raw = edit(cit(), {"transaction.currency": "JPY", "transaction.amount": 10**11})
    assert problems(raw) == {("transaction.amount", "less_than_equal")}


# -- idempotency keys ------------------------------------------------------------------


def test_short_non_uuid_idempotency_key_is_accepted_and_indexed_as_sent():
    request = assert_warned(cit, {"idempotencyKey": "abc123"}, [("idempotencyKey", "uuid")])
    assert request.idempotency_key == "abc123"
    assert request.safe_summary()["idempotencyKey"] == "abc123"


def test_upper_case_uuid_idempotency_key_is_indexed_in_lower_case():
    key = cit()["idempotencyKey"]
    request = accept(edit(cit(), {"idempotencyKey": key.upper()}))
    assert request.idempotency_key == key == str(uuid.UUID(key))
    assert request.safe_summary()["idempotencyKey"] == key
    assert request.warnings == []


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("abc 123", "string_pattern_mismatch"),
        ("abc\t123", "string_pattern_mismatch"),
        ("k" * 129, "string_too_long"),
        ("", "missing"),
        ("clé", "string_pattern_mismatch"),
    ],
    ids=["space", "tab", "129-chars", "empty", "non-ascii"],
)
def test_idempotency_key_with_a_space_or_too_long_is_refused(key, rule):
    assert problems(edit(cit(), {"idempotencyKey": key})) == {("idempotencyKey", rule)}


def test_idempotency_key_of_128_characters_is_accepted():
    request = accept(edit(cit(), {"idempotencyKey": "k" * 128}))
    assert request.idempotency_key == "k" * 128


# -- real clients' own fields and the seed's typing slips -------------------------------


def test_source_and_extra_data_are_forwarded():
    changes = {"Source": "ruby-gateway", "ExtraData": '{"attempt":2}'}
    request = accept({**cit(), **changes})
    body = request.to_provider()
    assert body["source"] == "ruby-gateway" and body["extraData"] == '{"attempt":2}'
    assert body == {**accept(cit()).to_provider(), "source": "ruby-gateway", "extraData": '{"attempt":2}'}
    assert request.dropped_fields() == []
    assert request.fingerprint() != accept(cit()).fingerprint()


def test_subscription_price_as_a_string_is_warned_and_forwarded_as_sent():
    request = assert_warned(mit, {"subscription.price": "1999"}, [("subscription.price", "type")])
    assert request.to_provider()["subscription"]["price"] == "1999"


@pytest.mark.parametrize("price", ["19.99", "-5", "twenty"], ids=str)
def test_subscription_price_string_that_is_not_cents_is_refused(price):
    assert problems(edit(mit(), {"subscription.price": price})) == {("subscription.price", "int_type")}


def test_warnings_never_refuse_and_name_every_field_at_once():
    # Given the seed CIT with everything the sandbox tolerates done wrong at once
    changes = {
        "idempotencyKey": "abc123",
        "orderSource": "Site1",
        "payer.email": "NA",
        "customerIp": "localhost",
        "billingInformation.state": "ZZ",
        "paymentMethod.cardType": "CHARGE",
        "transaction.cardNotPresent": DELETE,
    }

    # When it is validated: accepted, each one named, values forwarded as sent
    request = assert_warned(
        cit,
        changes,
        [
            ("idempotencyKey", "uuid"),
            ("orderSource", "enum"),
            ("payer.email", "email"),
            ("customerIp", "ip_address"),
            ("billingInformation.state", "state"),
            ("paymentMethod.cardType", "enum"),
            ("transaction.cardNotPresent", "seed_required"),
        ],
    )
    assert request.to_provider() == forwarded_as_sent(cit, changes)
    # and no warning's message echoes a value sent
    text = " ".join(w.message for w in request.warnings)
    assert not [v for v in ("abc123", "Site1", "localhost", "CHARGE") if v in text]


# -- found by a review: each once wrong, now pinned -----------------------------------------


def test_a_short_mastercard_bin_is_mastercard_without_a_brand():
    from decline_rescue.domain.eligibility import network

    for bin_ in ("55555", "2221", "272099"):
        request = accept(edit(cit(), {"paymentMethod.cardBrand": DELETE, "paymentMethod.cardBinNumber": bin_}))
        assert network(request) == "mastercard", bin_
    request = accept(edit(cit(), {"paymentMethod.cardBrand": DELETE, "paymentMethod.cardBinNumber": "2720999"}))
    assert network(request) == "mastercard"
    request = accept(edit(cit(), {"paymentMethod.cardBrand": DELETE, "paymentMethod.cardBinNumber": "27210"}))
    assert network(request) == "other"


def test_a_uuid_key_in_another_casing_is_the_same_request_for_idempotency():
    key = str(uuid.uuid4())
    lower = accept(edit(cit(), {"idempotencyKey": key}))
    upper = accept(edit(cit(), {"idempotencyKey": key.upper()}))
    assert upper.idempotency_key == lower.idempotency_key == key
    assert upper.fingerprint() == lower.fingerprint()
    assert accept(edit(cit(), {"idempotencyKey": "other-key"})).fingerprint() != lower.fingerprint()


def test_a_zero_price_is_refused_as_a_string_and_as_a_number():
    for price in ("0", 0):
        found = {p[0] for p in problems(edit(mit(), {"subscription.price": price}))}
        assert "subscription.price" in found, price


def test_the_gateways_timestamp_may_be_rfc_1123_too():
    stamp = (NOW - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    request = accept(edit(mit(), {"transaction.timestampUtc": DELETE, "transaction.timestamp": stamp}))
    assert request.transaction.declined_at() == NOW - timedelta(hours=1)
    assert request.to_provider()["transaction"]["timestamp"] == stamp  # forwarded as sent


def test_a_card_number_is_never_hashed_into_the_budget_key():
    from decline_rescue.domain.eligibility import card_key, network

    pan = "4111111111111111"
    bare = accept(edit(cit(), {"paymentMethod": {"token": False, "cardNumber": pan}}), allow_card_numbers=True)
    described = accept(
        edit(
            cit(),
            {
                "paymentMethod": {
                    "token": False,
                    "cardNumber": pan,
                    "cardBinNumber": "411111",
                    "cardLast4Digits": "1111",
                }
            },
        ),
        allow_card_numbers=True,
    )
    # a bare card number is counted as the card its BIN and last four describe, not by a hash of it
    assert card_key(bare) == card_key(described)
    assert network(bare) == "visa"
    assert ("paymentMethod.cardFingerprint", "fallback") not in warnings_of(bare)
