"""Delta and full-refresh semantics: versions, DateDeleted, the full-refresh scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.core.rows import row_to_record
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export

SOURCE = "hmis:synthetic"


def set_cells(tools: Any, path: Path, key: str, **cells: str) -> None:
    """Set columns of the row whose first column is ``key``."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        for row in rows[1:]:
            if row[0] == key:
                for col, value in cells.items():
                    row[header.index(col)] = value
        return rows

    tools.rewrite(path, edit)


def drop_rows(tools: Any, path: Path, column: str, value: str) -> None:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index(column)
        return [rows[0], *(r for r in rows[1:] if r[at] != value)]

    tools.rewrite(path, edit)


async def stored(ctx: Any, kind: str, rid: str, source: str = SOURCE) -> Any:
    async with ctx.store.transaction() as tx:
        return await tx.get_record(kind, source, rid)


async def test_clarity_older_date_updated_never_overwrites(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=6, seed=1, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        before = await stored(ctx, "client", "100000")
        set_cells(
            tools,
            gen / "Client.csv",
            "100000",
            FirstName="Older",
            DateUpdated="2019-01-01 00:00:00",
        )
        summary = (await import_export(ctx, gen)).to_json()
        assert summary["files"]["Client.csv"]["stale"] == 1
        after = await stored(ctx, "client", "100000")
        assert after.version == before.version and after.payload == before.payload
        assert row_to_record(after).names[0].given[0] != "Older"  # type: ignore[attr-defined]

        set_cells(
            tools,
            gen / "Client.csv",
            "100000",
            FirstName="Newer",
            DateUpdated="2025-10-01 08:00:00",
        )
        summary = (await import_export(ctx, gen)).to_json()
        assert summary["files"]["Client.csv"]["updated"] == 1
        newest = await stored(ctx, "client", "100000")
        assert newest.version == "2025-10-01T08:00:00"
        assert row_to_record(newest).names[0].given[0] == "Newer"  # type: ignore[attr-defined]


async def test_clarity_date_deleted_marks_the_record_deleted(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=6, seed=1, version="2024", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        set_cells(
            tools, gen / "Enrollment.csv", "500003",
            DateDeleted="2025-10-02 09:00:00", DateUpdated="2025-10-02 09:00:00",
        )  # fmt: skip
        summary = (await import_export(ctx, gen)).to_json()
        assert summary["files"]["Enrollment.csv"]["deleted"] == 1
        row = await stored(ctx, "enrollment", "500003")
        assert row.deleted is True
        assert (await ctx.store.count_records("enrollment"))["enrollment"] == 5


async def test_clarity_full_refresh_replaces_only_its_scope(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=8, seed=2, version="2026")
    other = write_export(
        tmp_path / "other", clients=3, seed=9, version="2026", implementation_id="other-hmis"
    )
    async with make_hub() as ctx:
        await import_export(ctx, other)
        await import_export(ctx, gen)
        services_before = await ctx.store.count_records("service")
        # The next full export no longer carries client 100007 (nor its enrollment) and
        # has no Services.csv at all.
        drop_rows(tools, gen / "Client.csv", "PersonalID", "100007")
        for file in ("Enrollment", "Exit", "HealthAndDV", "IncomeBenefits", "Disabilities",
                     "EmploymentEducation", "CurrentLivingSituation"):  # fmt: skip
            drop_rows(tools, gen / f"{file}.csv", "PersonalID", "100007")
        (gen / "Services.csv").unlink()
        summary = (await import_export(ctx, gen)).to_json()
        assert summary["directive"] == "full"
        assert summary["files"]["Client.csv"]["deleted"] == 1
        assert summary["files"]["Enrollment.csv"]["deleted"] == 1
        assert summary["missing_files"] == ["Services.csv"]
        assert (await stored(ctx, "client", "100007")).deleted is True
        assert (await stored(ctx, "client", "100006")).deleted is False
        # Outside the scope: the other source and the file the export did not carry.
        assert await ctx.store.count_records("service") == services_before
        for pid in ("100000", "100001", "100002"):
            assert (await stored(ctx, "client", pid, "hmis:other-hmis")).deleted is False


async def test_clarity_delta_never_deletes_and_override(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=5, seed=3, version="2026", details=False)
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        drop_rows(tools, gen / "Client.csv", "PersonalID", "100004")
        drop_rows(tools, gen / "Enrollment.csv", "PersonalID", "100004")
        delta = (await import_export(ctx, gen, directive="delta")).to_json()
        assert delta["directive"] == "delta" and delta["deleted"] == 0
        assert (await stored(ctx, "client", "100004")).deleted is False
        full = (await import_export(ctx, gen, directive="full")).to_json()
        assert full["files"]["Client.csv"]["deleted"] == 1
        # Re-importing the same export changes nothing.
        again = (await import_export(ctx, gen, directive="full")).to_json()
        assert again["unchanged"] == again["rows_read"]
        assert again["inserted"] == again["updated"] == again["deleted"] == 0


async def test_clarity_dry_run_stores_nothing(make_hub: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=5, seed=3, version="2026")
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen, dry_run=True)).to_json()
        assert summary["dry_run"] is True
        assert summary["accepted"] == summary["rows_read"] and summary["inserted"] == 0
        assert await ctx.store.count_records() == {}
        assert "hmis-org-2" not in ctx.gate.agencies
