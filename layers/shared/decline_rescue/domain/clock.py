"""Time as the whole project writes it: UTC, ISO 8601 with milliseconds and a ``Z``
(sortable as text, which the pending index relies on)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    return (moment or now_utc()).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: object) -> datetime | None:
    """An ISO 8601 time as written here (or by a provider); None when it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
