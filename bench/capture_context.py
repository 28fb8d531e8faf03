"""Capture context (issue 5, item 2): ``issue_capture_context`` versus the official SDK.

Both clients talk to one Cybersource emulator, served over TLS in its own process
(``bench/capture_context_tls.py``; the SDK speaks only https, configured as
``tests/integration/test_official_sdk.py`` does), and both verify what they get (RS256 with
the provider's public key, fetched once and cached by each).

- **warm**: the handler (IssueCaptureContextFunction, the template's environment, its
  API Gateway event ``events/issue_capture_context/post_default_fields.json``) answering
  N requests in this process, versus the SDK (``cybersource-rest-client-python`` in
  ``.venv-sdk``) generating the same capture context and verifying it with its own parser
  N times on one ``FlexAPIApi``, timing itself in its subprocess
  (``bench/capture_context_sdk.py``), versus the bare signed round trip (``Floor``): the
  same work done by a minimal client, a kept ``http.client`` TLS connection to the same
  emulator, each request signed afresh (HTTP Signature: date, digest, HMAC-SHA256),
  ``POST /flex/v2/sessions``, and the answer's RS256 signature verified with the signing
  key (fetched once by kid, with ``cryptography``) and its ``exp`` checked. The three are
  called in turn, the order rotating each round. The loopback round trip is most of both
  clients' totals, so the target is on what each adds to that floor: each round's
  handler - floor against the same round's SDK - floor, medians over the rounds. Target:
  our overhead <= 1.0x the SDK's. The totals are reported beside it (no target).
- **cold**: a fresh process importing the handler and serving its first event (which
  also reads the secret from Secrets Manager) versus a fresh process importing the SDK
  and making its first call, each timed from the top of its script
  (``bench/capture_context_cold.py``; interpreter start-up excluded on both sides).
  Target: <= 0.5x.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.core import ROOT, BenchEnv, Row, Stats, ratio_row
from bench.harness import Harness, event
from devstack.stack import _terminate, free_port
from devstack.tls import make_test_tls

FUNCTION = "IssueCaptureContextFunction"
EVENT = "issue_capture_context/post_default_fields.json"
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
SDK_DRIVER = ROOT / "bench" / "capture_context_sdk.py"
COLD_DRIVER = ROOT / "bench" / "capture_context_cold.py"
BENCHMARK = "capture context"
OVERHEAD_LIMIT = 1.0  # our overhead over the bare signed round trip / the SDK's
REQUIRED = ["paymentInformation.card.number"]
CARD_FIELDS = {  # the default selection, as the SDK driver sends it
    "paymentInformation": {
        "card": {
            "number": {},
            "securityCode": {"required": False},
            "expirationMonth": {"required": False},
            "expirationYear": {"required": False},
            "type": {"required": False},
        }
    }
}


def ensure_sdk() -> None:
    """.venv-sdk as ``make pytest`` builds it (the SDK replaces urllib3: never in .venv)."""
    if not SDK_PYTHON.exists():
        subprocess.run(["make", ".venv-sdk/.installed"], cwd=ROOT, check=True)  # noqa: S607 - make from PATH


def _sdk_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _wait_tls(url: str, ca: Path, process: subprocess.Popen, timeout: float = 30.0) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the TLS emulator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/__emulator/health", context=context, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url}: the TLS emulator did not start")


def _json_line(proc: subprocess.CompletedProcess, what: str) -> dict[str, Any]:
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"{what}: {result}")
    return result


def sdk_cold(host: str, ca: Path, workdir: Path) -> float:
    """A fresh SDK process: import and first call (generate and verify), timed by itself."""
    proc = subprocess.run(
        [str(SDK_PYTHON), str(SDK_DRIVER), "--host", host, "--ca-file", str(ca)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
        env=_sdk_env(),
        check=False,
    )
    result = _json_line(proc, "the SDK")
    assert result["status"] == 201 and result["required"] == REQUIRED, result
    return result["first_call_s"]


class WarmSdk:
    """An SDK process that makes one more timed call per line it reads."""

    def __init__(self, host: str, ca: Path, workdir: Path) -> None:
        self.process = subprocess.Popen(
            [str(SDK_PYTHON), str(SDK_DRIVER), "--host", host, "--ca-file", str(ca), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=workdir,
            env=_sdk_env(),
        )
        ready = self._line()
        assert ready.get("status") == 201 and ready.get("required") == REQUIRED, ready

    def _line(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the SDK process ended (rc={self.process.poll()})")
        result = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"the SDK: {result}")
        return result

    def call(self) -> float:
        self.process.stdin.write("call\n")
        self.process.stdin.flush()
        return self._line()["call_s"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def handler_cold(harness: Harness, url: str, ca: Path) -> float:
    """A fresh process: import the handler and serve its first event, timed by itself."""
    spec = harness.stack.functions[FUNCTION]
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONDONTWRITEBYTECODE") if k in os.environ}
    env.update(harness.function_env(FUNCTION, CYBERSOURCE_BASE_URL=url, SSL_CERT_FILE=str(ca)))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "shared"), spec.code_dir])
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(COLD_DRIVER), spec.code_dir, str(ROOT / "events" / EVENT)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    result = _json_line(proc, "the handler's cold start")
    assert result["status"] == 201, result
    return result["first_s"]


class WarmHandler:
    """The handler in this process, with the function's environment, one event per call."""

    def __init__(self, harness: Harness, url: str, ca: Path) -> None:
        self.harness = harness
        self.module = harness.load(FUNCTION, CYBERSOURCE_BASE_URL=url, SSL_CERT_FILE=str(ca))
        self.template = json.dumps(event(EVENT))

    def call(self) -> float:
        ev = json.loads(self.template)
        context = self.harness.context(FUNCTION, 30)
        with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics (Lambda's stdout)
            began = time.perf_counter()
            result = self.module.lambda_handler(ev, context)
            elapsed = time.perf_counter() - began
        if result["statusCode"] != 201:
            raise RuntimeError(f"the handler answered {result['statusCode']}: {result['body']}")
        assert json.loads(result["body"])["requiredFields"] == REQUIRED
        return elapsed


class Floor:
    """The bare signed round trip, by a minimal client: one kept ``http.client`` TLS
    connection to the emulator; each call signs the request afresh (HTTP Signature over
    host, date, request-target, digest and merchant id), POSTs /flex/v2/sessions, reads
    the JWT and verifies its RS256 signature with the signing key (fetched by kid on first
    sight, then cached, as both clients do) and its ``exp``. What a correct client cannot
    skip; no field checks, no framework, no logging or metrics."""

    def __init__(self, url: str, ca: Path) -> None:
        import http.client

        from devstack.emulators.cybersource import TESTREST_KEY_ID, TESTREST_MERCHANT_ID, TESTREST_SHARED_SECRET

        self.host = url.split("://", 1)[1]
        hostname, _, port = self.host.rpartition(":")
        self.body = json.dumps({"fields": CARD_FIELDS}, separators=(",", ":")).encode()
        self.credentials = (TESTREST_MERCHANT_ID, TESTREST_KEY_ID, TESTREST_SHARED_SECRET)
        self.connection = http.client.HTTPSConnection(
            hostname, int(port), context=ssl.create_default_context(cafile=str(ca)), timeout=10
        )
        self.keys: dict[str, Any] = {}

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def _key(self, kid: str) -> Any:
        key = self.keys.get(kid)
        if key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            status, data = self._exchange("GET", f"/flex/v2/public-keys/{kid}", None, {"Accept": "application/json"})
            if status != 200:
                raise RuntimeError(f"the emulator answered {status} for key {kid}")
            jwk = json.loads(data)
            key = self.keys[kid] = rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
        return key

    def call(self) -> float:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        from decline_rescue.providers.cybersource import http_signature

        merchant_id, key_id, secret = self.credentials
        began = time.perf_counter()
        headers = http_signature.signature_headers(
            method="POST",
            path="/flex/v2/sessions",
            host=self.host,
            body=self.body,
            merchant_id=merchant_id,
            key_id=key_id,
            shared_secret_b64=secret,
            date=http_signature.http_date(time.time()),
        )
        headers.update({"Accept": "application/jwt", "Content-Type": "application/json;charset=utf-8"})
        status, data = self._exchange("POST", "/flex/v2/sessions", self.body, headers)
        if status != 201:
            raise RuntimeError(f"the emulator answered {status}")
        token = data.decode("ascii").strip()
        head, payload, signature = token.split(".")
        header = json.loads(_b64url(head))
        if header.get("alg") != "RS256":
            raise RuntimeError(f"unexpected algorithm {header.get('alg')!r}")
        self._key(header["kid"]).verify(
            _b64url(signature), f"{head}.{payload}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        if json.loads(_b64url(payload))["exp"] < time.time():
            raise RuntimeError("the capture context has expired")
        return time.perf_counter() - began

    def close(self) -> None:
        self.connection.close()


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64int(segment: str) -> int:
    return int.from_bytes(_b64url(segment), "big")


def _overhead(sides: list[float], floor: list[float]) -> Stats:
    """Each round's time over the same round's floor (drift on this shared machine hits a
    round's calls alike)."""
    return Stats([s - f for s, f in zip(sides, floor, strict=True)])


def _ratio(ours: float, theirs: float) -> float:
    """ours / theirs; when the SDK adds nothing measurable, only nothing added meets 1.0x."""
    if theirs > 0:
        return ours / theirs
    return 0.0 if ours <= 0 else math.inf


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run(env: BenchEnv) -> list[Row]:
    ensure_sdk()
    n_warm, warmup = env.n(200, 20), 5
    n_cold = env.n(5, 2)
    workdir = env.scratch / "capture-context"
    tls = make_test_tls(workdir / "tls")
    samples: dict[str, list[float]] = {"handler": [], "sdk": [], "floor": []}
    cold: dict[str, list[float]] = {"handler": [], "sdk": []}
    with Harness() as harness:
        port = free_port()
        emulator = harness._spawn(
            ["-m", "bench.capture_context_tls", "--port", str(port), "--tls-dir", str(workdir / "tls")]
        )
        host = f"127.0.0.1:{port}"
        url = f"https://{host}"
        sdk = bare = None
        try:
            _wait_tls(url, tls.ca, emulator)
            handler, sdk, bare = WarmHandler(harness, url, tls.ca), WarmSdk(host, tls.ca, workdir), Floor(url, tls.ca)
            # interleaved, one call each in turn, the order rotating (none always goes first):
            # load on this shared machine hits all three alike
            sides = [("floor", bare), ("handler", handler), ("sdk", sdk)]
            for i in range(warmup + n_warm):
                for name, side in sides[i % 3 :] + sides[: i % 3]:
                    elapsed = side.call()
                    if i >= warmup:
                        samples[name].append(elapsed)
            sdk.close()
            handler_cold(harness, url, tls.ca)  # untimed: file-system caches warmed for both sides
            sdk_cold(host, tls.ca, workdir)
            for _ in range(n_cold):
                cold["handler"].append(handler_cold(harness, url, tls.ca))
                cold["sdk"].append(sdk_cold(host, tls.ca, workdir))
        finally:
            os.environ.pop("SSL_CERT_FILE", None)
            if sdk is not None:
                sdk.close()
            if bare is not None:
                bare.close()
            _terminate(emulator)
    warm_handler, warm_sdk, warm_floor = Stats(samples["handler"]), Stats(samples["sdk"]), Stats(samples["floor"])
    ours, theirs = _overhead(samples["handler"], samples["floor"]), _overhead(samples["sdk"], samples["floor"])
    ratio = _ratio(ours.median, theirs.median)
    cold_h, cold_s = Stats(cold["handler"]), Stats(cold["sdk"])
    return [
        Row(
            BENCHMARK,
            "issue_capture_context warm, overhead over the bare signed round trip (median): ours / the SDK's",
            _ms(ours.median),
            _ms(theirs.median),
            ratio,
            f"<= {OVERHEAD_LIMIT:.1f}x",
            ratio <= OVERHEAD_LIMIT,
            f"per round, handler - floor: {ours.describe(unit='ms')}; official SDK - floor: "
            f"{theirs.describe(unit='ms')}; floor (minimal client: kept http.client TLS connection, each request "
            f"signed, POST /flex/v2/sessions, RS256 signature with the cached key and exp checked) "
            f"{warm_floor.describe()}; the floor is {warm_floor.median / warm_handler.median:.0%} of the "
            f"handler's median, {warm_floor.median / warm_sdk.median:.0%} of the SDK's; one TLS emulator with "
            "keep-alive, the three called in turn (rotating order), both clients verify the JWT with the "
            "provider's (cached) key",
        ),
        Row(
            BENCHMARK,
            "issue_capture_context warm, total median (information)",
            _ms(warm_handler.median),
            _ms(warm_sdk.median),
            warm_handler.median / warm_sdk.median,
            "reported (no target)",
            True,
            f"handler {warm_handler.describe()}; official SDK {warm_sdk.describe()}; floor {warm_floor.describe()}; "
            "the totals are mostly the loopback round trip both pay: the target is on the overhead row above",
        ),
        ratio_row(
            BENCHMARK,
            "issue_capture_context cold (import + first request), median",
            cold_h.median,
            cold_s.median,
            0.5,
            note=f"handler {cold_h.describe()} (its first request also reads the secret); official SDK "
            f"{cold_s.describe()}; fresh processes, interleaved, interpreter start-up excluded",
        ),
    ]
