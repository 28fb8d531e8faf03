"""A function's execution environments, as Lambda runs them: a pool of processes.

``FunctionWorker`` is one function's pool. Each ``ExecutionEnvironment`` is its own process
(``devstack.runtime``) with its own module state, serving one invocation at a time.

Scaling. One environment is started with the stack (warm); when an invocation arrives and
every environment is busy, another is started (a cold start, in the background) while the
invocation waits for the first environment to be free, the new one or one that finished
meanwhile. Idle environments are reused first, the most recently used one first, so a
sequence of invocations stays on one warm environment. Environments are not reclaimed when
idle. The pool never grows past its limit:

- ``LOCAL_FUNCTION_CONCURRENCY`` (default 4), the local stand-in for the account's
  concurrency, which on AWS is much larger;
- lowered to the function's ``ReservedConcurrentExecutions`` when the template sets one
  (0 throttles every invocation: ``TooManyRequestsException``, as AWS does).

An invocation that finds the pool at its limit waits for an environment: it is not
throttled. (AWS throttles a synchronous invoke past the function's concurrency with a
429; the local limit is far lower than an account's, so waiting keeps what works on AWS
working locally, while the concurrency up to the limit is real.)

Deaths. An environment whose process dies mid-invocation (SIGKILL, a crash, ``os._exit``)
answers that invocation with ``Runtime.ExitError`` (``Runtime exited with error: signal:
killed``), a function error as Lambda reports it; the environment is discarded and the
next invocation that needs one starts a fresh one (a cold start). A timeout answers
``Sandbox.Timedout`` and discards the environment too, whether the runtime answered it
itself (SIGALRM) or, stuck, was SIGKILLed here ``GRACE_SECONDS`` after the function's
timeout. An environment found dead before an event reached it is discarded and the event
goes to another. ``FunctionWorker.kill`` SIGKILLs one from outside; the chaos switch
(``Chaos``) makes the runtime SIGKILL itself at a random point of randomly chosen
invocations (see ``devstack.runtime``). Every discarded environment is logged with the
reason as ``{"local_runtime": "discarded", ...}`` under the function's name, and counted
in ``FunctionWorker.stats``.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from devstack.provision import FunctionSpec
from devstack.runtime import (
    CALLS_HEADER,
    CHAOS_HEADER,
    INVOCATION_HEADER,
    INVOKE_PATH,
    REQUEST_ID_HEADER,
    RESET_HEADER,
)
from devstack.template import ROOT

DEFAULT_CONCURRENCY = 4
GRACE_SECONDS = 2.0  # past the function's timeout, a runtime that has not answered is killed


class Logs(Protocol):
    def write(self, source: str, line: str) -> None: ...

    def pump(self, source: str, stream: Any) -> Any: ...


def default_concurrency() -> int:
    """``LOCAL_FUNCTION_CONCURRENCY``, else 4: the most environments a function gets."""
    value = os.environ.get("LOCAL_FUNCTION_CONCURRENCY", "").strip()
    return max(1, int(value)) if value else DEFAULT_CONCURRENCY


def wait_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen | None = None, expect: str | None = None
) -> None:
    """Wait until ``url`` answers (with ``expect`` in its body, when given) and the
    process serving it is still alive: a port held by something else must not pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} (is the port in use?)")
        try:
            response = httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        if expect is not None and expect not in response.text:
            raise RuntimeError(f"{url} is answered by something else: is the port in use?")
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} (is the port in use?)")
        return
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def terminate(process: subprocess.Popen) -> None:
    """Stop a child and its process group (it was started in a session of its own)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait()


def _sigkill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            process.kill()
        except ProcessLookupError:
            pass


_SIGNAL_WORDS = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted"}


def exit_reason(returncode: int | None) -> str:
    """How Lambda words a runtime's end: ``signal: killed``, ``exit status 1``."""
    if returncode is None:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        try:
            number = signal.Signals(-returncode)
        except ValueError:
            return f"Runtime exited with error: signal: {-returncode}"
        return f"Runtime exited with error: signal: {_SIGNAL_WORDS.get(number, number.name.lower())}"
    return f"Runtime exited with error: exit status {returncode}"


class Invocation(tuple):
    """``(ok, result)``, like Lambda's RequestResponse invoke, plus where and how it ran.

    A tuple, so ``ok, result = stack.invoke(...)`` keeps working; the attributes say which
    environment served it (``pid``, ``served``: its count of invocations, 1 on a cold
    start), how long it took, and what chaos did."""

    pid: int | None
    served: int | None
    seconds: float
    calls: int | None
    chaos: str | None

    def __new__(
        cls,
        ok: bool,
        result: Any,
        *,
        pid: int | None = None,
        served: int | None = None,
        seconds: float = 0.0,
        calls: int | None = None,
        chaos: str | None = None,
    ) -> Invocation:
        self = super().__new__(cls, (ok, result))
        self.pid, self.served, self.seconds, self.calls, self.chaos = pid, served, seconds, calls, chaos
        return self

    @property
    def ok(self) -> bool:
        return self[0]

    @property
    def result(self) -> Any:
        return self[1]

    @property
    def error_type(self) -> str | None:
        return None if self[0] or not isinstance(self[1], dict) else self[1].get("errorType")

    @property
    def cold(self) -> bool:
        return self.served == 1


def _error(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, **extra}


class ExecutionEnvironment:
    """One execution environment of a function: its own process, one invocation at a time."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], logs: Logs, serial: int = 1) -> None:
        self.spec = spec
        self.serial = serial
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        path = os.pathsep.join([spec.code_dir, *spec.layer_dirs, str(ROOT)])
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.runtime",
                "--handler",
                spec.handler,
                "--name",
                spec.name,
                "--memory",
                str(spec.memory),
                "--timeout",
                str(spec.timeout),
                "--fd",
                str(listener.fileno()),
            ],
            env={**env, "PYTHONPATH": path},
            cwd=spec.code_dir,
            start_new_session=True,
            pass_fds=(listener.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        listener.close()
        self.pid = self.process.pid
        logs.pump(spec.logical_id, self.process.stdout)
        self._client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(spec.timeout + GRACE_SECONDS, connect=10.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self.served = 0
        self.killed_by: str | None = None  # "external" once FunctionWorker.kill SIGKILLed it
        self.retired: str | None = None  # why it may serve no more: timeout, exited, unreachable

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_http(self.url + "/", timeout=timeout, process=self.process)

    def alive(self) -> bool:
        return self.retired is None and self.process.poll() is None

    def kill(self, by: str) -> None:
        """SIGKILL the process (and its group), as an execution environment dies."""
        self.killed_by = self.killed_by or by
        _sigkill(self.process)

    def invoke(self, event: Any, chaos: str | None = None) -> Invocation | None:
        """Run one invocation; None when the event never reached the runtime (it was dead)."""
        request_id = str(uuid.uuid4())
        headers = {REQUEST_ID_HEADER: request_id}
        if chaos:
            headers[CHAOS_HEADER] = chaos
        started = time.monotonic()
        self.served += 1

        def answer(ok: bool, result: Any, **extra: Any) -> Invocation:
            seconds = time.monotonic() - started
            return Invocation(ok, result, pid=self.pid, served=self.served, seconds=seconds, chaos=chaos, **extra)

        try:
            response = self._client.post(INVOKE_PATH, json=event, headers=headers)
        except httpx.ConnectError:
            self.retired = "unreachable"
            _sigkill(self.process)
            if self.killed_by == "external":  # killed once handed the invocation: it dies with it
                message = f"RequestId: {request_id} Error: {exit_reason(self.process.wait())}"
                return answer(False, _error("Runtime.ExitError", message))
            self.served -= 1
            return None
        except httpx.TimeoutException:
            self.retired = "timeout"
            self.kill("timeout")
            message = f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds"
            return answer(False, _error("Sandbox.Timedout", message))
        except httpx.TransportError:
            # the process died mid-invocation (or closed the connection: it is not trusted again)
            self.retired = "exited"
            try:
                returncode: int | None = self.process.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _sigkill(self.process)
                returncode = None
            message = f"RequestId: {request_id} Error: {exit_reason(returncode)}"
            return answer(False, _error("Runtime.ExitError", message))
        if RESET_HEADER in response.headers:  # the runtime answered a timeout and exits
            self.retired = response.headers[RESET_HEADER]
        calls = response.headers.get(CALLS_HEADER)
        served = response.headers.get(INVOCATION_HEADER)
        if served and served.isdigit():
            self.served = int(served)
        return answer(
            "X-Amz-Function-Error" not in response.headers,
            response.json(),
            calls=int(calls) if calls and calls.isdigit() else None,
        )

    def stop(self) -> None:
        self._client.close()
        terminate(self.process)


@dataclass
class Chaos:
    """Kill environments at random points mid-invocation (opt-in).

    Each invocation is armed with ``probability``; an armed invocation carries a kill point
    to the runtime, which SIGKILLs itself there: half of them at a random Python function
    call of the handler (uniform over the calls a recent invocation of the function made),
    half after a random time (uniform over a recent invocation's duration). An armed
    invocation that ends before its point lives. ``seed`` makes each function's sequence
    of decisions repeatable (which environment serves which invocation is not).
    ``functions``: the logical ids to arm (empty: every function)."""

    probability: float = 0.0
    seed: int | None = None
    functions: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Chaos:
        seed = os.environ.get("LOCAL_CHAOS_SEED", "").strip()
        names = os.environ.get("LOCAL_CHAOS_FUNCTIONS", "")
        return cls(
            probability=float(os.environ.get("LOCAL_CHAOS_KILL_PROBABILITY", "").strip() or 0.0),
            seed=int(seed) if seed else None,
            functions=tuple(n.strip() for n in names.split(",") if n.strip()),
        )

    def applies_to(self, logical_id: str) -> bool:
        return self.probability > 0 and (not self.functions or logical_id in self.functions)


class FunctionWorker:
    """A function's pool of execution environments (see the module's docstring).

    ``invoke`` answers ``(ok, result)`` as an ``Invocation``; ``wait_ready`` waits for the
    environments started with it; ``kill`` SIGKILLs one; ``stop`` ends them all."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        logs: Logs,
        *,
        concurrency: int | None = None,
        warm: int = 1,
        chaos: Chaos | None = None,
    ) -> None:
        self.spec = spec
        self._env = env
        self._logs = logs
        cap = max(1, concurrency) if concurrency is not None else default_concurrency()
        reserved = getattr(spec, "reserved_concurrency", None)
        self.limit = cap if reserved is None else max(0, min(cap, int(reserved)))
        self._cond = threading.Condition()
        self._idle: list[ExecutionEnvironment] = []  # a stack: the most recently used on top
        self._busy: set[ExecutionEnvironment] = set()
        self._starting = 0
        self._waiting = 0
        self._serial = 0
        self._closed = False
        self._failed_starts: collections.deque[Invocation] = collections.deque()
        self.stats: collections.Counter[str] = collections.Counter()
        self.chaos_kills: list[str] = []  # the kill points of the invocations chaos killed
        self._chaos_lock = threading.Lock()
        self._seconds_hint = 0.2
        self._calls_hint = 2000
        self.set_chaos(chaos or Chaos())
        self._kill_rng = random.Random()
        self._warming = [self._spawn() for _ in range(min(warm, self.limit))]

    # -- environments ---------------------------------------------------------------

    def _spawn(self) -> ExecutionEnvironment:
        with self._cond:
            self._serial += 1
            serial = self._serial
            self.stats["environments_started"] += 1
        return ExecutionEnvironment(self.spec, self._env, self._logs, serial)

    def wait_ready(self) -> None:
        """Wait for the environments started with the pool (warm ones) to be ready."""
        warming, self._warming = self._warming, []
        for environment in warming:
            environment.wait_ready()
            with self._cond:
                if self._closed:
                    break
                self._idle.append(environment)
                self._cond.notify_all()

    def _grow(self) -> None:
        """Start one more environment (a cold start) for the invocations waiting."""
        environment: ExecutionEnvironment | None = None
        failure: Invocation | None = None
        try:
            environment = self._spawn()
            environment.wait_ready()
        except Exception as exc:  # noqa: BLE001 - a failed init is the waiting invocation's error
            code = environment.process.poll() if environment is not None else None
            message = f"{exit_reason(code)} during init" if code is not None else f"init failed: {exc}"
            failure = Invocation(False, _error("Runtime.ExitError", message))
            self._log(what="init-failed", pid=environment.pid if environment else None, reason=str(exc))
        with self._cond:
            self._starting -= 1
            closed = self._closed
            if failure is not None:
                self.stats["init_failures"] += 1
                if self._waiting:
                    self._failed_starts.append(failure)
            elif not closed and environment is not None:
                self._idle.append(environment)
            self._cond.notify_all()
        if environment is not None and (closed or failure is not None):
            environment.stop()

    def _acquire(self) -> ExecutionEnvironment | Invocation:
        with self._cond:
            self._waiting += 1
            waited = False
            try:
                while True:
                    if self._closed:
                        return Invocation(False, _error("Runtime.Unavailable", "the local stack is stopping"))
                    if self.limit == 0:
                        return Invocation(
                            False,
                            _error(
                                "TooManyRequestsException",
                                "Rate Exceeded.",
                                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
                            ),
                        )
                    while self._idle:
                        environment = self._idle.pop()
                        if environment.alive():
                            self._busy.add(environment)
                            self.stats["peak_busy"] = max(self.stats["peak_busy"], len(self._busy))
                            self.stats["waited"] += waited
                            self._cond.notify_all()  # kill(which="busy") may be waiting for one
                            return environment
                        self._retire_locked(environment)
                        self._reap(environment)
                    if self._failed_starts:
                        return self._failed_starts.popleft()
                    if len(self._busy) + self._starting < self.limit and self._starting < self._waiting:
                        self._starting += 1
                        threading.Thread(target=self._grow, daemon=True, name=f"start-{self.spec.logical_id}").start()
                    waited = True
                    self._cond.wait()
            finally:
                self._waiting -= 1

    def _release(self, environment: ExecutionEnvironment, chaos: str | None) -> None:
        with self._cond:
            self._busy.discard(environment)
            if environment.alive() and not self._closed:
                self._idle.append(environment)
                reason = None
            else:
                reason = self._retire_locked(environment, chaos)
            self._cond.notify_all()
        if reason is not None:
            environment.stop()

    def _retire_locked(self, environment: ExecutionEnvironment, chaos: str | None = None) -> str:
        """Count and log an environment that may serve no more; the caller stops it."""
        if environment.killed_by == "external":
            reason = "killed"
        elif environment.retired in ("exited", None) and chaos:
            reason = "chaos"
        else:
            reason = environment.retired or "exited"
        environment.retired = environment.retired or reason
        if not self._closed:
            self.stats[f"discarded_{reason}"] += 1
            self._log(what="discarded", pid=environment.pid, reason=reason, returncode=environment.process.poll())
        return reason

    @staticmethod
    def _reap(environment: ExecutionEnvironment) -> None:
        threading.Thread(target=environment.stop, daemon=True, name=f"reap-{environment.pid}").start()

    def _log(self, **fields: Any) -> None:
        what = fields.pop("what")
        try:
            self._logs.write(
                self.spec.logical_id, json.dumps({"local_runtime": what, "function": self.spec.name, **fields})
            )
        except ValueError:  # the log is closed: the stack is stopping
            pass

    # -- invoking -------------------------------------------------------------------

    def invoke(self, event: Any) -> Invocation:
        """Run ``event`` in a free environment (waiting for one at the limit)."""
        for _ in range(1 + self.limit * 2):
            environment = self._acquire()
            if isinstance(environment, Invocation):
                return environment
            chaos = self._chaos_plan()
            if chaos:
                with self._cond:
                    self.stats["chaos_armed"] += 1
            outcome: Invocation | None = None
            try:
                outcome = environment.invoke(event, chaos)
            finally:
                self._release(environment, chaos)
            if outcome is not None:
                with self._cond:
                    self.stats["invocations"] += 1
                self._learn(chaos, outcome)
                return outcome
        return Invocation(False, _error("Runtime.Unavailable", "no execution environment could be reached"))

    # -- chaos ----------------------------------------------------------------------

    def set_chaos(self, chaos: Chaos) -> None:
        """Arm later invocations per ``chaos`` (probability 0: never)."""
        with self._chaos_lock:
            self.chaos = chaos
            seed = None if chaos.seed is None else f"{chaos.seed}:{self.spec.logical_id}"
            self._chaos_rng = random.Random(seed)

    def _chaos_plan(self) -> str | None:
        with self._chaos_lock:
            if not self.chaos.applies_to(self.spec.logical_id):
                return None
            rng = self._chaos_rng
            if rng.random() >= self.chaos.probability:
                return None
            if rng.random() < 0.5:
                return f"calls={rng.randint(1, max(10, self._calls_hint))}"
            return f"timer={rng.uniform(0.0, self._seconds_hint):.4f}"

    def _learn(self, chaos: str | None, outcome: Invocation) -> None:
        """Aim later kill points at what this function's invocations take."""
        with self._chaos_lock:
            if outcome.ok:
                self._seconds_hint = 0.7 * self._seconds_hint + 0.3 * max(outcome.seconds, 0.01)
            if not chaos:
                return
            kind, _, value = chaos.partition("=")
            if outcome.error_type == "Runtime.ExitError":
                self.chaos_kills.append(chaos)
                if kind == "calls":  # it made at least that many calls
                    self._calls_hint = max(self._calls_hint, 2 * int(value))
            elif kind == "calls" and outcome.calls is not None:
                self._calls_hint = max(10, outcome.calls)

    # -- killing, inspecting, stopping ----------------------------------------------

    def kill(self, which: str = "busy", wait: float = 5.0) -> int | None:
        """SIGKILL one environment's process: ``busy`` one running an invocation (waiting up
        to ``wait`` seconds for one), or ``any`` live one. Its pid, or None if none was."""
        if which not in ("busy", "any"):
            raise ValueError(f"which must be 'busy' or 'any', not {which!r}")
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                candidates = [e for e in self._busy if e.alive()]
                if which == "any":
                    candidates += [e for e in self._idle if e.alive()]
                if candidates:
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)
            environment = self._kill_rng.choice(sorted(candidates, key=lambda e: e.serial))
            environment.kill("external")
            if environment in self._idle:
                self._idle.remove(environment)
                self._retire_locked(environment)
                self._reap(environment)
            return environment.pid

    def pids(self) -> dict[str, list[int]]:
        """The processes of the live environments, busy and idle."""
        with self._cond:
            return {"busy": sorted(e.pid for e in self._busy), "idle": [e.pid for e in self._idle]}

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._busy)

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            environments = [*self._idle, *self._busy, *self._warming]
            self._idle.clear()
            self._cond.notify_all()
        for environment in environments:
            environment.stop()
