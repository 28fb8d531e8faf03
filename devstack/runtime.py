"""A local Lambda execution environment: one process, one invocation at a time.

The local stack starts one or more of these per function (``devstack.stack.FunctionWorker``
is the function's pool of them) with the function's environment from the template. Each
imports the handler module once (the init phase, as Lambda does on a cold start), so module
state and caches belong to the environment, as on AWS, and then serves invocations one at
a time on the Lambda invoke path ``POST /2015-03-31/functions/function/invocations``, like
AWS's runtime interface emulator. Logs go to stdout/stderr, which the stack collects.

Every answer carries ``X-Local-Pid`` (this process) and ``X-Local-Invocation`` (how many
invocations this environment has served, 1 on its cold start).

How an environment ends, as on Lambda:

- A handler exception is a function error (``X-Amz-Function-Error: Unhandled``, the
  exception's type as ``errorType``); the environment lives on.
- The function's timeout (SIGALRM, armed for each invocation) logs where the handler was,
  answers ``Sandbox.Timedout`` and exits at once, without unwinding the handler (no
  ``finally`` block or ``except BaseException`` of the handler runs, as none does when
  Lambda stops a timed-out environment); the answer carries
  ``X-Local-Environment-Reset: timeout`` and the stack starts a fresh environment for later
  invocations. A handler stuck where no signal handler runs is SIGKILLed by the stack.
- Chaos: a request header ``X-Local-Chaos: calls=N`` or ``timer=S`` (sent by the stack
  when ``LOCAL_CHAOS_KILL_PROBABILITY`` arms an invocation) makes this process SIGKILL
  itself mid-handler: at the handler's N-th Python function call (a ``sys.setprofile``
  hook, in the handler's thread and in threads it starts), or S seconds into the handler
  (a timer thread, which lands mostly while a request is in flight). It logs one
  ``{"local_runtime": "chaos-kill", ...}`` line first. An armed invocation that ends
  before its point is not killed; it answers ``X-Local-Calls`` (the calls it made), which
  the stack uses to aim later kills.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
CHAOS_HEADER = "X-Local-Chaos"
RESET_HEADER = "X-Local-Environment-Reset"
PID_HEADER = "X-Local-Pid"
INVOCATION_HEADER = "X-Local-Invocation"
CALLS_HEADER = "X-Local-Calls"
REQUEST_ID_HEADER = "X-Local-Request-Id"  # the stack's request id for the invocation


class LambdaContext:
    """The attributes and method of the context object Lambda passes to handlers."""

    def __init__(
        self, name: str, memory: int, timeout: int, region: str = "us-east-1", request_id: str | None = None
    ) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(spec: str):
    module_name, _, function_name = spec.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


def _log(**fields: Any) -> None:
    print(json.dumps({"local_runtime": fields.pop("what"), **fields}), flush=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _kill_self(name: str, request_id: str, point: str) -> None:
    """SIGKILL this process, as an execution environment dies: nothing unwinds."""
    _log(what="chaos-kill", function=name, pid=os.getpid(), requestId=request_id, at=point)
    _flush()
    os.kill(os.getpid(), signal.SIGKILL)


class ChaosArm:
    """A kill point for one invocation: after ``calls`` function calls or ``timer`` seconds."""

    def __init__(self, plan: str | None, kill: Callable[[str], None]) -> None:
        self.calls_at: int | None = None
        self.timer_at: float | None = None
        self.calls = 0
        self._kill = kill
        self._armed = False
        self._timer: threading.Timer | None = None
        if plan:
            kind, _, value = plan.partition("=")
            if kind.strip() == "calls":
                self.calls_at = max(1, int(value))
            elif kind.strip() == "timer":
                self.timer_at = max(0.0, float(value))

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if self._armed and (event == "call" or event == "c_call"):
            self.calls += 1
            if self.calls_at is not None and self.calls >= self.calls_at:
                self._kill(f"call {self.calls}")

    def arm(self) -> None:
        self._armed = True
        if self.calls_at is not None:
            threading.setprofile(self._profile)
            sys.setprofile(self._profile)
        if self.timer_at is not None:
            self._timer = threading.Timer(self.timer_at, self._fire, args=(time.monotonic(),))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, started: float) -> None:
        if self._armed:
            self._kill(f"{(time.monotonic() - started) * 1000:.0f} ms")

    def disarm(self) -> None:
        self._armed = False  # a thread the handler left running keeps the hook: it counts no more
        if self.calls_at is not None:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]
        if self._timer is not None:
            self._timer.cancel()


def serve(handler_spec: str, name: str, memory: int, timeout: int, sock: socket.socket) -> None:
    started = time.perf_counter()
    handler = load_handler(handler_spec)
    init_ms = (time.perf_counter() - started) * 1000
    _log(what="init", function=name, pid=os.getpid(), init_ms=round(init_ms, 1))
    served = [0]

    class Invoke(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:  # health
            self._answer(200, {"ok": True, "function": name, "pid": os.getpid()})

        def do_POST(self) -> None:
            if self.path != INVOKE_PATH:
                self._answer(404, {"message": "not found"})
                return
            length = int(self.headers.get("Content-Length", 0))
            event = json.loads(self.rfile.read(length) or b"null")
            served[0] += 1
            context = LambdaContext(name, memory, timeout, request_id=self.headers.get(REQUEST_ID_HEADER))
            request_id = context.aws_request_id
            chaos = ChaosArm(self.headers.get(CHAOS_HEADER), lambda at: _kill_self(name, request_id, at))

            def timed_out(signum: int, frame: Any) -> None:
                # Lambda stops a timed-out environment: answer, then exit without unwinding
                chaos.disarm()
                where = "".join(traceback.format_stack(frame, limit=4)) if frame is not None else ""
                _log(what="timeout", function=name, pid=os.getpid(), requestId=request_id, where=where)
                self._answer(
                    200,
                    {
                        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
                        "errorType": "Sandbox.Timedout",
                    },
                    {"X-Amz-Function-Error": "Unhandled", RESET_HEADER: "timeout"},
                )
                _flush()
                os._exit(0)

            signal.signal(signal.SIGALRM, timed_out)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            chaos.arm()
            try:
                result = handler(event, context)
            except Exception as exc:  # noqa: BLE001 - reported like Lambda does
                chaos.disarm()
                signal.setitimer(signal.ITIMER_REAL, 0)
                traceback.print_exc()
                _flush()
                self._answer(
                    200,
                    {
                        "errorMessage": str(exc),
                        "errorType": type(exc).__name__,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    },
                    {"X-Amz-Function-Error": "Unhandled", **self._calls(chaos)},
                )
                return
            chaos.disarm()
            signal.setitimer(signal.ITIMER_REAL, 0)
            _flush()
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                self._answer(
                    200,
                    {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError"},
                    {"X-Amz-Function-Error": "Unhandled", **self._calls(chaos)},
                )
                return
            self._answer(200, result, self._calls(chaos))

        @staticmethod
        def _calls(chaos: ChaosArm) -> dict[str, str]:
            return {CALLS_HEADER: str(chaos.calls)} if chaos.calls_at is not None else {}

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header(PID_HEADER, str(os.getpid()))
            self.send_header(INVOCATION_HEADER, str(served[0]))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

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
