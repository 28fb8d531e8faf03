"""FlexFactor decline-rescue API emulator (PROVIDERS.md section 2, seed 003).

Provider endpoints (every ``/v1/`` one but the token wants ``Authorization: Bearer``;
missing, forged or expired: 401 ``{"title": "Unauthorized", "status": 401}``):

| Endpoint                          | Fault name | What it does                                                  |
|-----------------------------------|------------|---------------------------------------------------------------|
| `POST /v1/oauth2/token`           | `token`    | `{"AppKey", "AppSecret"}` -> HS256 JWT access token           |
| `POST /v1/evaluate`               | `evaluate` | validates (seed 003), answers the scenario, creates the order |
| `GET /v1/orders/{id}`             | `orders`   | one order                                                     |
| `GET /v1/orders?...`              | `orders`   | orders, filtered, sorted and paged                            |
| `POST /v1/capture`                | `capture`  | captures a Capturerequired order                              |
| `POST /v1/orders/{id}/cancel`     | `cancel`   | cancels an order still open                                   |
| `POST /v1/orders/{id}/refund`     | `refund`   | refunds a Completed order, once                               |

- Token: no grant_type, not form-encoded; signed with a per-emulator random secret, living
  ``token_ttl_seconds`` (600 by default, like the provider) of *real* time (advancing the
  emulator clock does not expire tokens). Wrong or missing credentials: 401 with the
  provider's ``Failed`` envelope.
- ``/v1/evaluate`` answers every problem at once as a 400 ProblemDetails with PascalCase
  dotted keys (required fields, MIT/CIT conditions, sandbox amount ``> 10 and < 20000``
  cents). Unknown fields are ignored. ``timezoneUtcOffset`` may be a numeric string ("-5"),
  ``zipcode`` stands for ``zipCode`` and ``isMIT`` may be omitted (a CIT), as the sandbox
  accepts. Idempotent on ``idempotencyKey``: the same key and body replay the stored answer
  without a new order; the same key with another body is a 409.
- Orders: ``{id, status, statusName, orderPlacedDate, expiryDate, referenceNumber (the
  merchant's orderId), amount, currency, isMIT}``; ``status`` is the provider's int enum
  (0 Draft, 1 Onhold, 2 Cancelled, 3 Problem, 4 Processing, 5 Capturerequired,
  6 Returned, 7 Completed). That enum has no Expired value: an expired order answers
  ``status`` 2 with ``statusName`` "Expired" (the status names of seed 003 list Expired).
  Unknown id: 404.
- ``GET /v1/orders?status=&from=&to=&orderBy=&sort=&pageSize=&pageNumber=`` answers
  ``{items, pageNumber, pageSize, pageCount, totalCount, hasNextPage, hasPreviousPage}``.
  ``status`` is an int of the enum or a status name (any case; "Expired" too; an int
  matches ``status``, a name ``statusName``); ``from``/``to`` are ISO dates or date-times
  bounding ``orderPlacedDate`` (inclusive; a bare ``to`` date means to the end of that
  day); ``orderBy`` only ``orderPlacedDate`` (default); ``sort`` asc|desc (default desc);
  ``pageSize`` 1..100 (default 20); ``pageNumber`` from 1 (default 1). A bad parameter is
  a 400 ProblemDetails whose ``errors`` key is the parameter's name.
- ``POST /v1/capture {idempotencyKey, orderId, amount, currency}``: ``orderId`` is
  FlexFactor's id; only a Capturerequired order; ``amount`` integer cents 1..the order's
  amount, ``currency`` the order's. Answers ``{"status": "SUCCESS", "success": true,
  "orderId", "capturedAmount", "currency", ...}`` or ``{"status": "FAILED", "success":
  false, "errors": [{"key", "error"}], ...}`` with 400 (invalid body, amount, currency),
  404 (unknown order) or 409 (wrong state; key reused with another body). A success is
  kept 24 h (emulator time) under its ``idempotencyKey``: the same body replays it.
  Moves the order to Completed (``order.completed``).
- ``POST /v1/orders/{id}/cancel``, optional JSON ``{"idempotencyKey"}``: MIT orders in
  Draft, Processing or Capturerequired, CIT orders in Capturerequired; otherwise a 409
  ProblemDetails naming the state. With a key a success is replayed for 24 h; the key with
  another order is a 409. Moves the order to Cancelled (``order.cancelled``).
- ``POST /v1/orders/{id}/refund {"amountToRefund": dollars, "refundMessage"?}``: a
  Completed order only (409 otherwise), amount > 0, at most 2 decimals, at most what was
  charged (400 otherwise). One refund per order: the order becomes Returned
  (``order.refunded``) and every later call is a no-op answering the first refund with
  ``"alreadyRefunded": true``, so nothing is ever refunded twice.

Faults (``POST /__emulator/faults``, per fault name above): ``{"delay": seconds}`` waits
then answers normally; ``{"status": n}`` answers n (409: the provider's "still in
progress", 401: unauthorized, otherwise ``{"status": n, "title": "injected fault"}``). A
fault is taken after the bearer check and before anything else, so it changes nothing.

Default credentials: ``ff-local-app-key`` / ``ff-local-app-secret``; default subscriber
key :data:`DEFAULT_WEBHOOK_KEY`. Request and webhook bodies are never logged
(``cardNumber`` may be a real PAN for a PCI-compliant merchant).

One job per module: ``app`` (:class:`FlexFactorEmulator`: its state and the evaluate,
orders, capture, cancel and refund endpoints), ``auth`` (the token endpoint, the bearer
check, faults), ``validation`` (request checks), ``orders`` (orders, the scenarios and
what then happens), ``clock`` (emulator time, the order timeline), ``webhooks`` (signing,
switches, delivery), ``admin`` (the ``/__emulator/`` endpoints), ``responses`` (the
provider's answer shapes) and ``__main__`` (``python -m devstack.emulators.flexfactor``).
The endpoint-specific parts of the contract are in the docstrings of ``orders``,
``webhooks`` and ``admin``.
"""

from devstack.emulators.flexfactor.app import FlexFactorEmulator
from devstack.emulators.flexfactor.auth import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DEFAULT_TOKEN_TTL
from devstack.emulators.flexfactor.orders import (
    DEFAULT_CAPTURE_WINDOW,
    DEFAULT_STEP_SECONDS,
    Order,
    OrderStatus,
    decide,
    plan,
)
from devstack.emulators.flexfactor.validation import parse_list_query, validate
from devstack.emulators.flexfactor.webhooks import (
    DEFAULT_WEBHOOK_CONTENT_TYPE,
    DEFAULT_WEBHOOK_KEY,
    Switches,
    WebhookEntry,
    sign_webhook,
)

__all__ = [
    "DEFAULT_APP_KEY",
    "DEFAULT_APP_SECRET",
    "DEFAULT_CAPTURE_WINDOW",
    "DEFAULT_STEP_SECONDS",
    "DEFAULT_TOKEN_TTL",
    "DEFAULT_WEBHOOK_CONTENT_TYPE",
    "DEFAULT_WEBHOOK_KEY",
    "FlexFactorEmulator",
    "Order",
    "OrderStatus",
    "Switches",
    "WebhookEntry",
    "decide",
    "parse_list_query",
    "plan",
    "sign_webhook",
    "validate",
]
