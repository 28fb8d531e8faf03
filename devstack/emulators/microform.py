"""Microform Integration v2 in the Cybersource emulator (PROVIDERS.md section 1, "What real
Cybersource material shows"): the session request's rules, the capture context's ``ctx``,
the client library and field iframe the Flex origin serves, and what a Microform
transient token adds to a Flex API one.

- ``POST /microform/v2/sessions`` (REST host, same HTTP Signature as Flex API sessions):
  ``validate_session_request`` holds the body to Cybersource's rules and answers the
  ``MicroformRequest`` or the 400 details, each naming its location.
- The capture context's ``ctx[0]`` is ``{"type": "mf-2.1.0", "data": {clientLibrary,
  clientLibraryIntegrity, targetOrigins, mfOrigin, allowedCardNetworks, ...}}``;
  ``clientLibraryIntegrity`` is the SRI hash (sha384) of the exact bytes served, computed
  from the file when the emulator starts.
- The Flex origin serves ``SCRIPT_PATH`` (the Microform-compatible library, CORS ``*`` so
  a page can load it with ``integrity`` and ``crossorigin="anonymous"``), ``IFRAME_PATH``
  (the field document, ``?kid=<flx.jwk.kid>&field=number|securityCode``, framed only by the
  session's ``targetOrigins`` through CSP ``frame-ancestors``) and ``IFRAME_SCRIPT_PATH``.
- ``/flex/v2/tokens`` answers a Microform session's JWE with a ``mf-2.0.0`` token whose
  number summary carries ``detectedCardTypes``, and refuses a card whose network the
  session does not allow.

Brand detection here is by number prefix, written apart from the library's JavaScript
table on purpose (the browser tests compare the two). Networks that share Visa or
Mastercard ranges (CARTESBANCAIRES, MADA, EFTPOS, CARNET, MEEZA, ELO, JCREW) need BIN tables
Cybersource has and we do not: they are accepted in requests but never detected.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

CONTEXT_TYPE = "mf-2.1.0"
TOKEN_TYPE = "mf-2.0.0"
DEFAULT_CLIENT_VERSION = "v2.0"
ASSETS = Path(__file__).resolve().parent / "microform_assets"
BUNDLE = "/microform/bundle/v2.0"
SCRIPT_PATH = f"{BUNDLE}/flex-microform.min.js"
IFRAME_PATH = f"{BUNDLE}/iframe.html"
IFRAME_SCRIPT_PATH = f"{BUNDLE}/iframe.js"
FIELD_TYPES = ("number", "securityCode")

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
PAYMENT_TYPES = ("CARD",)
_LOOPBACK = ("localhost", "127.0.0.1")
_REQUEST_KEYS = {
    "clientVersion",
    "targetOrigins",
    "allowedCardNetworks",
    "allowedPaymentTypes",
    "transientTokenResponseOptions",
}

# (network, Cybersource card type, prefix ranges as (low, high) strings of equal length)
BRANDS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("VISA", "001", (("4", "4"),)),
    ("MASTERCARD", "002", (("51", "55"), ("2221", "2720"))),
    ("AMEX", "003", (("34", "34"), ("37", "37"))),
    ("DISCOVER", "004", (("6011", "6011"), ("644", "649"), ("65", "65"))),
    ("DINERSCLUB", "005", (("300", "305"), ("36", "36"), ("38", "39"))),
    ("JCB", "007", (("3528", "3589"),)),
    (
        "MAESTRO",
        "042",
        (
            ("5018", "5018"),
            ("5020", "5020"),
            ("5038", "5038"),
            ("5893", "5893"),
            ("6304", "6304"),
            ("6759", "6759"),
            ("6761", "6763"),
        ),
    ),
    ("CUP", "062", (("62", "62"),)),
)

# the microform session's capture context takes these fields (dotted, as in the JWE data)
REQUIRED_FIELDS = ("paymentInformation.card.number",)
OPTIONAL_FIELDS = (
    "paymentInformation.card.securityCode",
    "paymentInformation.card.expirationMonth",
    "paymentInformation.card.expirationYear",
    "paymentInformation.card.type",
)


@dataclass(frozen=True)
class MicroformRequest:
    client_version: str
    target_origins: tuple[str, ...]
    allowed_networks: tuple[str, ...]
    allowed_payment_types: tuple[str, ...]
    include_card_prefix: bool


def _origin_problem(origin: Any) -> str | None:
    if not isinstance(origin, str) or not origin:
        return "must be an origin string such as https://shop.example"
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in origin):
        return "must be an ASCII origin without spaces"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "must be scheme://host[:port]"
    if parts.scheme not in ("https", "http") or not parts.hostname or not origin.startswith(parts.scheme + "://"):
        return "must be scheme://host[:port] with scheme https"
    if "@" in parts.netloc:
        return "must not carry credentials"
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "must not have a path, query or fragment"
    if port == 0:
        return "the port must be 1-65535"
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return "http is allowed for localhost and 127.0.0.1 only"
    if parts.hostname != parts.hostname.lower():
        return "the host must be lower-case"
    return None


def _string_list(
    payload: dict[str, Any], name: str, allowed: tuple[str, ...] | None, details: list[dict[str, str]]
) -> tuple[str, ...] | None:
    value = payload.get(name)
    if not isinstance(value, list) or not value:
        details.append({"location": name, "message": "must be a non-empty array"})
        return None
    for i, item in enumerate(value):
        if not isinstance(item, str) or (allowed is not None and item not in allowed):
            details.append({"location": f"{name}[{i}]", "message": f"must be one of {', '.join(allowed or ())}"})
        elif value.index(item) != i:
            details.append({"location": f"{name}[{i}]", "message": "duplicate value"})
    return tuple(value)


def validate_session_request(payload: Any) -> tuple[MicroformRequest | None, list[dict[str, str]]]:
    """The request, or the 400 details (one per broken rule, each naming its location)."""
    if not isinstance(payload, dict):
        return None, [{"location": "body", "message": "must be a JSON object"}]
    details: list[dict[str, str]] = [
        {"location": key, "message": "unknown field"} for key in payload if key not in _REQUEST_KEYS
    ]
    origins = payload.get("targetOrigins")
    if not isinstance(origins, list) or not origins:
        details.append({"location": "targetOrigins", "message": "must be a non-empty array of origins"})
    else:
        for i, origin in enumerate(origins):
            problem = _origin_problem(origin)
            if problem:
                details.append({"location": f"targetOrigins[{i}]", "message": problem})
    networks: tuple[str, ...] | None = CARD_NETWORKS
    if "allowedCardNetworks" in payload:
        networks = _string_list(payload, "allowedCardNetworks", CARD_NETWORKS, details)
    payment_types: tuple[str, ...] | None = PAYMENT_TYPES
    if "allowedPaymentTypes" in payload:
        payment_types = _string_list(payload, "allowedPaymentTypes", PAYMENT_TYPES, details)
    version = payload.get("clientVersion", DEFAULT_CLIENT_VERSION)
    if not isinstance(version, str) or not version or len(version) > 16:
        details.append({"location": "clientVersion", "message": "must be a version string such as v2.0"})
    options = payload.get("transientTokenResponseOptions", {})
    include_prefix = True
    if not isinstance(options, dict) or set(options) - {"includeCardPrefix"}:
        details.append({"location": "transientTokenResponseOptions", "message": 'must be {"includeCardPrefix": bool}'})
    elif not isinstance(options.get("includeCardPrefix", True), bool):
        details.append({"location": "transientTokenResponseOptions.includeCardPrefix", "message": "must be a boolean"})
    else:
        include_prefix = options.get("includeCardPrefix", True)
    if details:
        return None, details
    return MicroformRequest(version, tuple(origins), networks or (), payment_types or (), include_prefix), []


# -- the served assets --------------------------------------------------------------------


class Assets:
    """The library script, the iframe document and its script, read once at start-up: the
    SRI hash names exactly the bytes served."""

    def __init__(self, root: Path = ASSETS) -> None:
        self.script = (root / "flex-microform.js").read_bytes()
        self.iframe_script = (root / "iframe.js").read_bytes()
        self.iframe_template = (root / "iframe.html").read_text(encoding="utf-8")
        self.integrity = "sha384-" + base64.b64encode(hashlib.sha384(self.script).digest()).decode()

    def ctx_data(self, request: MicroformRequest, mf_origin: str) -> dict[str, Any]:
        return {
            "clientLibrary": mf_origin + SCRIPT_PATH,
            "clientLibraryIntegrity": self.integrity,
            "targetOrigins": list(request.target_origins),
            "mfOrigin": mf_origin,
            "allowedCardNetworks": list(request.allowed_networks),
            "allowedPaymentTypes": list(request.allowed_payment_types),
            "clientVersion": request.client_version,
        }

    def script_response(self) -> Response:
        return Response(
            self.script,
            content_type="application/javascript; charset=utf-8",
            headers={
                "Access-Control-Allow-Origin": "*",
                "Cross-Origin-Resource-Policy": "cross-origin",
                "Cache-Control": "public, max-age=300",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def iframe_script_response(self) -> Response:
        return Response(
            self.iframe_script,
            content_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def iframe_response(self, kid: str, field: str, target_origins: tuple[str, ...]) -> Response:
        """The field document, framed only by the session's page origins. The origins also
        go into the document: the iframe answers ``postMessage`` from those and no other."""
        config = json.dumps({"kid": kid, "field": field, "targetOrigins": list(target_origins)})
        config = config.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        body = self.iframe_template.replace("__MF_CONFIG__", config).replace("__MF_FIELD__", html.escape(field))
        csp = "; ".join(
            [
                "default-src 'none'",
                "script-src 'self'",
                "connect-src 'self'",
                "style-src 'self'",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors " + " ".join(target_origins),
            ]
        )
        return Response(
            body,
            content_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": csp,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )


def not_found_page(message: str, status: int = 404) -> Response:
    return Response(
        f"<!doctype html><title>Not found</title><p>{html.escape(message)}</p>",
        status=status,
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store"},
    )


# -- transient tokens ---------------------------------------------------------------------


def detect(number: str) -> list[tuple[str, str]]:
    """(network, card type) of every brand whose prefix ranges the full number falls in."""
    found = []
    for network, card_type, ranges in BRANDS:
        for low, high in ranges:
            if low <= number[: len(low)] <= high:
                found.append((network, card_type))
                break
    return found


def network_details(number: str, allowed: tuple[str, ...]) -> list[dict[str, str]]:
    """The 400 detail for a card whose network the session does not take."""
    networks = [network for network, _ in detect(number)]
    if not any(n in allowed for n in networks):
        named = networks[0] if networks else "unknown"
        return [
            {
                "location": "paymentInformation.card.number",
                "message": f"card network {named} is not in allowedCardNetworks",
            }
        ]
    return []


def decorate_content(content: dict[str, Any], number: str, include_prefix: bool) -> dict[str, Any]:
    """A Flex API token's ``content`` as Microform answers it: ``detectedCardTypes`` on the
    number, the card type detected when the page sent none, no BIN unless asked for."""
    card = content.get("paymentInformation", {}).get("card", {})
    summary = card.get("number")
    if isinstance(summary, dict):
        types = [card_type for _, card_type in detect(number)]
        summary["detectedCardTypes"] = types
        if not include_prefix:
            summary.pop("bin", None)
        if types and "type" not in card:
            card["type"] = {"value": types[0]}
    return content
