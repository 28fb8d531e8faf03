"""The order-updates queue (webhooks, polls): the single writer of order status changes.

Partial batch failure: an update that conflicts or cannot publish its event is retried
(and ends in the DLQ after five tries); a malformed message goes to the DLQ at once.
Batches are answered through ``decline_rescue.runtime.batch`` (Powertools' partial batch
response, without its import on every cold start)."""

from typing import Any

from decline_rescue.runtime.batch import process_partial_response
from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.services.writer import handle_message


def record_handler(record: dict[str, Any]) -> str:
    return handle_message(record["body"], message_id=record["messageId"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event, record_handler)


init_done()
