"""A web checkout's Microform v2 capture context: which page origins may have one, which
card networks it takes, and what a verified transient token says about the card.

Cybersource's rules for ``targetOrigins`` (Microform Integration v2, "Creating the
server-side capture context"): the origin is scheme, host and port of the page, ``https``
unless the page is on ``http://localhost``; we also allow ``http://127.0.0.1`` for
development, as the issue asks. An origin has no path, query, fragment or credentials.
Cybersource documents no maximum number of origins (its own example lists three, for
nested iframes); we take at most ``MAX_TARGET_ORIGINS``.

A merchant names the origins its checkout pages live on (``CheckoutOrigins``): a capture
context is issued only for those, so a page on another origin cannot get one from us.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_TARGET_ORIGINS = 10
MAX_ORIGIN_LENGTH = 255

# allowedCardNetworks as Cybersource's Microform v2 documentation lists them
CARD_NETWORKS: tuple[str, ...] = (
    "VISA",
    "MASTERCARD",
    "AMEX",
    "CARNET",
    "CARTESBANCAIRES",
    "CUP",
    "DINERSCLUB",
    "DISCOVER",
    "EFTPOS",
    "ELO",
    "JCB",
    "JCREW",
    "MADA",
    "MAESTRO",
    "MEEZA",
)
PAYMENT_TYPES: tuple[str, ...] = ("CARD",)

# Cybersource card type codes (paymentInformation.card.type) and the network each names
CARD_TYPE_BRANDS: dict[str, str] = {
    "001": "VISA",
    "002": "MASTERCARD",
    "003": "AMEX",
    "004": "DISCOVER",
    "005": "DINERSCLUB",
    "007": "JCB",
    "024": "MAESTRO",
    "036": "CARTESBANCAIRES",
    "042": "MAESTRO",
    "054": "ELO",
    "058": "CARNET",
    "062": "CUP",
}

_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1"})


def origin_problem(origin: object) -> tuple[str, str] | None:
    """(rule, message) when ``origin`` is not a page origin Cybersource takes, else None."""
    if not isinstance(origin, str) or not origin:
        return "type", "must be an origin such as https://shop.example"
    if len(origin) > MAX_ORIGIN_LENGTH:
        return "length", f"must be at most {MAX_ORIGIN_LENGTH} characters"
    if origin != origin.strip() or any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in origin):
        return "format", "must be an ASCII origin without spaces (punycode for international names)"
    if origin != origin.lower():
        return "format", "must be lower case, as a browser serialises an origin"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "format", "must be scheme://host[:port]"
    if parts.scheme not in ("https", "http") or "//" not in origin:
        return "scheme", "must start with https:// (http:// only for localhost or 127.0.0.1)"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "format", "must not carry credentials"
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "no_path", "must be an origin only: scheme://host[:port], no path, query or fragment"
    host = parts.hostname or ""
    if not _HOST.match(host) and host != "127.0.0.1":
        return "format", "the host must be a lower-case DNS name"
    if port == 0:
        return "format", "the port must be 1-65535"
    if parts.scheme == "http" and host not in _LOOPBACK:
        return "scheme", "must be https:// (http:// only for localhost or 127.0.0.1)"
    return None


def normal_origin(origin: str) -> str:
    """The origin as a browser serialises it: the default port left out."""
    parts = urlsplit(origin)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port not in (None, default) else "")


def allowed_origins(configured: tuple[str, ...]) -> frozenset[str]:
    """The merchant's ``CheckoutOrigins``, normalised; invalid entries are a configuration
    error the caller reports (``configured_origin_problems``)."""
    return frozenset(normal_origin(o) for o in configured if origin_problem(o) is None)


def configured_origin_problems(configured: tuple[str, ...]) -> list[str]:
    return [f"{o!r}: {problem[1]}" for o in configured if (problem := origin_problem(o)) is not None]


def brand(card_type: str | None) -> str | None:
    return CARD_TYPE_BRANDS.get(card_type or "")
