"""Damaged input: unclosed quotes, rows that cannot be read on a full refresh, damaged zip
members, files without a header, an unreadable DateDeleted. Each costs what it must (a row,
a file's deletions, the import) and no more, and no finding carries a value."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hub.cli_support import CliState
from plugins.clarity import dropfolder
from plugins.clarity.csvio import (
    MAX_RECORD_LINES,
    ExportSource,
    ImportRefused,
    iter_rows,
    open_table,
)
from plugins.clarity.dropfolder import scan_drop_folder
from plugins.clarity.findings import MemoryReport
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import columns

SOURCE = "hmis:synthetic"


# ---- helpers ------------------------------------------------------------------------------


def unquote(tools: Any, path: Path) -> None:
    """Rewrite a generated file with minimal quoting (as Clarity writes: values bare)."""
    tools.rewrite(path, lambda rows: rows)
    assert '"' not in path.read_text(encoding="utf-8")


def edit_cell(path: Path, line: int, column: str, edit: Any) -> str:
    """Edit one cell of physical ``line`` (1-based) of an unquoted file; returns the old value."""
    lines = path.read_text(encoding="utf-8").split("\n")
    at = lines[0].split(",").index(column)
    cells = lines[line - 1].split(",")
    old = cells[at]
    cells[at] = edit(old)
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")
    return old


def row_of(path: Path, key: str) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return next(r for r in csv.DictReader(handle) if next(iter(r.values())) == key)


def of_rule(found: list[dict[str, Any]], rule: str, file: str | None = None) -> list[Any]:
    return [f for f in found if f["rule"] == rule and (file is None or f["file"] == file)]


async def stored(ctx: Any, kind: str, rid: str) -> Any:
    async with ctx.store.transaction() as tx:
        return await tx.get_record(kind, SOURCE, rid)


def client_csv(folder: Path, rows: list[list[str]], tail: str = "") -> Path:
    """A folder holding a FY2026 Client.csv of these rows (written with csv), then ``tail``."""
    names = [c.name for c in columns("2026", "Client")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(row + [""] * (len(names) - len(row)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Client.csv").write_text(out.getvalue() + tail, encoding="utf-8")
    return folder


def read_rows(folder: Path) -> tuple[list[tuple[int, list[str]]], MemoryReport, Any]:
    report = MemoryReport()
    src = ExportSource(folder)
    table = open_table(src, "Client", columns("2026", "Client"), report)
    assert table is not None
    try:
        rows = list(iter_rows(table, report))
    finally:
        table.close()
    return rows, report, table


# ---- 1. a quote that is never closed costs one row ------------------------------------------


async def test_clarity_unclosed_quote_costs_one_row(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=30, seed=1, version="2026", details=False)
    unquote(tools, gen / "Client.csv")
    # Lines 4 and 20 (clients 100002 and 100018) open a quote they never close.
    first = edit_cell(gen / "Client.csv", 4, "FirstName", lambda x: '"' + x)
    last = edit_cell(gen / "Client.csv", 20, "LastName", lambda x: '"' + x)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
        assert (await ctx.store.count_records("client"))["client"] == 28
        assert await stored(ctx, "client", "100002") is None
        assert await stored(ctx, "client", "100018") is None
        for pid in ("100001", "100003", "100017", "100019", "100029"):
            assert await stored(ctx, "client", pid) is not None
    stats = summary["files"]["Client.csv"]
    assert (stats["rows"], stats["accepted"], stats["errors"]) == (28, 28, 2)
    quotes = of_rule(found, "unterminated-quote", "Client.csv")
    assert [(f["line"], f["severity"], f["column"]) for f in quotes] == [
        (4, "error", ""),
        (20, "error", ""),
    ]
    assert "never closed" in quotes[0]["message"]
    assert not of_rule(found, "column-count")
    text = json.dumps(found)
    assert first not in text and last not in text


def test_clarity_quoted_line_breaks_are_one_row_at_its_first_line(tmp_path: Path) -> None:
    folder = client_csv(
        tmp_path / "x",
        [["1", "two\nlines"], ["2", "Ann"], ["3", "three\nline\nvalue"], ["4", "Bo"]],
    )
    rows, report, table = read_rows(folder)
    assert [(line, v[0], v[1]) for line, v in rows] == [
        (2, "1", "two\nlines"),
        (4, "2", "Ann"),
        (5, "3", "three\nline\nvalue"),
        (8, "4", "Bo"),
    ]
    assert report.findings == [] and table.unread == 0


def test_clarity_unclosed_quote_gives_up_after_a_bound(tmp_path: Path) -> None:
    """A quote left open does not swallow (nor hold in memory) the rest of a large file: it
    is given up after MAX_RECORD_LINES lines and those lines are read again."""
    n = 20_000
    good = [[str(100 + i), f"Name{i}", "", "Last", "", "1"] for i in range(n)]
    folder = client_csv(tmp_path / "x", [["1", "Ann"], ["2", "Bea"], *good])
    path = folder / "Client.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].replace(",Bea,", ',"Bea,', 1)  # line 3 opens a quote, never closed
    lines.insert(8, "")  # a blank line 9 in what the open quote swallows
    path.write_text("\n".join(lines), encoding="utf-8")
    bound = 2 * MAX_RECORD_LINES * len(lines[5]) + 64 * 1024  # the bound's lines, buffers
    assert path.stat().st_size > 10 * bound

    report = MemoryReport()
    table = open_table(ExportSource(folder), "Client", columns("2026", "Client"), report)
    assert table is not None
    rows = iter_rows(table, report)
    assert next(rows)[0] == 2
    line, values = next(rows)  # the row after the unclosed quote, read again
    assert (line, values[0]) == (4, "100")
    assert table.position() < bound  # the open quote did not read on to the end
    rest = list(rows)
    table.close()
    assert len(rest) == n - 1
    assert rest[-1][0] == n + 4  # line numbers stay true (the blank line counted)
    assert [(f.rule, f.line, f.severity) for f in report.findings] == [
        ("unterminated-quote", 3, "error"),
        ("blank-row", 9, "warning"),
    ]
    assert table.unread == 1


def test_clarity_row_read_errors_are_counted(tmp_path: Path) -> None:
    folder = client_csv(tmp_path / "x", [["1", "Ann"]], tail='2,Bo\n3,"Cy\n4,Di,,Last\n')
    rows, report, table = read_rows(folder)
    assert [line for line, _v in rows] == [2]
    assert [(f.rule, f.line) for f in report.findings] == [
        ("column-count", 3),
        ("unterminated-quote", 4),
        ("column-count", 5),
    ]
    assert table.unread == 3


# ---- 2. a full refresh never deletes what it could not read --------------------------------


async def test_clarity_full_refresh_keeps_what_it_could_not_read(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=8, seed=2, version="2026", details=False)
    async with make_hub() as ctx:
        first = (await import_export(ctx, gen)).to_json()
        assert first["directive"] == "full"
        before = await stored(ctx, "client", "100003")

        def drop(file: str, pid: str) -> None:
            tools.rewrite(
                gen / file,
                lambda rows: [
                    rows[0],
                    *(r for r in rows[1:] if r[rows[0].index("PersonalID")] != pid),
                ],
            )

        # Client 100007 left the export; client 100003's row cannot be read (an unclosed
        # quote), client 100005's has a field too many. Enrollment.csv reads fine: 100007's
        # enrollment is gone, and 100002's names a project nobody knows (refused, id known).
        drop("Client.csv", "100007")
        unquote(tools, gen / "Client.csv")
        edit_cell(gen / "Client.csv", 5, "FirstName", lambda x: '"' + x)
        edit_cell(gen / "Client.csv", 7, "FirstName", lambda x: x + ",extra")
        drop("Enrollment.csv", "100007")
        enrollment = row_of(gen / "Enrollment.csv", "500002")
        assert enrollment["PersonalID"] == "100002"

        def orphan(rows: list[list[str]]) -> list[list[str]]:
            for row in rows[1:]:
                if row[0] == "500002":
                    row[rows[0].index("ProjectID")] = "999"
            return rows

        tools.rewrite(gen / "Enrollment.csv", orphan)
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
        # Nothing of Client.csv was deleted: not the unread rows, nor the one that left.
        assert summary["files"]["Client.csv"]["deleted"] == 0
        for pid in ("100003", "100005", "100007"):
            assert (await stored(ctx, "client", pid)).deleted is False
        after = await stored(ctx, "client", "100003")
        assert (after.version, after.payload) == (before.version, before.payload)
        # Enrollment.csv had no read error: its deletions happen; a row refused for an error
        # whose id is known stays as stored.
        assert summary["files"]["Enrollment.csv"]["deleted"] == 1
        assert (await stored(ctx, "enrollment", "500007")).deleted is True
        assert (await stored(ctx, "enrollment", "500002")).deleted is False
    skipped = of_rule(found, "deletions-skipped")
    assert [(f["file"], f["severity"]) for f in skipped] == [("Client.csv", "warning")]
    assert "2 rows could not be read" in skipped[0]["message"]
    assert {f["rule"] for f in found if f["file"] == "Client.csv" and f["severity"] == "error"} == {
        "unterminated-quote",
        "column-count",
    }
    fk = of_rule(found, "foreign-key", "Enrollment.csv")
    assert [(f["record"], f["column"]) for f in fk] == [("500002", "ProjectID")]


# ---- 3. a damaged zip member: a clear refusal, and the drop folder goes on -----------------


def damaged_zip(folder: Path, target: Path, compression: int) -> Path:
    """A zip of ``folder`` whose Client.csv fails its CRC (or its decompression)."""
    with zipfile.ZipFile(target, "w", compression=compression) as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.name)
    with zipfile.ZipFile(target) as z:
        info = z.getinfo("Client.csv")
    data = bytearray(target.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    at = start + info.compress_size * 3 // 4
    while compression == zipfile.ZIP_STORED and not chr(data[at]).isalpha():
        at += 1  # a letter, so the bytes still read as CSV: only the CRC tells
    data[at] ^= 0x01 if compression == zipfile.ZIP_STORED else 0x5A
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_clarity_damaged_zip_member_is_refused_by_name(
    make_hub: Any, tmp_path: Path, compression: int
) -> None:
    gen = write_export(tmp_path / "gen", clients=400, seed=1, version="2026", details=False)
    target = damaged_zip(gen, tmp_path / "damaged.zip", compression)
    async with make_hub(extra="\n[clarity]\nbatch_size = 100\n") as ctx:
        with pytest.raises(ImportRefused) as refused:
            await import_export(ctx, target)
        message = str(refused.value)
        assert message.startswith("damaged.zip: Client.csv is damaged and cannot be read (")
        assert len(message.splitlines()) == 1
        assert "import stopped" in message and "Organization.csv 3" in message
        summary = refused.value.summary
        assert summary is not None and summary["stopped"] == message
        assert summary["files"]["Organization.csv"]["inserted"] == 3
        counts = await ctx.store.count_records()
        assert counts.get("hmis.Organization") == 3
        # What the summary says was stored of Client.csv is what the store holds.
        assert counts.get("client", 0) == summary["files"]["Client.csv"]["inserted"]
        assert "enrollment" not in counts
        assert message.endswith("nothing else was imported (importing a good copy again is safe)")
        if summary["files"]["Client.csv"]["inserted"]:
            assert "Client.csv" in message.split("already stored")[1]
    assert "Traceback" not in message


def test_clarity_cli_damaged_zip_prints_what_was_stored(
    tools: Any, cli: click.Group, tmp_path: Path
) -> None:
    group = cli
    config = tools.write_config(tmp_path / "hub")
    gen = write_export(tmp_path / "gen", clients=50, seed=1, version="2026", details=False)
    target = damaged_zip(gen, tmp_path / "damaged.zip", zipfile.ZIP_STORED)
    result = CliRunner().invoke(
        group,
        ["--config", str(config), "import", "clarity", str(target)],
        obj=CliState(config_path=config),
    )
    assert result.exit_code != 0
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "Client.csv is damaged" in error
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert summary["stopped"] in error
    assert summary["files"]["Organization.csv"]["inserted"] == 3


async def test_clarity_drop_folder_files_a_failure_and_goes_on(
    make_hub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    gen = write_export(tmp_path / "gen", clients=30, seed=1, version="2026", details=False)
    damaged_zip(gen, drop / "a-damaged.zip", zipfile.ZIP_STORED)
    shutil.copytree(gen, drop / "b-crash")
    shutil.copytree(gen, drop / "c-good")
    real = dropfolder.import_export

    async def crashing(ctx: Any, path: Path, **kwargs: Any) -> Any:
        if path.name == "b-crash":
            raise KeyError("Jane Doe 123-45-6789")  # a bug whose message quotes data
        return await real(ctx, path, **kwargs)

    monkeypatch.setattr(dropfolder, "import_export", crashing)
    extra = f'\n[clarity]\ndrop_folder = "{drop}"\ndrop_settle_seconds = 0\n'
    async with make_hub(extra=extra) as ctx:
        outcomes = await scan_drop_folder(ctx)
        assert {o["entry"]: o["status"] for o in outcomes} == {
            "a-damaged.zip": "failed",
            "b-crash": "failed",
            "c-good": "done",
        }
        assert await scan_drop_folder(ctx) == []  # nothing left to retry forever
    failed = drop / "failed"
    error = (failed / "a-damaged.zip.error.txt").read_text()
    assert "Client.csv is damaged" in error and "import stopped" in error
    assert (failed / "a-damaged.zip").exists()
    assert (failed / "a-damaged.zip.report.jsonl").exists()
    partial = json.loads((failed / "a-damaged.zip.summary.json").read_text())
    assert partial["files"]["Organization.csv"]["inserted"] == 3
    crash = (failed / "b-crash.error.txt").read_text()
    assert "KeyError" in crash and "Jane" not in crash and "6789" not in crash
    assert (failed / "b-crash").is_dir()
    assert (drop / "done" / "c-good.summary.json").exists()
    assert sorted(p.name for p in drop.iterdir()) == ["done", "failed"]


# ---- 4. a file without a header: nothing of its first line reaches the report -------------


async def test_clarity_file_without_header_leaks_no_value(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=5, seed=1, version="2026", details=False)
    client = gen / "Client.csv"
    first = row_of(client, "100000")
    client.write_text(client.read_text().split("\n", 1)[1])  # the header line removed
    # A real header with a column the spec does not know (named like data) and a stray space.
    tools.rewrite(
        gen / "Project.csv",
        lambda rows: [
            [*rows[0], "Jane Q Public"],
            *([*r, "x"] for r in rows[1:]),
        ],
    )
    text = (gen / "Project.csv").read_text().replace("ProjectName", " ProjectName ", 1)
    (gen / "Project.csv").write_text(text)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
        assert "client" not in await ctx.store.count_records()
    no_header = of_rule(found, "no-header", "Client.csv")
    assert [(f["line"], f["severity"], f["column"]) for f in no_header] == [(1, "error", "")]
    assert "not a header" in no_header[0]["message"]
    assert not of_rule(found, "unknown-column", "Client.csv")
    assert summary["files"]["Client.csv"]["rows"] == 0
    unknown = of_rule(found, "unknown-column", "Project.csv")
    width = len(columns("2026", "Project"))
    assert [(f["column"], f["message"]) for f in unknown] == [
        ("", f"column {width + 1}: not a column of this file; ignored")
    ]
    trimmed = of_rule(found, "header-whitespace", "Project.csv")
    assert [f["column"] for f in trimmed] == ["ProjectName"]
    assert summary["files"]["Project.csv"]["accepted"] > 0
    text = json.dumps(found)
    for column in ("FirstName", "LastName", "SSN", "DOB"):
        assert first[column].strip('"') not in text
    assert "Jane" not in text


# ---- 5. an unreadable DateDeleted never makes a record live --------------------------------


async def test_clarity_unreadable_date_deleted_never_revives(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=6, seed=1, version="2024", details=False)

    def set_cells(file: str, key: str, **cells: str) -> None:
        def edit(rows: list[list[str]]) -> list[list[str]]:
            for row in rows[1:]:
                if row[0] == key:
                    for col, value in cells.items():
                        row[rows[0].index(col)] = value
            return rows

        tools.rewrite(gen / file, edit)

    async with make_hub() as ctx:
        set_cells(
            "Enrollment.csv", "500003",
            DateDeleted="2025-10-02 09:00:00", DateUpdated="2025-10-02 09:00:00",
        )  # fmt: skip
        await import_export(ctx, gen)
        deleted = await stored(ctx, "enrollment", "500003")
        assert deleted.deleted is True
        # A newer row whose DateDeleted cannot be read: refused, the record stays deleted.
        set_cells(
            "Enrollment.csv", "500003",
            DateDeleted="2025-13-01 10:00:00", DateUpdated="2025-10-03 09:00:00",
        )  # fmt: skip
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
        after = await stored(ctx, "enrollment", "500003")
        assert after.deleted is True and after.version == deleted.version
        stats = summary["files"]["Enrollment.csv"]
        assert (stats["rows"], stats["accepted"], stats["errors"]) == (6, 5, 1)
    hit = of_rule(found, "date-deleted", "Enrollment.csv")
    assert [(f["line"], f["column"], f["severity"], f["record"]) for f in hit] == [
        (5, "DateDeleted", "error", "500003")
    ]
    assert "2025-13-01" not in json.dumps(found)

    # A record seen for the first time with an unreadable DateDeleted is not stored live.
    async with make_hub("fresh") as ctx:
        await import_export(ctx, gen)
        assert await stored(ctx, "enrollment", "500003") is None
        assert (await stored(ctx, "enrollment", "500002")).deleted is False
