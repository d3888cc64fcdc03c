"""Showing a suite run: a rich table on the terminal, a JSON file, a Markdown table."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from hub.bench.machine import describe_machine
from hub.bench.results import BenchResult, SideResult, SizeResult, SuiteResult

WIDE = 150
"""Console width when the output is not a terminal (CI logs, pipes): nothing cut."""

HEADERS = ["benchmark", "size", "path/s", "floor/s", "path÷floor", "µs/item", "peak MB", "met"]
"""Columns of the table: rates are medians ± half the spread of the rounds; peak MB is the
resident-set high-water mark of the path's and the floor's child process."""


def _rate(side: SideResult | None) -> str:
    if side is None or not side.rounds:
        return "—"
    return f"{side.median_rate:,.0f} ±{side.spread / 2:.0%}"


def _peak(size: SizeResult) -> str:
    path = f"{size.path.peak_rss_kb / 1024:,.0f}" if size.path else "—"
    if size.floor is None:
        return path
    return f"{path} / {size.floor.peak_rss_kb / 1024:,.0f}"


def _met(size: SizeResult) -> str:
    if size.status != "ok":
        return size.status
    met = size.met
    if met is None:
        return "—"
    if met:
        return "yes"
    return "no: " + ", ".join(c.what for c in size.checks if not c.met)


def _size(bench: BenchResult, size: SizeResult) -> str:
    if bench.size_unit and bench.size_unit != bench.unit:
        return f"{size.size:,} {bench.size_unit}"
    return f"{size.size:,}"


def rows(suite: SuiteResult) -> list[list[str]]:
    """One row of strings per benchmark size (shared by the terminal and Markdown tables)."""
    out: list[list[str]] = []
    for bench in suite.benchmarks:
        for size in bench.sizes:
            ratio = size.ratio
            out.append(
                [
                    bench.name,
                    _size(bench, size),
                    _rate(size.path),
                    _rate(size.floor),
                    f"{ratio:.0%}" if ratio is not None else "—",
                    f"{size.path.us_per_item:,.1f}" if size.path and size.path.rounds else "—",
                    _peak(size),
                    _met(size),
                ]
            )
    return out


def growth_line(bench: BenchResult) -> str | None:
    """How cost per item and memory grow with size, in words (None for one size)."""
    growth = bench.growth()
    if growth is None:
        return None
    sizes = " → ".join(f"{s:,}" for s in growth["sizes"])
    cost = " → ".join(f"{v:,.1f}" for v in growth["us_per_item"])
    peak = " → ".join(f"{v:,.0f}" for v in growth["peak_rss_mb"])
    setup = " → ".join(f"{v:,.0f}" for v in growth["setup_rss_mb"])
    return (
        f"{bench.name}: at {sizes}: µs/{bench.unit} {cost}; "
        f"path peak MB {peak} (after setup {setup})"
    )


def legend(suite: SuiteResult) -> list[str]:
    """Per benchmark: its unit, target and what its floor is."""
    return [
        f"{b.name} ({b.unit}): target {b.target.describe(b.unit)}; floor: {b.floor_title or '—'}"
        for b in suite.benchmarks
    ]


def print_suite(suite: SuiteResult, console: Console | None = None) -> None:
    """The table, the legend, growth lines, skips and failures on the terminal."""
    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=WIDE)
    table = Table(
        title=f"hub bench --size {suite.profile} ({suite.rounds} rounds, {suite.seconds:,.0f} s)",
        caption=describe_machine(suite.machine),
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "benchmark" else "right", no_wrap=True)
    for row in rows(suite):
        table.add_row(*row)
    console.print(table)
    for line in legend(suite):
        console.print(f"  {line}", highlight=False)
    for bench in suite.benchmarks:
        growth = growth_line(bench)
        if growth:
            console.print(f"growth  {growth}", highlight=False)
        for size in bench.sizes:
            if size.status == "skipped":
                console.print(
                    f"skipped {bench.name} [{size.size:,}]: {size.reason}", highlight=False
                )
            elif size.status == "error":
                console.print(
                    f"[red]FAILED[/red] {bench.name} [{size.size:,}]: {size.reason}",
                    highlight=False,
                )


def write_json(suite: SuiteResult, path: Path) -> None:
    """Write the figures to ``path`` (indented JSON)."""
    path.write_bytes(orjson.dumps(suite.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


def markdown(suite: SuiteResult) -> str:
    """The table as Markdown, with each benchmark's target (for ``docs/performance.md``)."""
    headers = [*HEADERS[:-1], "target", "met"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    targets = {b.name: b.target.describe(b.unit) for b in suite.benchmarks}
    for row in rows(suite):
        cells = [*row[:-1], targets[row[0]], row[-1]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
