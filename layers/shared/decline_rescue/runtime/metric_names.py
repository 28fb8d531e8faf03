"""Every metric the functions emit (namespace ``DeclineRescue``, unit Count), by name.
Names are constants, never built at run time: a typo is an AttributeError at import,
not a new metric nobody alarms on (that is how ``OrderCanceld`` shipped once)."""

from __future__ import annotations

from decline_rescue.domain.updates import Result

CAPTURE_CONTEXT_ISSUED = "CaptureContextIssued"
CAPTURE_CONTEXT_VERIFICATION_FAILED = "CaptureContextVerificationFailed"

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
POLL_COUNTS = {name: f"Poll_{name}" for name in ("read", "changed", "expired", "failed", "stopped_early", "resent")}

ORDER_EVENTS_PUBLISHED = "OrderEventsPublished"
ORDER_EVENTS_FAILED = "OrderEventsFailed"
ORDER_EVENT_RECORDS_UNREADABLE = "OrderEventRecordsUnreadable"

DEPENDENCY_FAILURE = "DependencyFailure"
UNEXPECTED_ERROR = "UnexpectedError"
