"""Settings read from the function's environment (set from template parameters).

Read once per execution environment and cached; ``reset()`` is for tests that change
the environment between cases. (Immutable named tuples, not frozen dataclasses: making
these classes is a few milliseconds of every cold start with dataclasses.)
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import NamedTuple

from decline_rescue.domain.errors import ConfigurationError

DEFAULT_CAPTURE_REQUIRED = ("paymentInformation.card.number",)
DEFAULT_CAPTURE_OPTIONAL = (
    "paymentInformation.card.securityCode",
    "paymentInformation.card.expirationMonth",
    "paymentInformation.card.expirationYear",
    "paymentInformation.card.type",
)


def _csv(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"setting {name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"setting {name} must not be negative")
    return value


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"setting {name} is not set")
    return value


class ProviderCallSettings(NamedTuple):
    """How hard to try one provider: per-attempt timeouts, attempts, total budget."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int
    budget_seconds: float
    backoff_base: float


class CybersourceSettings(NamedTuple):
    base_url: str
    secret_id: str
    calls: ProviderCallSettings
    jwt_leeway_seconds: float
    capture_required_fields: tuple[str, ...]
    capture_optional_fields: tuple[str, ...]
    secret_max_age_seconds: int
    # Microform v2: the page origins a capture context may name (CheckoutOrigins) and the
    # clientVersion asked of /microform/v2/sessions
    checkout_origins: tuple[str, ...] = ()
    microform_client_version: str = "v2.0"


def provider_calls(prefix: str) -> ProviderCallSettings:
    return ProviderCallSettings(
        connect_timeout=_number(f"{prefix}_CONNECT_TIMEOUT_SECONDS", 2.0),
        read_timeout=_number(f"{prefix}_READ_TIMEOUT_SECONDS", 4.0),
        max_attempts=max(1, int(_number(f"{prefix}_MAX_ATTEMPTS", 3))),
        budget_seconds=_number(f"{prefix}_BUDGET_SECONDS", 8.0),
        backoff_base=_number(f"{prefix}_BACKOFF_SECONDS", 0.2),
    )


@lru_cache(maxsize=1)
def cybersource() -> CybersourceSettings:
    return CybersourceSettings(
        base_url=_required("CYBERSOURCE_BASE_URL").rstrip("/"),
        secret_id=_required("CYBERSOURCE_SECRET_ID"),
        calls=provider_calls("CYBERSOURCE"),
        jwt_leeway_seconds=_number("CAPTURE_CONTEXT_LEEWAY_SECONDS", 30.0),
        capture_required_fields=_csv(os.environ.get("CAPTURE_REQUIRED_FIELDS"), DEFAULT_CAPTURE_REQUIRED),
        capture_optional_fields=_csv(os.environ.get("CAPTURE_OPTIONAL_FIELDS"), DEFAULT_CAPTURE_OPTIONAL),
        secret_max_age_seconds=int(_number("SECRET_MAX_AGE_SECONDS", 300)),
        checkout_origins=_csv(os.environ.get("CHECKOUT_ORIGINS"), ()),
        microform_client_version=(os.environ.get("MICROFORM_CLIENT_VERSION") or "v2.0").strip(),
    )


class FlexFactorSettings(NamedTuple):
    base_url: str
    secret_id: str
    calls: ProviderCallSettings
    secret_max_age_seconds: int


class SecretRef(NamedTuple):
    secret_id: str
    secret_max_age_seconds: int


@lru_cache(maxsize=1)
def flexfactor_secret() -> SecretRef:
    """The FlexFactor secret alone (the webhook function calls no FlexFactor API)."""
    return SecretRef(_required("FLEXFACTOR_SECRET_ID"), int(_number("SECRET_MAX_AGE_SECONDS", 300)))


@lru_cache(maxsize=1)
def flexfactor() -> FlexFactorSettings:
    return FlexFactorSettings(
        base_url=_required("FLEXFACTOR_BASE_URL").rstrip("/"),
        secret_id=_required("FLEXFACTOR_SECRET_ID"),
        calls=provider_calls("FLEXFACTOR"),
        secret_max_age_seconds=int(_number("SECRET_MAX_AGE_SECONDS", 300)),
    )


class DeclineSettings(NamedTuple):
    orders_table: str
    declines_queue_url: str
    declines_dlq_url: str
    allow_card_numbers: bool
    amount_min_exclusive: int
    amount_max_exclusive: int
    mit_max_age_hours: float


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


@lru_cache(maxsize=1)
def declines() -> DeclineSettings:
    return DeclineSettings(
        orders_table=_required("ORDERS_TABLE"),
        declines_queue_url=os.environ.get("DECLINES_QUEUE_URL", ""),
        declines_dlq_url=os.environ.get("DECLINES_DLQ_URL", ""),
        allow_card_numbers=_flag("ALLOW_CARD_NUMBERS"),
        amount_min_exclusive=int(_number("AMOUNT_MIN_EXCLUSIVE_CENTS", 0)),
        amount_max_exclusive=int(_number("AMOUNT_MAX_EXCLUSIVE_CENTS", 20000)),
        mit_max_age_hours=_number("MIT_MAX_AGE_HOURS", 24),
    )


class LifecycleSettings(NamedTuple):
    """Webhooks, polling and the single writer (each function sets what it uses)."""

    orders_table: str
    updates_queue_url: str
    updates_dlq_url: str
    webhook_max_skew_seconds: int
    poll_first_delay_seconds: float
    poll_max_interval_seconds: float
    poll_concurrency: int
    expiry_grace_seconds: float
    pending_max_hours: float
    abandon_after_seconds: float
    queued_resend_seconds: float
    declines_queue_url: str
    # the poll-work queue (the dispatcher puts work items on it; workers hand the rest on)
    poll_work_queue_url: str = ""
    # a work item's page of due orders (one index read), its time budget, and the
    # breaker's first opening (doubled per opening in a row)
    poll_page_size: int = 1000
    poll_work_budget_seconds: float = 50.0
    poll_breaker_seconds: float = 30.0
    # hosts the webhook may be signed for besides the one API Gateway served it on
    # (custom domains): WEBHOOK_HOSTS, comma-separated
    webhook_hosts: tuple[str, ...] = ()

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"setting {name} is not set for this function")
        return value


@lru_cache(maxsize=1)
def lifecycle() -> LifecycleSettings:
    return LifecycleSettings(
        orders_table=_required("ORDERS_TABLE"),
        updates_queue_url=os.environ.get("ORDER_UPDATES_QUEUE_URL", ""),
        updates_dlq_url=os.environ.get("ORDER_UPDATES_DLQ_URL", ""),
        webhook_max_skew_seconds=int(_number("WEBHOOK_MAX_SKEW_SECONDS", 300)),
        poll_first_delay_seconds=_number("POLL_FIRST_DELAY_SECONDS", 120),
        poll_max_interval_seconds=max(1.0, _number("POLL_MAX_INTERVAL_SECONDS", 3600)),
        poll_concurrency=max(1, int(_number("POLL_CONCURRENCY", 16))),
        expiry_grace_seconds=_number("EXPIRY_GRACE_SECONDS", 900),
        pending_max_hours=_number("PENDING_MAX_HOURS", 72),
        abandon_after_seconds=_number("ABANDON_AFTER_SECONDS", 3600),
        queued_resend_seconds=_number("QUEUED_RESEND_SECONDS", 600),
        declines_queue_url=os.environ.get("DECLINES_QUEUE_URL", ""),
        poll_work_queue_url=os.environ.get("POLL_WORK_QUEUE_URL", ""),
        poll_page_size=min(max(1, int(_number("POLL_PAGE_SIZE", 1000))), 1000),
        poll_work_budget_seconds=max(1.0, _number("POLL_WORK_BUDGET_SECONDS", 50.0)),
        poll_breaker_seconds=max(1.0, _number("POLL_BREAKER_SECONDS", 30.0)),
        webhook_hosts=tuple(h.strip().lower() for h in os.environ.get("WEBHOOK_HOSTS", "").split(",") if h.strip()),
    )


class EventSettings(NamedTuple):
    """The order-events publisher (the table's stream -> the bus)."""

    event_bus: str


@lru_cache(maxsize=1)
def events() -> EventSettings:
    return EventSettings(event_bus=_required("EVENT_BUS_NAME"))


def idempotency_ttl_seconds() -> int:
    """How long a decline's idempotencyKey names its order (a repeat after that with
    another orderId is a new decline)."""
    return int(_number("IDEMPOTENCY_TTL_SECONDS", 7 * 24 * 3600))


MIN_PENDING_SHARDS = 8  # the count every stack started with: never fewer


@lru_cache(maxsize=1)
def pending_shards() -> int:
    """The pending index's shard count (``PENDING_SHARDS``, the PendingShards parameter):
    new pending orders spread over this many shards; the dispatcher reads them all. It
    may grow (an order written under the old count stays in a shard that is still read);
    a count below ``MIN_PENDING_SHARDS`` or not a whole number is a configuration error."""
    raw = os.environ.get("PENDING_SHARDS", "").strip() or str(MIN_PENDING_SHARDS)
    if not raw.isdigit() or not MIN_PENDING_SHARDS <= int(raw) <= 1024:
        raise ConfigurationError(
            f"PENDING_SHARDS must be a whole number from {MIN_PENDING_SHARDS} to 1024, not {raw!r}"
        )
    return int(raw)


def orders_table() -> str:
    """The orders table, which every function but the capture-context one uses."""
    return _required("ORDERS_TABLE")


def reset() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    cybersource.cache_clear()
    flexfactor.cache_clear()
    pending_shards.cache_clear()
    flexfactor_secret.cache_clear()
    declines.cache_clear()
    lifecycle.cache_clear()
    events.cache_clear()
