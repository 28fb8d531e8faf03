"""The card-entry client: what a merchant server or native app does with a capture
context, done with an independent JOSE library (joserfc): encrypt the card to the
context's one-time key as a compact JWE, POST it to ``flx.origin + flx.path`` (the Flex
origin, never the REST API host), and validate the transient token it gets back with
the same key. Used by the demo and the tests; never deployed.

Cybersource documents Flex API as server-side only: a web page never posts card data to
/flex/v2/tokens; it uses Microform Integration v2 (card fields in iframes served from the
Flex origin) instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwe
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

JOSE_ALGORITHMS = ["RSA-OAEP", "RSA-OAEP-256", "A256GCM"]
# transient tokens' issuers: "Flex/00", "Flex/08", ...: the suffix varies, so any is accepted
TRANSIENT_TOKEN_ISSUER = re.compile(r"Flex/\d{2}")


def context_claims(capture_context: str) -> dict[str, Any]:
    """The capture context's payload (the server has verified it; the client reads it)."""
    payload = capture_context.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def encrypt_card(capture_context: str, data: dict[str, Any], *, alg: str = "RSA-OAEP", flat: bool = False) -> str:
    """The compact JWE a Flex client sends to the token endpoint."""
    jwk = context_claims(capture_context)["flx"]["jwk"]
    key = RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")})
    if flat:
        data = _flatten(data)
    plaintext = json.dumps({"data": data, "context": capture_context, "index": 0}).encode()
    protected = {"kid": jwk["kid"], "alg": alg, "enc": "A256GCM"}
    return jwe.encrypt_compact(protected, plaintext, key, algorithms=JOSE_ALGORITHMS)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        out.update(_flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


@dataclass
class TokenAnswer:
    status: int
    body: str
    digest_ok: bool

    def error_reason(self) -> str | None:
        try:
            return json.loads(self.body)["responseStatus"]["reason"]
        except (ValueError, KeyError, TypeError):
            return None


def token_url(capture_context: str) -> str:
    """Where the token step posts: the capture context's ``flx.origin + flx.path``."""
    flx = context_claims(capture_context)["flx"]
    return flx["origin"].rstrip("/") + flx["path"]


def post_token(capture_context: str, jwe_token: str, *, framing: str = "jwt", timeout: float = 10.0) -> TokenAnswer:
    """POST the JWE to the capture context's ``flx.origin + flx.path``."""
    url = token_url(capture_context)
    if framing == "jwt":
        response = httpx.post(url, content=jwe_token, headers={"Content-Type": "application/jwt"}, timeout=timeout)
    else:
        response = httpx.post(url, json={"keyId": jwe_token}, timeout=timeout)
    digest = response.headers.get("Digest", "")
    expected = "SHA-256=" + base64.b64encode(hashlib.sha256(response.content).digest()).decode()
    return TokenAnswer(response.status_code, response.text, digest == expected)


def verify_transient_token(capture_context: str, transient_token: str) -> dict[str, Any]:
    """The transient token's claims, after checking its RS256 signature with flx.jwk and
    that its issuer is a ``Flex/NN`` (any two-digit suffix)."""
    jwk = context_claims(capture_context)["flx"]["jwk"]
    key = RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")})
    token = jose_jwt.decode(transient_token, key, algorithms=["RS256"])
    if token.header.get("kid") != jwk["kid"]:
        raise ValueError("transient token is not signed with the capture context's key")
    jose_jwt.JWTClaimsRegistry(exp={"essential": True}, iat={"essential": True}).validate(token.claims)
    if not TRANSIENT_TOKEN_ISSUER.fullmatch(str(token.claims.get("iss", ""))):
        raise ValueError(f"transient token issuer {token.claims.get('iss')!r} is not Flex/NN")
    return token.claims
