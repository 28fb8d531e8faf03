"""The sample shop's server: renders the checkout page, verifies what the page sends back.

``GET /`` asks the decline-rescue API for a Microform capture context for the page's origin
(with the credentials only this server holds), keeps it here under a per-page session id,
and renders the page with the context, the client library's URL and its SRI hash. The page
loads that library (Cybersource's Microform, or the local emulator's), which shows the card
number and security code in iframes of its own origin and turns them into a transient token.
``POST /pay`` receives the token (never a card number: this server never sees one), asks
``POST /transient-tokens/verify`` with the context it came from, and answers the verified
card summary (masked number, BIN, brand, expiry) as JSON.

Standard library only (``http.server``, threaded), so a merchant can copy the directory.
Logs name the request's method, path and status, never a body or a query string.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from examples.checkout.api import DeclineRescueApi

HERE = Path(__file__).resolve().parent
STATIC = {
    "/static/checkout.js": ("checkout.js", "text/javascript; charset=utf-8"),
    "/static/checkout.css": ("checkout.css", "text/css; charset=utf-8"),
}
MAX_BODY = 16 * 1024
# a transient token is a compact JWS: three base64url parts
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SESSION = re.compile(r"[A-Za-z0-9_-]{20,64}")
# a capture context lives 15 minutes at Cybersource; the page's session no longer
SESSION_SECONDS = 15 * 60
MAX_SESSIONS = 10_000


@dataclass
class CheckoutConfig:
    api: DeclineRescueApi
    # the shop's public origins (scheme://host[:port]); the first is the default, the others
    # are used when the page is asked for on them (Host header)
    origins: list[str]
    card_networks: list[str] = field(default_factory=lambda: ["VISA", "MASTERCARD", "AMEX"])
    shop_name: str = "Sample shop"


@dataclass
class PageSession:
    capture_context: str
    origin: str
    expires: float


class Sessions:
    """Capture contexts by page session id, in memory (a real shop keeps them with its
    cart): the page sends its id back with the token; the context never leaves the server
    except inside the page that uses it."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._items: OrderedDict[str, PageSession] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def new(self, capture_context: str, origin: str) -> str:
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._items[session_id] = PageSession(capture_context, origin, time.monotonic() + SESSION_SECONDS)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        return session_id

    def get(self, session_id: str) -> PageSession | None:
        with self._lock:
            session = self._items.get(session_id)
            if session is not None and session.expires < time.monotonic():
                del self._items[session_id]
                return None
            return session


# runs of 12 or more digits (spaces and dashes between them too): whatever a URL or a bad
# request line carries, no card number reaches the log
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){11,}")


def redact(text: str) -> str:
    return _DIGIT_RUN.sub("[digits redacted]", text)


def log(line: str) -> None:
    print(f"{datetime.now(UTC).strftime('%H:%M:%S')} {line}", file=sys.stdout, flush=True)


def _safe_json(value: Any) -> str:
    """JSON to put inside a <script> element: no "</script>", no HTML comment openers."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class Checkout:
    """What the routes do, apart from HTTP."""

    def __init__(self, config: CheckoutConfig) -> None:
        self.config = config
        self.sessions = Sessions()
        self.template = (HERE / "templates" / "index.html").read_text(encoding="utf-8")

    def origin_for(self, host: str | None) -> str:
        """The configured origin the page was asked for on (by its Host header), else the first."""
        for origin in self.config.origins:
            if host and urlsplit(origin).netloc.lower() == host.strip().lower():
                return origin
        return self.config.origins[0]

    def page(self, host: str | None) -> tuple[int, str, dict[str, str]]:
        origin = self.origin_for(host)
        answer = self.config.api.capture_context([origin], self.config.card_networks)
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 201 and body.get("captureContext") and body.get("clientLibrary"):
            session_id = self.sessions.new(body["captureContext"], origin)
            library = body["clientLibrary"]
            integrity = body.get("clientLibraryIntegrity") or ""
            log(f"capture context for {origin}: HTTP 201, key {str(body.get('keyId', ''))[:12]}..., library {library}")
            page_config = {"sessionId": session_id, "captureContext": body["captureContext"]}
            tag = f'<script src="{html.escape(library)}"'
            if integrity:
                tag += f' integrity="{html.escape(integrity)}"'
            tag += ' crossorigin="anonymous"></script>'
            return 200, self.render(page_config, tag), self.security_headers(_origin_of(library))
        error = answer.error()
        if answer.ok:  # 2xx without what a page needs: the API is not one that speaks Microform
            error = {"code": "NO_MICROFORM_CONTEXT", "message": "the API answered no Microform capture context"}
        log(f"capture context for {origin}: HTTP {answer.status} {error.get('code')}")
        page_config = {"error": {"status": answer.status, **error}}
        return 502, self.render(page_config, ""), self.security_headers("")

    def render(self, page_config: dict[str, Any], library_tag: str) -> str:
        year = datetime.now(UTC).year
        years = "".join(f'<option value="{y}">{y}</option>' for y in range(year, year + 11))
        months = "".join(f'<option value="{m:02d}">{m:02d}</option>' for m in range(1, 13))
        values = {
            "shop_name": html.escape(self.config.shop_name),
            "config_json": _safe_json(page_config),
            "client_library": library_tag,
            "month_options": months,
            "year_options": years,
        }
        return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], self.template)

    @staticmethod
    def security_headers(library_origin: str) -> dict[str, str]:
        """The page's CSP: its own scripts and the client library's origin, whose iframes it
        frames; the page itself talks to this server only."""
        sources = f"'self' {library_origin}".strip()
        return {
            "Content-Security-Policy": (
                f"default-src 'self'; script-src {sources}; frame-src {sources}; connect-src 'self'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }

    def pay(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(raw)
        except ValueError:
            return 400, _error("INVALID_REQUEST", "the body must be JSON")
        if not isinstance(request, dict):
            return 400, _error("INVALID_REQUEST", "the body must be a JSON object")
        session_id, token = request.get("sessionId"), request.get("transientToken")
        if not isinstance(session_id, str) or not _SESSION.fullmatch(session_id):
            return 400, _error("INVALID_REQUEST", "sessionId is missing or malformed")
        if not isinstance(token, str) or len(token) > 8192 or not _JWT.fullmatch(token):
            return 400, _error("INVALID_REQUEST", "transientToken must be the compact JWT createToken gave")
        session = self.sessions.get(session_id)
        if session is None:
            return 409, _error("SESSION_EXPIRED", "this page's session is unknown or expired: reload the page")
        answer = self.config.api.verify(token, session.capture_context)
        summary = answer.body if isinstance(answer.body, dict) else {"error": answer.error()}
        card = summary.get("card") if isinstance(summary.get("card"), dict) else {}
        what = f"{card.get('brand') or card.get('type') or ''} {card.get('maskedNumber', '')}".strip()
        log(f"transient token verified: HTTP {answer.status} {what or answer.error().get('code')}")
        if not answer.ok and "error" not in summary:
            summary = {"error": answer.error()}
        return answer.status, summary


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def make_handler(checkout: Checkout) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sample-checkout"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path in ("/", "/index.html"):
                status, text, headers = checkout.page(self.headers.get("Host"))
                self.send(status, text.encode(), "text/html; charset=utf-8", headers)
            elif path in STATIC:
                name, content_type = STATIC[path]
                self.send(200, (HERE / "static" / name).read_bytes(), content_type, {"Cache-Control": "no-cache"})
            elif path == "/favicon.ico":
                self.send(204, b"", "image/x-icon")
            elif path == "/healthz":
                self.send(200, b'{"ok": true, "service": "sample-checkout"}', "application/json")
            else:
                self.send(404, b'{"error": {"code": "NOT_FOUND", "message": "not found"}}', "application/json")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            if path != "/pay":
                self.send(404, b'{"error": {"code": "NOT_FOUND", "message": "not found"}}', "application/json")
                return
            if length > MAX_BODY:
                self.close_connection = True
                self.send(413, json.dumps(_error("TOO_LARGE", "the body is too large")).encode(), "application/json")
                return
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                self.rfile.read(length)
                self.send(415, json.dumps(_error("INVALID_REQUEST", "send JSON")).encode(), "application/json")
                return
            status, body = checkout.pay(self.rfile.read(length))
            self.send(status, json.dumps(body).encode(), "application/json", {"Cache-Control": "no-store"})

        def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # the path only: never a query string or a body
            log(f"{self.command} {redact(urlsplit(self.path).path)} {code}")

        def log_message(self, format: str, *args: Any) -> None:
            log("http: " + redact((format % args).split("?", 1)[0]))

    return Handler


class CheckoutServer:
    """The shop server in a thread (the local stack and tests), or in the foreground."""

    def __init__(self, config: CheckoutConfig, host: str = "127.0.0.1", port: int = 8083) -> None:
        self.checkout = Checkout(config)
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self.checkout))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CheckoutServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="sample-checkout")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CheckoutServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
