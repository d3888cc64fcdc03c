"""``hub plugins new``: start a connector plugin project (added to the ``plugins`` group)."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli_support import fail
from hub.scaffold import Names, ScaffoldError, scaffold


@click.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of the new project (created; must be empty). Default: ./cie-hub-<name>.",
)
def plugins_new(name: str, directory: Path | None) -> None:
    """Create a connector plugin project NAME: a working NDJSON file sink and codec,
    a pyproject with the cie_hub entry point, and tests that run the contract test kit.

    \b
    Example:
      hub plugins new demo_sink --dir ./demo-sink
      pip install -e ./demo-sink && python -m pytest ./demo-sink/tests
    """
    try:
        names = Names.of(name)
        target = directory or Path(names.dist)
        written = scaffold(name, target)
    except (ScaffoldError, OSError) as exc:
        fail(str(exc))
    click.echo(f"created {names.dist} in {target} ({len(written)} files):")
    for path in written:
        click.echo(f"  {path.relative_to(target)}")
    click.echo("next:")
    click.echo(f"  pip install -e {target}")
    click.echo(f"  python -m pytest {target / 'tests'}")
    click.echo(f"  hub plugins list    # shows {names.name}")


def register(cli: click.Group) -> None:
    """Add ``new`` to the existing ``hub plugins`` group."""
    group = cli.commands.get("plugins")
    if not isinstance(group, click.Group):
        raise RuntimeError("the hub CLI has no 'plugins' group to add 'new' to")
    group.add_command(plugins_new, "new")
