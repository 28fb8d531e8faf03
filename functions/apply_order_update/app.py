"""The order-updates queue (webhooks, polls): the single writer of order status changes.

Partial batch failure: an update that conflicts or cannot publish its event is retried
(and ends in the DLQ after five tries); a malformed message goes to the DLQ at once."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from decline_rescue.lifecycle import handle_message
from decline_rescue.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    return handle_message(record.body, message_id=record.message_id)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
