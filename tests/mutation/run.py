"""Run the mutation tests: ``python -m tests.mutation.run [--smoke] [--modules a,b] [--workers N]``.

Each mutant (``tests.mutation.mutate``) is applied in a private copy of the work tree
(never in the tree itself: other tests may be running there), and the module's tests
(``config.MODULES``) run against it in a fresh pytest process, stopping at the first
failure, with a timeout. A mutant is *caught* when a test fails (or errors, or the
module no longer imports, or the run times out) and *survives* when every test passes.

- full run (``make mutation``): every module, writes ``tests/mutation/results.md`` and
  ``results.json``; exits non-zero when a module misses its target (90%, card data 95%);
- ``--smoke`` (CI): a fixed, seeded sample of the card-data and webhook mutants (known
  equivalents left out); exits non-zero when any of them survives;
- ``--rerun-survivors``: only the mutants that survived the last full run (after adding
  tests), results merged into ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.mutation import config
from tests.mutation.mutate import Mutant, apply_json, apply_python, json_mutants, python_mutants

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
TARGET = {"carddata": 0.95}
DEFAULT_TARGET = 0.90
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".venv-sdk", ".aws-sam", ".local", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".hypothesis", "node_modules", "*.egg-info", ".mutation-*",
)  # fmt: skip


def mutants_of(name: str) -> list[tuple[Mutant, dict]]:
    """Every mutant of a module group, with the file entry it belongs to."""
    out = []
    for entry in config.MODULES[name]["files"]:
        text = (ROOT / entry["path"]).read_text()
        if entry["path"].endswith(".json"):
            found = json_mutants(name, text, entry["json_paths"])
        else:
            found = python_mutants(name, text, entry.get("scopes"))
        short = Path(entry["path"]).stem
        for m in found:
            out.append((Mutant(m.module, m.index, m.variant, m.line, f"{short}.{m.scope}", m.operator,
                               m.description, f"{short}.{m.key}"), entry))  # fmt: skip
    return out


def sample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or len(items) <= limit:
        return items
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


class Workers:
    """Private copies of the work tree, one per worker, handed out one at a time."""

    def __init__(self, count: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mutation-"))
        self.free: queue.Queue[Path] = queue.Queue()
        for i in range(count):
            copy = self.base / f"w{i}"
            shutil.copytree(ROOT, copy, ignore=_IGNORED, symlinks=True)
            self.free.put(copy)

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _pytest(copy: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout', and the seconds it took."""
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # (schemathesis' plugin alone costs seconds per run)
        "PYTHONHASHSEED": "0",
    }
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout",
           "-p", "_hypothesis_pytestplugin", "--timeout", str(int(timeout)), *tests]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", time.monotonic() - started
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # (a moto server left behind)
        except ProcessLookupError:
            pass
    if rc == 5:
        raise RuntimeError(f"no tests collected: {tests}")
    return ("passed" if rc == 0 else "failed"), time.monotonic() - started


def run_mutant(workers: Workers, mutant: Mutant, entry: dict, tests: list[str], timeout: float) -> dict:
    copy = workers.free.get()
    target = copy / entry["path"]
    original = target.read_text()
    try:
        if entry["path"].endswith(".json"):
            mutated = apply_json(original, mutant, entry["json_paths"])
        else:
            mutated = apply_python(original, mutant, entry.get("scopes"))
        target.write_text(mutated)
        outcome, seconds = _pytest(copy, tests, timeout)
    finally:
        target.write_text(original)
        workers.free.put(copy)
    return {
        "key": mutant.key,
        "line": mutant.line,
        "file": entry["path"],
        "operator": mutant.operator,
        "label": mutant.description,
        "scope": mutant.scope,
        "status": "survived" if outcome == "passed" else ("timeout" if outcome == "timeout" else "caught"),
        "seconds": round(seconds, 1),
    }


def baseline(workers: Workers, tests: list[str]) -> float:
    copy = workers.free.get()
    try:
        outcome, seconds = _pytest(copy, tests, 900)
    finally:
        workers.free.put(copy)
    if outcome != "passed":
        raise SystemExit(f"the unmutated tests do not pass ({outcome}): {' '.join(tests)}")
    return seconds


def run_module(workers: Workers, name: str, picked: list[tuple[Mutant, dict]], jobs: int) -> tuple[list[dict], float]:
    spec = config.MODULES[name]
    base = baseline(workers, spec["tests"])
    timeout = max(spec["timeout"], base * 2 + 20)
    print(f"{name}: {len(picked)} mutants, baseline {base:.0f}s, timeout {timeout:.0f}s", flush=True)
    results = []
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_mutant, workers, m, e, spec["tests"], timeout) for m, e in picked]
        for future in futures:
            r = future.result()
            results.append(r)
            if r["status"] == "survived":
                print(f"  survived: {r['file'].split('/')[-1]}:{r['line']} {r['key']}", flush=True)
    return results, base


def summarise(name: str, results: list[dict]) -> dict:
    equivalent = config.EQUIVALENT.get(name, {})
    caught = sum(1 for r in results if r["status"] != "survived")
    eq = sum(1 for r in results if r["status"] == "survived" and r["key"] in equivalent)
    non_eq = len(results) - eq
    return {
        "mutants": len(results),
        "caught": caught,
        "equivalent": eq,
        "score": caught / non_eq if non_eq else 1.0,
        "target": TARGET.get(name, DEFAULT_TARGET),
    }


def write_markdown(data: dict) -> None:
    lines = [
        "# Mutation testing results",
        "",
        "Command: `make mutation` (`python -m tests.mutation.run`: every module; `--modules a,b` for some,",
        "`--rerun-survivors` to run only the last run's survivors again after adding tests; each module's",
        "own run, date and time are under its heading)  ",
        f"Last written: {data['date']}  ",
        "Tool: `tests/mutation/mutate.py` + `run.py`, our own AST mutator: mutmut 3 never mutates module-level "
        "statements (the data tables this run is about) and cosmic-ray mutates files in place and has no operator "
        "that removes a set or dict element, deletes a statement or changes a string (details in `mutate.py`).",
        "",
        "How to read it: each mutant is a one-line change of the module; *caught* means a test "
        "failed (or the run timed out, or the module stopped importing); *equivalent* mutants "
        "cannot be told from the original by any test (each is listed with why); the score is "
        "caught / (mutants - equivalent). Modules with more mutants than their cap were "
        "sampled (seeded, the same sample every run). The target is 90% (card data 95%).",
        "",
        "| module | mutants (of all) | caught | equivalent | score | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, mod in data["modules"].items():
        s = summarise(name, mod["results"])
        ok = "met" if s["score"] >= s["target"] else "**missed**"
        lines.append(
            f"| {config.MODULES[name]['title']} (`{name}`) | {s['mutants']} ({mod['total']}) | {s['caught']} | "
            f"{s['equivalent']} | {s['score']:.1%} | {s['target']:.0%} {ok} |"
        )
    lines += ["", *config.NOTES.splitlines()]
    missing = [n for n in config.MODULES if n not in data["modules"]]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    for name, mod in data["modules"].items():
        spec = config.MODULES[name]
        lines += ["", f"## {spec['title']} (`{name}`)", ""]
        lines.append("Files: " + ", ".join(f"`{f['path']}`" for f in spec["files"]) + "  ")
        lines.append("Tests: " + ", ".join(f"`{t}`" for t in spec["tests"]) + "  ")
        lines.append(
            f"Baseline test time {mod['baseline']:.0f}s; {mod['total']} mutants generated, {len(mod['results'])} run.  "
        )
        if mod.get("run"):
            lines.append(f"Run: `{mod['run']}` on {mod['date']} ({mod['minutes']} min)")
        equivalent = config.EQUIVALENT.get(name, {})
        survivors = [r for r in mod["results"] if r["status"] == "survived"]
        eq = [r for r in survivors if r["key"] in equivalent]
        alive = [r for r in survivors if r["key"] not in equivalent]
        if alive:
            lines += ["", "Surviving, not equivalent (not yet killed):", ""]
            lines += [f"- `{r['file'].split('/')[-1]}:{r['line']}` {r['key']}" for r in alive]
        if eq:
            lines += ["", "Surviving, equivalent:", ""]
            lines += [f"- `{r['file'].split('/')[-1]}:{r['line']}` {r['key']}: {equivalent[r['key']]}" for r in eq]
        killed = config.KILLED_BY.get(name, {})
        now_caught = [r for r in mod["results"] if r["key"] in killed and r["status"] != "survived"]
        if now_caught:
            lines += ["", "Survivors of an earlier run, killed by a new test:", ""]
            lines += [
                f"- `{r['file'].split('/')[-1]}:{r['line']}` {r['key']}: `{killed[r['key']]}`" for r in now_caught
            ]
    RESULTS_MD.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--modules", default=",".join(config.MODULES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rerun-survivors", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--report", action="store_true", help="write results.md again from results.json")
    args = parser.parse_args(argv)
    names = [n for n in args.modules.split(",") if n]
    if args.report:
        write_markdown(json.loads(RESULTS_JSON.read_text()))
        return 0

    if args.list:
        for name in names:
            every = mutants_of(name)
            picked = sample(every, config.MODULES[name]["max_mutants"], config.SEED)
            print(f"{name}: {len(picked)} of {len(every)}")
            for m, _ in picked:
                print(f"  {m.line:4d} [{m.operator}] {m.key}")
        return 0

    workers = Workers(args.workers)
    started = time.monotonic()
    try:
        if args.smoke:
            return smoke(workers, args.workers)
        data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"modules": {}}
        for name in names:
            every = mutants_of(name)
            picked = sample(every, config.MODULES[name]["max_mutants"], config.SEED)
            if args.rerun_survivors and name in data["modules"]:
                old = data["modules"][name]["results"]
                again = {r["key"] for r in old if r["status"] == "survived"}
                redo = [(m, e) for m, e in picked if m.key in again]
                new, base = run_module(workers, name, redo, args.workers)
                by_key = {r["key"]: r for r in new}
                results = [by_key.get(r["key"], r) for r in old]
            else:
                results, base = run_module(workers, name, picked, args.workers)
            data["modules"][name] = {
                "total": len(every),
                "baseline": base,
                "results": results,
                "run": "python -m tests.mutation.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "minutes": round((time.monotonic() - started) / 60, 1),
            }
            s = summarise(name, results)
            print(
                f"{name}: {s['caught']}/{s['mutants']} caught, {s['equivalent']} equivalent, {s['score']:.1%}",
                flush=True,
            )
            data.update(
                command="python -m tests.mutation.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                workers=args.workers,
                minutes=(time.monotonic() - started) / 60 + (0 if not args.rerun_survivors else data.get("minutes", 0)),
            )
            if RESULTS_JSON.exists():  # (another run may have written other modules meanwhile)
                data["modules"] = {**json.loads(RESULTS_JSON.read_text())["modules"], name: data["modules"][name]}
            data["modules"] = {n: data["modules"][n] for n in config.MODULES if n in data["modules"]}
            RESULTS_JSON.write_text(json.dumps(data, indent=1) + "\n")
            write_markdown(data)
        missed = [
            n
            for n in data["modules"]
            if summarise(n, data["modules"][n]["results"])["score"] < TARGET.get(n, DEFAULT_TARGET)
        ]
        if missed:
            print("below target: " + ", ".join(missed))
            return 1
        return 0
    finally:
        workers.close()


def smoke(workers: Workers, jobs: int) -> int:
    """A fixed sample of the card-data and webhook mutants; any survivor fails."""
    spec = config.SMOKE
    failed = 0
    for name in spec["modules"]:
        equivalent = config.EQUIVALENT.get(name, {})
        pool = [(m, e) for m, e in sample(mutants_of(name), config.MODULES[name]["max_mutants"], config.SEED)
                if m.key not in equivalent]  # fmt: skip
        picked = sample(pool, spec["sample"] // len(spec["modules"]), spec["seed"])
        results, _ = run_module(workers, name, picked, jobs)
        alive = [r for r in results if r["status"] == "survived"]
        print(f"smoke {name}: {len(results) - len(alive)} of {len(results)} mutants caught")
        for r in alive:
            print(f"  SURVIVED {r['file']}:{r['line']} {r['key']}")
        failed += len(alive)
    print(f"mutation smoke: {'FAILED' if failed else 'passed'} ({failed} surviving)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
