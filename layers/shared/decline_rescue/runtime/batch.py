"""SQS partial batch responses, as Powertools' ``BatchProcessor(EventType.SQS)`` with
``process_partial_response`` gives them, without importing its batch package (about
20 ms of the single writer's cold start; ``tests/unit/test_proxy.py`` compares the two).

Each record is handled on its own; the ones whose handler raised are reported in
``batchItemFailures`` (SQS redelivers them); when every record raised, Powertools'
``BatchProcessingError`` is raised, as it does. The handler gets the record as Lambda
sent it (a dict: ``body``, ``messageId``, ...).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def process_partial_response(event: Any, record_handler: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not records or not isinstance(records, list):
        # not an SQS batch: Powertools' own error for it
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
        from aws_lambda_powertools.utilities.batch import process_partial_response as powertools

        return powertools(event=event, record_handler=record_handler, processor=BatchProcessor(EventType.SQS))
    failed: list[dict[str, Any]] = []
    exceptions: list[Any] = []
    for record in records:
        try:
            record_handler(record)
        except Exception:  # noqa: BLE001 - any failure is this record's: SQS redelivers it
            exceptions.append(sys.exc_info())
            failed.append(record)
    if not failed:
        return {"batchItemFailures": []}
    if len(exceptions) == len(records):
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        raise BatchProcessingError(
            msg=f"All records failed processing. {len(exceptions)} individual errors logged separately below.",
            child_exceptions=exceptions,
        )
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failed]}
