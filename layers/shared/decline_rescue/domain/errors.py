"""Error types shared by every function.

Domain code raises these; one place (``decline_rescue.runtime.router``) maps them to HTTP answers,
so a handler never decides a status code itself and never answers a bare 500.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one input field: where it is, which rule it broke."""

    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class DeclineRescueError(Exception):
    """Base of every error this project raises on purpose."""

    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.reason:
            error["reason"] = self.reason
        return {"error": error}


class InvalidRequest(DeclineRescueError):
    """The caller's input breaks a rule: 400, naming each field and rule.

    The answer lists at most ``MAX_DETAILS`` problems (a hostile body must not turn into
    a huge answer) and says how many were left out."""

    status_code = 400
    code = "INVALID_REQUEST"
    MAX_DETAILS = 25

    def __init__(self, problems: list[FieldProblem], message: str | None = None) -> None:
        if not problems:
            raise ValueError("InvalidRequest needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        more = len(self.problems) - 1
        summary = f"{first.field}: {first.message}" + (f" (and {more} more problem(s))" if more else "")
        super().__init__(message or summary)

    def body(self) -> dict:
        body = super().body()
        shown = self.problems[: self.MAX_DETAILS]
        body["error"]["details"] = [p.as_dict() for p in shown]
        if len(self.problems) > len(shown):
            body["error"]["omittedDetails"] = len(self.problems) - len(shown)
        return body


class ConfigurationError(DeclineRescueError):
    """The deployment is missing a setting or a secret field: the operator must act."""

    status_code = 503
    code = "CONFIGURATION_ERROR"


class ProviderError(DeclineRescueError):
    """A payment provider did not give a usable answer."""

    status_code = 502
    code = "PROVIDER_ERROR"

    def __init__(self, provider: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.provider = provider

    def body(self) -> dict:
        body = super().body()
        body["error"]["provider"] = self.provider
        return body


class ProviderAuthError(ProviderError):
    """The provider refused our credentials (after one re-read of the secret)."""

    status_code = 502
    code = "PROVIDER_AUTH_FAILED"


class ProviderRejected(ProviderError):
    """The provider refused the request itself (a 4xx other than auth)."""

    status_code = 502
    code = "PROVIDER_REJECTED"


class ProviderUnavailable(ProviderError):
    """The provider is down: connection refused or 5xx after bounded retries."""

    status_code = 503
    code = "PROVIDER_UNAVAILABLE"


class ProviderTimeout(ProviderError):
    """The provider did not answer within the time budget."""

    status_code = 504
    code = "PROVIDER_TIMEOUT"


class CaptureContextUnverified(ProviderError):
    """The capture context the provider returned failed verification."""

    status_code = 502
    code = "CAPTURE_CONTEXT_UNVERIFIED"


class OriginNotAllowed(InvalidRequest):
    """A capture context asked for a page origin the stack's ``CheckoutOrigins`` does not
    list: 422, naming each origin (a page on another origin cannot get a context)."""

    status_code = 422
    code = "ORIGIN_NOT_ALLOWED"


class TransientTokenRejected(DeclineRescueError):
    """A transient token that does not verify against the capture context it came from:
    422; ``reason`` says what failed (signature, expired, wrong_context, ...)."""

    status_code = 422
    code = "TRANSIENT_TOKEN_REJECTED"


class TransientTokenUsed(DeclineRescueError):
    """A transient token verified before: a replay (409)."""

    status_code = 409
    code = "TRANSIENT_TOKEN_USED"
