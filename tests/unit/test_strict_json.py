"""The strict JSON loader every entry uses, the depth limit for parsed objects and the
orderId check for paths: each hostile input is a 400 naming the field and the rule,
never a crash, never a silent rewrite (NaN to null, the last of two keys)."""

from __future__ import annotations

import json

import pytest

from decline_rescue.domain.errors import InvalidRequest
from decline_rescue.domain.strict_json import MAX_DEPTH, ORDER_ID_MAX, check_depth, check_order_id, loads

LIMIT = 64 * 1024


def refused(data, **kwargs) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as info:
        loads(data, max_bytes=kwargs.pop("max_bytes", LIMIT), **kwargs)
    return [(p.field, p.rule) for p in info.value.problems]


def nested(depth: int, *, kind: str = "object") -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"orderId": "a", "orderId": "b"}', [("orderId", "duplicate_key")]),
        ('{"paymentMethod": {"cardNumber": "t", "cardNumber": "u"}}', [("paymentMethod.cardNumber", "duplicate_key")]),
        ('{"orderItems": [{"sku": 1}, {"sku": 1, "sku": 2, "sku": 3}]}', [("orderItems[1].sku", "duplicate_key")]),
        ('{"a": 1, "b": 2, "a": 3, "b": 4}', [("a", "duplicate_key"), ("b", "duplicate_key")]),
        ('{"amount": NaN}', [("amount", "not_finite")]),
        ('{"amount": Infinity}', [("amount", "not_finite")]),
        ('{"amount": -Infinity}', [("amount", "not_finite")]),
        ('{"amount": 1e999}', [("amount", "not_finite")]),
        ('{"amount": -1.5e400}', [("amount", "not_finite")]),
        ("[1, NaN]", [("body[1]", "not_finite")]),
        ("NaN", [("body", "not_finite")]),
        ('{"a": "\\ud800"}', [("a", "json")]),  # a lone surrogate: no storage takes it
        ('{"\\udfff": 1}', [("body", "json")]),
        (nested(MAX_DEPTH + 1), [("body", "too_deep")]),
        (nested(255), [("body", "too_deep")]),
        (nested(5000, kind="array"), [("body", "too_deep")]),
        ('{"x": ' + nested(MAX_DEPTH) + "}", [("body", "too_deep")]),
        ("[" * 50_000, [("body", "json")]),  # does not even balance: not JSON at all
        ("{", [("body", "json")]),
        ("{'a': 1}", [("body", "json")]),
        ('{"a": 1,}', [("body", "json")]),
        ("", [("body", "json")]),
        (b"\xff\xfe{}", [("body", "json")]),
        (b'{"a": "\xc3"}', [("body", "json")]),  # truncated UTF-8
        ("\ud800", [("body", "json")]),  # a str that is not Unicode text
        ('{"n": ' + "9" * 5000 + "}", [("body", "json")]),  # more digits than Python converts
        ("x" * (LIMIT + 1), [("body", "too_large")]),
        ('"' + "\u00e9" * (LIMIT // 2) + '"', [("body", "too_large")]),  # bytes, not characters
        (b"[" + b"1," * LIMIT + b"1]", [("body", "too_large")]),
    ],
    ids=[
        "duplicate-top",
        "duplicate-nested",
        "duplicate-in-list-thrice",
        "two-duplicates",
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "negative-overflow",
        "nan-in-list",
        "nan-alone",
        "lone-surrogate-value",
        "lone-surrogate-key",
        "33-deep",
        "255-deep",
        "5000-deep-arrays",
        "too-deep-below-a-field",
        "unbalanced",
        "truncated",
        "single-quotes",
        "trailing-comma",
        "empty",
        "not-utf8",
        "truncated-utf8",
        "surrogate-str",
        "huge-int",
        "too-large",
        "too-large-in-bytes",
        "too-large-bytes",
    ],
)
def test_hostile_json_is_refused_naming_field_and_rule(data, expected):
    # Given a body no entry should accept / When loaded / Then a 400 naming field and rule
    assert refused(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        (b'{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
        (nested(MAX_DEPTH), json.loads(nested(MAX_DEPTH))),
        (nested(MAX_DEPTH, kind="array"), json.loads(nested(MAX_DEPTH, kind="array"))),
        ('{"a": "' + "[" * 100 + '"}', {"a": "[" * 100}),  # brackets in strings do not nest
        ('{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', {"a": '"' + "[" * 47}),
        ('{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a surrogate pair is one character
        ('{"a": 1, "b": {"a": 2}}', {"a": 1, "b": {"a": 2}}),  # one key in two objects
        ('{"a": 1e308}', {"a": 1e308}),
        ('{"a": 1e-400}', {"a": 0.0}),
        ("null", None),
        ('"' + "y" * (LIMIT - 2) + '"', "y" * (LIMIT - 2)),  # exactly the limit
    ],
    ids=[
        "object",
        "bytes",
        "32-deep",
        "32-deep-arrays",
        "brackets-in-a-string",
        "escaped-quote-then-brackets",
        "surrogate-pair",
        "same-key-other-object",
        "large-finite",
        "underflow",
        "null",
        "exactly-the-limit",
    ],
)
def test_valid_json_is_loaded_as_json_loads_would(data, expected):
    assert loads(data, max_bytes=LIMIT) == expected


def test_a_smaller_limit_and_depth_apply():
    assert refused('{"a": 1}', max_bytes=7) == [("body", "too_large")]
    assert refused("[[[]]]", max_depth=2) == [("body", "too_deep")]
    assert loads("[[]]", max_bytes=4, max_depth=2) == [[]]


def test_problems_never_echo_values():
    with pytest.raises(InvalidRequest) as info:
        loads('{"k": NaN, "k": "4111111111111111"}', max_bytes=LIMIT)
    assert "4111" not in json.dumps(info.value.body())


# -- parsed objects ------------------------------------------------------------------------


def test_check_depth_names_where_it_goes_too_deep_without_recursion():
    value: dict = {}
    for _ in range(100_000):
        value = {"a": value}
    problem = check_depth({"x": [value]})
    assert problem is not None and problem.rule == "too_deep"
    assert problem.field.startswith("x[0].a.a")
    assert check_depth(json.loads(nested(MAX_DEPTH))) is None


# -- orderId ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order_id",
    ["ord-1a2b3c4d5e6f", "mit-0123456789ab", "cit-x", "bench-mit-0123", "987-654-321", "A.b_c:d-e", "o" * ORDER_ID_MAX],
)
def test_order_ids_in_use_are_accepted(order_id):
    assert check_order_id(order_id) == order_id


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("4111111111111111", "card_number_not_allowed"),
        ("4111-1111-1111-1111", "card_number_not_allowed"),
        ("ord-4111111111111111", "card_number_not_allowed"),
        (
            "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
            "card_number_not_allowed",
        ),
        ("", "format"),
        ("-ord", "format"),
        ("ord 1", "format"),
        ("ord/1", "format"),
        ("ord%2F1", "format"),
        ("o" * (ORDER_ID_MAX + 1), "format"),
        ("caf\u00e9", "format"),
        (12345, "type"),
        (None, "type"),
    ],
    ids=[
        "pan",
        "pan-dashes",
        "pan-prefixed",
        "pan-full-width",
        "empty",
        "dash-first",
        "space",
        "slash",
        "percent",
        "too-long",
        "non-ascii",
        "int",
        "none",
    ],
)
def test_order_ids_refused_name_the_field(value, rule):
    with pytest.raises(InvalidRequest) as info:
        check_order_id(value, "pathParameters.orderId")
    assert [(p.field, p.rule) for p in info.value.problems] == [("pathParameters.orderId", rule)]
    assert "4111" not in json.dumps(info.value.body())
