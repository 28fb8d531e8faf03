"""PARAMETER_OVERRIDES on the local stack: applied over the local stack's own values and
the template's Defaults, said in the log; refused, before anything starts, with
CloudFormation's message and a non-zero exit, by `make local` (python -m devstack) and
`make demo` (python -m devstack.demo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.stack import LocalStack, StackConfig

ROOT = Path(__file__).resolve().parents[2]


def test_overrides_reach_the_functions_and_the_log(tmp_path):
    log_file = tmp_path / "stack.log"
    config = StackConfig.ephemeral(
        echo_logs=False,
        log_file=log_file,
        # LogLevel has only a Default; AmountMinExclusiveCents is one the local stack sets (10)
        parameter_overrides={"LogLevel": "DEBUG", "AmountMinExclusiveCents": "50", "PollConcurrency": "3"},
    )
    with LocalStack(config) as stack:
        assert stack.stack is not None
        evaluate = stack.stack.functions["EvaluateDeclineFunction"].environment
        assert evaluate["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
        assert evaluate["AMOUNT_MIN_EXCLUSIVE_CENTS"] == "50"
        assert stack.stack.functions["PollOrdersFunction"].environment["POLL_CONCURRENCY"] == "3"
        summary = "LogLevel=DEBUG, AmountMinExclusiveCents=50 (instead of the local stack's 10), PollConcurrency=3"
        assert f"  parameters    PARAMETER_OVERRIDES: {summary}" in stack.describe()
    assert f"[parameters] PARAMETER_OVERRIDES: {summary}\n" in log_file.read_text(encoding="utf-8")


def _run(module: str, overrides: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARAMETER_OVERRIDES": overrides, "DEMO_LOG_FILE": str(tmp_path / "demo.log")}
    return subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_demo_refuses_an_invalid_override_before_anything_starts(tmp_path):
    result = _run("devstack.demo", "LogRetentionDays=2 MitMaxAgeHours=0", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-3:] == [
        "template parameters refused, nothing started:",
        "  Parameter 'MitMaxAgeHours' must be a number not less than 1 (the value from PARAMETER_OVERRIDES)",
        "  Parameter 'LogRetentionDays' must be one of AllowedValues (the value from PARAMETER_OVERRIDES)",
    ]
    assert "Traceback" not in result.stderr
    assert (tmp_path / "demo.log").read_text(encoding="utf-8") == ""  # no process wrote a line


def test_unreadable_overrides_and_unknown_parameters_are_refused(tmp_path):
    unreadable = _run("devstack", 'Stage="qa', tmp_path)
    assert unreadable.returncode == 1
    assert unreadable.stderr.startswith(
        'PARAMETER_OVERRIDES: Stage="qa (at character 1) is not a valid format (a quote is not closed).'
    )
    unknown = _run("devstack.demo", "ParameterKey=Nope,ParameterValue='a b'", tmp_path)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().endswith("Parameters: [Nope] do not exist in the template (from PARAMETER_OVERRIDES)")
