"""``hub import clarity`` and ``hub export clarity``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from consent.categories import PURPOSES
from hub.cli_support import CliState, echo_json, fail, run_with_context
from plugins.clarity.csvio import ImportRefused
from plugins.clarity.exporter import ExportError, export_hmis
from plugins.clarity.importer import import_export
from plugins.clarity.settings import settings_of


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; otherwise no progress at all."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("importing", total=None)

        def update(file: str, done: int, total: int) -> None:
            bar.update(task, description=file, completed=done, total=total or None)

        yield update


@click.command("clarity")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and validate only; store nothing.")
@click.option(
    "--full-refresh/--delta",
    "full",
    default=None,
    help="Override Export.csv's ExportDirective (default: as the export says).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON Lines findings report (default: [clarity] report_dir).",
)
@click.pass_obj
def import_clarity(
    state: CliState, path: Path, dry_run: bool, full: bool | None, report_path: Path | None
) -> None:
    """Import a HUD HMIS CSV export (FY2024 or FY2026; a folder or a .zip).

    Prints a JSON summary (rows read, inserted, updated, unchanged, deleted, warnings,
    errors, the report path). Row findings do not fail the import; an export that cannot
    be read at all (no Export.csv, unknown CSVVersion, unreadable zip) exits non-zero. So does
    a file found damaged midway (a bad CRC in the zip): the summary of what was already
    stored is printed (its "stopped" says why), then the one-line error.

    \b
    Examples:
      hub import clarity ./hudx-111-export.zip
      hub import clarity ./export-folder --dry-run
      hub import clarity ./nightly.zip --delta --report ./nightly-report.jsonl
    """
    directive = None if full is None else "full" if full else "delta"

    async def work(ctx: Any) -> dict[str, Any]:
        with progress_bar(sys.stderr.isatty()) as progress:
            summary = await import_export(
                ctx,
                path,
                dry_run=dry_run,
                progress=progress,
                directive=directive,
                report_path=report_path,
            )
        return summary.to_json()

    try:
        result = run_with_context(state, work, migrate=True)
    except ImportRefused as exc:
        if exc.summary is not None:  # stopped midway: what it had done, then why
            echo_json(exc.summary)
        fail(str(exc))
    echo_json(result)


@click.command("clarity")
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Folder to write into."
)
@click.option(
    "--csv-version", type=click.Choice(["2024", "2026"]), required=True, help="HMIS CSV version."
)
@click.option(
    "--recipient", default=None, help="Agency the export is for: only what its consent permits."
)
@click.option(
    "--purpose",
    type=click.Choice(PURPOSES),
    default=None,
    help="Purpose of use for --recipient (default: [clarity] export_purpose, coordination).",
)
@click.option(
    "--since", default=None, help="Only rows updated on or after this date (a delta export)."
)
@click.option(
    "--hash-status",
    type=click.Choice(["1", "4"]),
    default=None,
    help="1 clear, 4 SHA-256 (clear names and SSNs hashed). Default: the status the client "
    "rows were imported with (refused when they differ).",
)
@click.option(
    "--source", default=None, help="ImplementationID to export when the store holds several."
)
@click.option(
    "--export-date",
    default=None,
    help="ExportDate to write (YYYY-MM-DDTHH:MM:SS; default now) for reproducible exports; "
    "refused when a row to export was updated or deleted after it.",
)
@click.pass_obj
def export_clarity(
    state: CliState,
    out: Path,
    csv_version: str,
    recipient: str | None,
    purpose: str | None,
    since: str | None,
    hash_status: str | None,
    source: str | None,
    export_date: str | None,
) -> None:
    """Write a HUD HMIS CSV export (FY2024 or FY2026) of one HMIS source.

    Rows keep the values (and DateUpdated) they were imported with; converting between
    versions invents nothing and lists every dropped column in the JSON summary. With
    --recipient, only what the consent gate releases to that agency is written (each
    decision is audited) and victim service providers' data never is. Export.csv's
    HashStatus is the one the client rows carry: rows imported hashed leave hashed, and an
    export whose rows would carry several statuses, or another than --hash-status, is
    refused.

    \b
    Examples:
      hub export clarity --out ./out --csv-version 2026
      hub export clarity --out ./for-211 --csv-version 2026 --recipient cie-211
      hub export clarity --out ./delta --csv-version 2024 --since 2025-10-01 --hash-status 4
    """
    when = None
    if export_date:
        try:
            when = datetime.fromisoformat(export_date)
        except ValueError:
            fail(f"--export-date {export_date!r} is not a date-time (YYYY-MM-DDTHH:MM:SS)")

    async def work(ctx: Any) -> dict[str, Any]:
        summary = await export_hmis(
            ctx,
            out,
            csv_version=csv_version,
            recipient=recipient,
            purpose=purpose or settings_of(ctx.config).export_purpose,
            since=since,
            hash_status=hash_status,
            source=source,
            export_date=when,
        )
        return summary.to_json()

    try:
        result = run_with_context(state, work)
    except ExportError as exc:
        fail(str(exc))
    echo_json(result)


def register(cli: click.Group) -> None:
    """Add the commands to ``hub import`` and ``hub export`` (when those groups exist)."""
    for group_name, command in (("import", import_clarity), ("export", export_clarity)):
        group = cli.commands.get(group_name)
        if isinstance(group, click.Group):
            group.add_command(command)
