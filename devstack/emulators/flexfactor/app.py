"""The FlexFactor emulator itself: :class:`FlexFactorEmulator` holds the state and answers
the provider endpoints the package docstring describes (evaluate, orders, capture, cancel,
external-cancel, refund); the token and bearer check, the clock, webhook delivery and the
admin endpoints are mixed in from their modules.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import secrets
import threading
import uuid
from decimal import Decimal
from typing import Any

import httpx
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import Emulator, json_response
from devstack.emulators.flexfactor import money
from devstack.emulators.flexfactor.admin import AdminEndpoints
from devstack.emulators.flexfactor.auth import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DEFAULT_TOKEN_TTL, TokenAuth
from devstack.emulators.flexfactor.clock import Clock
from devstack.emulators.flexfactor.orders import (
    DEFAULT_CAPTURE_WINDOW,
    DEFAULT_STEP_SECONDS,
    INITIAL_ORDER_STATUS,
    Evaluation,
    Order,
    OrderStatus,
    Step,
    _moment,
    _Replay,
    decide,
    plan,
    status_name,
)
from devstack.emulators.flexfactor.responses import (
    DEFAULT_ERROR_SHAPE,
    _capture_failed,
    _problem,
    _problem_details,
    _refund_failed,
    _succeeded,
    _validation_failed,
)
from devstack.emulators.flexfactor.validation import (
    _LETTERS,
    _NUMBER_STRING,
    _config_errors,
    _json_object,
    bind,
    ci_get,
    parse_list_query,
    parse_moment,
)
from devstack.emulators.flexfactor.webhooks import (
    DEFAULT_WEBHOOK_CONTENT_TYPE,
    DEFAULT_WEBHOOK_KEY,
    WEBHOOK_TIMEOUT,
    Switches,
    WebhookDelivery,
    WebhookEntry,
    _Job,
)

IDEMPOTENCY_WINDOW = 24 * 3600.0


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


class FlexFactorEmulator(AdminEndpoints, TokenAuth, WebhookDelivery, Clock, Emulator):
    name = "flexfactor"

    def __init__(
        self,
        *,
        app_key: str = DEFAULT_APP_KEY,
        app_secret: str = DEFAULT_APP_SECRET,
        token_ttl_seconds: float = DEFAULT_TOKEN_TTL,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        capture_window_seconds: float = DEFAULT_CAPTURE_WINDOW,
        webhook_url: str | None = None,
        webhook_key: str = DEFAULT_WEBHOOK_KEY,
        webhook_content_type: str = DEFAULT_WEBHOOK_CONTENT_TYPE,
        error_shape: str = DEFAULT_ERROR_SHAPE,
    ) -> None:
        super().__init__()
        problems = _config_errors(
            {
                "step_seconds": step_seconds,
                "capture_window_seconds": capture_window_seconds,
                "webhook_url": webhook_url,
                "webhook_key": webhook_key,
                "webhook_content_type": webhook_content_type,
                "errorShape": error_shape,
            }
        )
        if problems:
            raise ValueError(f"invalid FlexFactor emulator settings: {problems}")
        self.app_key = app_key
        self.app_secret = app_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.step_seconds = float(step_seconds)
        self.capture_window_seconds = float(capture_window_seconds)
        self.webhook_url = webhook_url or None
        self.webhook_key = webhook_key
        self.webhook_content_type = webhook_content_type
        self.error_shape = error_shape
        self.switches = Switches()
        self._random = random.Random()
        self._signing_secret = secrets.token_bytes(32)
        self._token_expiry: dict[str, float] = {}  # jti -> expiry (epoch seconds, exact)
        self.evaluations: dict[str, Evaluation] = {}
        self.orders: dict[str, Order] = {}
        self.created: dict[str, int] = {}  # idempotency key -> orders created for it
        self.captures: dict[str, _Replay] = {}  # capture idempotencyKey -> the success
        self.cancels: dict[str, _Replay] = {}  # cancel idempotencyKey -> the success
        self.webhook_log: list[WebhookEntry] = []
        self._store_lock = threading.Lock()
        self._changed = threading.Condition(self._store_lock)  # wakes the sender and flushes
        self._clock_offset = 0.0
        self._seq = itertools.count(1)
        self._timeline: list[tuple[float, int, str, Step]] = []  # heap of scheduled order steps
        self._jobs: list[tuple[tuple[float, int, int], int, _Job]] = []  # heap of deliveries
        self._held: dict[str, list[WebhookEntry]] = {}  # order id -> reordered events held back
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._http: httpx.Client | None = None

    def rules(self) -> list[Rule]:
        return [
            Rule("/v1/oauth2/token", methods=["POST"], endpoint="token"),
            Rule("/v1/evaluate", methods=["POST"], endpoint="evaluate"),
            Rule("/v1/orders", methods=["GET"], endpoint="list_orders"),
            Rule("/v1/orders/<order_id>", methods=["GET"], endpoint="get_order"),
            Rule("/v1/orders/<order_id>/cancel", methods=["POST"], endpoint="cancel_order"),
            Rule("/v1/orders/<external_id>/external-cancel", methods=["POST"], endpoint="external_cancel"),
            Rule("/v1/orders/<order_id>/refund", methods=["POST"], endpoint="refund_order"),
            Rule("/v1/capture", methods=["POST"], endpoint="capture"),
            Rule("/__emulator/clock", methods=["GET", "POST"], endpoint="admin_clock"),
            Rule("/__emulator/config", methods=["GET", "POST"], endpoint="admin_config"),
            Rule("/__emulator/orders", methods=["GET"], endpoint="admin_orders"),
            Rule("/__emulator/orders/<order_id>/chargeback", methods=["POST"], endpoint="admin_chargeback"),
            Rule("/__emulator/webhooks", methods=["GET"], endpoint="admin_webhooks"),
            Rule("/__emulator/webhooks/flush", methods=["POST"], endpoint="admin_flush"),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.start_background()
        return super().__call__(environ, start_response)

    # -- background work ------------------------------------------------------------

    def start_background(self) -> None:
        """Start the clock and webhook threads (once; the first request does it)."""
        if self._threads:
            return
        with self._store_lock:
            if self._threads or self._stopping.is_set():
                return
            self._threads = [
                threading.Thread(target=self._tick_loop, name="flexfactor-clock", daemon=True),
                threading.Thread(target=self._send_loop, name="flexfactor-webhooks", daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=WEBHOOK_TIMEOUT + 1)
        if self._http is not None:
            self._http.close()

    # -- evaluate -------------------------------------------------------------------

    def _invalid(self, errors: dict[str, list[str]]) -> Response:
        return _validation_failed(errors, self.error_shape)

    def evaluate(self, request: Request) -> Response:
        refused = self._gate(request, "evaluate")
        if refused:
            return refused
        try:
            payload = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._invalid({"$": ["The request body must be a JSON object."]})
        model, errors = bind(payload)
        if errors:
            return self._invalid(errors)

        key = model["idempotencyKey"]
        fingerprint = _canonical(model)
        with self._changed:
            seen = self.evaluations.get(key)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(200, seen.response)
            status = decide(model)
            order = self._new_order(model, key, status)
            response = {
                "orderSessionKey": order.id,
                "senseKey": model.get("senseKey"),
                "orderId": order.id,
                "success": True,
                "result": "Success",
                "status": status,
                "statusCode": None,
                "errors": [],
                "customProperties": {},
            }
            self.evaluations[key] = Evaluation(fingerprint, response)
        return json_response(200, response)

    def _new_order(self, model: dict[str, Any], key: str, status: str) -> Order:
        """Record the order an evaluation creates and schedule its scenario (store lock held)."""
        is_mit = model.get("isMIT") is True
        expiry = parse_moment(model["expiryDateUtc"]) if is_mit and model.get("expiryDateUtc") else None
        placed = self.now_ts()
        mid = model.get("mid")
        order = Order(
            id=str(uuid.uuid4()),
            reference_number=model["orderId"],
            amount=model["transaction"]["amount"],
            currency=model["transaction"]["currency"].strip().upper(),
            is_mit=is_mit,
            status=INITIAL_ORDER_STATUS[status],
            idempotency_key=key,
            placed=_moment(placed),
            expiry=expiry,
            mid=mid.strip() if isinstance(mid, str) and mid.strip() else self.merchant_id,
            seq=next(self._seq),
        )
        expiry_after = expiry.timestamp() - placed if expiry else None
        order.scenario, steps = plan(status, model, self.step_seconds, self.capture_window_seconds, expiry_after)
        for after, step in steps:
            heapq.heappush(self._timeline, (placed + after, next(self._seq), order.id, step))
        self.orders[order.id] = order
        self.created[key] = self.created.get(key, 0) + 1
        return order

    # -- orders ---------------------------------------------------------------------

    def get_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "orders")
        if refused:
            return refused
        with self._changed:
            self._process_due()
            order = self.orders.get(order_id.lower())
            body = order.as_json() if order else None
        if body is None:
            return _problem(404, "Not Found")
        return json_response(200, body)

    def list_orders(self, request: Request) -> Response:
        refused = self._gate(request, "orders")
        if refused:
            return refused
        query, errors = parse_list_query(request.args)
        if errors:
            return self._invalid(errors)
        wanted, text, mid = query["status"], (query["query"] or "").lower(), (query["mid"] or "").lower()
        with self._changed:
            self._process_due()
            found = [
                order
                for order in self.orders.values()
                if (wanted is None or wanted in (int(order.status), order.status_name))
                and (query["from"] is None or order.placed >= query["from"])
                and (query["to"] is None or order.placed <= query["to"])
                and (not text or text in order.id or text in order.reference_number.lower())
                and (not mid or mid == order.mid.lower())
            ]
            if query["orderBy"] == "amount":
                found.sort(key=lambda o: (o.amount, o.placed, o.seq), reverse=query["descending"])
            else:  # createdOn, orderPlacedDate: when the order was placed
                found.sort(key=lambda o: (o.placed, o.seq), reverse=query["descending"])
            size, number = query["pageSize"], query["pageNumber"]
            items = [order.as_json() for order in found[(number - 1) * size : number * size]]
        pages = math.ceil(len(found) / size)
        return json_response(
            200,
            {
                "items": items,
                "pageNumber": number,
                "pageSize": size,
                "pageCount": pages,
                "totalCount": len(found),
                "hasNextPage": number < pages,
                "hasPreviousPage": number > 1,
            },
        )

    @staticmethod
    def _replayed(store: dict[str, _Replay], key: str, now: float) -> _Replay | None:
        seen = store.get(key)
        if seen is not None and seen.expires <= now:
            del store[key]
            return None
        return seen

    # -- capture --------------------------------------------------------------------

    def capture(self, request: Request) -> Response:
        refused = self._gate(request, "capture")
        if refused:
            return refused
        body = _json_object(request)
        if body is None:
            return _capture_failed(400, [{"key": "$", "error": "The request body must be a JSON object."}])
        errors: list[dict[str, str]] = []
        key, order_id = ci_get(body, "idempotencyKey"), ci_get(body, "orderId")
        amount, currency = ci_get(body, "amount"), ci_get(body, "currency")
        for name, value in (("IdempotencyKey", key), ("OrderId", order_id)):
            if not isinstance(value, str) or not value.strip():
                errors.append({"key": name, "error": f"The {name} field is required (a string)."})
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            errors.append({"key": "Amount", "error": "The Amount field must be an integer number of cents >= 1."})
        if not isinstance(currency, str) or not _LETTERS[3].fullmatch(currency):
            errors.append({"key": "Currency", "error": "The Currency field must be an ISO 4217 code."})
        if errors:
            return _capture_failed(400, errors, order_id)
        fingerprint = _canonical({"idempotencyKey": key, "orderId": order_id, "amount": amount, "currency": currency})
        with self._changed:
            now = self.now_ts()
            self._process_due()
            seen = self._replayed(self.captures, key, now)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    conflict = "The idempotency key was used with another request."
                    return _capture_failed(409, [{"key": "IdempotencyKey", "error": conflict}], order_id)
                return json_response(seen.status, seen.body)
            order = self.orders.get(order_id.strip().lower())
            if order is None:
                return _capture_failed(404, [{"key": "OrderId", "error": "The order does not exist."}], order_id)
            # the order cannot be captured so: HTTP 200, status FAILED (as the sandbox)
            if order.status != OrderStatus.Capturerequired:
                state = f"The order is {order.status_name}; only a CAPTUREREQUIRED order can be captured."
                return _capture_failed(200, [{"key": "OrderId", "error": state}], order_id)
            if amount > order.amount:
                too_much = f"The Amount field must not exceed the order amount ({order.amount} cents)."
                return _capture_failed(200, [{"key": "Amount", "error": too_much}], order_id)
            if currency.upper() != order.currency:
                other = f"The Currency field must be the order's currency ({order.currency})."
                return _capture_failed(200, [{"key": "Currency", "error": other}], order_id)
            order.captured = amount
            order.move(OrderStatus.Completed, _moment(now))
            self._emit(order, "order.completed", _moment(now))
            answer = _succeeded(
                orderId=order.id,
                capturedAmount=amount,
                currency=order.currency,
                orderStatus=int(order.status),
                statusName=order.status_name,
            )
            self.captures[key] = _Replay(fingerprint, 200, answer, now + IDEMPOTENCY_WINDOW)
        return json_response(200, answer)

    # -- cancel ---------------------------------------------------------------------

    def cancel_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "cancel")
        if refused:
            return refused
        return self._cancel(request, order_id.lower(), external=False)

    def external_cancel(self, request: Request, external_id: str) -> Response:
        refused = self._gate(request, "cancel")
        if refused:
            return refused
        return self._cancel(request, external_id, external=True)

    def _by_reference(self, external_id: str) -> Order | None:
        """The latest order placed with this merchant's orderId (matched as stored)."""
        found = [order for order in self.orders.values() if order.reference_number == external_id]
        return max(found, key=lambda o: o.seq) if found else None

    def _cancel(self, request: Request, target: str, *, external: bool) -> Response:
        body = _json_object(request, empty_ok=True)
        if body is None:
            return self._invalid({"$": ["The request body must be empty or a JSON object."]})
        key = ci_get(body, "idempotencyKey")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            return self._invalid({"IdempotencyKey": ["The IdempotencyKey field must be a non-empty string."]})
        fingerprint = _canonical({"idempotencyKey": key, "target": target, "external": external})
        with self._changed:
            now = self.now_ts()
            self._process_due()
            seen = self._replayed(self.cancels, key, now) if key else None
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(seen.status, seen.body)
            if external:
                order = self._by_reference(target)
                if order is None:
                    detail = f"No order with the external order id {target!r}."
                    return _problem_details(404, "Not Found", detail)
                if order.status_name == status_name(OrderStatus.Cancelled):
                    return json_response(200, {})  # already cancelled: the same answer again
            else:
                order = self.orders.get(target)
                if order is None:
                    return _problem(404, "Not Found")
            if order.is_mit:
                allowed = (OrderStatus.Draft, OrderStatus.Processing, OrderStatus.Capturerequired)
            else:
                allowed = (OrderStatus.Capturerequired,)
            if order.status not in allowed:
                kind = (
                    "a MIT order in DRAFT, PROCESSING or CAPTUREREQUIRED"
                    if order.is_mit
                    else "a CIT order in CAPTUREREQUIRED"
                )
                return _problem(409, f"The order is {order.status_name}; only {kind} can be cancelled.")
            order.move(OrderStatus.Cancelled, _moment(now))
            self._emit(order, "order.cancelled", _moment(now))
            answer: dict[str, Any] = {}  # the sandbox answers a cancel with an empty object
            if key:
                self.cancels[key] = _Replay(fingerprint, 200, answer, now + IDEMPOTENCY_WINDOW)
        return json_response(200, answer)

    # -- refund ---------------------------------------------------------------------

    def refund_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "refund")
        if refused:
            return refused
        body = _json_object(request, parse_float=Decimal)
        if body is None:
            return self._invalid({"$": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        amount, message = ci_get(body, "amountToRefund"), ci_get(body, "refundMessage")
        major = Decimal(0)
        if amount is None:
            errors["AmountToRefund"] = ["The AmountToRefund field is required."]
        elif isinstance(amount, str) and _NUMBER_STRING.fullmatch(amount):
            major = Decimal(amount.strip())  # a numeric string binds, as ASP.NET's web defaults
        elif isinstance(amount, bool) or not isinstance(amount, int | Decimal) or not Decimal(amount).is_finite():
            errors["AmountToRefund"] = ["The field AmountToRefund is invalid."]
        else:
            major = Decimal(amount)
        if not errors and major <= 0:
            errors["AmountToRefund"] = ["The field AmountToRefund must be greater than 0."]
        if message is not None and not isinstance(message, str):
            errors["RefundMessage"] = ["The field RefundMessage is invalid."]
        if errors:
            return self._invalid(errors)
        with self._changed:
            now = self.now_ts()
            self._process_due()
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            places = money.exponent(order.currency)
            if money.decimals(major) > places:
                decimals = f"at most {places} decimal places" if places else "no decimal places"
                return self._invalid(
                    {"AmountToRefund": [f"The field AmountToRefund must have {decimals} for {order.currency}."]}
                )
            cents = money.to_minor(major, order.currency)
            if order.status not in (OrderStatus.Completed, OrderStatus.Returned):
                return _refund_failed(f"Order in status {order.status_name} cannot be refunded")
            if cents > order.refundable:
                asked, most = money.formatted(cents, order.currency), money.formatted(order.refundable, order.currency)
                return _refund_failed(f"Amount to refund ({asked}) is greater than maximum refund amount in ({most}))")
            order.refunded += cents
            if order.refundable == 0:
                order.move(OrderStatus.Returned, _moment(now))
            data = {"status": order.status_name, "amount": cents, "refundedAmount": order.refunded}
            self._emit(order, "order.refunded", _moment(now), data)
            answer = _succeeded(
                result="Success",
                responseCode="0",
                responseMessage="Refunded",
                transactionId=str(uuid.uuid4()),
                amountRefunded=money.as_json_number(cents, order.currency),
            )
        return json_response(200, answer)
