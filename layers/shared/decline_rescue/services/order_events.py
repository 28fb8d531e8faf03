"""Order events: every applied change of an order, put on the EventBridge bus for the
merchant's own systems, derived from the orders table's stream.

The writer records each change as a history item in the same transaction as the order
(``OrdersTable.commit``); the stream delivers every new history item that carries a
``changeId`` (the event source mapping's filter) to this publisher, in order per order.
So a change is never written without its event, nor an event published for a change that
was not written; a failing bus only delays events. Delivery is at least once: a retried
batch publishes some changes again with the same ``changeId`` (``orderId:version``), which
consumers use to drop duplicates and to see gaps.

Failures are reported per record (``ReportBatchItemFailures``): Lambda retries from the
first failed record, bisects a batch that keeps failing, and after its retries sends the
batch's description to the on-failure queue (an operator's alarm)."""

from __future__ import annotations

from typing import Any

from decline_rescue.domain.updates import Change
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings
from decline_rescue.runtime.observability import logger, metrics


def changes(records: list[dict[str, Any]]) -> tuple[list[tuple[str, Change]], list[str]]:
    """(sequence number, change) for each record that is an applied change, and the
    sequence numbers of records that cannot be read (reported as failed: retried, then
    sent to the on-failure queue, never silently dropped)."""
    from decline_rescue.infra.orders_store import OrdersTable

    found: list[tuple[str, Change]] = []
    unreadable: list[str] = []
    for record in records:
        stream = record.get("dynamodb") or {}
        sequence = str(stream.get("SequenceNumber") or record.get("eventID") or "")
        try:
            found.append((sequence, OrdersTable.change_from_item(stream.get("NewImage") or {})))
        except ValueError as exc:
            logger.error("unreadable order change on the stream", extra={"sequence": sequence, "why": str(exc)})
            unreadable.append(sequence)
    return found, unreadable


def publish(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Publish the changes of one stream batch; the partial batch response Lambda reads."""
    from decline_rescue.infra import events

    found, unreadable = changes(records)
    failed = events.put(
        settings.events().event_bus, [(change.detail_type(), change.event_detail()) for _, change in found]
    )
    for index, error in failed.items():
        logger.error("order event not published", extra={"changeId": found[index][1].change_id, "error": error})
    published = len(found) - len(failed)
    if published:
        metrics.add_metric(name=m.ORDER_EVENTS_PUBLISHED, unit="Count", value=published)
    if failed:
        metrics.add_metric(name=m.ORDER_EVENTS_FAILED, unit="Count", value=len(failed))
    if unreadable:
        metrics.add_metric(name=m.ORDER_EVENT_RECORDS_UNREADABLE, unit="Count", value=len(unreadable))
    failures = unreadable + [found[i][0] for i in sorted(failed)]
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failures]}
