"""Declined transactions in, FlexFactor evaluations out. Two triggers, one domain path:

- ``POST /declines`` (API key): customer-initiated declines are submitted in the request
  (200 with FlexFactor's status, or NOT_SUBMITTED with the rule that stopped it);
  merchant-initiated ones are recorded QUEUED and put on the declines queue (202).
- The declines queue (SQS): one evaluate payload per message, processed in batches with
  partial batch failure; a message that keeps failing ends in the queue's DLQ.
"""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from decline_rescue.api import json_body, json_response, make_resolver
from decline_rescue.declines import handle_api, handle_queued, register_context
from decline_rescue.observability import logger, metrics, tracer

app = make_resolver()
processor = BatchProcessor(event_type=EventType.SQS)


@app.post("/declines")
def post_decline():
    status, body = handle_api(json_body(app))
    return json_response(status, body)


def record_handler(record: SQSRecord) -> dict:
    result = handle_queued(record.body, message_id=record.message_id)
    logger.info("queued decline processed", extra={"messageId": record.message_id, "status": result["status"]})
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    register_context(context)
    if isinstance(event, dict) and "Records" in event:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    return app.resolve(event, context)
