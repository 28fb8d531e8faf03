"""The poll-work queue: a poll worker reconciles one slice of a pending-index shard with
FlexFactor (webhooks can be lost) and closes expired orders; changes go to the
order-updates queue for the single writer. What it does not reach, it hands on."""

from typing import Any

from decline_rescue.runtime.batch import process_partial_response
from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.services.polling import handle_work


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    def record_handler(record: dict[str, Any]) -> Any:
        return handle_work(record["body"], lambda_context=context)

    return process_partial_response(event, record_handler)


init_done()
