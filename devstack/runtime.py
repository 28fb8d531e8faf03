"""A local Lambda execution environment: one process per function.

Started by the local stack with the function's environment (from the template), it
imports the handler module once (the init phase, as Lambda does on a cold start) and
then serves invocations one at a time on the Lambda invoke path
``POST /2015-03-31/functions/function/invocations``, like AWS's runtime interface
emulator. Logs go to stdout/stderr, which the stack collects.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import socket
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


class LambdaContext:
    """The attributes and method of the context object Lambda passes to handlers."""

    def __init__(self, name: str, memory: int, timeout: int, region: str = "us-east-1") -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionTimeout(BaseException):
    """Raised in the handler when the function's timeout passes (Lambda would kill it)."""


def _timed_out(signum: int, frame: Any) -> None:
    raise FunctionTimeout()


def load_handler(spec: str):
    module_name, _, function_name = spec.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


def serve(handler_spec: str, name: str, memory: int, timeout: int, sock: socket.socket) -> None:
    started = time.perf_counter()
    handler = load_handler(handler_spec)
    init_ms = (time.perf_counter() - started) * 1000
    print(json.dumps({"local_runtime": "init", "function": name, "init_ms": round(init_ms, 1)}), flush=True)

    class Invoke(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:  # health
            self._answer(200, {"ok": True, "function": name})

        def do_POST(self) -> None:
            if self.path != INVOKE_PATH:
                self._answer(404, {"message": "not found"})
                return
            length = int(self.headers.get("Content-Length", 0))
            event = json.loads(self.rfile.read(length) or b"null")
            context = LambdaContext(name, memory, timeout)
            signal.signal(signal.SIGALRM, _timed_out)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                result = handler(event, context)
            except FunctionTimeout:
                self._answer(
                    200,
                    {"errorMessage": f"Task timed out after {timeout:.2f} seconds", "errorType": "Sandbox.Timedout"},
                    {"X-Amz-Function-Error": "Unhandled"},
                )
                return
            except Exception as exc:  # noqa: BLE001 - reported like Lambda does
                traceback.print_exc()
                sys.stderr.flush()
                self._answer(
                    200,
                    {
                        "errorMessage": str(exc),
                        "errorType": type(exc).__name__,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    },
                    {"X-Amz-Function-Error": "Unhandled"},
                )
                return
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout.flush()
            self._answer(200, result)

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

    server = HTTPServer(sock.getsockname(), Invoke, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="local Lambda execution environment")
    parser.add_argument("--handler", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--timeout", type=int, default=3)
    parser.add_argument("--fd", type=int, required=True, help="listening socket inherited from the stack")
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    serve(args.handler, args.name, args.memory, args.timeout, sock)


if __name__ == "__main__":
    main()
