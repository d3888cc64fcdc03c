"""Dates and times as HUD CSV writes them, and the repairs for what real exports send.

``D`` is ``YYYY-MM-DD`` and ``T`` is ``YYYY-MM-DD hh:mm:ss``. Real files also carry
``MM-DD-YYYY hh:mm:ss``, ``MM/DD/YYYY``, ``YYYY-MM-DDThh:mm:ss``, fractional seconds and
more. A value is repaired only when it reads one way: day-first dates are never guessed.
Each repair names the format it read (never the value), so a report can say what it did.
"""

from __future__ import annotations

import re
from datetime import date, datetime

_US = re.compile(
    r"^(\d{1,2})([/-])(\d{1,2})\2(\d{4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([AaPp][Mm])?)?$"
)
_ISO = re.compile(
    r"^(\d{4})([-/]?)(\d{2})\2(\d{2})"
    r"(?:([ T])(\d{2}):(\d{2})(?::(\d{2}))?(\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def _parts(value: str) -> tuple[int, int, int, int, int, int, str] | None:
    """(year, month, day, hour, minute, second, format name) of a readable value, else None."""
    v = value.strip()
    m = _ISO.match(v)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
        sep = m.group(2)
        if m.group(5) is None:
            fmt = {"-": "YYYY-MM-DD", "/": "YYYY/MM/DD", "": "YYYYMMDD"}[sep]
            return (y, mo, d, 0, 0, 0, fmt) if _valid_date(y, mo, d) else None
        h, mi = int(m.group(6)), int(m.group(7))
        s = int(m.group(8) or 0)
        fmt = "YYYY-MM-DD" + ("T" if m.group(5) == "T" else " ") + "hh:mm"
        fmt += ":ss" if m.group(8) else ""
        fmt += ".fff" if m.group(9) else ""
        fmt += "+zone" if m.group(10) else ""
        if not (_valid_date(y, mo, d) and h < 24 and mi < 60 and s < 60):
            return None
        return (y, mo, d, h, mi, s, fmt)
    m = _US.match(v)
    if m:
        mo, d, y = int(m.group(1)), int(m.group(3)), int(m.group(4))
        sep = m.group(2)
        fmt = f"MM{sep}DD{sep}YYYY"
        h = mi = s = 0
        if m.group(5) is not None:
            h, mi = int(m.group(5)), int(m.group(6))
            s = int(m.group(7) or 0)
            fmt += " hh:mm" + (":ss" if m.group(7) else "")
            ampm = m.group(8)
            if ampm:
                fmt += " AM/PM"
                if not 1 <= h <= 12:
                    return None
                h = h % 12 + (12 if ampm.upper() == "PM" else 0)
        if not (_valid_date(y, mo, d) and h < 24 and mi < 60 and s < 60):
            return None
        return (y, mo, d, h, mi, s, fmt)
    return None


def normalise_date(value: str) -> tuple[str, str] | None:
    """A ``D`` value: ``(YYYY-MM-DD, "")`` when already right, ``(repaired, format read)``
    when repaired, None when unreadable."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            date.fromisoformat(value)
        except ValueError:
            return None
        return value, ""
    parts = _parts(value)
    if parts is None:
        return None
    y, mo, d, h, mi, s, fmt = parts
    if h or mi or s:
        fmt += " (time dropped)"
    return f"{y:04d}-{mo:02d}-{d:02d}", fmt


def normalise_datetime(value: str) -> tuple[str, str] | None:
    """A ``T`` value: ``(YYYY-MM-DD hh:mm:ss, "")`` when right, ``(repaired, format read)``
    when repaired, None when unreadable. A time zone suffix is dropped (HUD times are local)."""
    if len(value) == 19 and value[4] == "-" and value[10] == " " and value[13] == ":":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value, ""
    parts = _parts(value)
    if parts is None:
        return None
    y, mo, d, h, mi, s, fmt = parts
    return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}", fmt


def version_of(datetime_value: str) -> str:
    """The record version of a normalised ``T`` value: ``YYYY-MM-DDTHH:MM:SS``."""
    return datetime_value[:10] + "T" + datetime_value[11:19]
