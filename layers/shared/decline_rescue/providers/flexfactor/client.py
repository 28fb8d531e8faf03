"""FlexFactor client: OAuth2 token, /v1/evaluate, orders.

- ``POST /v1/oauth2/token`` with ``{"AppKey", "AppSecret"}`` from Secrets Manager; the
  token is cached for the execution environment and refreshed before it expires or once
  on a 401 (the provider asks not to fetch a token per request).
- ``POST /v1/evaluate`` with bounded retries on timeouts, 5xx and 409 (an idempotent
  request still in progress), always with the same body, so the same idempotencyKey:
  a retry never creates a second rescue.
- A provider 400 becomes ``ProviderValidationFailed`` naming each field in the request's
  own spelling, whichever of the three shapes FlexFactor answers (PROVIDERS.md, "What
  real FlexFactor traffic shows"): the flat ``{"TraceId": [..], "OrderId": ["..."]}``,
  the older ``{"status": "400", "errors": {..}}`` and ProblemDetails ``{type, title,
  status, traceId, errors: {..}}`` (``TraceId`` is kept for the log, never a field).
- Bad app credentials answer **400** from the token endpoint (not 401): both are an
  authentication failure; the secret is re-read once, then ``ProviderAuthError`` (502)
  names FlexFactor's credentials. ``result``, ``status``, ``statusCode`` may be null.
- Orders: ``GET /v1/orders/{id}``, the paged ``GET /v1/orders`` list, ``POST /v1/capture``,
  ``POST /v1/orders/{id}/cancel``, ``POST /v1/orders/{externalOrderId}/external-cancel``
  (by the merchant's orderId: the way out when /evaluate timed out before an
  orderSessionKey came back) and ``POST /v1/orders/{id}/refund``. Captures and cancels
  carry an idempotencyKey, so a retry after a timeout is safe; their 409 means "not in a
  state for this", not "retry". FlexFactor answers a failed capture or refund with HTTP
  **200** and ``status: "FAILED"`` (``success: false``; a refund's ``responseCode``,
  ``responseMessage`` and ``errors: [{item1..item4}]``): that is a failure, read as one;
  a cancel's success is ``200 {}``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from decline_rescue.domain.errors import (
    FieldProblem,
    InvalidRequest,
    ProviderAuthError,
    ProviderRejected,
)
from decline_rescue.infra.http import Prepared, ProviderHttp
from decline_rescue.runtime.observability import logger, provider_call

PROVIDER = "flexfactor"
TOKEN_PATH = "/v1/oauth2/token"
EVALUATE_STATUSES = frozenset({"APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "SUBMITTED"})
REFRESH_MARGIN_SECONDS = 30
# the sandbox answers bad credentials with 400 (PROVIDERS.md); the docs say 401
CREDENTIALS_REFUSED = frozenset({400, 401, 403})


@dataclass(frozen=True)
class Credentials:
    app_key: str
    app_secret: str = field(repr=False)


@dataclass(frozen=True)
class EvaluateAnswer:
    status: str
    order_session_key: str
    sense_key: str | None
    raw: dict[str, Any]


class ProviderValidationFailed(InvalidRequest):
    """FlexFactor refused the request's fields (its 400): the caller must fix them."""

    code = "PROVIDER_VALIDATION_FAILED"


def _field_name(provider_field: str) -> str:
    """``PaymentMethod.ExpirationMonth`` -> ``paymentMethod.expirationMonth``."""
    parts = [p for p in provider_field.replace("$.", "").split(".") if p]
    return ".".join(p[:1].lower() + p[1:] for p in parts) or "body"


class FlexFactorClient:
    def __init__(
        self,
        http: ProviderHttp,
        credentials: Callable[[bool], Credentials],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    # -- token ----------------------------------------------------------------------

    @provider_call(PROVIDER, "token")
    def _fetch_token(self) -> None:
        for force in (False, True):
            creds = self._credentials(force)
            body = json.dumps({"AppKey": creds.app_key, "AppSecret": creds.app_secret}).encode()
            response = self.http.request(
                "POST",
                TOKEN_PATH,
                lambda body=body: Prepared({"Content-Type": "application/json", "Accept": "application/json"}, body),
            )
            if response.status_code not in CREDENTIALS_REFUSED:
                break
            logger.warning(
                "flexfactor refused the app credentials",
                extra={"http": response.status_code, "reread_secret": not force},
            )
        if response.status_code in CREDENTIALS_REFUSED:
            raise ProviderAuthError(
                PROVIDER,
                f"FlexFactor refused the app credentials (HTTP {response.status_code} from the token endpoint): "
                "check appKey and appSecret in the FlexFactor secret",
            )
        if response.status_code != 200:
            raise ProviderRejected(PROVIDER, f"FlexFactor token request failed (HTTP {response.status_code})")
        try:
            data = response.json()
            token = data["accessToken"]
            expires = float(data.get("expires") or 0) / 1000.0 or self._clock() + 600
        except (ValueError, KeyError, TypeError):
            raise ProviderRejected(PROVIDER, "FlexFactor token answer is malformed") from None
        self._token, self._token_expires = token, expires

    def bearer(self, *, force: bool = False) -> str:
        with self._lock:
            if force or self._token is None or self._clock() >= self._token_expires - REFRESH_MARGIN_SECONDS:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _authorized(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        retry_statuses: frozenset[int] | None = None,
        attempts: int | None = None,
    ):
        for refresh in (False, True):
            token = self.bearer(force=refresh)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            response = self.http.request(
                method,
                path,
                lambda headers=headers: Prepared(headers, body),
                retry_statuses=retry_statuses,
                attempts=attempts,
            )
            if response.status_code != 401:
                return response
            logger.warning("flexfactor refused the access token", extra={"path": path, "refreshed": refresh})
        raise ProviderAuthError(PROVIDER, "FlexFactor refused a freshly issued access token (HTTP 401)")

    # -- endpoints ------------------------------------------------------------------

    @provider_call(PROVIDER, "evaluate")
    def evaluate(self, body: dict[str, Any]) -> EvaluateAnswer:
        response = self._authorized("POST", "/v1/evaluate", json.dumps(body, separators=(",", ":")).encode())
        if response.status_code == 400:
            raise ProviderValidationFailed(_validation_problems(response), "FlexFactor refused the request's fields")
        if response.status_code != 200:
            raise ProviderRejected(
                PROVIDER, f"FlexFactor refused the evaluation (HTTP {response.status_code})", reason=_title(response)
            )
        try:
            data = response.json()
        except ValueError:
            raise ProviderRejected(PROVIDER, "FlexFactor answered something that is not JSON") from None
        data = {k[:1].lower() + k[1:]: v for k, v in data.items()} if isinstance(data, dict) else {}
        status = str(data.get("status") or "").upper()
        key = data.get("orderSessionKey") or data.get("orderId")
        if status not in EVALUATE_STATUSES or not key:
            raise ProviderRejected(
                PROVIDER,
                "FlexFactor answered without a known status or order session key",
                reason=status or "no status",
            )
        return EvaluateAnswer(status, str(key), data.get("senseKey"), data)

    @provider_call(PROVIDER, "get_order")
    def get_order(self, order_session_key: str) -> dict[str, Any] | None:
        response = self._authorized("GET", f"/v1/orders/{quote(order_session_key, safe='')}", retry_statuses=_NONE)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderRejected(PROVIDER, f"FlexFactor order lookup failed (HTTP {response.status_code})")
        return _object(response)

    @provider_call(PROVIDER, "list_orders")
    def list_orders(self, **params: Any) -> dict[str, Any]:
        """One page of ``GET /v1/orders`` (``from``, ``to``, ``status``, ``pageSize``, ...)."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        response = self._authorized("GET", f"/v1/orders?{query}", retry_statuses=_NONE)
        if response.status_code != 200:
            raise ProviderRejected(PROVIDER, f"FlexFactor order list failed (HTTP {response.status_code})")
        return _object(response)

    @provider_call(PROVIDER, "capture")
    def capture(self, *, idempotency_key: str, order_session_key: str, amount: int, currency: str) -> ActionAnswer:
        body = {"idempotencyKey": idempotency_key, "orderId": order_session_key, "amount": amount, "currency": currency}
        response = self._authorized("POST", "/v1/capture", _json(body), retry_statuses=_NONE)
        return _action(response, "capture")

    @provider_call(PROVIDER, "cancel")
    def cancel(self, *, order_session_key: str, idempotency_key: str) -> ActionAnswer:
        path = f"/v1/orders/{quote(order_session_key, safe='')}/cancel"
        response = self._authorized("POST", path, _json({"idempotencyKey": idempotency_key}), retry_statuses=_NONE)
        return _action(response, "cancel")

    @provider_call(PROVIDER, "external_cancel")
    def external_cancel(self, *, external_order_id: str) -> ActionAnswer | None:
        """Cancel by the merchant's orderId (``POST /v1/orders/{externalOrderId}/external-cancel``);
        None when FlexFactor has no order under it (404: nothing was submitted)."""
        path = f"/v1/orders/{quote(external_order_id, safe='')}/external-cancel"
        response = self._authorized("POST", path, b"{}", retry_statuses=_NONE)
        if response.status_code == 404:
            try:
                found = response.json()
            except ValueError:
                found = None
            if isinstance(found, dict):  # FlexFactor's own "no such order" (JSON)
                return None
            # a route miss (plain "Not Found"): the endpoint is not there, which says nothing
            return ActionAnswer(False, 404, "FlexFactor answered the external-cancel route with Not Found", {})
        return _action(response, "external-cancel")

    @provider_call(PROVIDER, "refund")
    def refund(self, *, order_session_key: str, amount: str, message: str | None = None) -> ActionAnswer:
        """``POST /v1/orders/{id}/refund``; ``amount`` in the currency's major units as a
        decimal string ("12.34", "1500" for JPY, "1.500" for KWD): written into the JSON as
        a number exactly as given, never through a float."""
        if not _DECIMAL.fullmatch(amount):
            raise ValueError("amount must be a decimal string")
        body = f'{{"amountToRefund":{amount}'
        if message:
            body += f',"refundMessage":{json.dumps(message)}'
        path = f"/v1/orders/{quote(order_session_key, safe='')}/refund"
        # one attempt: a refund carries no idempotency key, so a resend could refund again
        response = self._authorized("POST", path, (body + "}").encode(), retry_statuses=_NONE, attempts=1)
        return _action(response, "refund")


_NONE: frozenset[int] = frozenset()
_DECIMAL = re.compile(r"\d{1,15}(?:\.\d{1,4})?")


@dataclass(frozen=True)
class ActionAnswer:
    """A capture's or a cancel's outcome: ``ok``; otherwise the HTTP status and why."""

    ok: bool
    http_status: int
    message: str
    raw: dict[str, Any]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _object(response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ProviderRejected(PROVIDER, "FlexFactor answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderRejected(PROVIDER, "FlexFactor answered something that is not a JSON object")
    return data


def _action(response, what: str) -> ActionAnswer:
    try:
        data = response.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    status = str(data.get("status") or "").upper()
    if (
        response.status_code == 200
        and status not in ("FAILED", "FAILURE", "ERROR")
        and data.get("success") is not False
    ):
        return ActionAnswer(True, 200, "", data)
    if response.status_code in (200, 400, 404, 409, 422):
        return ActionAnswer(False, response.status_code, (_message(data) or f"{what} failed")[:300], data)
    raise ProviderRejected(PROVIDER, f"FlexFactor {what} failed (HTTP {response.status_code})", reason=_title(response))


def _message(data: dict[str, Any]) -> str:
    """What FlexFactor says went wrong, whichever shape: ``responseMessage`` (refunds), the
    first field error of a 400 (flat, legacy or ProblemDetails), ``title``, ``message``, or
    the first of ``errors`` as a list (``{key, error}`` or ``{item1: message, ...}``)."""
    if isinstance(data.get("responseMessage"), str) and data["responseMessage"].strip():
        return data["responseMessage"].strip()
    errors = data.get("errors")
    if not isinstance(errors, list):
        for name, messages in validation_errors(data).items():
            return f"{name}: {messages[0]}" if messages else name
    for name in ("title", "message"):
        if isinstance(data.get(name), str) and data[name].strip():
            return data[name].strip()
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, str) and item.strip():
                return item.strip()
            if isinstance(item, dict):
                for name in ("error", "item1", "message", "description"):
                    if isinstance(item.get(name), str) and item[name].strip():
                        return item[name].strip()
    return ""


def _title(response) -> str:
    try:
        return str(response.json().get("title") or f"HTTP {response.status_code}")[:200]
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


# keys of a 400 body that are not fields: ProblemDetails members and the trace id
_NOT_FIELDS = frozenset({"type", "title", "status", "detail", "instance", "traceid", "errors", "success", "result"})


def validation_errors(data: Any) -> dict[str, list[str]]:
    """Field -> messages from any of FlexFactor's 400 shapes: ``{"errors": {..}}``
    (ProblemDetails, or ``{"status": "400", "errors": {..}}``), or the flat body whose
    own keys are the fields; ``errors`` as a list of ``{key, error}`` is read too."""
    if not isinstance(data, dict):
        return {}
    errors = data.get("errors")
    if not isinstance(errors, (dict, list)) or not errors:
        errors = {k: v for k, v in data.items() if k.lower() not in _NOT_FIELDS and isinstance(v, list)}
    found: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for name, messages in errors.items():
            if str(name).lower() == "traceid":
                continue
            found[str(name)] = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
    else:
        for item in errors:
            if isinstance(item, dict):
                name = str(item.get("key") or item.get("field") or "body")
                found.setdefault(name, []).append(str(item.get("error") or item.get("message") or item))
    return found


def _validation_problems(response) -> list[FieldProblem]:
    try:
        data = response.json()
    except ValueError:
        data = None
    problems = [
        FieldProblem(_field_name(name), "provider", message[:300])
        for name, messages in validation_errors(data).items()
        for message in messages
    ]
    return problems or [FieldProblem("body", "provider", _title(response))]
