"""A --since delta stays self-contained when a row changed since its date names a parent
that was deleted before that date, or at an unknown time (before schema 10): the parent
leaves as a deletion row, so an empty hub that imports the delta accepts the row and ends
with the records, deleted flags and owners the sending hub has."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import FILES, RECORD_KINDS
from tests.clarity.test_clarity_delta import NEW, OLD, WHEN, _set_all_old
from tests.clarity.test_clarity_delta_deletions import (
    SOURCE,
    _hub,
    _pick,
    _records_of,
    _stored,
    _without_enrollments,
)

SINCE = "2025-03-01"
BEFORE = "2024-12-01 10:00:00"
"""A deletion time before SINCE (UTC in the store, as the hub's local time when TZ=UTC)."""


def _refreshed(tools: Any, gen: Path, out: Path, enrollments: set[str], client: str) -> Path:
    """A full refresh of ``gen`` without these enrollments and without ``client`` (whose
    enrollments must be among them): the hub marks all of them deleted."""
    _without_enrollments(tools, gen, out, enrollments)

    def drop(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index("PersonalID")
        return [rows[0], *(r for r in rows[1:] if r[at] != client)]

    tools.rewrite(out / "Client.csv", drop)
    return out


def _delta_in(
    tools: Any,
    gen: Path,
    out: Path,
    changed: Mapping[str, set[str]],
    deleted: frozenset[str] = frozenset(),
) -> Path:
    """A delta from the source: the rows of ``gen`` whose ids ``changed`` lists per file,
    updated at NEW (those in ``deleted`` deleted by the source at BEFORE instead)."""
    out.mkdir()
    shutil.copy(gen / "Export.csv", out / "Export.csv")

    def delta(rows: list[list[str]]) -> list[list[str]]:
        rows[1][rows[0].index("ExportDirective")] = "1"
        return rows

    tools.rewrite(out / "Export.csv", delta)
    for file, ids in changed.items():
        shutil.copy(gen / f"{file}.csv", out / f"{file}.csv")

        def edit(rows: list[list[str]], ids: set[str] = ids) -> list[list[str]]:
            head = rows[0]
            kept = [r for r in rows[1:] if r[0] in ids]
            for r in kept:
                gone = r[0] in deleted
                r[head.index("DateUpdated")] = BEFORE if gone else NEW
                r[head.index("DateDeleted")] = BEFORE if gone else ""
            return [head, *kept]

        tools.rewrite(out / f"{file}.csv", edit)
    return out


async def _set_deleted_at(ctx: Any, keys: list[tuple[str, str]], value: str | None) -> None:
    """When the store marked these records deleted: None as a store before schema 10 left
    them (an unknown time)."""
    async with ctx.store.transaction() as tx:
        for kind, source_id in keys:
            await tx._c.execute(
                "UPDATE records SET deleted_at=? WHERE kind=? AND source=? AND source_id=?",
                [value, kind, SOURCE, source_id],
            )


def _client_records(tools: Any, gen: Path, client: str) -> list[tuple[str, str]]:
    """(kind, id) of a client, its enrollments and every row below them in ``gen``."""
    out = [("client", client)]
    for row in tools.read_csv(gen / "Enrollment.csv"):
        if row["PersonalID"] == client:
            out += _records_of(tools, gen, row["EnrollmentID"])
    return out


async def _prepare(a: Any, tools: Any, gen: Path, tmp_path: Path) -> dict[str, str]:
    """Hub ``a`` holding, below rows changed since SINCE, parents deleted before it:

    - ``e1`` (client ``c1``) deleted at an unknown time; its Exit ``x1`` changed since;
    - client ``c2`` and all its enrollments deleted at an unknown time; its enrollment
      ``e2`` changed since (live again);
    - ``e3`` deleted at a known time before SINCE; its Exit ``x3`` changed since.
    """
    one, two, three = _pick(tools, gen, 3)
    ids = {
        "e1": one["EnrollmentID"],
        "c1": one["PersonalID"],
        "x1": one["ExitID"],
        "c2": two["PersonalID"],
        "e2": two["EnrollmentID"],
        "e3": three["EnrollmentID"],
        "c3": three["PersonalID"],
        "x3": three["ExitID"],
    }
    c2_enrollments = {
        r["EnrollmentID"]
        for r in tools.read_csv(gen / "Enrollment.csv")
        if r["PersonalID"] == ids["c2"]
    }
    gone = {ids["e1"], ids["e3"], *c2_enrollments}
    assert (await import_export(a, gen)).to_json()["errors"] == 0
    refreshed = _refreshed(tools, gen, tmp_path / "refreshed", gone, ids["c2"])
    assert (await import_export(a, refreshed)).to_json()["deleted"] > len(gone)
    await _set_deleted_at(a, _records_of(tools, gen, ids["e1"]), None)
    await _set_deleted_at(a, _client_records(tools, gen, ids["c2"]), None)
    await _set_deleted_at(a, _records_of(tools, gen, ids["e3"]), "2024-12-01T10:00:00+00:00")
    changed = {"Enrollment": {ids["e2"]}, "Exit": {ids["x1"], ids["x3"]}}
    summary = (await import_export(a, _delta_in(tools, gen, tmp_path / "in", changed))).to_json()
    assert summary["errors"] == 0 and summary["updated"] == 4  # + Export.csv
    for kind, key, deleted in (
        ("enrollment", "e1", True),
        ("exit", "x1", False),
        ("client", "c2", True),
        ("enrollment", "e2", False),
        ("enrollment", "e3", True),
    ):
        assert (await _stored(a, kind, ids[key])).deleted is deleted, key
    return ids


async def _same_as_sender(a: Any, b: Any, ids: Mapping[str, str]) -> int:
    """Every record ``b`` holds has ``a``'s deleted flag and owner; returns how many.

    Except the owner of ``c1``, whose one enrollment is deleted: an import gives a client
    the owner of its earliest *live* enrollment in the export, so a hub that starts from
    the delta gives it the default owner, where ``a`` kept the owner it had."""
    seen = 0
    for kind in sorted(set(RECORD_KINDS.values()) - {"hmis.Export"}):
        async for rows in b.store.iter_records(kind, SOURCE):
            for row in rows:
                sent = await _stored(a, kind, row.source_id)
                assert row.deleted is sent.deleted, (kind, row)
                if (kind, row.source_id) != ("client", ids["c1"]):
                    assert row.owner == sent.owner, (kind, row)
                seen += 1
    return seen


def _rows(tools: Any, out: Path, file: str) -> dict[str, dict[str, str]]:
    return {next(iter(r.values())): r for r in tools.read_csv(out / f"{file}.csv")}


def _same_bytes(one: Path, two: Path) -> None:
    for file in FILES:
        name = f"{file}.csv"
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_clarity_delta_carries_parents_deleted_before_its_date(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    async with _hub(make_hub, "a", dialect) as a, _hub(make_hub, "b", dialect) as b:
        ids = await _prepare(a, tools, gen, tmp_path)
        out = tmp_path / "delta"
        await export_hmis(a, out, csv_version="2026", since=SINCE, export_date=WHEN)
        await export_hmis(a, tmp_path / "again", csv_version="2026", since=SINCE, export_date=WHEN)
        _same_bytes(out, tmp_path / "again")

        enrollments = _rows(tools, out, "Enrollment")
        clients = _rows(tools, out, "Client")
        # Deleted at an unknown time: DateDeleted is the DateUpdated the row carries (no time
        # is invented), which stays as stored.
        for row in (enrollments[ids["e1"]], clients[ids["c2"]]):
            assert (row["DateDeleted"], row["DateUpdated"]) == (OLD, OLD)
        # Deleted before the delta's date, at a known time: that time.
        assert enrollments[ids["e3"]]["DateDeleted"] == BEFORE
        assert not enrollments[ids["e2"]]["DateDeleted"]
        assert {x: r["DateDeleted"] for x, r in _rows(tools, out, "Exit").items()} == {
            ids["x1"]: "",
            ids["x3"]: "",
        }

        summary = (await import_export(b, out)).to_json()
        assert summary["errors"] == 0, summary
        assert await _same_as_sender(a, b, ids) > 0
        for kind, key in (("exit", "x1"), ("enrollment", "e2"), ("exit", "x3")):
            assert not (await _stored(b, kind, ids[key])).deleted, key
        for kind, key in (("enrollment", "e1"), ("client", "c2"), ("enrollment", "e3")):
            assert (await _stored(b, kind, ids[key])).deleted, key


async def test_clarity_recipient_delta_carries_deleted_parents_the_gate_releases(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    async with make_hub("a") as a, make_hub("b") as b:
        ids = await _prepare(a, tools, gen, tmp_path)
        # The source deleted e2's project and its organisation before SINCE.
        project = next(
            r for r in tools.read_csv(gen / "Enrollment.csv") if r["EnrollmentID"] == ids["e2"]
        )["ProjectID"]
        org = _rows(tools, gen, "Project")[project]["OrganizationID"]
        descriptors = {"Organization": {org}, "Project": {project}}
        source_delta = _delta_in(
            tools, gen, tmp_path / "in2", descriptors, frozenset({org, project})
        )
        assert (await import_export(a, source_delta)).to_json()["deleted"] == 2
        await _set_deleted_at(
            a, [("hmis.Organization", org), ("hmis.Project", project)], "2024-12-01T10:00:00+00:00"
        )
        # c3 gave no consent: nothing of theirs goes, the deleted parent neither.
        await tools.give_consents(a, [ids["c1"], ids["c2"]])
        out = tmp_path / "delta"
        options: dict[str, Any] = {"recipient": "cie-211", "since": SINCE, "export_date": WHEN}
        await export_hmis(a, out, csv_version="2026", **options)
        await export_hmis(a, tmp_path / "again", csv_version="2026", **options)
        _same_bytes(out, tmp_path / "again")
        decisions: dict[str, list[str]] = {}
        async for entries in a.store.iter_audit():
            for entry in entries:
                body = orjson.loads(entry.body)
                if body.get("recipient") == "cie-211":
                    decisions.setdefault(str(body.get("record")), []).append(body["decision"])

        enrollments = _rows(tools, out, "Enrollment")
        assert enrollments[ids["e1"]]["DateDeleted"] == OLD
        assert _rows(tools, out, "Client")[ids["c2"]]["DateDeleted"] == OLD
        assert ids["e3"] not in enrollments and ids["c3"] not in _rows(tools, out, "Client")
        assert _rows(tools, out, "Project")[project]["DateDeleted"] == BEFORE
        assert _rows(tools, out, "Organization")[org]["DateDeleted"] == BEFORE
        # The deleted parents were decided by the gate, and audited.
        assert decisions[f"enrollment/{SOURCE}/{ids['e1']}"][-1] == "permit"
        assert decisions[f"client/{SOURCE}/{ids['c2']}"][-1] == "permit"

        summary = (await import_export(b, out)).to_json()
        assert summary["errors"] == 0, summary
        assert await _same_as_sender(a, b, ids) > 0
        assert not (await _stored(b, "exit", ids["x1"])).deleted
        assert not (await _stored(b, "enrollment", ids["e2"])).deleted
        assert (await _stored(b, "enrollment", ids["e1"])).deleted
        assert (await _stored(b, "hmis.Project", project)).deleted
