"""Order status events on the EventBridge bus, for the merchant's own systems."""

from __future__ import annotations

import json

from decline_rescue.infra.aws import client
from decline_rescue.infra.orders_store import Change
from decline_rescue.runtime.observability import logger, metrics

SOURCE = "decline-rescue"
DETAIL_TYPE = "OrderStatusChanged"
EVENT_DETAIL_TYPES = {"REFUNDED": "OrderRefunded", "CHARGEBACK": "OrderChargebackReceived"}


def detail_type(change: Change) -> str:
    return EVENT_DETAIL_TYPES.get(change.event or "", DETAIL_TYPE) if change.event else DETAIL_TYPE


def publish(bus: str, change: Change) -> bool:
    """One event per applied change (``changeId`` = orderId:version, for consumers that
    deduplicate); a failure is logged and counted, never raised (the change is already
    recorded; the caller keeps it marked for publishing)."""
    detail = {
        "changeId": f"{change.order_id}:{change.version}",
        "orderId": change.order_id,
        "previousStatus": change.previous,
        "status": change.status,
        "version": change.version,
        "source": change.source,
        "time": change.at,
    }
    if change.event:
        detail["event"] = change.event
    if change.detail:
        detail["reason"] = change.detail
    try:
        response = client("events").put_events(
            Entries=[
                {"Source": SOURCE, "DetailType": detail_type(change), "Detail": json.dumps(detail), "EventBusName": bus}
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(response["Entries"][0].get("ErrorCode", "failed"))
    except Exception as exc:  # noqa: BLE001 - an event lost is logged and measured, the write stands
        logger.error("status event not published", extra={"orderId": change.order_id, "error": str(exc)[:200]})
        metrics.add_metric(name="StatusEventPublishFailed", unit="Count", value=1)
        return False
    return True
