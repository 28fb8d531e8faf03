"""What the CLI prints, and only through here: every value passes through the card-data
redactor (``decline_rescue.domain.carddata.redact``) before it is laid out, and every line
again after (``redact_text``), so no card number reaches the terminal whatever a DLQ
message, a webhook body or a provider answer held.

Table columns are four spaces apart: the detector joins digit groups separated by up to
three characters into one candidate, so numbers in neighbouring columns never read as
one card number (and get blanked by the second pass)."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from decline_rescue.domain.carddata import redact, redact_text

GAP = "    "


class OpsError(Exception):
    """A clear refusal: printed as ``decline-rescue: <message>``, exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Out:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def line(self, text: Any = "") -> None:
        self.stream.write(redact_text(str(text)) + "\n")

    def json(self, data: Any) -> None:
        self.line(json.dumps(redact(data), indent=2, default=str))

    def table(
        self, headers: list[str], rows: list[list[Any]], *, indent: str = "", right: tuple[int, ...] | None = None
    ) -> None:
        """Columns four spaces apart; ``right``: the columns aligned right (else the numeric ones)."""
        cells = [[cell_text(c) for c in row] for row in redact(rows)]
        widths = [len(h) for h in headers]
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        if right is not None:
            numeric = [i in right for i in range(len(headers))]
        else:
            numeric = [bool(cells) and all(_is_number(row[i]) for row in cells) for i in range(len(headers))]

        def lay(row: list[str]) -> str:
            parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return (indent + GAP.join(parts)).rstrip()

        self.line(lay(headers))
        for row in cells:
            self.line(lay(row))


_NUMBER = re.compile(r"^-?[\d.,]+%?$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text)) or text == "-"


def cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):  # (redacted whole first: a CVV is found by its key)
        return json.dumps(redact(value), separators=(", ", ": "), default=str)
    return str(value)


def pretty(value: Any) -> list[str]:
    """A value as indented JSON lines (redacted whole first), or its text's lines."""
    if isinstance(value, (dict, list)):
        return json.dumps(redact(value), indent=2, default=str).splitlines()
    return str(value).splitlines()


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def short(value: Any, width: int = 60) -> str:
    text = cell_text(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- time ------------------------------------------------------------------------------

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since(value: str) -> datetime:
    """``--since``: a span back from now (``90m``, ``24h``, ``7d``, ``2w``) or an ISO time."""
    found = _SPAN.match(value)
    if found:
        return datetime.now(UTC) - timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2).lower()])
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither a span (30m, 24h, 7d, 2w) nor an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds(value: float | None) -> str:
    """A duration as people read it: 850ms, 42.0s, 12m 5s, 3h 20m, 2d 4h."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def amount(minor: int | float | None, currency: str | None) -> str:
    """Minor units in the currency's major units (ISO 4217 exponent): 1999 USD -> 19.99."""
    if minor is None:
        return "-"
    from decline_rescue.domain.data.iso import exponent

    digits = exponent(str(currency or "USD"))
    value = int(minor)
    if digits == 0:
        return f"{value}"
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}"
