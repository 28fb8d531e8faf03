"""Capture-context field selection: the Flex shape of seed 000, every rule."""

from __future__ import annotations

import pytest

from decline_rescue.domain.errors import InvalidRequest
from decline_rescue.services.capture_contexts import FLEX_FIELDS, FieldSelection, parse_selection

SEED_MINIMUM = {
    "paymentInformation": {
        "card": {
            "number": {},
            "securityCode": {"required": False},
            "expirationMonth": {"required": False},
            "expirationYear": {"required": False},
            "type": {"required": False},
        }
    }
}


def seed_maximum() -> dict:
    """Seed 000's maximum request, corrected: the seed's own JSON closes
    paymentInformation one brace too early, so orderInformation falls outside the object."""
    tree: dict = {}
    for path in FLEX_FIELDS:
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = {} if path == "paymentInformation.card.number" else {"required": False}
    return tree


@pytest.fixture(autouse=True)
def _defaults(monkeypatch):
    from decline_rescue.runtime import settings

    monkeypatch.delenv("CAPTURE_REQUIRED_FIELDS", raising=False)
    monkeypatch.delenv("CAPTURE_OPTIONAL_FIELDS", raising=False)
    monkeypatch.setenv("CYBERSOURCE_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CYBERSOURCE_SECRET_ID", "s")
    settings.reset()
    yield
    settings.reset()


def test_seed_has_31_capturable_fields():
    assert len(FLEX_FIELDS) == 31


@pytest.mark.parametrize("body", [None, {}])
def test_no_body_means_the_configured_default(body):
    selection = parse_selection(body)
    assert selection.required == ("paymentInformation.card.number",)
    assert set(selection.optional) == {
        "paymentInformation.card.securityCode",
        "paymentInformation.card.expirationMonth",
        "paymentInformation.card.expirationYear",
        "paymentInformation.card.type",
    }


def test_default_comes_from_configuration(monkeypatch):
    from decline_rescue.runtime import settings

    monkeypatch.setenv("CAPTURE_REQUIRED_FIELDS", "paymentInformation.card.number,paymentInformation.card.securityCode")
    monkeypatch.setenv("CAPTURE_OPTIONAL_FIELDS", "")
    settings.reset()
    assert parse_selection(None) == FieldSelection(
        ("paymentInformation.card.number", "paymentInformation.card.securityCode"), ()
    )


@pytest.mark.parametrize("wrapped", [True, False], ids=["fields wrapper", "seed form"])
def test_seed_minimum_request(wrapped):
    selection = parse_selection({"fields": SEED_MINIMUM} if wrapped else SEED_MINIMUM)
    assert selection.required == ("paymentInformation.card.number",)
    assert len(selection.optional) == 4


def test_seed_maximum_request_corrected():
    selection = parse_selection({"fields": seed_maximum()})
    assert set(selection.required) | set(selection.optional) == FLEX_FIELDS
    assert selection.required == ("paymentInformation.card.number",)


def test_selection_round_trips_to_the_sdk_shape():
    selection = parse_selection({"fields": SEED_MINIMUM})
    assert selection.as_flex_fields() == SEED_MINIMUM


def test_required_true_is_required():
    selection = parse_selection({"fields": {"paymentInformation": {"card": {"number": {"required": True}}}}})
    assert selection.required == ("paymentInformation.card.number",)


CASES = [
    (
        {"fields": {"paymentInformation": {"card": {"number": {}, "pin": {}}}}},
        "fields.paymentInformation.card.pin",
        "unknown_field",
    ),
    ({"fields": {"paymentInformation": {"card": {"number": {}}}, "loyalty": {}}}, "fields.loyalty", "unknown_field"),
    ({"fields": SEED_MINIMUM, "merchant": "x"}, "merchant", "unknown_field"),
    (
        {"fields": {"paymentInformation": {"card": {"number": {"required": "yes"}}}}},
        "fields.paymentInformation.card.number.required",
        "type",
    ),
    (
        {"fields": {"paymentInformation": {"card": {"number": {"optional": True}}}}},
        "fields.paymentInformation.card.number.optional",
        "unknown_field",
    ),
    ({"fields": {"paymentInformation": {"card": {"number": True}}}}, "fields.paymentInformation.card.number", "type"),
    ({"fields": {"paymentInformation": {"card": []}}}, "fields.paymentInformation.card", "type"),
    ({"fields": {"paymentInformation": {"card": {}}}}, "fields.paymentInformation.card", "empty"),
    ({"fields": {}}, "fields", "empty"),
    ({"fields": []}, "fields", "type"),
    (
        {"fields": {"paymentInformation": {"card": {"number": {"required": False}}}}},
        "fields.paymentInformation.card.number",
        "card_number_required",
    ),
    ({"fields": {"orderInformation": {"billTo": {"email": {}}}}}, "fields.paymentInformation.card.number", "missing"),
    ([1, 2], "body", "type"),
    ("fields", "body", "type"),
]


@pytest.mark.parametrize(("body", "field", "rule"), CASES, ids=[f"{c[1]}:{c[2]}" for c in CASES])
def test_bad_selections_name_the_field_and_rule(body, field, rule):
    with pytest.raises(InvalidRequest) as caught:
        parse_selection(body)
    problems = [(p.field, p.rule) for p in caught.value.problems]
    assert (field, rule) in problems
    assert caught.value.status_code == 400
    assert field in caught.value.message


def test_every_problem_is_reported_at_once():
    body = {"fields": {"paymentInformation": {"card": {"number": {}, "pin": {}, "type": {"required": 1}}}}}
    with pytest.raises(InvalidRequest) as caught:
        parse_selection(body)
    assert {p.field for p in caught.value.problems} == {
        "fields.paymentInformation.card.pin",
        "fields.paymentInformation.card.type.required",
    }
