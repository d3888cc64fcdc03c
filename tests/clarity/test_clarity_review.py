"""Behaviour an HMIS administrator relies on: own exports re-import unchanged, renamed
headers keep their values, an unknown purpose is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plugins.clarity.exporter import ExportError, export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export

WHEN = datetime(2025, 11, 1, 10, 0, 0)


async def test_clarity_own_export_keeps_the_default_owner(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """The first organisation of an export decides who owns User rows; the hub's export of
    it must name the same one first, or re-importing it hands every user to another agency."""
    gen = write_export(tmp_path / "gen", clients=6, seed=1, version="2026", details=False)
    # The HMIS lists its organisations in its own order (here: the third one first).
    tools.rewrite(gen / "Organization.csv", lambda rows: [rows[0], *reversed(rows[1:])])
    async with make_hub() as ctx:
        first = (await import_export(ctx, gen)).to_json()
        assert first["default_owner"] == "hmis-org-3"
        await export_hmis(ctx, tmp_path / "out", csv_version="2026", export_date=WHEN)
        again = (await import_export(ctx, tmp_path / "out")).to_json()
        assert again["default_owner"] == "hmis-org-3"
        assert again["updated"] == 0 and again["files"]["User.csv"]["unchanged"] == 2
        async with ctx.store.transaction() as tx:
            user = await tx.get_record("hmis.User", "hmis:synthetic", "1")
        assert user is not None and user.owner == "hmis-org-3"


@pytest.mark.parametrize(
    ("version", "spelled", "name"),
    [
        ("2026", "HispanicLatinaeo", "HispanicLatinao"),
        ("2024", "HispanicLatinao", "HispanicLatinaeo"),
    ],
)
async def test_clarity_renamed_column_under_the_other_versions_name_is_read(
    make_hub: Any, tools: Any, tmp_path: Path, version: str, spelled: str, name: str
) -> None:
    """A header that uses the other version's name of a renamed column is read as that
    column (one warning), not dropped with its values."""
    gen = write_export(tmp_path / "gen", clients=20, seed=1, version=version, details=False)
    before = {r["PersonalID"]: r[name] for r in tools.read_csv(gen / "Client.csv")}
    assert "1" in before.values()

    def rename(rows: list[list[str]]) -> list[list[str]]:
        rows[0][rows[0].index(name)] = spelled
        return rows

    tools.rewrite(gen / "Client.csv", rename)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        await export_hmis(ctx, tmp_path / "out", csv_version=version, export_date=WHEN)
    found = [f for f in tools.findings(summary["report"]) if f["file"] == "Client.csv"]
    assert [(f["rule"], f["column"], f["line"]) for f in found] == [("renamed-column", name, 1)]
    after = {r["PersonalID"]: r[name] for r in tools.read_csv(tmp_path / "out" / "Client.csv")}
    assert after == before


async def test_clarity_recipient_export_refuses_an_unknown_purpose(
    make_hub: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=3, seed=1, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        with pytest.raises(ExportError, match="unknown --purpose 'treatmnet'"):
            await export_hmis(
                ctx, tmp_path / "out", csv_version="2026", recipient="cie-211", purpose="treatmnet"
            )
    assert not (tmp_path / "out").exists()


def test_clarity_cli_export_purpose_is_a_choice(cli: Any, tools: Any, tmp_path: Path) -> None:
    config = tools.write_config(tmp_path / "hub")
    args = ["--config", str(config), "export", "clarity", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(
        cli, [*args, "--csv-version", "2026", "--recipient", "cie-211", "--purpose", "fun"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--purpose'" in result.output and "Traceback" not in result.output


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The process runs at UTC+14 (the local date is a day ahead of UTC's most of the day)."""
    import time

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_clarity_export_date_is_local_time(
    make_hub: Any, tools: Any, tmp_path: Path, far_east: Any
) -> None:
    """ExportDate is a HUD ``T`` value: local time without a zone, like every DateUpdated."""
    gen = write_export(tmp_path / "gen", clients=2, seed=1, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        before = datetime.now().replace(microsecond=0)
        await export_hmis(ctx, tmp_path / "out", csv_version="2026")
        after = datetime.now()
    [row] = tools.read_csv(tmp_path / "out" / "Export.csv")
    assert before <= datetime.fromisoformat(row["ExportDate"]) <= after
    assert row["ExportEndDate"] == row["ExportDate"][:10]


async def test_clarity_fy2026_source_id_too_long_for_fy2024_is_dropped(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """A FY2026 SourceID listing several CoC codes does not fit FY2024's S32: the FY2024
    export leaves it blank and reports it dropped (it is not cut)."""
    gen = write_export(tmp_path / "gen", clients=2, seed=1, version="2026", details=False)
    codes = ";".join(f"CA-{600 + i}" for i in range(8))

    def several(rows: list[list[str]]) -> list[list[str]]:
        rows[1][rows[0].index("SourceID")] = codes
        return rows

    tools.rewrite(gen / "Export.csv", several)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        down = await export_hmis(ctx, tmp_path / "fy24", csv_version="2024", export_date=WHEN)
        same = await export_hmis(ctx, tmp_path / "fy26", csv_version="2026", export_date=WHEN)
    assert tools.read_csv(tmp_path / "fy24" / "Export.csv")[0]["SourceID"] == ""
    assert down.to_json()["dropped_columns"]["Export.csv"] == {"SourceID": 1}
    assert tools.read_csv(tmp_path / "fy26" / "Export.csv")[0]["SourceID"] == codes
    assert "Export.csv" not in same.to_json()["dropped_columns"]
