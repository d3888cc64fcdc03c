"""A client fleeing domestic violence: their project's address does not reach a recipient."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import LOCATION_COLUMNS
from tests.clarity.conftest import give_consents

SOURCE = "hmis:synthetic"
WHEN = datetime(2025, 11, 1, 10, 0, 0)
LOCATED = sorted(LOCATION_COLUMNS["ProjectCoC"])


async def export_for_211(ctx: Any, out: Path, persons: list[str]) -> Any:
    await give_consents(ctx, persons, SOURCE)
    return await export_hmis(ctx, out, csv_version="2026", recipient="cie-211", export_date=WHEN)


async def test_clarity_recipient_export_withholds_the_project_location_of_a_fleeing_client(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=80, seed=6, version="2026")
    project = {r["PersonalID"]: r["ProjectID"] for r in tools.read_csv(gen / "Enrollment.csv")}
    fleeing = sorted(
        r["PersonalID"]
        for r in tools.read_csv(gen / "HealthAndDV.csv")
        if r["CurrentlyFleeing"] == "1"
    )
    assert fleeing
    person = fleeing[0]
    theirs = project[person]
    # Someone in another project where nobody exported is fleeing: that address stays.
    other = next(p for p, prj in sorted(project.items()) if prj != theirs and p not in fleeing)
    assert project[other] != theirs
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        summary = await export_for_211(ctx, tmp_path / "211", [person, other])
        audit = [
            orjson.loads(r.body) for rows in [r async for r in ctx.store.iter_audit()] for r in rows
        ]
    assert any("DV_LOCATION_WITHHELD" in e["reasons"] for e in audit)  # the gate knows

    out = tmp_path / "211"
    assert {r["PersonalID"] for r in tools.read_csv(out / "Client.csv")} == {person, other}
    cocs = {r["ProjectID"]: r for r in tools.read_csv(out / "ProjectCoC.csv")}
    assert set(cocs) == {theirs, project[other]}
    assert all(cocs[theirs][col] == "" for col in LOCATED)
    assert cocs[theirs]["CoCCode"] and cocs[theirs]["ProjectCoCID"]  # the rest stays
    kept = cocs[project[other]]
    assert kept["Address1"] and kept["City"] and kept["ZIP"] and kept["Geocode"]
    # The summary says what was withheld, without naming the person.
    report = summary.to_json()
    assert report["locations_withheld"] == 1
    assert report["withheld_columns"]["ProjectCoC.csv"] == {
        "Address1": 1,
        "City": 1,
        "Geocode": 1,
        "State": 1,
        "ZIP": 1,
    }
    assert person not in json.dumps(report)
    # The operator's own export (no recipient) keeps the address.
    async with make_hub() as ctx:
        operator = await export_hmis(ctx, tmp_path / "all", csv_version="2026", export_date=WHEN)
    assert operator.locations_withheld == 0
    full = {r["ProjectID"]: r for r in tools.read_csv(tmp_path / "all" / "ProjectCoC.csv")}
    assert full[theirs]["Address1"] and full[theirs]["Geocode"]


async def test_clarity_recipient_export_keeps_project_locations_without_fleeing_clients(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=40, seed=6, version="2026")
    fleeing = {
        r["PersonalID"]
        for r in tools.read_csv(gen / "HealthAndDV.csv")
        if r["CurrentlyFleeing"] == "1"
    }
    persons = sorted(r["PersonalID"] for r in tools.read_csv(gen / "Client.csv"))
    calm = [p for p in persons if p not in fleeing][:5]
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        summary = await export_for_211(ctx, tmp_path / "211", calm)
    assert summary.locations_withheld == 0
    cocs = tools.read_csv(tmp_path / "211" / "ProjectCoC.csv")
    assert cocs and all(r["Address1"] and r["Geocode"] for r in cocs)
    assert "ProjectCoC.csv" not in summary.withheld_columns
