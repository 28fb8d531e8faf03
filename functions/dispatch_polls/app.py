"""EventBridge Scheduler: the poller's dispatcher. One work item per pending-index shard on
the poll-work queue, for the poll workers (poll_orders) to reconcile in parallel."""

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.services.polling import dispatch


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return dispatch()


init_done()
