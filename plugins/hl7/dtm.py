"""HL7 v2 date/time values (DT, DTM, TS): parse, format, and turn into sortable versions.

``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; a value that is not a real date is None,
never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from hub.core.partial_dates import DAY, MONTH, YEAR, coarser, first_day, iso_cut

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


_DEGREES = {"Y": YEAR, "L": MONTH}
"""TS degree of precision (TS.2, v2.3–v2.5, deprecated since) that says less than a day."""


def parse_partial_date(value: str, degree: str = "") -> tuple[date, str] | None:
    """The date of a DT/DTM/TS value and how much of it is known: ``1980`` → (1980-01-01,
    ``"year"``), ``198005`` → (1980-05-01, ``"month"``), ``19800517[hhmm…]`` → (1980-05-17,
    ``""``); None when it is not a real date. A TS degree of precision ``Y`` or ``L`` (the
    value's second component, or ``degree``) lowers the precision to the year or month; it
    never raises it.
    """
    head, _, rest = value.partition("^")
    text = head.strip()
    found: tuple[date, str] | None = None
    if len(text) >= 8:
        day = parse_date(text)
        found = None if day is None else (day, DAY)
    elif len(text) in (4, 6) and text.isdigit():
        dt = parse_dtm(text)
        found = None if dt is None else (dt.date(), YEAR if len(text) == 4 else MONTH)
    if found is None:
        return None
    said = (degree or rest.split("^", 1)[0]).strip().upper()
    precision = coarser(found[1], _DEGREES.get(said, DAY))
    return first_day(found[0], precision), precision


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


def format_partial_date(d: date, precision: str) -> str:
    """A date as an HL7 DT at the precision known (``1980``, ``198005``, ``19800517``)."""
    return iso_cut(d.isoformat(), precision).replace("-", "")
