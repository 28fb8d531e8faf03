"""``make bench``: run every benchmark, print the table, write bench/results.md.

``python -m bench [--quick] [--only name,name]``; names: cold_start, capture_context,
declines, webhooks, polling, cost, events.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from datetime import UTC, datetime

from bench.core import ROOT, BenchEnv, Row, markdown, table

BENCHMARKS = ("cold_start", "capture_context", "declines", "webhooks", "polling", "cost", "events")


def main() -> int:
    parser = argparse.ArgumentParser(description="decline-rescue benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite bench/results.md")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    env = BenchEnv(quick=args.quick)
    env.scratch.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    rows: list[Row] = []
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            produced = module.run(env)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        rows.extend(produced)
        for row in produced:
            print(f"   {row.figure}: {row.value} vs {row.baseline} -> {row.verdict}", flush=True)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - started
    print()
    print(table(rows))
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    if not args.no_write and not args.only:
        (ROOT / "bench" / "results.md").write_text(markdown(rows, env, started_at, seconds))
        print(f"\nwritten: bench/results.md ({seconds:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
