"""The orders table's stream: every applied change of an order, as one event on the bus
(``OrderStatusChanged``, ``OrderRefunded``, ``OrderChargebackReceived``, keyed by
``changeId``). The only function that may put events on the bus."""

from decline_rescue.runtime.coldstart import init_done
from decline_rescue.runtime.observability import logger, metrics, tracer
from decline_rescue.services.order_events import publish


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return publish(event.get("Records") or [])


init_done()
