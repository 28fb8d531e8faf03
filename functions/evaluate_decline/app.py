"""Declined transactions in, FlexFactor evaluations out. Two triggers, one domain path:

- ``POST /declines`` (API key): customer-initiated declines are submitted in the request
  (200 with FlexFactor's status, or NOT_SUBMITTED with the rule that stopped it);
  merchant-initiated ones are recorded QUEUED and put on the declines queue (202).
- The declines queue (SQS): one evaluate payload per message, processed in batches with
  partial batch failure; a message that keeps failing ends in the queue's DLQ.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from decline_rescue.runtime.batch import process_partial_response
from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.runtime.router import Request, Router, response
from decline_rescue.services.declines import handle_api, handle_queued, register_context

router = Router()


@router.post("/declines")
def post_decline(request: Request):
    status, body = handle_api(request.json_body())
    return response(status, body)


def record_handler(record: dict[str, Any]) -> dict:
    message_id = record["messageId"]
    result = handle_queued(record["body"], message_id=message_id)
    logger.info("queued decline processed", extra={"messageId": message_id, "status": result["status"]})
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    register_context(context)
    if isinstance(event, dict) and "Records" in event:
        return process_partial_response(event, record_handler)
    return router.resolve(event, context)


init_done()
