"""EventBridge Scheduler: reconcile pending orders with FlexFactor (webhooks can be lost)
and close expired ones. Changes go to the order-updates queue for the single writer."""

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.services.polling import run


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return run(lambda_context=context)


init_done()
