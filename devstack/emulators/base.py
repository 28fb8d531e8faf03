"""What every provider emulator shares: a threaded WSGI server, fault switches, counters.

Faults are queued per endpoint through ``POST /__emulator/faults`` and consumed one per
request, so a test can say "the next two session calls answer 503" over HTTP, whichever
process the emulator runs in.
"""

from __future__ import annotations

import collections
import json
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


class Emulator:
    """Base WSGI app: subclasses add rules whose endpoints are method names."""

    name = "emulator"

    def __init__(self) -> None:
        self._faults: dict[str, collections.deque[dict[str, Any]]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.url_map = Map(
            [
                Rule("/__emulator/faults", methods=["POST"], endpoint="admin_add_faults"),
                Rule("/__emulator/faults", methods=["DELETE"], endpoint="admin_clear_faults"),
                Rule("/__emulator/stats", methods=["GET"], endpoint="admin_stats"),
                Rule("/__emulator/health", methods=["GET"], endpoint="admin_health"),
                *self.rules(),
            ]
        )

    def rules(self) -> list[Rule]:
        return []

    def close(self) -> None:
        """Stop whatever background work the emulator runs (``ServerThread.stop`` calls it)."""

    # -- faults ---------------------------------------------------------------------

    def take_fault(self, endpoint: str) -> dict[str, Any] | None:
        with self._lock:
            queue = self._faults.get(endpoint)
            return queue.popleft() if queue else None

    def admin_add_faults(self, request: Request) -> Response:
        body = request.get_json(force=True)
        endpoint = body["endpoint"]
        faults = body.get("faults") or [body.get("fault", {})]
        with self._lock:
            self._faults[endpoint].extend(faults)
        return json_response(200, {"queued": len(faults), "endpoint": endpoint})

    def admin_clear_faults(self, request: Request) -> Response:
        with self._lock:
            self._faults.clear()
        return json_response(200, {"cleared": True})

    def admin_stats(self, request: Request) -> Response:
        return json_response(200, {"counts": dict(self.counts)})

    def admin_health(self, request: Request) -> Response:
        return json_response(200, {"ok": True, "emulator": self.name})

    @staticmethod
    def apply_delay(fault: dict[str, Any] | None) -> None:
        if fault and fault.get("delay"):
            time.sleep(float(fault["delay"]))

    # -- WSGI -----------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            with self._lock:
                self.counts[endpoint] += 1
            response = getattr(self, endpoint)(request, **args)
        except NotFound:
            response = json_response(404, {"message": "not found"})
        except HTTPException as exc:
            response = json_response(exc.code or 500, {"message": exc.description})
        return response(environ, start_response)


def serve_forever(emulator: Emulator, host: str, port: int) -> None:
    """Run an emulator in the foreground (its module's ``main``) until interrupted."""
    server = ServerThread(emulator, host, port)
    print(f"{emulator.name} emulator on {server.url}", flush=True)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass


class ServerThread:
    """Serve a WSGI app on loopback in a daemon thread (tests, the local stack)."""

    def __init__(
        self, app: Callable, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True, ssl_context=ssl_context)
        self.server.daemon_threads = True
        # a short poll interval: stop() returns within ~50 ms instead of half a second
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.server.ssl_context is not None else "http"
        return f"{scheme}://{self.server.host}:{self.server.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if isinstance(self.app, Emulator):
            self.app.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
