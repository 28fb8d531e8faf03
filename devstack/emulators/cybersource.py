"""Cybersource Flex API v2 emulator (PROVIDERS.md section 1).

- ``POST /flex/v2/sessions``: verifies the HTTP Signature (the lines its ``headers=``
  names, ``(request-target)`` and ``v-c-date`` variants included), the Digest over the raw
  body and the date skew; 401 like the provider when wrong. Accepts the body with or
  without the ``fields`` wrapper. Answers 201 with an RS256 JWT carrying a one-time
  RSA-2048 ``flx.jwk`` (from a pool of pre-generated keys), ``ctx``, a 900 s lifetime and
  a 16-character ``jti``.
- ``GET /flex/v2/public-keys/{kid}``: the signing key as a JWK; rotation through
  ``POST /__emulator/rotate-signing-key``.
- ``POST /flex/v2/tokens``, served only by the Flex origin (``FlexOrigin``, a second
  port, as ``https://testflex.cybersource.com`` is not ``https://apitest.cybersource.com``;
  the REST port answers it 404): decrypts a compact JWE (RSA-OAEP or RSA-OAEP-256,
  A256GCM), raw ``application/jwt`` or ``{"keyId": ...}`` framing; refuses an expired or
  foreign context and missing required fields; answers a transient-token JWT signed with
  the context's one-time key (``iss`` ``Flex/NN``, the suffix drawn per key; ``type``
  ``gda-0.9.0``), with a ``Digest`` header. Capture contexts name the Flex origin in
  ``flx.origin``; ``start_flex_origin`` serves it and points the emulator at it. Faults
  for it are queued under the endpoint name ``tokens``.
- ``POST /microform/v2/sessions`` (Microform Integration v2: same authentication, a
  ``mf-2.1.0`` context) and the Flex origin's client library, field iframe and ``mf-2.0.0``
  tokens: ``devstack.emulators.microform``.

Default credentials: the official SDK's public sandbox sample merchant ``testrest``.
Nothing decrypted is ever logged.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import queue
import re
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from decline_rescue.services.capture_contexts import FLEX_FIELDS
from devstack.emulators import microform
from devstack.emulators.base import Emulator, ServerThread, json_response, serve_forever

# The official SDK's public sandbox sample merchant (its own sample configuration).
TESTREST_MERCHANT_ID = "testrest"
TESTREST_KEY_ID = "08c94330-f618-42a3-b09d-e1e43be5efda"
TESTREST_SHARED_SECRET = "yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="

CONTEXT_LIFETIME = 900
TOKEN_LIFETIME = 900
# the transient token's ``type`` for Flex API (Microform's are ``mf-2.0.0``)
TOKEN_TYPE = "gda-0.9.0"
# flx.origin until a Flex origin is started: a reserved name (RFC 2606) nothing answers,
# so a client that tokenizes against an emulator without one fails at once
UNSET_FLEX_ORIGIN = "https://flex-origin-not-started.invalid"
_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_SIG_PARAM = re.compile(r'(\w+)="([^"]*)"')
CARD_TYPES = (
    ("34", "003"),
    ("37", "003"),
    ("4", "001"),
    ("51", "002"),
    ("52", "002"),
    ("53", "002"),
    ("54", "002"),
    ("55", "002"),
    ("2", "002"),
    ("6011", "004"),
    ("65", "004"),
    ("35", "007"),
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def public_jwk(key: rsa.RSAPrivateKey, kid: str, use: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "e": _int_b64(numbers.e), "use": use, "n": _int_b64(numbers.n), "kid": kid}


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _error(status: int, reason: str, message: str, details: list[dict[str, str]] | None = None) -> Response:
    body = {
        "responseStatus": {
            "status": status,
            "reason": reason,
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "details": details or [],
        }
    }
    return json_response(status, body)


def _unauthorized() -> Response:
    return json_response(401, {"response": {"rmsg": "Authentication Failed"}})


class KeyPool:
    """Pre-generated RSA-2048 keys, refilled in the background off the request path."""

    def __init__(self, size: int = 8) -> None:
        self._keys: queue.Queue[rsa.RSAPrivateKey] = queue.Queue(maxsize=max(1, size))
        self._wanted = threading.Event()
        self._wanted.set()
        threading.Thread(target=self._fill, daemon=True, name="flex-key-pool").start()

    @staticmethod
    def generate() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def _fill(self) -> None:
        while True:
            self._wanted.wait()
            while not self._keys.full():
                self._keys.put(self.generate())
            self._wanted.clear()

    def take(self) -> rsa.RSAPrivateKey:
        try:
            key = self._keys.get_nowait()
        except queue.Empty:
            key = self.generate()
        self._wanted.set()
        return key


@dataclass
class Session:
    kid: str
    key: rsa.RSAPrivateKey
    token: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    expires: int
    # the transient token's issuer, "Flex/NN": real ones vary in the suffix, so clients must too
    issuer: str = "Flex/00"
    # "flex" (Flex API) or "microform" (Microform v2: page origins, networks, mf-2.0.0 tokens)
    kind: str = "flex"
    target_origins: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    include_card_prefix: bool = True


class CybersourceEmulator(Emulator):
    name = "cybersource"

    def __init__(
        self,
        *,
        merchant_id: str = TESTREST_MERCHANT_ID,
        key_id: str = TESTREST_KEY_ID,
        shared_secret: str = TESTREST_SHARED_SECRET,
        max_skew_seconds: int = 300,
        pool_size: int = 8,
        flex_origin: str | None = None,
    ) -> None:
        super().__init__()
        # where capture contexts send clients to tokenize (flx.origin): the Flex origin's URL
        self.flex_origin = flex_origin or UNSET_FLEX_ORIGIN
        self.microform_assets = microform.Assets()
        self.flex = FlexOrigin(self)
        self.merchants = {merchant_id: (key_id, base64.b64decode(shared_secret))}
        self.max_skew_seconds = max_skew_seconds
        self.pool = KeyPool(pool_size)
        self.signing_keys: dict[str, rsa.RSAPrivateKey] = {}
        self.retired: set[str] = set()
        self.signing_kid = self._new_signing_key()
        self.contexts: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()

    def rules(self) -> list[Rule]:
        return [
            Rule("/flex/v2/sessions", methods=["POST"], endpoint="sessions"),
            Rule("/microform/v2/sessions", methods=["POST"], endpoint="microform_sessions"),
            Rule("/flex/v2/public-keys/<kid>", methods=["GET"], endpoint="public_keys"),
            Rule("/__emulator/rotate-signing-key", methods=["POST"], endpoint="admin_rotate"),
        ]

    # -- signing keys ---------------------------------------------------------------

    def _new_signing_key(self) -> str:
        kid = "emu" + _random(_ALNUM, 5)
        self.signing_keys[kid] = self.pool.generate()
        return kid

    def admin_rotate(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        previous = self.signing_kid
        self.signing_kid = self._new_signing_key()
        if body.get("retire"):
            self.retired.add(previous)
        return json_response(200, {"kid": self.signing_kid, "previous": previous})

    def public_keys(self, request: Request, kid: str) -> Response:
        fault = self.take_fault("public-keys")
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _error(int(fault["status"]), "SERVER_ERROR", "injected fault")
        key = self.signing_keys.get(kid)
        if key is None or kid in self.retired:
            return _error(404, "NOT_FOUND", f"key {kid} not found")
        return json_response(200, public_jwk(key, kid, "sig"))

    # -- HTTP Signature -------------------------------------------------------------

    def authenticate(self, request: Request, body: bytes) -> str | None:
        """The reason the request's HTTP Signature fails, or None when it verifies."""
        merchant = request.headers.get("v-c-merchant-id", "")
        if merchant not in self.merchants:
            return "unknown merchant"
        key_id, secret = self.merchants[merchant]
        params = dict(_SIG_PARAM.findall(request.headers.get("Signature", "")))
        if params.get("keyid") != key_id:
            return "unknown key id"
        if params.get("algorithm") != "HmacSHA256":
            return "unsupported algorithm"
        names = params.get("headers", "").split()
        if "host" not in names or "v-c-merchant-id" not in names:
            return "host and v-c-merchant-id must be signed"
        if not {"request-target", "(request-target)"} & set(names):
            return "request-target must be signed"
        date_name = "v-c-date" if "v-c-date" in names else "date"
        if date_name not in names:
            return "date must be signed"
        if request.method in ("POST", "PUT", "PATCH"):
            if "digest" not in names:
                return "digest must be signed"
            expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
            if not hmac.compare_digest(request.headers.get("Digest", ""), expected):
                return "digest does not match the body"
        try:
            sent = parsedate_to_datetime(request.headers.get(date_name, "")).timestamp()
        except (TypeError, ValueError):
            return "date is not RFC 1123"
        if abs(time.time() - sent) > self.max_skew_seconds:
            return "date outside the allowed skew"
        target = request.full_path.rstrip("?") if request.query_string else request.path
        lines = []
        for name in names:
            if name in ("request-target", "(request-target)"):
                value = f"{request.method.lower()} {target}"
            else:
                value = request.headers.get(name)
                if value is None:
                    return f"signed header {name} is missing"
            lines.append(f"{name}: {value}")
        mac = hmac.new(secret, "\n".join(lines).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(mac).decode(), params.get("signature", "")):
            return "signature does not match"
        return None

    # -- sessions -------------------------------------------------------------------

    def sessions(self, request: Request) -> Response:
        body = request.get_data(cache=True)
        problem = self.authenticate(request, body)
        if problem:
            return _unauthorized()
        fault = self.take_fault("sessions")
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _error(int(fault["status"]), "SERVER_ERROR", "injected fault")
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "the body is not a JSON object")
        fields = payload.get("fields", payload)
        required: list[str] = []
        optional: list[str] = []
        details: list[dict[str, str]] = []
        _collect(fields, "", required, optional, details)
        if not details and not required + optional:
            details.append({"location": "fields", "message": "no field selected"})
        if details:
            return _error(400, "VALIDATION_ERROR", "Field validation failed", details)

        ctx = [{"data": {"requiredFields": required, "optionalFields": optional}, "type": "api-0.1.0"}]
        return self._issue(ctx, fault, required=tuple(required), optional=tuple(optional))

    def microform_sessions(self, request: Request) -> Response:
        """Microform Integration v2: the page origins, card networks and payment types the
        fields take; the context names the client library and its SRI hash."""
        body = request.get_data(cache=True)
        if self.authenticate(request, body):
            return _unauthorized()
        fault = self.take_fault("microform-sessions")
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _error(int(fault["status"]), "SERVER_ERROR", "injected fault")
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "the body is not a JSON object")
        parsed, details = microform.validate_session_request(payload)
        if parsed is None:
            return _error(400, "VALIDATION_ERROR", "Field validation failed", details)
        data = self.microform_assets.ctx_data(parsed, self.flex_origin)
        mode = (fault or {}).get("jwt")
        if mode == "origins_mismatch":
            data["targetOrigins"] = ["https://origins-mismatch.invalid"]
        elif mode == "networks_mismatch":
            data["allowedCardNetworks"] = [n for n in microform.CARD_NETWORKS if n not in parsed.allowed_networks] or [
                "VISA"
            ]
        elif mode == "integrity_mismatch":
            data["clientLibraryIntegrity"] = "sha384-" + base64.b64encode(hashlib.sha384(b"other").digest()).decode()
        return self._issue(
            [{"data": data, "type": microform.CONTEXT_TYPE}],
            fault,
            required=microform.REQUIRED_FIELDS,
            optional=microform.OPTIONAL_FIELDS,
            kind="microform",
            target_origins=parsed.target_origins,
            allowed_networks=parsed.allowed_networks,
            include_card_prefix=parsed.include_card_prefix,
        )

    def _issue(self, ctx: list[dict[str, Any]], fault: dict[str, Any] | None, **session: Any) -> Response:
        """Sign a capture context with a fresh one-time key, record its session, answer 201
        (the ``jwt`` fault modes bend the answer the way tests need)."""
        now = int(time.time())
        kid = _random(_ALNUM, 32)
        key = self.pool.take()
        claims = {
            "flx": {
                "path": "/flex/v2/tokens",
                "data": base64.b64encode(secrets.token_bytes(60)).decode(),
                "origin": self.flex_origin,
                "jwk": public_jwk(key, kid, "enc"),
            },
            "ctx": ctx,
            "iss": "Flex API",
            "exp": now + CONTEXT_LIFETIME,
            "iat": now,
            "jti": _random(_ALNUM, 16),
        }
        signing_kid = self.signing_kid
        mode = (fault or {}).get("jwt")
        if mode == "expired":
            claims["iat"], claims["exp"] = now - 2 * CONTEXT_LIFETIME, now - CONTEXT_LIFETIME
        elif mode == "not_yet_valid":
            claims["iat"] = now + 3600
            claims["exp"] = claims["iat"] + CONTEXT_LIFETIME
        elif mode == "fields_mismatch" and session.get("kind", "flex") == "flex":
            claims["ctx"][0]["data"]["requiredFields"] = ["paymentInformation.card.securityCode"]
        signing_key = self.signing_keys[signing_kid]
        if mode == "unknown_kid":
            signing_kid = "unknown" + _random(_ALNUM, 6)
        token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": signing_kid, "typ": None})
        if mode == "bad_signature":
            head, pay, sig = token.split(".")
            token = ".".join([head, pay, _b64url(bytes(b ^ 1 for b in _b64url_decode(sig)))])
        elif mode == "garbage":
            token = "this-is-not-a-jwt"
        issuer = f"Flex/{secrets.randbelow(100):02d}"
        with self._sessions_lock:
            self._expire_sessions(now)
            self.contexts[kid] = Session(kid, key, token, expires=claims["exp"], issuer=issuer, **session)
        if fault and fault.get("trickle"):  # the answer dribbles out, one chunk per interval
            pause = float(fault["trickle"])

            def dribble():
                for i in range(0, len(token), 64):
                    time.sleep(pause)
                    yield token[i : i + 64].encode()

            return Response(dribble(), status=201, content_type="application/jwt;charset=utf-8")
        return Response(token, status=201, content_type="application/jwt;charset=utf-8")

    def _expire_sessions(self, now: int) -> None:
        stale = [k for k, s in self.contexts.items() if s.expires < now - CONTEXT_LIFETIME]
        for k in stale:
            del self.contexts[k]

    # -- tokens (served by the Flex origin, not the REST host) ------------------------

    def tokens(self, request: Request) -> Response:
        fault = self.take_fault("tokens")  # queued on the REST host's /__emulator/faults
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _error(int(fault["status"]), "SERVER_ERROR", "injected fault")
        raw = request.get_data(as_text=True).strip()
        if raw.startswith("{"):
            try:
                raw = json.loads(raw)["keyId"]
            except (ValueError, KeyError, TypeError):
                return _error(400, "VALIDATION_ERROR", 'expected a JWE or {"keyId": <JWE>}')
        parts = raw.split(".") if isinstance(raw, str) else []
        if len(parts) != 5:
            return _error(400, "VALIDATION_ERROR", "the body is not a compact JWE")
        try:
            header = json.loads(_b64url_decode(parts[0]))
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "the JWE header is not JSON")
        if not isinstance(header, dict):
            return _error(400, "VALIDATION_ERROR", "the JWE header is not a JSON object")
        alg, enc = header.get("alg"), header.get("enc")
        if alg not in ("RSA-OAEP", "RSA-OAEP-256") or enc != "A256GCM":
            return _error(400, "VALIDATION_ERROR", f"unsupported JWE alg/enc {alg}/{enc}")
        with self._sessions_lock:
            session = self.contexts.get(str(header.get("kid")))
        if session is None:
            return _error(400, "CAPTURE_CONTEXT_INVALID", "the JWE key is not from a capture context of ours")
        digest = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()  # noqa: S303 - RSA-OAEP is SHA-1 by definition
        try:
            cek = session.key.decrypt(
                _b64url_decode(parts[1]), padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
            )
            plain = AESGCM(cek).decrypt(
                _b64url_decode(parts[2]), _b64url_decode(parts[3]) + _b64url_decode(parts[4]), parts[0].encode()
            )
            message = json.loads(plain)
        except Exception:  # noqa: BLE001 - any decryption failure is the client's
            return _error(400, "VALIDATION_ERROR", "the JWE does not decrypt")
        if not isinstance(message, dict) or not isinstance(message.get("data", {}), dict):
            return _error(400, "VALIDATION_ERROR", 'the JWE payload must be {"data": {...}, "context": ...}')
        if message.get("context") != session.token:
            return _error(400, "CAPTURE_CONTEXT_INVALID", "the capture context is not the one the key belongs to")
        if time.time() > session.expires:
            return _error(400, "CAPTURE_CONTEXT_EXPIRED", "the capture context has expired")
        data = _flatten(message.get("data") or {})
        allowed = set(session.required) | set(session.optional)
        details = [
            {"location": name, "message": "not captured by this capture context"}
            for name in data
            if name not in allowed
        ]
        details += [
            {"location": name, "message": "required"}
            for name in session.required
            if str(data.get(name, "")).strip() == ""
        ]
        number = re.sub(r"[ -]", "", str(data.get("paymentInformation.card.number", "")))
        if number and not (13 <= len(number) <= 19 and number.isdigit() and _luhn(number)):
            details.append({"location": "paymentInformation.card.number", "message": "invalid card number"})
        is_microform = session.kind == "microform"
        if is_microform and number and not details:
            details += microform.network_details(number, session.allowed_networks)
        if details:
            return _error(400, "VALIDATION_ERROR", "Field validation failed", details)
        now = int(time.time())
        content = _token_content(data, number)
        if is_microform:
            content = microform.decorate_content(content, number, session.include_card_prefix)
        claims = {
            "iss": session.issuer,
            "type": microform.TOKEN_TYPE if is_microform else TOKEN_TYPE,
            "exp": now + TOKEN_LIFETIME,
            "iat": now,
            "jti": _random(_UPPER_ALNUM, 64),
            "content": content,
        }
        token = jwt.encode(claims, session.key, algorithm="RS256", headers={"kid": session.kid, "typ": None})
        digest_header = "SHA-256=" + base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()
        return Response(
            token, status=201, content_type="application/jwt;charset=utf-8", headers={"Digest": digest_header}
        )


class FlexOrigin:
    """The Flex origin (``https://testflex.cybersource.com`` in the sandbox) as its own WSGI
    app, served on its own port: ``POST /flex/v2/tokens``, Microform's client library and
    field iframe, and a health check. The token endpoint and the sessions it checks are the
    emulator's; calls count in its stats."""

    name = "cybersource-flex"

    def __init__(self, emulator: CybersourceEmulator) -> None:
        self.emulator = emulator
        self.url_map = Map(
            [
                Rule("/flex/v2/tokens", methods=["POST"], endpoint="tokens"),
                Rule(microform.SCRIPT_PATH, methods=["GET"], endpoint="microform_script"),
                Rule(microform.IFRAME_PATH, methods=["GET"], endpoint="microform_iframe"),
                Rule(microform.IFRAME_SCRIPT_PATH, methods=["GET"], endpoint="microform_iframe_script"),
                Rule("/__emulator/health", methods=["GET"], endpoint="health"),
            ]
        )

    def microform_script(self, request: Request) -> Response:
        return self.emulator.microform_assets.script_response()

    def microform_iframe_script(self, request: Request) -> Response:
        return self.emulator.microform_assets.iframe_script_response()

    def microform_iframe(self, request: Request) -> Response:
        """The field document for one Microform session (``?kid=<flx.jwk.kid>&field=...``)."""
        kid, field = request.args.get("kid", ""), request.args.get("field", "")
        if field not in microform.FIELD_TYPES:
            return microform.not_found_page("field must be number or securityCode", 400)
        with self.emulator._sessions_lock:
            session = self.emulator.contexts.get(kid)
        if session is None or session.kind != "microform":
            return microform.not_found_page("no Microform capture context has this key")
        return self.emulator.microform_assets.iframe_response(kid, field, session.target_origins)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            if endpoint == "health":
                response = json_response(200, {"ok": True, "emulator": self.name})
            else:
                with self.emulator._lock:
                    self.emulator.counts[endpoint] += 1
                handler = getattr(self, endpoint, None) or getattr(self.emulator, endpoint)
                response = handler(request, **args)
        except NotFound:
            response = json_response(404, {"message": "not found"})
        except HTTPException as exc:
            response = json_response(exc.code or 500, {"message": exc.description})
        return response(environ, start_response)


def start_flex_origin(
    emulator: CybersourceEmulator, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> ServerThread:
    """Serve the emulator's Flex origin on its own port and name it in capture contexts'
    ``flx.origin``. The caller stops the returned server."""
    server = ServerThread(emulator.flex, host, port, **kwargs).start()
    emulator.flex_origin = server.url
    return server


def _collect(node: Any, path: str, required: list[str], optional: list[str], details: list[dict[str, str]]) -> None:
    if not isinstance(node, dict):
        details.append({"location": path or "fields", "message": "must be an object"})
        return
    for key, value in node.items():
        child = f"{path}.{key}" if path else key
        if child in FLEX_FIELDS:
            if not isinstance(value, dict) or set(value) - {"required"}:
                details.append({"location": child, "message": 'must be {} or {"required": false}'})
            elif value.get("required", True) is False:
                optional.append(child)
            else:
                required.append(child)
        elif any(f.startswith(child + ".") for f in FLEX_FIELDS):
            _collect(value, child, required, optional, details)
        else:
            details.append({"location": child, "message": "unknown field"})


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_type(number: str) -> str | None:
    for prefix, code in CARD_TYPES:
        if number.startswith(prefix):
            return code
    return None


def _token_content(data: dict[str, Any], number: str) -> dict[str, Any]:
    content: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        node = content
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    for name, value in data.items():
        if name == "paymentInformation.card.number":
            put(name, {"maskedValue": "X" * (len(number) - 4) + number[-4:], "bin": number[:6]})
        elif name == "paymentInformation.card.securityCode":
            put(name, {})
        else:
            put(name, {"value": value})
    if number and "paymentInformation.card.type" not in data and _card_type(number):
        put("paymentInformation.card.type", {"value": _card_type(number)})
    return content


def main() -> None:
    parser = argparse.ArgumentParser(description="Cybersource Flex API v2 and Microform v2 emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="the REST API host's port")
    parser.add_argument(
        "--flex-port", type=int, default=8084, help="the Flex origin's port (/flex/v2/tokens, Microform's fields)"
    )
    parser.add_argument("--merchant-id", default=TESTREST_MERCHANT_ID)
    parser.add_argument("--key-id", default=TESTREST_KEY_ID)
    parser.add_argument("--shared-secret", default=TESTREST_SHARED_SECRET)
    args = parser.parse_args()
    emulator = CybersourceEmulator(merchant_id=args.merchant_id, key_id=args.key_id, shared_secret=args.shared_secret)
    flex = start_flex_origin(emulator, args.host, args.flex_port)
    print(f"cybersource Flex origin on {flex.url}", flush=True)
    try:
        serve_forever(emulator, args.host, args.port)
    finally:
        flex.stop()


if __name__ == "__main__":
    main()
