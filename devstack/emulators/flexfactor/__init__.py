"""FlexFactor decline-rescue API emulator (PROVIDERS.md section 2).

The sandbox is the truth, not the seed: behaviour marked [seen] is what real sandbox
traffic showed (PROVIDERS.md "What real FlexFactor traffic shows"); [emulated] is this
emulator's own plausible choice where nothing real was seen. Every ``/v1/`` endpoint but
the token wants ``Authorization: Bearer``; missing, forged or expired: 401 ``{"title":
"Unauthorized", "status": 401}`` [emulated body].

| Endpoint                                | Fault      | What it does                                      |
|-----------------------------------------|------------|---------------------------------------------------|
| `POST /v1/oauth2/token`                 | `token`    | app key and secret (any case) -> a JWT            |
| `POST /v1/evaluate`                     | `evaluate` | binds and checks as the sandbox, plays a scenario |
| `GET /v1/orders/{id}`                   | `orders`   | one order                                         |
| `GET /v1/orders?...`                    | `orders`   | orders, filtered, sorted, paged (10 a page)       |
| `POST /v1/capture`                      | `capture`  | captures a CAPTUREREQUIRED order (failure: 200)   |
| `POST /v1/orders/{id}/cancel`           | `cancel`   | cancels an order still open: `200 {}` [seen]      |
| `POST /v1/orders/{ext}/external-cancel` | `cancel`   | cancels by the merchant's orderId [seen]          |
| `POST /v1/orders/{id}/refund`           | `refund`   | partial refunds up to the charge; failure: 200    |

- Token [seen]: JSON ``{"AppKey", "AppSecret"}`` bound case-insensitively (the Node sample
  sends ``appKey``/``appSecret``); no grant_type, not form-encoded. Success: ``{accessToken,
  refreshToken, expires (ms), id, session: null, daysToEnforceMFA: null, skipAvailable:
  null, success: true, result: null, status: null, statusCode: null, errors: [],
  customProperties: {}}``; claims ``sub``/``unique_name`` (= ``id``), ``jti``, ``iat`` (ms, a
  string), ``aud`` (a list), ``custom:mid``, ``nbf``, ``exp``, ``iss`` "Api-Client-Service".
  Bad or missing credentials: **400** [seen] ``{"success": false, "result": null, "status":
  null, "statusCode": null, "errors": [{"key": "", "error": "Invalid credentials"}],
  "customProperties": {}}`` [emulated body]. Signed with a per-emulator random secret,
  living ``token_ttl_seconds`` (600 by default, as the provider) of *real* time (advancing
  the emulator clock does not expire tokens) [emulated].
- ``/v1/evaluate`` [seen]: property names bind case-insensitively at every level (ASP.NET:
  ``OrderId``, ``paymentMethod.Token``, ``threeDSecure.EcommerceIndicator``, ``Source``,
  ``ExtraData``), numbers may be numeric strings, unknown fields are ignored. Required:
  ``orderId`` ("Merchant's orderId is required"), ``isDeclined``, ``idempotencyKey`` (any
  non-empty string), ``transaction.id``, ``.responseCode``, ``.responseCodeSource`` (""
  is missing), ``.avsResultCode``, ``.cvvResultCode``, ``.cavvResultCode`` ("The <Name>
  field is required.") [seen]; ``transaction``,
  ``.amount``, ``.currency`` (the order needs them) and ``isDeclined`` true [emulated]. Not
  required [seen]: ``transaction.timestampUtc`` (the gateway sends ``timestamp``),
  ``customerIp``, ``isMIT`` (absent: a CIT), ``isRecurring``, ``timezoneUtcOffset`` (a number
  or "-5"), ``expiryDateUtc`` (null is fine; "" is "The field ExpiryDateUtc is invalid."),
  ``orderSource`` (any string), ``transactionType`` (Purchase|Authorization, any case),
  ``payer.email`` (any string), ``subscription.*`` (``price`` a number or numeric string),
  ``threeDSecure.*``, every ``paymentMethod`` field (``{"Token": true, "cardNumber":
  "<token>"}`` will do), ``responseCodeSource`` (""), ``responseStatus`` (any string). The
  money rule [seen]: ``amount`` an integer > 10 and < 20000 (cents). A value that cannot
  bind (``amount`` "abc", ``isMIT`` "yes", a date that is not one) is "The field <Name> is
  invalid."; ``expirationMonth`` 1..12 and a 4-digit ``expirationYear`` when present.
  Every problem is answered at once (the real server may stop at the first binding
  error) [emulated]. Answer: ``{orderSessionKey, senseKey (null when none), orderId,
  success, result, status, statusCode: null, errors: [], customProperties: {}}`` [seen].
  Idempotent on ``idempotencyKey`` [doc]: the same key and body (property names in any
  case) replay the stored answer without a new order; the same key with another body is a
  409 ``{"status": 409, "title": ...}``.
- A 400 for missing or invalid fields (evaluate, the orders list, cancel and refund bodies)
  has PascalCase dotted keys and, by ``errorShape`` (``POST /__emulator/config``), is
  ``flat`` (default, the sandbox today [seen]) ``{"TraceId": ["00-<32 hex>-<16 hex>-01"],
  "OrderId": [...], "Transaction.Id": [...]}``, ``legacy`` (older sandbox answers [seen])
  ``{"status": "400", "errors": {..., "TraceId": [...]}}`` or ``problem`` (the docs)
  ``{type, title, status: 400, traceId, errors: {...}}``.
- Orders: ``{id, status, statusName, orderPlacedDate, expiryDate, referenceNumber (the
  merchant's orderId), amount, currency, currencyCode, currencySymbol, correlationId,
  isMIT}``; ``status`` is the provider's int enum (0 Draft, 1 Onhold, 2 Cancelled,
  3 Problem, 4 Processing, 5 Capturerequired, 6 Returned, 7 Completed) [doc];
  ``statusName`` is upper case (``CAPTUREREQUIRED``, ``COMPLETED``) [seen]. That enum has no
  Expired value: an expired order answers ``status`` 2 with ``statusName`` "EXPIRED"
  [emulated]. Unknown id: 404.
- ``GET /v1/orders?status=&from=&to=&orderBy=&sort=&pageSize=&pageNumber=&query=&mid=``
  answers ``{items, pageNumber, pageSize, pageCount, totalCount, hasNextPage,
  hasPreviousPage}``. ``pageSize`` 1..100, 10 by default [seen]; ``orderBy`` ``createdOn``
  (default) or ``amount`` [seen], ``orderPlacedDate`` kept (= createdOn); ``query`` a text
  found in the id or the merchant's orderId, any case, and ``mid`` the merchant [seen
  parameters, emulated matching]. ``status`` is an int of the enum or a status name (any
  case; "Expired" too); ``from``/``to`` are ISO dates or date-times bounding
  ``orderPlacedDate`` (inclusive; a bare ``to`` date means to the end of that day); ``sort``
  asc|desc (default desc); ``pageNumber`` from 1 (default 1). Parameter names in any case.
  A bad parameter is a 400 (``errorShape``) whose key is the parameter's name.
- ``POST /v1/capture {idempotencyKey, orderId, amount, currency}``: ``orderId`` is
  FlexFactor's id; only a CAPTUREREQUIRED order; ``amount`` integer cents 1..the order's
  amount, ``currency`` the order's. Answers ``{"status": "SUCCESS", "success": true,
  "orderId", "capturedAmount", "currency", ...}``; an order in another state, an amount
  above the order's or another currency: HTTP **200** ``{"status": "FAILED", "success":
  false, "errors": [{"key", "error"}], ...}`` [seen: 200 FAILED]; a malformed body 400, an
  unknown order 404, a key reused with another body 409 (same envelope) [emulated]. A
  success is kept 24 h (emulator time) under its ``idempotencyKey``: the same body
  replays it. Moves the order to COMPLETED (``order.completed``).
- ``POST /v1/orders/{id}/cancel``, optional JSON ``{"idempotencyKey"}``: MIT orders in
  DRAFT, PROCESSING or CAPTUREREQUIRED, CIT orders in CAPTUREREQUIRED [doc]; answers
  ``200 {}`` [seen]; otherwise a 409 ``{"status", "title"}`` naming the state [emulated].
  With a key a success is replayed for 24 h; the key with another order is a 409. Moves
  the order to CANCELLED (``order.cancelled``).
- ``POST /v1/orders/{ext}/external-cancel`` [seen]: a cancel by the merchant's
  ``orderId`` (as sent to /evaluate, case-sensitive; the latest such order), for when
  /evaluate timed out and no orderSessionKey came back; ``200 {}``, and ``200 {}`` again
  for an order already CANCELLED; unknown: 404 ProblemDetails ``{type, title, status,
  detail, traceId}`` [emulated].
- ``POST /v1/orders/{id}/refund {"amountToRefund": <major units>, "refundMessage"?}``: a
  COMPLETED order, refunded in one or several parts up to what was charged (the captured
  amount, else the order's); it becomes RETURNED once fully refunded, and each refund
  sends ``order.refunded`` [emulated rules]. Success: 200 ``{"success": true, "status":
  "SUCCESS", "result": "Success", "statusCode": null, "responseCode": "0",
  "responseMessage": "Refunded", "transactionId", "errors": [], "customProperties": {},
  "amountRefunded"}`` [emulated]. More than is left: HTTP **200** ``{"responseCode":
  "2001", "responseMessage": "Amount to refund (1.00) is greater than maximum refund
  amount in (0.00))", "transactionId": null, "success": false, "result": null, "status":
  "FAILED", "statusCode": null, "errors": [{"item1": <message>, "item2": "2001", "item3":
  "2001", "item4": true}], "customProperties": {}}`` [seen]; an order in another state: the
  same shape naming the state [emulated]. Amounts follow the currency's ISO 4217 exponent
  (JPY 0, USD 2, KWD 3; ``money``); more decimals than that, an amount <= 0 or one that is
  not a number: a 400 (``errorShape``) on ``AmountToRefund``. No idempotency key: a
  repeated call refunds again while something is left.
- Webhooks (``webhooks``): ``Content-Type: text/plain; charset=utf-8`` ("not sent in
  application/json" [seen]), ``EventData: null`` for ``order.completed`` (FlexCharge's
  official sample [seen]), the provider's signature scheme [doc].

Faults (``POST /__emulator/faults``, per fault name above): ``{"delay": seconds}`` waits
then answers normally; ``{"status": n}`` answers n (409: the provider's "still in
progress", 401: unauthorized, otherwise ``{"status": n, "title": "injected fault"}``). A
fault is taken after the bearer check and before anything else, so it changes nothing.

Default credentials: ``ff-local-app-key`` / ``ff-local-app-secret``; default subscriber
key :data:`DEFAULT_WEBHOOK_KEY`. Request and webhook bodies are never logged
(``cardNumber`` may be a real PAN for a PCI-compliant merchant).

One job per module: ``app`` (:class:`FlexFactorEmulator`: its state and the evaluate,
orders, capture, cancel and refund endpoints), ``auth`` (the token endpoint, the bearer
check, faults), ``validation`` (binding and request checks), ``orders`` (orders, the
scenarios and what then happens), ``money`` (ISO 4217 exponents), ``clock`` (emulator
time, the order timeline), ``webhooks`` (signing, switches, delivery), ``admin`` (the
``/__emulator/`` endpoints, ``errorShape`` among the config), ``responses`` (the provider's
answer shapes) and ``__main__`` (``python -m devstack.emulators.flexfactor``). The
endpoint-specific parts of the contract are in the docstrings of ``orders``, ``webhooks``
and ``admin``.
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
from devstack.emulators.flexfactor.responses import DEFAULT_ERROR_SHAPE, ERROR_SHAPES
from devstack.emulators.flexfactor.validation import bind, parse_list_query, validate
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
    "DEFAULT_ERROR_SHAPE",
    "DEFAULT_STEP_SECONDS",
    "DEFAULT_TOKEN_TTL",
    "DEFAULT_WEBHOOK_CONTENT_TYPE",
    "DEFAULT_WEBHOOK_KEY",
    "ERROR_SHAPES",
    "FlexFactorEmulator",
    "Order",
    "OrderStatus",
    "Switches",
    "WebhookEntry",
    "bind",
    "decide",
    "parse_list_query",
    "plan",
    "sign_webhook",
    "validate",
]
