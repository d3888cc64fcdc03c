"""A --since delta export is a self-contained file set: an empty hub imports it without an
unknown parent and gives every record the owner it has in the hub that wrote it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import FILES

WHEN = datetime(2025, 11, 1, 10, 0, 0)
OLD = "2021-01-04 10:00:00"
NEW = "2025-06-01 10:00:00"
SINCE = "2025-01-01"
DESCRIPTOR_FILES = (
    "Organization",
    "User",
    "Project",
    "Funder",
    "ProjectCoC",
    "Inventory",
    "HMISParticipation",
    "CEParticipation",
)


def _set_all_old(tools: Any, gen: Path) -> None:
    """Every row of every file (Export.csv aside) last updated long ago."""
    for file in FILES[1:]:
        path = gen / f"{file}.csv"
        if not path.exists():
            continue

        def edit(rows: list[list[str]]) -> list[list[str]]:
            at = rows[0].index("DateUpdated")
            for row in rows[1:]:
                row[at] = OLD
            return rows

        tools.rewrite(path, edit)


def _changes(tools: Any, gen: Path) -> dict[str, str]:
    """Recent changes below unchanged parents: a new, later enrollment (in another
    organisation's project) of a client whose first enrollment and Client row are old, and an
    Exit whose enrollment and client are old. Returns the ids involved."""
    enrollments = tools.read_csv(gen / "Enrollment.csv")
    exits = tools.read_csv(gen / "Exit.csv")
    exit_row = exits[0]
    first = next(r for r in enrollments if r["PersonalID"] != exit_row["PersonalID"])
    projects = [r["ProjectID"] for r in tools.read_csv(gen / "Project.csv")]
    other = next(p for p in projects if p != first["ProjectID"])
    ids = {
        "client": first["PersonalID"],
        "first": first["EnrollmentID"],
        "later": "delta-later-1",
        "exit": exit_row["ExitID"],
        "exit_enrollment": exit_row["EnrollmentID"],
        "exit_client": exit_row["PersonalID"],
    }

    def add_enrollment(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        template = next(r for r in rows[1:] if r[head.index("EnrollmentID")] == ids["first"])
        row = list(template)
        for column, value in (
            ("EnrollmentID", ids["later"]),
            ("ProjectID", other),
            ("EntryDate", "2025-05-01"),
            ("HouseholdID", "delta-household-1"),
            ("RelationshipToHoH", "1"),
            ("DateCreated", NEW),
            ("DateUpdated", NEW),
        ):
            row[head.index(column)] = value
        if "MoveInDate" in head:
            row[head.index("MoveInDate")] = ""
        return [*rows, row]

    def touch_exit(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        for row in rows[1:]:
            if row[head.index("ExitID")] == ids["exit"]:
                row[head.index("DateUpdated")] = NEW
        return rows

    tools.rewrite(gen / "Enrollment.csv", add_enrollment)
    tools.rewrite(gen / "Exit.csv", touch_exit)
    return ids


async def _owners(ctx: Any) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    kinds = ["client", "enrollment", "exit", "service"] + [f"hmis.{f}" for f in DESCRIPTOR_FILES]
    for kind in kinds:
        async for rows in ctx.store.iter_records(kind):
            for row in rows:
                out[(kind, row.source_id)] = row.owner
    return out


async def test_clarity_delta_export_imports_into_an_empty_hub_with_the_same_owners(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    ids = _changes(tools, gen)
    async with make_hub("a") as a:
        first = (await import_export(a, gen)).to_json()
        assert first["errors"] == 0
        full = await export_hmis(a, tmp_path / "full", csv_version="2026", export_date=WHEN)
        delta = await export_hmis(
            a, tmp_path / "delta", csv_version="2026", since=SINCE, export_date=WHEN
        )
        owners_a = await _owners(a)
    out = tmp_path / "delta"
    # The descriptor files come whole, though none of their rows changed since.
    for file in DESCRIPTOR_FILES:
        name = f"{file}.csv"
        assert delta.files[name] == full.files[name] > 0, name
    # Client-level rows: the changed ones and the parents they name, nothing else.
    enrollments = {r["EnrollmentID"] for r in tools.read_csv(out / "Enrollment.csv")}
    assert enrollments == {ids["first"], ids["later"], ids["exit_enrollment"]}
    clients = {r["PersonalID"] for r in tools.read_csv(out / "Client.csv")}
    assert clients == {ids["client"], ids["exit_client"]}
    assert [r["ExitID"] for r in tools.read_csv(out / "Exit.csv")] == [ids["exit"]]
    assert delta.files["Services.csv"] == 0 < full.files["Services.csv"]
    # Unchanged parents leave as they are: their own DateUpdated.
    first_row = next(
        r for r in tools.read_csv(out / "Enrollment.csv") if r["EnrollmentID"] == ids["first"]
    )
    assert first_row["DateUpdated"] == OLD
    export_row = tools.read_csv(out / "Export.csv")[0]
    assert (export_row["ExportDirective"], export_row["ExportPeriodType"]) == ("1", "1")

    async with make_hub("b") as b:
        again = (await import_export(b, out)).to_json()
        owners_b = await _owners(b)
    assert again["errors"] == 0 and again["warnings"] == 0
    assert again["default_owner"] == first["default_owner"]
    assert not [a for a in again["agencies_created"] if a.startswith("hmis-synthetic")]
    assert {k: owners_a[k] for k in owners_b} == owners_b
    # The client whose later enrollment changed keeps its first enrollment's owner.
    client_owner = owners_b[("client", ids["client"])]
    assert client_owner == owners_a[("enrollment", ids["first"])]
    assert client_owner != owners_b[("enrollment", ids["later"])]


async def test_clarity_delta_for_a_recipient_carries_the_descriptors(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    ids = _changes(tools, gen)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        await tools.give_consents(ctx, [ids["client"], ids["exit_client"]])
        summary = await export_hmis(
            ctx,
            tmp_path / "delta",
            csv_version="2026",
            recipient="cie-211",
            since=SINCE,
            export_date=WHEN,
        )
    out = tmp_path / "delta"
    enrollments = tools.read_csv(out / "Enrollment.csv")
    assert {r["EnrollmentID"] for r in enrollments} == {
        ids["first"],
        ids["later"],
        ids["exit_enrollment"],
    }
    assert {r["PersonalID"] for r in tools.read_csv(out / "Client.csv")} == {
        ids["client"],
        ids["exit_client"],
    }
    projects = {r["ProjectID"] for r in tools.read_csv(out / "Project.csv")}
    assert projects == {r["ProjectID"] for r in enrollments}
    organizations = {r["OrganizationID"] for r in tools.read_csv(out / "Organization.csv")}
    assert organizations == {r["OrganizationID"] for r in tools.read_csv(out / "Project.csv")}
    assert summary.files["ProjectCoC.csv"] == len(projects)
    assert summary.files["User.csv"] > 0
