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
from urllib.parse import urlsplit

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
MICROFORM_SESSIONS_PATH = "/microform/v2/sessions"
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


@dataclass(frozen=True)
class VerifiedMicroformContext:
    """A Microform v2 capture context, checked: what the page needs to load the fields."""

    token: str
    signing_kid: str
    issued_at: datetime
    expires_at: datetime
    encryption_key: dict[str, Any]
    client_library: str
    client_library_integrity: str
    target_origins: tuple[str, ...]
    allowed_networks: tuple[str, ...]
    allowed_payment_types: tuple[str, ...]
    context_type: str
    jti: str

    @property
    def key_id(self) -> str:
        return str(self.encryption_key["kid"])


# an SRI hash (W3C Subresource Integrity): the algorithms browsers take, standard base64
_SRI = re.compile(r"^sha(256|384|512)-[A-Za-z0-9+/]{43,86}={0,2}$")


def _library_url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be the client library a page loads (https; http on loopback only)."""
    if not isinstance(url, str) or len(url) > 2048:
        return "clientLibrary is missing"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "clientLibrary is not a URL"
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost"):
        return None
    if parts.scheme != "https" or not parts.hostname:
        return "clientLibrary is not an https URL"
    return None


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
        return self._post_session(SESSIONS_PATH, {"fields": fields})

    @provider_call(PROVIDER, "create_microform_session")
    def create_microform_session(self, request: dict[str, Any]) -> str:
        """POST /microform/v2/sessions (same HTTP Signature); the capture-context JWT."""
        return self._post_session(MICROFORM_SESSIONS_PATH, request)

    def _post_session(self, path: str, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        for force in (False, True):
            creds = self._credentials(force)

            def prepare(creds: Credentials = creds) -> Prepared:
                headers = http_signature.signature_headers(
                    method="POST",
                    path=path,
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

            response = self.http.request("POST", path, prepare)
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
        """A Flex API v2 capture context: Cybersource's signature, its lifetime, the fields asked for."""
        kid, claims = self.verified_claims(token)
        return self._check_payload(token, kid, claims, required, optional)

    def verify_microform(
        self,
        token: str,
        *,
        target_origins: tuple[str, ...],
        networks: tuple[str, ...],
        payment_types: tuple[str, ...] = (),
    ) -> VerifiedMicroformContext:
        """A Microform v2 capture context: Cybersource's signature and lifetime, then its own
        fields: a Microform ``ctx`` type, the client library and its SRI hash, the origins and
        networks asked for (a context for other origins or networks is not the one asked for)."""
        kid, claims = self.verified_claims(token)
        return _check_microform_payload(token, kid, claims, target_origins, networks, payment_types)

    def verified_claims(self, token: str, *, check_lifetime: bool = True) -> tuple[str, dict[str, Any]]:
        """(signing kid, claims) of a capture context whose RS256 signature is Cybersource's
        (the key fetched by kid, re-fetched once when it does not verify: rotation).
        ``check_lifetime=False`` for a context whose token is checked later: the context
        may have expired since the page used it."""
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
            claims = self._decode(token, key, check_lifetime=check_lifetime)
        except jwt.InvalidSignatureError:
            if fresh:
                raise _unverified("bad_signature", "the signature does not verify") from None
            key, _ = self.public_key(kid, refresh=True)
            try:
                claims = self._decode(token, key, check_lifetime=check_lifetime)
            except jwt.InvalidSignatureError:
                raise _unverified("bad_signature", "the signature does not verify") from None
        return kid, claims

    def _decode(self, token: str, key: jwt.PyJWK, *, check_lifetime: bool = True) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                leeway=self.leeway_seconds,
                options={
                    "require": ["exp", "iat"],
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_exp": check_lifetime,
                    "verify_iat": check_lifetime,
                },
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
        jwk = _one_time_key(claims)
        flx = claims["flx"]
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


def _check_microform_payload(
    token: str,
    kid: str,
    claims: dict[str, Any],
    target_origins: tuple[str, ...],
    networks: tuple[str, ...],
    payment_types: tuple[str, ...],
) -> VerifiedMicroformContext:
    jwk = _one_time_key(claims)
    ctx = claims.get("ctx")
    item = (
        next((i for i in ctx if isinstance(i, dict) and isinstance(i.get("data"), dict)), None)
        if isinstance(ctx, list)
        else None
    )
    if item is None:
        raise _unverified("malformed", "ctx[].data is missing")
    data, kind = item["data"], str(item.get("type", ""))
    if not kind.startswith("mf-"):
        raise _unverified("not_microform", f"ctx type {kind[:40]!r} is not a Microform context")
    problem = _library_url_problem(data.get("clientLibrary"))
    if problem:
        raise _unverified("client_library", problem)
    integrity = data.get("clientLibraryIntegrity")
    if not isinstance(integrity, str) or not _SRI.match(integrity):
        raise _unverified("client_library", "clientLibraryIntegrity is not an SRI hash (sha256/384/512-<base64>)")
    got_origins = data.get("targetOrigins")
    if not isinstance(got_origins, list) or {str(o).rstrip("/") for o in got_origins} != {
        o.rstrip("/") for o in target_origins
    }:
        raise _unverified("origins_mismatch", "the capture context is not for the origins asked for")
    got_networks = data.get("allowedCardNetworks")
    if got_networks is not None and (not isinstance(got_networks, list) or set(got_networks) != set(networks)):
        raise _unverified("networks_mismatch", "the capture context does not take the card networks asked for")
    got_types = data.get("allowedPaymentTypes")
    return VerifiedMicroformContext(
        token=token,
        signing_kid=kid,
        issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        encryption_key=dict(jwk),
        client_library=data["clientLibrary"],
        client_library_integrity=integrity,
        target_origins=tuple(str(o) for o in got_origins),
        allowed_networks=tuple(str(n) for n in (got_networks or networks)),
        allowed_payment_types=tuple(str(t) for t in got_types) if isinstance(got_types, list) else payment_types,
        context_type=kind,
        jti=str(claims.get("jti", "")),
    )


def _one_time_key(claims: dict[str, Any]) -> dict[str, Any]:
    """``flx.jwk``: the context's one-time RSA key (encrypts the card data; verifies the
    transient tokens made with it)."""
    flx = claims.get("flx")
    jwk = flx.get("jwk") if isinstance(flx, dict) else None
    if (
        not isinstance(jwk, dict)
        or jwk.get("kty") != "RSA"
        or not all(isinstance(jwk.get(k), str) and jwk.get(k) for k in ("n", "e", "kid"))
    ):
        raise _unverified("malformed", "flx.jwk is missing or not an RSA public key")
    return jwk


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
