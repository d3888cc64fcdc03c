"""The batch screen (RowChecker.suspects) clears exactly the rows ``check`` leaves alone."""

from __future__ import annotations

import random

import pytest

from plugins.clarity.findings import Report
from plugins.clarity.spec import FILES, columns
from plugins.clarity.validate import RowChecker

EXPORT_DATE = "2025-10-15 12:00:00"

TRICKY = [
    *("", " ", " 12 ", "012", "00", "+5", "5.0", "5.00", "abc", "99", "7", "1.5", "-1", "1e3"),
    *("$1,234.5", "1,234.56", "12.345", "12.34", "0.5", "$ 7", "12.00", "12.00\n", "0.00"),
    *("2020-02-30", "2023-02-29", "2024-02-29", "02/03/2021", "2/3/2021 1:02 PM", "2021-3-4"),
    *("2021-03-04T05:06:07", "2021-03-04 05:06", "20210304", "2021/03/04", "2021-W01-1"),
    *("1899-12-31", "1899-12-31 10:00:00", "1900-01-01", "1900-01-01 00:00:00", "2099-01-01"),
    *("2025-10-16", "2025-10-17", "2025-10-16 23:59:59", "2025-10-17 00:00:00", "2075-10-15"),
    *("2075-10-16", "2021-03-04 24:00:00", "2021-03-04 23:59:60", "2021-03-04 05:06:07.123"),
    *("2021-03-04 05:06:07Z", "2021-03-04\n", "5\n", "\u0663", "\uff11\uff12"),
    "\u0661.\u0662\u0663",
    *("x" * 6, "x" * 33, "y" * 301, "gen1", "gen2", "\x1f", "a\x1fb", "2021-03-04 05:06:07"),
    *("0", "1", "2", "8", "10", "141", "123456789012345678", "1234567890123456789"),
]


def _good(rng: random.Random, typ: str, length: int, allowed: frozenset[str] | None) -> str:
    day = f"{rng.randint(1990, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if typ == "I":
        return rng.choice(sorted(allowed)) if allowed else str(rng.randint(0, 5000))
    if typ == "D":
        return day
    if typ == "T":
        return f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if typ == "M":
        return f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}"
    return "s" * rng.randint(1, min(length or 40, 40))


def _dirty(checker: RowChecker, row: list[str]) -> bool:
    """Whether ``check`` reports or repairs anything in the row."""
    report = Report(None)
    copy = list(row)
    checker.check(copy, 2, "id", report)
    return copy != row or report.warnings + report.errors > 0


@pytest.mark.parametrize("version", ["2024", "2026"])
def test_clarity_screen_clears_exactly_the_clean_rows(version: str) -> None:
    rng = random.Random(int(version))
    for file in FILES:
        cols = columns(version, file)
        for export_id in ("gen1", ""):
            checker = RowChecker(
                file,
                cols,
                export_date=EXPORT_DATE,
                export_id=export_id,
                skip_required=frozenset({"DateUpdated", cols[0].name}),
                skip_length=frozenset({"FirstName"}),
            )
            # The same checker screens several batches: what it learns from one batch
            # (dates, integers, amounts) must not clear a dirty value in a later one.
            for rate in (0.0, 0.002, 0.02, 0.2):
                rows = []
                for _ in range(rng.choice([1, 7, 60])):
                    row = []
                    for c in cols:
                        p = rng.random()
                        if p < rate:
                            row.append(rng.choice(TRICKY))
                        elif p < 0.5 and not c.required:
                            row.append("")
                        elif c.name == "ExportID":
                            row.append("gen1")
                        else:
                            row.append(_good(rng, c.type, c.length, c.values))
                    rows.append(row)
                before = [list(r) for r in rows]
                suspects = checker.suspects(rows)
                assert rows == before  # the screen only reads
                dirty = {k for k, row in enumerate(rows) if _dirty(checker, row)}
                assert suspects == dirty, (file, export_id, rate)


def test_clarity_screen_learned_values_do_not_clear_neighbours() -> None:
    cols = columns("2026", "Client")
    names = [c.name for c in cols]
    checker = RowChecker(
        "Client",
        cols,
        export_date=EXPORT_DATE,
        export_id="gen1",
        skip_required=frozenset({"DateUpdated", "PersonalID"}),
    )

    def row(**cells: str) -> list[str]:
        base = dict.fromkeys(names, "")
        base.update(
            PersonalID="1",
            NameDataQuality="1",
            SSNDataQuality="1",
            DOBDataQuality="1",
            VeteranStatus="0",
            DateCreated="2020-01-01 10:00:00",
            DateUpdated="2020-01-01 10:00:00",
            UserID="1",
            ExportID="gen1",
            **{r: "0" for r in ("AmIndAKNative", "Asian", "BlackAfAmerican", "White")},
            **{r: "0" for r in ("HispanicLatinao", "MidEastNAfrican", "NativeHIPacific")},
        )
        base.update(cells)
        return [base[n] for n in names]

    clean = [row(DOB="1990-05-01", YearEnteredService="1984"), row(DOB="2025-10-16")]
    assert checker.suspects(clean) == set()
    # Same learned day, other rules: times out of the day, the day after the limit, a
    # leading zero, another export, a blank required value.
    dirty = [
        row(DateUpdated="2020-01-01 24:00:00"),
        row(DateUpdated="2020-01-01 10:00:60"),
        row(DOB="2025-10-17"),
        row(YearEnteredService="01984"),
        row(ExportID="gen2"),
        row(NameDataQuality=""),
        row(DOB="1990-05-01", DateCreated="1990-05-01"),
    ]
    assert checker.suspects([*clean, *dirty]) == set(range(2, 9))
