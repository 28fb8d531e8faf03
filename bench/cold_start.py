"""Benchmark 1: cold start per function, versus a floor handler (boto3 and one client).

Each sample is a fresh interpreter (this one, the project's virtualenv) that imports the
function's handler module as Lambda's runtime does (``importlib.import_module("app")``
with the function's code directory and the layer's ``python`` directory first on
``sys.path``, then the runtime's boto3) and serves its first real event against the
harness's moto server and emulators, with the environment the template gives the
function. The time is wall time in this process from spawning the child to reading the
line it prints once the handler has returned. The floor is measured the same way: a
handler that imports boto3 (the runtime's, with its bytecode), creates one SQS client and
returns.

Each function is measured with two copies of the layer, as Lambda would load them from
its read-only /opt (children run with ``-B``: nothing is ever written):

- **with .pyc**: every module compiled beforehand into ``__pycache__`` as unchecked-hash
  .pyc (``compileall --invalidation-mode unchecked-hash``, what layers/shared/Makefile
  does with python3.13 for the layer that is deployed), by this interpreter;
- **without .pyc**: the same files and an empty bytecode cache, so every import compiles
  its module from source on every cold start (a layer built without bytecode, as
  ``sam build``'s python builder made it).

The function code (functions/<name>/) has no .pyc in either, as deployed. Both variants
and the floor alternate, in a different order each round, so drift hits all three; each
is a ratio to the same floor.

Also reported: each function's import-time profile (``python -X importtime`` of one more
first event, grouped by top-level package, with the requests that event sent) and the
built package sizes (``.aws-sam/build``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import filecmp
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.core import ROOT, BenchEnv, Row, ratio_row
from bench.harness import WEBHOOK_KEY, Harness, event

BENCH = "cold start"
MARKER = "@@cold-start-done@@ "
# logical id -> (code directory under functions/, limit as a multiple of the floor)
FUNCTIONS: dict[str, tuple[str, float]] = {
    "IssueCaptureContextFunction": ("issue_capture_context", 1.6),
    "EvaluateDeclineFunction": ("evaluate_decline", 1.6),
    "OrdersApiFunction": ("orders_api", 1.6),
    "IngestWebhookFunction": ("ingest_webhook", 1.3),
    "PollOrdersFunction": ("poll_orders", 1.6),
    "ApplyOrderUpdateFunction": ("apply_order_update", 1.3),
}
FLOOR = "floor"
FLOOR_ENV_OF = "ApplyOrderUpdateFunction"  # the floor runs with this function's environment
FLOOR_HANDLER = '''"""The floor: what any Python function that talks to AWS pays."""

import boto3


def lambda_handler(event, context):
    boto3.client("sqs")
    return {"ok": True}
'''

# why a function misses its target when it does (from the profiles in bench/results.md)
EXPLAIN = {
    "EvaluateDeclineFunction": (
        "its import is the decline contract (pydantic: its models are built at import) and httpx for "
        "FlexFactor, and its first event is a whole customer-initiated decline: the card's counters, the "
        "claim with its key and reservation, FlexFactor's token and evaluation, the recorded answer. "
        "Closing the gap would take a contract without pydantic: a rewrite of the validated input, not a "
        "cold-start fix"
    ),
    "PollOrdersFunction": (
        "its first event is a work item whose page holds the due order: the breaker read, the "
        "shard's index page, the order taken, looked up at FlexFactor (the secret, a token, the "
        "order: httpx and its TLS set-up are loaded for them): half a dozen requests to three services "
        "where the floor makes one client and no request; what the CPU ratio does not explain is "
        "waiting on those round trips. Below 1.6x would take the provider client off httpx "
        "(botocore loads urllib3 anyway)"
    ),
}

# The child: Lambda's bootstrap reduced to what a cold start is (path, import, one call).
BOOTSTRAP = r"""
import sys

CALLS = []


def count_calls():
    # The profile run also lists the first event's requests: botocore's and httpx's
    # senders are wrapped when the handler imports them (nothing is imported for it).
    import importlib.abc
    import importlib.util

    def patch(name, module):
        if name == "botocore.client":
            original = module.BaseClient._make_api_call

            def api_call(self, operation, params):
                CALLS.append(f"aws|{self.meta.service_model.service_id}|{operation}")
                return original(self, operation, params)

            module.BaseClient._make_api_call = api_call
        else:
            original = module.Client.send

            def send(self, request, **kwargs):
                CALLS.append(f"http|{request.url.port}|{request.method} {request.url.path}")
                return original(self, request, **kwargs)

            module.Client.send = send

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in ("botocore.client", "httpx._client"):
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                patch(name, module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())


def main():
    code_dir, layer_path, event_path, name, memory, timeout = sys.argv[1:7]
    sys.path[0:0] = [code_dir, *layer_path.split(":")]
    if sys.argv[7:] == ["count"]:
        count_calls()
    import importlib
    import json
    import time
    import uuid

    class Context:
        def __init__(self):
            self.function_name = name
            self.function_version = "$LATEST"
            self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
            self.memory_limit_in_mb = int(memory)
            self.aws_request_id = str(uuid.uuid4())
            self.log_group_name = f"/aws/lambda/{name}"
            self.log_stream_name = f"bench/{self.aws_request_id}"
            self.identity = None
            self.client_context = None
            self._deadline = time.monotonic() + int(timeout)

        def get_remaining_time_in_millis(self):
            return max(0, int((self._deadline - time.monotonic()) * 1000))

    with open(event_path) as f:
        event = json.load(f)
    started = time.perf_counter()
    handler = importlib.import_module("app").lambda_handler
    imported = time.perf_counter()
    result = handler(event, Context())
    done = time.perf_counter()
    report = {
        "answer": result,
        "import": imported - started,
        "handler": done - imported,
        "cpu": time.process_time(),
        "calls": CALLS,
    }
    sys.stdout.write("\n" + MARKER + json.dumps(report, default=str)[:8000] + "\n")
    sys.stdout.flush()


main()
""".replace("MARKER", repr(MARKER))


@dataclass
class Layout:
    """Where the code a child imports comes from."""

    kind: str  # "built" or "source"
    code_dirs: dict[str, Path]
    layer_path: list[Path]
    note: str
    stale: bool | None = None  # the build differs from the source (None: no build)


@dataclass
class Sample:
    """One cold start: seconds from spawn to the handler's answer, and two parts of it
    as the child measured them (importing the handler module, serving the event)."""

    total: float
    imports: float
    handler: float
    cpu: float  # the child's CPU time (user + system) until it answered
    calls: list[str] = field(default_factory=list)  # the first event's requests (profile run only)


@dataclass
class Subject:
    logical_id: str
    code_dir: Path
    env: dict[str, str]
    memory: int
    timeout: int
    next_event: Callable[[], dict[str, Any]]  # called just before a spawn (not timed)
    check: Callable[[Any], None]
    samples: list[Sample] = field(default_factory=list)


# -- where the code comes from ------------------------------------------------------------


def _layer_fits_this_interpreter(layer: Path) -> tuple[bool, str]:
    """Can this interpreter load the built layer's compiled wheels (arch, ABI)?"""
    from packaging.tags import parse_tag, sys_tags

    ours = set(sys_tags())
    for wheel in sorted(layer.glob("*.dist-info/WHEEL")):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        if tags and not any(parse_tag(tag) & ours for tag in tags):
            return False, f"{wheel.parent.name} is built for {tags[0]}"
    return True, ""


def _same_tree(source: Path, built: Path) -> bool:
    """Do the two trees hold the same files (bytecode caches aside)?"""

    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}

    if not built.is_dir() or files(source) != files(built):
        return False
    return all(filecmp.cmp(source / f, built / f, shallow=False) for f in files(source))


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions these requirements need (extras and markers honoured)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    wanted: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        dist = metadata.distribution(req.name)
        key = dist.metadata["Name"].lower()
        if key in wanted and set(req.extras) <= wanted[key]:
            continue
        wanted[key] = wanted.get(key, set()) | set(req.extras)
        for raw in dist.requires or []:
            dep = Requirement(raw)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in wanted[key] or {""}):
                todo.append(dep)
    return set(wanted)


def _linked_site(target: Path, requirements: list[str]) -> Path:
    """A directory holding exactly these requirements' installed files (links into this
    virtualenv's site-packages): a layer's ``python`` directory for this interpreter,
    without the development tools the virtualenv also holds (awscrt, rich, ...), which
    botocore and others import when they find them."""
    from importlib import metadata

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in sorted(_closure(requirements)):
        dist = metadata.distribution(name)
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            link = target / top
            if not link.exists():
                link.symlink_to(Path(dist.locate_file(top)))
    return target


def _layer_requirements() -> list[str]:
    lines = (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def layout(scratch: Path) -> Layout:
    build = ROOT / ".aws-sam" / "build"
    built_layer = build / "SharedLayer" / "python"
    # what Lambda's python3.13 runtime provides besides the layer: boto3 (/var/runtime)
    runtime = _linked_site(scratch / "runtime", ["boto3"])
    missing = [lid for lid in FUNCTIONS if not (build / lid / "app.py").is_file()]
    stale = None
    if not built_layer.is_dir() or missing:
        reason = "no complete `.aws-sam/build` (run `make build`)"
    else:
        fits, why = _layer_fits_this_interpreter(built_layer)
        stale = not _same_tree(ROOT / "layers" / "shared" / "decline_rescue", built_layer / "decline_rescue") or any(
            not _same_tree(ROOT / "functions" / d, build / lid) for lid, (d, _) in FUNCTIONS.items()
        )
        if fits and not stale:
            return Layout(
                "built",
                {lid: build / lid for lid in FUNCTIONS},
                [built_layer, runtime],
                "code from the built artifacts (.aws-sam/build/<LogicalId>/ + .aws-sam/build/SharedLayer/python/, "
                "the floor's boto3 as the runtime's; `python -I -S -B`)",
                stale=False,
            )
        reason = (
            f"the built layer is for the Lambda runtime, not this interpreter ({why}; this is "
            f"{sys.implementation.cache_tag} on {os.uname().machine})"
            if not fits
            else "the built artifacts are older than the source (run `make build`)"
        )
    layer_deps = _linked_site(scratch / "layer-deps", _layer_requirements())
    return Layout(
        "source",
        {lid: ROOT / "functions" / d for lid, (d, _) in FUNCTIONS.items()},
        [ROOT / "layers" / "shared", layer_deps, runtime],
        "code from the source tree (functions/<name>/ + layers/shared/) and the layer's requirements "
        "as installed in the virtualenv (only their closure on `sys.path`, boto3 and botocore the layer's "
        f"as deployed; `python -I -S -B`): {reason}",
        stale=stale,
    )


# -- with and without bytecode ------------------------------------------------------------

WITH_PYC = "with .pyc"
WITHOUT_PYC = "without .pyc"


def _copy_without_bytecode(source: Path, target: Path) -> None:
    """A file or directory tree (symlinks followed), minus any bytecode."""
    if source.is_dir():
        shutil.copytree(source.resolve(), target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    elif not source.name.endswith((".pyc", ".pyo")):
        shutil.copy2(source.resolve(), target)


def bytecode_variants(scratch: Path, code: Layout) -> dict[str, Layout]:
    """Two copies of the layer's ``python`` directory (decline_rescue and its dependencies,
    boto3 and botocore included), one compiled as the layer's build compiles it
    (unchecked-hash .pyc) and one with no bytecode at all, and one copy of the functions'
    code (no bytecode, as deployed). The runtime's boto3 (the floor's) stays as it is."""
    *layer_sources, runtime = code.layer_path
    base = scratch / "variants"
    if base.exists():
        shutil.rmtree(base)
    bare = base / "without-pyc" / "python"
    bare.mkdir(parents=True)
    for source in layer_sources:
        entries = [source / "decline_rescue"] if source == ROOT / "layers" / "shared" else sorted(source.iterdir())
        for entry in entries:
            if entry.name != "__pycache__" and not (bare / entry.name).exists():
                _copy_without_bytecode(entry, bare / entry.name)
    compiled = base / "with-pyc" / "python"
    shutil.copytree(bare, compiled, symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(compiled)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    functions = base / "functions"
    code_dirs = {}
    for logical_id, directory in code.code_dirs.items():
        _copy_without_bytecode(directory, functions / logical_id)
        code_dirs[logical_id] = functions / logical_id
    pycs = sum(1 for _ in compiled.rglob("*.pyc"))
    return {
        WITH_PYC: Layout(code.kind, code_dirs, [compiled, runtime], f"{pycs} modules compiled (unchecked-hash)"),
        WITHOUT_PYC: Layout(code.kind, code_dirs, [bare, runtime], "no bytecode: every import compiles"),
    }


# -- one child ----------------------------------------------------------------------------


def _child_env(env: dict[str, str]) -> dict[str, str]:
    # only what Lambda sets (no PYTHONPATH): the child's imports are the handler's own.
    # Nothing is written either (`-B`, as PYTHONDONTWRITEBYTECODE would, which `-I`
    # ignores): Lambda's /var/task and /opt are read-only, so a cold start only has the
    # bytecode the package shipped.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC", **env}


def spawn(scratch: Path, subject: Subject, layer_path: list[Path], *, importtime: bool = False) -> tuple[Sample, str]:
    """One cold start, and the child's stderr."""
    event_file = scratch / f"event-{uuid.uuid4().hex}.json"
    event_file.write_text(json.dumps(subject.next_event()))
    err_file = scratch / "child.stderr"
    args = [
        sys.executable,
        "-I",  # no user site, no script directory, no PYTHON* variables
        "-S",  # no site-packages: sys.path is what the bootstrap puts there, as on Lambda
        "-B",  # no bytecode written: /opt and /var/task are read-only on Lambda
        *(["-X", "importtime"] if importtime else []),
        str(scratch / "bootstrap.py"),
        str(subject.code_dir),
        ":".join(str(p) for p in layer_path),
        str(event_file),
        subject.logical_id,
        str(subject.memory),
        str(subject.timeout),
        *(["count"] if importtime else []),
    ]
    with err_file.open("w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(args, env=_child_env(subject.env), stdout=subprocess.PIPE, stderr=err, text=True)
        report = None
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(MARKER):
                elapsed = time.perf_counter() - started
                report = json.loads(line[len(MARKER) :])
                break
        child.stdout.read()
        child.wait(timeout=60)
    stderr = err_file.read_text()
    event_file.unlink()
    if report is None:
        raise RuntimeError(
            f"{subject.logical_id}: the child gave no answer (exit {child.returncode}):\n{stderr[-3000:]}"
        )
    try:
        subject.check(report["answer"])
    except AssertionError as exc:
        raise RuntimeError(f"{subject.logical_id}: the first event failed: {exc}: {report['answer']}") from None
    return Sample(elapsed, report["import"], report["handler"], report["cpu"], report["calls"]), stderr


# -- first events -------------------------------------------------------------------------


def _api_status(expected: int) -> Callable[[Any], None]:
    def check(answer: Any) -> None:
        assert isinstance(answer, dict) and answer.get("statusCode") == expected, f"expected {expected}"

    return check


def _no_batch_failures(answer: Any) -> None:
    assert answer == {"batchItemFailures": []}, "expected no batch item failures"


def _api_event(sample: str, body: Any) -> dict[str, Any]:
    out = copy.deepcopy(event(sample))
    out["body"] = None if body is None else json.dumps(body)
    return out


def _cit() -> dict[str, Any]:
    seed = json.loads((ROOT / "tests" / "fixtures" / "seed_cit_corrected.json").read_text())["request"]
    body = copy.deepcopy(seed)
    body.update(orderId=f"cold-{uuid.uuid4().hex[:12]}", idempotencyKey=str(uuid.uuid4()))
    body["transaction"].update(timestampUtc=datetime.now(UTC).isoformat(), amount=1999, responseCode="51")
    body["paymentMethod"].update(cardLast4Digits="4444", cardFingerprint=uuid.uuid4().hex)
    return body


class Orders:
    """Pending orders made in setup (through evaluate_decline, in this process), each used
    by one cold start: a poll, an update, a read."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.ddb = harness.client("dynamodb")
        self.table = harness.stack.physical_ids["OrdersTable"]

    def pending(self, count: int) -> list[dict[str, str]]:
        module = self.harness.load("EvaluateDeclineFunction")
        made = []
        for _ in range(count):
            body = _cit()
            body["transactionType"] = "AUTHORIZATION"  # CAPTUREREQUIRED: pending
            with contextlib.redirect_stdout(io.StringIO()):  # its metrics
                result = module.lambda_handler(_api_event("evaluate_decline/post_cit.json", body), Harness.context())
            answer = json.loads(result["body"])
            assert result["statusCode"] == 200 and answer["status"] == "CAPTUREREQUIRED", answer
            order_id = answer["orderId"]
            self.set_next_poll(order_id, datetime.now(UTC) + timedelta(days=1))  # due only when we say
            state = self.ddb.get_item(
                TableName=self.table, Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}}
            )["Item"]
            made.append({"orderId": order_id, "orderSessionKey": state["orderSessionKey"]["S"]})
        return made

    def set_next_poll(self, order_id: str, at: datetime) -> None:
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "STATE"}},
            UpdateExpression="SET nextPollAt = :p",
            ExpressionAttributeValues={":p": {"S": at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}},
        )


def subjects(harness: Harness, code: Layout, runs: int) -> list[Subject]:
    """The six functions, each with its first events: a capture context; a customer-
    initiated decline; a read of an order; a signed webhook (signed at spawn time with
    the harness's subscriber key); a scheduler tick with one order due; an update that
    completes a pending order."""
    from devstack.emulators.flexfactor import sign_webhook

    orders = Orders(harness)
    for_updates = iter(orders.pending(runs))
    for_polls = iter(orders.pending(runs))
    to_read = orders.pending(1)[0]

    def capture_context() -> dict[str, Any]:
        return event("issue_capture_context/post_default_fields.json")

    def decline() -> dict[str, Any]:
        return _api_event("evaluate_decline/post_cit.json", _cit())

    def read_order() -> dict[str, Any]:
        out = event("orders_api/get_order.json")
        out["path"] = f"/orders/{to_read['orderId']}"
        out["pathParameters"] = {"orderId": to_read["orderId"]}
        return out

    def webhook() -> dict[str, Any]:
        out = event("ingest_webhook/post_webhook.json")
        body = json.dumps(
            {
                "Event": "order.completed",
                "TimeStamp": datetime.now(UTC).isoformat(),
                "EventData": {},
                "ExternalOrderId": to_read["orderId"],
                "OrderId": to_read["orderSessionKey"],
                "ConfirmationId": str(uuid.uuid4()),
                "IsTestMode": True,
                "IsResent": False,
            },
            separators=(",", ":"),
        )
        out["headers"].update(sign_webhook(body.encode(), WEBHOOK_KEY, out["headers"]["Host"]))
        out["multiValueHeaders"] = {k: [v] for k, v in out["headers"].items()}
        out["body"] = body
        return out

    polled: list[str] = []

    def poll() -> dict[str, Any]:
        # the order polled last is put off for the rest of the run (the poller backs it off
        # by minutes only, and a run is longer): this tick finds exactly one order due
        while polled:
            orders.set_next_poll(polled.pop(), datetime.now(UTC) + timedelta(days=1))
        order_id = next(for_polls)["orderId"]
        orders.set_next_poll(order_id, datetime.now(UTC) - timedelta(seconds=1))
        polled.append(order_id)
        # the work item the dispatcher puts on the poll-work queue for the order's shard
        from decline_rescue.infra.orders_store import shard_of

        out = event("poll_orders/sqs_work_item.json")
        due_by = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out["Records"][0]["body"] = json.dumps({"v": 1, "shard": shard_of(order_id), "dueBy": due_by, "hops": 0})
        out["Records"][0]["messageId"] = str(uuid.uuid4())
        return out

    def update() -> dict[str, Any]:
        order = next(for_updates)
        out = event("apply_order_update/sqs_update.json")
        record = out["Records"][0]
        record["messageId"] = str(uuid.uuid4())
        record["body"] = json.dumps(
            {
                "updateId": f"webhook:{uuid.uuid4().hex}",
                "source": "webhook",
                "orderId": order["orderId"],
                "orderSessionKey": order["orderSessionKey"],
                "status": "APPROVED",
                "providerStatus": "order.completed",
                "observedAt": datetime.now(UTC).isoformat(),
            }
        )
        return out

    makers: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Any], None]]] = {
        "IssueCaptureContextFunction": (capture_context, _api_status(201)),
        "EvaluateDeclineFunction": (decline, _api_status(200)),
        "OrdersApiFunction": (read_order, _api_status(200)),
        "IngestWebhookFunction": (webhook, _api_status(200)),
        "PollOrdersFunction": (poll, _no_batch_failures),
        "ApplyOrderUpdateFunction": (update, _no_batch_failures),
    }
    out = []
    for logical_id, (make, check) in makers.items():
        spec = harness.stack.functions[logical_id]
        out.append(
            Subject(
                logical_id,
                code.code_dirs[logical_id],
                harness.function_env(logical_id),
                spec.memory,
                spec.timeout,
                make,
                check,
            )
        )
    return out


# -- the import profile -------------------------------------------------------------------


def parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """module -> (self us, cumulative us) from ``-X importtime`` output."""
    out: dict[str, tuple[int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        out[name] = (int(self_us), int(cumulative_us))
    return out


def by_package(modules: dict[str, tuple[int, int]]) -> list[tuple[str, float]]:
    """Top-level packages by the import time of their own modules (ms), largest first."""
    totals: dict[str, float] = {}
    for name, (self_us, _) in modules.items():
        package = name.split(".")[0]
        totals[package] = totals.get(package, 0.0) + self_us / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _beyond(modules: dict[str, tuple[int, int]], floor: dict[str, tuple[int, int]]) -> list[tuple[str, float]]:
    """Packages by the import time of the modules the floor does not import (ms)."""
    return by_package({m: v for m, v in modules.items() if m not in floor})


def _requests(calls: list[str], ports: dict[str, str]) -> str:
    """The first event's requests, counted by service."""
    counts: dict[str, int] = {}
    for call in calls:
        kind, where, _ = call.split("|", 2)
        name = ports.get(where, f"HTTP :{where}") if kind == "http" else where
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or "none"


def profile_section(
    profiles: dict[str, dict[str, tuple[int, int]]], requests: dict[str, str] | None = None, top: int = 8
) -> str:
    floor = profiles[FLOOR]
    requests = requests or {}
    lines = [
        "## Cold start: import-time profile",
        "",
        "`python -X importtime` of one more cold start of each function (its import and its first "
        "event, so what the first event imports lazily counts), grouped by top-level package: the "
        "time spent in that package's own modules (`-X importtime` slows imports a little). "
        "*Beyond the floor*: the import time of the modules the floor handler (boto3 and one "
        "client) does not import, by package. *Requests*: what the first event sent, by service.",
        "",
        "| function | imports | top packages (ms) | beyond the floor (ms) | requests |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, modules in profiles.items():
        total = sum(s for s, _ in modules.values()) / 1000
        packages = ", ".join(f"{p} {ms:.0f}" for p, ms in by_package(modules)[:top])
        beyond = _beyond(modules, floor)
        extra = f"{sum(ms for _, ms in beyond):.0f}: " + ", ".join(f"{p} {ms:.0f}" for p, ms in beyond[:5])
        lines.append(
            f"| {name} | {total:.0f} ms | {packages} | {extra if name != FLOOR else '-'} | {requests.get(name, '-')} |"
        )
    return "\n".join(lines)


# -- package sizes ------------------------------------------------------------------------


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def sizes_section(code: Layout) -> str:
    build = ROOT / ".aws-sam" / "build"
    lines = ["## Cold start: built package sizes", ""]
    dirs = sorted(p for p in build.glob("*") if p.is_dir()) if build.is_dir() else []
    if not dirs:
        lines.append("No `.aws-sam/build`: run `make build` first.")
        return "\n".join(lines)
    layer = build / "SharedLayer" / "python"
    lines += [
        "`.aws-sam/build` (`make build`: python3.13, arm64), unzipped"
        + (", built from an older source than the one measured (run `make build`)" if code.stale else "")
        + ". The layer holds the dependencies, boto3 and botocore included (pinned by constraints.txt), "
        "and every module's unchecked-hash .pyc (a function holds only its handler).",
        "",
        "| artifact | size |",
        "| --- | --- |",
    ]
    for d in dirs:
        lines.append(f"| {d.name} | {_size(_du(d))} |")
    if layer.is_dir():
        packages: dict[str, int] = {}
        for entry in layer.iterdir():
            if entry.name.endswith((".dist-info", ".data")) or entry.name == "__pycache__":
                continue
            name = entry.name.split(".")[0]
            packages[name] = packages.get(name, 0) + (_du(entry) if entry.is_dir() else entry.stat().st_size)
        biggest = sorted(packages.items(), key=lambda kv: -kv[1])[:8]
        lines += ["", "Largest in the layer: " + ", ".join(f"{n} {_size(b)}" for n, b in biggest) + "."]
    return "\n".join(lines)


# -- the benchmark ------------------------------------------------------------------------


def _parts(subject: Subject) -> str:
    imports = statistics.median(s.imports for s in subject.samples) * 1000
    handler = statistics.median(s.handler for s in subject.samples) * 1000
    return f"import {imports:.0f} ms + first event {handler:.0f} ms"


def _median_ms(subject: Subject, part: str) -> float:
    return statistics.median(getattr(s, part) for s in subject.samples) * 1000


def run(env: BenchEnv) -> list[Row]:
    runs = env.n(15, 3)
    scratch = env.scratch / "cold_start"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "bootstrap.py").write_text(BOOTSTRAP)
    floor_dir = scratch / "floor"
    floor_dir.mkdir(exist_ok=True)
    (floor_dir / "app.py").write_text(FLOOR_HANDLER)
    code = layout(scratch)
    variants = bytecode_variants(scratch, code)
    env.notes.append(
        f"cold start: {code.note}. Each function twice, its layer {WITH_PYC} ({variants[WITH_PYC].note}, as "
        f"layers/shared/Makefile ships it) and {WITHOUT_PYC} (an empty bytecode cache, nothing written: "
        "a layer without bytecode on Lambda's read-only /opt), against the same floor in the same rounds."
    )

    with Harness() as harness:
        port = {
            url: url.rsplit(":", 1)[1] for url in (harness.moto_url, harness.flexfactor_url, harness.cybersource_url)
        }
        ports = {
            port[harness.moto_url]: "Secrets Manager (signed, no botocore)",
            port[harness.flexfactor_url]: "FlexFactor",
            port[harness.cybersource_url]: "Cybersource",
        }
        # each function serves 2 * runs + 3 first events: a warm-up per variant (the page
        # cache; no bytecode is written), the runs of both variants, and one profile
        targets = subjects(harness, variants[WITH_PYC], 2 * runs + 3)
        floor_spec = harness.stack.functions[FLOOR_ENV_OF]
        floor = Subject(
            FLOOR,
            floor_dir,
            harness.function_env(FLOOR_ENV_OF),
            floor_spec.memory,
            floor_spec.timeout,
            lambda: event("dispatch_polls/scheduled.json"),
            lambda answer: None,
        )
        floor_path = code.layer_path[-1:]  # the runtime's boto3 only
        # each function twice: its two variants (their own samples; the same stream of first events)
        measured: dict[str, dict[str, Subject]] = {
            t.logical_id: {name: dataclasses.replace(t, samples=[]) for name in variants} for t in targets
        }
        spawn(scratch, floor, floor_path)  # warm-up
        for subject in targets:
            for name, variant in variants.items():
                spawn(scratch, measured[subject.logical_id][name], variant.layer_path)  # warm-up
        for i in range(runs):
            order = targets[i % len(targets) :] + targets[: i % len(targets)]
            for subject in order:
                trio: list[tuple[Subject, list[Path]]] = [
                    (measured[subject.logical_id][WITH_PYC], variants[WITH_PYC].layer_path),
                    (measured[subject.logical_id][WITHOUT_PYC], variants[WITHOUT_PYC].layer_path),
                    (floor, floor_path),
                ]
                trio = trio[i % 3 :] + trio[: i % 3]
                for one, path in trio:
                    one.samples.append(spawn(scratch, one, path)[0])
        profiles: dict[str, dict[str, tuple[int, int]]] = {}
        requests: dict[str, str] = {}
        for subject in [*targets, floor]:
            one = measured[subject.logical_id][WITH_PYC] if subject is not floor else floor
            path = variants[WITH_PYC].layer_path if subject is not floor else floor_path
            sample, stderr = spawn(scratch, dataclasses.replace(one, samples=[]), path, importtime=True)
            profiles[subject.logical_id] = parse_importtime(stderr)
            requests[subject.logical_id] = _requests(sample.calls, ports)

    floor_median = statistics.median(s.total for s in floor.samples)
    floor_cpu = statistics.median(s.cpu for s in floor.samples)
    rows = []
    bytecode_notes = []
    for subject in targets:
        name = subject.logical_id
        limit = FUNCTIONS[name][1]
        compiled = measured[name][WITH_PYC]
        bare = measured[name][WITHOUT_PYC]
        median = statistics.median(s.total for s in compiled.samples)
        bare_median = statistics.median(s.total for s in bare.samples)
        cpu = statistics.median(s.cpu for s in compiled.samples)
        bare_cpu = statistics.median(s.cpu for s in bare.samples)
        beyond = _beyond(profiles[name], profiles[FLOOR])
        row = ratio_row(
            BENCH,
            f"{name} first event, layer {WITH_PYC}",
            median,
            floor_median,
            limit,
            note=f"n={len(compiled.samples)}; {_parts(compiled)} (floor {_parts(floor)}); CPU {cpu / floor_cpu:.2f}x "
            f"the floor's; imports beyond the floor {sum(ms for _, ms in beyond):.0f} ms; requests: {requests[name]}",
        )
        rows.append(row)
        imports, bare_imports = _median_ms(compiled, "imports"), _median_ms(bare, "imports")
        rows.append(
            Row(
                BENCH,
                f"{name} first event, layer {WITHOUT_PYC}",
                f"{bare_median * 1000:.1f} ms",
                f"{floor_median * 1000:.1f} ms",
                bare_median / floor_median,
                "reported (no target)",
                True,
                f"n={len(bare.samples)}; {_parts(bare)} (floor {_parts(floor)}); CPU {bare_cpu / floor_cpu:.2f}x the "
                f"floor's; {bare_median / median:.2f}x the same function {WITH_PYC} (import {bare_imports:.0f} ms vs "
                f"{imports:.0f} ms)",
            )
        )
        bytecode_notes.append(
            f"{name} import {bare_imports:.0f} ms vs {imports:.0f} ms ({bare_imports / imports:.1f}x), first event "
            f"{bare_median * 1000:.0f} ms vs {median * 1000:.0f} ms ({bare_median / floor_median:.2f}x vs "
            f"{median / floor_median:.2f}x the floor)"
        )
        if not row.ok:
            top = ", ".join(f"{p} {ms:.0f} ms" for p, ms in beyond[:6])
            env.notes.append(
                f"cold start, {name}: {row.ratio:.2f}x the floor (target {limit:g}x; CPU {cpu / floor_cpu:.2f}x). "
                f"Imports beyond the floor's: {top}; {_parts(compiled)}; the first event's requests: "
                f"{requests[name]}." + (f" Why: {EXPLAIN[name]}." if name in EXPLAIN else "")
            )
    summary = (
        f"cold start, bytecode ({WITHOUT_PYC} vs {WITH_PYC}, medians; floor {floor_median * 1000:.0f} ms): "
        + "; ".join(bytecode_notes)
        + "."
    )
    env.notes.append(summary)
    print(f"   {summary}", flush=True)  # also in bench/results.md's notes
    env.extra_sections.append(profile_section(profiles, requests))
    env.extra_sections.append(sizes_section(code))
    return rows
