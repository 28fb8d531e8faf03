"""Where a running local stack says it is: ``.local/stack.json``.

``make local`` (``python -m devstack``) writes it once the stack is up and removes it when
the stack stops: the process id, the endpoints (moto, the gateway, the emulators), the
template's physical ids and parameters. ``decline-rescue --local`` reads it; a file left
by a stack that was killed (its process is gone, or moto does not answer) is reported as
no local stack running. Nothing secret is written (the provider credentials stay in the
stack's secrets).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = ROOT / ".local" / "stack.json"
STATE_FILE_ENV = "DECLINE_RESCUE_LOCAL_FILE"  # another path (a second local stack, tests)
VERSION = 1


class NoLocalStack(Exception):
    """No local stack is running (no file, a stale file, or one that cannot be read)."""


def default_path() -> Path:
    value = os.environ.get(STATE_FILE_ENV, "").strip()
    return Path(value) if value else STATE_FILE


def write(path: Path, description: dict[str, Any]) -> None:
    """Write the description atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"version": VERSION, **description}, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def remove(path: Path, pid: int) -> None:
    """Remove the file if it describes the stack of process ``pid`` (never another's)."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def read(path: Path | None = None) -> dict[str, Any]:
    """The running local stack's description; NoLocalStack saying why there is none."""
    path = path or default_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NoLocalStack(f"no local stack running ({path} does not exist): start one with `make local`") from None
    except OSError as exc:
        raise NoLocalStack(f"no local stack: {path} cannot be read ({exc.strerror})") from None
    try:
        state = json.loads(text)
        pid = int(state["pid"])
        if not state["endpoints"]["aws"]:  # the one endpoint every command needs
            raise ValueError("no aws endpoint")
    except (ValueError, KeyError, TypeError):
        raise NoLocalStack(f"no local stack: {path} is not a local stack's description") from None
    if state.get("version") != VERSION:
        raise NoLocalStack(f"no local stack: {path} has version {state.get('version')}, expected {VERSION}")
    if not alive(pid):
        raise NoLocalStack(
            f"no local stack running: {path} was left by a stack that stopped (process {pid} is gone); "
            "start one with `make local`"
        )
    return state
