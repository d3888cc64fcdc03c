"""A recipient's export refused for its --export-date leaves the audit log as it was (no
release of a row that never left): the date is checked, before the gate decides anything,
against every row of the source in the export's scope, those the gate would withhold too. A
killed export's staging folder is removed by the next export into the same --out; the folder
of an export still running is left alone."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.audit import verify_store
from plugins.clarity.exporter import ExportError, ExportSummary, _Writer, export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import FY2026
from tests.clarity.test_clarity_delta import _set_all_old
from tests.clarity.test_clarity_delta_deletions import (
    _hub,
    _pick,
    _since_before_now,
    _without_enrollments,
)

LATE = "2025-06-01 00:00:00"
"""A DateUpdated later than every other of the generated export (it ends in early 2025)."""
HOLD_LOCK = (
    "import fcntl, sys, time\n"
    "f = open(sys.argv[1], 'a')\n"
    "fcntl.flock(f, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(120)\n"
)


async def _audit_entries(ctx: Any) -> int:
    return sum([len(rows) async for rows in ctx.store.iter_audit()])


async def _audit_ok(ctx: Any) -> bool:
    return bool((await verify_store(ctx.store, ctx.keys)).ok)


def _latest_written(tools: Any, out: Path) -> str:
    """The latest DateUpdated / DateDeleted of the rows an export wrote."""
    return max(
        row.get(column) or ""
        for path in out.glob("*.csv")
        for row in tools.read_csv(path)
        for column in ("DateUpdated", "DateDeleted")
    )


def _late_client(tools: Any, gen: Path) -> str:
    """Make the last client's row the latest of the export; its PersonalID."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[-1][rows[0].index("DateUpdated")] = LATE
        return rows

    tools.rewrite(gen / "Client.csv", edit)
    return tools.read_csv(gen / "Client.csv")[-1]["PersonalID"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_a_refused_recipient_export_audits_nothing(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    gen = write_export(tmp_path / "gen", clients=20, seed=5, version="2026")
    late = _late_client(tools, gen)
    consented = [r["PersonalID"] for r in tools.read_csv(gen / "Client.csv")][:3]
    assert late not in consented
    async with _hub(make_hub, "hub", dialect) as ctx:
        await import_export(ctx, gen)
        await tools.give_consents(ctx, consented)

        async def export(out: str, when: datetime | None, recipient: str | None = "cie-211") -> Any:
            return await export_hmis(
                ctx, tmp_path / out, csv_version="2026", recipient=recipient, export_date=when
            )

        start = await _audit_entries(ctx)
        plain = await export("plain", None)
        decisions = await _audit_entries(ctx) - start
        assert decisions > 0 and plain.persons == 3
        latest = datetime.fromisoformat(_latest_written(tools, tmp_path / "plain"))
        assert latest < datetime.fromisoformat(LATE)

        before = await _audit_entries(ctx)
        with pytest.raises(ExportError, match="updated or deleted after it") as refused:
            await export("refused", latest - timedelta(seconds=1))
        assert "nothing was written" in str(refused.value) and late not in str(refused.value)
        assert await _audit_entries(ctx) == before, "a refused export left audit entries"
        assert await _audit_ok(ctx)
        assert not (tmp_path / "refused").exists()

        # The late client's row is not released to the recipient, but it is a row of the
        # source: the date is refused all the same, before any decision (and the message
        # names no client).
        with pytest.raises(ExportError, match="the latest at 2025-06-01 00:00:00") as refused:
            await export("withheld", latest)
        assert late not in str(refused.value)
        assert await _audit_entries(ctx) == before and await _audit_ok(ctx)
        with pytest.raises(ExportError, match="updated or deleted after it"):
            await export("operator", latest, recipient=None)

        # At the source's latest row the export goes, and audits every decision, as one
        # without --export-date does.
        dated = await export("dated", datetime.fromisoformat(LATE))
        assert await _audit_entries(ctx) == before + decisions
        assert await _audit_ok(ctx)
        assert dated.files == plain.files and dated.persons == plain.persons


async def test_a_refused_recipient_delta_of_deletions_audits_nothing(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """Deletion rows (dated when the hub marked them) refuse an earlier export date."""
    gen = write_export(tmp_path / "gen", clients=12, seed=4)
    _set_all_old(tools, gen)
    [gone] = _pick(tools, gen, 1)
    refreshed = _without_enrollments(tools, gen, tmp_path / "refreshed", {gone["EnrollmentID"]})
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        since = _since_before_now()
        await import_export(ctx, refreshed)  # the enrollment and its exit: deleted now
        when = datetime.fromisoformat(since)

        async def delta(out: str, at: datetime | None) -> Any:
            return await export_hmis(
                ctx,
                tmp_path / out,
                csv_version="2026",
                recipient="cie-211",
                since=since,
                export_date=at,
            )

        # Refused before the gate decides: with or without a consent that would release
        # the deletions, the log is left as it was.
        start = await _audit_entries(ctx)
        with pytest.raises(ExportError, match=r": \d+ rows to export were updated or deleted"):
            await delta("denied", when)
        assert await _audit_entries(ctx) == start, "a refused export left audit entries"
        await tools.give_consents(ctx, [gone["PersonalID"]])
        start = await _audit_entries(ctx)
        with pytest.raises(ExportError, match=r": \d+ rows to export were updated or deleted"):
            await delta("refused", when)
        assert await _audit_entries(ctx) == start, "a refused export left audit entries"
        assert await _audit_ok(ctx)
        assert not (tmp_path / "denied").exists() and not (tmp_path / "refused").exists()
        released = await delta("released", datetime.now() + timedelta(hours=1))
        assert released.files["Enrollment.csv"] > 0
        assert await _audit_entries(ctx) > start and await _audit_ok(ctx)


async def test_an_export_removes_staging_folders_of_exports_no_longer_running(
    make_hub: Any, tmp_path: Path, caplog: Any
) -> None:
    gen = write_export(tmp_path / "gen", clients=6, seed=2, version="2026")
    out = tmp_path / "out"
    dead = out / ".export-dead.partial"  # its lock file is there, nobody holds it
    dead.mkdir(parents=True)
    (dead / ".lock").touch()
    (dead / "Client.csv").write_text("PersonalID\n", encoding="utf-8")
    older = out / ".export-older.partial"  # no lock file: left by a hub before the lock
    older.mkdir()
    held = out / ".export-held.partial"  # its export (another process) still runs
    held.mkdir()
    with _held_elsewhere(held / ".lock") as holder:
        async with make_hub() as ctx:
            await import_export(ctx, gen)
            running = _Writer(out, FY2026, ExportSummary(out=str(out), csv_version="FY2026"))
            try:
                with caplog.at_level(logging.INFO, logger="hub.clarity"):
                    await export_hmis(ctx, out, csv_version="2026")
                assert running.staging.is_dir(), "the folder of a running export was removed"
            finally:
                running.discard()
            assert not dead.exists() and not older.exists()
            assert held.is_dir() and (held / ".lock").exists()
            removed = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
            assert removed == [
                "clarity export: removed 2 staging folders of exports no longer running"
            ]
            assert len(list(out.glob("*.csv"))) == 24

            holder.kill()  # the export holding it is killed
            holder.wait()
            await export_hmis(ctx, out, csv_version="2026")
            assert not held.exists()
            assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@contextmanager
def _held_elsewhere(lock: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding ``lock`` locked (exclusive) until it is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


async def test_exports_into_one_folder_move_their_files_in_one_at_a_time(
    make_hub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another export moves its files into --out (it holds the folder's lock), an
    export waits, and gives up with a clear error, leaving --out as it was, when it waits
    too long: two exports never leave a mix of their files."""
    import fcntl
    import os
    import threading

    from plugins.clarity import exporter

    gen = write_export(tmp_path / "gen", clients=6, seed=2, version="2026")
    out = tmp_path / "out"
    out.mkdir()
    other = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # the other export, moving its files
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        async with make_hub() as ctx:
            await import_export(ctx, gen)
            monkeypatch.setattr(exporter, "_COMMIT_WAIT", 0.3)
            with pytest.raises(ExportError, match=r"another export kept .* locked for 0.3 s"):
                await export_hmis(ctx, out, csv_version="2026")
            assert list(out.iterdir()) == []  # nothing moved in, no staging folder left

            monkeypatch.setattr(exporter, "_COMMIT_WAIT", 10.0)
            threading.Timer(0.3, fcntl.flock, (other, fcntl.LOCK_UN)).start()
            summary = await export_hmis(ctx, out, csv_version="2026")
            assert summary.files["Client.csv"] > 0
            assert sorted(p.name for p in out.iterdir()) == sorted(
                f"{name}.csv" for name in exporter.FILES
            )
    finally:
        os.close(other)


async def test_an_export_to_a_providers_own_restricted_rows_is_refused_before_the_gate(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    """A victim service provider gets its own restricted rows, which an operator's export
    never carries: the date check counts them too, so the refusal still comes first."""
    from tests.clarity.test_clarity_recipient import VSP_PROJECT, projects_of

    gen = write_export(tmp_path / "gen", clients=40, seed=6, version="2026", vsp=True)
    sheltered = min(p for p, project in projects_of(tools, gen).items() if project == VSP_PROJECT)

    def edit(rows: list[list[str]]) -> list[list[str]]:
        at, pid = rows[0].index("DateUpdated"), rows[0].index("PersonalID")
        for row in rows[1:]:
            if row[pid] == sheltered:
                row[at] = LATE
        return rows

    tools.rewrite(gen / "Client.csv", edit)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        provider = "hmis-org-4"
        assert ctx.gate.agencies[provider].kind == "vsp"
        own = await export_hmis(ctx, tmp_path / "own", csv_version="2026", recipient=provider)
        assert own.persons > 0
        before = await _audit_entries(ctx)
        with pytest.raises(ExportError, match="the latest at 2025-06-01 00:00:00"):
            await export_hmis(
                ctx,
                tmp_path / "refused",
                csv_version="2026",
                recipient=provider,
                export_date=datetime.fromisoformat(LATE) - timedelta(days=1),
            )
        assert await _audit_entries(ctx) == before, "a refused export left audit entries"
