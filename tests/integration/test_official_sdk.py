"""The official Cybersource Python SDK against the Flex v2 emulator, over TLS.

Acceptance: the SDK (cybersource-rest-client-python, its ``testrest`` sample credentials, the
emulator's address as ``run_environment``) generates a capture context against the emulator and
verifies it with its own capture-context parsing, which fetches the signing key itself from
``https://{run_environment}/flex/v2/public-keys/{kid}``.

The SDK lives in ``.venv-sdk`` (it replaces urllib3 wherever it is installed), so each case runs
``tests/sdk/sdk_capture_context.py`` in a subprocess with that interpreter. Nothing of ours is mocked.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from decline_rescue.runtime.settings import DEFAULT_CAPTURE_OPTIONAL, DEFAULT_CAPTURE_REQUIRED
from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import (
    CONTEXT_LIFETIME,
    TESTREST_SHARED_SECRET,
    CybersourceEmulator,
    start_flex_origin,
)
from devstack.tls import TLSFiles, make_test_tls, server_ssl_context

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
SCRIPT = ROOT / "tests" / "sdk" / "sdk_capture_context.py"
SDK_TIMEOUT_SECONDS = 60


@dataclass
class TLSEmulator:
    emulator: CybersourceEmulator
    server: ServerThread
    tls: TLSFiles
    workdir: Path

    @property
    def host(self) -> str:
        return f"{self.server.server.host}:{self.server.server.port}"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the emulator's admin API over HTTPS, trusting only the test CA."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def cybersource_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSEmulator]:
    certs = tmp_path_factory.mktemp("cybersource-tls")
    tls = make_test_tls(certs)
    emulator = CybersourceEmulator(pool_size=2)
    flex = start_flex_origin(emulator, ssl_context=server_ssl_context(tls))
    server = ServerThread(emulator, ssl_context=server_ssl_context(tls)).start()
    assert server.url.startswith("https://127.0.0.1:")
    try:
        yield TLSEmulator(emulator, server, tls, tmp_path_factory.mktemp("sdk-cwd"))
    finally:
        server.stop()
        flex.stop()


@pytest.fixture(autouse=True)
def _no_leftover_faults(cybersource_tls: TLSEmulator) -> Iterator[None]:
    yield
    cybersource_tls.admin("DELETE", "/__emulator/faults")


def run_sdk(target: TLSEmulator, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run the SDK script in .venv-sdk; (exit code, its one JSON line)."""
    if not SDK_PYTHON.exists():
        pytest.fail(
            f"{SDK_PYTHON.relative_to(ROOT)} does not exist: the official-SDK test needs the SDK's own "
            "virtualenv. Run `make pytest` (it builds .venv-sdk from tests/sdk/requirements.txt).",
            pytrace=False,
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(SDK_PYTHON), str(SCRIPT), "--host", target.host, "--ca-file", str(target.tls.ca), *extra],
        capture_output=True,
        text=True,
        timeout=SDK_TIMEOUT_SECONDS,
        cwd=target.workdir,
        env=env,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if len(lines) != 1:
        sys.stderr.write(proc.stderr)
        pytest.fail(
            f"expected one JSON line from the SDK script, got rc={proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.returncode, json.loads(lines[0])


def counts(target: TLSEmulator) -> dict[str, int]:
    return dict(target.emulator.counts)


def delta(before: dict[str, int], after: dict[str, int], endpoint: str) -> int:
    return after.get(endpoint, 0) - before.get(endpoint, 0)


def test_sdk_generates_a_capture_context_and_its_parser_verifies_it(cybersource_tls: TLSEmulator) -> None:
    before = counts(cybersource_tls)
    rc, result = run_sdk(cybersource_tls)
    after = counts(cybersource_tls)

    assert rc == 0, result
    assert result["status"] == 201
    assert result["jwt_kid"] == cybersource_tls.emulator.signing_kid
    payload = result["payload"]
    jwk = payload["flx"]["jwk"]
    assert jwk["kty"] == "RSA"
    assert jwk["kid"] and jwk["n"] and jwk["e"]
    assert jwk["kid"] in cybersource_tls.emulator.contexts  # the one-time key of a session we issued
    assert payload["flx"]["origin"] == cybersource_tls.emulator.flex_origin != cybersource_tls.server.url
    data = payload["ctx"][0]["data"]
    assert data["requiredFields"] == ["paymentInformation.card.number"] == list(DEFAULT_CAPTURE_REQUIRED)
    assert data["optionalFields"] == list(DEFAULT_CAPTURE_OPTIONAL)
    assert payload["exp"] - payload["iat"] == CONTEXT_LIFETIME == 900
    assert isinstance(payload["jti"], str) and len(payload["jti"]) == 16
    # The SDK's parser fetched the signing key itself, over TLS (the emulator serves nothing else).
    assert delta(before, after, "sessions") == 1
    assert delta(before, after, "public_keys") == 1


def test_wrong_shared_secret_is_refused_with_401(cybersource_tls: TLSEmulator) -> None:
    wrong = base64.b64encode(bytes(b ^ 0xFF for b in base64.b64decode(TESTREST_SHARED_SECRET))).decode()
    before = counts(cybersource_tls)
    rc, result = run_sdk(cybersource_tls, "--shared-secret", wrong)
    after = counts(cybersource_tls)

    assert rc == 1
    assert result["error"] == "ApiException", result
    assert result["status"] == 401
    assert "Authentication Failed" in result["message"]
    assert delta(before, after, "sessions") == 1
    assert delta(before, after, "public_keys") == 0


def test_sdk_parser_refuses_a_badly_signed_capture_context(cybersource_tls: TLSEmulator) -> None:
    queued = cybersource_tls.admin(
        "POST", "/__emulator/faults", {"endpoint": "sessions", "faults": [{"jwt": "bad_signature"}]}
    )
    assert queued == {"queued": 1, "endpoint": "sessions"}
    before = counts(cybersource_tls)
    rc, result = run_sdk(cybersource_tls)
    after = counts(cybersource_tls)

    assert rc == 1
    assert result["error"] == "JwtSignatureValidationException", result
    assert result["status"] is None  # not an HTTP failure: the session call succeeded, verification did not
    assert delta(before, after, "sessions") == 1
    assert delta(before, after, "public_keys") >= 1  # it fetched the real key and the signature failed
    assert cybersource_tls.emulator.take_fault("sessions") is None  # the fault was consumed by the SDK's call
