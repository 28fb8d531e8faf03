"""Cybersource Flex API v2 client: capture-context sessions and their verification.

- ``POST /flex/v2/sessions`` signed with HTTP Signature (``http_signature``), the digest
  over the exact bytes sent; one re-read of the credentials on a 401.
- ``GET /flex/v2/public-keys/{kid}`` cached in memory by kid for the life of the
  execution environment, re-fetched once when a signature does not verify (rotation).
- RS256 verification with a small leeway on ``exp``/``iat``; the ``ctx`` fields must be
  the ones asked for; unknown payload elements are ignored, never rejected.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from decline_rescue.domain.errors import (
    CaptureContextUnverified,
    ProviderAuthError,
    ProviderRejected,
)
from decline_rescue.infra.http import Prepared, ProviderHttp
from decline_rescue.providers.cybersource import http_signature
from decline_rescue.runtime.observability import logger, provider_call

PROVIDER = "cybersource"
SESSIONS_PATH = "/flex/v2/sessions"
_KID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
# a compact JWS: three base64url segments (PyJWT accepts trailing padding)
_COMPACT = re.compile(r"[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}")


@dataclass(frozen=True)
class Credentials:
    merchant_id: str
    key_id: str
    shared_secret: str = field(repr=False)


@dataclass(frozen=True)
class VerifiedCaptureContext:
    token: str
    signing_kid: str
    issued_at: datetime
    expires_at: datetime
    required_fields: tuple[str, ...]
    optional_fields: tuple[str, ...]
    encryption_key: dict[str, Any]
    origin: str
    path: str
    jti: str

    @property
    def key_id(self) -> str:
        """The one-time encryption key's id (the ``kid`` the card-entry client puts in its JWE)."""
        return str(self.encryption_key["kid"])


def _unverified(reason: str, message: str) -> CaptureContextUnverified:
    return CaptureContextUnverified(PROVIDER, f"capture context failed verification: {message}", reason=reason)


def _provider_reason(response) -> str:
    """A short reason from a Cybersource error body, without echoing anything large."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    status = body.get("responseStatus") if isinstance(body, dict) else None
    if isinstance(status, dict):
        return str(status.get("reason") or status.get("message") or f"HTTP {response.status_code}")[:200]
    if isinstance(body, dict) and isinstance(body.get("response"), dict):
        return str(body["response"].get("rmsg", f"HTTP {response.status_code}"))[:200]
    return f"HTTP {response.status_code}"


class CybersourceClient:
    def __init__(
        self,
        http: ProviderHttp,
        credentials: Callable[[bool], Credentials],
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self._credentials = credentials
        self.leeway_seconds = leeway_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_lock = threading.Lock()

    # -- sessions -------------------------------------------------------------------

    @provider_call(PROVIDER, "create_session")
    def create_session(self, fields: dict[str, Any]) -> str:
        """POST /flex/v2/sessions; the compact capture-context JWT the provider returned."""
        body = json.dumps({"fields": fields}, separators=(",", ":")).encode("utf-8")
        for force in (False, True):
            creds = self._credentials(force)

            def prepare(creds: Credentials = creds) -> Prepared:
                headers = http_signature.signature_headers(
                    method="POST",
                    path=SESSIONS_PATH,
                    host=self.http.host,
                    body=body,
                    merchant_id=creds.merchant_id,
                    key_id=creds.key_id,
                    shared_secret_b64=creds.shared_secret,
                    date=http_signature.http_date(self._clock()),
                )
                headers["Accept"] = "application/jwt"
                headers["Content-Type"] = "application/json;charset=utf-8"
                return Prepared(headers=headers, content=body)

            response = self.http.request("POST", SESSIONS_PATH, prepare)
            if response.status_code not in (401, 403):
                break
            logger.warning("cybersource refused the credentials", extra={"reread_secret": not force})
        if response.status_code in (401, 403):
            raise ProviderAuthError(
                PROVIDER,
                f"Cybersource refused the merchant credentials (HTTP {response.status_code}): check the merchant "
                "id, key id and shared secret in the Cybersource secret",
                reason=_provider_reason(response),
            )
        if response.status_code not in (200, 201):
            raise ProviderRejected(
                PROVIDER,
                f"Cybersource refused the capture-context request (HTTP {response.status_code})",
                reason=_provider_reason(response),
            )
        token = response.text.strip()
        if token.startswith('"') and token.endswith('"'):  # some gateways JSON-quote it
            token = token[1:-1]
        return token

    # -- public keys ----------------------------------------------------------------

    def public_key(self, kid: str, *, refresh: bool = False) -> tuple[jwt.PyJWK, bool]:
        """The signing key for ``kid`` and whether it was fetched just now."""
        if not refresh:
            cached = self._keys.get(kid)
            if cached is not None:
                return cached, False
        if not _KID.match(kid):
            raise _unverified("unknown_kid", "the key id is not well formed")
        return self._fetch_public_key(kid), True

    @provider_call(PROVIDER, "public_key")
    def _fetch_public_key(self, kid: str) -> jwt.PyJWK:
        """GET /flex/v2/public-keys/{kid}, kept by kid (a call to Cybersource: measured)."""
        path = f"/flex/v2/public-keys/{kid}"
        response = self.http.request("GET", path, lambda: Prepared(headers={"Accept": "application/json"}))
        if response.status_code == 404:
            raise _unverified("unknown_kid", f"Cybersource does not know key {kid}")
        if response.status_code != 200:
            raise _unverified("key_fetch_failed", f"public key fetch answered HTTP {response.status_code}")
        try:
            jwk = response.json()
            if isinstance(jwk, dict) and "keys" in jwk:  # a JWK set: pick the kid
                jwk = next(k for k in jwk["keys"] if k.get("kid") in (kid, None))
            jwk = dict(jwk)
            if jwk.get("kty") != "RSA":
                raise ValueError("not an RSA key")
            jwk.pop("use", None)  # Flex keys may say use=enc; we only verify with them
            key = jwt.PyJWK(jwk, algorithm="RS256")
        except (ValueError, StopIteration, TypeError, jwt.PyJWKError) as exc:
            raise _unverified("bad_key", f"public key {kid} is unusable ({type(exc).__name__})") from None
        with self._keys_lock:
            self._keys[kid] = key
        return key

    # -- verification ---------------------------------------------------------------

    def verify(self, token: str, *, required: tuple[str, ...], optional: tuple[str, ...]) -> VerifiedCaptureContext:
        header = _unverified_header(token)
        if header is None:
            raise _unverified("malformed", "the capture context is not a JWT")
        if header.get("alg") != "RS256":
            raise _unverified("bad_algorithm", f"algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unverified("unknown_kid", "the capture context names no key id")

        key, fresh = self.public_key(kid)
        try:
            claims = self._decode(token, key)
        except jwt.InvalidSignatureError:
            if fresh:
                raise _unverified("bad_signature", "the signature does not verify") from None
            key, _ = self.public_key(kid, refresh=True)
            try:
                claims = self._decode(token, key)
            except jwt.InvalidSignatureError:
                raise _unverified("bad_signature", "the signature does not verify") from None
        return self._check_payload(token, kid, claims, required, optional)

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat"], "verify_aud": False, "verify_iss": False},
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.ExpiredSignatureError:
            raise _unverified("expired", "the capture context has expired") from None
        except jwt.ImmatureSignatureError:
            raise _unverified("not_yet_valid", "the capture context is issued in the future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unverified("missing_claim", f"the capture context lacks {exc.claim}") from None
        except jwt.InvalidTokenError as exc:
            raise _unverified("malformed", f"the capture context is malformed ({type(exc).__name__})") from None

    def _check_payload(
        self,
        token: str,
        kid: str,
        claims: dict[str, Any],
        required: tuple[str, ...],
        optional: tuple[str, ...],
    ) -> VerifiedCaptureContext:
        flx = claims.get("flx")
        jwk = flx.get("jwk") if isinstance(flx, dict) else None
        if (
            not isinstance(jwk, dict)
            or jwk.get("kty") != "RSA"
            or not all(isinstance(jwk.get(k), str) and jwk.get(k) for k in ("n", "e", "kid"))
        ):
            raise _unverified("malformed", "flx.jwk is missing or not an RSA public key")
        data = _ctx_data(claims.get("ctx"))
        if data is None:
            raise _unverified("malformed", "ctx[].data is missing")
        got_required = tuple(data.get("requiredFields") or ())
        got_optional = tuple(data.get("optionalFields") or ())
        if set(got_required) != set(required) or set(got_optional) != set(optional):
            raise _unverified(
                "fields_mismatch",
                "the capture context does not capture the fields asked for",
            )
        return VerifiedCaptureContext(
            token=token,
            signing_kid=kid,
            issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            required_fields=got_required,
            optional_fields=got_optional,
            encryption_key={k: v for k, v in jwk.items()},
            origin=str(flx.get("origin", "")),
            path=str(flx.get("path", "")),
            jti=str(claims.get("jti", "")),
        )


def _unverified_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact JWS, None when the token is not one. Only the header
    segment is decoded: PyJWT's ``get_unverified_header`` decodes and checks all three,
    character by character in Python (about 0.3 ms for a capture context), and the
    ``jwt.decode`` that verifies the token checks them all again."""
    if not isinstance(token, str) or not _COMPACT.fullmatch(token):
        return None
    segment = token.split(".", 1)[0].rstrip("=")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _ctx_data(ctx: Any) -> dict[str, Any] | None:
    if not isinstance(ctx, list):
        return None
    for item in ctx:
        if isinstance(item, dict) and isinstance(item.get("data"), dict):
            return item["data"]
    return None
