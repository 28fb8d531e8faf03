"""Template parameters for the local stack, as ``sam deploy`` takes and CloudFormation checks them.

``parse_overrides`` reads ``PARAMETER_OVERRIDES`` in the syntax of
``sam deploy --parameter-overrides``: whitespace-separated ``Key=Value`` or
``ParameterKey=Key,ParameterValue=Value`` pairs, a value quoted with ``"`` or ``'`` when it
holds spaces (``Key="a b"``), ``\\ ``, ``\\"`` and ``\\'`` unescaped as sam does, the last of a
repeated key winning. Unlike sam it refuses what it cannot read instead of dropping it.

``validate`` checks values against the template's declarations with CloudFormation's own
messages: ``Type`` (``String``, ``Number``, ``CommaDelimitedList``, ``List<Number>``; the
AWS-specific types are taken as strings, nothing is looked up), ``AllowedValues``,
``AllowedPattern`` (the whole value must match), ``MinLength``/``MaxLength`` (``String``),
``MinValue``/``MaxValue`` (``Number``); a list's members are checked one by one. A
``ConstraintDescription`` replaces the reason, as in CloudFormation. Parameters left to their
``Default`` are checked too.

``resolve`` layers the local stack's own values and the overrides over the Defaults, checks the
result and says which values were overridden.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

OVERRIDES_ENV = "PARAMETER_OVERRIDES"

_EXAMPLES = (
    "'ParameterKey=KeyPairName,ParameterValue=MyKey ParameterKey=InstanceType,ParameterValue=t1.micro'"
    " or 'KeyPairName=MyKey InstanceType=t1.micro'"
)

# a key: letters and digits (a CloudFormation parameter name), quotes around it allowed as sam allows
_KEY = r"""[A-Za-z0-9]+|"[A-Za-z0-9]+"|'[A-Za-z0-9]+'"""
# a value: double- or single-quoted (backslash escapes inside), or bare: no whitespace, no double
# quote, not starting with a quote; a backslash escapes the next character (``a\ b``)
_QUOTED = r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'"""
_BARE = r"""(?:\\.|[^\s"'\\])(?:\\.|[^\s"\\])*"""
_PAIR = re.compile(
    rf"(?:ParameterKey=(?P<long_key>{_KEY}),ParameterValue=(?P<long_value>{_QUOTED}|{_BARE})"
    rf"|(?P<key>{_KEY})=(?P<value>{_QUOTED}|{_BARE}))(?=\s|$)"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_LIST_TYPES = ("CommaDelimitedList", "List<")


class ParameterError(ValueError):
    """Values a template's parameters refuse: one CloudFormation message per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def _unquote(text: str) -> str:
    """sam's unquoting: strip one pair of wrapping quotes, unescape ``\\ ``, ``\\"`` and ``\\'``."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2="a b" ParameterKey=K,ParameterValue=V`` as a dict; ParameterError when
    any part of ``text`` is not one of those forms."""
    values: dict[str, str] = {}
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return values
        match = _PAIR.match(text, position)
        if match is None or (match["key"] and _unquote(match["key"]) == "ParameterKey"):
            raise ParameterError([_syntax_error(text, position)])
        key = match["long_key"] or match["key"]
        value = match["long_value"] if match["long_key"] else match["value"]
        values[_unquote(key)] = _unquote(value)
        position = match.end()


def _syntax_error(text: str, position: int) -> str:
    shown = re.match(r"\S*", text[position:]).group(0)
    hint = ""
    quote = re.search(r"""=(?=["'])""", shown)
    if quote and not re.match(_QUOTED, text[position + quote.end() :]):
        hint = " (a quote is not closed)"
    elif "=" not in shown:
        hint = " (no '=')"
    return f"{shown} (at character {position + 1}) is not a valid format{hint}. It must look something like {_EXAMPLES}"


def overrides_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``PARAMETER_OVERRIDES`` parsed; SystemExit with the reason when it cannot be read."""
    text = (os.environ if environ is None else environ).get(OVERRIDES_ENV, "")
    try:
        return parse_overrides(text)
    except ParameterError as error:
        raise SystemExit(f"{OVERRIDES_ENV}: {error}") from None


# -- validation -------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A template scalar as CloudFormation reads it (YAML turns 7 into int, true into bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def default_of(declaration: Mapping[str, Any]) -> str | None:
    return _text(declaration["Default"]) if declaration.get("Default") is not None else None


def check_value(name: str, declaration: Mapping[str, Any], value: str) -> str | None:
    """CloudFormation's message when ``value`` breaks ``name``'s declaration, else None."""
    kind = str(declaration.get("Type", "String"))
    reason = _violation(name, declaration, kind, value)
    if reason is None:
        return None
    if reason.startswith("Template format error"):
        return reason
    description = declaration.get("ConstraintDescription")
    if description is not None and str(description).strip():
        return f"Parameter {name} failed to satisfy constraint: {str(description).strip()}"
    return reason


def _violation(name: str, declaration: Mapping[str, Any], kind: str, value: str) -> str | None:
    allowed = [_text(v) for v in declaration.get("AllowedValues") or []]
    pattern = declaration.get("AllowedPattern")
    if kind.startswith(_LIST_TYPES):
        members = [m.strip() for m in value.split(",")]
        member_kind = "Number" if kind == "List<Number>" else "String"
    elif kind == "Number" or kind == "String" or kind.startswith("AWS::"):
        members, member_kind = [value], ("Number" if kind == "Number" else "String")
    else:
        return f"Template format error: Unrecognized parameter type: {kind}"
    for member in members:
        if member_kind == "Number":
            if not _NUMBER.fullmatch(member):
                return f"Parameter '{name}' must be a number"
            number = Decimal(member)
            if allowed and member not in allowed:
                return f"Parameter '{name}' must be one of AllowedValues"
            low, high = declaration.get("MinValue"), declaration.get("MaxValue")
            for key, bound in (("MinValue", low), ("MaxValue", high)):
                if bound is not None and not _NUMBER.fullmatch(_text(bound)):
                    return f"Template format error: Parameter '{name}' {key} must be a number"
            if low is not None and number < Decimal(_text(low)):
                return f"Parameter '{name}' must be a number not less than {_text(low)}"
            if high is not None and number > Decimal(_text(high)):
                return f"Parameter '{name}' must be a number not greater than {_text(high)}"
            continue
        if allowed and member not in allowed:
            return f"Parameter '{name}' must be one of AllowedValues"
        if kind == "String":
            shortest, longest = declaration.get("MinLength"), declaration.get("MaxLength")
            if shortest is not None and len(member) < int(shortest):
                return f"Parameter '{name}' must contain at least {_text(shortest)} characters"
            if longest is not None and len(member) > int(longest):
                return f"Parameter '{name}' must contain at most {_text(longest)} characters"
        if pattern is not None:
            try:
                matched = re.fullmatch(str(pattern), member, re.DOTALL)
            except re.error:
                return f"Template format error: Parameter '{name}' AllowedPattern must be a valid regular expression"
            if matched is None:
                return f"Parameter '{name}' must match pattern {pattern}"
    return None


def validate(declarations: Mapping[str, Mapping[str, Any]], values: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value: ``values`` over the Defaults, checked as CloudFormation checks
    them (unknown names, missing values, then each parameter's constraints). ParameterError
    with every problem found."""
    effective, problems = _check_all(declarations, values)
    if problems:
        raise ParameterError([message for _, _, message in problems])
    return effective


def _check_all(
    declarations: Mapping[str, Mapping[str, Any]], values: Mapping[str, str]
) -> tuple[dict[str, str], list[tuple[str, list[str], str]]]:
    """Every parameter's value, and the problems: (``unknown``, ``missing`` or ``value``, the
    parameters concerned, CloudFormation's message)."""
    problems: list[tuple[str, list[str], str]] = []
    unknown = [name for name in values if name not in declarations]
    if unknown:
        problems.append(("unknown", unknown, f"Parameters: [{', '.join(unknown)}] do not exist in the template"))
    effective: dict[str, str] = {}
    missing = []
    for name, declaration in declarations.items():
        value = values[name] if name in values else default_of(declaration)
        if value is None:
            missing.append(name)
            continue
        effective[name] = value
        message = check_value(name, declaration, value)
        if message:
            problems.append(("value", [name], message))
    if missing:
        problems.insert(
            1 if unknown else 0, ("missing", missing, f"Parameters: [{', '.join(missing)}] must have values")
        )
    return effective, problems


# -- the local stack's layers -----------------------------------------------------------


@dataclass
class Resolved:
    """The local stack's parameters: ``values`` (what the stack sets, Defaults left to the
    template), ``effective`` (every parameter's value) and what PARAMETER_OVERRIDES replaced."""

    values: dict[str, str]
    effective: dict[str, str]
    # overridden name -> the local stack's own value it replaced (None: the template's Default)
    overridden: dict[str, str | None] = field(default_factory=dict)
    no_echo: frozenset[str] = frozenset()

    def describe_overrides(self) -> str:
        """``PollRate=rate(5 minutes), Stage=qa (instead of the local stack's local)``."""
        parts = []
        for name, replaced in self.overridden.items():
            part = f"{name}={self._shown(name, self.effective[name])}"
            if replaced is not None:
                part += f" (instead of the local stack's {self._shown(name, replaced)})"
            parts.append(part)
        return ", ".join(parts)

    def _shown(self, name: str, value: str) -> str:
        return "****" if name in self.no_echo else value


def resolve(
    declarations: Mapping[str, Mapping[str, Any]],
    local: Mapping[str, str],
    overrides: Mapping[str, str],
) -> Resolved:
    """``overrides`` over the local stack's values (``local``) over the template's Defaults,
    validated; ParameterError naming where each refused value came from."""
    values = {**local, **overrides}
    effective, problems = _check_all(declarations, values)
    if problems:
        raise ParameterError([_attribute(kind, names, message, local, overrides) for kind, names, message in problems])
    return Resolved(
        values=values,
        effective=effective,
        overridden={name: local.get(name) for name in overrides},
        no_echo=frozenset(n for n, d in declarations.items() if _text(d.get("NoEcho", "false")).lower() == "true"),
    )


def _attribute(
    kind: str, names: list[str], message: str, local: Mapping[str, str], overrides: Mapping[str, str]
) -> str:
    """``message`` with where its value came from: PARAMETER_OVERRIDES, the local stack or the Default."""
    if kind == "unknown":
        sources = sorted({OVERRIDES_ENV if name in overrides else "the local stack" for name in names})
        return f"{message} (from {' and '.join(sources)})"
    if kind == "missing":
        return message
    (name,) = names
    if name in overrides:
        source = f"the value from {OVERRIDES_ENV}"
    elif name in local:
        source = f"the local stack's own value; {OVERRIDES_ENV}='{name}=...' replaces it"
    else:
        source = "the template's Default"
    return f"{message} ({source})"
