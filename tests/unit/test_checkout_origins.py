"""Which page origins a Microform capture context may name, and how a request for one
is read: exact rules and messages written here, not derived from the code under test."""

from __future__ import annotations

import pytest

from decline_rescue.domain.capture_fields import FieldSelection
from decline_rescue.domain.checkout import (
    CARD_NETWORKS,
    allowed_origins,
    brand,
    configured_origin_problems,
    normal_origin,
    origin_problem,
)
from decline_rescue.domain.errors import InvalidRequest
from decline_rescue.services.capture_contexts import parse_request


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example",
        "https://shop.example:8443",
        "https://xn--bcher-kva.example",
        "http://localhost",
        "http://localhost:8083",
        "http://127.0.0.1:8083",
        "https://a-b.c-d.example",
    ],
)
def test_origins_cybersource_takes(origin):
    assert origin_problem(origin) is None


@pytest.mark.parametrize(
    ("origin", "rule"),
    [
        (None, "type"),
        ("", "type"),
        (5, "type"),
        ("shop.example", "scheme"),
        ("ftp://shop.example", "scheme"),
        ("http://shop.example", "scheme"),
        ("http://192.168.1.10", "scheme"),
        ("https://shop.example/", "no_path"),
        ("https://shop.example/checkout", "no_path"),
        ("https://shop.example?x=1", "no_path"),
        ("https://shop.example#top", "no_path"),
        ("https://shop.example?", "no_path"),
        ("https://user:pw@shop.example", "format"),
        ("https://Shop.example", "format"),
        ("https://shop_example.com", "format"),
        ("https://shop.example:0", "format"),
        ("https://shop.example:99999", "format"),
        ("https://shop .example", "format"),
        (" https://shop.example", "format"),
        ("https://bücher.example", "format"),
        ("https://" + "a" * 250 + ".example", "length"),
    ],
)
def test_origins_refused_with_their_rule(origin, rule):
    problem = origin_problem(origin)
    assert problem is not None and problem[0] == rule


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://shop.example:443", "https://shop.example"),
        ("http://localhost:80", "http://localhost"),
        ("https://shop.example:8443", "https://shop.example:8443"),
        ("http://127.0.0.1:8083", "http://127.0.0.1:8083"),
    ],
)
def test_origins_compare_as_a_browser_serialises_them(origin, normal):
    assert normal_origin(origin) == normal


def test_configured_origins_keep_the_valid_and_report_the_rest():
    configured = ("https://shop.example:443", "https://shop.example/pay", "http://localhost:8083")
    assert allowed_origins(configured) == frozenset({"https://shop.example", "http://localhost:8083"})
    assert configured_origin_problems(configured) == [
        "'https://shop.example/pay': must be an origin only: scheme://host[:port], no path, query or fragment"
    ]


def test_card_type_codes_name_their_network():
    assert [brand(c) for c in ("001", "002", "003", "004", "005", "007", "042", "062")] == [
        "VISA",
        "MASTERCARD",
        "AMEX",
        "DISCOVER",
        "DINERSCLUB",
        "JCB",
        "MAESTRO",
        "CUP",
    ]
    assert brand("999") is None and brand(None) is None
    assert len(CARD_NETWORKS) == 15 and {"VISA", "MASTERCARD", "AMEX", "MEEZA"} <= set(CARD_NETWORKS)


ASK = {"integration": "microform", "targetOrigins": ["https://shop.example"], "allowedCardNetworks": ["VISA"]}


def test_a_microform_request_is_read_as_one():
    request = parse_request({**ASK, "allowedPaymentTypes": ["CARD"]})
    assert request.targetOrigins == ["https://shop.example"]
    assert request.allowedCardNetworks == ["VISA"] and request.allowedPaymentTypes == ["CARD"]


def test_integration_flex_or_none_is_the_flex_selection(monkeypatch):
    fields = {"paymentInformation": {"card": {"number": {}}}}
    assert parse_request({"integration": "flex", "fields": fields}) == FieldSelection(
        ("paymentInformation.card.number",), ()
    )
    assert parse_request({"fields": fields}) == FieldSelection(("paymentInformation.card.number",), ())


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"integration": "paypal"}, [("integration", "enum")]),
        ({"integration": "microform"}, [("targetOrigins", "missing"), ("allowedCardNetworks", "missing")]),
        (
            {**ASK, "targetOrigins": ["https://ok.example", "http://shop.example/x"], "allowedCardNetworks": ["X"]},
            [("targetOrigins[1]", "no_path"), ("allowedCardNetworks", "enum")],
        ),
        ({**ASK, "transientTokenResponseOptions": {"x": 1}}, [("transientTokenResponseOptions.x", "unknown")]),
        (
            {**ASK, "transientTokenResponseOptions": {"includeCardPrefix": "yes"}},
            [("transientTokenResponseOptions", "type")],
        ),
        ({**ASK, "allowedCardNetworks": ["VISA", "VISA"]}, [("allowedCardNetworks", "duplicate")]),
        ({**ASK, "targetOrigins": ["https://a.example", "https://a.example:443"]}, [("targetOrigins", "duplicate")]),
    ],
)
def test_a_bad_microform_request_names_each_field_and_rule(body, details):
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body)
    assert sorted((p.field, p.rule) for p in caught.value.problems) == sorted(details)
