"""Per-row checks of one file's cells: types, lengths, list values and date ranges.

The checker repairs in place what reads one way (a date in another format, an integer with
spaces or leading zeros, money with a currency sign) and reports every repair; values it
cannot read are blanked (integers, money, dates) and reported. Checks are precomputed per
file so the per-row loop only touches non-blank cells.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from plugins.clarity.dates import normalise_date, normalise_datetime
from plugins.clarity.findings import Report
from plugins.clarity.spec import DATE_OPEN_ENDED, EXPORT_ID_COLUMN, Column

LOWEST_DATE = "1900-01-01"
"""Dates before this are reported as out of range."""

_MONEY = re.compile(r"^\d+\.\d{2}$")
_MONEY_LOOSE = re.compile(r"^\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$")
_INT_LOOSE = re.compile(r"^\+?(\d+)(?:\.0+)?$")

Check = tuple[int, str, str, int, "frozenset[str] | None", bool, str, str]


def date_limits(export_date: str) -> tuple[str, str]:
    """(latest date for past events, latest date for end/due dates) given the export date."""
    day = date.fromisoformat(export_date[:10])
    return (day + timedelta(days=1)).isoformat(), day.replace(year=day.year + 50).isoformat()


class RowChecker:
    """The cell checks of one file, for one export."""

    def __init__(
        self,
        file: str,
        columns: Sequence[Column],
        *,
        export_date: str,
        export_id: str,
        skip_required: frozenset[str] = frozenset(),
        skip_length: frozenset[str] = frozenset(),
    ) -> None:
        self.file = f"{file}.csv"
        self.export_id = export_id
        past, future = date_limits(export_date)
        self.past_limit = past
        checks: list[Check] = []
        for i, c in enumerate(columns):
            hi = future if c.name in DATE_OPEN_ENDED else past
            length = 0 if c.name in skip_length else c.length
            required = c.required and c.name not in skip_required
            checks.append((i, c.name, c.type, length, c.values, required, hi, c.list_name))
        self._checks = checks

    def check(self, v: list[str], line: int, rid: str, report: Report) -> None:
        """Check (and repair in place) the cells of one row, reporting each finding."""
        file = self.file
        for i, name, typ, length, allowed, required, hi, list_name in self._checks:
            x = v[i]
            if not x:
                if required:
                    report.warn(
                        file, line, name, "required-missing", f"{name}: required value missing", rid
                    )
                continue
            if typ == "S":
                if length and len(x) > length:
                    report.warn(
                        file,
                        line,
                        name,
                        "length",
                        f"{name}: longer than {length} characters; kept",
                        rid,
                    )
                if name == EXPORT_ID_COLUMN and x != self.export_id:
                    report.warn(
                        file, line, name, "export-id", f"{name}: differs from Export.csv", rid
                    )
            elif typ == "I":
                if not (x.isdigit() and x.isascii()) or (x[0] == "0" and len(x) > 1):
                    m = _INT_LOOSE.match(x.strip())
                    if m is None:
                        report.warn(
                            file, line, name, "integer", f"{name}: not an integer; blanked", rid
                        )
                        v[i] = ""
                        continue
                    x = str(int(m.group(1)))
                    v[i] = x
                    report.warn(
                        file,
                        line,
                        name,
                        "integer-format",
                        f"{name}: integer written canonically",
                        rid,
                    )
                if allowed is not None and x not in allowed:
                    report.warn(
                        file,
                        line,
                        name,
                        "list-value",
                        f"{name}: value not in list {list_name}; kept",
                        rid,
                    )
            elif typ == "T":
                got = normalise_datetime(x)
                if got is None:
                    report.warn(
                        file, line, name, "datetime", f"{name}: not a date and time; blanked", rid
                    )
                    v[i] = ""
                    continue
                if got[1]:
                    x = got[0]
                    v[i] = x
                    report.warn(
                        file,
                        line,
                        name,
                        "date-format",
                        f"{name}: read as {got[1]}, written as YYYY-MM-DD hh:mm:ss",
                        rid,
                    )
                if x < LOWEST_DATE or x[:10] > hi:
                    report.warn(file, line, name, "date-range", f"{name}: date out of range", rid)
            elif typ == "D":
                got = normalise_date(x)
                if got is None:
                    report.warn(file, line, name, "date", f"{name}: not a date; blanked", rid)
                    v[i] = ""
                    continue
                if got[1]:
                    x = got[0]
                    v[i] = x
                    report.warn(
                        file,
                        line,
                        name,
                        "date-format",
                        f"{name}: read as {got[1]}, written as YYYY-MM-DD",
                        rid,
                    )
                if x < LOWEST_DATE or x > hi:
                    report.warn(file, line, name, "date-range", f"{name}: date out of range", rid)
            elif typ == "M" and not _MONEY.match(x):
                m = _MONEY_LOOSE.match(x.strip())
                if m is None:
                    report.warn(file, line, name, "money", f"{name}: not an amount; blanked", rid)
                    v[i] = ""
                    continue
                cents = (m.group(2) or "").ljust(2, "0")
                v[i] = f"{m.group(1).replace(',', '')}.{cents}"
                report.warn(
                    file,
                    line,
                    name,
                    "money-format",
                    f"{name}: amount written with two decimals",
                    rid,
                )


def in_range(day: str, limit: str) -> bool:
    """Whether a normalised date lies between 1900-01-01 and ``limit``."""
    return LOWEST_DATE <= day <= limit
