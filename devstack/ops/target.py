"""Which stack the CLI works on, and its resources.

- ``--stack NAME [--region R] [--profile P]``: a deployed stack, found with CloudFormation
  (``DescribeStacks``: its parameters and outputs; ``ListStackResources``: the physical id
  of every logical id of template.yaml). boto3's usual configuration applies (credentials
  chain, ``AWS_ENDPOINT_URL``).
- ``--local [--local-file PATH]``: the local stack of ``make local``, from the file it
  writes while it runs (``devstack.ops.localstate``).

The CLI reads and writes through the shared layer's own code (the orders store, the
single writer, the poller's planning, the FlexFactor client), configured as the
template configures the functions: ``Target.environment()`` is the settings a function
of that stack is given, and ``activated`` puts them in place for one command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.ops import localstate
from devstack.ops.render import OpsError

# logical id -> the setting a function gets it in (template.yaml's Environment)
RESOURCE_SETTINGS = {
    "OrdersTable": "ORDERS_TABLE",
    "OrderUpdatesQueue": "ORDER_UPDATES_QUEUE_URL",
    "OrderUpdatesDeadLetterQueue": "ORDER_UPDATES_DLQ_URL",
    "DeclinesQueue": "DECLINES_QUEUE_URL",
    "DeclinesDeadLetterQueue": "DECLINES_DLQ_URL",
    "FlexFactorSecret": "FLEXFACTOR_SECRET_ID",
}
# template parameter -> the poller's setting (resync plans as the poller does)
PARAMETER_SETTINGS = {
    "FlexFactorBaseUrl": "FLEXFACTOR_BASE_URL",
    "ProviderBudgetSeconds": "FLEXFACTOR_BUDGET_SECONDS",
    "PollFirstDelaySeconds": "POLL_FIRST_DELAY_SECONDS",
    "PollMaxIntervalSeconds": "POLL_MAX_INTERVAL_SECONDS",
    "QueuedResendSeconds": "QUEUED_RESEND_SECONDS",
    "ExpiryGraceSeconds": "EXPIRY_GRACE_SECONDS",
    "PendingMaxHours": "PENDING_MAX_HOURS",
}
# outputs that name a resource too (a stack's resources may be listed without them)
OUTPUT_RESOURCES = {
    "DeclinesQueueUrl": "DeclinesQueue",
    "DeclinesDeadLetterQueueUrl": "DeclinesDeadLetterQueue",
    "OrderUpdatesDeadLetterQueueUrl": "OrderUpdatesDeadLetterQueue",
    "OrderEventsFailureQueueUrl": "OrderEventsFailureQueue",
    "FlexFactorSecretArn": "FlexFactorSecret",
    "OrderEventBusName": "OrderEventBus",
}
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
HEALTHY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")


@dataclass
class Target:
    kind: str  # "stack" | "local"
    name: str
    region: str
    physical_ids: dict[str, str]
    parameters: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    endpoint_url: str | None = None  # the local stack's moto server
    gateway_url: str | None = None  # the local gateway (its /__local/events)
    profile: str | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"local stack {self.name} ({self.endpoint_url})"
        return f"stack {self.name} ({self.region})"

    def resource(self, logical_id: str) -> str:
        value = self.physical_ids.get(logical_id)
        if not value:
            raise OpsError(f"{self.describe()} has no {logical_id} (is it a decline-rescue stack?)")
        return value

    def session(self):
        import boto3

        if self.kind == "local":
            return boto3.session.Session(
                aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=self.region,
            )
        return boto3.session.Session(profile_name=self.profile, region_name=self.region)

    def client(self, service: str):
        from botocore.config import Config

        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        return self.session().client(service, endpoint_url=self.endpoint_url, config=config)

    def environment(self) -> dict[str, str]:
        """The settings the shared layer reads, as the template gives them to the functions."""
        env = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # the functions report metrics; an operator's command prints none (EMF on stdout)
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "DeclineRescue",
            "POWERTOOLS_SERVICE_NAME": os.environ.get("POWERTOOLS_SERVICE_NAME") or "decline-rescue",
            "AWS_READ_TIMEOUT_SECONDS": "15",  # an operator's reads may be larger than a function's
        }
        for logical_id, name in RESOURCE_SETTINGS.items():
            if self.physical_ids.get(logical_id):
                env[name] = self.physical_ids[logical_id]
        for parameter, name in PARAMETER_SETTINGS.items():
            value = self.parameters.get(parameter)
            if value not in (None, "", "****"):
                env[name] = str(value)
        if self.kind == "local":
            env.update({"AWS_ENDPOINT_URL": str(self.endpoint_url), **LOCAL_CREDENTIALS})
        elif self.profile:
            env["AWS_PROFILE"] = self.profile
        return env


@contextlib.contextmanager
def activated(target: Target) -> Iterator[None]:
    """The target's settings in this process for one command, and the layer's clients and
    caches made afresh for them; everything as it was afterwards (the CLI runs in tests'
    processes too)."""
    from decline_rescue.runtime import wiring
    from decline_rescue.runtime.observability import logger, metrics

    env = target.environment()
    # locally: the local credentials, not a profile's
    drop = ("AWS_PROFILE", "AWS_SESSION_TOKEN") if target.kind == "local" else ()
    saved = {name: os.environ.get(name) for name in (*env, *drop)}
    level = logger.log_level
    os.environ.update(env)
    for name in drop:
        os.environ.pop(name, None)
    wiring.reset()
    logger.setLevel("ERROR")  # the services' info lines are for the functions' logs, not the terminal
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        wiring.reset()
        logger.setLevel(level)
        with contextlib.suppress(Exception):
            metrics.clear_metrics()  # (never flushed from here: the functions report theirs)


# -- finding the stack --------------------------------------------------------------------


def resolve(*, stack: str | None, local: bool, local_file: str | None, region: str | None, profile: str | None):
    if stack and local:
        raise OpsError("--stack and --local exclude each other: name one stack", code=2)
    if local:
        return from_local(Path(local_file) if local_file else None)
    if stack:
        return from_cloudformation(stack, region=region, profile=profile)
    raise OpsError(
        "which stack? --stack NAME (a deployed stack, with --region) or --local (the stack `make local` runs)", code=2
    )


def from_local(path: Path | None = None) -> Target:
    import httpx

    try:
        state = localstate.read(path)
    except localstate.NoLocalStack as exc:
        raise OpsError(str(exc)) from None
    endpoints = state.get("endpoints") or {}
    aws = str(endpoints["aws"])
    try:
        httpx.get(aws + "/moto-api/", timeout=3.0)
    except httpx.HTTPError:
        raise OpsError(
            f"no local stack running: {path or localstate.default_path()} names moto at {aws}, which does not answer"
        ) from None
    return Target(
        kind="local",
        name=str(state.get("stackName") or "local"),
        region=str(state.get("region") or "us-east-1"),
        physical_ids={k: str(v) for k, v in (state.get("physicalIds") or {}).items()},
        parameters={k: str(v) for k, v in (state.get("parameters") or {}).items()},
        outputs={k: str(v) for k, v in (state.get("outputs") or {}).items()},
        endpoint_url=aws,
        gateway_url=endpoints.get("gateway"),
    )


def from_cloudformation(name: str, *, region: str | None = None, profile: str | None = None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise OpsError(str(exc)) from None
    region = session.region_name
    if not region:
        raise OpsError("no region: pass --region or set AWS_REGION", code=2)
    target = Target(kind="stack", name=name, region=region, physical_ids={}, profile=profile)
    cloudformation = target.client("cloudformation")
    try:
        found = cloudformation.describe_stacks(StackName=name)["Stacks"]
        resources: dict[str, str] = {}
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
            for summary in page.get("StackResourceSummaries", []):
                if summary.get("PhysicalResourceId"):
                    resources[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise OpsError(f"no such stack: {name} in {region}") from None
        raise OpsError(f"CloudFormation refused to describe {name}: {message}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise OpsError(f"cannot reach AWS: {exc}") from None
    except BotoCoreError as exc:
        raise OpsError(f"cannot reach CloudFormation in {region}: {exc}") from None
    if not found:
        raise OpsError(f"no such stack: {name} in {region}")
    described: dict[str, Any] = found[0]
    status = str(described.get("StackStatus", ""))
    if status not in HEALTHY:
        import sys

        print(f"decline-rescue: warning: stack {name} is {status}", file=sys.stderr)
    target.parameters = {
        p["ParameterKey"]: str(p.get("ResolvedValue") or p.get("ParameterValue") or "")
        for p in described.get("Parameters", [])
    }
    target.outputs = {o["OutputKey"]: str(o["OutputValue"]) for o in described.get("Outputs", [])}
    for output, logical_id in OUTPUT_RESOURCES.items():
        if target.outputs.get(output):
            resources.setdefault(logical_id, target.outputs[output])
    target.physical_ids = resources
    if "OrdersTable" not in resources:
        raise OpsError(f"stack {name} in {region} has no OrdersTable: is it a decline-rescue stack?")
    return target
