"""``hub bench``: run the benchmark suite, print the table, write the JSON figures."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from hub.cli_support import CliState, fail


def register(cli: click.Group) -> None:
    """Add ``hub bench`` to the root group."""
    cli.add_command(bench)


@click.command("bench")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this benchmark, or every benchmark under a dotted prefix (repeatable).",
)
@click.option(
    "--size",
    "profile",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Sizes to run at: small finishes in a few minutes on two cores; large is the "
    "DESIGN.md targets' scale (1M-row import, 100k messages) and takes long.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Rounds of each side, alternated path/floor.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results.json"),
    show_default=True,
    help="Where to write the figures.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table as Markdown (for docs/performance.md).",
)
@click.option(
    "--pg-url",
    default=None,
    help="PostgreSQL server for the PostgreSQL benchmarks (a fresh database is created "
    "and dropped per round) [default: $HUB_TEST_PG_URL or postgresql://postgres@127.0.0.1:"
    "5432/test].",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to build the temporary hubs [default: the system temp folder].",
)
@click.option("--keep", is_flag=True, help="Keep the temporary hubs and child logs.")
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Profile each path round with pyinstrument (if installed); text reports go here.",
)
@click.option(
    "--sql-profile",
    "sql_profile_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Time each SQLite statement of each path round (µs and calls per item, per "
    "thread); text reports go here. Slows the path a little.",
)
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks and exit.")
@click.pass_obj
def bench(
    state: CliState,
    only: tuple[str, ...],
    profile: str,
    rounds: int,
    json_path: Path,
    markdown_path: Path | None,
    pg_url: str | None,
    workdir: Path | None,
    keep: bool,
    profile_dir: Path | None,
    sql_profile_dir: Path | None,
    list_only: bool,
) -> None:
    """Measure each hot path beside its floor and print the ratio.

    Each benchmark's path (the hub doing the job) and floor (the least work that could do
    the same job, e.g. a raw MLLP server with the same SQLite commit) run in child processes
    of their own, alternately for several rounds, on data the suite generates. The table
    shows median rates with their spread, path ÷ floor, time per item and peak memory; the
    JSON file holds every round. Builds its own hubs in temporary folders: no hub.toml
    needed. Exit status 1 when a benchmark failed (a skipped one is not a failure).

    \b
    Examples:
      hub bench                              # small sizes, 3 rounds, bench-results.json
      hub bench --only hl7 --rounds 5        # the HL7 benchmarks only
      hub bench --size large --json large.json
      hub bench --only hl7.mllp.1conn --rounds 1 --sql-profile prof/   # SQL per message
    """
    from hub.bench.report import markdown, print_suite, write_json
    from hub.bench.runner import BenchError, RunOptions, SuiteRunner, select
    from hub.bench.suite import DuplicateBenchmark, collect_benchmarks

    try:
        benchmarks = select(collect_benchmarks(state.plugins), only)
    except (BenchError, DuplicateBenchmark) as exc:
        fail(str(exc))
    if list_only:
        for b in benchmarks:
            sizes = ", ".join(f"{s:,}" for s in b.sizes_for(profile))
            click.echo(f"{b.name:<28} {b.title} [{profile}: {sizes}]")
        return
    options: dict[str, str] = {}
    url = pg_url or os.environ.get("HUB_TEST_PG_URL")
    if url:
        options["pg_url"] = url
    run_options = RunOptions(
        profile=profile,
        rounds=rounds,
        options=options,
        workdir=workdir,
        keep=keep,
        profile_dir=profile_dir,
        sql_profile_dir=sql_profile_dir,
    )
    runner = SuiteRunner(run_options, progress=lambda m: click.echo(m, err=True))
    suite = asyncio.run(runner.run(benchmarks))
    print_suite(suite)
    write_json(suite, json_path)
    click.echo(f"figures written to {json_path}", err=True)
    if markdown_path is not None:
        markdown_path.write_text(markdown(suite) + "\n", encoding="utf-8")
    if suite.failed:
        click.echo(f"failed: {', '.join(suite.failed)}", err=True)
        sys.exit(1)
