"""Card data: one detector for card numbers and CVV keys, and the redaction built on it.

The /evaluate contract's guard (``domain.contract``), the log formatter (every log line
passes through ``redact``) and the tests that scan logs, tables and queues all use it, so
what is refused at the door and what is redacted from a log line are the same thing.

A card number (PAN) is 13-19 digits that pass the Luhn check, wherever it sits (a
13-digit one must start with 4: only Visa ever issued them, so a millisecond timestamp,
which FlexCharge's own Node sample sends as a subscriptionId, is not taken for a card):

- **Normalised first.** Unicode NFKC (full-width ``\uff14``, superscript, circled and
  mathematical digits, full-width punctuation become ASCII), then every other Unicode
  decimal digit (Arabic-Indic ``\u0664``, Devanagari ``\u096a``, ...) becomes its ASCII
  digit.
- **Written in groups.** Digit groups may be joined by *separators*: a run of 1-3
  characters, each whitespace, punctuation, a symbol or a control/format character
  (space, tab, newline, ``/ . - _ , | +``, zero-width space, ...). Not ``:`` (times, ARNs
  and ``key:value`` text would otherwise make card numbers out of timestamps) and never a
  letter: a token or UUID with letters between its digits is not a number. A digit
  group is never split: a 20-digit run holds no card number.
- **Candidates**, in each chain of groups joined by separators: each group of 13-19
  digits; the whole chain when it has 13-19 digits (``4111\\t1111/1111.1111``); and each
  run of consecutive groups of 3-6 digits joined by one same separator, as card numbers
  are written (``4111 1111 1111 1111`` inside ``4111 1111 1111 1111 1234`` or before
  ``12/28``). Windows of 1- or 2-digit groups are not tried: the work stays linear and
  small on hostile text (``1 1 1 1 ...`` over 64 KiB).
- **Any type.** Strings, integers and floats: a JSON float ``4111111111111111.0`` or
  ``4.111111111111111e15`` is a card number (its ``repr`` and its integral digits are
  both read); ``bool`` never is.

Cheap pre-checks keep it fast on the log path: text shorter than 13 characters or
without a digit is skipped (ASCII text is not even normalised), and so is every chain of
fewer than 13 digits, before any Luhn check; key names are classified once (cached).

A CVV is whatever sits under a key that names one (``names_cvv``): the key is normalised
(NFKC, case-folded, every non-alphanumeric removed) and matched whole against
``CVV_STEMS``, optionally with one prefix of ``CVV_PREFIXES`` and one suffix of
``CVV_SUFFIXES`` (``card_cvv``, ``cvvCode``, ``CVV_NUMBER``, ``security-code``,
``cardVerificationValue``). Whole-key matching only: ``decidedAt`` holds ``cid`` and
``cvvResultCode`` holds ``cvv``, and neither is a CVV.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from typing import Any

REDACTED = "[REDACTED]"
REDACTED_PAN = "[REDACTED_PAN]"
REDACTED_DEPTH = "[REDACTED_TOO_DEEP]"

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
MAX_SEPARATOR = 3  # characters between two digit groups of one number
WINDOW_GROUP = (3, 6)  # digits in each group of a card number found inside a longer chain
REDACT_MAX_DEPTH = 64  # nesting a log record may have; deeper is replaced, never recursed into

# Names of a card security code, once normalised (see the module docstring).
CVV_STEMS = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "cvn",
        "cvn2",
        "cvd",  # card verification digits (Canada)
        "csc",
        "cid",  # Amex's card identification number
        "cav2",  # JCB
        "4dbc",  # Amex's four-digit batch code
        "securitycode",
        "cardcode",  # Authorize.Net's name for it
        "verificationvalue",
        "verificationcode",
        "verificationnumber",
    }
)
CVV_PREFIXES = ("creditcard", "payment", "card", "cc")
CVV_SUFFIXES = ("number", "digits", "value", "code", "num", "no")

# Keys whose value is redacted from logs whole (the value may be a token: logs need neither).
CARD_NUMBER_KEYS = frozenset(
    {"cardnumber", "pan", "primaryaccountnumber", "accountnumber", "creditcardnumber", "ccnumber", "cardno"}
)

_DIGIT_RUN = re.compile(r"[0-9]+")
# A chain: digit groups joined by 1-3 separators (not a letter, a digit or ":"; "_" is one).
_CHAIN = re.compile(rf"[0-9]+(?:(?:[^\w:]|_){{1,{MAX_SEPARATOR}}}[0-9]+)*")
_ASCII_DIGITS = "0123456789"


class _Decimals(dict):
    """``str.translate`` table: each Unicode decimal digit to its ASCII digit, filled on
    first sight (building it for all of Unicode would cost every cold start)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = mapped = str(unicodedata.decimal(char)) if char.isdecimal() else char
        return mapped


_DECIMALS = _Decimals()


def normalise(text: str) -> str:
    """``text`` as the detector reads it: NFKC, and every decimal digit in ASCII."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return text if text.isascii() else text.translate(_DECIMALS)


def _is_separator(char: str) -> bool:
    return char == "_" or not (char.isalnum() or char == ":")


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, its digits summed


def luhn_valid(digits: str) -> bool:
    if not digits.isascii() or not digits.isdigit():
        return False
    rev = digits[::-1]
    return (sum(map(int, rev[0::2])) + sum(map(_DOUBLED.__getitem__, map(int, rev[1::2])))) % 10 == 0


def _card(digits: str) -> bool:
    if len(digits) == PAN_MIN_DIGITS and digits[0] != "4":
        return False  # only Visa ever issued 13-digit card numbers: a millisecond timestamp is no card
    return PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS and luhn_valid(digits)


def _chain_spans(text: str, offset: int, found: dict[tuple[int, int], str]) -> None:
    """The card numbers of one chain (``text``, at ``offset`` in the whole text)."""
    groups = [(m.start(), m.end()) for m in _DIGIT_RUN.finditer(text)]
    digits = [text[start:end] for start, end in groups]
    total = sum(map(len, digits))
    if total < PAN_MIN_DIGITS:
        return
    for (start, end), group in zip(groups, digits, strict=True):
        if _card(group):  # one group
            found[(offset + start, offset + end)] = group
    if len(groups) == 1:
        return
    joined = "".join(digits)
    if total <= PAN_MAX_DIGITS and luhn_valid(joined):  # the whole chain
        found[(offset + groups[0][0], offset + groups[-1][1])] = joined
    # runs of groups written as card numbers are (3-6 digits, one same separator): their
    # Luhn sums from prefix sums over the chain's digits, so each run costs O(1)
    low, high = WINDOW_GROUP
    if sum(1 for d in digits if low <= len(d) <= high) < 2:
        return
    seps = [text[groups[i][1] : groups[i + 1][0]] for i in range(len(groups) - 1)]
    at = [0, *itertools.accumulate(map(len, digits))]  # where each group starts in ``joined``
    values = list(map(int, joined))
    even_plain = [0, *itertools.accumulate(v if k % 2 == 0 else _DOUBLED[v] for k, v in enumerate(values))]
    odd_plain = [0, *itertools.accumulate(_DOUBLED[v] if k % 2 == 0 else v for k, v in enumerate(values))]
    for i in range(len(groups) - 1):
        if not low <= len(digits[i]) <= high:
            continue
        first = at[i]
        for j in range(i + 1, len(groups)):
            last = at[j + 1]
            if seps[j - 1] != seps[i] or not low <= len(digits[j]) <= high or last - first > PAN_MAX_DIGITS:
                break
            if last - first >= PAN_MIN_DIGITS:
                sums = even_plain if (last - 1) % 2 == 0 else odd_plain  # the last digit is never doubled
                if (sums[last] - sums[first]) % 10 == 0:
                    found[(offset + groups[i][0], offset + groups[j][1])] = joined[first:last]


# An RFC 4122 UUID (idempotency keys, request ids) is an identifier, not five digit groups:
# one whose first groups happen to be all digits would otherwise read as a card number
# about once in twenty thousand (a UUID is 32 hex digits; a card number 13-19 digits).
# So is a long hexadecimal token with letters in it (a card fingerprint, a hash): a run of
# 13 decimal digits inside one passes the Luhn check about once in five hundred tokens.
_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])(?=[0-9A-Fa-f]*[0-9])[0-9A-Fa-f]{24,}(?![0-9A-Za-z])")
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[1-8][0-9A-Fa-f]{3}-[89abAB][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])"
)


def _spans(text: str) -> list[tuple[int, int, str]]:
    """Every card number in normalised ``text``: (start, end, digits), in order."""
    found: dict[tuple[int, int], str] = {}
    if "-" in text:
        text = _UUID.sub(lambda m: "u" * len(m.group()), text)  # (same length: offsets hold)
    text = _HEX_TOKEN.sub(lambda m: "x" * len(m.group()), text)
    for match in _CHAIN.finditer(text):
        if match.end() - match.start() >= PAN_MIN_DIGITS:
            _chain_spans(match.group(), match.start(), found)
    return [(start, end, digits) for (start, end), digits in sorted(found.items())]


def _enough_digits(text: str) -> bool:
    return len(text) >= PAN_MIN_DIGITS and any(d in text for d in _ASCII_DIGITS)


def _texts(value: Any) -> list[str]:
    """The normalised texts a value is read as (empty: it cannot hold a card number)."""
    if isinstance(value, str):
        text = value if value.isascii() else normalise(value)
        return [text] if _enough_digits(text) else []
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [str(abs(value))] if abs(value) >= 10 ** (PAN_MIN_DIGITS - 1) else []
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return []
        texts = [repr(value)]
        if value.is_integer() and 10 ** (PAN_MIN_DIGITS - 1) <= abs(value) < 10**PAN_MAX_DIGITS:
            texts.append(str(int(abs(value))))
        return [t for t in texts if _enough_digits(t)]
    return _texts(str(value))


def find_pans(value: Any) -> list[str]:
    """Every card number in ``value`` (a string, an int, a float, or anything's ``str``),
    as its digits, in order of appearance."""
    found = [digits for text in _texts(value) for _, _, digits in _spans(text)]
    return list(dict.fromkeys(found)) if isinstance(value, float) else found  # a float is read twice


def card_digits(value: Any) -> str | None:
    """The digits when ``value`` is one card number and nothing else (separators allowed
    around and between its groups), else None."""
    for text in _texts(value):
        body = text.strip("".join(c for c in set(text) if _is_separator(c)))
        for start, end, digits in _spans(body):
            if start == 0 and end == len(body):
                return digits
    return None


def is_pan(value: Any) -> bool:
    """``value`` is one card number (``card_digits``)."""
    return card_digits(value) is not None


def _key(name: str) -> str:
    return "".join(c for c in normalise(name).casefold() if c.isalnum())


def names_cvv(key: Any) -> bool:
    """Whether a key names a card security code (see the module docstring)."""
    return isinstance(key, str) and _key_kind(key) == _CVV


def names_card_number(key: Any) -> bool:
    return isinstance(key, str) and _key_kind(key) == _CARD_NUMBER


_CVV, _CARD_NUMBER, _OTHER = 1, 2, 0


@functools.lru_cache(maxsize=4096)  # keys repeat: every log record has the same ones
def _key_kind(key: str) -> int:
    name = _key(key)
    if _cvv_name(name):
        return _CVV
    return _CARD_NUMBER if name in CARD_NUMBER_KEYS else _OTHER


def _cvv_name(name: str) -> bool:
    if name in CVV_STEMS:
        return True
    for prefix in ("", *CVV_PREFIXES):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if rest in CVV_STEMS:
            return True
        for suffix in CVV_SUFFIXES:
            if rest.endswith(suffix) and rest[: -len(suffix)] in CVV_STEMS:
                return True
    return False


def is_empty(value: Any) -> bool:
    """No data at all: what a key may hold whatever it is called."""
    return value is None or (isinstance(value, (str, dict, list, tuple)) and len(value) == 0)


def redact_text(text: str) -> str:
    """``text`` with each card number replaced by ``REDACTED_PAN`` (text that held one and
    was not ASCII comes back normalised)."""
    if len(text) < PAN_MIN_DIGITS:
        return text
    read = text if text.isascii() else normalise(text)
    if not _enough_digits(read):
        return text
    spans = _spans(read)
    if not spans:
        return text
    out, at = [], 0
    for start, end, _ in spans:
        if start >= at:
            out.append(read[at:start])
            out.append(REDACTED_PAN)
            at = end
        elif end > at:  # overlapping candidates: one redaction
            at = end
    out.append(read[at:])
    return "".join(out)


_redact_text = redact_text  # (the name it had)


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with card numbers and CVVs replaced, at any depth (deeper than
    ``REDACT_MAX_DEPTH``, the rest is replaced whole: never a recursion error)."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return REDACTED_PAN if find_pans(value) else value
    if _depth >= REDACT_MAX_DEPTH and isinstance(value, (dict, list, tuple, set, frozenset)):
        return REDACTED_DEPTH
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = redact_text(key)
            elif isinstance(key, (tuple, frozenset)):  # (redacted as a list it would be no key)
                name = redact_text(str(key))
            else:
                name = redact(key, _depth + 1)
            if isinstance(key, str) and (names_cvv(key) or names_card_number(key)) and not is_empty(item):
                out[name] = REDACTED
            else:
                out[name] = redact(item, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, _depth + 1) for item in value]
    # anything else (an exception object in a stack trace, a datetime, ...) is logged
    # through str(): redact that text rather than trust the object
    return redact_text(str(value))
