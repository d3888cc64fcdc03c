"""Export → import → export is byte-identical; FY2024 ↔ FY2026 invents nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import ENROLLMENT_DROPPED_FY2026, FILES, GENDER_COLUMNS_FY2024

WHEN = datetime(2025, 11, 1, 10, 0, 0)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("version", ["2024", "2026"])
async def test_clarity_export_import_export_is_byte_identical(
    make_hub: Any, tmp_path: Path, version: str
) -> None:
    gen = write_export(tmp_path / "gen", clients=300, seed=11, version=version)
    async with make_hub("a") as a:
        first = await import_export(a, gen)
        assert first.to_json()["warnings"] == 0 and first.to_json()["errors"] == 0
        one = await export_hmis(a, tmp_path / "one", csv_version=version, export_date=WHEN)
    async with make_hub("b") as b:
        summary = (await import_export(b, tmp_path / "one")).to_json()
        assert summary["warnings"] == 0 and summary["errors"] == 0
        assert summary["inserted"] == summary["rows_read"]
        two = await export_hmis(b, tmp_path / "two", csv_version=version, export_date=WHEN)
    assert one.files == two.files
    assert sorted(tree(tmp_path / "one")) == sorted(f"{f}.csv" for f in FILES)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    # The data rows are the generated rows (only ExportID differs): DateUpdated is kept.
    for file in ("Client.csv", "Enrollment.csv", "Exit.csv", "Services.csv", "HealthAndDV.csv"):
        original = (gen / file).read_text().replace('"gen11"', "X").splitlines()
        exported = (
            (tmp_path / "one" / file).read_text().replace(f'"{one.export_id}"', "X").splitlines()
        )
        assert sorted(original) == sorted(exported), file


async def test_clarity_reimport_of_own_export_changes_nothing(
    make_hub: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=100, seed=2, version="2026")
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        await export_hmis(ctx, tmp_path / "out", csv_version="2026", export_date=WHEN)
        again = (await import_export(ctx, tmp_path / "out")).to_json()
        data_rows = again["rows_read"] - 1  # the new Export.csv row is new
        assert again["unchanged"] == data_rows
        assert again["inserted"] == 1 and again["updated"] == 0 and again["deleted"] == 0


async def test_clarity_fy2024_to_fy2026_and_back(make_hub: Any, tools: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=200, seed=4, version="2024")
    async with make_hub("a") as a:
        await import_export(a, gen)
        up = await export_hmis(a, tmp_path / "fy26", csv_version="2026", export_date=WHEN)
    report = up.to_json()
    dropped = report["dropped_columns"]
    assert set(dropped["Client.csv"]) == set(GENDER_COLUMNS_FY2024)
    assert dropped["Client.csv"]["Woman"] > 0  # values were dropped, and counted
    assert set(dropped["Enrollment.csv"]) == set(ENROLLMENT_DROPPED_FY2026)
    assert report["blank_columns"]["Client.csv"] == ["Sex"]
    assert report["blank_columns"]["Enrollment.csv"] == ["MentalHealthConsultation"]
    fy26 = tools.read_csv(tmp_path / "fy26" / "Client.csv")
    assert all(row["Sex"] == "" for row in fy26)  # not derived from gender
    assert "HispanicLatinao" in fy26[0] and "Woman" not in fy26[0]

    async with make_hub("b") as b:
        summary = (await import_export(b, tmp_path / "fy26")).to_json()
        assert summary["errors"] == 0 and summary["warnings"] == 0
        down = await export_hmis(b, tmp_path / "fy24", csv_version="2024", export_date=WHEN)
    back = down.to_json()
    assert set(back["dropped_columns"]["Client.csv"]) == {"Sex"}
    assert set(back["blank_columns"]["Client.csv"]) == set(GENDER_COLUMNS_FY2024)

    for file in ("Client.csv", "Enrollment.csv", "Exit.csv", "Services.csv", "IncomeBenefits.csv"):
        before = {r[next(iter(r))]: r for r in tools.read_csv(gen / file)}
        after = {r[next(iter(r))]: r for r in tools.read_csv(tmp_path / "fy24" / file)}
        assert before.keys() == after.keys(), file
        lost = set(GENDER_COLUMNS_FY2024) | set(ENROLLMENT_DROPPED_FY2026)
        for key, row in before.items():
            for col, value in row.items():
                if col == "ExportID":
                    assert after[key][col] == down.export_id
                elif col in lost:
                    assert after[key][col] == "", (file, col)
                else:
                    assert after[key][col] == value, (file, col)
