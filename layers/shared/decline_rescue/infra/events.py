"""EventBridge: put entries on a bus, ten per request, and say which ones failed."""

from __future__ import annotations

import json
from typing import Any

from decline_rescue.infra.aws import client

SOURCE = "decline-rescue"


def put(bus: str, entries: list[tuple[str, dict[str, Any]]]) -> dict[int, str]:
    """Put (detail-type, detail) entries on ``bus``; the index and error of each entry that
    was not put (a request that fails outright fails all its entries)."""
    events = client("events")
    failed: dict[int, str] = {}
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        request = [
            {"Source": SOURCE, "DetailType": kind, "Detail": json.dumps(detail), "EventBusName": bus}
            for kind, detail in chunk
        ]
        try:
            answer = events.put_events(Entries=request)
        except Exception as exc:  # noqa: BLE001 - the caller reports these entries as failed and retries them
            failed.update(dict.fromkeys(range(start, start + len(chunk)), f"{type(exc).__name__}: {str(exc)[:200]}"))
            continue
        if answer.get("FailedEntryCount"):
            for i, entry in enumerate(answer.get("Entries") or []):
                if entry.get("ErrorCode"):
                    failed[start + i] = str(entry["ErrorCode"])
    return failed
