"""Who may call: ``POST /v1/oauth2/token`` (the app key and secret for an HS256 JWT living
``token_ttl_seconds`` of real time), the bearer check every other ``/v1/`` endpoint makes,
and the injected faults taken right after it.
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
import uuid

import jwt
from werkzeug.wrappers import Request, Response

from devstack.emulators.base import json_response
from devstack.emulators.flexfactor.responses import _fault_response, _token_failed, _unauthorized

DEFAULT_APP_KEY = "ff-local-app-key"
DEFAULT_APP_SECRET = "ff-local-app-secret"
DEFAULT_TOKEN_TTL = 600


class TokenAuth:
    """Mixed into the emulator (an :class:`~devstack.emulators.base.Emulator`, for the
    faults), whose ``__init__`` sets the state below."""

    app_key: str
    app_secret: str
    token_ttl_seconds: float
    _signing_secret: bytes
    _token_expiry: dict[str, float]
    _store_lock: threading.Lock

    def _fault(self, endpoint: str) -> Response | None:
        fault = self.take_fault(endpoint)
        self.apply_delay(fault)
        if fault and fault.get("status"):
            return _fault_response(int(fault["status"]))
        return None

    def token(self, request: Request) -> Response:
        faulted = self._fault("token")
        if faulted:
            return faulted
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _token_failed()
        key, secret = body.get("AppKey"), body.get("AppSecret")
        if not (isinstance(key, str) and isinstance(secret, str)):
            return _token_failed()
        key_ok = hmac.compare_digest(key.encode(), self.app_key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.app_secret.encode())
        if not (key_ok and secret_ok):
            return _token_failed()
        now = time.time()
        expires = now + self.token_ttl_seconds
        jti = uuid.uuid4().hex
        claims = {
            "sub": self.app_key,
            "iss": "flexfactor-emulator",
            "jti": jti,
            "iat": int(now),
            "exp": math.ceil(expires),  # NumericDate; the exact expiry is enforced server-side
        }
        token = jwt.encode(claims, self._signing_secret, algorithm="HS256")
        with self._store_lock:
            self._token_expiry = {k: v for k, v in self._token_expiry.items() if v > now}
            self._token_expiry[jti] = expires
        return json_response(
            200,
            {
                "accessToken": token,
                "refreshToken": secrets.token_urlsafe(32),
                "expires": int(expires * 1000),
                "id": str(uuid.uuid4()),
                "success": True,
                "result": "Success",
                "status": "SUCCESS",
                "statusCode": 200,
                "errors": [],
                "customProperties": {},
            },
        )

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            claims = jwt.decode(
                token.strip(), self._signing_secret, algorithms=["HS256"], options={"require": ["exp", "jti"]}
            )
        except jwt.InvalidTokenError:
            return False
        with self._store_lock:
            expires = self._token_expiry.get(str(claims["jti"]))
        return expires is not None and time.time() < expires

    def _gate(self, request: Request, fault: str) -> Response | None:
        """The bearer check, then the endpoint's next fault: an answer, or None to go on."""
        if not self.authorized(request):
            return _unauthorized()
        return self._fault(fault)
