"""Row validation: every finding names file, line, column and rule — never a value."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, rows: list[str], *, crlf: bool = False, bom: bool = False) -> None:
    text = ("\r\n" if crlf else "\n").join(rows) + ("\r\n" if crlf else "\n")
    data = text.encode("utf-8")
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)


def finding(found: list[dict[str, Any]], file: str, rule: str, **match: Any) -> dict[str, Any]:
    hits = [
        f for f in found
        if f["file"] == file and f["rule"] == rule and all(f.get(k) == v for k, v in match.items())
    ]  # fmt: skip
    assert hits, f"no {rule} finding in {file} matching {match}: {found}"
    return hits[0]


async def test_clarity_duplicate_keys_and_orphans_are_errors(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=5, seed=1, version="2026", details=False)
    client = lines(gen / "Client.csv")
    write_lines(gen / "Client.csv", [*client, client[2]])  # PersonalID 100001 again, line 7
    enrollment = lines(gen / "Enrollment.csv")
    orphan = enrollment[1].replace('"500000","100000"', '"599999","999999"')
    write_lines(gen / "Enrollment.csv", [*enrollment, orphan])  # line 7
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
    dup = finding(found, "Client.csv", "duplicate-key")
    assert (dup["line"], dup["column"], dup["severity"], dup["record"]) == (
        7,
        "PersonalID",
        "error",
        "100001",
    )
    fk = finding(found, "Enrollment.csv", "foreign-key", column="PersonalID")
    assert (fk["line"], fk["severity"]) == (7, "error")
    assert summary["files"]["Client.csv"] == {
        **summary["files"]["Client.csv"],
        "rows": 6,
        "accepted": 5,
        "errors": 1,
    }
    assert summary["files"]["Enrollment.csv"]["accepted"] == 5
    assert summary["errors"] == 2


async def test_clarity_households_need_exactly_one_head(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=45, seed=1, version="2026", details=False)
    # Households of three start at persons 0, 20 and 40: give the first two heads, take the
    # second's head away.

    def edit(rows: list[list[str]]) -> list[list[str]]:
        h = rows[0]
        for row in rows[1:]:
            if row[h.index("PersonalID")] == "100001":
                row[h.index("RelationshipToHoH")] = "1"
            if row[h.index("PersonalID")] == "100020":
                row[h.index("RelationshipToHoH")] = "2"
        return rows

    tools.rewrite(gen / "Enrollment.csv", edit)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
    heads = [f for f in found if f["rule"] == "household-heads"]
    assert len(heads) == 2
    assert {(f["file"], f["line"], f["column"], f["severity"]) for f in heads} == {
        ("Enrollment.csv", 3, "RelationshipToHoH", "warning"),  # a second head (person 1)
        ("Enrollment.csv", 22, "RelationshipToHoH", "warning"),  # no head (persons 20-22)
    }
    assert summary["files"]["Enrollment.csv"]["accepted"] == 45  # warnings keep the rows


async def test_clarity_exit_before_entry(make_hub: Any, tools: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=30, seed=1, version="2024")

    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[1][rows[0].index("ExitDate")] = "2019-12-31"
        return rows

    tools.rewrite(gen / "Exit.csv", edit)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
    hit = finding(found, "Exit.csv", "exit-before-entry")
    assert (hit["line"], hit["column"], hit["severity"]) == (2, "ExitDate", "warning")
    assert "2019-12-31" not in hit["message"]


async def test_clarity_repairs_are_reported(make_hub: Any, tools: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=4, seed=1, version="2026", details=False)
    client = lines(gen / "Client.csv")
    header = ",".join(
        f'"{name.lower() if name == "PersonalID" else name}"' for name in client[0].split(",")
    )
    first = client[1].split(",")
    dob_at = client[0].split(",").index("DOB")
    year, month, day = first[dob_at].split("-")
    first[dob_at] = f"{month}/{day}/{year}"  # MM/DD/YYYY
    updated_at = client[0].split(",").index("DateUpdated")
    stamp = first[updated_at]
    first[updated_at] = (
        f"{stamp[5:7]}-{stamp[8:10]}-{stamp[:4]} {stamp[11:]}"  # MM-DD-YYYY hh:mm:ss
    )
    write_lines(gen / "Client.csv", [header, ",".join(first), "", *client[2:]], crlf=True, bom=True)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
        async with ctx.store.transaction() as tx:
            row = await tx.get_record("client", "hmis:synthetic", "100000")
    assert summary["errors"] == 0
    assert finding(found, "Client.csv", "bom")["line"] == 1
    assert finding(found, "Client.csv", "crlf-line-endings")["line"] == 1
    assert finding(found, "Client.csv", "quoted-header")["line"] == 1
    case = finding(found, "Client.csv", "header-case")
    assert (case["line"], case["column"]) == (1, "PersonalID")
    dob = finding(found, "Client.csv", "date-format", column="DOB")
    assert (dob["line"], dob["severity"], dob["record"]) == (2, "warning", "100000")
    assert "MM/DD/YYYY" in dob["message"] and f"{month}/{day}/{year}" not in dob["message"]
    assert finding(found, "Client.csv", "date-format", column="DateUpdated")["line"] == 2
    assert finding(found, "Client.csv", "blank-row")["line"] == 3
    # The repaired values are what the store keeps (and what an export writes).
    assert row is not None and row.version == f"{stamp[:10]}T{stamp[11:]}"
    import orjson

    payload = orjson.loads(row.payload)
    assert payload["birth_date"] == f"{year}-{month}-{day}"
    assert f"{year}-{month}-{day}" in payload["hmis_columns"]
    # No finding carries a value.
    text = "\n".join(str(f) for f in found)
    assert f"{month}/{day}/{year}" not in text and first[1].strip('"') not in text


async def test_clarity_cell_checks(make_hub: Any, tools: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=4, seed=1, version="2026", details=False)

    def edit(rows: list[list[str]]) -> list[list[str]]:
        h = rows[0]
        rows[1][h.index("VeteranStatus")] = "7"  # not in list 1.8
        rows[2][h.index("NameDataQuality")] = "x"  # not an integer
        rows[3][h.index("DOB")] = "1850-01-01"  # out of range
        rows[4][h.index("LastName")] = "L" * 60  # longer than S50
        return rows

    tools.rewrite(gen / "Client.csv", edit)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
    assert finding(found, "Client.csv", "list-value", column="VeteranStatus")["line"] == 2
    assert finding(found, "Client.csv", "integer", column="NameDataQuality")["line"] == 3
    assert finding(found, "Client.csv", "date-range", column="DOB")["line"] == 4
    assert finding(found, "Client.csv", "length", column="LastName")["line"] == 5
    assert summary["files"]["Client.csv"]["accepted"] == 4


async def test_clarity_future_date_updated_is_an_error(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=3, seed=1, version="2026", details=False)

    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[1][rows[0].index("DateUpdated")] = "2030-01-01 00:00:00"
        return rows

    tools.rewrite(gen / "Client.csv", edit)
    async with make_hub() as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        found = tools.findings(summary["report"])
    hit = finding(found, "Client.csv", "future-version")
    assert (hit["line"], hit["column"], hit["severity"]) == (2, "DateUpdated", "error")
    assert summary["files"]["Client.csv"]["accepted"] == 2
