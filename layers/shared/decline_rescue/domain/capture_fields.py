"""The fields a Flex v2 capture context can capture, and a checkout's selection of them.

The selection uses the Flex shape of seed 000: a tree whose leaves are ``{}`` (required)
or ``{"required": false}`` (optional), with or without the ``fields`` wrapper. Every leaf
must be one of the fields Flex API v2 can capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decline_rescue.domain.errors import FieldProblem, InvalidRequest

# The capturable fields, as listed by seed 000 ("Payment API Fields").
FLEX_FIELDS: frozenset[str] = frozenset(
    [
        *(f"orderInformation.amountDetails.{f}" for f in ("currency", "totalAmount")),
        *(
            f"orderInformation.billTo.{f}"
            for f in (
                "address1",
                "address2",
                "administrativeArea",
                "buildingNumber",
                "company",
                "country",
                "district",
                "email",
                "firstName",
                "lastName",
                "locality",
                "phoneNumber",
                "postalCode",
            )
        ),
        *(
            f"orderInformation.shipTo.{f}"
            for f in (
                "address1",
                "address2",
                "administrativeArea",
                "buildingNumber",
                "company",
                "country",
                "district",
                "firstName",
                "lastName",
                "locality",
                "postalCode",
            )
        ),
        *(
            f"paymentInformation.card.{f}"
            for f in ("expirationMonth", "expirationYear", "number", "securityCode", "type")
        ),
    ]
)
CARD_NUMBER = "paymentInformation.card.number"
_PREFIXES = frozenset(".".join(path.split(".")[:i]) for path in FLEX_FIELDS for i in range(1, path.count(".") + 1))


@dataclass(frozen=True)
class FieldSelection:
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def as_flex_fields(self) -> dict[str, Any]:
        """The ``fields`` object of POST /flex/v2/sessions (the SDK's form)."""
        tree: dict[str, Any] = {}
        for path, leaf in [(p, {}) for p in self.required] + [(p, {"required": False}) for p in self.optional]:
            node = tree
            *parents, last = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = leaf
        return tree


def parse_selection(body: Any) -> FieldSelection | None:
    """Validate a request body into a field selection (None for an empty body: the
    configured default), or raise ``InvalidRequest``."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])

    problems: list[FieldProblem] = []
    if "fields" in body:
        for key in body:
            if key != "fields":
                problems.append(FieldProblem(key, "unknown_field", "is not a known request field"))
        tree, root = body["fields"], "fields"
    else:  # the seed's form: the selection tree itself, no wrapper
        tree, root = body, "fields"
    if not isinstance(tree, dict):
        raise InvalidRequest([FieldProblem(root, "type", "must be a JSON object")])

    required: list[str] = []
    optional: list[str] = []
    _walk(tree, "", root, required, optional, problems)
    if not problems:
        if CARD_NUMBER in optional:
            problems.append(
                FieldProblem(
                    f"{root}.{CARD_NUMBER}",
                    "card_number_required",
                    "the card number must be required: a capture context without it captures no card",
                )
            )
        elif CARD_NUMBER not in required:
            problems.append(
                FieldProblem(
                    f"{root}.{CARD_NUMBER}",
                    "missing",
                    "must be selected: a capture context without it captures no card",
                )
            )
    if problems:
        raise InvalidRequest(problems)
    return FieldSelection(tuple(required), tuple(optional))


def _walk(
    node: dict[str, Any],
    path: str,
    root: str,
    required: list[str],
    optional: list[str],
    problems: list[FieldProblem],
) -> None:
    if not node:
        problems.append(FieldProblem(f"{root}.{path}" if path else root, "empty", "selects no field"))
        return
    for key, value in node.items():
        child = f"{path}.{key}" if path else key
        where = f"{root}.{child}"
        if child in FLEX_FIELDS:
            _leaf(value, child, where, required, optional, problems)
        elif child in _PREFIXES:
            if not isinstance(value, dict):
                problems.append(FieldProblem(where, "type", "must be a JSON object"))
            else:
                _walk(value, child, root, required, optional, problems)
        else:
            problems.append(FieldProblem(where, "unknown_field", "is not a field Flex API v2 can capture"))


def _leaf(
    value: Any,
    path: str,
    where: str,
    required: list[str],
    optional: list[str],
    problems: list[FieldProblem],
) -> None:
    if not isinstance(value, dict):
        problems.append(FieldProblem(where, "type", 'must be {} or {"required": false}'))
        return
    extra = [k for k in value if k != "required"]
    if extra:
        problems.append(FieldProblem(f"{where}.{extra[0]}", "unknown_field", 'a field takes only "required"'))
        return
    flag = value.get("required", True)
    if not isinstance(flag, bool):
        problems.append(FieldProblem(f"{where}.required", "type", "must be true or false"))
        return
    (required if flag else optional).append(path)
