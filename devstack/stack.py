"""The local stack: moto server, provider emulators, Lambda runtimes and the API gateway.

``LocalStack`` starts each part as its own process (moto and the emulators as servers,
a pool of runtime processes per function, ``devstack.environments``), provisions what
template.yaml declares into moto,
stores the provider credentials in the template's secrets, and serves the template's
API routes on the gateway port. Every process's output is collected, line by line,
into one log file (and echoed when asked), so a run can be searched afterwards.

Functions run as Lambda runs them: concurrent invocations in separate execution
environments, up to ``LOCAL_FUNCTION_CONCURRENCY`` (4) per function, fewer with the
template's ``ReservedConcurrentExecutions``; over the limit an invocation waits. An
environment that dies mid-invocation answers ``Runtime.ExitError`` and is replaced.
``LocalStack.kill(function, which="busy"|"any")`` SIGKILLs one from outside;
``LOCAL_CHAOS_KILL_PROBABILITY`` (with ``LOCAL_CHAOS_SEED``, ``LOCAL_CHAOS_FUNCTIONS``) or
``LocalStack.set_chaos`` makes runtimes SIGKILL themselves at random points mid-invocation;
``LocalStack.runtime_stats()`` counts what happened.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from devstack import openapi
from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import (
    TESTREST_KEY_ID,
    TESTREST_MERCHANT_ID,
    TESTREST_SHARED_SECRET,
)
from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET
from devstack.environments import Chaos, FunctionWorker, Invocation, default_concurrency
from devstack.environments import terminate as _terminate
from devstack.environments import wait_http as _wait_http
from devstack.events_tap import EventsTap
from devstack.gateway import LOCAL_CALLERS, Gateway, local_principals
from devstack.parameters import OVERRIDES_ENV, ParameterError, Resolved, overrides_from_env, resolve
from devstack.pollers import SqsPoller, StreamPoller
from devstack.provision import Provisioner, Stack
from devstack.schedules import ScheduleTicker
from devstack.template import ROOT, load_raw

DEFAULT_API_KEY = "local-api-key-decline-rescue-0001"
REGION = "us-east-1"


# Ports for servers started later (ephemeral stacks, tests, benchmarks), drawn below the
# kernel's ephemeral range (32768-60999 on Linux): a port the kernel picked for us is free
# now, but it is also what it hands out for outgoing connections, and a busy machine (a
# werkzeug server closes every connection) can take it before the server binds it.
_SERVER_PORTS = (20000, 32000)


def free_port() -> int:
    """A port nothing listens on, for a server to bind shortly."""
    import random

    for _ in range(50):
        port = random.randrange(*_SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port(env: str, default: int) -> int:
    value = os.environ.get(env)
    return int(value) if value else default


def _real_provider(provider: str, names: tuple[str, ...]) -> list[str] | None:
    """The values of ``names`` when all are set (a real endpoint), None when none are."""
    values = [os.environ.get(n, "").strip() for n in names]
    if all(values):
        return values
    if any(values):
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        raise SystemExit(
            f"to use a real {provider} endpoint set all of {', '.join(names)}; missing: {', '.join(missing)}"
        )
    return None


@dataclass
class CybersourceTarget:
    """Where the stack's Cybersource calls go: the emulator, or a real endpoint."""

    base_url: str | None = None
    merchant_id: str = TESTREST_MERCHANT_ID
    key_id: str = TESTREST_KEY_ID
    shared_secret: str = TESTREST_SHARED_SECRET

    @classmethod
    def from_env(cls) -> CybersourceTarget:
        names = ("CYBERSOURCE_BASE_URL", "CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID", "CYBERSOURCE_SHARED_SECRET")
        values = _real_provider("Cybersource", names)
        return cls(*values) if values else cls()

    @property
    def emulated(self) -> bool:
        return self.base_url is None


LOCAL_SITE_ID = "5f1d3a1e-8c2b-4d7a-9e61-0c4b2a9d7f10"
LOCAL_MID = "local-mid-0001"


@dataclass
class FlexFactorTarget:
    """Where the stack's FlexFactor calls go: the emulator, or a real endpoint."""

    base_url: str | None = None
    app_key: str = DEFAULT_APP_KEY
    app_secret: str = DEFAULT_APP_SECRET
    mid: str = LOCAL_MID
    site_id: str = LOCAL_SITE_ID

    @classmethod
    def from_env(cls) -> FlexFactorTarget:
        names = ("FLEXFACTOR_BASE_URL", "FLEXFACTOR_APP_KEY", "FLEXFACTOR_APP_SECRET", "FLEXFACTOR_SITE_ID")
        values = _real_provider("FlexFactor", names)
        if not values:
            return cls()
        base, key, secret, site = values
        return cls(base.rstrip("/").removesuffix("/v1"), key, secret, os.environ.get("FLEXFACTOR_MID", ""), site)

    @property
    def emulated(self) -> bool:
        return self.base_url is None


def _webhook_key(value: str | None) -> str:
    """FLEXFACTOR_WEBHOOK_KEY (base64) when set, else a fresh random key."""
    import base64
    import binascii
    import secrets as random_secrets

    if value and value.strip():
        try:
            base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SystemExit("FLEXFACTOR_WEBHOOK_KEY must be standard base64") from None
        return value.strip()
    return base64.b64encode(random_secrets.token_bytes(32)).decode()


@dataclass
class StackConfig:
    gateway_port: int = 3000
    moto_port: int = 5000
    cybersource_port: int = 8081
    flexfactor_port: int = 8082
    # the Cybersource emulator's Flex origin (/flex/v2/tokens, the Microform library and
    # field iframes), apart from its REST host
    cybersource_flex_port: int = 8084
    # the sample checkout (examples/checkout), served when Cybersource is emulated
    checkout_port: int = 8083
    api_key: str = DEFAULT_API_KEY
    stack_name: str = "decline-rescue-local"
    log_file: Path = ROOT / ".local" / "stack.log"
    echo_logs: bool = True
    cybersource: CybersourceTarget = field(default_factory=CybersourceTarget)
    flexfactor: FlexFactorTarget = field(default_factory=FlexFactorTarget)
    sqs_retry_seconds: int = 1
    # template parameters: the local stack's own values (over the template's Defaults) ...
    parameters: dict[str, str] = field(default_factory=dict)
    # ... and PARAMETER_OVERRIDES over those ("Key=Value Key2='a b'", sam deploy's syntax)
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    # schedules tick every this many seconds instead of the template's rate (None: the rate)
    schedule_seconds: float | None = None
    # the FlexFactor secret's webhookSubscriberKey, also given to the emulator to sign with
    webhook_key: str = field(default_factory=lambda: _webhook_key(None))
    # how fast the FlexFactor emulator moves orders along (seconds per step)
    flexfactor_step_seconds: float = 2.0
    # the most execution environments (processes) a function gets: LOCAL_FUNCTION_CONCURRENCY, 4
    function_concurrency: int = field(default_factory=default_concurrency)
    # kill environments at random points mid-invocation: LOCAL_CHAOS_KILL_PROBABILITY (0: off),
    # LOCAL_CHAOS_SEED, LOCAL_CHAOS_FUNCTIONS (comma-separated logical ids; empty: all)
    chaos: Chaos = field(default_factory=Chaos.from_env)
    # where the running stack describes itself for `decline-rescue --local` (endpoints,
    # physical ids, parameters; removed on stop): `make local` sets .local/stack.json; None: nowhere
    state_file: Path | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        return cls(
            gateway_port=_port("GATEWAY_PORT", 3000),
            moto_port=_port("MOTO_PORT", 5000),
            cybersource_port=_port("CYBERSOURCE_EMULATOR_PORT", 8081),
            flexfactor_port=_port("FLEXFACTOR_EMULATOR_PORT", 8082),
            cybersource_flex_port=_port("CYBERSOURCE_FLEX_EMULATOR_PORT", 8084),
            checkout_port=_port("CHECKOUT_PORT", 8083),
            api_key=os.environ.get("LOCAL_API_KEY") or DEFAULT_API_KEY,
            cybersource=CybersourceTarget.from_env(),
            flexfactor=FlexFactorTarget.from_env(),
            schedule_seconds=float(os.environ["LOCAL_SCHEDULE_SECONDS"])
            if os.environ.get("LOCAL_SCHEDULE_SECONDS")
            else None,
            webhook_key=_webhook_key(os.environ.get("FLEXFACTOR_WEBHOOK_KEY")),
            flexfactor_step_seconds=float(os.environ.get("FLEXFACTOR_STEP_SECONDS") or 2.0),
            parameter_overrides=overrides_from_env(),
        )

    @classmethod
    def ephemeral(cls, **overrides: Any) -> StackConfig:
        """Free ports everywhere: for the demo and tests, which must not collide.
        PARAMETER_OVERRIDES is not read here: pass ``parameter_overrides``."""
        config = cls(
            gateway_port=free_port(),
            moto_port=free_port(),
            cybersource_port=free_port(),
            flexfactor_port=free_port(),
            cybersource_flex_port=free_port(),
            checkout_port=free_port(),
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config


class LogSink:
    """Collects every process's output into one file, optionally echoing it."""

    def __init__(self, path: Path, echo: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._echo = echo
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []

    def write(self, source: str, line: str) -> None:
        text = f"[{source}] {line.rstrip()}\n"
        with self._lock:
            self._file.write(text)
            self._file.flush()
            if self._echo:
                sys.stdout.write(text)
                sys.stdout.flush()

    def pump(self, source: str, stream) -> threading.Thread:
        def run() -> None:
            for raw in iter(stream.readline, b""):
                self.write(source, raw.decode("utf-8", "replace"))
            stream.close()

        thread = threading.Thread(target=run, daemon=True, name=f"log-{source}")
        thread.start()
        self._pumps.append(thread)
        return thread

    def drain(self, timeout: float = 5.0) -> None:
        """Wait for every pump to reach the end of its stream (its process has exited)."""
        deadline = time.monotonic() + timeout
        for thread in self._pumps:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with self._lock:
            self._file.close()


def ensure_free(port: int, what: str, variable: str) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(
                f"port {port} for the {what} is in use (another local stack?); set {variable} to another port"
            ) from None


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    return {k: os.environ[k] for k in keep if k in os.environ}


class _SinkHandler(logging.Handler):
    def __init__(self, sink: LogSink, source: str) -> None:
        super().__init__()
        self.sink, self.source = sink, source

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.source, record.getMessage())
        except ValueError:  # the sink is closed: the stack is stopping
            pass


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self.logs = LogSink(self.config.log_file, self.config.echo_logs)
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, FunctionWorker] = {}
        self.gateway_server: ServerThread | None = None
        self.pollers: list[SqsPoller | StreamPoller] = []
        self.tickers: list[ScheduleTicker] = []
        self.events_tap: EventsTap | None = None
        self.stack: Stack | None = None
        self.parameters: Resolved | None = None

    # -- URLs -----------------------------------------------------------------------

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.config.moto_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    @property
    def flexfactor_url(self) -> str:
        return self.config.flexfactor.base_url or f"http://127.0.0.1:{self.config.flexfactor_port}"

    @property
    def cybersource_url(self) -> str:
        target = self.config.cybersource
        return target.base_url or f"http://127.0.0.1:{self.config.cybersource_port}"

    @property
    def cybersource_flex_url(self) -> str | None:
        """The emulator's Flex origin (capture contexts name it in flx.origin); None for a real endpoint."""
        return f"http://127.0.0.1:{self.config.cybersource_flex_port}" if self.config.cybersource.emulated else None

    @property
    def checkout_url(self) -> str | None:
        """The sample checkout (examples/checkout); None when Cybersource is not emulated."""
        return f"http://127.0.0.1:{self.config.checkout_port}" if self.config.cybersource.emulated else None

    @property
    def checkout_origins(self) -> list[str]:
        """The sample checkout's origins: the template's CheckoutOrigins for the local stack."""
        if not self.config.cybersource.emulated:
            return []
        port = self.config.checkout_port
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]

    def aws_client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    # -- lifecycle ------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, *args],
            start_new_session=True,
            env={
                **_base_env(),
                "PYTHONPATH": str(ROOT / "layers" / "shared") + os.pathsep + str(ROOT),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        self.logs.pump(name, process.stdout)
        return process

    def start(self) -> LocalStack:
        gateway_log = logging.getLogger("werkzeug")
        gateway_log.handlers[:] = [_SinkHandler(self.logs, "gateway")]
        gateway_log.setLevel(logging.INFO)
        gateway_log.propagate = False
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def template_parameters(self) -> Resolved:
        """The template parameters the stack is provisioned with: the local stack's own
        values (emulator URLs, ``StackConfig.parameters``) over the template's Defaults,
        ``StackConfig.parameter_overrides`` over those, all checked against the template's
        constraints as CloudFormation checks them. SystemExit with its messages when refused."""
        local = {
            "Stage": "local",
            "CybersourceBaseUrl": self.cybersource_url,
            "FlexFactorBaseUrl": self.flexfactor_url,
            # the FlexFactor sandbox (and so its emulator) takes amounts > 10 and < 20000 cents
            "AmountMinExclusiveCents": "10",
            # Microform capture contexts for the sample checkout's page (examples/checkout)
            "CheckoutOrigins": ",".join(self.checkout_origins),
            **self.config.parameters,
        }
        try:
            return resolve(load_raw().get("Parameters") or {}, local, self.config.parameter_overrides)
        except ParameterError as error:
            lines = "\n".join(f"  {message}" for message in error.messages)
            raise SystemExit(f"template parameters refused, nothing started:\n{lines}") from None

    def _start(self) -> None:
        cfg = self.config
        # before anything starts: a parameter CloudFormation would refuse stops the stack here
        self.parameters = self.template_parameters()
        if self.parameters.overridden:
            self.logs.write("parameters", f"{OVERRIDES_ENV}: {self.parameters.describe_overrides()}")
        ensure_free(cfg.moto_port, "moto server", "MOTO_PORT")
        ensure_free(cfg.gateway_port, "API gateway", "GATEWAY_PORT")
        if cfg.cybersource.emulated:
            ensure_free(cfg.cybersource_port, "Cybersource emulator", "CYBERSOURCE_EMULATOR_PORT")
            ensure_free(cfg.cybersource_flex_port, "Cybersource Flex origin", "CYBERSOURCE_FLEX_EMULATOR_PORT")
            ensure_free(cfg.checkout_port, "sample checkout", "CHECKOUT_PORT")
        if cfg.flexfactor.emulated:
            ensure_free(cfg.flexfactor_port, "FlexFactor emulator", "FLEXFACTOR_EMULATOR_PORT")
        moto = self._spawn("moto", ["-m", "devstack.moto_server", "-H", "127.0.0.1", "-p", str(cfg.moto_port)])
        emulator = None
        if cfg.cybersource.emulated:
            emulator = self._spawn(
                "cybersource-emulator",
                [
                    "-m",
                    "devstack.emulators.cybersource",
                    "--port",
                    str(cfg.cybersource_port),
                    "--flex-port",
                    str(cfg.cybersource_flex_port),
                    "--merchant-id",
                    cfg.cybersource.merchant_id,
                    "--key-id",
                    cfg.cybersource.key_id,
                    "--shared-secret",
                    cfg.cybersource.shared_secret,
                ],
            )
        flexfactor = None
        if cfg.flexfactor.emulated:
            flexfactor = self._spawn(
                "flexfactor-emulator",
                [
                    "-m",
                    "devstack.emulators.flexfactor",
                    "--port",
                    str(cfg.flexfactor_port),
                    "--app-key",
                    cfg.flexfactor.app_key,
                    "--app-secret",
                    cfg.flexfactor.app_secret,
                    "--webhook-url",
                    f"{self.gateway_url}/webhooks/flexfactor",
                    "--webhook-key",
                    cfg.webhook_key,
                    "--step-seconds",
                    str(cfg.flexfactor_step_seconds),
                ],
            )
        _wait_http(self.moto_url + "/moto-api/data.json", process=moto)
        if flexfactor is not None:
            _wait_http(self.flexfactor_url + "/__emulator/health", process=flexfactor, expect='"flexfactor"')
        if emulator is not None:
            _wait_http(self.cybersource_url + "/__emulator/health", process=emulator, expect='"cybersource"')
            _wait_http(f"{self.cybersource_flex_url}/__emulator/health", process=emulator, expect='"cybersource-flex"')

        self.stack = Provisioner(self.moto_url, cfg.stack_name, self.parameters.values, REGION).provision()
        self._store_secrets()

        env = {
            **_base_env(),
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for logical_id, spec in self.stack.functions.items():
            self.workers[logical_id] = FunctionWorker(
                spec,
                {
                    **env,
                    **spec.environment,
                    "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                },
                self.logs,
                concurrency=cfg.function_concurrency,
                chaos=cfg.chaos,
            )
        for worker in self.workers.values():
            worker.wait_ready()

        sqs = self.aws_client("sqs")
        for mapping in self.stack.event_sources:
            if mapping.function not in self.workers:
                continue
            if mapping.source == "sqs":
                # Lambda runs several batches of a queue at once, up to MaximumConcurrency
                limit = self.workers[mapping.function].limit
                poller: SqsPoller | StreamPoller = SqsPoller(
                    mapping,
                    sqs,
                    self.invoke,
                    retry_delay=cfg.sqs_retry_seconds,
                    concurrency=max(1, min(limit, mapping.maximum_concurrency or limit)),
                )
            elif mapping.source == "dynamodb":
                poller = StreamPoller(
                    mapping,
                    self.aws_client("dynamodbstreams"),
                    sqs,
                    self.invoke,
                    function_arn=self.stack.attributes[(mapping.function, "Arn")],
                )
            else:
                self.logs.write("pollers", f"{mapping.function}: {mapping.source} event sources are not run locally")
                continue
            self.pollers.append(poller.start())

        bus = self.stack.physical_ids.get("OrderEventBus")
        if bus:
            self.events_tap = EventsTap(
                self.aws_client("events"), sqs, bus, log=lambda line: self.logs.write("events", line)
            ).start()
        gateway = Gateway(
            self.stack.routes,
            self.invoke,
            cfg.api_key,
            stage=self.parameters.effective.get("Stage") or "local",  # as the caller policies name it
            local_routes={
                "/__local/events": self._list_events,
                # the API's OpenAPI document, without API Gateway's x-amazon-* extensions
                "/openapi.json": lambda request: (200, openapi.served()),
            },
            principals=local_principals(self.stack.managed_policies),
        )
        self.gateway_server = ServerThread(gateway, "127.0.0.1", cfg.gateway_port).start()
        if self.checkout_url is not None:
            self._start_checkout()

        for schedule in self.stack.schedules:
            if schedule.function in self.workers:
                self.tickers.append(
                    ScheduleTicker(
                        schedule,
                        self.invoke,
                        every_seconds=cfg.schedule_seconds,
                        log=lambda line: self.logs.write("scheduler", line),
                    ).start()
                )
        if cfg.state_file is not None:
            from devstack.ops import localstate

            localstate.write(cfg.state_file, self.state())

    def _start_checkout(self) -> None:
        """The sample checkout's server, a merchant's shop: it calls the gateway as the
        ``checkout`` caller (SigV4 with ApiAuth=IAM) with the API key, for its own origins."""
        key, secret, _ = LOCAL_CALLERS["checkout"]
        env = {
            "CHECKOUT_API_URL": self.gateway_url,
            "CHECKOUT_API_KEY": self.config.api_key,
            "CHECKOUT_API_AUTH": self.api_auth,
            "CHECKOUT_ORIGINS": ",".join(self.checkout_origins),
            "CHECKOUT_HOST": "127.0.0.1",
            "CHECKOUT_PORT": str(self.config.checkout_port),
        }
        if self.api_auth == "IAM":
            env.update(
                CHECKOUT_AWS_ACCESS_KEY_ID=key, CHECKOUT_AWS_SECRET_ACCESS_KEY=secret, CHECKOUT_AWS_REGION=REGION
            )
        process = self._spawn("checkout", ["-m", "examples.checkout"], env)
        _wait_http(f"{self.checkout_url}/healthz", process=process, expect='"sample-checkout"')

    def state(self) -> dict[str, Any]:
        """What `decline-rescue --local` needs to find this stack (nothing secret)."""
        assert self.stack is not None and self.parameters is not None
        from decline_rescue.domain.clock import iso

        return {
            "pid": os.getpid(),
            "stackName": self.config.stack_name,
            "region": REGION,
            "startedAt": iso(),
            "endpoints": {
                "aws": self.moto_url,
                "gateway": self.gateway_url,
                "flexfactor": self.flexfactor_url,
                "cybersource": self.cybersource_url,
                **({"checkout": self.checkout_url} if self.checkout_url else {}),
            },
            "physicalIds": {k: v for k, v in self.stack.physical_ids.items() if isinstance(v, str)},
            "parameters": {k: v for k, v in self.parameters.effective.items() if k not in self.parameters.no_echo},
            "outputs": {k: v for k, v in self.stack.outputs.items() if isinstance(v, str)},
        }

    def _list_events(self, request) -> tuple[int, Any]:
        events = self.events_tap.list(request.args.get("orderId")) if self.events_tap else []
        return 200, {"events": events, "count": len(events)}

    def tick(self, function: str | None = None) -> list[Any]:
        """Run the schedules (of ``function``) once now; their results."""
        return [t.tick() for t in self.tickers if function is None or t.schedule.function == function]

    def _store_secrets(self) -> None:
        assert self.stack is not None
        target = self.config.cybersource
        flex = self.config.flexfactor
        arn = self.stack.physical_ids.get("FlexFactorSecret")
        if arn:
            self.aws_client("secretsmanager").put_secret_value(
                SecretId=arn,
                SecretString=json.dumps(
                    {
                        "appKey": flex.app_key,
                        "appSecret": flex.app_secret,
                        "mid": flex.mid,
                        "siteId": flex.site_id,
                        "webhookSubscriberKey": self.config.webhook_key,
                    }
                ),
            )
        arn = self.stack.physical_ids.get("CybersourceSecret")
        if arn:
            self.aws_client("secretsmanager").put_secret_value(
                SecretId=arn,
                SecretString=json.dumps(
                    {"merchantId": target.merchant_id, "keyId": target.key_id, "sharedSecret": target.shared_secret}
                ),
            )

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Invocation:
        """Invoke a function synchronously: ``(ok, result)``, with the environment's ``pid``."""
        return self.workers[logical_id].invoke(event)

    def kill(self, function: str, which: str = "busy", wait: float = 5.0) -> int | None:
        """SIGKILL an execution environment of ``function`` (a logical id), as Lambda
        environments die: ``busy``, one running an invocation (waiting up to ``wait``
        seconds for one), which then answers ``Runtime.ExitError``; ``any``, any live one.
        The killed process's pid, or None when there was none to kill."""
        return self.workers[function].kill(which, wait=wait)

    def set_chaos(self, probability: float, seed: int | None = None, functions: tuple[str, ...] = ()) -> None:
        """Switch the chaos kills on (or off, with 0) for later invocations of ``functions``
        (logical ids; empty: all), as ``LOCAL_CHAOS_KILL_PROBABILITY`` does at start."""
        self.config.chaos = Chaos(probability, seed, tuple(functions))
        for worker in self.workers.values():
            worker.set_chaos(self.config.chaos)

    def runtime_stats(self) -> dict[str, dict[str, Any]]:
        """Per function: environments started and discarded (by reason), invocations,
        peak concurrency, chaos-armed invocations and the kill points that killed."""
        return {
            name: {**dict(worker.stats), "limit": worker.limit, "chaos_kills": list(worker.chaos_kills)}
            for name, worker in self.workers.items()
        }

    def stop(self) -> None:
        if self.config.state_file is not None:
            from devstack.ops import localstate

            localstate.remove(self.config.state_file, os.getpid())
        for ticker in self.tickers:
            ticker.stop()
        self.tickers.clear()
        if self.events_tap is not None:
            self.events_tap.stop()
            self.events_tap = None
        if self.gateway_server is not None:
            self.gateway_server.stop()
            self.gateway_server = None
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        for process in self.processes:
            _terminate(process)
        self.processes.clear()
        self.logs.drain()
        self.logs.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_auth(self) -> str:
        """``IAM`` when the merchant routes want a SigV4 signature, else ``API_KEY``."""
        assert self.stack is not None
        return "IAM" if any(route.iam_required for route in self.stack.routes) else "API_KEY"

    def client(self, caller: str = "operations", *, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for the local API gateway as a merchant's code would call it: the
        API key, and with ``ApiAuth=IAM`` a SigV4 signature of ``caller`` (``checkout`` or
        ``operations``: the principal holding the template's policy of that name)."""
        from devstack.sigv4 import SigV4

        key, secret, _ = LOCAL_CALLERS[caller]
        return httpx.Client(
            base_url=self.gateway_url,
            headers={"x-api-key": self.config.api_key},
            auth=SigV4(key, secret) if self.api_auth == "IAM" else None,
            timeout=timeout,
        )

    def describe(self) -> str:
        chaos = self.config.chaos
        lines = [
            f"  API gateway   {self.gateway_url}   (x-api-key: {self.config.api_key})",
            f"  moto server   {self.moto_url}",
            f"  Cybersource   {self.cybersource_url}" + ("   (emulator)" if self.config.cybersource.emulated else ""),
            *(
                [f"  Flex origin   {self.cybersource_flex_url}   (emulator: tokens, the Microform library and fields)"]
                if self.cybersource_flex_url
                else []
            ),
            *(
                [f"  checkout      {self.checkout_url}/   (the sample checkout: open it in a browser)"]
                if self.checkout_url
                else []
            ),
            f"  FlexFactor    {self.flexfactor_url}" + ("   (emulator)" if self.config.flexfactor.emulated else ""),
            f"  logs          {self.config.log_file}",
            *(
                [f"  parameters    {OVERRIDES_ENV}: {self.parameters.describe_overrides()}"]
                if self.parameters and self.parameters.overridden
                else []
            ),
            f"  functions     up to {self.config.function_concurrency} execution environments each"
            + (
                f"; chaos kills {chaos.probability:g} of invocations (seed {chaos.seed})"
                if chaos.probability > 0
                else ""
            ),
            "  routes:",
        ]
        assert self.stack is not None
        for route in self.stack.routes:
            needs = [n for n, on in (("SigV4", route.iam_required), ("x-api-key", route.api_key_required)) if on]
            key = f" ({' + '.join(needs)})" if needs else ""
            lines.append(f"    {route.method:6} {self.gateway_url}{route.path}{key} -> {route.function}")
        lines.append(f"    GET    {self.gateway_url}/__local/events (local only: events published on the bus)")
        if any(route.iam_required for route in self.stack.routes):
            lines.append("  callers (ApiAuth=IAM; sign for execute-api in us-east-1):")
            for name, (key_id, secret, policy) in LOCAL_CALLERS.items():
                lines.append(f"    {name:10} access key {key_id}, secret {secret} ({policy})")
        if self.tickers:
            lines.append("  schedules:")
        for ticker in self.tickers:
            every = f"every {ticker.interval:g}s" if ticker.interval else "not ticked"
            lines.append(f"    {ticker.schedule.expression} -> {ticker.schedule.function} ({every})")
        return "\n".join(lines)
