"""Card data detection and redaction.

Used by the log formatter (every log line passes through ``redact``) and by tests that
scan logs, tables and queues. A card number is any 13-19 digit run (spaces or dashes
allowed between digits) that passes the Luhn check; a CVV is whatever sits under a key
that names one.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
REDACTED_PAN = "[REDACTED_PAN]"

# 13-19 digits, optionally grouped by up to two spaces, dots or dashes, not glued to
# other digits.
_PAN_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ .\-]{0,2}[0-9]){12,18}(?![0-9])")
_SEPARATORS = re.compile(r"[ .\-]")

SENSITIVE_KEYS = frozenset(
    {
        "cardnumber",
        "card_number",
        "pan",
        "primaryaccountnumber",
        "securitycode",
        "security_code",
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "cid",
        "verificationvalue",
    }
)


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_pan(value: str) -> bool:
    digits = _SEPARATORS.sub("", value)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def find_pans(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit run in ``text`` (separators removed)."""
    found = []
    for match in _PAN_CANDIDATE.finditer(text):
        digits = _SEPARATORS.sub("", match.group(0))
        if luhn_valid(digits):
            found.append(digits)
    return found


def _redact_text(text: str) -> str:
    if len(text) < 13:
        return text

    def replace(match: re.Match[str]) -> str:
        return REDACTED_PAN if is_pan(match.group(0)) else match.group(0)

    return _PAN_CANDIDATE.sub(replace, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with card numbers and CVVs replaced, at any depth."""
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _redact_text(key) if isinstance(key, str) else redact(key)
            if isinstance(key, str) and key.lower() in SENSITIVE_KEYS and item not in (None, "", {}):
                out[name] = REDACTED
            else:
                out[name] = redact(item)
        return out
    if isinstance(value, (list, tuple, set)):
        return [redact(item) for item in value]
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return REDACTED_PAN if is_pan(str(value)) else value
    # anything else (an exception object in a stack trace, a datetime, ...) is logged
    # through str(): redact that text rather than trust the object
    return _redact_text(str(value))
