"""Dates known only to the year or the month (a FHIR ``date``, an HL7 DT of reduced precision).

A :class:`~hub.core.records.Client` keeps a birth date as ``birth_date`` (a ``date``) and
``birth_date_precision``: :data:`DAY` (``""``, the default, so every payload stored before
partial dates reads as it always did), :data:`MONTH` or :data:`YEAR`. A partial date is held
as the first day of its period; that day was never reported, so it is written out only at
the precision known (``1980``, ``1980-05``) — or, where a format has no partial dates (HUD
CSV), as that first day with a flag saying so.

An unknown precision word reads as :data:`YEAR`: never claim more than is known.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Final

DAY: Final = ""
"""Precision: the whole date is known (the default)."""
MONTH: Final = "month"
"""Precision: the year and month are known; the date is the first of that month."""
YEAR: Final = "year"
"""Precision: only the year is known; the date is 1 January of that year."""
PRECISIONS: Final = (DAY, MONTH, YEAR)

_ISO = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def precision_of(word: str) -> str:
    """A precision word as one of :data:`PRECISIONS` (an unknown word: :data:`YEAR`)."""
    return word if word in PRECISIONS else YEAR


def first_day(day: date, precision: str) -> date:
    """The first day of the period ``day`` falls in, at ``precision``."""
    precision = precision_of(precision)
    if precision == YEAR:
        return day.replace(month=1, day=1)
    if precision == MONTH:
        return day.replace(day=1)
    return day


def last_day(day: date, precision: str) -> date:
    """The last day of the period ``day`` falls in, at ``precision``."""
    precision = precision_of(precision)
    if precision == YEAR:
        return day.replace(month=12, day=31)
    if precision == MONTH:
        return day.replace(day=calendar.monthrange(day.year, day.month)[1])
    return day


def iso_text(day: date, precision: str) -> str:
    """ISO 8601 at the precision known: ``1980``, ``1980-05`` or ``1980-05-17``."""
    return iso_cut(day.isoformat(), precision)


def iso_cut(text: str, precision: str) -> str:
    """An ISO date (``YYYY-MM-DD``, as a payload keeps it) cut to ``precision``."""
    precision = precision_of(precision)
    if precision == YEAR:
        return text[:4]
    if precision == MONTH:
        return text[:7]
    return text


def parse_iso(text: str) -> tuple[date, str] | None:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` as (first day, precision); None when it is
    not a real date in one of these forms."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day = m.groups()
    try:
        value = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None
    precision = DAY if day else MONTH if month else YEAR
    return value, precision


def coarser(a: str, b: str) -> str:
    """The coarser of two precisions (unknown words read as :data:`YEAR`)."""
    a, b = precision_of(a), precision_of(b)
    return a if PRECISIONS.index(a) >= PRECISIONS.index(b) else b


def is_partial(precision: str) -> bool:
    """Whether a precision word says less than the whole date is known."""
    return precision != DAY
