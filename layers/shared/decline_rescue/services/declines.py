"""Decline evaluation: one domain path for the API (customer- and merchant-initiated)
and the declines queue (merchant-initiated, from billing systems or the API).

``submit`` validates nothing itself: it takes an ``EvaluateRequest`` and
1. refuses an orderId already used by another request (409);
2. decides eligibility from the data-driven rules and the card's reattempt counters;
   an ineligible decline is recorded ``NOT_SUBMITTED`` with the rule, no provider call;
3. submits to FlexFactor (retries reuse the same idempotencyKey) and records the answer.
Every write of the order goes through the single writer (``services.writer``); its events
come from the table's stream.
Idempotency lives in the orders table, one key space for the API and the queue,
customer- and merchant-initiated alike: the intake claim takes the ``idempotencyKey``
(``IDEM#<key>``) in the same transaction as the order, with the request's fingerprint and
a lease until the invocation ends. A repeat answers the first answer (stored with the
order) without a second provider call; the same key with another payload, or for another
order, is refused (409 ``IDEMPOTENCY_KEY_REUSED``); a repeat while the first is at work
is 409 ``REQUEST_IN_PROGRESS``. A request that fails gives its lease back, and one that
dies leaves a lease that lapses with its invocation: the retry (or the redelivery) takes
the order over and goes on, with the same key towards FlexFactor. (Powertools'
idempotency did this in a table of its own, two more requests per decline;
``tests/integration/test_idempotency_parity.py`` holds the two to the same behaviour.)
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from decline_rescue.domain import eligibility
from decline_rescue.domain import statuses as st
from decline_rescue.domain.clock import iso
from decline_rescue.domain.contract import EvaluateRequest, validate_request
from decline_rescue.domain.errors import DeclineRescueError
from decline_rescue.domain.updates import ADOPTABLE, ANSWER, FINGERPRINT, QUEUED_MESSAGE, OrderUpdate, Result
from decline_rescue.providers.flexfactor.client import ProviderValidationFailed
from decline_rescue.runtime import metric_names as m
from decline_rescue.runtime import settings, wiring
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.services import writer

QUEUED = st.QUEUED
RECEIVED = st.RECEIVED
NOT_SUBMITTED = st.NOT_SUBMITTED
IN_FLIGHT = st.INTAKE  # written by this request, not yet decided


class IdempotencyConflict(DeclineRescueError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_REUSED"


class OrderIdTaken(DeclineRescueError):
    """The orderId names another decline (another idempotencyKey): 409."""

    status_code = 409
    code = "ORDER_CONFLICT"


class RequestInProgress(DeclineRescueError):
    status_code = 409
    code = "REQUEST_IN_PROGRESS"


# -- idempotency: the claim, its key and its lease ------------------------------------


_lambda_context: Any = None


def register_context(context: Any) -> None:
    """Leases end with the invocation (a crash mid-way must not block the caller's retry
    for long), and every provider call is bounded by the time the invocation has left."""
    global _lambda_context
    _lambda_context = context


def _lease_until() -> int:
    """This request's lease (``writer.lease_until``): a request that dies leaves one that
    lapses soon, and its retry, or the queue's redelivery, goes on (FlexFactor answers a
    repeated key with the same order)."""
    return writer.lease_until(_lambda_context)


def _intake(
    request: EvaluateRequest,
    *,
    status: str,
    source: str,
    fields: dict[str, Any] | None = None,
    reservation: dict[str, Any] | None = None,
    message: str | None = None,
):
    """(the order, whether this request claimed it now). The claim writes the order at
    ``status`` with its key, fingerprint, (RECEIVED) a lease and the card's
    ``reservation``, in one transaction; when it exists: this request's order as it is,
    or 409 when the orderId or the key belongs to another request. ``message``: the
    queued message being worked on; the very message its QUEUED order was accepted with
    is that order's, whatever the fingerprint (a fingerprint made by an earlier version
    of this code must not strand a queued decline)."""
    from decline_rescue.infra.orders_store import ClaimRefused

    table = wiring.orders()
    fingerprint = request.fingerprint()
    existing = table.get_state(request.order_id) if source == "queue" else None  # queued: often accepted already
    if existing is None:
        claim = {**(fields or {}), FINGERPRINT: fingerprint}
        if status == RECEIVED:
            claim["leaseUntil"] = _lease_until()
        try:
            writer.create(
                request.safe_summary(),
                status=status,
                source=source,
                fields=claim,
                idempotency_key=request.idempotency_key,
                reservation=reservation,
            )
            if reservation:
                claim["reservation"] = {"card": reservation["card"], "day": reservation["day"]}
            return {"orderId": request.order_id, "status": status, "version": 1, **claim}, True
        except ClaimRefused as refused:
            existing = table.get_state(request.order_id) if refused.order_exists else None
            if existing is None or existing.get("idempotencyKey") != request.idempotency_key:
                if refused.key_taken:
                    raise _key_reused() from None
                raise OrderIdTaken(
                    f"orderId {request.order_id} was submitted before with another idempotencyKey"
                ) from None
    elif existing.get("idempotencyKey") != request.idempotency_key:
        raise OrderIdTaken(f"orderId {request.order_id} was submitted before with another idempotencyKey")
    ours = message is not None and existing.get(QUEUED_MESSAGE) == message  # the very message we queued
    if existing.get(FINGERPRINT) not in (fingerprint, ADOPTABLE) and not ours:
        raise _key_reused()
    return existing, False


def _key_reused() -> IdempotencyConflict:
    return IdempotencyConflict(
        "idempotencyKey was used before with a different payload; use a new key for a new decline"
    )


def _take_over(request: EvaluateRequest, order: dict[str, Any], reservation: dict[str, Any] | None) -> dict[str, Any]:
    """Work on an order claimed before (QUEUED by the API, or RECEIVED by a request that
    died or failed): only when no live lease holds it, else 409 REQUEST_IN_PROGRESS;
    reserving the card's reattempt with the lease when the order holds none."""
    lease = _lease_until()
    if not writer.take_lease(
        request.order_id,
        version=int(order["version"]),
        status=order["status"],
        until_ms=lease,
        reservation=reservation,
    ):
        raise RequestInProgress("a request with this idempotencyKey is being processed; retry shortly")
    taken = {**order, "leaseUntil": lease}
    if reservation:
        taken["reservation"] = {"card": reservation["card"], "day": reservation["day"]}
    return taken


# -- the card's reattempt budget -------------------------------------------------------

RESERVE_TRIES = 6  # a card's counter moved under this many reads in a row: 409 CARD_BUSY


def _budget(request: EvaluateRequest, now: datetime) -> eligibility.Budget:
    card = eligibility.card_key(request)
    days, cap = wiring.orders().card_days(card, now.date(), max(eligibility.budget_windows()))
    return eligibility.Budget(card, eligibility.network(request), now.date(), days, cap)


def _decide(request: EvaluateRequest, budget: eligibility.Budget, now: datetime) -> eligibility.Decision:
    cfg = settings.declines()
    return eligibility.decide(
        request,
        limits=eligibility.Limits(cfg.amount_min_exclusive, cfg.amount_max_exclusive, cfg.mit_max_age_hours),
        now=now,
        attempts_in=budget.attempts_in(),
    )


def _reservation(budget: eligibility.Budget) -> dict[str, Any]:
    """One reattempt on today's counter: within the cap it was made with, or made now."""
    cap = budget.today_cap if budget.today_cap is not None else budget.cap()
    return {"card": budget.card, "day": budget.today.isoformat(), "cap": cap, "exists": budget.today_cap is not None}


# -- the domain path -------------------------------------------------------------------


def parse(raw: Any) -> EvaluateRequest:
    """Validate a decline, filling mid and siteId from configuration when absent."""
    cfg = settings.declines()
    if isinstance(raw, dict):
        raw = _with_merchant(raw)
    request = validate_request(raw, allow_card_numbers=cfg.allow_card_numbers)
    dropped = request.dropped_fields()
    if dropped:  # (field paths only: never their values)
        logger.info("fields outside the contract dropped", extra={"fields": dropped[:25]})
    return request


def _with_merchant(raw: dict[str, Any]) -> dict[str, Any]:
    """``mid`` and ``siteId`` from the FlexFactor secret where the body lacks them (keys
    read case-insensitively, as the contract binds them: ``SiteId`` is siteId)."""
    sent = {key.lower(): key for key in raw if isinstance(key, str)}

    def has(name: str) -> bool:
        return raw.get(sent.get(name.lower(), name)) not in (None, "")

    if has("mid") and has("siteId"):
        return raw
    fill = {name: value for name, value in wiring.flexfactor_merchant().items() if not has(name)}
    kept = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.lower() in {n.lower() for n in fill})}
    return {**fill, **kept}


def _answer(order_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"orderId": order_id, "status": status, **extra}


def submit(request: EvaluateRequest, *, source: str, message: str | None = None) -> dict[str, Any]:
    """Evaluate and, if eligible, submit one decline; idempotent on idempotencyKey; all
    provider calls within one budget that also ends before the Lambda timeout.

    The decision comes first, from the card's reservations as read; an eligible decline
    reserves one in the claim's transaction, under the condition that the card's counter
    still has room: when another request took it meanwhile, the counter is read again and
    the decision made again (so N concurrent declines for one card never exceed its
    budget: the ones past it end NOT_SUBMITTED)."""
    from decline_rescue.infra.orders_store import ReservationRefused

    with within(settings.flexfactor().calls.budget_seconds, lambda_context=_lambda_context):
        now = datetime.now(UTC)
        for _ in range(RESERVE_TRIES):
            budget = _budget(request, now)
            decision = _decide(request, budget, now)
            reservation = _reservation(budget) if decision.eligible else None
            try:
                order, claimed = _intake(
                    request, status=RECEIVED, source=source, reservation=reservation, message=message
                )
                if not claimed:
                    if order["status"] not in IN_FLIGHT:
                        return _answer_from(order)  # decided before: the first answer, no provider call
                    held = order.get("reservation")
                    if isinstance(held, dict):  # it holds a reattempt already: decide without it
                        decision = _decide(request, budget.without(str(held.get("day"))), now)
                        reservation = None
                    order = _take_over(request, order, reservation if decision.eligible else None)
            except ReservationRefused:
                continue  # the card's counter moved: read it again, decide again
            break
        else:
            raise ReservationRefused("this card is being reattempted by many requests at once; retry shortly")
        try:
            return _submit(request, source, order, decision)
        except Exception:
            with contextlib.suppress(Exception):  # the failure that matters is the one raised
                writer.release_lease(request.order_id, until_ms=int(order["leaseUntil"]))
            raise


def _submit(
    request: EvaluateRequest, source: str, existing: dict[str, Any], decision: eligibility.Decision
) -> dict[str, Any]:
    order_id = request.order_id
    if not decision.eligible:
        answer = _answer(order_id, NOT_SUBMITTED, submitted=False, reason=decision.reason())
        _record(request, existing, NOT_SUBMITTED, source, detail=decision.reason(), answer=answer)
        # (DeclineNotSubmitted, like every step of the funnel, is counted by the writer)
        logger.info("decline not submitted", extra={"orderId": order_id, "rule": decision.rule})
        return answer

    submitted_at = iso()  # time to resolution runs from here (services.writer)
    try:
        answer = wiring.flexfactor().evaluate(request.to_provider())
    except ProviderValidationFailed as exc:
        if source != "queue":
            # the caller is there to fix the request: FlexFactor created nothing, so the
            # reattempt is given back and a corrected retry under the same key may take
            # this claim (as the key's first use)
            writer.adoptable(order_id, version=int(existing["version"]), reservation=existing.get("reservation"))
            raise
        # nobody waits on a queued decline: record why FlexFactor refused it, end the message
        reason = {
            "rule": "provider_validation",
            "detail": exc.message,
            "errors": [p.as_dict() for p in exc.problems[:25]],
        }
        answer = _answer(order_id, NOT_SUBMITTED, submitted=False, reason=reason)
        _record(request, existing, NOT_SUBMITTED, source, detail=reason, answer=answer)
        metrics.add_metric(name=m.DECLINE_REFUSED_BY_PROVIDER, unit="Count", value=1)
        return answer
    # (a call that failed otherwise may have reached FlexFactor: the reservation stays with
    # the claim, which the caller's retry goes on with, and is given back if the claim is
    # closed NOT_SUBMITTED)
    reply = _answer(order_id, answer.status, orderSessionKey=answer.order_session_key, submitted=True)
    status, _ = _record(
        request,
        existing,
        answer.status,
        source,
        session_key=answer.order_session_key,
        fields={"senseKey": answer.sense_key, writer.SUBMITTED_AT: submitted_at},
        answer=reply,
    )
    logger.info("decline submitted", extra={"orderId": order_id, "status": status})
    return _answer(order_id, status, orderSessionKey=answer.order_session_key, submitted=True)


def _answer_from(order: dict[str, Any]) -> dict[str, Any]:
    """The answer a repeat gets: the first answer, as stored with the order when it was
    decided (or, for an order decided by another source first, as the order says)."""
    if isinstance(order.get(ANSWER), dict):
        return order[ANSWER]
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
    answer: dict[str, Any],
) -> tuple[str, bool]:
    """Record the outcome through the single writer, with the answer a repeat gets and
    the request's summary: the order's status afterwards (a webhook may have moved it
    further while FlexFactor was answering us), and whether this update was applied."""
    update = OrderUpdate(
        updateId=f"{source}:{request.idempotency_key}",
        source=source,
        orderId=request.order_id,
        orderSessionKey=session_key,
        status=status,
        providerStatus=status if session_key else None,
        reason=detail,
    )
    stored = {**request.safe_summary(), **(fields or {}), FINGERPRINT: request.fingerprint(), ANSWER: answer}
    for name in ("orderId", "idempotencyKey"):
        stored.pop(name)
    outcome = writer.apply(update, state=existing, fields=stored, remove=("leaseUntil",))
    return outcome.status or status, outcome.result == Result.APPLIED


def accept(request: EvaluateRequest) -> dict[str, Any]:
    """A merchant-initiated decline from the API: recorded QUEUED (with its key, and on
    the pending index with its message, so that the poller sends it again if this send
    fails and the caller never retries) and put on the declines queue."""
    from decline_rescue.infra import sqs

    message = json.dumps(request.to_provider(), separators=(",", ":"))
    order, _ = _intake(request, status=QUEUED, source="api", fields={QUEUED_MESSAGE: message})
    if order["status"] == QUEUED:
        # (already QUEUED by this request: its send may have failed; sending again is
        # harmless, the consumer is idempotent on the key; one submitted since is not sent)
        url = settings.declines().declines_queue_url
        sqs.send(url, [(message, sqs.attributes(orderId=request.order_id))])
        metrics.add_metric(name=m.DECLINE_QUEUED, unit="Count", value=1)
    return _answer(request.order_id, QUEUED, submitted=False)  # the first answer, whatever happened since


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
        status, body = 202, accept(request)
    else:
        # customer-initiated, or an MIT carrying card data (card numbers allowed), which is
        # submitted in the request so that a card number or CVV never waits in a queue
        status, body = 200, submit(request, source="api")
    if request.warnings:  # what the seed wants and the sandbox does not enforce: improve, not refused
        body = {**body, "warnings": [w.as_dict() for w in request.warnings]}
    return status, body


MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit


def handle_queued(body: str, *, message_id: str = "") -> dict[str, Any]:
    """One declines-queue message (an evaluate payload). A message that can never
    succeed (invalid, or its idempotencyKey or orderId taken by another decline) goes to
    the DLQ at once, card data redacted, instead of being retried five times; transient
    failures raise, so the queue redelivers the message."""
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    raw: Any = None
    try:
        raw = strict_json.loads(body, max_bytes=MAX_MESSAGE_BYTES)
        request = parse(raw)
    except InvalidRequest as exc:
        if _close_queued_order(raw, exc):
            return {"status": NOT_SUBMITTED, "error": exc.body()["error"]}
        _dead_letter(body, exc, message_id)
        return {"status": "REJECTED", "error": exc.body()["error"]}
    try:
        return submit(request, source="queue", message=body)
    except (IdempotencyConflict, OrderIdTaken) as exc:  # the key or the orderId is another decline's
        _dead_letter(body, exc, message_id)
        return {"status": "REJECTED", "error": exc.body()["error"]}


def _close_queued_order(raw: Any, exc) -> bool:
    """A message accepted through the API (its order QUEUED under the same key) that is
    no longer valid when it is taken off the queue (its expiryDateUtc passed while it
    waited, or a retry's): the order ends NOT_SUBMITTED with why, instead of a message the
    poller would send again forever. True when it was this message's order."""
    if not isinstance(raw, dict) or not isinstance(raw.get("orderId"), str):
        return False
    from decline_rescue.domain import strict_json
    from decline_rescue.domain.errors import InvalidRequest

    try:
        order_id = strict_json.check_order_id(raw["orderId"])
    except InvalidRequest:
        return False
    state = wiring.orders().get_state(order_id)
    if not state or state.get("status") != QUEUED or state.get("idempotencyKey") != raw.get("idempotencyKey"):
        return False
    reason = {
        "rule": "invalid_when_dequeued",
        "detail": exc.message,
        "errors": [p.as_dict() for p in exc.problems[:25]],
    }
    update = OrderUpdate(
        updateId=f"queue:{state['idempotencyKey']}",
        source="queue",
        orderId=order_id,
        status=NOT_SUBMITTED,
        reason=reason,
    )
    writer.apply(update, state=state, fields={ANSWER: _answer(order_id, NOT_SUBMITTED, submitted=False, reason=reason)})
    logger.info("queued decline invalid when dequeued", extra={"orderId": order_id, "problems": len(exc.problems)})
    return True


def _dead_letter(body: str, exc, message_id: str) -> None:
    from decline_rescue.domain.carddata import redact
    from decline_rescue.domain.errors import InvalidRequest
    from decline_rescue.infra import sqs

    try:
        from decline_rescue.domain import strict_json

        payload: Any = redact(strict_json.loads(body, max_bytes=MAX_MESSAGE_BYTES))
    except (InvalidRequest, ValueError, RecursionError):
        payload = redact(body[:4096])
    sqs.dead_letter(settings.declines().declines_dlq_url, payload, redact(exc.body()["error"]), message_id)
    metrics.add_metric(name=m.DECLINE_MESSAGE_REJECTED, unit="Count", value=1)
    logger.warning("queued decline rejected", extra={"messageId": message_id, "code": exc.code})
