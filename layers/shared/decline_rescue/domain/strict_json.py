"""Bounded input: the one strict JSON loader every entry uses (API bodies, queue messages,
webhooks), the nesting limit for what is already parsed, and the ``orderId`` format
shared by bodies and path parameters.

``loads(data, *, max_bytes, max_depth=32)`` returns the document or raises
``InvalidRequest`` naming the field and the rule, never anything else:

| rule | field | when |
| --- | --- | --- |
| ``too_large`` | ``body`` | more than ``max_bytes`` bytes of UTF-8 |
| ``json`` | ``body`` | not UTF-8, not JSON (a ``str`` holding lone surrogates included) |
| ``json`` | the string's path | an escaped lone surrogate (``"\\ud800"``: no storage takes it) |
| ``too_deep`` | ``body`` | objects and arrays nested deeper than ``max_depth`` (32: DynamoDB's own limit) |
| ``duplicate_key`` | the key's path | a key twice in one object (``json`` silently keeps the last) |
| ``not_finite`` | the number's path | ``NaN``, ``Infinity``, ``-Infinity``, or a number that overflows (``1e999``) |

Depth is measured before parsing, on the text (brackets outside strings): no recursion,
whatever the nesting. A body whose brackets do not even balance is ``json``, not
``too_deep`` (it is not JSON at all). Depth counts containers: ``{}`` is 1, ``{"a": []}`` 2.

``check_depth(value, max_depth)`` is the same limit for an object built elsewhere
(iterative: no recursion error on any input). ``check_order_id(value, field)`` checks
an ``orderId`` wherever one arrives (a body, a path ``/orders/{orderId}``, a webhook):
``ORDER_ID_RULE``, and never a card number (it is the orders table's partition key, in
events and in logs).

Paths are written as the contract writes them: ``paymentMethod.cardNumber``,
``orderItems[0].sku``; the document itself is ``body``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from decline_rescue.domain.carddata import find_pans
from decline_rescue.domain.errors import FieldProblem, InvalidRequest

MAX_DEPTH = 32

ORDER_ID_MAX = 128
ORDER_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{ORDER_ID_MAX - 1}}}")
ORDER_ID_RULE = f"must be 1-{ORDER_ID_MAX} letters, digits or . _ : - (starting with a letter or digit)"

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _NotFinite:
    """What NaN, Infinity and overflowing numbers parse to, until they are reported."""

    __slots__ = ()


_NOT_FINITE = _NotFinite()


class _Duplicated(dict):
    """An object that had a key twice (the last value kept, as ``json`` does)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        duplicates: dict[str, None] = {}
        for key, _ in pairs:
            if key in seen:
                duplicates[key] = None
            seen.add(key)
        self.duplicates = list(duplicates)


def child(path: str, key: str | int) -> str:
    """The path of ``key`` under ``path`` (``body`` is the document)."""
    if isinstance(key, int):
        return f"{path or 'body'}[{key}]"
    return key if path in ("", "body") else f"{path}.{key}"


def _problem(field: str, rule: str, message: str) -> InvalidRequest:
    return InvalidRequest([FieldProblem(field, rule, message)])


def _text(data: str | bytes | bytearray, max_bytes: int) -> str:
    if isinstance(data, str):
        if len(data) > max_bytes:  # a character is at least a byte
            raise _problem("body", "too_large", f"must be at most {max_bytes} bytes")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise _problem("body", "json", "is not valid JSON (UTF-8)") from None
        if size > max_bytes:
            raise _problem("body", "too_large", f"must be at most {max_bytes} bytes")
        return data
    if len(data) > max_bytes:
        raise _problem("body", "too_large", f"must be at most {max_bytes} bytes")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise _problem("body", "json", "is not valid JSON (UTF-8)") from None


def _too_deep(text: str, max_depth: int) -> bool | None:
    """True when brackets outside strings nest deeper than ``max_depth``; None when they
    do not balance (not JSON); False otherwise."""
    if text.count("{") + text.count("[") <= max_depth:
        return False  # not enough brackets to be deep, wherever they are
    bare = _STRING.sub('""', text)
    if bare.count("{") != bare.count("}") or bare.count("[") != bare.count("]"):
        return None
    depth = 0
    for match in _BRACKET.finditer(bare):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads(data: str | bytes | bytearray, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``data``, or ``InvalidRequest`` (see the module docstring)."""
    text = _text(data, max_bytes)
    deep = _too_deep(text, max_depth)
    if deep is None:
        raise _problem("body", "json", "is not valid JSON (UTF-8)")
    if deep:
        raise _problem("body", "too_deep", f"nests objects and arrays deeper than {max_depth} levels")
    flagged = [bool(_SURROGATE_ESCAPE.search(text))]

    def constant(_name: str) -> _NotFinite:
        flagged[0] = True
        return _NOT_FINITE

    def number(literal: str) -> float | _NotFinite:
        value = float(literal)
        if math.isfinite(value):
            return value
        flagged[0] = True
        return _NOT_FINITE

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        flagged[0] = True
        return _Duplicated(items)

    try:
        document = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError):  # (RecursionError cannot happen after the depth check)
        raise _problem("body", "json", "is not valid JSON (UTF-8)") from None
    if flagged[0]:
        problems = _flaws(document)
        if problems:
            raise InvalidRequest(problems)
    return document


def _flaws(document: Any) -> list[FieldProblem]:
    """Duplicate keys, non-finite numbers and lone surrogates, each named by its path."""
    problems: list[FieldProblem] = []
    stack: list[tuple[str, Any]] = [("body", document)]
    while stack:
        path, node = stack.pop()
        if node is _NOT_FINITE:
            problems.append(FieldProblem(path, "not_finite", "must be a finite number (not NaN or Infinity)"))
        elif isinstance(node, str):
            if not node.isascii() and not _encodable(node):
                problems.append(FieldProblem(path, "json", "holds an unpaired UTF-16 surrogate escape"))
        elif isinstance(node, dict):
            for key in getattr(node, "duplicates", ()):
                problems.append(FieldProblem(child(path, key), "duplicate_key", "appears more than once in its object"))
            for key, value in reversed(node.items()):
                if not key.isascii() and not _encodable(key):
                    problems.append(FieldProblem(path, "json", "has a key with an unpaired UTF-16 surrogate escape"))
                stack.append((child(path, key), value))
        elif isinstance(node, list):
            stack.extend((child(path, i), value) for i, value in reversed(list(enumerate(node))))
    return problems


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> FieldProblem | None:
    """The first place ``value`` (already parsed) nests deeper than ``max_depth``, as a
    ``too_deep`` problem naming the path down to it; None when it does not."""
    stack: list[tuple[str, Any, int]] = [("body", value, 1)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                return FieldProblem(path, "too_deep", f"nests objects and arrays deeper than {max_depth} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child(path, k), v, depth + 1) for k, v in items)
    return None


def check_order_id(value: Any, field: str = "orderId") -> str:
    """``value`` when it is an orderId (``ORDER_ID_RULE``, and no card number); else
    ``InvalidRequest`` naming ``field`` (the message never repeats the value)."""
    if not isinstance(value, str):
        raise _problem(field, "type", "must be a string")
    if find_pans(value):
        raise _problem(field, "card_number_not_allowed", "looks like a card number: never use one as an orderId")
    if not ORDER_ID.fullmatch(value):
        raise _problem(field, "format", ORDER_ID_RULE)
    return value
