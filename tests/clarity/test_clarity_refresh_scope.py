"""A full refresh replaces this source's data in the exported scope and nothing outside it.

The scope is the projects the export's Project.csv lists: an export cut to one project
deletes nothing of the other projects (their descriptor rows, enrollments and the rows
below them, clients enrolled only there or also there), and still deletes, in its project,
what it no longer carries.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import ENROLLMENT_FILES, PROJECT_FILES, RECORD_KINDS

SOURCE = "hmis:synthetic"
SCOPE = "101"
ELSEWHERE = "201"
EXTRA_ENROLLMENT = "599999"


async def stored(ctx: Any, kind: str, rid: str) -> Any:
    async with ctx.store.transaction() as tx:
        return await tx.get_record(kind, SOURCE, rid)


async def live_ids(ctx: Any, kind: str) -> set[str]:
    found: set[str] = set()
    async for rows in ctx.store.iter_records(kind, SOURCE):
        found.update(r.source_id for r in rows if not r.deleted)
    return found


def keep_rows(tools: Any, path: Path, column: str, values: set[str]) -> None:
    """Keep the rows of a generated file whose ``column`` is one of ``values``."""
    if not path.exists():
        return

    def edit(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index(column)
        return [rows[0], *(r for r in rows[1:] if r[at] in values)]

    tools.rewrite(path, edit)


def add_enrollment(tools: Any, path: Path, like: str, rid: str, project: str) -> None:
    """Add to Enrollment.csv a copy of enrollment ``like`` as ``rid`` in ``project``."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        row = list(next(r for r in rows[1:] if r[0] == like))
        row[0] = rid
        row[header.index("ProjectID")] = project
        row[header.index("HouseholdID")] = f"h{rid}"
        row[header.index("RelationshipToHoH")] = "1"
        return [*rows, row]

    tools.rewrite(path, edit)


def cut_to_project(tools: Any, gen: Path, out: Path, project: str, drop: set[str]) -> None:
    """Copy the export to ``out`` keeping only ``project``'s data, without the enrollments
    ``drop`` (and their rows)."""
    shutil.copytree(gen, out)
    keep_rows(tools, out / "Project.csv", "ProjectID", {project})
    for file in PROJECT_FILES:
        keep_rows(tools, out / f"{file}.csv", "ProjectID", {project})
    enrollments = [
        r
        for r in tools.read_csv(out / "Enrollment.csv")
        if r["ProjectID"] == project and r["EnrollmentID"] not in drop
    ]
    kept = {r["EnrollmentID"] for r in enrollments}
    keep_rows(tools, out / "Enrollment.csv", "EnrollmentID", kept)
    keep_rows(tools, out / "Client.csv", "PersonalID", {r["PersonalID"] for r in enrollments})
    for file in ENROLLMENT_FILES:
        keep_rows(tools, out / f"{file}.csv", "EnrollmentID", kept)


def rows_of(tools: Any, gen: Path, file: str, column: str, values: set[str]) -> list[str]:
    """The ids of a file's rows whose ``column`` is one of ``values``."""
    path = gen / f"{file}.csv"
    if not path.exists():
        return []
    rows = tools.read_csv(path)
    return [next(iter(r.values())) for r in rows if r[column] in values]


async def test_clarity_full_refresh_of_one_project_keeps_the_others(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=40, seed=2, version="2026")
    enrollments = tools.read_csv(gen / "Enrollment.csv")
    exits = {r["EnrollmentID"] for r in tools.read_csv(gen / "Exit.csv")}
    in_scope = [r for r in enrollments if r["ProjectID"] == SCOPE]
    # The enrollment the cut export no longer carries: one with an exit (a row below it).
    dropped = next(r for r in in_scope if r["EnrollmentID"] in exits)
    # A client of the scoped project also enrolled elsewhere.
    shared = next(r for r in in_scope if r["EnrollmentID"] != dropped["EnrollmentID"])
    add_enrollment(
        tools, gen / "Enrollment.csv", shared["EnrollmentID"], EXTRA_ENROLLMENT, ELSEWHERE
    )
    others = [r for r in enrollments if r["ProjectID"] != SCOPE]
    assert others and len(in_scope) > 2
    async with make_hub() as ctx:
        first = (await import_export(ctx, gen)).to_json()
        assert first["directive"] == "full" and first["deleted"] == 0
        before = {kind: await live_ids(ctx, kind) for kind in set(RECORD_KINDS.values())}

        cut = tmp_path / "cut"
        drop = {dropped["EnrollmentID"], shared["EnrollmentID"]}
        cut_to_project(tools, gen, cut, SCOPE, drop)
        summary = (await import_export(ctx, cut)).to_json()
        assert summary["directive"] == "full"
        after = {kind: await live_ids(ctx, kind) for kind in set(RECORD_KINDS.values())}

        # Inside the scope: the dropped enrollment, its rows and its client are deleted;
        # the client also enrolled elsewhere stays, its enrollment there too.
        assert (await stored(ctx, "enrollment", dropped["EnrollmentID"])).deleted is True
        assert (await stored(ctx, "enrollment", shared["EnrollmentID"])).deleted is True
        assert (await stored(ctx, "client", dropped["PersonalID"])).deleted is True
        assert (await stored(ctx, "client", shared["PersonalID"])).deleted is False
        assert (await stored(ctx, "enrollment", EXTRA_ENROLLMENT)).deleted is False
        below = {
            RECORD_KINDS[file]: rows_of(tools, gen, file, "EnrollmentID", drop)
            for file in ENROLLMENT_FILES
        }
        assert below["exit"]
        for kind, ids in below.items():
            for rid in ids:
                assert (await stored(ctx, kind, rid)).deleted is True, (kind, rid)
        deleted = {kind: before[kind] - after[kind] for kind in before}
        assert deleted["enrollment"] == drop
        assert deleted["client"] == {dropped["PersonalID"]}
        assert summary["files"]["Enrollment.csv"]["deleted"] == 2
        assert summary["files"]["Client.csv"]["deleted"] == 1
        assert summary["files"]["Exit.csv"]["deleted"] == len(below["exit"])
        # Outside it: nothing of the other projects is deleted.
        other_enrollments = {r["EnrollmentID"] for r in others} | {EXTRA_ENROLLMENT}
        assert other_enrollments <= after["enrollment"]
        assert {r["PersonalID"] for r in others} <= after["client"]
        for file in ENROLLMENT_FILES:
            kind = RECORD_KINDS[file]
            ids = set(rows_of(tools, gen, file, "EnrollmentID", other_enrollments))
            assert ids <= after[kind], file
        for file in PROJECT_FILES:
            kind = RECORD_KINDS[file]
            ids = set(rows_of(tools, gen, file, "ProjectID", {"201", "301"}))
            assert ids <= after[kind], file
        # Organisations, projects and users are never deleted by a full refresh.
        for kind in ("hmis.Organization", "hmis.Project", "hmis.User"):
            assert after[kind] == before[kind], kind
        # The cut carries every descriptor row of its project: none is deleted.
        for file in PROJECT_FILES:
            assert not deleted[RECORD_KINDS[file]], file

        # Importing the same cut again deletes nothing more.
        again = (await import_export(ctx, cut)).to_json()
        assert again["deleted"] == 0


async def test_clarity_full_refresh_drops_in_scope_descriptor_rows(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=10, seed=2, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        cut = tmp_path / "cut"
        cut_to_project(tools, gen, cut, SCOPE, set())
        (cut / "Funder.csv").write_text(
            (cut / "Funder.csv").read_text(encoding="utf-8").splitlines()[0] + "\n",
            encoding="utf-8",
        )
        summary = (await import_export(ctx, cut)).to_json()
        assert summary["files"]["Funder.csv"]["deleted"] == 1
        assert (await stored(ctx, "hmis.Funder", f"F{SCOPE}")).deleted is True
        for pid in ("201", "301"):
            assert (await stored(ctx, "hmis.Funder", f"F{pid}")).deleted is False
        assert summary["deleted"] == 1


async def test_clarity_full_refresh_without_projects_deletes_nothing(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=10, seed=2, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        cut = tmp_path / "cut"
        cut_to_project(tools, gen, cut, SCOPE, set())
        keep_rows(tools, cut / "Enrollment.csv", "ProjectID", set())
        (cut / "Project.csv").unlink()
        summary = (await import_export(ctx, cut)).to_json()
        assert summary["directive"] == "full"
        assert summary["deleted"] == 0
        found = tools.findings(summary["report"])
        skipped = [f for f in found if f["rule"] == "deletions-skipped"]
        assert [(f["file"], f["severity"]) for f in skipped] == [("Project.csv", "warning")]
        assert (await ctx.store.count_records("client"))["client"] == 10
