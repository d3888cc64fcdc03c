"""Fixtures for the Clarity (HUD CSV) tests: real hubs with a [clarity] section."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.config import HubConfig, load_config
from hub.context import HubContext, make_plugins, open_context
from hub.keys import KeyRing

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HUB_SHARED_DIR", REPO_ROOT.parent / "shared"))
SAMPLE = SHARED / "samples" / "hud-csv" / "fy2024-sample"

AGENCIES_TOML = """
[[agencies]]
id = "shelter-a"
name = "Shelter A"
kind = "hmis"
networks = ["hmis", "cie"]
hmis_organization_ids = ["1"]

[[agencies]]
id = "cie-211"
name = "211"
kind = "cie"
networks = ["cie"]

[[agencies]]
id = "clinic"
name = "Clinic"
kind = "health"
networks = ["cie"]
"""


def write_config(
    folder: Path, extra: str = "", store_url: str = "sqlite:///hub-data/hub.db"
) -> Path:
    """Write hub.toml (+ keys) into ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hub.toml"
    text = f'[store]\nurl = "{store_url}"\n\n[keys]\nfile = "hub-data/keys.json"\n'
    path.write_text(text + AGENCIES_TOML + extra, encoding="utf-8")
    keys = folder / "hub-data" / "keys.json"
    if not keys.exists():
        KeyRing.generate().write(keys)
    return path


def load(path: Path) -> HubConfig:
    """Load a config the way the CLI does (plugin sections owned and validated)."""
    pm = make_plugins()
    return load_config(
        path,
        owned_sections=pm.owned_sections(),
        validate_section=lambda s, v, a: [
            e for r in pm.hook.hub_validate_config(section=s, value=v, agencies=a) if r for e in r
        ],
    )


HubMaker = Callable[..., Any]


@pytest.fixture
def make_hub(tmp_path: Path) -> HubMaker:
    """``async with make_hub("name", extra_toml) as ctx`` → a hub in ``tmp_path/name``."""

    @asynccontextmanager
    async def make(
        name: str = "hub", extra: str = "", store_url: str | None = None
    ) -> AsyncIterator[HubContext]:
        cfg = load(write_config(tmp_path / name, extra, store_url or "sqlite:///hub-data/hub.db"))
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            yield ctx

    return make


def read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def rewrite(path: Path, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    """Rewrite a generated CSV file through ``edit`` (rows incl. header), quoting minimally."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(edit(rows))
    path.write_text(out.getvalue(), encoding="utf-8")


def findings(report: str | Path) -> list[dict[str, Any]]:
    """The lines of a JSON Lines report."""
    import json

    return [
        json.loads(line) for line in Path(report).read_text(encoding="utf-8").splitlines() if line
    ]


async def give_consents(ctx: HubContext, values: list[str], source: str = "hmis:synthetic") -> None:
    """Import a consent (to the HMIS and CIE networks) for each client id of ``source``."""
    from consent.parsing import parse_consent_file

    text = "\n".join(
        json.dumps(
            {
                "id": f"mpa-{value}",
                "client": {"system": source, "value": value},
                "signed_on": "2025-01-01",
                "networks": ["hmis", "cie"],
                "recorded_by": "shelter-a",
            }
        )
        for value in values
    )
    parsed = parse_consent_file(text, agencies=ctx.gate.agencies, policy=ctx.config.consent_policy)
    await ctx.import_consents(parsed)


@pytest.fixture
def cli() -> Any:
    """The hub CLI with this plugin's commands (its own groups if the hub has none)."""
    import click

    from plugins.clarity.cli import register

    try:
        from hub.cli import cli as hub_cli
    except ImportError:  # pragma: no cover - the lead's CLI not there yet
        hub_cli = click.Group("hub")
    group: click.Group = hub_cli
    for name in ("import", "export"):
        if name not in group.commands:
            group.add_command(click.Group(name))
    register(group)
    return group


@pytest.fixture
def tools() -> Any:
    """The helpers above, for test modules (which cannot import this conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        read_csv=read_csv,
        rewrite=rewrite,
        findings=findings,
        write_config=write_config,
        load=load,
        sample=SAMPLE,
        give_consents=give_consents,
    )
