"""A --since delta carries the deletions made since its date: records a full refresh no longer
carried leave as rows with ``DateDeleted`` (and ``DateUpdated``) set to the time the hub
marked them, through every rule other delta rows follow (restriction, the consent gate for
a recipient, the parents a row needs), and another hub that imports the delta deletes them.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import FILES, RECORD_KINDS
from tests.clarity.test_clarity_delta import OLD, _set_all_old
from tests.conftest import fresh_pg_database

SOURCE = "hmis:synthetic"


def _without_enrollments(tools: Any, gen: Path, out: Path, enrollments: set[str]) -> Path:
    """A copy of the export ``gen`` without these enrollments and every row below them."""
    shutil.copytree(gen, out)
    for file in FILES[1:]:
        path = out / f"{file}.csv"
        if not path.exists():
            continue

        def edit(rows: list[list[str]]) -> list[list[str]]:
            if "EnrollmentID" not in rows[0]:
                return rows
            at = rows[0].index("EnrollmentID")
            return [rows[0], *(r for r in rows[1:] if r[at] not in enrollments)]

        tools.rewrite(path, edit)
    return out


def _pick(tools: Any, gen: Path, count: int) -> list[dict[str, str]]:
    """``count`` enrollments that have an Exit row, of different clients."""
    exits = tools.read_csv(gen / "Exit.csv")
    picked: list[dict[str, str]] = []
    for row in exits:
        if row["PersonalID"] not in {p["PersonalID"] for p in picked}:
            picked.append(row)
        if len(picked) == count:
            return picked
    raise AssertionError("the generated export has too few exits")


def _since_before_now() -> str:
    """A --since time just before now (local time, as HUD times)."""
    return (datetime.now() - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")


async def _stored(ctx: Any, kind: str, source_id: str) -> Any:
    """The stored row of one record of the synthetic source."""
    async with ctx.store.transaction() as tx:
        return await tx.get_record(kind, SOURCE, source_id)


@asynccontextmanager
async def _hub(make_hub: Any, name: str, dialect: str) -> AsyncIterator[Any]:
    """A hub on SQLite, or on a fresh PostgreSQL database of the test server."""
    if dialect == "sqlite":
        async with make_hub(name) as ctx:
            yield ctx
    else:
        async with fresh_pg_database() as url, make_hub(name, store_url=url) as ctx:
            yield ctx


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_clarity_delta_carries_a_full_refresh_deletion_to_another_hub(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    [gone] = _pick(tools, gen, 1)
    enrollment, client, exit_id = gone["EnrollmentID"], gone["PersonalID"], gone["ExitID"]
    others = {
        r["EnrollmentID"]
        for r in tools.read_csv(gen / "Enrollment.csv")
        if r["PersonalID"] == client and r["EnrollmentID"] != enrollment
    }
    refreshed = _without_enrollments(tools, gen, tmp_path / "refreshed", {enrollment})
    async with _hub(make_hub, "a", dialect) as a, _hub(make_hub, "b", dialect) as b:
        assert (await import_export(a, gen)).to_json()["errors"] == 0
        await export_hmis(a, tmp_path / "full", csv_version="2026")
        assert (await import_export(b, tmp_path / "full")).to_json()["errors"] == 0

        since = _since_before_now()
        before = datetime.now().replace(microsecond=0) - timedelta(seconds=1)
        summary = (await import_export(a, refreshed)).to_json()
        after = datetime.now()
        assert summary["errors"] == 0 and summary["deleted"] >= 2  # the enrollment, its exit
        stored = await _stored(a, "enrollment", enrollment)
        assert stored.deleted and stored.deleted_at is not None

        await export_hmis(a, tmp_path / "delta", csv_version="2026", since=since)
        delta = tmp_path / "delta"
        rows = {r["EnrollmentID"]: r for r in tools.read_csv(delta / "Enrollment.csv")}
        assert set(rows) == {enrollment, *others}  # the deletion and its client's enrollments
        deleted = rows[enrollment]
        assert deleted["DateDeleted"], "the deletion row carries no DateDeleted"
        marked = datetime.strptime(deleted["DateDeleted"], "%Y-%m-%d %H:%M:%S")
        assert before <= marked <= after, "DateDeleted is not the (local) time of the refresh"
        assert deleted["DateUpdated"] == deleted["DateDeleted"]  # newer than the stored one
        assert all(not rows[e]["DateDeleted"] and rows[e]["DateUpdated"] == OLD for e in others)
        exits = {r["ExitID"]: r for r in tools.read_csv(delta / "Exit.csv")}
        assert set(exits) == {exit_id} and exits[exit_id]["DateDeleted"]
        assert [r["PersonalID"] for r in tools.read_csv(delta / "Client.csv")] == [client]
        export_row = tools.read_csv(delta / "Export.csv")[0]
        assert (export_row["ExportDirective"], export_row["ExportPeriodType"]) == ("1", "1")

        again = (await import_export(b, delta)).to_json()
        assert again["errors"] == 0, again
        assert (await _stored(b, "enrollment", enrollment)).deleted
        assert (await _stored(b, "exit", exit_id)).deleted
        assert not (await _stored(b, "client", client)).deleted
        for other in others:
            assert not (await _stored(b, "enrollment", other)).deleted

        # A full export keeps leaving the deleted record out (a receiver's full refresh
        # deletes it).
        await export_hmis(a, tmp_path / "full-after", csv_version="2026")
        full = tools.read_csv(tmp_path / "full-after" / "Enrollment.csv")
        assert enrollment not in {r["EnrollmentID"] for r in full}


async def test_clarity_delta_leaves_out_deletions_at_an_unknown_time_and_restricted_ones(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    first, second, control = _pick(tools, gen, 3)
    gone = {first["EnrollmentID"], second["EnrollmentID"]}
    refreshed = _without_enrollments(
        tools, gen, tmp_path / "refreshed", {*gone, control["EnrollmentID"]}
    )
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        since = _since_before_now()
        await import_export(ctx, refreshed)
        async with ctx.store.transaction() as tx:
            # The first enrollment's records as a store before schema 10 left them (deleted at
            # an unknown time); the second's restricted (its organisation became a victim
            # service provider).
            for column, enrollment in (
                ("deleted_at=NULL", first["EnrollmentID"]),
                ("restricted=1", second["EnrollmentID"]),
            ):
                for kind, source_id in _records_of(tools, gen, enrollment):
                    await tx._c.execute(
                        f"UPDATE records SET {column} WHERE kind=? AND source=? AND source_id=?",
                        [kind, SOURCE, source_id],
                    )
        await export_hmis(ctx, tmp_path / "delta", csv_version="2026", since=since)
    deleted: set[tuple[str, str]] = set()
    for file in FILES[1:]:
        rows = tools.read_csv(tmp_path / "delta" / f"{file}.csv")
        assert not [r for r in rows if r.get("EnrollmentID") in gone], file
        deleted |= {(RECORD_KINDS[file], r[next(iter(r))]) for r in rows if r.get("DateDeleted")}
    # The control enrollment (deleted since, time known, not restricted) and its rows go.
    assert deleted == set(_records_of(tools, gen, control["EnrollmentID"]))


def _records_of(tools: Any, gen: Path, enrollment: str) -> list[tuple[str, str]]:
    """(kind, id) of an enrollment and of every row below it in the export ``gen``."""
    out: list[tuple[str, str]] = []
    for file in FILES[1:]:
        path = gen / f"{file}.csv"
        if path.exists():
            for row in tools.read_csv(path):
                if row.get("EnrollmentID") == enrollment:
                    out.append((RECORD_KINDS[file], next(iter(row.values()))))
    return out


async def test_clarity_deletion_row_with_the_stored_date_updated_deletes(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """A row that arrives deleted with the ``DateUpdated`` already stored is an update (the
    deletion), not an older row refused."""
    gen = write_export(tmp_path / "gen", clients=6, seed=2)
    [row] = _pick(tools, gen, 1)
    enrollment = row["EnrollmentID"]
    delta = tmp_path / "delta"
    shutil.copytree(gen, delta)

    def mark(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        for r in rows[1:]:
            if r[head.index("EnrollmentID")] == enrollment:
                r[head.index("DateDeleted")] = r[head.index("DateUpdated")]
        return rows

    tools.rewrite(delta / "Enrollment.csv", mark)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        version = (await _stored(ctx, "enrollment", enrollment)).version
        summary = (await import_export(ctx, delta, directive="delta")).to_json()
        stored = await _stored(ctx, "enrollment", enrollment)
    assert summary["errors"] == 0 and summary["stale"] == 0
    assert summary["deleted"] == 1 and summary["updated"] == 1
    assert stored.deleted and stored.version == version and stored.deleted_at is not None


async def test_clarity_recipient_delta_carries_only_deletions_the_gate_releases(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    allowed, denied = _pick(tools, gen, 2)
    gone = {allowed["EnrollmentID"], denied["EnrollmentID"]}
    refreshed = _without_enrollments(tools, gen, tmp_path / "refreshed", gone)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        await tools.give_consents(ctx, [allowed["PersonalID"]])
        since = _since_before_now()
        await import_export(ctx, refreshed)
        summary = await export_hmis(
            ctx, tmp_path / "delta", csv_version="2026", recipient="cie-211", since=since
        )
        await export_hmis(ctx, tmp_path / "full", csv_version="2026", recipient="cie-211")
        decisions: dict[str, list[str]] = {}
        async for entries in ctx.store.iter_audit():
            for entry in entries:
                body = orjson.loads(entry.body)
                if body.get("recipient") == "cie-211":
                    decisions.setdefault(str(body.get("record")), []).append(body["decision"])
    out = tmp_path / "delta"
    enrollments = {r["EnrollmentID"]: r for r in tools.read_csv(out / "Enrollment.csv")}
    assert allowed["EnrollmentID"] in enrollments
    assert enrollments[allowed["EnrollmentID"]]["DateDeleted"]
    assert denied["EnrollmentID"] not in enrollments
    assert {r["PersonalID"] for r in enrollments.values()} == {allowed["PersonalID"]}
    assert {r["PersonalID"] for r in tools.read_csv(out / "Client.csv")} == {allowed["PersonalID"]}
    exits = tools.read_csv(out / "Exit.csv")
    assert [(r["ExitID"], bool(r["DateDeleted"])) for r in exits] == [(allowed["ExitID"], True)]
    projects = {r["ProjectID"] for r in tools.read_csv(out / "Project.csv")}
    assert enrollments[allowed["EnrollmentID"]]["ProjectID"] in projects
    assert summary.withheld_records >= 2  # the denied deletions (enrollment, exit) at least
    # Each deletion was decided by the gate and audited, the denied one too.
    assert decisions[f"enrollment/{SOURCE}/{allowed['EnrollmentID']}"][-1] == "permit"
    assert decisions[f"enrollment/{SOURCE}/{denied['EnrollmentID']}"] == ["deny"]
    # A full recipient export carries no deletion.
    full = {r["EnrollmentID"] for r in tools.read_csv(tmp_path / "full" / "Enrollment.csv")}
    assert not full & gone
