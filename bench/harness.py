"""The parts a benchmark runs against, as the tests use them: a moto server process, the
Cybersource and FlexFactor emulators on loopback (each in its own process, so their work
does not share the benchmark's GIL), template.yaml provisioned into moto, the provider
secrets stored, and the functions' handlers loaded with the environment the template
gives them. Nothing here is mocked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core import ROOT
from devstack.emulators.cybersource import TESTREST_KEY_ID, TESTREST_MERCHANT_ID, TESTREST_SHARED_SECRET
from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET
from devstack.provision import Provisioner, Stack
from devstack.runtime import LambdaContext
from devstack.stack import _terminate, _wait_http, free_port

WEBHOOK_KEY = "YmVuY2gtd2ViaG9vay1zdWJzY3JpYmVyLWtleS0wMDAx"  # base64, the secret's subscriber key
SITE_ID = "5f1d3a1e-8c2b-4d7a-9e61-0c4b2a9d7f10"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "decline-rescue",
    "POWERTOOLS_METRICS_NAMESPACE": "DeclineRescue",
    "POWERTOOLS_LOG_LEVEL": "WARNING",  # benchmarks measure work, not log volume
}


class Harness:
    def __init__(self, parameters: dict[str, str] | None = None, *, flexfactor_args: list[str] | None = None):
        self.parameters = parameters or {}
        self.flexfactor_args = flexfactor_args or []
        self.processes: list[subprocess.Popen] = []
        self.stack: Stack | None = None

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'shared'}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def __enter__(self) -> Harness:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        moto_port, cs_port, ff_port, flex_port = free_port(), free_port(), free_port(), free_port()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        self.cybersource_url = f"http://127.0.0.1:{cs_port}"
        self.flexfactor_url = f"http://127.0.0.1:{ff_port}"
        moto = self._spawn(["-m", "devstack.moto_server", "-H", "127.0.0.1", "-p", str(moto_port)])
        cs = self._spawn(
            ["-m", "devstack.emulators.cybersource", "--port", str(cs_port), "--flex-port", str(flex_port)]
        )
        ff = self._spawn(["-m", "devstack.emulators.flexfactor", "--port", str(ff_port), *self.flexfactor_args])
        _wait_http(self.moto_url + "/moto-api/", process=moto)
        _wait_http(self.cybersource_url + "/__emulator/health", process=cs)
        _wait_http(self.flexfactor_url + "/__emulator/health", process=ff)
        parameters = {
            "Stage": "bench",
            "CybersourceBaseUrl": self.cybersource_url,
            "FlexFactorBaseUrl": self.flexfactor_url,
            "AmountMinExclusiveCents": "10",
            **self.parameters,
        }
        self.stack = Provisioner(self.moto_url, "bench", parameters).provision()
        sm = self.client("secretsmanager")
        sm.put_secret_value(
            SecretId=self.stack.physical_ids["CybersourceSecret"],
            SecretString=json.dumps(
                {"merchantId": TESTREST_MERCHANT_ID, "keyId": TESTREST_KEY_ID, "sharedSecret": TESTREST_SHARED_SECRET}
            ),
        )
        sm.put_secret_value(
            SecretId=self.stack.physical_ids["FlexFactorSecret"],
            SecretString=json.dumps(
                {
                    "appKey": DEFAULT_APP_KEY,
                    "appSecret": DEFAULT_APP_SECRET,
                    "mid": "bench-mid",
                    "siteId": SITE_ID,
                    "webhookSubscriberKey": WEBHOOK_KEY,
                }
            ),
        )

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.moto_url, **_boto_args())

    def function_env(self, logical_id: str, **overrides: str) -> dict[str, str]:
        """The function's environment as the template sets it, pointed at moto."""
        assert self.stack is not None
        spec = self.stack.functions[logical_id]
        return {
            **spec.environment,
            **AWS_ENV,
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            **overrides,
        }

    def load(self, logical_id: str, **overrides: str):
        """Set this process's environment for the function and import its handler anew
        (module caches of the shared package are reset, as a fresh environment's are)."""
        assert self.stack is not None
        spec = self.stack.functions[logical_id]
        os.environ.update(self.function_env(logical_id, **overrides))
        reset_shared_state()
        module_spec = importlib.util.spec_from_file_location(
            f"bench_handler_{logical_id}", os.path.join(spec.code_dir, "app.py")
        )
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module

    @staticmethod
    def context(name: str = "bench", timeout: int = 60) -> Any:
        return LambdaContext(name, 512, timeout)

    def close(self) -> None:
        for process in self.processes:
            _terminate(process)
        self.processes.clear()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _boto_args() -> dict[str, str]:
    return {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }


def reset_shared_state() -> None:
    """Forget settings, clients and secret caches (a new execution environment)."""
    from aws_lambda_powertools.utilities import parameters

    from decline_rescue.runtime import wiring

    wiring.reset()
    parameters.base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()


def unguarded(make: Callable[[], str]) -> str:
    """A fresh random id from ``make`` without 13 or more digits in a row (across dashes),
    such as ``bench-0c66925383154217`` or a UUID's ``...-4b63-8878-9139386cac0c``: the
    contract's card-number guard in the working tree of December 2026 takes any such run
    that passes the Luhn check for a card number and refuses the decline (about 0.06% of
    ``bench-<16 hex>`` order ids, 0.2% of 32-hex fingerprints, 0.3% of UUIDs). The
    benchmarks measure declines, not that guard, so they do not draw such ids."""
    while True:
        value = make()
        if all(len(run.replace("-", "")) < 13 for run in _DIGIT_CHAIN.findall(value)):
            return value


def idempotency_key() -> str:
    """A fresh UUID for a decline's ``idempotencyKey`` (see ``unguarded``)."""
    return unguarded(lambda: str(uuid.uuid4()))


def hex_id(length: int = 32) -> str:
    """``length`` fresh random hex digits (see ``unguarded``)."""
    return unguarded(lambda: uuid.uuid4().hex[:length])


_DIGIT_CHAIN = re.compile(r"[0-9]+(?:-[0-9]+)*")


def event(path: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / path).read_text())


def layer_path() -> Path:
    return ROOT / "layers" / "shared"
