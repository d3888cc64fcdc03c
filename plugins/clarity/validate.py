"""Per-row checks of one file's cells: types, lengths, list values and date ranges.

The checker repairs in place what reads one way (a date in another format, an integer with
spaces or leading zeros, money with a currency sign) and reports every repair; values it
cannot read are blanked (integers, money, dates) and reported — except ``DateDeleted``: a
value there says the record is deleted, so one that cannot be read refuses the row (an
error; the record stays as stored) rather than being blanked into a live record.

Most rows of a real export need neither a repair nor a finding, so a batch is first screened
column by column (:meth:`RowChecker.suspects`): C-level set and length tests over a whole
column of the batch, against the values the column is known to accept (its list's codes, and
the dates, times, integers and amounts already found clean, kept in bounded sets). Only the
rows a screen cannot clear go through :meth:`RowChecker.check`, the cell-by-cell rules, which
alone decide findings and repairs. A screen clears a value only when ``check`` would leave it
as it is without a finding, so the findings, their order and the repairs are those of checking
every row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from operator import itemgetter

from plugins.clarity.dates import normalise_date, normalise_datetime
from plugins.clarity.findings import Report
from plugins.clarity.spec import DATE_OPEN_ENDED, EXPORT_ID_COLUMN, Column

LOWEST_DATE = "1900-01-01"
"""Dates before this are reported as out of range."""

DELETED_COLUMN = "DateDeleted"
"""A value here marks the record deleted: one that cannot be read refuses the row."""

_MONEY = re.compile(r"^\d+\.\d{2}$")
_MONEY_LOOSE = re.compile(r"^\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$")
_INT_LOOSE = re.compile(r"^\+?(\d+)(?:\.0+)?$")

Check = tuple[int, str, str, int, "frozenset[str] | None", bool, str, str]
"""(position, name, type, length limit, list codes, required, latest date, list name)."""

Screen = Callable[[tuple[str, ...]], bool]
"""True when every value of a batch's column is clean (C-level tests only; False = unsure)."""

# What a screen remembers is stricter than what ``check`` accepts (ASCII digits, canonical
# forms), so any value made of remembered parts is one ``check`` accepts too.
_STRICT_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
_STRICT_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}").fullmatch
_STRICT_INT = re.compile(r"0|[1-9][0-9]{0,17}").fullmatch
_STRICT_MONEY = re.compile(r"[0-9]{1,15}\.[0-9]{2}").fullmatch
_DAY = itemgetter(slice(0, 10))
_HOUR_MINUTE = itemgetter(slice(10, 16))
_SECOND = itemgetter(slice(16, None))
_HOURS_MINUTES = frozenset(f" {h:02d}:{m:02d}" for h in range(24) for m in range(60))
_SECONDS = frozenset(f":{s:02d}" for s in range(60))
LEARN_CAP = 50_000
"""At most this many integers (and as many amounts) are remembered per checker; dates are
bounded by the calendar (1900 to 50 years after the export)."""


def date_limits(export_date: str) -> tuple[str, str]:
    """(latest date for past events, latest date for end/due dates) given the export date."""
    day = date.fromisoformat(export_date[:10])
    return (day + timedelta(days=1)).isoformat(), day.replace(year=day.year + 50).isoformat()


class _Count(Report):
    """A report that only counts (to probe whether a value would draw a finding)."""

    def __init__(self) -> None:  # no file, no counters: only ``n``
        self.n = 0

    def warn(
        self, file: str, line: int, column: str, rule: str, message: str, record: str = ""
    ) -> None:
        """Count a warning."""
        self.n += 1

    def error(
        self, file: str, line: int, column: str, rule: str, message: str, record: str = ""
    ) -> None:
        """Count an error."""
        self.n += 1


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
        # Clean values seen so far (never ""): canonical integers and amounts, and dates by
        # their latest allowed day (shared by D columns and the day part of T columns).
        self._ints: set[str] = set()
        self._money: set[str] = set()
        self._days: dict[str, set[str]] = {}
        self._probe = _Count()
        self._refused = False
        self._screens = [self._screen(c) for c in checks]
        self._known = [self._known_values(c) for c in checks]

    # ---- the rules, one cell at a time ----------------------------------------------------

    def check(self, v: list[str], line: int, rid: str, report: Report) -> bool:
        """Check (and repair in place) the cells of one row, reporting each finding.

        Returns False when the row must be skipped (an error was reported: a ``DateDeleted``
        that cannot be read), else True.
        """
        cell = self._cell
        self._refused = False
        for c in self._checks:
            fixed = cell(c, v[c[0]], line, rid, report)
            if fixed is not None:
                v[c[0]] = fixed
        return not self._refused

    def _cell(self, c: Check, x: str, line: int, rid: str, report: Report) -> str | None:
        """Check one cell, reporting each finding; the value to write back (a repair, or ""
        when blanked), else None."""
        file = self.file
        _i, name, typ, length, allowed, required, hi, list_name = c
        if not x:
            if required:
                report.warn(
                    file, line, name, "required-missing", f"{name}: required value missing", rid
                )
            return None
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
                report.warn(file, line, name, "export-id", f"{name}: differs from Export.csv", rid)
            return None
        if typ == "I":
            fixed = None
            if not (x.isdigit() and x.isascii()) or (x[0] == "0" and len(x) > 1):
                m = _INT_LOOSE.match(x.strip())
                if m is None:
                    report.warn(
                        file, line, name, "integer", f"{name}: not an integer; blanked", rid
                    )
                    return ""
                x = fixed = str(int(m.group(1)))
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
            return fixed
        if typ == "T" or typ == "D":
            timed = typ == "T"
            got = normalise_datetime(x) if timed else normalise_date(x)
            if got is None and name == DELETED_COLUMN:
                # Blanking it would turn a record its source deleted into a live one.
                self._refused = True
                report.error(
                    file,
                    line,
                    name,
                    "date-deleted",
                    f"{name}: not a date and time; row skipped (the record stays as stored)",
                    rid,
                )
                return None
            if got is None:
                rule, what = ("datetime", "a date and time") if timed else ("date", "a date")
                report.warn(file, line, name, rule, f"{name}: not {what}; blanked", rid)
                return ""
            fixed = None
            if got[1]:
                x = fixed = got[0]
                shape = "YYYY-MM-DD hh:mm:ss" if timed else "YYYY-MM-DD"
                report.warn(
                    file,
                    line,
                    name,
                    "date-format",
                    f"{name}: read as {got[1]}, written as {shape}",
                    rid,
                )
            if x < LOWEST_DATE or x[:10] > hi:
                report.warn(file, line, name, "date-range", f"{name}: date out of range", rid)
            return fixed
        if typ == "M" and not _MONEY.match(x):
            m = _MONEY_LOOSE.match(x.strip())
            if m is None:
                report.warn(file, line, name, "money", f"{name}: not an amount; blanked", rid)
                return ""
            cents = (m.group(2) or "").ljust(2, "0")
            report.warn(
                file,
                line,
                name,
                "money-format",
                f"{name}: amount written with two decimals",
                rid,
            )
            return f"{m.group(1).replace(',', '')}.{cents}"
        return None

    # ---- screening a batch ----------------------------------------------------------------

    def suspects(self, rows: Sequence[list[str]]) -> set[int]:
        """Indexes of the rows whose :meth:`check` might report or repair something; the
        other rows are clean (``check`` would leave them unchanged, without a finding).

        Rows must have one value per column (as :func:`~plugins.clarity.csvio.iter_rows`
        yields them); reads only.
        """
        width = len(self._checks)
        if not rows:
            return set()
        if any(len(v) != width for v in rows):
            return set(range(len(rows)))
        out: set[int] = set()
        clean = self._clean
        columns = zip(*rows, strict=True)
        plans = zip(self._checks, self._screens, self._known, columns, strict=True)
        for c, screen, known, col in plans:
            if screen(col):
                continue
            values = set(col)
            if known is not None:
                values.difference_update(known)
            bad = {x for x in values if not clean(c, x)}
            if bad:
                out.update([k for k, x in enumerate(col) if x in bad])
        return out

    def _clean(self, c: Check, x: str) -> bool:
        """Whether ``check`` leaves the value ``x`` of column ``c`` alone without a finding;
        a clean value is remembered for the screens (strict forms only, bounded)."""
        typ = c[2]
        if not x:
            return not c[5]
        # Dates and date-times written as the spec says: what ``check`` decides for them,
        # without its machinery (the common case while the screens learn the calendar).
        if typ == "D" and _STRICT_DATE(x):
            days = self._days[c[6]]
            if x in days:
                return True
            if not (LOWEST_DATE <= x <= c[6] and _valid(date.fromisoformat, x)):
                return False
            days.add(x)
            return True
        if typ == "T" and _STRICT_DATETIME(x):
            days = self._days[c[6]]
            if x[:10] in days and x[10:16] in _HOURS_MINUTES and x[16:] in _SECONDS:
                return True
            if not (x >= LOWEST_DATE and x[:10] <= c[6] and _valid(datetime.fromisoformat, x)):
                return False
            days.add(x[:10])
            return True
        if typ == "I" and x in self._ints and c[4] is None:
            return True
        probe = self._probe
        probe.n = 0
        if self._cell(c, x, 0, "", probe) is not None or probe.n:
            return False
        if typ == "S":
            return True
        if typ == "I":
            if c[4] is None and len(self._ints) < LEARN_CAP and _STRICT_INT(x):
                self._ints.add(x)
        elif typ == "M" and len(self._money) < LEARN_CAP and _STRICT_MONEY(x):
            self._money.add(x)
        return True

    def _known_values(self, c: Check) -> set[str] | frozenset[str] | None:
        """The values of a column known to be clean, when a set holds them."""
        typ = c[2]
        if typ == "I":
            return c[4] if c[4] is not None else self._ints
        if typ == "D":
            return self._days[c[6]]
        if typ == "M":
            return self._money
        return None

    def _screen(self, c: Check) -> Screen:
        """The C-level test of one column (see :meth:`suspects`)."""
        _i, name, typ, length, allowed, required, hi, _list = c
        if typ == "S":
            if name == EXPORT_ID_COLUMN:
                export_id = self.export_id
                if not self._clean(c, export_id):
                    return _never
                return lambda col: col.count(export_id) == len(col)
            if length:
                if required:
                    return lambda col: all(col) and max(map(len, col)) <= length
                return lambda col: max(map(len, col)) <= length
            return all if required else _always
        known: set[str] | frozenset[str]
        if typ == "T":
            days = self._days.setdefault(hi, set())

            def datetimes(col: tuple[str, ...]) -> bool:
                given = tuple(filter(None, col))
                return (
                    days.issuperset(map(_DAY, given))
                    and _HOURS_MINUTES.issuperset(map(_HOUR_MINUTE, given))
                    and _SECONDS.issuperset(map(_SECOND, given))
                )

            if required:
                return lambda col: all(col) and datetimes(col)
            return datetimes
        if typ == "I":
            known = allowed if allowed is not None else self._ints
        elif typ == "D":
            known = self._days.setdefault(hi, set())
        elif typ == "M":
            known = self._money
        else:
            return _never
        if required:
            return lambda col: all(col) and known.issuperset(col)
        return lambda col: known.issuperset(filter(None, col))


def _valid(parse: Callable[[str], object], x: str) -> bool:
    try:
        parse(x)
    except ValueError:
        return False
    return True


def _never(col: tuple[str, ...]) -> bool:
    return False


def _always(col: tuple[str, ...]) -> bool:
    return True


def in_range(day: str, limit: str) -> bool:
    """Whether a normalised date lies between 1900-01-01 and ``limit``."""
    return LOWEST_DATE <= day <= limit
