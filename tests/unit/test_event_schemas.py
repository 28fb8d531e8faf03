"""The event contract's schemas (``schemas/events/``): valid draft 2020-12, one per
detail-type the publisher can emit, in step with the domain (statuses, events, detail
types), accepting what ``Change.event_detail()`` makes and refusing what breaks it.
What the publisher really emits is checked in tests/integration/test_event_contract.py."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from decline_rescue.domain import statuses
from decline_rescue.domain.updates import EVENT_DETAIL_TYPES, SOURCES, STATUS_CHANGED, Change
from decline_rescue.infra.events import SOURCE
from devstack import event_schemas

AT = "2026-11-22T10:00:00.123Z"
REFUND = {"refundId": "rf-1", "amount": 500, "currency": "USD", "refundedAmount": 500}


def envelope(change: Change) -> dict:
    """The event a rule's target gets for ``change`` (EventBridge's envelope)."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": change.detail_type(),
        "source": SOURCE,
        "account": "123456789012",
        "time": "2026-11-22T10:00:01Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(json.dumps(change.event_detail())),
    }


CHANGES = {
    "the claim": Change("ord-1", None, "RECEIVED", 1, "api", AT),
    "an MIT queued": Change("mit-1", None, "QUEUED", 1, "api", AT),
    "the answer": Change("ord-1", "RECEIVED", "CAPTUREREQUIRED", 2, "api", AT),
    "from the queue": Change("mit-1", "QUEUED", "SUBMITTED", 2, "queue", AT),
    "a webhook": Change("ord-1", "CHALLENGE", "APPROVED", 3, "webhook", AT),
    "a capture": Change("ord-1", "CAPTUREREQUIRED", "APPROVED", 3, "capture", AT),
    "a cancel": Change("ord-1", "CAPTUREREQUIRED", "CANCELLED", 3, "cancel", AT),
    "never retry": Change("ord-2", "RECEIVED", "NOT_SUBMITTED", 2, "api", AT, {"rule": "issuer_never_approves"}),
    "abandoned": Change("ord-3", "RECEIVED", "NOT_SUBMITTED", 2, "poll", AT, {"rule": "abandoned", "detail": "x"}),
    "expired": Change("mit-2", "PROCESSING", "EXPIRED", 4, "poll", AT, {"rule": "expired", "detail": "y"}),
    "our refund": Change("ord-1", "APPROVED", "APPROVED", 4, "refund", AT, event="REFUNDED", refund=REFUND),
    "FlexFactor's refund": Change(
        "ord-1", "APPROVED", "APPROVED", 4, "webhook", AT, {"eventData": {"amount": 1}}, "REFUNDED"
    ),
    "a polled refund": Change("mit-1", "APPROVED", "APPROVED", 5, "poll", AT, event="REFUNDED"),
    "a chargeback": Change("ord-1", "APPROVED", "APPROVED", 5, "webhook", AT, {"eventData": {"x": 1}}, "CHARGEBACK"),
}


def test_every_schema_is_valid_draft_2020_12():
    problems = event_schemas.check_schemas()
    assert len(problems) == 3 and not any(problems.values()), problems
    for name, schema in event_schemas.schemas().items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert validator_for(schema) is Draft202012Validator
        Draft202012Validator.check_schema(schema)  # raises on the first problem


def test_the_metaschema_check_finds_a_broken_schema(tmp_path, monkeypatch):
    broken = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "objekt", "required": "detail"}
    (tmp_path / "Broken.schema.json").write_text(json.dumps(broken))
    monkeypatch.setattr(event_schemas, "SCHEMA_DIR", tmp_path)
    (problems,) = event_schemas.check_schemas().values()
    assert len(problems) == 2 and {p.split(":")[0] for p in problems} == {"type", "required"}, problems


def test_there_is_one_schema_per_detail_type_named_after_it():
    assert sorted(event_schemas.schemas()) == sorted([STATUS_CHANGED, *EVENT_DETAIL_TYPES.values()])
    names = sorted(p.name for p in event_schemas.SCHEMA_DIR.glob("*.json"))
    assert names == sorted(f"{kind}.schema.json" for kind in event_schemas.schemas())


@pytest.mark.parametrize("kind", sorted([STATUS_CHANGED, *EVENT_DETAIL_TYPES.values()]))
def test_the_schemas_speak_the_domains_words(kind):
    schema = event_schemas.schemas()[kind]
    assert schema["properties"]["source"] == {"const": SOURCE}
    assert schema["$defs"]["status"]["enum"] == list(statuses.STATUSES)
    detail = schema["$defs"]["detail"]
    assert detail["additionalProperties"] is False
    required = {"changeId", "orderId", "version", "status", "previousStatus", "source", "time"}
    assert set(detail["required"]) - {"event"} == required
    event = {v: k for k, v in EVENT_DETAIL_TYPES.items()}.get(kind)
    assert detail["properties"].get("event") == ({"const": event} if event else None)


def test_the_state_machine_and_the_sources_are_the_domains():
    detail = event_schemas.schemas()[STATUS_CHANGED]["$defs"]["detail"]
    assert detail["then"]["properties"]["status"]["enum"] == sorted(statuses.INTAKE)
    assert detail["else"]["properties"]["previousStatus"]["not"]["enum"] == sorted(statuses.TERMINAL)
    assert detail["else"]["properties"]["status"]["not"]["enum"] == sorted(statuses.INTAKE)
    sources = {
        s
        for schema in event_schemas.schemas().values()
        for s in schema["$defs"]["detail"]["properties"]["source"]["enum"]
    }
    assert sources == SOURCES | {"refund"}  # (a refund of ours is written by services/refunds, not an OrderUpdate)


@pytest.mark.parametrize("name", list(CHANGES))
def test_what_every_source_makes_is_valid(name):
    assert event_schemas.validate_event(envelope(CHANGES[name])) == []


REMOVED = object()


def broken(name: str, **changes) -> list[str]:
    """The problems of CHANGES[name]'s event with its detail changed (REMOVED: removed)."""
    event = envelope(CHANGES[name])
    for key, value in changes.items():
        if value is REMOVED:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event_schemas.validate_event(event)


@pytest.mark.parametrize("name", ["the claim", "a webhook", "our refund", "a chargeback"])
@pytest.mark.parametrize("field", ["changeId", "orderId", "version", "status", "previousStatus", "source", "time"])
def test_a_missing_field_is_a_problem_naming_it(name, field):
    assert any(f"'{field}' is a required property" in p for p in broken(name, **{field: REMOVED}))


@pytest.mark.parametrize(
    ("name", "changes", "where"),
    [
        ("a webhook", {"version": "3"}, "detail/version"),
        ("a webhook", {"version": 0}, "detail/version"),
        ("a webhook", {"version": True}, "detail/version"),
        ("a webhook", {"status": "SHIPPED"}, "detail/status"),
        ("a webhook", {"previousStatus": None}, "detail/previousStatus"),
        ("a webhook", {"previousStatus": "APPROVED", "status": "CANCELLED"}, "detail/previousStatus"),  # terminal
        ("a webhook", {"status": "RECEIVED"}, "detail/status"),  # back to intake
        ("a webhook", {"status": "CHALLENGE"}, "detail/status"),  # a change to itself
        ("a webhook", {"source": "refund"}, "detail/source"),
        ("a webhook", {"time": "2026-11-22T10:00:00Z"}, "detail/time"),
        ("a webhook", {"time": "2026-11-22 10:00:00.000Z"}, "detail/time"),
        ("a webhook", {"changeId": "ord-9:3"}, "detail/changeId"),
        ("a webhook", {"changeId": "ord-1"}, "detail/changeId"),
        ("a webhook", {"orderId": "4111 1111"}, "detail/orderId"),
        ("a webhook", {"event": "REFUNDED"}, "detail"),  # an event has its own detail-type
        ("a webhook", {"note": "x"}, "detail"),  # nothing the contract does not name
        ("a webhook", {"reason": {}}, "detail/reason"),
        ("a webhook", {"reason": {"rule": 5}}, "detail/reason/rule"),
        ("the claim", {"previousStatus": "RECEIVED"}, "detail/previousStatus"),
        ("the claim", {"status": "APPROVED"}, "detail/status"),
        ("our refund", {"refund": REMOVED}, "detail"),  # ours always says how much
        ("our refund", {"refund": {**REFUND, "currency": None}}, "detail/refund/currency"),
        ("our refund", {"refund": {k: v for k, v in REFUND.items() if k != "refundId"}}, "detail/refund"),
        ("our refund", {"refund": {**REFUND, "amount": "5.00"}}, "detail/refund/amount"),
        ("our refund", {"refund": {**REFUND, "refundedAmount": 400}}, "detail/refund/refundedAmount"),
        ("our refund", {"event": REMOVED}, "detail"),
        ("our refund", {"event": "CHARGEBACK"}, "detail/event"),
        ("our refund", {"status": "CANCELLED"}, "detail/status"),  # an event keeps the status
        ("our refund", {"version": 1, "changeId": "ord-1:1", "previousStatus": None}, "detail/version"),
        ("FlexFactor's refund", {"refund": REFUND}, "detail/refund"),  # only ours carry amounts
        ("a chargeback", {"source": "refund"}, "detail/source"),
        ("a chargeback", {"refund": REFUND}, "detail"),
    ],
)
def test_a_detail_that_breaks_the_contract_is_refused(name, changes, where):
    problems = broken(name, **changes)
    assert any(p.split(":")[0] == where for p in problems), problems


def test_the_envelope_names_its_source_and_detail_type():
    event = envelope(CHANGES["a webhook"])
    assert event_schemas.validate_event({**event, "source": "someone-else"})[0].startswith("source:")
    assert event_schemas.validate_event({**event, "detail-type": "OrderShipped"}) == [
        "detail-type: 'OrderShipped' is not one of OrderChargebackReceived, OrderRefunded, OrderStatusChanged"
    ]
    refund_as_status = {**envelope(CHANGES["our refund"]), "detail-type": STATUS_CHANGED}
    assert event_schemas.validate_event(refund_as_status)
    assert event_schemas.validate_event([event]) == ["(the event): list is not an object"]
    without = copy.deepcopy(event)
    del without["detail"]
    assert event_schemas.validate_event(without) == ["(the event): 'detail' is a required property"]
    # EventBridge may add fields to the envelope; a local bus may leave out the account
    assert event_schemas.validate_event({**event, "replay-name": "r"}) == []
    assert event_schemas.validate_event({k: v for k, v in event.items() if k != "account"}) == []


def test_validate_detail_wraps_a_bare_detail():
    change = CHANGES["our refund"]
    assert event_schemas.validate_detail(change.detail_type(), change.event_detail()) == []
    assert event_schemas.validate_detail(change.detail_type(), {**change.event_detail(), "version": "4"})


class _Listing:
    """The local stack's GET /__local/events, for the demo's step."""

    def __init__(self, events: list[dict]) -> None:
        self.events = events

    def get(self, path: str):
        assert path == "/__local/events"
        events = self.events

        class Answer:
            @staticmethod
            def json() -> dict:
                return {"events": events, "count": len(events)}

        return Answer()


@pytest.mark.parametrize(
    ("broken_one", "ok", "detail"),
    [
        (False, True, "3 events, all valid (OrderRefunded 1, OrderStatusChanged 2)"),
        (True, False, "1 of 3 events invalid; ord-1:3: detail/version: '3' is not of type 'integer'"),
    ],
)
def test_the_demo_step_counts_the_events_and_fails_on_an_invalid_one(monkeypatch, broken_one, ok, detail):
    from devstack import demo

    events = [envelope(CHANGES[name]) for name in ("the claim", "a webhook", "our refund")]
    if broken_one:
        events[1]["detail"]["version"] = "3"
    run = demo.Demo.__new__(demo.Demo)
    run.steps, run.http = [], _Listing(events)
    monkeypatch.setattr(demo.time, "sleep", lambda seconds: None)

    run.check_events()

    (step,) = run.steps
    assert (step.name, step.ok) == ("every event published matches its schema", ok)
    assert step.detail.startswith(detail), step.detail
