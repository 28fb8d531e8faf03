"""What a handler imports on a cold start (``bench/cold_start.py`` measures the time; this
keeps the heavy modules out): each handler module is imported in a fresh interpreter,
as Lambda does, and must not have brought in what it does not need before its first
event. And the tracer: off, it leaves the handler alone and never imports the X-Ray
SDK; on (deployed, ``POWERTOOLS_TRACE_DISABLED`` unset), the handler is traced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"

NEVER = (
    "aws_xray_sdk",  # tracing is off locally; on AWS the real Tracer imports it
    "boto3",  # clients come from botocore alone (infra.aws)
    "aws_lambda_powertools.event_handler",  # decline_rescue.runtime.router routes
    "aws_lambda_powertools.utilities.batch",  # decline_rescue.runtime.batch
    "aws_lambda_powertools.utilities.parameters",  # infra.secrets
)
FUNCTIONS = {
    "apply_order_update": ("pydantic", "httpx"),
    "ingest_webhook": ("pydantic", "httpx"),
    "poll_orders": ("pydantic",),
    "dispatch_polls": ("pydantic", "httpx"),
    "publish_order_events": ("pydantic", "httpx"),
    "orders_api": ("pydantic",),
    "issue_capture_context": ("pydantic",),
    "evaluate_decline": (),
}


def _imported(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_a_handler_imports_only_what_it_needs(function):
    code = (
        f"import json, sys; sys.path[0:0] = [{str(ROOT / 'functions' / function)!r}, {str(LAYER)!r}]\n"
        "import app\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(_imported(code, {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "t"}))
    unwanted = [m for m in (*NEVER, *FUNCTIONS[function]) if m in modules]
    assert unwanted == []


TRACED = """
import json, sys
sys.path[0:0] = [{layer!r}]
from decline_rescue.runtime.observability import tracer

def handler(event, context):
    return {{"echo": event}}

before = "aws_xray_sdk" in sys.modules
wrapped = tracer.capture_lambda_handler(handler)
print(json.dumps({{
    "before": before,
    "after": "aws_xray_sdk" in sys.modules,
    "wrapped": wrapped is not handler,
    "answer": wrapped(1, None),
}}))
"""


def test_tracing_off_leaves_the_handler_alone():
    seen = _imported(TRACED.format(layer=str(LAYER)), {"POWERTOOLS_TRACE_DISABLED": "true"})
    assert seen == {"before": False, "after": False, "wrapped": False, "answer": {"echo": 1}}


def test_tracing_on_in_lambda_traces_the_handler():
    lambda_env = {
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "traced",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "POWERTOOLS_SERVICE_NAME": "t",
    }
    seen = _imported(TRACED.format(layer=str(LAYER)), lambda_env)
    assert seen == {"before": False, "after": True, "wrapped": True, "answer": {"echo": 1}}
