"""The layout is the architecture (README, "Layout"): these rules keep it so, read from
the source of the shared package with ``ast`` (every import counts, lazy ones included).

- ``domain`` is pure: no AWS, HTTP, settings, infrastructure, providers or services;
- only ``infra`` and ``providers`` talk to botocore or httpx (``runtime.wiring`` builds
  them lazily, so it names their modules);
- services do not import each other's internals beyond what the flows need, and nothing
  imports a service but handlers, services and the wiring;
- only the events publisher imports the EventBridge adapter;
- no import cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "decline_rescue"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}
IMPORTS = {name: {i for i in _imports(path)} for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    """The package's modules ``name`` imports (``from x import y`` names y when y is a module)."""
    return {i for i in IMPORTS[name] if i in MODULES and i != name}


def _layer(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "domain"))
def test_the_domain_is_pure(name):
    forbidden = ("boto3", "botocore", "httpx", "decline_rescue.infra", "decline_rescue.providers")
    forbidden += ("decline_rescue.services", "decline_rescue.runtime")
    assert sorted(i for i in IMPORTS[name] if i.startswith(forbidden)) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_infra_and_providers_talk_to_aws_and_http(name):
    if _layer(name) in ("infra", "providers"):
        return
    assert sorted(i for i in IMPORTS[name] if i.split(".")[0] in ("boto3", "botocore", "httpx")) == []


def test_only_the_publisher_uses_the_event_bus():
    users = sorted(n for n in MODULES if "decline_rescue.infra.events" in IMPORTS[n])
    assert users == ["decline_rescue.services.order_events"]


def test_services_are_used_by_services_and_the_wiring_only():
    for name in MODULES:
        if _layer(name) in ("domain", "infra", "providers"):
            assert sorted(i for i in _internal(name) if _layer(i) == "services") == [], name


def test_there_are_no_import_cycles():
    seen: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for nxt in sorted(_internal(name)):
            if seen.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [name, nxt])
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[name] = 2

    for name in sorted(MODULES):
        if name not in seen:
            visit(name, [name])
    # a package's __init__ importing nothing of its own never closes a cycle
    assert cycles == []
