"""Decline evaluation: one domain path for the API (customer- and merchant-initiated)
and the declines queue (merchant-initiated, from billing systems or the API).

``submit`` validates nothing itself: it takes an ``EvaluateRequest`` and
1. refuses an orderId already used by another request (409);
2. decides eligibility from the data-driven rules and the card's reattempt counters;
   an ineligible decline is recorded ``NOT_SUBMITTED`` with the rule, no provider call;
3. submits to FlexFactor (retries reuse the same idempotencyKey) and records the answer;
4. publishes one status event per change.
It is idempotent on ``idempotencyKey`` (Powertools idempotency, DynamoDB): a repeat
returns the first answer without a second provider call; the same key with another
payload is refused (409). A failure before the answer is recorded leaves no idempotency
record behind, so the caller's retry (or the queue's redelivery) runs it again.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from decline_rescue.domain import eligibility
from decline_rescue.domain.contract import EvaluateRequest, validate_request
from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.providers.flexfactor.client import ProviderValidationFailed
from decline_rescue.runtime import settings
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer as lifecycle

QUEUED = lifecycle.QUEUED
RECEIVED = lifecycle.RECEIVED
NOT_SUBMITTED = lifecycle.NOT_SUBMITTED
IN_FLIGHT = lifecycle.INTAKE  # written by this request, not yet decided


class IdempotencyConflict(DeclineRescueError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_REUSED"


class RequestInProgress(DeclineRescueError):
    status_code = 409
    code = "REQUEST_IN_PROGRESS"


# -- wiring (cached per execution environment) -----------------------------------------


@lru_cache(maxsize=1)
def orders():
    from decline_rescue.infra.orders_store import OrdersTable

    return OrdersTable(settings.declines().orders_table)


def flexfactor():
    from decline_rescue.runtime.wiring import flexfactor as client

    return client()


def merchant_defaults() -> dict[str, str]:
    """mid and siteId from the FlexFactor secret, for requests that do not carry them."""
    from decline_rescue.infra.secrets import json_secret

    cfg = settings.flexfactor()
    raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds)
    return {k: str(raw[s]) for k, s in (("mid", "mid"), ("siteId", "siteId")) if raw.get(s)}


@lru_cache(maxsize=1)
def _idempotency():
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    from decline_rescue.infra.aws import client

    cfg = settings.declines()
    store = DynamoDBPersistenceLayer(table_name=cfg.idempotency_table, boto3_client=client("dynamodb"))
    config = IdempotencyConfig(
        event_key_jmespath="idempotencyKey",
        payload_validation_jmespath="fingerprint",
        expires_after_seconds=cfg.idempotency_ttl_seconds,
        raise_on_no_idempotency_key=True,
    )
    return store, config


def reset() -> None:
    """Drop what an execution environment caches (tests change settings between cases)."""
    from decline_rescue.runtime import wiring as clients

    clients.reset()
    orders.cache_clear()
    _idempotency.cache_clear()


_lambda_context: Any = None


def register_context(context: Any) -> None:
    """Let in-progress idempotency records expire with the invocation (a crash mid-way
    must not block the caller's retry until the record's TTL), and bound every
    provider call by the time the invocation has left."""
    global _lambda_context
    _lambda_context = context
    _idempotency()[1].register_lambda_context(context)


def _idempotent(prefix: str, request: EvaluateRequest, work) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    store, config = _idempotency()

    @idempotent_function(data_keyword_argument="key", persistence_store=store, config=config, key_prefix=prefix)
    def run(key: dict[str, str]) -> dict[str, Any]:
        return work()

    try:
        return run(key={"idempotencyKey": request.idempotency_key, "fingerprint": request.fingerprint()})
    except IdempotencyValidationError:
        raise IdempotencyConflict(
            "idempotencyKey was used before with a different payload; use a new key for a new decline"
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise RequestInProgress("a request with this idempotencyKey is being processed; retry shortly") from None


# -- the domain path -------------------------------------------------------------------


def parse(raw: Any) -> EvaluateRequest:
    """Validate a decline, filling mid and siteId from configuration when absent."""
    cfg = settings.declines()
    if isinstance(raw, dict) and not (raw.get("mid") and raw.get("siteId")):
        raw = {**merchant_defaults(), **{k: v for k, v in raw.items() if v not in (None, "")}}
    return validate_request(raw, allow_card_numbers=cfg.allow_card_numbers)


def _answer(order_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"orderId": order_id, "status": status, **extra}


def _publish(change) -> None:
    """One event per change a merchant cares about (RECEIVED is internal bookkeeping)."""
    from decline_rescue.infra import events as bus

    if change.status != RECEIVED:
        bus.publish(settings.declines().event_bus, change)


def submit(request: EvaluateRequest, *, source: str) -> dict[str, Any]:
    """Evaluate and, if eligible, submit one decline; idempotent on idempotencyKey; all
    provider calls within one budget that also ends before the Lambda timeout."""
    with within(settings.flexfactor().calls.budget_seconds, lambda_context=_lambda_context):
        return _idempotent("submit", request, lambda: _submit(request, source))


def _submit(request: EvaluateRequest, source: str) -> dict[str, Any]:
    cfg = settings.declines()
    table = orders()
    now = datetime.now(UTC)
    order_id = request.order_id
    existing = _claim(table, request, source)
    if existing["status"] not in IN_FLIGHT:
        # this very request was decided before (its idempotency record was lost to a crash
        # or expired): the order is the answer, and the provider is not asked again
        return _answer_from(existing)

    card = eligibility.card_key(request)
    counts = table.count_attempts(card, eligibility.budget_windows(), now.date())
    decision = eligibility.decide(
        request,
        limits=eligibility.Limits(cfg.amount_min_exclusive, cfg.amount_max_exclusive, cfg.mit_max_age_hours),
        now=now,
        attempts_in=counts,
    )
    if not decision.eligible:
        _record(request, existing, NOT_SUBMITTED, source, detail=decision.reason())
        metrics.add_metric(name="DeclineNotSubmitted", unit="Count", value=1)
        logger.info("decline not submitted", extra={"orderId": order_id, "rule": decision.rule})
        return _answer(order_id, NOT_SUBMITTED, submitted=False, reason=decision.reason())

    try:
        answer = flexfactor().evaluate(request.to_provider())
    except ProviderValidationFailed as exc:
        if source != "queue":
            raise  # the caller is there to fix the request
        # nobody waits on a queued decline: record why FlexFactor refused it, end the message
        reason = {
            "rule": "provider_validation",
            "detail": exc.message,
            "errors": [p.as_dict() for p in exc.problems[:25]],
        }
        _record(request, existing, NOT_SUBMITTED, source, detail=reason)
        metrics.add_metric(name="DeclineRefusedByProvider", unit="Count", value=1)
        return _answer(order_id, NOT_SUBMITTED, submitted=False, reason=reason)
    # the card's reattempt goes in the transaction that records the answer (one request
    # less); on its own when that transaction is not the one that wrote the answer (a
    # webhook got there first) or failed, so that an attempt FlexFactor saw always counts
    attempt = table.attempt_item(card, now.date(), request.idempotency_key)
    try:
        status, written = _record(
            request,
            existing,
            answer.status,
            source,
            session_key=answer.order_session_key,
            fields={"senseKey": answer.sense_key},
            also_put=[attempt],
        )
    except Exception:
        with contextlib.suppress(Exception):  # the failure that matters is the one raised
            table.record_attempt(card, now.date(), request.idempotency_key)
        raise
    if not written:
        table.record_attempt(card, now.date(), request.idempotency_key)
    metrics.add_metric(name="DeclineSubmitted", unit="Count", value=1)
    logger.info("decline submitted", extra={"orderId": order_id, "status": status})
    return _answer(order_id, status, orderSessionKey=answer.order_session_key, submitted=True)


def _claim(table, request: EvaluateRequest, source: str) -> dict[str, Any]:
    """The order this request works on: claimed now (RECEIVED, version 1), or the one it
    wrote before. The orderId is claimed before anything else: a concurrent request for
    the same order under another key stops here (409) instead of reaching the provider
    too (on the pending index: if this request dies before the answer is recorded, the
    poller finds FlexFactor's order, or closes the claim when there is none).

    A request from the API claims first and reads only when the order exists (its orderId
    is new but for a retry whose idempotency record was lost: one request saved on every
    checkout); a queued decline reads first (one accepted through the API has its QUEUED
    order already)."""
    from decline_rescue.infra.orders_store import OrderConflict

    if source == "queue":
        existing = _own_order(table, request)
        if existing is not None:
            return existing
    try:
        claimed = table.create(
            request.safe_summary(), status=RECEIVED, source=source, next_poll_at=lifecycle.first_poll_at(RECEIVED)
        )
    except OrderConflict:
        if source == "queue":
            raise  # written since it was read: the message is redelivered and reads it then
        existing = _own_order(table, request)
        if existing is None:
            raise
        return existing
    return {"orderId": request.order_id, "status": claimed.status, "version": claimed.version}


def _own_order(table, request: EvaluateRequest) -> dict[str, Any] | None:
    """The order of this request, if written before; 409 if the orderId belongs to another."""
    existing = table.get_state(request.order_id)
    if existing is not None and existing.get("idempotencyKey") != request.idempotency_key:
        from decline_rescue.infra.orders_store import OrderConflict

        raise OrderConflict(f"orderId {request.order_id} was submitted before with another idempotencyKey")
    return existing


def _answer_from(order: dict[str, Any]) -> dict[str, Any]:
    status = order["status"]
    if status == NOT_SUBMITTED:
        return _answer(order["orderId"], status, submitted=False, reason=order.get("reason"))
    if status == QUEUED:
        return _answer(order["orderId"], status, submitted=False)
    return _answer(order["orderId"], status, orderSessionKey=order.get("orderSessionKey"), submitted=True)


def _record(
    request: EvaluateRequest,
    existing: dict[str, Any],
    status: str,
    source: str,
    *,
    session_key: str | None = None,
    fields: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    also_put: list[dict[str, Any]] | None = None,
) -> tuple[str, bool]:
    """Record the outcome through the single writer: the order's status afterwards (a
    webhook may have moved it further while FlexFactor was answering us), and whether
    this update was applied (``also_put`` was written with it only then)."""
    update = lifecycle.OrderUpdate(
        updateId=f"{source}:{request.idempotency_key}",
        source=source,
        orderId=request.order_id,
        orderSessionKey=session_key,
        status=status,
        providerStatus=status if session_key else None,
        reason=detail,
    )
    outcome = lifecycle.apply(update, state=existing, fields=fields, strict_publish=False, also_put=also_put)
    return outcome.status or status, outcome.result == "applied"


def accept(request: EvaluateRequest) -> dict[str, Any]:
    """A merchant-initiated decline from the API: recorded QUEUED and put on the queue."""
    return _idempotent("accept", request, lambda: _accept(request))


def _accept(request: EvaluateRequest) -> dict[str, Any]:
    from decline_rescue.infra.aws import client

    cfg = settings.declines()
    table = orders()
    existing = _own_order(table, request)
    if existing is not None and existing["status"] not in IN_FLIGHT:
        return _answer_from(existing)
    change = None
    if existing is None:
        change = table.create(request.safe_summary(), status=QUEUED, source="api")
    # (an order already QUEUED by this request means its send failed before: send again;
    # the consumer is idempotent on the key, so a duplicate message costs nothing)
    client("sqs").send_message(
        QueueUrl=cfg.declines_queue_url,
        MessageBody=json.dumps(request.to_provider(), separators=(",", ":")),
        MessageAttributes={"orderId": {"DataType": "String", "StringValue": request.order_id}},
    )
    if change is not None:
        _publish(change)
    metrics.add_metric(name="DeclineQueued", unit="Count", value=1)
    return _answer(request.order_id, QUEUED, submitted=False)


def carries_card_data(request: EvaluateRequest) -> bool:
    """A card number (anywhere) or a CVV: only possible when card numbers are allowed."""
    from decline_rescue.domain.carddata import is_pan
    from decline_rescue.domain.contract import pan_paths

    pm = request.paymentMethod
    return is_pan(pm.cardNumber) or bool(pm.verificationValue) or bool(pan_paths(request.to_provider()))


def handle_api(raw: Any) -> tuple[int, dict[str, Any]]:
    """POST /declines: (HTTP status, body)."""
    request = parse(raw)
    if request.is_mit and not carries_card_data(request):
        return 202, accept(request)
    # customer-initiated, or an MIT carrying card data (card numbers allowed), which is
    # submitted in the request so that a card number or CVV never waits in a queue
    return 200, submit(request, source="api")


def handle_queued(body: str, *, message_id: str = "") -> dict[str, Any]:
    """One declines-queue message (an evaluate payload). A message that can never
    succeed (invalid) goes to the DLQ at once, card data redacted, instead of being
    retried; transient failures raise, so the queue redelivers the message."""
    from decline_rescue.domain.errors import FieldProblem, InvalidRequest

    try:
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON")]) from None
        request = parse(raw)
    except InvalidRequest as exc:
        _dead_letter(body, exc, message_id)
        return {"status": "REJECTED", "error": exc.body()["error"]}
    return submit(request, source="queue")


def _dead_letter(body: str, exc, message_id: str) -> None:
    from decline_rescue.domain.carddata import redact
    from decline_rescue.infra.aws import client

    try:
        payload: Any = redact(json.loads(body))
    except (ValueError, RecursionError):
        payload = redact(body[:4096])
    client("sqs").send_message(
        QueueUrl=settings.declines().declines_dlq_url,
        MessageBody=json.dumps({"rejected": payload, "error": redact(exc.body()["error"])}, separators=(",", ":")),
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": "invalid"},
            "sourceMessageId": {"DataType": "String", "StringValue": message_id or "unknown"},
        },
    )
    metrics.add_metric(name="DeclineMessageRejected", unit="Count", value=1)
    logger.warning("queued decline rejected", extra={"messageId": message_id, "problems": len(exc.problems)})


def get_order(order_id: str) -> dict[str, Any] | None:
    return lifecycle.get_order(order_id)
