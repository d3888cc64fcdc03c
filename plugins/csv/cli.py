"""``hub import csv PATH --mapping NAME --agency AGENCY``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hub.cli_support import CliState, echo_json, fail, run_with_context
from plugins.csv.importer import CsvFileError, ImportSummary, import_csv
from plugins.csv.mapping import parse_section

if TYPE_CHECKING:
    from hub.context import HubContext

HELP = """Import a partner CSV roster with a declarative column mapping.

PATH is read as UTF-8 CSV with a header line; MAPPING names a [csv.mappings.<name>] table
of hub.toml (kind client, referral … or consent); AGENCY is the [[agencies]] id that owns
what is imported. Rows with errors are reported (file, line, column) and left out; the rest
is imported. Prints a JSON summary. Exit status: 0 every row imported, 1 some rows
rejected, 2 nothing imported (bad file, mapping or agency).

\b
Example:
  hub import csv referrals.csv --mapping referrals --agency clinic-a
"""


def add_commands(cli: click.Group) -> None:
    """Add ``csv`` to the ``hub import`` group (creating the group if the CLI has none)."""
    group = cli.commands.get("import")
    if not isinstance(group, click.Group):
        group = click.Group("import", help="Import data into the hub.")
        cli.add_command(group)

    @group.command("csv", help=HELP)
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--mapping", "mapping_name", required=True, help="[csv.mappings.<name>] to use")
    @click.option("--agency", required=True, help="agency id that owns the imported data")
    @click.pass_obj
    def import_csv_command(state: CliState, path: Path, mapping_name: str, agency: str) -> None:
        mappings, errors = parse_section(state.config.section("csv"))
        if errors:
            fail(f"{state.config_path}: {errors[0]}")
        mapping = mappings.get(mapping_name)
        if mapping is None:
            known = ", ".join(sorted(mappings)) or "none configured"
            fail(f"unknown mapping {mapping_name!r} (known: {known})")
        if agency not in state.config.agencies:
            fail(f"unknown agency {agency!r}: it must be an [[agencies]] id")

        async def work(ctx: HubContext) -> ImportSummary:
            return await import_csv(ctx, path, mapping, agency)

        try:
            summary = run_with_context(state, work, migrate=True)
        except CsvFileError as exc:
            fail(str(exc))
        echo_json(summary.to_json())
        for error in summary.errors:
            click.echo(f"rejected: {error}", err=True)
        if summary.errors:
            raise SystemExit(1)
