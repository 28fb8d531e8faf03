"""The FlexFactor emulator itself: :class:`FlexFactorEmulator` holds the state and answers
the provider endpoints the package docstring describes (evaluate, orders, capture, cancel,
refund); the token and bearer check, the clock, webhook delivery and the admin endpoints
are mixed in from their modules.
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
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import Emulator, json_response
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
)
from devstack.emulators.flexfactor.responses import _capture_failed, _problem, _succeeded, _validation_failed
from devstack.emulators.flexfactor.validation import _LETTERS, _config_errors, _json_object, parse_list_query, validate
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
    ) -> None:
        super().__init__()
        problems = _config_errors(
            {
                "step_seconds": step_seconds,
                "capture_window_seconds": capture_window_seconds,
                "webhook_url": webhook_url,
                "webhook_key": webhook_key,
                "webhook_content_type": webhook_content_type,
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

    def evaluate(self, request: Request) -> Response:
        refused = self._gate(request, "evaluate")
        if refused:
            return refused
        try:
            payload = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _validation_failed({"$": ["The request body must be a JSON object."]})
        errors = validate(payload)
        if errors:
            return _validation_failed(errors)

        key = str(uuid.UUID(payload["idempotencyKey"]))
        fingerprint = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self._changed:
            seen = self.evaluations.get(key)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(200, seen.response)
            status = decide(payload)
            order = self._new_order(payload, key, status)
            response = {
                "orderSessionKey": order.id,
                "senseKey": payload.get("senseKey"),
                "orderId": order.id,
                "success": True,
                "result": "Success",
                "status": status,
                "statusCode": 200,
                "errors": [],
                "customProperties": {},
            }
            self.evaluations[key] = Evaluation(fingerprint, response)
        return json_response(200, response)

    def _new_order(self, payload: dict[str, Any], key: str, status: str) -> Order:
        """Record the order an evaluation creates and schedule its scenario (store lock held)."""
        is_mit = payload.get("isMIT") is True
        expiry = None
        if is_mit:
            expiry = datetime.fromisoformat(payload["expiryDateUtc"].strip())
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
        placed = self.now_ts()
        order = Order(
            id=str(uuid.uuid4()),
            reference_number=payload["orderId"],
            amount=payload["transaction"]["amount"],
            currency=payload["transaction"]["currency"].upper(),
            is_mit=is_mit,
            status=INITIAL_ORDER_STATUS[status],
            idempotency_key=key,
            placed=_moment(placed),
            expiry=expiry,
            seq=next(self._seq),
        )
        expiry_after = expiry.timestamp() - placed if expiry else None
        order.scenario, steps = plan(status, payload, self.step_seconds, self.capture_window_seconds, expiry_after)
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
            return _validation_failed(errors)
        wanted = query["status"]
        with self._changed:
            self._process_due()
            found = [
                order
                for order in self.orders.values()
                if (wanted is None or wanted in (int(order.status), order.status_name))
                and (query["from"] is None or order.placed >= query["from"])
                and (query["to"] is None or order.placed <= query["to"])
            ]
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

    def capture(self, request: Request) -> Response:
        refused = self._gate(request, "capture")
        if refused:
            return refused
        body = _json_object(request)
        if body is None:
            return _capture_failed(400, [{"key": "$", "error": "The request body must be a JSON object."}])
        errors: list[dict[str, str]] = []
        key, order_id = body.get("idempotencyKey"), body.get("orderId")
        amount, currency = body.get("amount"), body.get("currency")
        for name, value in (("IdempotencyKey", key), ("OrderId", order_id)):
            if not isinstance(value, str) or not value.strip():
                errors.append({"key": name, "error": f"The {name} field is required (a string)."})
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            errors.append({"key": "Amount", "error": "The Amount field must be an integer number of cents >= 1."})
        if not isinstance(currency, str) or not _LETTERS[3].fullmatch(currency):
            errors.append({"key": "Currency", "error": "The Currency field must be an ISO 4217 code."})
        if errors:
            return _capture_failed(400, errors, order_id)
        fingerprint = _canonical(body)
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
            if order.status != OrderStatus.Capturerequired:
                state = f"The order is {order.status_name}; only a Capturerequired order can be captured."
                return _capture_failed(409, [{"key": "OrderId", "error": state}], order_id)
            if amount > order.amount:
                too_much = f"The Amount field must not exceed the order amount ({order.amount} cents)."
                return _capture_failed(400, [{"key": "Amount", "error": too_much}], order_id)
            if currency.upper() != order.currency:
                other = f"The Currency field must be the order's currency ({order.currency})."
                return _capture_failed(400, [{"key": "Currency", "error": other}], order_id)
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

    def cancel_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "cancel")
        if refused:
            return refused
        body = _json_object(request, empty_ok=True)
        if body is None:
            return _validation_failed({"$": ["The request body must be empty or a JSON object."]})
        key = body.get("idempotencyKey")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            return _validation_failed({"IdempotencyKey": ["The IdempotencyKey field must be a non-empty string."]})
        fingerprint = _canonical({**body, "orderId": order_id.lower()})
        with self._changed:
            now = self.now_ts()
            self._process_due()
            seen = self._replayed(self.cancels, key, now) if key else None
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    return _problem(409, "idempotency key reused with a different payload")
                return json_response(seen.status, seen.body)
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            if order.is_mit:
                allowed = (OrderStatus.Draft, OrderStatus.Processing, OrderStatus.Capturerequired)
            else:
                allowed = (OrderStatus.Capturerequired,)
            if order.status not in allowed:
                kind = (
                    "a MIT order in Draft, Processing or Capturerequired"
                    if order.is_mit
                    else ("a CIT order in Capturerequired")
                )
                return _problem(409, f"The order is {order.status_name}; only {kind} can be cancelled.")
            order.move(OrderStatus.Cancelled, _moment(now))
            self._emit(order, "order.cancelled", _moment(now))
            answer = _succeeded(orderId=order.id, orderStatus=int(order.status), statusName=order.status_name)
            if key:
                self.cancels[key] = _Replay(fingerprint, 200, answer, now + IDEMPOTENCY_WINDOW)
        return json_response(200, answer)

    def refund_order(self, request: Request, order_id: str) -> Response:
        refused = self._gate(request, "refund")
        if refused:
            return refused
        body = _json_object(request, parse_float=Decimal)
        if body is None:
            return _validation_failed({"$": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        amount, message = body.get("amountToRefund"), body.get("refundMessage")
        dollars = Decimal(0)
        if amount is None:
            errors["AmountToRefund"] = ["The AmountToRefund field is required."]
        elif isinstance(amount, bool) or not isinstance(amount, int | Decimal):
            errors["AmountToRefund"] = ["The AmountToRefund field must be a number (dollars)."]
        else:
            try:
                dollars = Decimal(amount)
                if dollars <= 0 or dollars != dollars.quantize(Decimal("0.01")):
                    raise InvalidOperation
            except InvalidOperation:
                errors["AmountToRefund"] = ["The AmountToRefund field must be > 0 with at most 2 decimals."]
        if message is not None and not isinstance(message, str):
            errors["RefundMessage"] = ["The RefundMessage field must be a string."]
        if errors:
            return _validation_failed(errors)
        cents = int(dollars * 100)
        with self._changed:
            now = self.now_ts()
            self._process_due()
            order = self.orders.get(order_id.lower())
            if order is None:
                return _problem(404, "Not Found")
            already = order.status == OrderStatus.Returned
            if not already:
                if order.status != OrderStatus.Completed:
                    return _problem(409, f"The order is {order.status_name}; only a Completed order can be refunded.")
                if cents > order.charged:
                    too_much = f"The AmountToRefund field must not exceed {Decimal(order.charged) / 100:.2f}."
                    return _validation_failed({"AmountToRefund": [too_much]})
                order.refunded = cents
                order.move(OrderStatus.Returned, _moment(now))
                self._emit(order, "order.refunded", _moment(now), {"status": order.status_name, "amount": cents})
            answer = _succeeded(
                orderId=order.id,
                amountRefunded=float(Decimal(order.refunded) / 100),
                alreadyRefunded=already,
                orderStatus=int(order.status),
                statusName=order.status_name,
            )
        return json_response(200, answer)
