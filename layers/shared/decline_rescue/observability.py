"""Logger, tracer and metrics shared by every function (Powertools).

The logger's formatter redacts card numbers and CVVs from every record, whatever the
caller put in it. Service name, log level, metrics namespace and tracing switches come
from the POWERTOOLS_* environment variables set in the template's Globals.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from decline_rescue.carddata import redact


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with card data removed before serialisation."""

    def serialize(self, log: dict) -> str:
        return super().serialize(redact(log))


logger = Logger(logger_formatter=RedactingFormatter())
tracer = Tracer()
metrics = Metrics()
