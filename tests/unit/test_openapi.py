"""openapi.yaml and the API Gateway definition template.yaml deploys: generated from the
models the code validates with (devstack/openapi.py), never stale, valid, complete (every
route, every error code), and what the gateway validates never refuses what the code
accepts. And the request models read bodies exactly as the services did before them."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decline_rescue
from decline_rescue.domain import api_models
from decline_rescue.domain.capture_fields import CARD_NUMBER, FLEX_FIELDS, parse_selection
from decline_rescue.domain.carddata import find_pans
from decline_rescue.domain.contract import validate_request
from decline_rescue.domain.errors import DeclineRescueError, FieldProblem, InvalidRequest
from decline_rescue.domain.strict_json import ORDER_ID
from devstack import openapi
from devstack.template import TEMPLATE, load_raw

ROOT = Path(__file__).resolve().parents[2]
DOC = openapi.load()
ROUTES = {(path, method) for path, methods in DOC["paths"].items() for method in methods}
MERCHANT_SECURITY = [{"sigv4": [], "api_key": []}]


# -- generated, and never stale -----------------------------------------------------------


def test_openapi_yaml_is_what_the_models_generate_now():
    generated = openapi.render(openapi.build())
    assert (ROOT / "openapi.yaml").read_text(encoding="utf-8") == generated, (
        "openapi.yaml differs from the models: run `python -m devstack.openapi --write` and commit it"
    )


def test_the_templates_definition_body_is_generated_from_openapi_yaml():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text == openapi.expected_template(text, DOC), (
        "template.yaml's CheckoutApi DefinitionBody differs from openapi.yaml: run `python -m devstack.openapi --write`"
    )
    # and it is the CheckoutApi resource's DefinitionBody
    body = load_raw()["Resources"]["CheckoutApi"]["Properties"]["DefinitionBody"]
    assert body == json.loads(json.dumps(openapi.definition_body(DOC)))


def test_openapi_yaml_is_a_valid_openapi_3_0_document():
    import schemathesis

    assert DOC["openapi"].startswith("3.0.")
    schemathesis.openapi.from_dict(copy.deepcopy(DOC)).validate()


# -- complete ---------------------------------------------------------------------------------


def test_every_route_is_there_and_deployed():
    assert set(openapi.FUNCTIONS) == ROUTES
    template_paths = load_raw()["Resources"]["CheckoutApi"]["Properties"]["DefinitionBody"]["paths"]
    assert {(p, m) for p, methods in template_paths.items() for m in methods} == ROUTES


def _codes(schema_ref: str) -> set[str]:
    name = schema_ref.rsplit("/", 1)[-1]
    schema = DOC["components"]["schemas"][name]
    code = schema.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
    return set(code.get("enum", []))


def _documented_codes() -> set[str]:
    codes: set[str] = set()
    for path, method in ROUTES:
        for answer in DOC["paths"][path][method]["responses"].values():
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
            codes |= _codes(ref)
    return codes


def _raised_codes() -> set[str]:
    """Every DeclineRescueError subclass's code in the shared package, and the router's own."""
    for module in pkgutil.walk_packages(decline_rescue.__path__, "decline_rescue."):
        importlib.import_module(module.name)
    seen, stack = set(), [DeclineRescueError]
    while stack:
        cls = stack.pop()
        seen.add(cls.code)
        stack.extend(cls.__subclasses__())
    router = (Path(decline_rescue.__file__).parent / "runtime" / "router.py").read_text()
    seen |= set(re.findall(r'"code": "([A-Z_]+)"', router))
    return seen - {"NOT_FOUND"}  # (the router's "no such route": the gateway routes only what exists)


def test_every_error_code_the_code_answers_is_documented():
    missing = _raised_codes() - _documented_codes()
    assert missing == set(), f"error codes the code raises that openapi.yaml names nowhere: {sorted(missing)}"


@pytest.mark.parametrize(("path", "method"), sorted(ROUTES))
def test_every_operation_documents_its_answers(path, method):
    operation = DOC["paths"][path][method]
    statuses = set(operation["responses"])
    assert {"400", "429", "500"} <= statuses
    assert any(s.startswith("2") for s in statuses)
    for status, answer in operation["responses"].items():
        assert answer["content"]["application/json"]["schema"]["$ref"], status
    if path == "/webhooks/flexfactor":
        assert operation["security"] == [] and "401" in statuses and "403" not in statuses
    else:
        assert operation["security"] == MERCHANT_SECURITY and "403" in statuses


def test_security_schemes_are_as_deployed():
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["api_key"] == {**schemes["api_key"], "type": "apiKey", "name": "x-api-key", "in": "header"}
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    served = openapi.public(DOC)
    assert "x-amazon-" not in json.dumps(served)
    assert served["paths"] == DOC["paths"]


def test_evaluate_request_says_how_keys_bind_and_warnings():
    schema = DOC["components"]["schemas"]["EvaluateRequest"]
    assert "case-insensitively" in schema["description"] and "warnings" in schema["description"]
    assert schema["additionalProperties"] is True  # fields outside the contract are dropped, not refused
    answer = DOC["components"]["schemas"]["DeclineAnswer"]
    assert answer["properties"]["warnings"]["items"] == {"$ref": openapi.REF + "FieldIssue"}


# -- the examples are what the schemas say --------------------------------------------------


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema (nullable -> null allowed; example dropped)."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _validator(schema: str | dict[str, Any]) -> jsonschema.Validator:
    """A validator for an OpenAPI schema of openapi.yaml (or the name of a reference)."""
    top = _json_schema({"$ref": schema} if isinstance(schema, str) else schema)
    root = {"allOf": [top], "components": {"schemas": _json_schema(DOC["components"]["schemas"])}}
    return jsonschema.Draft7Validator(root)


EXAMPLES = [
    (path, method, where, name, media)
    for path, methods in DOC["paths"].items()
    for method, operation in methods.items()
    for where, media in [
        ("request", operation.get("requestBody", {}).get("content", {}).get("application/json", {})),
        *((status, a["content"]["application/json"]) for status, a in operation["responses"].items()),
    ]
    for name in media.get("examples", {})
]


@pytest.mark.parametrize(("path", "method", "where", "name", "media"), EXAMPLES, ids=lambda v: str(v)[:30])
def test_every_example_is_valid_against_its_schema(path, method, where, name, media):
    _validator(media["schema"]).validate(media["examples"][name]["value"])


def test_the_seed_examples_are_accepted_by_the_contract():
    media = DOC["paths"]["/declines"]["post"]["requestBody"]["content"]["application/json"]
    for example in media["examples"].values():
        validate_request(copy.deepcopy(example["value"]))


# -- the gateway checks only what the code refuses too --------------------------------------

BODY = load_raw()["Resources"]["CheckoutApi"]["Properties"]["DefinitionBody"]
DRAFT4 = {
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "description",
    "title",
    "default",
}


def _keywords(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_keywords(n) for n in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node) - {"properties"}
    for key, value in node.items():
        if key == "properties":
            found |= set().union(*(_keywords(v) for v in value.values())) if value else set()
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            found |= _keywords(value)
    return found


def test_the_templates_models_are_api_gateway_models():
    schemas = BODY["components"]["schemas"]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", name) for name in schemas), "API Gateway model names are alphanumeric"
    unsupported = set().union(*(_keywords(s) for s in schemas.values())) - DRAFT4
    assert unsupported == set(), f"not JSON Schema draft 4 (API Gateway refuses the model): {unsupported}"
    assert "*/" not in json.dumps(schemas)


def _validated_routes() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path, methods in BODY["paths"].items():
        for method, operation in methods.items():
            if "x-amazon-apigateway-request-validator" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                out[(path, method)] = BODY["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return out


def test_the_gateway_validates_only_that_a_decline_is_a_json_object():
    validators = BODY["x-amazon-apigateway-request-validators"]
    assert validators == {"body": {"validateRequestBody": True, "validateRequestParameters": False}}
    assert _validated_routes() == {("/declines", "post"): {"type": "object"}}
    assert "x-amazon-apigateway-request-validator" not in BODY  # no API-wide default


def _case_variants(body: Any) -> Any:
    """The same body with every key's case changed: the contract binds them all."""
    if isinstance(body, dict):
        return {
            (k.upper() if i % 2 else k[:1].upper() + k[1:]): _case_variants(v) for i, (k, v) in enumerate(body.items())
        }
    if isinstance(body, list):
        return [_case_variants(v) for v in body]
    return body


@pytest.mark.parametrize("name", ["post_cit.json", "post_mit.json"])
def test_what_the_code_accepts_the_gateway_lets_through(name):
    seed = json.loads(json.loads((ROOT / "events" / "evaluate_decline" / name).read_text())["body"])
    gateway = jsonschema.Draft4Validator(_validated_routes()[("/declines", "post")])
    sandbox_minimal = {  # what real clients send: the seed's "required" fields missing
        "orderId": "o-1",
        "idempotencyKey": "k1",
        "isDeclined": True,
        "transaction": {k: seed["transaction"][k] for k in ("id", "amount", "currency", "responseCode")}
        | {k: seed["transaction"][k] for k in ("avsResultCode", "cvvResultCode", "cavvResultCode")}
        | {"responseCodeSource": "NMI"},
        "paymentMethod": {"Token": True, "cardNumber": "tok_abcdefghijklmnop"},
    }
    for body in (seed, _case_variants(seed), sandbox_minimal):
        validate_request(copy.deepcopy(body))  # the code accepts it ...
        gateway.validate(body)  # ... so the gateway must


@pytest.mark.parametrize("body", [None, [], "x", 1, True])
def test_what_the_gateway_refuses_the_code_refuses_too(body):
    assert not jsonschema.Draft4Validator({"type": "object"}).is_valid(body)
    with pytest.raises(InvalidRequest) as refused:
        validate_request(body)
    assert [p.as_dict() for p in refused.value.problems] == [
        {"field": "body", "rule": "type", "message": "must be a JSON object"}
    ]


def test_the_gateways_refusal_keeps_the_apis_error_shape():
    response = BODY["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]
    assert response["statusCode"] == "400"
    body = json.loads(response["responseTemplates"]["application/json"])
    assert body == InvalidRequest([FieldProblem("body", "type", "must be a JSON object")]).body()
    _validator(openapi.REF + "DeclineInvalidError").validate(body)


# -- the request models read bodies as the services did ------------------------------------


def legacy_amount(body: Any, order: dict[str, Any]) -> int:
    """services.actions._amount before the model (the rules it must keep)."""
    if body is None:
        return int(order["amount"])
    if not isinstance(body, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    unknown = sorted(set(body) - {"amount"})
    if unknown:
        raise InvalidRequest([FieldProblem(unknown[0], "unknown", "is not a capture field (only amount)")])
    amount = body.get("amount", order["amount"])
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest([FieldProblem("amount", "type", "must be an integer amount in cents")])
    if not 0 < amount <= int(order["amount"]):
        raise InvalidRequest(
            [FieldProblem("amount", "range", f"must be above 0 and at most the order's amount ({order['amount']})")]
        )
    return amount


def legacy_refund(body: Any) -> tuple[int | None, str | None, str | None]:
    """services.refunds._parse before the model (the rules it must keep)."""
    if body is None:
        return None, None, None
    if not isinstance(body, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])
    problems = [
        FieldProblem(k, "unknown", "is not a refund field (amount, reason, idempotencyKey)")
        for k in body
        if k not in {"amount", "reason", "idempotencyKey"}
    ]
    amount, reason, key = body.get("amount"), body.get("reason"), body.get("idempotencyKey")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        problems.append(
            FieldProblem("amount", "type", "must be a positive integer in the currency's minor units (cents for USD)")
        )
    if reason is not None:
        if not isinstance(reason, str) or len(reason) > 255:
            problems.append(FieldProblem("reason", "type", "must be a string of at most 255 characters"))
        elif find_pans(reason):
            problems.append(FieldProblem("reason", "card_number_not_allowed", "holds what looks like a card number"))
        reason = reason.strip() or None if isinstance(reason, str) else reason
    if key is not None and (not isinstance(key, str) or not ORDER_ID.fullmatch(key) or find_pans(key)):
        problems.append(FieldProblem("idempotencyKey", "format", "must be 1-128 letters, digits or . _ : -"))
    if problems:
        raise InvalidRequest(problems)
    return amount, reason, key


def _outcome(fn, *args, **kwargs) -> Any:
    try:
        return ("ok", fn(*args, **kwargs))
    except InvalidRequest as exc:
        return ("400", [p.as_dict() for p in exc.problems])


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.sampled_from(["4111111111111111", "4111 1111 1111 1111", "rf-1", " ", "a" * 129, "a b", "x\n", "ok.key:1-2_3"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))


def _bodies(fields: list[str]):
    keys = st.one_of(st.sampled_from(fields), st.text(max_size=8))
    return st.one_of(VALUES, st.dictionaries(keys, VALUES, max_size=4))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies(["amount"]), order_amount=st.integers(min_value=1, max_value=10**6))
def test_the_capture_model_reads_bodies_as_before(body, order_amount):
    order = {"amount": order_amount}
    new = _outcome(api_models.CaptureRequest.parse, body, order_amount=order_amount)
    assert new == _outcome(legacy_amount, body, order)


@pytest.mark.parametrize(
    "body",
    [None, {}, {"amount": 1}, {"amount": 1500}, {"amount": 1501}, {"amount": 0}, {"amount": -1}, {"amount": None}],
)
def test_the_capture_model_on_the_edges(body):
    order = {"amount": 1500}
    assert _outcome(api_models.CaptureRequest.parse, body, order_amount=1500) == _outcome(legacy_amount, body, order)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies(["amount", "reason", "idempotencyKey"]))
def test_the_refund_model_reads_bodies_as_before(body):
    def new(raw):
        request = api_models.RefundRequest.parse(raw)
        return request.amount, request.reason, request.idempotencyKey

    assert _outcome(new, body) == _outcome(legacy_refund, body)


@pytest.mark.parametrize(
    "body",
    [
        {"amount": "10.00"},
        {"amount": 12.5},
        {"amount": 0},
        {"amount": True},
        {"amount": 100, "note": "x", "more": 1},
        {"reason": "card 4111 1111 1111 1111"},
        {"reason": 5},
        {"reason": "  "},
        {"reason": "x" * 256},
        {"idempotencyKey": "has space"},
        {"idempotencyKey": "4111111111111111"},
        {"idempotencyKey": "a" * 129},
        {"idempotencyKey": "ok\n"},
        {"amount": 0, "reason": 1, "idempotencyKey": "-x", "zz": 1},
        {"amount": 10**30, "reason": "fine", "idempotencyKey": "A.b:c-d_e"},
        [100],
    ],
)
def test_the_refund_model_on_the_edges(body):
    def new(raw):
        request = api_models.RefundRequest.parse(raw)
        return request.amount, request.reason, request.idempotencyKey

    assert _outcome(new, body) == _outcome(legacy_refund, body)


# -- the capture-context model is the selection parse_selection checks ---------------------


def _accepts_model(body: Any) -> bool:
    from pydantic import ValidationError

    try:
        api_models.CaptureContextRequest.model_validate(body)
        return True
    except ValidationError:
        return False


def _accepts_code(body: Any) -> bool:
    try:
        parse_selection(body)
        return True
    except InvalidRequest:
        return False


def _tree(paths: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, leaf in paths.items():
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


LEAVES = st.sampled_from([{}, {"required": False}, {"required": True}, {"required": "no"}, {"x": 1}, None, 1])
PATHS = st.sampled_from([*sorted(FLEX_FIELDS), "paymentInformation.card.pin", "orderInformation.other"])


@settings(max_examples=300, deadline=None)
@given(selection=st.dictionaries(PATHS, LEAVES, max_size=4), card=st.sampled_from([None, {}, {"required": False}]))
def test_the_capture_context_model_accepts_what_parse_selection_accepts(selection, card):
    paths = dict(selection)
    if card is not None:
        paths[CARD_NUMBER] = card
    tree = _tree(paths) if paths else {}
    for body in (tree, {"fields": tree}, {"fields": tree, "extra": {}}):
        assert _accepts_model(body) == _accepts_code(body), body


def test_every_flex_field_is_in_the_selection_schema():
    schemas = DOC["components"]["schemas"]
    found = set()
    stack = [("", "FieldSelection")]
    while stack:
        prefix, name = stack.pop()
        for field, schema in schemas[name]["properties"].items():
            ref = (schema.get("$ref") or schema["allOf"][0]["$ref"]).rsplit("/", 1)[-1]
            if ref in ("FlexField", "RequiredFlexField"):
                found.add(prefix + field)
            else:
                stack.append((f"{prefix}{field}.", ref))
    assert found == set(FLEX_FIELDS)


def test_the_answer_models_read_what_the_routes_answer():
    answer = {"orderId": "o-1", "status": "QUEUED", "submitted": False}
    api_models.DeclineAnswer.model_validate(answer)
    with pytest.raises(Exception):  # noqa: B017 - a status outside the statuses
        api_models.DeclineAnswer.model_validate({**answer, "status": "NOPE"})
    from decline_rescue.domain import statuses

    assert set(api_models.Status.__args__) == set(statuses.STATUSES)
    error = InvalidRequest([FieldProblem("amount", "type", "x")] * 30).body()
    api_models.ErrorAnswer.model_validate(error)
    _validator(openapi.REF + "InvalidRequestError").validate(error)


def test_the_cli_checks_and_prints(capsys):
    assert openapi.main(["--check"]) == 0
    assert openapi.main(["--print"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["paths"].keys() == DOC["paths"].keys()
    assert yaml.safe_load((ROOT / "openapi.yaml").read_text())["openapi"] == printed["openapi"]
