"""The FlexFactor /evaluate contract (seed 003): every field, every rule, the card guard.

Each refusal names the exact field (dotted path) and rule; the seed's own examples are
the baseline (tests/fixtures/seed_*_corrected.json) and each correction is undone in turn.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from decline_rescue.domain.contract import EvaluateRequest, validate_request
from decline_rescue.domain.errors import InvalidRequest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TOKEN = "zJb6YF7pL5gk8x9VhRnSwHd4q2t"
PAN = "4111111111111111"
# The MIT example carries no siteId: declines.parse fills it from the FlexFactor secret
# before validation, as this does.
SITE_ID = "0b6c3c2e-3d6a-4f0e-9a57-1f2a5c7e9b11"
DELETE = object()


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"seed_{name}_corrected.json").read_text())["request"]


def cit() -> dict[str, Any]:
    return _load("cit")


def mit() -> dict[str, Any]:
    return {**_load("mit"), "siteId": SITE_ID}


def edit(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with each dotted path set (``DELETE`` removes it; digits index lists)."""
    out = copy.deepcopy(raw)
    for path, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = out
        for key in parents:
            node = node[key]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def accept(raw: dict[str, Any], **kwargs: Any) -> EvaluateRequest:
    return validate_request(raw, now=NOW, **kwargs)


def refuse(raw: Any, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate_request(raw, now=NOW, **kwargs)
    return info.value


def problems(raw: Any, **kwargs: Any) -> set[tuple[str, str]]:
    return {(p.field, p.rule) for p in refuse(raw, **kwargs).problems}


def warnings_of(request: EvaluateRequest) -> list[tuple[str, str]]:
    """The request's warnings as sorted (field, rule) pairs: a warning given twice shows twice."""
    return sorted((w.field, w.rule) for w in request.warnings)


def forwarded_as_sent(base: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """What ``to_provider()`` must be for ``edit(base(), changes)``: the example's own
    forwarded body with exactly the changes sent, values as sent (an absent isMIT is false)."""
    spelled = {path.replace("zipcode", "zipCode"): value for path, value in changes.items()}
    expected = edit(accept(base()).to_provider(), spelled)
    expected.setdefault("isMIT", False)
    return expected


def assert_warned(base: Any, changes: dict[str, Any], expected: list[tuple[str, str]]) -> EvaluateRequest:
    """``edit(base(), changes)`` is accepted, warned exactly ``expected``, forwarded as sent."""
    request = accept(edit(base(), changes))
    assert warnings_of(request) == sorted(expected)
    assert request.to_provider() == forwarded_as_sent(base, changes)
    return request


# -- the seed's own examples ----------------------------------------------------------


@pytest.mark.parametrize("base", [cit, mit], ids=["cit", "mit"])
def test_corrected_seed_examples_validate(base):
    request = accept(base())
    assert request.isDeclined is True
    assert request.transaction.currency == "USD"
    assert request.paymentMethod.expirationMonth == 12
    assert request.paymentMethod.expirationYear == 2028


def test_mit_example_without_site_id_is_warned():
    # the MIT example carries neither siteId nor siteUrl: declines.parse fills siteId from the
    # secret; without it the request is accepted and the missing site is named
    request = accept(_load("mit"))
    assert warnings_of(request) == [("siteId", "seed_required")]
    assert request.siteId is None and "siteId" not in request.to_provider()


@pytest.mark.parametrize(
    ("base", "expected"),
    [(cit, []), (mit, [("siteId", "seed_required")])],
    ids=["cit-has-siteUrl", "mit-has-no-siteUrl"],
)
def test_site_id_missing_is_warned_only_without_a_site_url(base, expected):
    assert_warned(base, {"siteId": DELETE}, expected)


def test_seed_mit_example_with_month_and_year_swapped_names_both():
    raw = edit(mit(), {"paymentMethod.expirationMonth": 2028, "paymentMethod.expirationYear": 12})
    assert problems(raw) == {("paymentMethod.expirationMonth", "month"), ("paymentMethod.expirationYear", "year")}


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        (cit, {"transaction.cvvResultCode": DELETE}, ("transaction.cvvResultCode", "missing")),
        (mit, {"expiryDateUtc": "2023-05-24T12:30:20Z"}, ("expiryDateUtc", "in_past")),
    ],
    ids=["cit-cvvResultCode-missing", "mit-expiryDateUtc-in-past"],
)
def test_each_seed_correction_undone_is_refused(base, changes, expected):
    assert problems(edit(base(), changes)) == {expected}


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        (cit, {"idempotencyKey": "abcd1234"}, ("idempotencyKey", "uuid")),
        (mit, {"idempotencyKey": "abcd1234"}, ("idempotencyKey", "uuid")),
        (cit, {"paymentMethod.cardCountry": "United States"}, ("paymentMethod.cardCountry", "country_code")),
        (mit, {"paymentMethod.cardCountry": "United States"}, ("paymentMethod.cardCountry", "country_code")),
        (cit, {"transaction.cardNotPresent": DELETE}, ("transaction.cardNotPresent", "seed_required")),
        (mit, {"transaction.cardNotPresent": DELETE}, ("transaction.cardNotPresent", "seed_required")),
        (cit, {"payer.email": "[email protected]"}, ("payer.email", "email")),
    ],
    ids=[
        "cit-idempotencyKey-not-uuid",
        "mit-idempotencyKey-not-uuid",
        "cit-cardCountry-name",
        "mit-cardCountry-name",
        "cit-cardNotPresent-missing",
        "mit-cardNotPresent-missing",
        "cit-email-obfuscated",
    ],
)
def test_each_seed_correction_undone_the_sandbox_accepts_is_warned(base, changes, expected):
    # the sandbox takes the seed's uncorrected examples: accepted, forwarded as sent, named
    assert_warned(base, changes, [expected])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({"siteId": "UUID/GUID"}, []), ({"isMIT": DELETE}, [("isMIT", "seed_required")])],
    ids=["siteId-placeholder-is-a-string", "isMIT-omitted"],
)
def test_seed_uncorrected_where_contract_is_lenient(changes, expected):
    assert_warned(cit, changes, expected)


def test_expiry_exactly_now_is_in_past():
    assert problems(edit(mit(), {"expiryDateUtc": NOW.isoformat()})) == {("expiryDateUtc", "in_past")}


def test_body_not_an_object():
    assert problems([1, 2]) == {("body", "type")}


# -- required fields ------------------------------------------------------------------

# What the sandbox refuses missing, and what we need to do our job: a 400.
REFUSED_IF_MISSING = (
    [("", f) for f in ["isDeclined", "orderId", "idempotencyKey", "transaction", "paymentMethod"]]
    + [
        ("transaction", f)
        for f in [
            "id",
            "amount",
            "currency",
            "responseCode",
            "responseCodeSource",
            "avsResultCode",
            "cvvResultCode",
            "cavvResultCode",
        ]
    ]
    + [("paymentMethod", "cardNumber")]
)
# What seed 003 calls required and the sandbox accepts missing: accepted, a warning.
ADDRESS = ["firstName", "lastName", "country", "countryCode", "addressLine1", "city", "zipCode"]
WARNED_IF_MISSING = (
    [("", f) for f in ["payer", "billingInformation"]]
    + [("transaction", f) for f in ["timestampUtc", "timezoneUtcOffset", "cardNotPresent"]]
    + [("payer", "email")]
    + [("billingInformation", f) for f in ADDRESS]
    + [
        ("paymentMethod", f)
        for f in [
            "holderName",
            "cardType",
            "cardBrand",
            "cardCountry",
            "expirationMonth",
            "expirationYear",
            "cardBinNumber",
            "cardLast4Digits",
        ]
    ]
)


def _raw_key(field: str) -> str:
    return "zipcode" if field == "zipCode" else field  # the fixtures use the seed's spelling


def _fallbacks(path: str, base: Any) -> list[tuple[str, str]]:
    """The rule a missing field feeds, which then falls back (a second warning)."""
    if path in ("paymentMethod.expirationMonth", "paymentMethod.expirationYear"):
        return [(path, "fallback")]  # the expired-card rule is not applied, naming the missing one
    if path == "transaction.timestampUtc" and base is mit:
        return [("transaction.timestampUtc", "fallback")]  # the MIT same-day rule counts from receipt
    return []


@pytest.mark.parametrize(
    ("obj", "field"), REFUSED_IF_MISSING, ids=[f"{o}.{f}".lstrip(".") for o, f in REFUSED_IF_MISSING]
)
def test_required_field_missing_is_refused(obj, field):
    for base in (cit, mit):
        path = f"{obj}.{field}".lstrip(".")
        raw = edit(base(), {f"{obj}.{_raw_key(field)}".lstrip("."): DELETE})
        assert problems(raw) == {(path, "missing")}, base.__name__


@pytest.mark.parametrize(
    ("obj", "field"), WARNED_IF_MISSING, ids=[f"{o}.{f}".lstrip(".") for o, f in WARNED_IF_MISSING]
)
def test_seed_required_field_missing_is_warned(obj, field):
    for base in (cit, mit):
        path = f"{obj}.{field}".lstrip(".")
        changes = {f"{obj}.{_raw_key(field)}".lstrip("."): DELETE}
        request = accept(edit(base(), changes))
        assert warnings_of(request) == sorted([(path, "seed_required"), *_fallbacks(path, base)]), base.__name__
        assert request.to_provider() == forwarded_as_sent(base, changes), base.__name__


CONDITIONAL = (
    [(cit, "deviceDetails", f) for f in ["deviceType", "deviceName", "deviceOS", "browser", "userAgent"]]
    + [(cit, "merchant", f) for f in ["id", "mcc", "country"]]
    + [(mit, "subscription", f) for f in ["subscriptionId", "interval", "price", "currency"]]
    + [(mit, "threeDSecure", f) for f in ["ecommerceIndicator", "authenticationValue", "directoryServerTransactionId"]]
    + [(cit, "shippingInformation", f) for f in ADDRESS]
)


@pytest.mark.parametrize(("base", "obj", "field"), CONDITIONAL, ids=[f"{o}.{f}" for _, o, f in CONDITIONAL])
def test_seed_required_field_of_an_object_sent_is_warned(base, obj, field):
    assert_warned(base, {f"{obj}.{_raw_key(field)}": DELETE}, [(f"{obj}.{field}", "seed_required")])


@pytest.mark.parametrize(
    ("base", "obj"),
    [
        (cit, "deviceDetails"),
        (cit, "merchant"),
        (cit, "shippingInformation"),
        (cit, "affiliate"),
        (cit, "orderItems"),
        (cit, "subscription"),
        (cit, "threeDSecure"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_optional_object_absent_is_accepted(base, obj):
    request = accept(edit(base(), {obj: DELETE}))
    assert getattr(request, obj) is None
    assert request.warnings == []


def test_optional_object_empty_warns_every_seed_required_field():
    request = assert_warned(
        cit,
        {"deviceDetails": {}},
        [
            (f"deviceDetails.{f}", "seed_required")
            for f in ["deviceType", "deviceName", "deviceOS", "browser", "userAgent"]
        ],
    )
    assert request.to_provider()["deviceDetails"] == {}


# -- MIT / CIT rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        (cit, {"isMIT": "true"}, {("isMIT", "bool_type")}),
        (mit, {"isRecurring": "yes"}, {("isRecurring", "bool_type")}),
    ],
    ids=["isMIT-string", "isRecurring-string"],
)
def test_mit_and_cit_rules_refuse(base, changes, expected):
    assert problems(edit(base(), changes)) == expected


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        (mit, {"isRecurring": DELETE}, [("isRecurring", "seed_required")]),
        (mit, {"expiryDateUtc": DELETE}, [("expiryDateUtc", "fallback")]),
        (
            mit,
            {"isRecurring": DELETE, "expiryDateUtc": DELETE},
            [("isRecurring", "seed_required"), ("expiryDateUtc", "fallback")],
        ),
        (mit, {"subscription": DELETE}, [("subscription", "seed_required")]),
        (mit, {"threeDSecure": DELETE}, [("threeDSecure", "seed_required")]),
        (cit, {"customerIp": DELETE}, [("customerIp", "seed_required")]),
        (cit, {"customerIp": ""}, [("customerIp", "seed_required")]),
        (cit, {"isMIT": DELETE, "customerIp": DELETE}, [("isMIT", "seed_required"), ("customerIp", "seed_required")]),
        (cit, {"customerIp": "999.1.1.1"}, [("customerIp", "ip_address")]),
        (cit, {"customerIp": "localhost"}, [("customerIp", "ip_address")]),
        (mit, {"customerIp": "not-an-ip"}, [("customerIp", "ip_address")]),
    ],
    ids=[
        "mit-without-isRecurring",
        "mit-without-expiryDateUtc",
        "mit-without-both",
        "recurring-without-subscription",
        "recurring-without-threeDSecure",
        "cit-without-customerIp",
        "cit-empty-customerIp",
        "isMIT-omitted-is-cit",
        "customerIp-bad-octet",
        "customerIp-hostname",
        "mit-customerIp-checked-when-given",
    ],
)
def test_mit_and_cit_rules_warn(base, changes, expected):
    assert_warned(base, changes, expected)


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        (mit, {"isRecurring": False, "subscription": DELETE, "threeDSecure": DELETE}),
        (mit, {"customerIp": DELETE}),
        (cit, {"customerIp": "2001:db8::1"}),
    ],
    ids=["non-recurring-mit-needs-neither", "mit-needs-no-customerIp", "ipv6-customerIp"],
)
def test_mit_and_cit_accepted(base, changes):
    assert_warned(base, changes, [])


# -- types and formats ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"transaction.amount": "1999"}, ("transaction.amount", "int_type")),
        ({"transaction.amount": 19.99}, ("transaction.amount", "int_type")),
        ({"transaction.amount": 1999.0}, ("transaction.amount", "int_type")),
        ({"transaction.amount": True}, ("transaction.amount", "int_type")),
        ({"transaction.amount": 0}, ("transaction.amount", "greater_than")),
        ({"transaction.amount": -1999}, ("transaction.amount", "greater_than")),
        ({"orderItems.0.amount": "2500"}, ("orderItems[0].amount", "int_type")),
        ({"orderItems.1.tax": 0.5}, ("orderItems[1].tax", "int_type")),
        ({"transaction.currency": "XXX"}, ("transaction.currency", "code")),
        ({"transaction.currency": "US Dollar"}, ("transaction.currency", "code")),
        ({"transaction.currency": 840}, ("transaction.currency", "type")),
        ({"paymentMethod.cardBinNumber": "411"}, ("paymentMethod.cardBinNumber", "string_pattern_mismatch")),
        ({"paymentMethod.cardBinNumber": "411111111"}, ("paymentMethod.cardBinNumber", "string_pattern_mismatch")),
        ({"paymentMethod.cardBinNumber": "41111a"}, ("paymentMethod.cardBinNumber", "string_pattern_mismatch")),
        ({"paymentMethod.cardBinNumber": 411111}, ("paymentMethod.cardBinNumber", "string_type")),
        ({"paymentMethod.cardLast4Digits": "111"}, ("paymentMethod.cardLast4Digits", "string_pattern_mismatch")),
        ({"paymentMethod.cardLast4Digits": "11111"}, ("paymentMethod.cardLast4Digits", "string_pattern_mismatch")),
        ({"paymentMethod.cardLast4Digits": "11a1"}, ("paymentMethod.cardLast4Digits", "string_pattern_mismatch")),
        ({"paymentMethod.expirationMonth": 0}, ("paymentMethod.expirationMonth", "month")),
        ({"paymentMethod.expirationMonth": 13}, ("paymentMethod.expirationMonth", "month")),
        ({"paymentMethod.expirationMonth": 12.0}, ("paymentMethod.expirationMonth", "type")),
        ({"paymentMethod.expirationYear": 99}, ("paymentMethod.expirationYear", "year")),
        ({"paymentMethod.expirationYear": 20289}, ("paymentMethod.expirationYear", "year")),
        ({"paymentMethod.expirationYear": True}, ("paymentMethod.expirationYear", "type")),
        ({"isDeclined": False}, ("isDeclined", "not_declined")),
        ({"isDeclined": "true"}, ("isDeclined", "bool_type")),
        ({"transaction.responseCodeSource": ""}, ("transaction.responseCodeSource", "missing")),
        ({"transaction.cavvResultCode": " "}, ("transaction.cavvResultCode", "missing")),
        ({"transaction.timezoneUtcOffset": "UTC-5"}, ("transaction.timezoneUtcOffset", "int_parsing")),
        ({"transaction.timezoneUtcOffset": 900}, ("transaction.timezoneUtcOffset", "less_than_equal")),
        ({"transaction.cardNotPresent": "yes"}, ("transaction.cardNotPresent", "bool_type")),
        ({"merchant.mcc": "5999"}, ("merchant.mcc", "int_type")),
        ({"orderId": "has spaces in it"}, ("orderId", "format")),
    ],
    ids=[
        "amount-string",
        "amount-float",
        "amount-float-whole",
        "amount-bool",
        "amount-zero",
        "amount-negative",
        "orderItem-amount-string",
        "orderItem-tax-float",
        "currency-XXX",
        "currency-name",
        "currency-number",
        "bin-3-digits",
        "bin-9-digits",
        "bin-letters",
        "bin-int",
        "last4-3-digits",
        "last4-5-digits",
        "last4-letters",
        "month-0",
        "month-13",
        "month-float",
        "year-99",
        "year-20289",
        "year-bool",
        "isDeclined-false",
        "isDeclined-string",
        "responseCodeSource-empty",
        "cavvResultCode-blank",
        "offset-text",
        "offset-out-of-range",
        "cardNotPresent-string",
        "mcc-string",
        "orderId-spaces",
    ],
)
def test_field_types_and_formats_refused(changes, expected):
    assert problems(edit(cit(), changes)) == {expected}


# Codes outside the seed's lists, US address formats, short BINs, an "approved" status on a
# decline (isDeclined decides): the sandbox accepts them.
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"billingInformation.countryCode": "USA"}, ("billingInformation.countryCode", "country_code")),
        ({"billingInformation.countryCode": "United States"}, ("billingInformation.countryCode", "country_code")),
        ({"shippingInformation.countryCode": "XX"}, ("shippingInformation.countryCode", "country_code")),
        ({"merchant.country": "USA"}, ("merchant.country", "country_code")),
        ({"paymentMethod.cardCountry": "USA"}, ("paymentMethod.cardCountry", "country_code")),
        ({"paymentMethod.cardType": "CHARGE"}, ("paymentMethod.cardType", "enum")),
        ({"billingInformation.zipcode": "9411"}, ("billingInformation.zipCode", "zip_code")),
        ({"billingInformation.zipcode": "9411a"}, ("billingInformation.zipCode", "zip_code")),
        ({"billingInformation.zipcode": "ABCDE"}, ("billingInformation.zipCode", "zip_code")),
        ({"billingInformation.zipcode": "94111-123"}, ("billingInformation.zipCode", "zip_code")),
        ({"billingInformation.zipcode": "9411112345"}, ("billingInformation.zipCode", "zip_code")),
        ({"shippingInformation.zipcode": "9411"}, ("shippingInformation.zipCode", "zip_code")),
        ({"billingInformation.state": DELETE}, ("billingInformation.state", "seed_required")),
        ({"billingInformation.state": ""}, ("billingInformation.state", "seed_required")),
        ({"billingInformation.state": "ZZ"}, ("billingInformation.state", "state")),
        ({"billingInformation.state": "California"}, ("billingInformation.state", "state")),
        ({"shippingInformation.state": "ZZ"}, ("shippingInformation.state", "state")),
        ({"orderSource": "web"}, ("orderSource", "enum")),
        ({"orderSource": "mobile"}, ("orderSource", "enum")),
        ({"transactionType": "SALE"}, ("transactionType", "enum")),
        ({"payer.email": "john.doe"}, ("payer.email", "email")),
        ({"payer.email": "NA"}, ("payer.email", "email")),
        ({"orderSource": "Site1"}, ("orderSource", "enum")),
        ({"paymentMethod.cardBinNumber": "41111"}, ("paymentMethod.cardBinNumber", "bin_length")),
        ({"paymentMethod.cardBinNumber": "4111111"}, ("paymentMethod.cardBinNumber", "bin_length")),
        ({"transaction.responseStatus": "APPROVED"}, ("transaction.responseStatus", "not_declined")),
        ({"transaction.responseStatus": "approved"}, ("transaction.responseStatus", "not_declined")),
        ({"transaction.responseStatus": "Captured"}, ("transaction.responseStatus", "not_declined")),
    ],
    ids=[
        "countryCode-alpha3",
        "countryCode-name",
        "shipping-countryCode-unknown",
        "merchant-country-alpha3",
        "cardCountry-alpha3",
        "cardType-unknown",
        "zip-4-digits",
        "zip-letter",
        "zip-letters",
        "zip-plus-3",
        "zip-10-digits",
        "shipping-zip-4-digits",
        "state-missing-us-card",
        "state-empty-us-card",
        "state-ZZ",
        "state-name",
        "shipping-state-ZZ",
        "orderSource-web",
        "orderSource-mobile",
        "transactionType-SALE",
        "email-no-domain",
        "email-NA",
        "orderSource-Site1",
        "bin-5-digits",
        "bin-7-digits",
        "responseStatus-APPROVED",
        "responseStatus-approved",
        "responseStatus-captured",
    ],
)
def test_field_formats_warned_and_forwarded_as_sent(changes, expected):
    assert_warned(cit, changes, [expected])


@pytest.mark.parametrize(
    ("changes", "attribute", "expected"),
    [
        ({"transaction.currency": "usd"}, lambda r: r.transaction.currency, "USD"),
        ({"transaction.currency": " eur "}, lambda r: r.transaction.currency, "EUR"),
        ({"billingInformation.countryCode": "us"}, lambda r: r.billingInformation.countryCode, "US"),
        ({"paymentMethod.cardCountry": "us"}, lambda r: r.paymentMethod.cardCountry, "US"),
        ({"paymentMethod.cardType": "debit"}, lambda r: r.paymentMethod.cardType, "DEBIT"),
        ({"billingInformation.zipcode": "94111"}, lambda r: r.billingInformation.zipCode, "94111"),
        ({"billingInformation.zipcode": "941111234"}, lambda r: r.billingInformation.zipCode, "941111234"),
        ({"billingInformation.zipcode": "94111-1234"}, lambda r: r.billingInformation.zipCode, "94111-1234"),
        (
            {"billingInformation.countryCode": "GB", "billingInformation.zipcode": "SW1A 1AA"},
            lambda r: r.billingInformation.zipCode,
            "SW1A 1AA",
        ),
        (
            {"paymentMethod.cardCountry": "GB", "billingInformation.state": DELETE},
            lambda r: r.billingInformation.state,
            None,
        ),
        ({"billingInformation.state": "NY"}, lambda r: r.billingInformation.state, "NY"),
        ({"billingInformation.state": "06"}, lambda r: r.billingInformation.state, "06"),
        ({"transactionType": "authorization"}, lambda r: r.transactionType, "AUTHORIZATION"),
        ({"transactionType": "Purchase"}, lambda r: r.transactionType, "PURCHASE"),
        ({"orderSource": "ECOMMERCE"}, lambda r: r.orderSource, "ecommerce"),
        ({"orderSource": "vterminal"}, lambda r: r.orderSource, "vterminal"),
        ({"transaction.responseStatus": "DECLINED"}, lambda r: r.transaction.responseStatus, "DECLINED"),
        ({"transaction.amount": 1}, lambda r: r.transaction.amount, 1),
    ],
    ids=[
        "currency-lower-case",
        "currency-padded",
        "countryCode-lower-case",
        "cardCountry-lower-case",
        "cardType-lower-case",
        "zip-5",
        "zip-9",
        "zip-5-dash-4",
        "non-us-zip-free-form",
        "state-optional-for-non-us-card",
        "state-NY",
        "state-fips-digits",
        "transactionType-lower-case",
        "transactionType-mixed-case",
        "orderSource-upper-case",
        "orderSource-vterminal",
        "responseStatus-declined",
        "amount-one-cent",
    ],
)
def test_field_formats_accepted_and_normalised(changes, attribute, expected):
    request = accept(edit(cit(), changes))
    assert attribute(request) == expected
    assert request.warnings == []


# -- lenient on purpose ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("-5", -5), ("+3", 3), (" 0 ", 0), (-5, -5)], ids=str)
def test_timezone_offset_numeric_string_accepted(value, expected):
    request = accept(edit(cit(), {"transaction.timezoneUtcOffset": value}))
    assert request.transaction.timezoneUtcOffset == expected
    assert request.to_provider()["transaction"]["timezoneUtcOffset"] == expected


def test_is_mit_omitted_means_cit():
    request = accept(edit(cit(), {"isMIT": DELETE}))
    assert request.is_mit is False
    assert request.to_provider()["isMIT"] is False


@pytest.mark.parametrize("spelling", ["zipcode", "zipCode", "ZipCode"])
def test_zip_code_spellings_accepted(spelling):
    raw = edit(cit(), {"billingInformation.zipcode": DELETE, f"billingInformation.{spelling}": "10001"})
    assert accept(raw).billingInformation.zipCode == "10001"


UNKNOWN = {
    "partnerRef": "p-1",
    "nested": {"a": {"b": [1, 2]}},
    "payer.loyaltyTier": "gold",
    "billingInformation.county": "SF",
    "paymentMethod.network": "visa",
    "subscription.trialDays": 7,
    "threeDSecure.eci": "05",
    "orderItems.0.color": "red",
    "merchant.region": "west",
    "affiliate.channel": "email",
}


def test_unknown_fields_are_dropped_at_any_depth_and_named():
    # Given a valid MIT carrying fields that are neither the contract's nor vetted
    raw = edit(mit(), UNKNOWN)

    # When it is validated
    request = accept(raw)

    # Then it is accepted, nothing unknown is forwarded (or fingerprinted), and the
    # dropped fields are named for a log line
    body = request.to_provider()
    assert _keys(body).isdisjoint({"partnerRef", "nested", "loyaltyTier", "county", "network", "trialDays", "eci"})
    assert _keys(body).isdisjoint({"color", "region", "channel"})
    assert body == accept(mit()).to_provider()
    assert request.fingerprint() == accept(mit()).fingerprint()
    assert request.dropped_fields() == sorted(
        [
            "affiliate.channel",
            "billingInformation.county",
            "merchant.region",
            "nested",
            "orderItems[0].color",
            "partnerRef",
            "payer.loyaltyTier",
            "paymentMethod.network",
            "subscription.trialDays",
            "threeDSecure.eci",
        ]
    )
    assert accept(mit()).dropped_fields() == []


@pytest.mark.parametrize(("value", "kept"), [("24", "24"), (" 21 ", "21"), (3, 3)], ids=["text", "padded", "int"])
def test_vetted_extra_merchant_advice_code_is_forwarded(value, kept):
    request = accept(edit(cit(), {"transaction.merchantAdviceCode": value}))
    assert request.to_provider()["transaction"]["merchantAdviceCode"] == kept
    assert request.dropped_fields() == []


@pytest.mark.parametrize("value", ["twenty-four", True, 100, 2.5, {"a": 1}, ""], ids=str)
def test_vetted_extra_merchant_advice_code_is_checked(value):
    assert problems(edit(cit(), {"transaction.merchantAdviceCode": value})) == {
        ("transaction.merchantAdviceCode", "advice_code")
    }


def test_additional_fields_are_the_way_to_send_more():
    raw = edit(cit(), {"additionalFields": [{"key": "campaign", "value": "spring"}]})
    assert accept(raw).to_provider()["additionalFields"] == [{"key": "campaign", "value": "spring"}]


# -- bounded ----------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        node = {"a": node}
    return node


@pytest.mark.parametrize("depth", [32, 255, 5000], ids=["33-in-all", "255", "5000"])
def test_an_unknown_field_nested_too_deep_is_refused_not_a_crash(depth):
    # Given a decline with an unknown field nested deeper than DynamoDB's 32 levels
    raw = edit(cit(), {"partnerData": _nested(depth)})

    # When it is validated / Then: 400 naming where, never a RecursionError or a 500
    error = refuse(raw)
    assert [(p.field.split(".")[0], p.rule) for p in error.problems] == [("partnerData", "too_deep")]


def test_nesting_within_the_limit_is_accepted_and_dropped():
    request = accept(edit(cit(), {"partnerData": _nested(31)}))  # 32 levels in all
    assert "partnerData" in request.dropped_fields()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"orderItems": [{"sku": f"S{i}"} for i in range(101)]}, ("orderItems", "too_long")),
        ({"additionalFields": [{"key": "k", "value": "v"}] * 51}, ("additionalFields", "too_long")),
        ({"payer.phone": "1" * 1025}, ("payer.phone", "string_too_long")),
        ({"transaction.dynamicDescriptor": "x" * 1025}, ("transaction.dynamicDescriptor", "string_too_long")),
        ({"orderItems.0.quantity": 10**12}, ("orderItems[0].quantity", "less_than_equal")),
        ({"orderItems.0.amount": 10**13}, ("orderItems[0].amount", "less_than_equal")),
        ({"orderId": "o" * 129}, ("orderId", "format")),
        ({"orderId": "-starts-with-dash"}, ("orderId", "format")),
        ({"orderId": "ord/1"}, ("orderId", "format")),
        ({"orderId": "ord\u00e9"}, ("orderId", "format")),
    ],
    ids=[
        "101-items",
        "51-additional-fields",
        "long-phone",
        "long-descriptor",
        "huge-quantity",
        "huge-item-amount",
        "orderId-129",
        "orderId-dash-first",
        "orderId-slash",
        "orderId-non-ascii",
    ],
)
def test_lengths_and_formats_are_bounded(changes, expected):
    assert expected in problems(edit(cit(), changes))


@pytest.mark.parametrize(
    "order_id",
    [
        "ord-1a2b3c4d5e6f",
        "mit-0123456789ab",
        "bench-mit-0123456789abcdef",
        "ed44736a-b5fa-4bc2-bfb9-0e873bc09511",
        "987-654-321",
        "A.b_c:d-e",
        "o" * 128,
    ],
)
def test_order_id_formats_in_use_are_accepted(order_id):
    assert accept(edit(cit(), {"orderId": order_id})).orderId == order_id


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"orderItems.0.quantity": 1.5}, "orderItems[0].quantity"),
        ({"sequenceNumber": [1]}, "sequenceNumber"),
        ({"transactionType": 5}, "transactionType"),
    ],
    ids=["orderItem-quantity", "sequenceNumber", "transactionType"],
)
def test_union_typed_field_error_names_the_field_itself(changes, field):
    # Regression for a bug this test found (fixed in contract._where, commit 6238401):
    # for union-typed fields the pydantic union branch leaked into the path
    # ("orderItems[0].quantity.int", "orderItems[0].quantity.constrained-str").
    assert {f for f, _ in problems(edit(cit(), changes))} == {field}


# -- no refusal echoes an input --------------------------------------------------------


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, (*path, i))]
    return [path]


LEAVES = _leaves(cit())


@pytest.mark.parametrize("allow", [False, True], ids=["tokens-only", "card-numbers-allowed"])
@pytest.mark.parametrize(
    "value",
    [PAN, int(PAN), "4111 1111 1111 1111", [PAN], "Qz7markerQz7", 987654321987],
    ids=["pan", "pan-int", "pan-spaces", "pan-in-list", "marker", "marker-int"],
)
def test_no_problem_ever_echoes_an_input(value, allow):
    """Every field of the seed example set in turn to a card number or a marker:
    no problem's field, message, the error's text or its body holds it."""
    needles = ["4111111111111111", "4111 1111", "Qz7marker", "987654321"]
    refused = 0
    for path in LEAVES:
        raw = edit(cit(), {".".join(map(str, path)): value})
        try:
            validate_request(raw, now=NOW, allow_card_numbers=allow)
        except InvalidRequest as error:
            refused += 1
            text = _all_text(error)
            assert not [n for n in needles if n in text], (path, text)
    assert refused >= 10  # the sweep really exercised refusals


# -- the card guard -------------------------------------------------------------------


def _all_text(error: InvalidRequest) -> str:
    return " ".join([str(error), json.dumps(error.body()), *(repr(p) for p in error.problems)])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"paymentMethod.cardNumber": PAN}, {("paymentMethod.cardNumber", "card_number_not_allowed")}),
        (
            {"paymentMethod.cardNumber": "4111 1111 1111 1111"},
            {("paymentMethod.cardNumber", "card_number_not_allowed")},
        ),
        (
            {"paymentMethod.cardNumber": "4111-1111-1111-1111"},
            {("paymentMethod.cardNumber", "card_number_not_allowed")},
        ),
        ({"paymentMethod.cardNumber": int(PAN)}, {("paymentMethod.cardNumber", "card_number_not_allowed")}),
        (
            {"paymentMethod.cardNumber": PAN, "paymentMethod.token": False},
            {("paymentMethod.cardNumber", "card_number_not_allowed")},
        ),
        (
            {
                "paymentMethod.cardNumber": PAN,
                "transaction.amount": "1999",
                "transaction.responseCode": DELETE,
                "paymentMethod.cardBinNumber": "411",
            },
            {
                ("paymentMethod.cardNumber", "card_number_not_allowed"),
                ("transaction.amount", "int_type"),
                ("transaction.responseCode", "missing"),
                ("paymentMethod.cardBinNumber", "string_pattern_mismatch"),
            },
        ),
        (
            {
                "paymentMethod.cardNumber": PAN,
                "transaction.amount": 10**12 + 1,
                "isMIT": True,
                "expiryDateUtc": "2023-05-24T12:30:20Z",
            },
            {
                ("paymentMethod.cardNumber", "card_number_not_allowed"),
                ("transaction.amount", "less_than_equal"),
                ("expiryDateUtc", "in_past"),
            },
        ),
        ({"paymentMethod.token": False}, {("paymentMethod.token", "token_required")}),
        ({"paymentMethod.verificationValue": "123"}, {("paymentMethod.verificationValue", "cvv_not_allowed")}),
        (
            {"paymentMethod.cardNumber": PAN, "paymentMethod.verificationValue": "123"},
            {
                ("paymentMethod.cardNumber", "card_number_not_allowed"),
                ("paymentMethod.verificationValue", "cvv_not_allowed"),
            },
        ),
    ],
    ids=[
        "pan",
        "pan-spaces",
        "pan-dashes",
        "pan-as-int",
        "pan-with-token-false",
        "pan-and-schema-errors",
        "pan-and-conditional-errors",
        "token-false",
        "cvv",
        "pan-and-cvv",
    ],
)
def test_card_guard_refuses(changes, expected):
    error = refuse(edit(cit(), changes))
    assert {(p.field, p.rule) for p in error.problems} == expected
    assert PAN not in _all_text(error)
    assert "4111 1111" not in _all_text(error) and "4111-1111" not in _all_text(error)
    assert "123" not in " ".join(p.message for p in error.problems)


def test_card_guard_comes_first_even_when_the_body_is_broken():
    raw = {"paymentMethod": {"cardNumber": PAN}}
    error = refuse(raw)
    assert error.problems[0].field == "paymentMethod.cardNumber"
    assert error.problems[0].rule == "card_number_not_allowed"
    assert PAN not in _all_text(error)


# -- card data in every field, however written ------------------------------------------

FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in PAN)
ARABIC_INDIC = "".join(chr(0x0660 + int(d)) for d in PAN)
WRITTEN = {
    "tabs": "4111\t1111\t1111\t1111",
    "slashes": "4111/1111/1111/1111",
    "dots": "4111.1111.1111.1111",
    "underscores": "4111_1111_1111_1111",
    "newlines": "4111\n1111\n1111\n1111",
    "spaced-dashes": "4111 - 1111 - 1111 - 1111",
    "zero-width-spaces": "4111\u200b1111\u200b1111\u200b1111",
    "full-width": FULL_WIDTH,
    "arabic-indic": ARABIC_INDIC,
    "in-text": f"ref {PAN} thanks",
    "int": int(PAN),
    "negative-int": -int(PAN),
    "float": float(PAN),
    "float-exponent": 4.111111111111111e15,
    "float-split": 41111111.11111111,
}
FIELDS = [
    "orderId",
    "payer.id",
    "transaction.id",
    "merchant.id",
    "affiliate.id",
    "orderItems.0.sku",
    "orderItems.1.name",
    "paymentMethod.cardFingerprint",
    "siteId",
    "mid",
    "customerIp",
    "billingInformation.addressLine1",
    "additionalFields",
    "partnerRef",
]


def _place(field: str, value: Any) -> dict[str, Any]:
    if field == "additionalFields":
        return {"additionalFields": [{"key": "note", "value": value}]}
    return {field: value}


def _named(field: str) -> str:
    return (
        {"additionalFields": "additionalFields[0].value"}.get(field, field)
        .replace(".0.", "[0].")
        .replace(".1.", "[1].")
    )


@pytest.mark.parametrize("allow", [False, True], ids=["tokens-only", "card-numbers-allowed"])
@pytest.mark.parametrize("written", list(WRITTEN))
def test_a_card_number_however_written_is_refused_under_an_identifier(written, allow):
    # Given a decline whose payer.id holds a card number, written to slip past a guard
    raw = edit(cit(), {"payer.id": WRITTEN[written]})

    # When it is validated (card numbers allowed or not: that is for paymentMethod.cardNumber only)
    error = refuse(raw, allow_card_numbers=allow)

    # Then it is refused naming the field and the rule, without repeating the number
    assert ("payer.id", "card_number_not_allowed") in {(p.field, p.rule) for p in error.problems}
    assert PAN not in _all_text(error) and FULL_WIDTH not in _all_text(error)


@pytest.mark.parametrize("allow", [False, True], ids=["tokens-only", "card-numbers-allowed"])
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("written", ["plain", "tabs", "float"])
def test_a_card_number_is_refused_in_every_field(field, written, allow):
    value = PAN if written == "plain" else WRITTEN[written]
    error = refuse(edit(cit(), _place(field, value)), allow_card_numbers=allow)
    assert (_named(field), "card_number_not_allowed") in {(p.field, p.rule) for p in error.problems}
    assert PAN not in _all_text(error)


@pytest.mark.parametrize("written", ["tabs", "slashes", "full-width", "float", "int"])
def test_a_card_number_as_payment_method_card_number_is_refused_however_written(written):
    error = refuse(edit(cit(), {"paymentMethod.cardNumber": WRITTEN[written]}))
    assert ("paymentMethod.cardNumber", "card_number_not_allowed") in {(p.field, p.rule) for p in error.problems}


@pytest.mark.parametrize("allow", [False, True], ids=["tokens-only", "card-numbers-allowed"])
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cvv": "123"}, "cvv"),
        ({"securityCode": "123"}, "securityCode"),
        ({"paymentMethod.cvvCode": "123"}, "paymentMethod.cvvCode"),
        ({"paymentMethod.card_cvv": 123}, "paymentMethod.card_cvv"),
        ({"paymentMethod.cvv": "123"}, "paymentMethod.cvv"),
        ({"payer.CVV_NUMBER": "123"}, "payer.CVV_NUMBER"),
        ({"merchant.verificationValue": "123"}, "merchant.verificationValue"),
        ({"orderItems.0.cvc2": "123"}, "orderItems[0].cvc2"),
        ({"meta": {"card": {"security-code": "1234"}}}, "meta.card.security-code"),
        ({"transaction.cardSecurityCode": "123"}, "transaction.cardSecurityCode"),
        ({"cardCode": "123"}, "cardCode"),
        ({"cid": "1234"}, "cid"),
        ({"\uff23\uff36\uff36": "123"}, "\uff23\uff36\uff36"),  # full-width CVV
        ({"additionalFields": [{"key": "CVV", "value": "123"}]}, "additionalFields[0].value"),
        ({"cvv": {"value": "123"}}, "cvv"),
    ],
    ids=[
        "cvv",
        "top-securityCode",
        "cvvCode",
        "card_cvv-int",
        "paymentMethod-cvv",
        "CVV_NUMBER",
        "merchant-verificationValue",
        "item-cvc2",
        "nested-security-code",
        "cardSecurityCode",
        "cardCode",
        "cid",
        "full-width-key",
        "additional-field-keyed-cvv",
        "object-under-cvv",
    ],
)
def test_a_key_naming_a_cvv_is_refused_at_any_depth(changes, field, allow):
    # Given a CVV sent under some other name, anywhere
    raw = edit(cit(), changes) if "." in next(iter(changes)) else {**cit(), **changes}

    # When it is validated (even with card numbers allowed: only paymentMethod.verificationValue may hold one)
    error = refuse(raw, allow_card_numbers=allow)

    # Then it is refused naming that key, and the code is not repeated
    assert {(p.field, p.rule) for p in error.problems} == {(field, "cvv_not_allowed")}
    assert "123" not in " ".join(p.message for p in error.problems)


@pytest.mark.parametrize(
    "changes",
    [
        {"decidedAt": "2026-11-22"},
        {"cvcCheck": "pass"},
        {"payer.accidentalCid": "x"},
        {"cvv": ""},
        {"cvv": None},
        {"transaction.cvvResultCode": "N"},
        {"transaction.cavvResultCode": "7"},
        {"transaction.timestampUtc": "2026-11-22T10:15:00.123456+00:00"},
        {"payer.phone": "+1 (555) 123-4567"},
        {"customerIp": "2001:db8:85a3::8a2e:370:7334"},
        {"orderId": "2026-11-22-1234567"},
        {"subscription.schemeTransactionId": "411111111111116"},  # a Luhn-valid 15-digit Visa TID
        {"subscription.schemeTransactionId": "987654321234560"},
    ],
    ids=[
        "decidedAt",
        "cvcCheck",
        "accidentalCid",
        "empty-cvv",
        "null-cvv",
        "cvvResultCode",
        "cavvResultCode",
        "microsecond-timestamp",
        "phone",
        "ipv6",
        "dated-orderId",
        "visa-tid",
        "seed-visa-tid",
    ],
)
def test_what_only_looks_like_card_data_is_accepted(changes):
    base = mit() if "subscription" in next(iter(changes)) else cit()
    raw = edit(base, changes) if "." in next(iter(changes)) else {**base, **changes}
    accept(raw)


@pytest.mark.parametrize(
    "value",
    ["372425119311008", "4111111111111111", "4111 1111 1111 1111"],
    ids=["amex-15", "visa-16", "visa-spaced"],
)
def test_a_card_number_as_scheme_transaction_id_is_refused(value):
    assert problems(edit(mit(), {"subscription.schemeTransactionId": value})) == {
        ("subscription.schemeTransactionId", "card_number_not_allowed")
    }


def test_cards_allowed_still_refuse_a_card_number_anywhere_else():
    raw = edit(cit(), {"paymentMethod.cardNumber": PAN, "paymentMethod.verificationValue": "123", "orderId": PAN})
    assert problems(raw, allow_card_numbers=True) == {("orderId", "card_number_not_allowed")}


def test_full_width_card_number_allowed_is_matched_against_bin_and_last4():
    raw = edit(cit(), {"paymentMethod.cardNumber": FULL_WIDTH, "paymentMethod.cardBinNumber": "411112"})
    assert problems(raw, allow_card_numbers=True) == {("paymentMethod.cardBinNumber", "card_mismatch")}


@pytest.mark.parametrize("token", [True, None], ids=["token-true", "token-absent"])
def test_token_accepted(token):
    raw = edit(cit(), {"paymentMethod.token": token} if token is not None else {})
    assert accept(raw).paymentMethod.cardNumber == TOKEN


@pytest.mark.parametrize(
    "changes",
    [
        {"paymentMethod.cardNumber": PAN},
        {"paymentMethod.cardNumber": PAN, "paymentMethod.token": False, "paymentMethod.verificationValue": "123"},
        {"paymentMethod.cardNumber": "4111 1111 1111 1111"},
        {
            "paymentMethod.cardNumber": "5555555555554444",
            "paymentMethod.cardBinNumber": "555555",
            "paymentMethod.cardLast4Digits": "4444",
        },
    ],
    ids=["pan", "pan-token-false-cvv", "pan-spaces", "mastercard-pan"],
)
def test_card_numbers_allowed_when_deployed_so(changes):
    request = accept(edit(cit(), changes), allow_card_numbers=True)
    assert request.paymentMethod.cardNumber == changes["paymentMethod.cardNumber"]


@pytest.mark.parametrize(
    ("pan", "bin6", "last4"),
    [("5555555555554444", "411111", "1111"), ("4000002760003184", "400000", "1111"), (PAN, "411112", "1111")],
    ids=["other-card", "last4-differs", "bin-differs"],
)
def test_card_number_must_match_bin_and_last4(pan, bin6, last4):
    raw = edit(
        cit(),
        {"paymentMethod.cardNumber": pan, "paymentMethod.cardBinNumber": bin6, "paymentMethod.cardLast4Digits": last4},
    )
    error = refuse(raw, allow_card_numbers=True)
    assert {(p.field, p.rule) for p in error.problems} == {("paymentMethod.cardBinNumber", "card_mismatch")}
    assert pan not in _all_text(error)


# -- what the rest of the stack reads -------------------------------------------------


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [(cit, {}, False), (cit, {"isMIT": DELETE}, False), (mit, {}, True)],
    ids=["cit", "cit-isMIT-omitted", "mit"],
)
def test_to_provider_always_has_is_mit(base, changes, expected):
    body = accept(edit(base(), changes)).to_provider()
    assert body["isMIT"] is expected
    assert body["paymentMethod"]["cardNumber"] == TOKEN  # the token is what FlexFactor needs
    json.dumps(body)  # JSON-ready


def test_fingerprint_covers_the_token_never_a_card_number_or_cvv():
    base = accept(cit()).fingerprint()
    other_token = accept(edit(cit(), {"paymentMethod.cardNumber": "tok_another_one"})).fingerprint()
    pan = accept(edit(cit(), {"paymentMethod.cardNumber": PAN}), allow_card_numbers=True).fingerprint()
    pan_cvv = accept(
        edit(cit(), {"paymentMethod.cardNumber": PAN, "paymentMethod.verificationValue": "123"}),
        allow_card_numbers=True,
    ).fingerprint()
    assert base != other_token, "another card's token is another payment"
    assert pan == pan_cvv, "a card number and a CVV never enter the fingerprint"
    assert PAN not in base and PAN not in pan


@pytest.mark.parametrize(
    "changes",
    [
        {"transaction.amount": 15001},
        {"transaction.currency": "EUR"},
        {"transaction.responseCode": "51"},
        {"orderId": "another-order"},
        {"paymentMethod.cardLast4Digits": "1112"},
    ],
    ids=["amount", "currency", "responseCode", "orderId", "last4"],
)
def test_fingerprint_changes_with_the_payload(changes):
    assert accept(edit(cit(), changes)).fingerprint() != accept(cit()).fingerprint()


def test_fingerprint_is_stable():
    assert accept(cit()).fingerprint() == accept(cit()).fingerprint()
    # a whitespace-padded but otherwise equal request is the same request
    assert accept(edit(cit(), {"transaction.currency": "usd"})).fingerprint() == accept(cit()).fingerprint()


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.parametrize(
    ("base", "changes", "allow"),
    [
        (cit, {}, False),
        (mit, {}, False),
        (cit, {"paymentMethod.cardNumber": PAN, "paymentMethod.verificationValue": "739"}, True),
    ],
    ids=["cit-token", "mit-token", "pan-and-cvv"],
)
def test_safe_summary_has_no_card_number(base, changes, allow):
    request = accept(edit(base(), changes), allow_card_numbers=allow)
    summary = request.safe_summary()
    dumped = json.dumps(summary)
    assert "cardNumber" not in _keys(summary) and "verificationValue" not in _keys(summary)
    assert "zJb6" not in dumped and TOKEN not in dumped
    assert PAN not in dumped and "739" not in dumped
    assert summary["card"]["bin"] == "411111" and summary["card"]["last4"] == "1111"
    assert summary["isMIT"] is request.is_mit
    assert summary["idempotencyKey"] == str(request.idempotencyKey)
