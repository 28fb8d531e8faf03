"""What every benchmark shares: timing statistics, result rows, the table, results.md, SVG.

A benchmark module exposes ``run(env: BenchEnv) -> list[Row]``. Each row is one figure
with its baseline measured in the same run, their ratio (or a plain value when a figure
has no baseline, e.g. writes per status change), the target and the verdict. Absolute
times on shared machines drift; ratios measured side by side do not (much).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Stats:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    def describe(self, unit: str = "ms", scale: float = 1000.0) -> str:
        return (
            f"p50 {self.median * scale:.1f} {unit}, p95 {self.p95 * scale:.1f} {unit}, "
            f"p99 {self.p99 * scale:.1f} {unit} (n={len(self.samples)})"
        )


def timed(action: Callable[[], Any], repeat: int, warmup: int = 3) -> Stats:
    """Wall-clock seconds of ``repeat`` calls, after ``warmup`` calls not counted."""
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return Stats(samples)


@dataclass
class Row:
    benchmark: str  # e.g. "cold start"
    figure: str  # e.g. "ingest_webhook first event"
    value: str  # the measured figure, formatted
    baseline: str  # the baseline, formatted ("-" when none)
    ratio: float | None  # value / baseline (None when not a ratio)
    target: str  # e.g. "<= 1.3x"
    ok: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "met" if self.ok else "MISSED"


def ratio_row(
    benchmark: str,
    figure: str,
    value: float,
    baseline: float,
    limit: float,
    *,
    unit: str = "ms",
    scale: float = 1000.0,
    note: str = "",
) -> Row:
    """A row whose target is ``value / baseline <= limit``."""
    ratio = value / baseline if baseline else math.inf
    return Row(
        benchmark,
        figure,
        f"{value * scale:.1f} {unit}",
        f"{baseline * scale:.1f} {unit}",
        ratio,
        f"<= {limit:g}x",
        ratio <= limit,
        note,
    )


@dataclass
class BenchEnv:
    """What benchmarks share: a scratch directory, and a quick mode for smoke runs."""

    quick: bool = False
    scratch: Path = ROOT / ".local" / "bench"
    notes: list[str] = field(default_factory=list)
    extra_sections: list[str] = field(default_factory=list)  # markdown appended to results.md

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def machine() -> str:
    import os

    cpus = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f"{mem:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "?"
    system = f"{platform.system()} {platform.release()}"
    return f"{platform.machine()}, {cpus} CPUs, {memory}, {system}, Python {platform.python_version()}"


def table(rows: list[Row]) -> str:
    header = ("benchmark", "figure", "value", "baseline", "ratio", "target", "verdict")
    lines = [header]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append((r.benchmark, r.figure, r.value, r.baseline, ratio, r.target, r.verdict))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(str(cell).ljust(widths[j]) for j, cell in enumerate(line)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(rows: list[Row], env: BenchEnv, started: str, seconds: float) -> str:
    lines = [
        "# decline-rescue benchmarks",
        "",
        f"Measured {started} on {machine()}, in {seconds:.0f} s (`make bench`"
        + (", quick mode" if env.quick else "")
        + "). Every figure is compared with a baseline measured in the same run; ratios, not "
        "absolute times, are the result (absolute times on a shared machine drift).",
        "",
        "| benchmark | figure | value | baseline | ratio | target | verdict | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        note = r.note.replace("|", "/")
        lines.append(
            f"| {r.benchmark} | {r.figure} | {r.value} | {r.baseline} | {ratio} | {r.target} | {r.verdict} | {note} |"
        )
    if env.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in env.notes]
    for section in env.extra_sections:
        lines += ["", section.rstrip()]
    return "\n".join(lines) + "\n"


def svg_lines(
    title: str,
    x_label: str,
    y_label: str,
    series: dict[str, list[tuple[float, float]]],
    *,
    width: int = 640,
    height: int = 360,
) -> str:
    """A small line chart as SVG (no plotting library needed)."""
    pad_l, pad_r, pad_t, pad_b = 70, 170, 40, 50
    points = [p for s in series.values() for p in s]
    x_max = max((x for x, _ in points), default=1) or 1
    y_max = max((y for _, y in points), default=1) or 1
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]

    def sx(x: float) -> float:
        return pad_l + x / x_max * (width - pad_l - pad_r)

    def sy(y: float) -> float:
        return height - pad_b - y / y_max * (height - pad_t - pad_b)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2 - pad_r / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" stroke="black"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="black"/>',
        f'<text x="{(pad_l + width - pad_r) / 2}" y="{height - 12}" text-anchor="middle">{x_label}</text>',
        f'<text x="16" y="{(pad_t + height - pad_b) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(pad_t + height - pad_b) / 2})">{y_label}</text>',
    ]
    for i in range(5):
        yv = y_max * i / 4
        xv = x_max * i / 4
        parts.append(f'<text x="{pad_l - 6}" y="{sy(yv) + 4}" text-anchor="end">{yv:,.0f}</text>')
        parts.append(f'<text x="{sx(xv)}" y="{height - pad_b + 16}" text-anchor="middle">{xv:,.0f}</text>')
    for n, (name, pts) in enumerate(series.items()):
        color = colors[n % len(colors)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<rect x="{width - pad_r + 15}" y="{pad_t + n * 20}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{width - pad_r + 32}" y="{pad_t + n * 20 + 11}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
