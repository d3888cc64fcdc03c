"""An organisation that becomes a victim service provider: none of its stored data leaves.

Organisation 1 of the synthetic export is mapped to ``shelter-a`` (an agency of kind
``hmis``), so only the ``restricted`` mark keeps its data in: the gate does not see a VSP
owner. These tests flip its ``VictimServiceProvider`` to 1 (with a newer ``DateUpdated``) in
a full re-import, in a delta that carries only the Organization row, and in a store written
before the fix (the organisation row says VSP, its other rows are not marked).
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.core.ports import RecordRow, StoredState, classify
from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.ownership import AgencyService
from plugins.clarity.spec import FILES, RECORD_KINDS
from tests.clarity.conftest import give_consents

SOURCE = "hmis:synthetic"
WHEN = datetime(2025, 11, 1, 10, 0, 0)
FLIPPED_AT = "2025-01-02 03:04:05"
ORG = "1"
PROJECT = "101"


def flip_org(tools: Any, path: Path) -> None:
    """Organisation 1 becomes a victim service provider (a newer DateUpdated)."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        for row in rows[1:]:
            if row[0] == ORG:
                row[header.index("VictimServiceProvider")] = "1"
                row[header.index("DateUpdated")] = FLIPPED_AT
        return rows

    tools.rewrite(path, edit)


def delta_of_org(tools: Any, gen: Path, out: Path) -> Path:
    """A delta export of Export.csv and the flipped Organization row only."""
    out.mkdir(parents=True)
    shutil.copy(gen / "Export.csv", out / "Export.csv")
    shutil.copy(gen / "Organization.csv", out / "Organization.csv")

    def export_row(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        rows[1][header.index("ExportDirective")] = "1"
        rows[1][header.index("ExportID")] = "delta1"
        return rows

    def only_org(rows: list[list[str]]) -> list[list[str]]:
        return [rows[0], *(r for r in rows[1:] if r[0] == ORG)]

    tools.rewrite(out / "Export.csv", export_row)
    tools.rewrite(out / "Organization.csv", only_org)
    flip_org(tools, out / "Organization.csv")
    return out


def sheltered(tools: Any, gen: Path) -> tuple[set[str], set[str]]:
    """(PersonalIDs, EnrollmentIDs) of the organisation's project."""
    rows = [r for r in tools.read_csv(gen / "Enrollment.csv") if r["ProjectID"] == PROJECT]
    return {r["PersonalID"] for r in rows}, {r["EnrollmentID"] for r in rows}


async def unrestricted_of(
    ctx: Any, persons: set[str], enrollments: set[str], project: str = PROJECT, org: str = ORG
) -> list[str]:
    """Stored records of those persons / enrollments / the project / the organisation that
    are not restricted (``kind/id`` only)."""
    found: list[str] = []
    for file in FILES:
        if file == "Export":
            continue
        async for rows in ctx.store.iter_records(RECORD_KINDS[file], SOURCE):
            for row in rows:
                payload = orjson.loads(row.payload)
                fields = payload.get("fields", {})
                ours = (
                    (file == "Client" and row.source_id in persons)
                    or (file == "Enrollment" and row.source_id in enrollments)
                    or (payload.get("enrollment") or {}).get("id") in enrollments
                    or fields.get("EnrollmentID") in enrollments
                    or fields.get("ProjectID") == project
                    or (file == "Organization" and row.source_id == org)
                )
                if ours and not row.restricted:
                    found.append(f"{row.kind}/{row.source_id}")
    return found


def assert_nothing_of_org(tools: Any, out: Path, persons: set[str]) -> None:
    """No row of the organisation, its project or its clients in any file of ``out``."""
    for file in FILES:
        for row in tools.read_csv(out / f"{file}.csv"):
            assert row.get("PersonalID", "") not in persons, file
            assert row.get("ProjectID", "") != PROJECT, file
            assert not (file == "Organization" and row["OrganizationID"] == ORG), file


async def exports_hold_nothing_of_org(
    ctx: Any, tools: Any, tmp_path: Path, persons: set[str], other: str
) -> None:
    """The operator's export and a recipient export (consents given) leave it all out."""
    await export_hmis(ctx, tmp_path / "all", csv_version="2024", export_date=WHEN)
    assert_nothing_of_org(tools, tmp_path / "all", persons)
    everyone = {r["PersonalID"] for r in tools.read_csv(tmp_path / "all" / "Client.csv")}
    assert other in everyone
    summary = await export_hmis(
        ctx, tmp_path / "211", csv_version="2024", recipient="cie-211", export_date=WHEN
    )
    assert_nothing_of_org(tools, tmp_path / "211", persons)
    released = {r["PersonalID"] for r in tools.read_csv(tmp_path / "211" / "Client.csv")}
    assert released == {other}
    assert summary.persons == 1 and summary.withheld_records > 0


async def test_clarity_vsp_flag_in_a_full_reimport_restricts_every_row(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=40, seed=6, version="2024")
    persons, enrollments = sheltered(tools, gen)
    other = next(
        r["PersonalID"] for r in tools.read_csv(gen / "Enrollment.csv") if r["ProjectID"] != PROJECT
    )
    flipped = tmp_path / "flipped"
    shutil.copytree(gen, flipped)
    flip_org(tools, flipped / "Organization.csv")
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        assert ctx.gate.agencies["shelter-a"].kind == "hmis"
        await give_consents(ctx, [*sorted(persons), other])
        before = len(await unrestricted_of(ctx, persons, enrollments))
        summary = (await import_export(ctx, flipped)).to_json()
        assert await unrestricted_of(ctx, persons, enrollments) == []
        await exports_hold_nothing_of_org(ctx, tools, tmp_path, persons, other)
        # Once the Organization row is in, every stored row of the organisation is marked
        # (in one transaction, before its projects are read), and the summary says so; the
        # rows that follow then find their mark stored.
        files = summary["files"]
        assert files["Organization.csv"]["updated"] == 1
        assert summary["restricted_marked"] == before - 1 > len(persons) + len(enrollments)
        # (User and Export rows belong to the export's first organisation, organisation 1:
        # they take its new mark too, as in a first import of this export.)
        assert {f for f, n in files.items() if n["updated"]} == {
            "Organization.csv",
            "User.csv",
            "Export.csv",
        }
        # Importing the same export again changes nothing more.
        again = (await import_export(ctx, flipped)).to_json()
        assert again["updated"] == 0 and again["restricted_marked"] == 0


async def test_clarity_vsp_flag_in_a_delta_restricts_stored_rows(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=40, seed=6, version="2026")
    persons, enrollments = sheltered(tools, gen)
    other = next(
        r["PersonalID"] for r in tools.read_csv(gen / "Enrollment.csv") if r["ProjectID"] != PROJECT
    )
    delta = delta_of_org(tools, gen, tmp_path / "delta")
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        await give_consents(ctx, [*sorted(persons), other])
        before = len(await unrestricted_of(ctx, persons, enrollments))
        summary = (await import_export(ctx, delta)).to_json()
        assert summary["directive"] == "delta"
        assert summary["files"]["Organization.csv"]["updated"] == 1
        assert await unrestricted_of(ctx, persons, enrollments) == []
        await exports_hold_nothing_of_org(ctx, tools, tmp_path, persons, other)
        # Every stored row of the organisation (but the Organization row, which the import
        # wrote itself) was marked restricted, and the summary says how many.
        assert summary["restricted_marked"] == before - 1 > len(persons) + len(enrollments)
        # Records of other organisations are untouched.
        async with ctx.store.transaction() as tx:
            kept = await tx.get_record("client", SOURCE, other)
        assert kept is not None and not kept.restricted


async def test_clarity_store_marked_before_the_fix_is_repaired(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """A store where the Organization row says VSP but its data is not marked (what the
    import did before): the export and the hub's start mark it before anything leaves."""
    gen = write_export(tmp_path / "gen", clients=30, seed=6, version="2024")
    persons, enrollments = sheltered(tools, gen)
    other = next(
        r["PersonalID"] for r in tools.read_csv(gen / "Enrollment.csv") if r["ProjectID"] != PROJECT
    )

    async def flag_org_only(ctx: Any) -> None:
        async with ctx.store.transaction() as tx:
            org = await tx.get_record("hmis.Organization", SOURCE, ORG)
            assert org is not None
            payload = orjson.loads(org.payload)
            payload["fields"]["VictimServiceProvider"] = "1"
            await tx.write_records(
                [dataclasses.replace(org, payload=orjson.dumps(payload), restricted=True)]
            )

    async with make_hub("a") as ctx:
        await import_export(ctx, gen)
        await give_consents(ctx, [*sorted(persons), other])
        await flag_org_only(ctx)
        assert await unrestricted_of(ctx, persons, enrollments)
        summary = await export_hmis(ctx, tmp_path / "first", csv_version="2024", export_date=WHEN)
        assert_nothing_of_org(tools, tmp_path / "first", persons)
        assert await unrestricted_of(ctx, persons, enrollments) == []
        assert summary.to_json()["restricted_marked"] > 0
        await exports_hold_nothing_of_org(ctx, tools, tmp_path, persons, other)

    async with make_hub("b") as ctx:
        await import_export(ctx, gen)
        await flag_org_only(ctx)
        service = AgencyService(ctx)
        await service.start()
        await service.stop()
        assert await unrestricted_of(ctx, persons, enrollments) == []


def test_clarity_classify_counts_a_new_restriction_as_an_update() -> None:
    row = RecordRow(
        kind="enrollment",
        source=SOURCE,
        source_id="500001",
        owner="shelter-a",
        version="2024-01-01T00:00:00",
        payload=b"{}",
        payload_hash="h",
        source_system="hmis-csv",
        received_at="2025-01-01T00:00:00",
    )
    state = StoredState.written(row)
    assert classify(row, state) == "unchanged"
    restricted = dataclasses.replace(row, restricted=True)
    assert classify(restricted, state) == "updated"
    assert classify(restricted, StoredState.written(restricted)) == "unchanged"
    # Less restriction than stored is not an update (only an administrator lifts one).
    assert classify(row, StoredState.written(restricted)) == "unchanged"
    hiv = dataclasses.replace(row, sensitivity="hiv")
    assert classify(hiv, state) == "updated"
    both = dataclasses.replace(row, sensitivity="behavioral_health,hiv")
    assert classify(hiv, StoredState.written(both)) == "unchanged"
    assert classify(row, StoredState.written(both)) == "unchanged"


@pytest.mark.parametrize("moved", ["Project", "Enrollment"])
async def test_clarity_moving_into_a_vsp_restricts_what_is_stored_below(
    make_hub: Any, tools: Any, tmp_path: Path, moved: str
) -> None:
    """A project moved to the VSP organisation, or an enrollment moved to its project (a
    delta of that one row): the rows stored below it are marked too."""
    gen = write_export(tmp_path / "gen", clients=40, seed=6, version="2024", vsp=True)
    rows = tools.read_csv(gen / "Enrollment.csv")
    enrollment = next(r for r in rows if r["ProjectID"] == "201")
    if moved == "Project":
        key, cells, project = "201", {"OrganizationID": "4"}, "201"
        persons = {r["PersonalID"] for r in rows if r["ProjectID"] == "201"}
        enrollments = {r["EnrollmentID"] for r in rows if r["ProjectID"] == "201"}
    else:
        key, cells, project = enrollment["EnrollmentID"], {"ProjectID": "401"}, "401"
        persons, enrollments = {enrollment["PersonalID"]}, {enrollment["EnrollmentID"]}
    delta = tmp_path / "delta"
    delta.mkdir()
    for file in ("Export.csv", f"{moved}.csv"):
        shutil.copy(gen / file, delta / file)

    def edit(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        if header[0] == "ExportID":
            rows[1][header.index("ExportDirective")] = "1"
            return rows
        kept = [r for r in rows[1:] if r[0] == key]
        for col, value in {**cells, "DateUpdated": FLIPPED_AT}.items():
            kept[0][header.index(col)] = value
        return [header, *kept]

    tools.rewrite(delta / "Export.csv", edit)
    tools.rewrite(delta / f"{moved}.csv", edit)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        summary = (await import_export(ctx, delta)).to_json()
        assert summary["files"][f"{moved}.csv"]["updated"] == 1
        assert await unrestricted_of(ctx, persons, enrollments, project, "4") == []
        assert summary["restricted_marked"] > len(enrollments)
        await export_hmis(ctx, tmp_path / "all", csv_version="2024", export_date=WHEN)
    for file in FILES:
        for row in tools.read_csv(tmp_path / "all" / f"{file}.csv"):
            assert row.get("PersonalID", "") not in persons, file
            assert row.get("EnrollmentID", "") not in enrollments, file
