"""Who may call: ``POST /v1/oauth2/token`` (the app key and secret, names in any case, for
an HS256 JWT living ``token_ttl_seconds`` of real time, with the sandbox's claims; bad
credentials: 400), the bearer check every other ``/v1/`` endpoint makes, and the injected
faults taken right after it.
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
from devstack.emulators.flexfactor.validation import ci_get

DEFAULT_APP_KEY = "ff-local-app-key"
DEFAULT_APP_SECRET = "ff-local-app-secret"
DEFAULT_TOKEN_TTL = 600
TOKEN_ISSUER = "Api-Client-Service"
TOKEN_AUDIENCE = ("payments", "orders", "merchants", "eligibility-sftp", "eligibility", "contact")


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
        key, secret = ci_get(body, "AppKey"), ci_get(body, "AppSecret")  # appKey/appSecret bind too
        if not (isinstance(key, str) and isinstance(secret, str)):
            return _token_failed()
        key_ok = hmac.compare_digest(key.encode(), self.app_key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.app_secret.encode())
        if not (key_ok and secret_ok):
            return _token_failed()
        now = time.time()
        expires = now + self.token_ttl_seconds
        jti = str(uuid.uuid4())
        client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"flexfactor-emulator:app:{self.app_key}"))
        claims = {  # the sandbox's claims (seen)
            "sub": client_id,
            "unique_name": client_id,
            "jti": jti,
            "iat": str(int(now * 1000)),  # milliseconds, a string
            "aud": list(TOKEN_AUDIENCE),
            "custom:mid": self.merchant_id,
            "nbf": int(now),
            "exp": math.ceil(expires),  # NumericDate; the exact expiry is enforced server-side
            "iss": TOKEN_ISSUER,
        }
        token = jwt.encode(claims, self._signing_secret, algorithm="HS256")
        with self._store_lock:
            self._token_expiry = {k: v for k, v in self._token_expiry.items() if v > now}
            self._token_expiry[jti] = expires
        return json_response(
            200,
            {
                "accessToken": token,
                "refreshToken": secrets.token_urlsafe(48),
                "expires": int(expires * 1000),
                "id": client_id,
                "session": None,
                "daysToEnforceMFA": None,
                "skipAvailable": None,
                "success": True,
                "result": None,
                "status": None,
                "statusCode": None,
                "errors": [],
                "customProperties": {},
            },
        )

    @property
    def merchant_id(self) -> str:
        """The merchant (``custom:mid``) the app credentials belong to: one per app key."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flexfactor-emulator:mid:{self.app_key}"))

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            claims = jwt.decode(
                token.strip(),
                self._signing_secret,
                algorithms=["HS256"],
                # iat is in ms (a string) and aud a list, as the sandbox's: neither is checked
                options={"require": ["exp", "jti"], "verify_iat": False, "verify_aud": False},
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
