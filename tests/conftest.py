"""Shared fixtures: a moto server process, the provider emulators on loopback, the
resources of template.yaml provisioned into moto, and the handlers loaded from
``functions/`` with the environment the template gives them."""

from __future__ import annotations

import os

# Lambda sets a function's environment before it imports the handler; module-level
# Powertools objects (logger, metrics) read it then. Tests import the shared package at
# collection, so the template's Globals are set here first (test_template checks them).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "decline-rescue")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DeclineRescue")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

import copy
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.emulators.base import ServerThread
from devstack.emulators.cybersource import CybersourceEmulator, start_flex_origin
from devstack.emulators.flexfactor import FlexFactorEmulator
from devstack.provision import Provisioner, Stack
from devstack.runtime import LambdaContext
from devstack.stack import _terminate, _wait_http, free_port

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
TEST_PAN = "4111111111111111"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server in its own process (a real process boundary, like AWS)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/moto-api/", process=process)
        yield url
    finally:
        _terminate(process)


@pytest.fixture(scope="session")
def cybersource() -> Iterator[tuple[CybersourceEmulator, str]]:
    """The Cybersource emulator over real HTTP on loopback: the REST host (the URL given)
    and, on another port, the Flex origin its capture contexts name in flx.origin."""
    emulator = CybersourceEmulator()
    flex = start_flex_origin(emulator)
    try:
        with ServerThread(emulator) as server:
            yield emulator, server.url
    finally:
        flex.stop()


@pytest.fixture
def cybersource_url(cybersource) -> Iterator[str]:
    """The emulator's URL, with its fault queue emptied after each test."""
    _, url = cybersource
    yield url
    httpx.delete(url + "/__emulator/faults")


def queue_faults(base_url: str, endpoint: str, *faults: dict[str, Any]) -> None:
    httpx.post(base_url + "/__emulator/faults", json={"endpoint": endpoint, "faults": list(faults)}).raise_for_status()


@pytest.fixture(scope="session")
def flexfactor() -> Iterator[tuple[FlexFactorEmulator, str]]:
    """The FlexFactor emulator over real HTTP on loopback."""
    emulator = FlexFactorEmulator()
    with ServerThread(emulator) as server:
        yield emulator, server.url


@pytest.fixture
def flexfactor_url(flexfactor) -> Iterator[str]:
    _, url = flexfactor
    yield url
    httpx.delete(url + "/__emulator/faults")


@pytest.fixture(scope="session")
def stack(moto_url: str, cybersource, flexfactor) -> Stack:
    """template.yaml provisioned into moto, pointing at the emulators."""
    parameters = {
        "Stage": "test",
        "CybersourceBaseUrl": cybersource[1],
        "FlexFactorBaseUrl": flexfactor[1],
        "AmountMinExclusiveCents": "10",  # the FlexFactor sandbox's (and emulator's) lower bound
    }
    return Provisioner(moto_url, "test-stack", parameters).provision()


TEST_SITE_ID = "5f1d3a1e-8c2b-4d7a-9e61-0c4b2a9d7f10"
# the FlexFactor secret's webhookSubscriberKey in tests (base64 of 32 bytes)
TEST_WEBHOOK_KEY = "dGVzdC13ZWJob29rLXN1YnNjcmliZXIta2V5LTAwMDE="


@pytest.fixture(scope="session")
def flexfactor_credentials(stack: Stack, moto_url: str) -> dict[str, str]:
    from devstack.emulators.flexfactor import DEFAULT_APP_KEY, DEFAULT_APP_SECRET

    creds = {
        "appKey": DEFAULT_APP_KEY,
        "appSecret": DEFAULT_APP_SECRET,
        "mid": "test-mid",
        "siteId": TEST_SITE_ID,
        "webhookSubscriberKey": TEST_WEBHOOK_KEY,
    }
    aws_client(moto_url, "secretsmanager").put_secret_value(
        SecretId=stack.physical_ids["FlexFactorSecret"], SecretString=json.dumps(creds)
    )
    return creds


def aws_client(moto_url: str, service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def cybersource_credentials(stack: Stack, moto_url: str) -> dict[str, str]:
    from devstack.emulators.cybersource import TESTREST_KEY_ID, TESTREST_MERCHANT_ID, TESTREST_SHARED_SECRET

    creds = {"merchantId": TESTREST_MERCHANT_ID, "keyId": TESTREST_KEY_ID, "sharedSecret": TESTREST_SHARED_SECRET}
    put_cybersource_secret(stack, moto_url, creds)
    return creds


def put_cybersource_secret(stack: Stack, moto_url: str, value: dict[str, str]) -> None:
    secret_id = stack.physical_ids["CybersourceSecret"]
    aws_client(moto_url, "secretsmanager").put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))


@pytest.fixture
def wrong_cybersource_secret(stack: Stack, moto_url: str, cybersource_credentials):
    """The secret holds a wrong shared secret for the test; the right one is put back after."""
    wrong = {**cybersource_credentials, "sharedSecret": "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="}
    put_cybersource_secret(stack, moto_url, wrong)
    yield wrong
    put_cybersource_secret(stack, moto_url, cybersource_credentials)


def reset_module_state() -> None:
    """Forget what a warm execution environment keeps: settings, clients, secret caches."""
    from aws_lambda_powertools.utilities import parameters

    from decline_rescue.runtime import wiring

    wiring.reset()
    parameters.base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()


@pytest.fixture
def function_env(monkeypatch, stack: Stack, moto_url: str, cybersource_credentials, flexfactor_credentials):
    """Set a function's environment exactly as the template declares it (plus the
    local AWS endpoint) and return a loader for its handler module."""

    def use(logical_id: str, **overrides: str):
        spec = stack.functions[logical_id]
        env = {
            **spec.environment,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            # tests must not wait for real backoff pauses
            "CYBERSOURCE_BACKOFF_SECONDS": "0.01",
            "FLEXFACTOR_BACKOFF_SECONDS": "0.01",
            **overrides,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_module_state()
        return load_handler(spec.code_dir, logical_id), spec

    yield use
    reset_module_state()


_loaded: dict[str, Any] = {}


def load_handler(code_dir: str, logical_id: str):
    """functions/<name>/app.py as its own module (every function's module is ``app``)."""
    if logical_id not in _loaded:
        spec = importlib.util.spec_from_file_location(f"handler_{logical_id}", os.path.join(code_dir, "app.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[logical_id] = module
    return _loaded[logical_id]


def api_event(sample: str, body: Any = None, *, raw_body: str | None = None) -> dict[str, Any]:
    """A sample API Gateway REST proxy event from events/, with the body replaced."""
    event = copy.deepcopy(json.loads((EVENTS / sample).read_text()))
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not None:
        event["body"] = json.dumps(body)
    return event


def invoke(module, event: dict[str, Any], name: str = "test-function") -> dict[str, Any]:
    return module.lambda_handler(event, LambdaContext(name, 512, 10))


@pytest.fixture
def captured_logs():
    """Everything the functions log (Powertools logger and EMF metrics) in this test. The
    logger's handler keeps the stream it found at import (as Lambda's stdout), which
    pytest's capsys/capfd never see: point it at a buffer for the test."""
    import io

    from decline_rescue.runtime.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield buffer
    logger.registered_handler.setStream(previous)


class EventPublisher:
    """The orders table's stream, read by its event source mapping as Lambda reads it
    (``devstack.pollers.StreamPoller``: filters, batches, partial failures, bisect,
    retries, the on-failure queue), invoking PublishOrderEventsFunction's handler in this
    process. Tests call ``drain()`` where Lambda would have run by itself.
    ``bus`` names the bus the handler is given (a missing one makes every put fail)."""

    def __init__(self, stack: Stack, moto_url: str) -> None:
        import dataclasses

        from devstack.pollers import StreamPoller

        mapping = next(m for m in stack.event_sources if m.function == "PublishOrderEventsFunction")
        self.spec = stack.functions["PublishOrderEventsFunction"]
        self.handler = load_handler(self.spec.code_dir, "PublishOrderEventsFunction")
        self.moto_url = moto_url
        self.bus = self.spec.environment["EVENT_BUS_NAME"]
        self.poller = StreamPoller(
            dataclasses.replace(mapping, starting_position="LATEST"),  # this session's records only
            aws_client(moto_url, "dynamodbstreams"),
            aws_client(moto_url, "sqs"),
            self._invoke,
            retry_delay=0.01,
        )
        self.poller.poll_once()  # the checkpoint: where the stream is now

    def _invoke(self, function: str, event: dict[str, Any]) -> tuple[bool, Any]:
        from decline_rescue.runtime import settings

        env = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "EVENT_BUS_NAME": self.bus,
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        settings.events.cache_clear()
        try:
            return True, self.handler.lambda_handler(event, LambdaContext(self.spec.name, 256, 30))
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it to the poller
            return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            settings.events.cache_clear()

    def drain(self, timeout: float = 20.0) -> None:
        assert self.poller.drain(timeout), "the orders stream was not drained in time"


@pytest.fixture(scope="session")
def event_publisher(stack: Stack, moto_url: str) -> EventPublisher:
    return EventPublisher(stack, moto_url)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (the system's, driven by Playwright): the
    sample checkout's tests (tests/browser) and the Microform library's share it, as
    Playwright's sync API runs one driver per thread. Tests that need it decide first
    whether Chromium is there (skipped with a warning, failed in CI)."""
    from playwright.sync_api import sync_playwright

    from examples.checkout.smoke import find_chromium, launch

    with sync_playwright() as playwright:
        chromium = launch(playwright, find_chromium())
        yield chromium
        chromium.close()
