"""``infra.dynamodb_json`` converts as boto3's TypeSerializer and TypeDeserializer do:
the same DynamoDB JSON for every kind of value the orders table holds, the same Python
values back, the same refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from decline_rescue.infra import dynamodb_json

VALUES = [
    None,
    True,
    False,
    0,
    -7,
    1999,
    2**63,
    Decimal("0.1"),
    Decimal("-12.5000"),
    Decimal("1E+2"),
    Decimal("1.2345678901234567890123456789012345678"),
    "",
    "text",
    "ünïcode ✓",
    b"\x00\x01",
    bytearray(b"ab"),
    [],
    [1, "a", None, [True, {"k": Decimal("2.5")}]],
    ("tuple", 1),
    {},
    {"orderId": "o-1", "history": [{"version": 2, "at": "2026-11-22T10:00:00.000Z"}], "reason": {"rule": "x"}},
    {"a", "b"},
    {1, Decimal("2.5")},
    {b"x", b"y"},
    frozenset({"f"}),
    set(),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_serialize_as_boto3(value):
    ours = dynamodb_json.serialize(value)
    theirs = TypeSerializer().serialize(value)
    if "NS" in ours or "SS" in ours or "BS" in ours:  # sets: order is not defined
        (kind,) = ours
        assert set(ours[kind]) == set(theirs[kind]) and len(ours[kind]) == len(theirs[kind])
    else:
        assert ours == theirs


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_deserialize_as_boto3(value):
    wire = TypeSerializer().serialize(value)
    ours = dynamodb_json.deserialize(wire)
    theirs = TypeDeserializer().deserialize(wire)

    def plain(v):  # boto3 wraps binary values (bytes from botocore) in Binary; ours are bytes
        if isinstance(v, Binary):
            return bytes(v.value)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, set):
            return {plain(x) for x in v}
        return v

    assert ours == plain(theirs)
    assert type(ours) is type(plain(theirs))


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        [1.5],
        {"a": 0.1},
        Decimal("Infinity"),
        Decimal("NaN"),
        Decimal("1.23456789012345678901234567890123456789"),  # 39 digits: inexact
        Decimal("1E+200"),
        10**40,
        object(),
        {1, "mixed"},
    ],
    ids=repr,
)
def test_refusals_as_boto3(value):
    with pytest.raises(Exception) as ours:
        dynamodb_json.serialize(value)
    with pytest.raises(Exception) as theirs:
        TypeSerializer().serialize(value)
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize("wire", [{}, {"X": "1"}], ids=repr)
def test_bad_wire_values_are_refused_as_boto3(wire):
    with pytest.raises(TypeError):
        dynamodb_json.deserialize(wire)
    with pytest.raises(TypeError):
        TypeDeserializer().deserialize(wire)
