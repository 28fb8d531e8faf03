"""The handlers' light paths give what the Powertools utilities they replace gave.

``decline_rescue.runtime.router.Router`` against Powertools' ``APIGatewayRestResolver`` wired as the
handlers had it (the error handlers of ``decline_rescue.runtime.router``): same answers, logs and
metrics for the same events. ``decline_rescue.runtime.batch`` against Powertools'
``BatchProcessor(EventType.SQS)`` with ``process_partial_response``: same partial batch
responses and the same error when every record failed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch import process_partial_response as powertools_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from decline_rescue.domain.errors import ConfigurationError, DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.runtime import batch
from decline_rescue.runtime import router as proxy
from decline_rescue.runtime.observability import logger, metrics
from decline_rescue.runtime.router import Request, Router
from decline_rescue.services.webhooks import WebhookRejected

EVENTS = Path(__file__).resolve().parents[2] / "events"


class Context:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"


# -- the two routers, with the same routes --------------------------------------------


def _powertools() -> APIGatewayRestResolver:
    """Powertools' resolver as ``decline_rescue.api`` made it for the handlers."""
    app = APIGatewayRestResolver()

    def answer(status: int, body: Any) -> Response:
        return Response(
            status_code=status,
            content_type=proxy.JSON,
            body=json.dumps(body, separators=(",", ":")),
            headers=proxy.NO_STORE,
        )

    @app.exception_handler(DeclineRescueError)
    def known_error(exc):
        return answer(*proxy.known_error(exc))

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    def aws_unavailable(exc):
        return answer(*proxy.aws_unavailable(exc))

    @app.exception_handler(Exception)
    def unexpected_error(exc):
        return answer(*proxy.unexpected_error(exc))

    @app.not_found
    def not_found(exc):
        return answer(*proxy.not_found())

    @app.post("/webhooks/flexfactor")
    def webhook():
        return answer(*_work("webhook", _raw_body(app), app.current_event.http_method))

    @app.post("/declines")
    def declines():
        return answer(*_work("declines", _json_body(app), app.current_event.http_method))

    @app.get("/orders/fetch")
    def fetch():
        return answer(200, {"route": "static"})

    @app.get("/orders/<orderId>")
    def read(orderId):
        return answer(*_work("read", orderId, "GET"))

    @app.post("/orders/<orderId>/capture")
    def capture(orderId):
        return answer(200, {"capture": orderId})

    return app


# decline_rescue.api's body readers, as they were (on Powertools' event)


def _json_body(app: APIGatewayRestResolver) -> Any:
    event = app.current_event
    raw = event.body
    if raw is None or not raw.strip():
        return None
    if len(raw) > proxy.MAX_BODY_BYTES * (4 / 3 if event.is_base64_encoded else 1):
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {proxy.MAX_BODY_BYTES} bytes")])
    try:
        return json.loads(event.decoded_body)
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise InvalidRequest([FieldProblem("body", "json", "is not valid JSON (UTF-8)")]) from None


def _raw_body(app: APIGatewayRestResolver) -> bytes:
    event = app.current_event
    raw = event.body or ""
    if len(raw) > proxy.MAX_BODY_BYTES * (4 / 3 if event.is_base64_encoded else 1) + 4:
        raise InvalidRequest([FieldProblem("body", "too_large", f"must be at most {proxy.MAX_BODY_BYTES} bytes")])
    if event.is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([FieldProblem("body", "encoding", "is not valid base64")]) from None
    return raw.encode("utf-8")


def _router() -> Router:
    router = Router()

    @router.post("/webhooks/flexfactor")
    def webhook(request: Request):
        return proxy.response(*_work("webhook", request.raw_body(), request.method))

    @router.post("/declines")
    def declines(request: Request):
        return proxy.response(*_work("declines", request.json_body(), request.method))

    @router.get("/orders/<orderId>")
    def read(request: Request, orderId: str):
        return proxy.response(*_work("read", orderId, "GET"))

    @router.get("/orders/fetch")  # added after the dynamic route: static routes still win
    def fetch(request: Request):
        return proxy.response(200, {"route": "static"})

    @router.post("/orders/<orderId>/capture")
    def capture(request: Request, orderId: str):
        return proxy.response(200, {"capture": orderId})

    return router


FAILURES = {
    "invalid": lambda: InvalidRequest([FieldProblem("amount", "min", "must be positive, not 4111111111111111")]),
    "rejected": lambda: WebhookRejected("bad_signature", "x-fc-authorization's signature does not match"),
    "config": lambda: ConfigurationError("setting X is not set"),
    "client": lambda: ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "PutItem"
    ),
    "botocore": lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    "bug": lambda: RuntimeError("a bug"),
}


def _work(route: str, value: Any, method: str) -> tuple[int, Any]:
    """The routes' shared body: a failure named by the value, or an echo."""
    key = value.decode(errors="replace") if isinstance(value, bytes) else value
    if isinstance(key, dict):
        key = key.get("fail")
    if isinstance(key, str) and key in FAILURES:
        raise FAILURES[key]()
    return 200, {"route": route, "method": method, "value": value.decode() if isinstance(value, bytes) else value}


# -- events ---------------------------------------------------------------------------


def _event(method: str, path: str, body: str | None = None, *, b64: bool = False) -> dict[str, Any]:
    event = copy.deepcopy(json.loads((EVENTS / "ingest_webhook" / "post_webhook.json").read_text()))
    event.update(httpMethod=method, path=path, body=body, isBase64Encoded=b64)
    return event


CASES = [
    ("POST", "/webhooks/flexfactor", '{"Event":"order.completed"}', False),
    ("POST", "/webhooks/flexfactor", base64.b64encode(b'{"a":1}').decode(), True),
    ("POST", "/webhooks/flexfactor", "!!not base64!!", True),
    ("POST", "/webhooks/flexfactor", "x" * (64 * 1024 + 10), False),
    ("POST", "/webhooks/flexfactor", None, False),
    ("post", "/webhooks/flexfactor", "lower-case method", False),
    ("GET", "/webhooks/flexfactor", None, False),
    ("POST", "/webhooks/flexfactor/", "trailing slash", False),
    ("POST", "/nowhere", None, False),
    ("OPTIONS", "/declines", None, False),
    ("POST", "/declines", '{"orderId": "o-1", "amount": 1999}', False),
    ("POST", "/declines", "{not json", False),
    ("POST", "/declines", "   ", False),
    ("POST", "/declines", base64.b64encode(b'{"b": [1, 2]}').decode(), True),
    ("POST", "/declines", base64.b64encode(b"\xff\xfe").decode(), True),
    ("POST", "/declines", "[" * 100_000, False),
    ("GET", "/orders/ord-123", None, False),
    ("GET", "/orders/fetch", None, False),
    ("GET", "/orders/a.b~c(d)!e*f:g@h,i;j=k+l&m$n%20o", None, False),
    ("GET", "/orders/a/b", None, False),
    ("GET", "/orders/", None, False),
    ("POST", "/orders/ord-9/capture", None, False),
    ("POST", "/orders/ord-9/cancel", None, False),
    *[("POST", "/webhooks/flexfactor", failure, False) for failure in FAILURES],
    *[("POST", "/declines", json.dumps({"fail": failure}), False) for failure in FAILURES],
    *[("GET", f"/orders/{failure}", None, False) for failure in FAILURES],
]


def _run(resolve, event) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The answer, the log lines (without when and where) and the metrics added."""
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    metrics.clear_metrics()
    try:
        answer = resolve(copy.deepcopy(event), Context())
    finally:
        logger.registered_handler.setStream(previous)
    lines = []
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)
        for volatile in ("timestamp", "location", "exception", "exception_name", "stack_trace", "xray_trace_id"):
            record.pop(volatile, None)
        lines.append(record)
    added = copy.deepcopy(metrics.metric_set)
    metrics.clear_metrics()
    answer = {**answer, "multiValueHeaders": dict(answer.get("multiValueHeaders") or {})}
    return answer, lines, added


@pytest.mark.parametrize(("method", "path", "body", "b64"), CASES)
def test_router_answers_as_the_powertools_resolver(method, path, body, b64):
    event = _event(method, path, body, b64=b64)
    ours = _run(_router().resolve, event)
    theirs = _run(_powertools().resolve, event)
    assert ours == theirs


def test_errors_are_answered_logged_and_counted():
    answer, lines, added = _run(_router().resolve, _event("POST", "/webhooks/flexfactor", "client"))
    assert answer["statusCode"] == 503 and "DEPENDENCY_UNAVAILABLE" in answer["body"]
    assert [line["message"] for line in lines] == ["AWS dependency failed"]
    assert "DependencyFailure" in added

    answer, lines, _ = _run(_router().resolve, _event("POST", "/webhooks/flexfactor", "invalid"))
    assert answer["statusCode"] == 400 and "4111111111111111" not in answer["body"]
    assert lines[0]["level"] == "WARNING" and lines[0]["error_code"] == "INVALID_REQUEST"


# -- bodies the old reader let through: the strict loader refuses them -----------------


@pytest.mark.parametrize(
    ("body", "b64", "field", "rule"),
    [
        ('{"orderId": "a", "orderId": "b"}', False, "orderId", "duplicate_key"),
        ('{"transaction": {"amount": NaN}}', False, "transaction.amount", "not_finite"),
        ('{"transaction": {"amount": Infinity}}', False, "transaction.amount", "not_finite"),
        ('{"transaction": {"amount": 1e999}}', False, "transaction.amount", "not_finite"),
        ('{"x": ' + '{"a": ' * 254 + "{}" + "}" * 255, False, "body", "too_deep"),
        ("[" * 5000 + "]" * 5000, False, "body", "too_deep"),
        (base64.b64encode(b'{"a": 1, "a": 2}').decode(), True, "a", "duplicate_key"),
        (base64.b64encode(b'{"a": NaN}').decode(), True, "a", "not_finite"),
        ("[" * 50_000, False, "body", "json"),
        ('{"a": "\\ud800"}', False, "a", "json"),
    ],
    ids=[
        "duplicate-key",
        "nan",
        "infinity",
        "overflow",
        "255-deep",
        "5000-deep",
        "b64-duplicate",
        "b64-nan",
        "unbalanced",
        "lone-surrogate",
    ],
)
def test_json_body_refuses_what_json_loads_let_through(body, b64, field, rule):
    # Given a body json.loads would have taken (or crashed on) / When routed
    answer, lines, _ = _run(_router().resolve, _event("POST", "/declines", body, b64=b64))

    # Then a 400 naming the field and the rule: never a 500, never a rewritten body
    assert answer["statusCode"] == 400, answer
    details = json.loads(answer["body"])["error"]["details"]
    assert (details[0]["field"], details[0]["rule"]) == (field, rule)
    assert [line["message"] for line in lines] == ["request refused"]


# -- SQS partial batch responses ------------------------------------------------------


def _sqs(*bodies: str) -> dict[str, Any]:
    sample = json.loads((EVENTS / "apply_order_update" / "sqs_update.json").read_text())["Records"][0]
    return {"Records": [{**copy.deepcopy(sample), "messageId": f"m-{i}", "body": b} for i, b in enumerate(bodies)]}


def _handler(seen: list[str]):
    def handle(record) -> str:
        body = record["body"] if isinstance(record, dict) else record.body
        message_id = record["messageId"] if isinstance(record, dict) else record.message_id
        seen.append(message_id)
        if body.startswith("fail"):
            raise ValueError(f"cannot apply {body}")
        return "applied"

    return handle


def _powertools_batch(event, handle):
    return powertools_partial_response(event=event, record_handler=handle, processor=BatchProcessor(EventType.SQS))


@pytest.mark.parametrize(
    "bodies",
    [("ok",), ("ok", "ok", "ok"), ("fail-1", "ok"), ("ok", "fail-2", "ok", "fail-3"), ("ok",) * 10],
)
def test_partial_batch_response_as_powertools(bodies):
    ours_seen, theirs_seen = [], []
    ours = batch.process_partial_response(_sqs(*bodies), _handler(ours_seen))
    theirs = _powertools_batch(_sqs(*bodies), _handler(theirs_seen))
    assert ours == theirs
    assert ours_seen == theirs_seen == [f"m-{i}" for i in range(len(bodies))]


@pytest.mark.parametrize("bodies", [("fail-1",), ("fail-1", "fail-2")])
def test_a_batch_that_failed_entirely_raises_as_powertools(bodies):
    with pytest.raises(BatchProcessingError) as ours:
        batch.process_partial_response(_sqs(*bodies), _handler([]))
    with pytest.raises(BatchProcessingError) as theirs:
        _powertools_batch(_sqs(*bodies), _handler([]))
    assert ours.value.msg == theirs.value.msg
    assert [str(e[1]) for e in ours.value.child_exceptions] == [str(e[1]) for e in theirs.value.child_exceptions]


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": "x"}, "not an event"])
def test_not_a_batch_fails_as_powertools(event):
    with pytest.raises(Exception) as ours:
        batch.process_partial_response(event, _handler([]))
    with pytest.raises(Exception) as theirs:
        _powertools_batch(event, _handler([]))
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
