"""HL7 v2 date/time values (DT, DTM, TS): parse, format, and turn into sortable versions.

``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; a value that is not a real date is None,
never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

_DTM = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?"
)


def parse_dtm(value: str, zone: tzinfo | None = None) -> datetime | None:
    """A DTM/TS value as a datetime (aware when it carries an offset); None when invalid.

    Missing precision is filled with the start of the period (``2025`` → 2025-01-01 00:00).
    A TS with a degree-of-precision component (``2025^D``) is read by its first component.
    A value without an offset is in ``zone`` when one is given (the sender's time zone:
    HL7 reads such a value as the sender's local time), else it stays naive.
    """
    if not value:
        return None
    text = value.split("^", 1)[0].strip()
    m = _DTM.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    tz: tzinfo | None = zone
    if sign is not None:
        hours, minutes = int(oh), int(om)
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def parse_date(value: str) -> date | None:
    """The calendar date of a DT/DTM value that is precise to the day at least, else None."""
    text = value.split("^", 1)[0].strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    dt = parse_dtm(text)
    return dt.date() if dt is not None else None


def sortable(dt: datetime) -> str:
    """A version string that sorts like the instant: UTC (for aware values), ISO 8601.

    The fraction is written only when non-zero; a shorter string then still sorts first.
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text


def format_dtm(dt: datetime) -> str:
    """A datetime as an HL7 DTM (``YYYYMMDDHHMMSS[+/-ZZZZ]``)."""
    text = dt.strftime("%Y%m%d%H%M%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 100:04d}"
    offset = dt.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        minutes = abs(minutes)
        text += f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    return text


def format_date(d: date) -> str:
    """A date as an HL7 DT (``YYYYMMDD``)."""
    return d.strftime("%Y%m%d")
