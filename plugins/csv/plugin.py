"""Hook implementations of the partner CSV plugin."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hub.plugin_api import ConnectorInfo, Sink, hookimpl
from plugins.csv.mapping import parse_section
from plugins.csv.sink import CsvFileSink

if TYPE_CHECKING:
    import click

    from hub.context import HubContext

log = logging.getLogger("hub.csv")


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """Partner CSV files in and out."""
    return [
        ConnectorInfo("csv-file", "sink", ("csv",), "partner CSV with declarative column maps"),
        ConnectorInfo("csv-import", "source", ("csv",), "inbound partner CSV rosters"),
    ]


@hookimpl
def hub_config_sections() -> dict[str, str]:
    """The [csv] section."""
    return {"csv": "partner CSV column mappings"}


@hookimpl
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Check every ``[csv.mappings.<name>]`` table (kinds, columns, field paths, formats)."""
    if section != "csv":
        return None
    _mappings, errors = parse_section(value)
    return errors


@hookimpl
def hub_codecs() -> list[Any]:
    """The ``csv`` codec: a client roster laid out by :data:`plugins.csv.codec.CLIENT_ROSTER`."""
    from plugins.csv.codec import client_roster_codec

    return [client_roster_codec()]


@hookimpl
def hub_sinks(ctx: HubContext) -> list[Sink]:
    """The ``csv-file`` sink with the configured mappings."""
    mappings, errors = parse_section(ctx.config.section("csv") or None)
    for error in errors:
        log.error("csv mapping left out: %s", error)
    return [CsvFileSink(mappings, ctx.config.base_dir)]


@hookimpl
def hub_cli_commands(cli: click.Group) -> None:
    """``hub import csv``."""
    from plugins.csv.cli import add_commands

    add_commands(cli)
