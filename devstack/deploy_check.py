"""``make deploy-check``: what deploying two stacks into one account would hit, checked
without an account.

1. **Physical names.** template.yaml is translated by SAM's translator (the one
   ``sam build``/``sam deploy`` use) once per stack name (decline-rescue-dev and
   decline-rescue-prod, samconfig.toml's, each with its samconfig parameter overrides),
   every explicit physical name is resolved (``Fn::Sub`` of ``AWS::StackName``,
   ``AWS::Region``, ``AWS::AccountId``, parameters; a resource whose name CloudFormation
   generates is unique per stack) and any two resources that would claim the same name
   in the same scope (per account and region and resource type; a schedule per schedule
   group, a rule per event bus; IAM per account; S3 everywhere) are listed: the second
   stack's create would fail on them.
2. ``sam validate --lint``.
3. ``sam build``, as ``make build`` runs it (python3.13 found the same way; without one
   this check fails instead of skipping).
4. **The built layer** (.aws-sam/build/SharedLayer): arm64 wheels only (no x86_64 shared
   object), a cpython-313 unchecked-hash ``.pyc`` beside every ``.py`` (decline_rescue
   and the dependencies), every distribution at its constraints.txt pin, and its
   unzipped size under Lambda's 250 MB.

``python -m devstack.deploy_check [--stacks a,b] [--region r] [--no-build] [-v]``; exits 1 on
any failure. Also: ``--layer-pins`` (only the built layer's pins, for ``make build``'s
post-build step) and ``--freeze-constraints`` (rewrite constraints.txt from this
virtualenv: the layer's requirements and everything they need, at the installed versions).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.template import ACCOUNT_ID, Resolver

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
CONSTRAINTS = ROOT / "constraints.txt"
LAYER_REQUIREMENTS = ROOT / "layers" / "shared" / "requirements.txt"
BUILD = ROOT / ".aws-sam" / "build"
BUILT_LAYER = BUILD / "SharedLayer"
BIN = Path(sys.executable).parent

STACKS = ("decline-rescue-dev", "decline-rescue-prod")
# Lambda: a function and all its layers, unzipped (262,144,000 bytes)
UNZIPPED_LIMIT = 250 * 1024 * 1024
# the Lambda runtime's environment markers: python3.13 on arm64 (Amazon Linux 2023)
LAMBDA_MARKERS = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "implementation_name": "cpython",
    "implementation_version": "3.13.0",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
}
CACHE_TAG = "cpython-313"
MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of 3.13
ELF_MACHINES = {183: "aarch64", 62: "x86_64", 3: "x86", 40: "arm"}


# -- pins -----------------------------------------------------------------------------------


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """constraints.txt as {canonical name: version}; anything but ``name==version`` is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise ValueError(f"{path.name}:{number}: not a plain `name==version` pin: {raw!r}")
        name = canonical(match.group(1))
        if name in pins:
            raise ValueError(f"{path.name}:{number}: {name} is pinned twice")
        pins[name] = match.group(2)
    return pins


def layer_requirements(path: Path = LAYER_REQUIREMENTS) -> list[Any]:
    """The layer's requirements (packaging ``Requirement`` objects)."""
    from packaging.requirements import Requirement

    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def closure(requirements: Iterable[Any], markers: dict[str, str] | None = None) -> dict[str, str]:
    """Every distribution these requirements need on Lambda (markers evaluated for the
    python3.13/arm64 runtime, extras honoured), from this virtualenv's metadata:
    {canonical name: installed version, or "" when it is not installed here}."""
    from importlib import metadata

    from packaging.requirements import Requirement

    environment = {**LAMBDA_MARKERS, **(markers or {})}
    extras_of: dict[str, set[str]] = {}
    versions: dict[str, str] = {}
    todo = list(requirements)
    while todo:
        req = todo.pop()
        key = canonical(req.name)
        if key in extras_of and set(req.extras) <= extras_of[key]:
            continue
        extras_of[key] = extras_of.get(key, set()) | set(req.extras)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            versions[key] = ""
            continue
        versions[key] = dist.version
        for raw in dist.requires or []:
            dep = Requirement(raw)
            if dep.marker is None or any(
                dep.marker.evaluate({**environment, "extra": extra}) for extra in extras_of[key] or {""}
            ):
                todo.append(dep)
    return dict(sorted(versions.items()))


def installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def freeze_constraints() -> str:
    """constraints.txt's text: the layer's closure at the versions installed here."""
    needed = closure(layer_requirements())
    missing = [name for name, version in needed.items() if not version]
    if missing:
        raise SystemExit(f"not installed in this virtualenv (cannot pin): {', '.join(missing)}")
    header = (
        "# Pins for the SharedLayer's dependencies and everything they need, boto3 and botocore\n"
        "# included: the versions the tests run with. Used by the development virtualenv\n"
        "# (`pip install -c constraints.txt -r requirements-dev.txt`, the Makefile) and by the\n"
        "# layer's build (layers/shared/Makefile), so Lambda runs what the tests ran.\n"
        "# Generated from the virtualenv: `.venv/bin/python -m devstack.deploy_check --freeze-constraints`\n"
        "# (after changing layers/shared/requirements.txt and installing it);\n"
        "# tests/unit/test_layer_pins.py fails when this file, the layer's requirements and\n"
        "# the virtualenv disagree.\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in needed.items())


# -- physical names -------------------------------------------------------------------------

# resource type -> (the property naming it, its scope). Scopes: "region" (per account and
# region, per type), "account" (IAM), "global" (S3); a schedule's name is unique within its
# schedule group, a rule's within its event bus.
NAME_PROPERTIES: dict[str, tuple[str, str]] = {
    "AWS::Lambda::Function": ("FunctionName", "region"),
    "AWS::Lambda::LayerVersion": ("LayerName", "region"),
    "AWS::DynamoDB::Table": ("TableName", "region"),
    "AWS::DynamoDB::GlobalTable": ("TableName", "region"),
    "AWS::SQS::Queue": ("QueueName", "region"),
    "AWS::SNS::Topic": ("TopicName", "region"),
    "AWS::Logs::LogGroup": ("LogGroupName", "region"),
    "AWS::Events::EventBus": ("Name", "region"),
    "AWS::Events::Rule": ("Name", "region"),
    "AWS::Events::Archive": ("ArchiveName", "region"),
    "AWS::Events::Connection": ("Name", "region"),
    "AWS::Events::ApiDestination": ("Name", "region"),
    "AWS::Scheduler::Schedule": ("Name", "region"),
    "AWS::Scheduler::ScheduleGroup": ("Name", "region"),
    "AWS::Pipes::Pipe": ("Name", "region"),
    "AWS::SecretsManager::Secret": ("Name", "region"),
    "AWS::SSM::Parameter": ("Name", "region"),
    "AWS::KMS::Alias": ("AliasName", "region"),
    "AWS::CloudWatch::Alarm": ("AlarmName", "region"),
    "AWS::CloudWatch::CompositeAlarm": ("AlarmName", "region"),
    "AWS::CloudWatch::Dashboard": ("DashboardName", "region"),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", "region"),
    "AWS::Kinesis::Stream": ("Name", "region"),
    "AWS::ApiGateway::DomainName": ("DomainName", "region"),
    "AWS::IAM::Role": ("RoleName", "account"),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "account"),
    "AWS::IAM::User": ("UserName", "account"),
    "AWS::IAM::Group": ("GroupName", "account"),
    "AWS::IAM::InstanceProfile": ("InstanceProfileName", "account"),
    "AWS::S3::Bucket": ("BucketName", "global"),
}
# the property naming the container a name is unique in, and its default
NAME_CONTAINERS: dict[str, tuple[str, str]] = {
    "AWS::Scheduler::Schedule": ("GroupName", "default"),
    "AWS::Events::Rule": ("EventBusName", "default"),
}
CASE_INSENSITIVE = ("AWS::IAM::",)


class Unresolved(Exception):
    """A value the check cannot know before deploying (an import, a lookup)."""


@dataclass(frozen=True)
class PhysicalName:
    stack: str
    logical_id: str
    type: str
    name: str
    scope: tuple[str, ...]  # what the name must be unique within

    @property
    def where(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass
class NameResolver(Resolver):
    """Resolves what a translated template's names are made of, for one stack: the local
    stack's intrinsic evaluator (``devstack.template.Resolver``), with names for what
    CloudFormation would generate and nothing guessed."""

    account: str = ACCOUNT_ID
    names: dict[str, str] = field(default_factory=dict)  # logical id -> resolved explicit name

    @property
    def stack(self) -> str:
        return self.stack_name

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.stack,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack}/generated",
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def generated(self, logical_id: str, attribute: str = "") -> str:
        # CloudFormation's generated names hold the stack's name and a random suffix
        return f"{{{self.stack}.{logical_id}{'.' + attribute if attribute else ''}: generated}}"

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return None
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is not None:
            if "Default" not in spec:
                raise Unresolved(f"parameter {name} has no default and no override")
            return str(spec["Default"])
        if name in self.template.get("Resources", {}):
            return self.names.get(name) or self.generated(name)
        raise Unresolved(f"Ref {name}")

    def attribute(self, logical_id: str, attribute: str) -> str:
        # a resource's name attribute is its explicit name when it has one
        rtype = self.template.get("Resources", {}).get(logical_id, {}).get("Type", "")
        if attribute in ("Name", NAME_PROPERTIES.get(rtype, ("",))[0]) and logical_id in self.names:
            return self.names[logical_id]
        return self.generated(logical_id, attribute)

    def unknown(self, key: str) -> None:
        if key.startswith("Fn::"):  # a name made of something not evaluated here: said, never guessed
            raise Unresolved(key)


def translate(raw: dict[str, Any], stack: str, region: str, parameters: dict[str, str]) -> dict[str, Any]:
    """The template as CloudFormation receives it from SAM (code locations are placeholders)."""
    from samtranslator.translator.transform import transform

    raw = copy.deepcopy(raw)
    if "Transform" not in raw:
        return raw
    for logical_id, resource in raw.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://deploy-check/{logical_id}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://deploy-check/{logical_id}.zip"

    class NoManagedPolicies:  # the translator would ask IAM for managed policies' ARNs
        def load(self) -> dict[str, str]:
            return {}

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region from boto
    try:
        values = {"AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": stack, **parameters}
        return transform(raw, values, NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


def physical_names(
    template: dict[str, Any], stack: str, region: str, parameters: dict[str, str] | None = None
) -> tuple[list[PhysicalName], list[str]]:
    """A translated template's explicit physical names for one stack, and what could not
    be resolved (a warning each)."""
    resolver = NameResolver(template, dict(parameters or {}), stack, region)
    resources = template.get("Resources", {})
    out: list[PhysicalName] = []
    unresolved: list[str] = []
    # names first (a Ref to a named resource is its name: twice, so a name made of a name
    # declared further down is right too), then the scopes that use them
    failed: dict[str, str] = {}
    for _ in range(2):
        failed.clear()
        for logical_id, resource in resources.items():
            rtype = resource.get("Type", "")
            prop = NAME_PROPERTIES.get(rtype, ("", ""))[0]
            value = resource.get("Properties", {}).get(prop) if prop else None
            if value is None:
                continue
            try:
                resolved = resolver.resolve(value)
            except (Unresolved, KeyError, IndexError, TypeError, ValueError) as exc:
                failed[logical_id] = f"{stack}/{logical_id} {prop}: {exc}"
                continue
            if resolved is not None:
                resolver.names[logical_id] = str(resolved)
    unresolved += failed.values()
    for logical_id, name in resolver.names.items():
        resource = resources[logical_id]
        rtype = resource["Type"]
        condition = resource.get("Condition")
        try:
            if condition and not resolver.condition(condition):
                continue
            container = ""
            if rtype in NAME_CONTAINERS:
                prop, default = NAME_CONTAINERS[rtype]
                container = str(resolver.resolve(resource.get("Properties", {}).get(prop)) or default)
        except (Unresolved, KeyError, IndexError, TypeError, ValueError) as exc:
            unresolved.append(f"{stack}/{logical_id}: {exc}")
            continue
        kind = NAME_PROPERTIES[rtype][1]
        where = {"region": (ACCOUNT_ID, region), "account": (ACCOUNT_ID,), "global": ()}[kind]
        scope = (kind, *where, rtype, container)
        out.append(PhysicalName(stack, logical_id, rtype, name, scope))
    return out, unresolved


def _key(name: PhysicalName) -> tuple[Any, ...]:
    text = name.name.lower() if name.type.startswith(CASE_INSENSITIVE) else name.name
    return (*name.scope, text)


def collisions(names: Iterable[PhysicalName]) -> list[tuple[PhysicalName, PhysicalName]]:
    """Every two resources that would claim the same physical name in the same scope."""
    by_key: dict[tuple[Any, ...], list[PhysicalName]] = {}
    for name in names:
        by_key.setdefault(_key(name), []).append(name)
    out = []
    for group in by_key.values():
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                out.append((first, second))
    return out


def describe_collision(first: PhysicalName, second: PhysicalName) -> str:
    container = ""
    if first.type in NAME_CONTAINERS:
        container = f" ({NAME_CONTAINERS[first.type][0]} {first.scope[-1]})"
    return f'{first.type} "{first.name}"{container}: {first.where} and {second.where}'


def samconfig_parameters(stack: str, path: Path = SAMCONFIG) -> dict[str, str]:
    """The parameter overrides samconfig.toml deploys this stack name with (its env whose
    stack_name it is), or none."""
    if not path.is_file():
        return {}
    config = tomllib.loads(path.read_text())
    for env in config.values():
        if not isinstance(env, dict):
            continue
        if env.get("global", {}).get("parameters", {}).get("stack_name") != stack:
            continue
        overrides = env.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        if isinstance(overrides, list):
            overrides = " ".join(overrides)
        pairs = (item.split("=", 1) for item in shlex.split(overrides))
        return {key: value for key, value in pairs}
    return {}


def samconfig_region(path: Path = SAMCONFIG) -> str:
    if path.is_file():
        config = tomllib.loads(path.read_text())
        region = config.get("default", {}).get("deploy", {}).get("parameters", {}).get("region")
        if region:
            return str(region)
    return "us-east-1"


def check_names(
    raw: dict[str, Any], stacks: Iterable[str], region: str, parameters: dict[str, dict[str, str]] | None = None
) -> tuple[list[PhysicalName], list[tuple[PhysicalName, PhysicalName]], list[str]]:
    """Translate the template for each stack; the explicit names, their collisions, and
    what could not be resolved."""
    names: list[PhysicalName] = []
    unresolved: list[str] = []
    for stack in stacks:
        params = (parameters or {}).get(stack, {})
        translated = translate(raw, stack, region, params)
        found, missed = physical_names(translated, stack, region, params)
        names += found
        unresolved += missed
    return names, collisions(names), unresolved


# -- the built layer ------------------------------------------------------------------------


@dataclass
class LayerReport:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    size: int = 0


def _elf_machine(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    number = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(number, f"machine {number}")


def _wheel_tags(dist_info: Path) -> list[str]:
    wheel = dist_info / "WHEEL"
    if not wheel.is_file():
        return []
    return [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]


def _tag_fits(tag: str) -> bool:
    """Can Lambda's python3.13 on arm64 load a wheel with this tag?"""
    python, abi, platform = tag.split("-")
    if platform != "any" and not platform.endswith("aarch64"):
        return False
    if abi == "none" and platform == "any":
        return any(p in ("py3", "py2.py3", "cp313") or p.startswith("py3") for p in python.split("."))
    if abi == "abi3":
        return any(p.startswith("cp3") and int(p[3:] or 0) <= 13 for p in python.split("."))
    return abi in ("cp313", "none") and "cp313" in python.split(".")


def distributions(layer_python: Path) -> dict[str, str]:
    """{canonical name: version} of the distributions installed in a layer's python/."""
    out = {}
    for dist_info in layer_python.glob("*.dist-info"):
        metadata = dist_info / "METADATA"
        fields = {}
        if metadata.is_file():
            for line in metadata.read_text(errors="replace").splitlines():
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
        name = fields.get("Name") or dist_info.name.rsplit("-", 1)[0]
        version = fields.get("Version") or dist_info.name[: -len(".dist-info")].rsplit("-", 1)[1]
        out[canonical(name)] = version
    return dict(sorted(out.items()))


def check_pins(layer_python: Path, pins: dict[str, str]) -> list[str]:
    problems = []
    installed = distributions(layer_python)
    for name, version in installed.items():
        if name not in pins:
            problems.append(f"{name} {version} is in the layer but not pinned in constraints.txt")
        elif pins[name] != version:
            problems.append(f"{name} is {version} in the layer, pinned {pins[name]} in constraints.txt")
    for name, version in pins.items():
        if name not in installed:
            problems.append(f"{name}=={version} is pinned but not in the layer")
    return problems


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def verify_layer(artifact: Path = BUILT_LAYER, pins: dict[str, str] | None = None) -> LayerReport:
    """The built layer: arm64 only, compiled, pinned, small enough."""
    report = LayerReport()
    python = artifact / "python"
    if not python.is_dir():
        report.problems.append(
            f"no built layer at {python.relative_to(ROOT) if python.is_relative_to(ROOT) else python}"
        )
        return report
    pins = read_pins() if pins is None else pins

    # arm64: every wheel's tags, and every shared object's ELF machine
    wrong_wheels = []
    for dist_info in sorted(python.glob("*.dist-info")):
        tags = _wheel_tags(dist_info)
        if tags and not any(_tag_fits(tag) for tag in tags):
            wrong_wheels.append(f"{dist_info.name} ({', '.join(tags)})")
    shared = [p for p in python.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name)]
    machines: dict[str, int] = {}
    wrong_objects = []
    for path in shared:
        machine = _elf_machine(path)
        machines[machine or "not ELF"] = machines.get(machine or "not ELF", 0) + 1
        if machine != "aarch64":
            wrong_objects.append(f"{path.relative_to(python)} ({machine or 'not ELF'})")
    report.problems += [f"wheel not for python3.13 on arm64: {w}" for w in wrong_wheels]
    report.problems += [f"shared object not aarch64: {o}" for o in wrong_objects[:20]]
    if len(wrong_objects) > 20:
        report.problems.append(f"... and {len(wrong_objects) - 20} more shared objects not aarch64")
    report.facts.append(
        f"arm64: {len(list(python.glob('*.dist-info')))} wheels, {len(shared)} shared objects "
        f"({', '.join(f'{n} {m}' for m, n in sorted(machines.items())) or 'none'})"
    )

    # bytecode: a cpython-313 unchecked-hash .pyc beside every .py
    sources = [p for p in python.rglob("*.py") if p.is_file() and "__pycache__" not in p.parts]
    missing, stale = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(python)))
            continue
        with pyc.open("rb") as fh:
            header = fh.read(8)
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != MAGIC_313 or flags != 0b01:  # hash-based, unchecked
            stale.append(str(pyc.relative_to(python)))
    in_package = sum(1 for s in sources if s.relative_to(python).parts[0] == "decline_rescue")
    if not in_package:
        report.problems.append("decline_rescue is not in the layer")
    for label, items in (("no .pyc for", missing), ("not a 3.13 unchecked-hash .pyc:", stale)):
        if items:
            shown = ", ".join(items[:10]) + (f" ... ({len(items)} in all)" if len(items) > 10 else "")
            report.problems.append(f"{label} {shown}")
    report.facts.append(
        f"bytecode: {len(sources) - len(missing) - len(stale)} of {len(sources)} modules compiled "
        f"({CACHE_TAG}, unchecked-hash; decline_rescue {in_package})"
    )

    # pins
    pin_problems = check_pins(python, pins)
    report.problems += pin_problems
    installed = distributions(python)
    report.facts.append(
        f"pins: {len(installed)} distributions, "
        + ("all at their constraints.txt pins" if not pin_problems else f"{len(pin_problems)} off their pins")
        + f" (boto3 {installed.get('boto3', 'absent')}, botocore {installed.get('botocore', 'absent')})"
    )

    # size, unzipped, with the largest function it is deployed with
    report.size = sum(p.lstat().st_size for p in artifact.rglob("*") if p.is_file() and not p.is_symlink())
    functions = [d for d in (BUILD.iterdir() if BUILD.is_dir() else []) if d.is_dir() and d.name != artifact.name]
    largest = max(
        (sum(p.lstat().st_size for p in d.rglob("*") if p.is_file()) for d in functions),
        default=0,
    )
    total = report.size + largest
    if total >= UNZIPPED_LIMIT:
        report.problems.append(
            f"layer {_size(report.size)} + largest function {_size(largest)} is over Lambda's 250 MB unzipped"
        )
    report.facts.append(
        f"size: {_size(report.size)} unzipped ({report.size:,} bytes; with the largest function "
        f"{_size(total)}, {100 * total / UNZIPPED_LIMIT:.0f}% of Lambda's 250 MB)"
    )
    return report


# -- running it -----------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def result(self, title: str, ok: bool, lines: Iterable[str] = ()) -> None:
        print(f"[{' OK ' if ok else 'FAIL'}] {title}", flush=True)
        for line in lines:
            print(f"       {line}", flush=True)
        if not ok:
            self.failed.append(title)


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[bool, str]:
    done = subprocess.run(
        args, cwd=ROOT, env={**os.environ, "SAM_CLI_TELEMETRY": "0", **(env or {})}, capture_output=True, text=True
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _tail(text: str, lines: int = 25, width: int = 400) -> list[str]:
    """The end of a command's output, each line cut to a readable width."""
    return [line if len(line) <= width else line[:width] + " ..." for line in text.splitlines()[-lines:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS), help="two (or more) stack names, comma-separated")
    parser.add_argument("--region", default=None, help="the one region (default: samconfig.toml's)")
    parser.add_argument("--no-build", action="store_true", help="verify the existing .aws-sam/build, do not build")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every explicit physical name")
    parser.add_argument("--layer-pins", action="store_true", help="only: the built layer's pins (post-build)")
    parser.add_argument("--freeze-constraints", action="store_true", help="rewrite constraints.txt from .venv")
    args = parser.parse_args(argv)

    if args.freeze_constraints:
        CONSTRAINTS.write_text(freeze_constraints())
        print(f"written: {CONSTRAINTS.relative_to(ROOT)} ({len(read_pins())} pins)")
        return 0
    if args.layer_pins:
        problems = check_pins(BUILT_LAYER / "python", read_pins())
        for problem in problems:
            print(f"SharedLayer: {problem}")
        return 1 if problems else 0

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its feature-toggle and metrics chatter
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    region = args.region or samconfig_region()
    report = Report()
    print(f"deploy check: {' and '.join(stacks)} in {region} (one account), no AWS account needed\n", flush=True)

    # 1. physical names
    from devstack.template import load_raw

    try:
        params = {stack: samconfig_parameters(stack) for stack in stacks}
        names, clashes, unresolved = check_names(load_raw(TEMPLATE), stacks, region, params)
    except Exception as exc:  # noqa: BLE001 - the report says what failed, then the next check runs
        report.result("physical names: the template does not translate", False, [f"{type(exc).__name__}: {exc}"])
    else:
        per_stack = {stack: sum(1 for n in names if n.stack == stack) for stack in stacks}
        lines = [describe_collision(a, b) for a, b in clashes]
        if clashes:
            lines.append("a second stack's create fails on these: put the stack's name in each (or let CloudFormation")
            lines.append("name them: leave the name out; a ScheduleV2 event takes OmitName: true)")
        lines += [f"unresolved (not checked): {u}" for u in unresolved]
        if args.verbose:
            lines += [f"{n.where}: {n.type} {n.name}" for n in names]
        counts = ", ".join(f"{n} in {s}" for s, n in per_stack.items())
        report.result(
            f"physical names: {len(clashes)} collision(s) among the explicit names ({counts})", not clashes, lines
        )

    # 2. lint
    ok, out = _run([str(BIN / "sam"), "validate", "--lint"])
    report.result("sam validate --lint", ok, [] if ok else _tail(out))

    # 3. build, as `make build` runs it (CI=1: without python3.13 it fails, it does not skip)
    if not args.no_build:
        ok, out = _run(["make", "--no-print-directory", "build"], env={"CI": "1"})
        report.result("sam build (make build)", ok, [] if ok else _tail(out, 40))

    # 4. the built layer
    try:
        layer = verify_layer(BUILT_LAYER, read_pins())
    except ValueError as exc:
        report.result("built layer", False, [str(exc)])
    else:
        report.result(f"built layer: {BUILT_LAYER.relative_to(ROOT)}", not layer.problems, layer.facts + layer.problems)

    print()
    if report.failed:
        print(f"deploy check FAILED: {'; '.join(report.failed)}")
        return 1
    print("deploy check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
