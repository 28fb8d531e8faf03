"""The Cybersource emulator over TLS, in a process of its own (``bench.capture_context``).

The official SDK only speaks https (its API calls and its public-key fetch), so the
capture-context benchmark serves the emulator the way ``tests/integration/test_official_sdk.py``
does (a test CA, a loopback certificate, the SDK's ``testrest`` merchant), but in its own
process so that the emulator's work does not share the GIL of the client being timed. The
handler and the SDK are both pointed at this one emulator.

Two changes, for timing only, both in what the emulator costs rather than what a client does:

- it is served by a small HTTP/1.1 server that keeps connections open, as Cybersource's
  front end does; werkzeug's development server (``devstack.emulators.base.ServerThread``)
  answers ``Connection: close`` to every request, so every call would pay a TCP connect
  and a TLS handshake (~10 ms here) and no client could benefit from keeping its pool;
- the one-time keys come from a small set generated before serving (handed out in turn)
  instead of a pool refilled in the background: RSA-2048 generation (~0.1 s of CPU a
  session) would otherwise steal CPU from whichever client is being timed.

    python -m bench.capture_context_tls --port PORT --tls-dir DIR
"""

from __future__ import annotations

import argparse
import io
import itertools
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.emulators.cybersource import CybersourceEmulator, KeyPool
from devstack.tls import TLSFiles, server_ssl_context

ONE_TIME_KEYS = 8


class CycledKeys(KeyPool):
    """Pre-generated one-time keys, handed out in turn (no background refill)."""

    def __init__(self, keys: list[rsa.RSAPrivateKey]) -> None:  # no filler thread
        self._cycle = itertools.cycle(keys)
        self._lock = threading.Lock()

    def take(self) -> rsa.RSAPrivateKey:
        with self._lock:
            return next(self._cycle)


class KeepAliveWSGIHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive for a WSGI app: requests must carry a Content-Length (no
    chunked uploads), so the stream is always drained to the next request line."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle connection is closed after this
    app: Callable = None  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.send_error(501, "chunked requests are not supported")
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        host, _, port = (self.headers.get("Host") or "").partition(":")
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "SERVER_NAME": host or self.server.server_address[0],
            "SERVER_PORT": port or str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        started: list = []

        def start_response(status: str, headers: list, exc_info=None):
            started[:] = [status, headers]
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self._headers_buffer.append(b"\r\n")  # end_headers(), but one write with the body
        self.wfile.write(b"".join(self._headers_buffer) + payload)
        self._headers_buffer = []

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", required=True, help="holds ca.pem, server.pem, server.key (devstack.tls)")
    args = parser.parse_args()
    tls_dir = Path(args.tls_dir)
    tls = TLSFiles(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server.key")
    emulator = CybersourceEmulator(pool_size=1)
    emulator.pool = CycledKeys([KeyPool.generate() for _ in range(ONE_TIME_KEYS)])
    handler = type("Handler", (KeepAliveWSGIHandler,), {"app": emulator})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    server.socket = server_ssl_context(tls).wrap_socket(server.socket, server_side=True)
    print(f"cybersource emulator on https://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
