"""Every metric the functions emit (namespace ``DeclineRescue``), by name. Names are
constants, never built at run time: a typo is an AttributeError at import, not a new
metric nobody alarms on (that is how ``OrderCanceld`` shipped once).

Two kinds (``runtime.observability``):

- **function-wide** counters (unit Count, dimension ``service`` alone), added to the
  Powertools ``metrics`` of the invocation and printed when the handler ends;
- **recovery metrics** (issue 13), each printed at once as its own EMF record by
  ``observability.emit``, with the dimension sets listed below; every set also carries
  ``service`` and ``Stack`` (the CloudFormation stack, so that two stacks in one account
  never share an alarm's series). Dimension values are bounded (``Path`` CIT or MIT,
  terminal statuses, rule names, ISO currencies, reasons, providers and operations):
  never an order id.

Recovery metrics: name, unit, dimension sets (besides service and Stack), who emits it.

- DeclineReceived, Count, {Path}: the writer, on an order's intake claim (version 1).
- DeclineSubmitted, Count, {Path} and {service}: the writer, when an order leaves intake
  for a FlexFactor status (its /evaluate answer, or a dead claim found at FlexFactor).
- DeclineNotSubmitted, Count, {Path, Rule}, {Path} and {service}: the writer, when an
  order leaves intake NOT_SUBMITTED (the rule: eligibility's, provider_validation,
  invalid_when_dequeued, expired, abandoned, cancelled).
- OrdersResolved, Count, and TimeToResolution, Seconds, {Path, Outcome} and {Path}: the
  writer, when an order reaches APPROVED, DECLINED, CANCELLED or EXPIRED (the change's
  time less the order's ``submittedAt``: when /evaluate was called).
- RescuedAmount, None (the currency's minor units: cents for USD, yen for JPY; never
  converted), {Path, Currency}: the same change, APPROVED: the captured amount, else the
  order's.
- WebhookRejected, Count, {Reason}, {} (the stack) and {service}: ingest_webhook, each
  delivery refused (401: the verifier's reasons, host_not_served, replayed_nonce; 400:
  too_large, invalid_body).
- ProviderLatency, Milliseconds, and ProviderErrors, Count (1 for a call that ended in a
  ``ProviderError``, 0 for one that did not), {Provider, Operation} and {Provider}: each
  provider call (``observability.provider_call``; retries and a token fetch included).
- PollerLag, Seconds, {} (the stack): each poller run, how long the oldest due order had
  been due when the run began (0: none due).

Rescue rate, in CloudWatch metric math (same Path, Stack and period; periods well above
the time to resolution, since an order is rescued after it is submitted):
``100 * FILL(rescued, 0) / submitted`` with ``rescued`` = OrdersResolved{Outcome=APPROVED}
(Sum) and ``submitted`` = DeclineSubmitted (Sum). Of the orders FlexFactor has decided:
``100 * rescued / resolved`` with ``resolved`` = OrdersResolved{Path} (Sum). Provider error
rate: ``100 * Sum / SampleCount`` of ProviderErrors (its Average, in percent).
"""

from __future__ import annotations

from decline_rescue.domain.updates import Result

CAPTURE_CONTEXT_ISSUED = "CaptureContextIssued"
CAPTURE_CONTEXT_VERIFICATION_FAILED = "CaptureContextVerificationFailed"
TRANSIENT_TOKEN_VERIFIED = "TransientTokenVerified"
TRANSIENT_TOKEN_REPLAYED = "TransientTokenReplayed"

DECLINE_SUBMITTED = "DeclineSubmitted"
DECLINE_NOT_SUBMITTED = "DeclineNotSubmitted"
DECLINE_QUEUED = "DeclineQueued"
DECLINE_REFUSED_BY_PROVIDER = "DeclineRefusedByProvider"
DECLINE_MESSAGE_REJECTED = "DeclineMessageRejected"

WEBHOOK_ACCEPTED = "WebhookAccepted"
WEBHOOK_IGNORED = "WebhookIgnored"
WEBHOOK_REJECTED = "WebhookRejected"
WEBHOOK_REDELIVERED = "WebhookRedelivered"

ORDER_UPDATE = {result: f"OrderUpdate_{result.value}" for result in Result}
ORDER_UPDATE_UNTRUSTED = "OrderUpdateUntrusted"
ORDER_UPDATE_UNMATCHED = "OrderUpdateUnmatched"
ORDER_UPDATE_REJECTED = "OrderUpdateRejected"

ORDER_CAPTURED = "OrderCaptured"
ORDER_CANCELLED = "OrderCancelled"
ORDER_CAPTURE_REFUSED = "OrderCaptureRefused"
ORDER_CANCEL_REFUSED = "OrderCancelRefused"
ORDER_REFUNDED = "OrderRefunded"
ORDER_REFUND_REFUSED = "OrderRefundRefused"
ORDER_REFUND_UNCERTAIN = "OrderRefundUncertain"

POLL_UNTRUSTED = "PollUntrusted"
POLL_COUNTS = {
    name: f"Poll_{name}"
    for name in ("read", "changed", "expired", "failed", "stopped_early", "resent", "taken", "handed_on", "deferred")
}
POLLER_BACKING_OFF = "PollerBackingOff"  # the breaker opened, or a dispatch found it open
POLL_WORK_REJECTED = "PollWorkRejected"  # a malformed poll-work message, dropped

ORDER_EVENTS_PUBLISHED = "OrderEventsPublished"
ORDER_EVENTS_FAILED = "OrderEventsFailed"
ORDER_EVENT_RECORDS_UNREADABLE = "OrderEventRecordsUnreadable"

DEPENDENCY_FAILURE = "DependencyFailure"
UNEXPECTED_ERROR = "UnexpectedError"

# -- recovery metrics (issue 13): emitted with ``observability.emit`` ---------------------

DECLINE_RECEIVED = "DeclineReceived"
ORDERS_RESOLVED = "OrdersResolved"
TIME_TO_RESOLUTION = "TimeToResolution"
RESCUED_AMOUNT = "RescuedAmount"
PROVIDER_LATENCY = "ProviderLatency"
PROVIDER_ERRORS = "ProviderErrors"
POLLER_LAG = "PollerLag"

# dimension names
SERVICE = "service"  # Powertools' own (POWERTOOLS_SERVICE_NAME)
STACK = "Stack"  # the stack's name (STACK_NAME, set by the template's Globals)
PATH = "Path"  # CIT or MIT
OUTCOME = "Outcome"  # APPROVED, DECLINED, CANCELLED, EXPIRED
RULE = "Rule"  # the rule that stopped a decline (eligibility, provider_validation, expired, ...)
CURRENCY = "Currency"  # ISO 4217
REASON = "Reason"  # why a webhook delivery was refused
PROVIDER = "Provider"  # flexfactor, cybersource
OPERATION = "Operation"  # token, evaluate, get_order, ... (one per client method)

CIT = "CIT"
MIT = "MIT"

# The dimension sets each recovery metric is emitted with, besides service and Stack (()
# is the stack alone; SERVICE_ALONE, the function-wide set: service without Stack). The
# template's dashboard and alarms may read these series only (tests/unit/test_template.py),
# and the functions print exactly these (tests/integration/test_recovery_metrics.py).
SERVICE_ALONE = ("service",)
DIMENSION_SETS: dict[str, tuple[tuple[str, ...], ...]] = {
    DECLINE_RECEIVED: ((PATH,),),
    DECLINE_SUBMITTED: ((PATH,), SERVICE_ALONE),
    DECLINE_NOT_SUBMITTED: ((PATH, RULE), (PATH,), SERVICE_ALONE),
    ORDERS_RESOLVED: ((PATH, OUTCOME), (PATH,)),
    TIME_TO_RESOLUTION: ((PATH, OUTCOME), (PATH,)),
    RESCUED_AMOUNT: ((PATH, CURRENCY),),
    WEBHOOK_REJECTED: ((REASON,), (), SERVICE_ALONE),
    PROVIDER_LATENCY: ((PROVIDER, OPERATION), (PROVIDER,)),
    PROVIDER_ERRORS: ((PROVIDER, OPERATION), (PROVIDER,)),
    POLLER_LAG: ((),),
}
