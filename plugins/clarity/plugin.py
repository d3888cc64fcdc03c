"""Hook implementations of the Clarity (HUD HMIS CSV) plugin."""

from __future__ import annotations

from typing import Any

import click

from hub.plugin_api import ConnectorInfo, ScheduledJob, Service, hookimpl


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """The HUD HMIS CSV import and export connectors."""
    return [
        ConnectorInfo(
            "clarity-import",
            "source",
            ("hud-csv-2024", "hud-csv-2026"),
            "import a HUD HMIS CSV export (folder or .zip)",
        ),
        ConnectorInfo(
            "clarity-export",
            "sink",
            ("hud-csv-2024", "hud-csv-2026"),
            "write a HUD HMIS CSV export",
        ),
    ]


@hookimpl
def hub_config_sections() -> dict[str, str]:
    """The [clarity] section."""
    return {"clarity": "HUD HMIS CSV import/export and the drop folder"}


@hookimpl
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Validate ``[clarity]`` (None for other sections)."""
    if section != "clarity":
        return None
    from plugins.clarity.settings import validate_section

    return validate_section(value, agencies)


@hookimpl
def hub_cli_commands(cli: click.Group) -> None:
    """``hub import clarity`` and ``hub export clarity``."""
    from plugins.clarity.cli import register

    register(cli)


@hookimpl
def hub_services(ctx: Any) -> list[Service]:
    """Restores the agencies of unmapped HMIS organisations when ``hub serve`` starts."""
    from plugins.clarity.ownership import AgencyService

    return [AgencyService(ctx)]


@hookimpl
def hub_scheduled_jobs(ctx: Any) -> list[ScheduledJob]:
    """The drop-folder import, when ``[clarity] drop_folder`` is set."""
    from plugins.clarity.dropfolder import scan_drop_folder
    from plugins.clarity.settings import settings_of

    settings = settings_of(ctx.config)
    if not settings.drop_folder:
        return []

    async def run() -> None:
        await scan_drop_folder(ctx)

    return [
        ScheduledJob(
            name="clarity-drop-folder",
            func=run,
            interval_seconds=settings.drop_interval_seconds,
        )
    ]


@hookimpl
def hub_codecs() -> list[Any]:
    """The ``hud-client-csv`` codecs: Client.csv rows (FY2024, FY2026) ↔ Client records."""
    from plugins.clarity.codec import ClientCsvCodec

    return [ClientCsvCodec("2024"), ClientCsvCodec("2026")]


@hookimpl
def hub_benchmarks() -> list[Any]:
    """HUD CSV import on SQLite and PostgreSQL beside their floors (``bench.py``)."""
    from plugins.clarity.bench import benchmarks

    return list(benchmarks())
