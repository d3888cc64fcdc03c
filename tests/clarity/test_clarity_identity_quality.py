"""HUD's data quality codes reach identity matching: two clients of one export entered with
the same name and an approximate birth date (DOBDataQuality 2) stay two people, where the
same data with full birth dates (DOBDataQuality 1) is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export

SOURCE = "hmis:synthetic"


def _twins(tools: Any, gen: Path, dob_quality: str) -> tuple[str, str]:
    """Give the first two clients one name and birth date (no SSN); their PersonalIDs."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        for row in rows[1:3]:
            for column, value in {
                "FirstName": "John",
                "LastName": "Smith",
                "NameDataQuality": "1",
                "DOB": "1980-01-01",
                "DOBDataQuality": dob_quality,
                "SSN": "",
                "SSNDataQuality": "99",
            }.items():
                row[head.index(column)] = value
        return rows

    tools.rewrite(gen / "Client.csv", edit)
    first, second = tools.read_csv(gen / "Client.csv")[:2]
    return first["PersonalID"], second["PersonalID"]


async def _persons(ctx: Any, *personal_ids: str) -> set[str]:
    async with ctx.store.transaction() as tx:
        rows = [await tx.get_record("client", SOURCE, pid) for pid in personal_ids]
    return {row.person_id for row in rows if row is not None}


@pytest.mark.parametrize(("dob_quality", "people"), [("2", 2), ("1", 1)])
async def test_an_approximate_birth_date_does_not_link_two_clients(
    make_hub: Any, tools: Any, tmp_path: Path, dob_quality: str, people: int
) -> None:
    gen = write_export(tmp_path / "gen", clients=10, seed=3, version="2026")
    twins = _twins(tools, gen, dob_quality)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        assert summary["errors"] == 0
        assert len(await _persons(ctx, *twins)) == people
