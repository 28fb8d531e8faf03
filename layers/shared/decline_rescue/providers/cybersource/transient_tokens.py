"""Transient tokens (Microform v2 ``createToken``, or Flex API ``/flex/v2/tokens``): what a
merchant's server checks before it pays with one, and the card summary it may keep.

A token is a JWT (RS256) signed with the one-time key of the capture context it was made
with (``flx.jwk``), so a token proves itself only together with that context, and the
context proves itself with Cybersource's signature (``CybersourceClient.verified_claims``).
The context may have expired since the page used it (a token lives 15 minutes of its own):
its lifetime is not checked, but the token must have been made while it was valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from decline_rescue.domain.checkout import brand
from decline_rescue.domain.errors import CaptureContextUnverified, TransientTokenRejected
from decline_rescue.providers.cybersource.client import CybersourceClient, _one_time_key, _unverified_header

_ISSUER = re.compile(r"^Flex/\d{2}$")
_MASKED = re.compile(r"^[0-9]{0,8}[X*x]{4,15}[0-9]{4}$")
_DIGITS = re.compile(r"^[0-9]{6,8}$")
_MONTH = re.compile(r"^(0?[1-9]|1[0-2])$")
_YEAR = re.compile(r"^[0-9]{4}$")
_TYPE = re.compile(r"^[0-9]{3}$")


@dataclass(frozen=True)
class VerifiedToken:
    jti: str
    token_type: str
    issued_at: datetime
    expires_at: datetime
    card: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "verified": True,
            "tokenId": self.jti,
            "type": self.token_type,
            "issuedAt": _iso(self.issued_at),
            "expiresAt": _iso(self.expires_at),
            "card": self.card,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _rejected(reason: str, message: str) -> TransientTokenRejected:
    return TransientTokenRejected(f"the transient token was refused: {message}", reason=reason)


def verify_transient_token(client: CybersourceClient, token: str, capture_context: str) -> VerifiedToken:
    """The token, verified with the capture context it came from, or
    ``TransientTokenRejected`` naming what failed. A Cybersource key that cannot be fetched
    stays a provider error (502): the token may be good."""
    try:
        _, context = client.verified_claims(capture_context, check_lifetime=False)
        key = _one_time_key(context)
    except CaptureContextUnverified as exc:
        if exc.reason == "key_fetch_failed":
            raise
        raise _rejected(
            f"capture_context_{exc.reason}", exc.message.replace("capture context failed", "its capture context failed")
        ) from None
    header = _unverified_header(token)
    if header is None:
        raise _rejected("malformed", "it is not a JWT")
    if header.get("alg") != "RS256":
        raise _rejected("bad_algorithm", f"algorithm {str(header.get('alg'))[:20]!r} is not RS256")
    if header.get("kid") != key["kid"]:
        raise _rejected("wrong_context", "it was not made with this capture context (another one-time key)")
    try:
        public = jwt.PyJWK({k: key[k] for k in ("kty", "n", "e")}, algorithm="RS256")
        claims = jwt.decode(
            token,
            public.key,
            algorithms=["RS256"],
            leeway=client.leeway_seconds,
            options={"require": ["exp", "iat", "jti"], "verify_aud": False, "verify_iss": False},
        )
    except jwt.InvalidSignatureError:
        raise _rejected("signature", "its signature does not verify with the capture context's key") from None
    except jwt.ExpiredSignatureError:
        raise _rejected("expired", "it has expired (a transient token lives 15 minutes)") from None
    except jwt.ImmatureSignatureError:
        raise _rejected("not_yet_valid", "it is issued in the future") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _rejected("malformed", f"it lacks {exc.claim}") from None
    except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError) as exc:
        raise _rejected("malformed", f"it is malformed ({type(exc).__name__})") from None
    if int(claims["iat"]) > int(context.get("exp", 0)) + client.leeway_seconds:
        raise _rejected("context_expired", "it was made after its capture context expired")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not _ISSUER.match(issuer):
        raise _rejected("issuer", "its issuer is not Flex/NN")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= 128:
        raise _rejected("malformed", "its jti is not a token id")
    return VerifiedToken(
        jti=jti,
        token_type=str(claims.get("type") or "")[:32],
        issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        card=_card(claims.get("content")),
    )


def _value(node: Any, pattern: re.Pattern[str]) -> str | None:
    value = node.get("value") if isinstance(node, dict) else None
    return value if isinstance(value, str) and pattern.match(value) else None


def _card(content: Any) -> dict[str, Any]:
    """The non-sensitive summary: masked number, BIN, type, expiry. Only values of the
    expected shapes are copied (a masked number that is not masked is refused, never kept)."""
    card = content.get("paymentInformation", {}).get("card") if isinstance(content, dict) else None
    if not isinstance(card, dict) or not isinstance(card.get("number"), dict):
        raise _rejected("content", "it carries no card number summary")
    number = card["number"]
    masked = number.get("maskedValue")
    if not isinstance(masked, str) or not _MASKED.match(masked):
        raise _rejected("content", "its card number is not masked")
    bin_ = number.get("bin")
    detected = number.get("detectedCardTypes")
    card_type = _value(card.get("type"), _TYPE)
    if card_type is None and isinstance(detected, list) and detected and isinstance(detected[0], str):
        card_type = detected[0] if _TYPE.match(detected[0]) else None
    summary: dict[str, Any] = {
        "maskedNumber": masked,
        "bin": bin_ if isinstance(bin_, str) and _DIGITS.match(bin_) else None,
        "last4": masked[-4:],
        "type": card_type,
        "brand": brand(card_type),
        "expirationMonth": _value(card.get("expirationMonth"), _MONTH),
        "expirationYear": _value(card.get("expirationYear"), _YEAR),
        "securityCode": isinstance(card.get("securityCode"), dict),
    }
    if isinstance(detected, list):
        summary["detectedCardTypes"] = [t for t in detected if isinstance(t, str) and _TYPE.match(t)]
    return summary
