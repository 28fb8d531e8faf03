"""Capture-context issuance: which fields to capture, ask Cybersource, verify the answer.

The field selection uses the Flex shape of seed 000: a tree whose leaves are ``{}``
(required) or ``{"required": false}`` (optional), with or without the ``fields``
wrapper. Every leaf must be one of the fields Flex API v2 can capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decline_rescue.domain.errors import CaptureContextUnverified, ConfigurationError, FieldProblem, InvalidRequest
from decline_rescue.runtime import settings
from decline_rescue.runtime.deadline import within
from decline_rescue.runtime.observability import logger, metrics

# The capturable fields, as listed by seed 000 ("Payment API Fields").
FLEX_FIELDS: frozenset[str] = frozenset(
    [
        *(f"orderInformation.amountDetails.{f}" for f in ("currency", "totalAmount")),
        *(
            f"orderInformation.billTo.{f}"
            for f in (
                "address1",
                "address2",
                "administrativeArea",
                "buildingNumber",
                "company",
                "country",
                "district",
                "email",
                "firstName",
                "lastName",
                "locality",
                "phoneNumber",
                "postalCode",
            )
        ),
        *(
            f"orderInformation.shipTo.{f}"
            for f in (
                "address1",
                "address2",
                "administrativeArea",
                "buildingNumber",
                "company",
                "country",
                "district",
                "firstName",
                "lastName",
                "locality",
                "postalCode",
            )
        ),
        *(
            f"paymentInformation.card.{f}"
            for f in ("expirationMonth", "expirationYear", "number", "securityCode", "type")
        ),
    ]
)
CARD_NUMBER = "paymentInformation.card.number"
_PREFIXES = frozenset(".".join(path.split(".")[:i]) for path in FLEX_FIELDS for i in range(1, path.count(".") + 1))


@dataclass(frozen=True)
class FieldSelection:
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def as_flex_fields(self) -> dict[str, Any]:
        """The ``fields`` object of POST /flex/v2/sessions (the SDK's form)."""
        tree: dict[str, Any] = {}
        for path, leaf in [(p, {}) for p in self.required] + [(p, {"required": False}) for p in self.optional]:
            node = tree
            *parents, last = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = leaf
        return tree


def default_selection() -> FieldSelection:
    """The configured default, held to the same rules as a request's selection."""
    cfg = settings.cybersource()
    configured = FieldSelection(cfg.capture_required_fields, cfg.capture_optional_fields)
    try:
        return parse_selection({"fields": configured.as_flex_fields()})
    except InvalidRequest as exc:
        raise ConfigurationError(
            "the default capture fields (CAPTURE_REQUIRED_FIELDS / CAPTURE_OPTIONAL_FIELDS) are invalid: " + exc.message
        ) from None


def parse_selection(body: Any) -> FieldSelection:
    """Validate a request body into a field selection, or raise ``InvalidRequest``."""
    if body is None or body == {}:
        return default_selection()
    if not isinstance(body, dict):
        raise InvalidRequest([FieldProblem("body", "type", "must be a JSON object")])

    problems: list[FieldProblem] = []
    if "fields" in body:
        for key in body:
            if key != "fields":
                problems.append(FieldProblem(key, "unknown_field", "is not a known request field"))
        tree, root = body["fields"], "fields"
    else:  # the seed's form: the selection tree itself, no wrapper
        tree, root = body, "fields"
    if not isinstance(tree, dict):
        raise InvalidRequest([FieldProblem(root, "type", "must be a JSON object")])

    required: list[str] = []
    optional: list[str] = []
    _walk(tree, "", root, required, optional, problems)
    if not problems:
        if CARD_NUMBER in optional:
            problems.append(
                FieldProblem(
                    f"{root}.{CARD_NUMBER}",
                    "card_number_required",
                    "the card number must be required: a capture context without it captures no card",
                )
            )
        elif CARD_NUMBER not in required:
            problems.append(
                FieldProblem(
                    f"{root}.{CARD_NUMBER}",
                    "missing",
                    "must be selected: a capture context without it captures no card",
                )
            )
    if problems:
        raise InvalidRequest(problems)
    return FieldSelection(tuple(required), tuple(optional))


def _walk(
    node: dict[str, Any],
    path: str,
    root: str,
    required: list[str],
    optional: list[str],
    problems: list[FieldProblem],
) -> None:
    if not node:
        problems.append(FieldProblem(f"{root}.{path}" if path else root, "empty", "selects no field"))
        return
    for key, value in node.items():
        child = f"{path}.{key}" if path else key
        where = f"{root}.{child}"
        if child in FLEX_FIELDS:
            _leaf(value, child, where, required, optional, problems)
        elif child in _PREFIXES:
            if not isinstance(value, dict):
                problems.append(FieldProblem(where, "type", "must be a JSON object"))
            else:
                _walk(value, child, root, required, optional, problems)
        else:
            problems.append(FieldProblem(where, "unknown_field", "is not a field Flex API v2 can capture"))


def _leaf(
    value: Any,
    path: str,
    where: str,
    required: list[str],
    optional: list[str],
    problems: list[FieldProblem],
) -> None:
    if not isinstance(value, dict):
        problems.append(FieldProblem(where, "type", 'must be {} or {"required": false}'))
        return
    extra = [k for k in value if k != "required"]
    if extra:
        problems.append(FieldProblem(f"{where}.{extra[0]}", "unknown_field", 'a field takes only "required"'))
        return
    flag = value.get("required", True)
    if not isinstance(flag, bool):
        problems.append(FieldProblem(f"{where}.required", "type", "must be true or false"))
        return
    (required if flag else optional).append(path)


def issue_capture_context(selection: FieldSelection, client=None, *, lambda_context=None):
    """Ask Cybersource for a capture context for ``selection`` and verify it, all within
    one time budget (the provider budget, and never past the Lambda timeout)."""
    client = client or cybersource_client()
    with within(settings.cybersource().calls.budget_seconds, lambda_context=lambda_context):
        token = client.create_session(selection.as_flex_fields())
        try:
            verified = client.verify(token, required=selection.required, optional=selection.optional)
        except CaptureContextUnverified as exc:
            metrics.add_metric(name="CaptureContextVerificationFailed", unit="Count", value=1)
            logger.error("capture context failed verification", extra={"reason": exc.reason})
            raise
    metrics.add_metric(name="CaptureContextIssued", unit="Count", value=1)
    return verified


_client = None


def cybersource_client():
    """The execution environment's client (connections and key cache kept warm)."""
    global _client
    if _client is None:
        from decline_rescue.infra.http import ProviderHttp
        from decline_rescue.infra.secrets import json_secret, require_base64, require_keys
        from decline_rescue.providers.cybersource.client import Credentials, CybersourceClient

        cfg = settings.cybersource()

        def credentials(force: bool) -> Credentials:
            raw = json_secret(cfg.secret_id, max_age=cfg.secret_max_age_seconds, force=force)
            values = require_keys(cfg.secret_id, raw, ("merchantId", "keyId", "sharedSecret"))
            require_base64(cfg.secret_id, "sharedSecret", values["sharedSecret"])
            return Credentials(values["merchantId"], values["keyId"], values["sharedSecret"])

        _client = CybersourceClient(
            ProviderHttp("cybersource", cfg.base_url, cfg.calls),
            credentials,
            leeway_seconds=cfg.jwt_leeway_seconds,
        )
    return _client


def reset_client() -> None:
    """Drop the cached client (tests that change settings between cases)."""
    global _client
    if _client is not None:
        _client.http.close()
    _client = None
