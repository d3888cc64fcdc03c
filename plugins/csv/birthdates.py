"""Birth dates known only to the year or month, in partner CSV cells.

Reading a ``birth_date`` column: without a ``format`` the cell is ISO 8601 and may be partial
(``1980``, ``1980-05``); with a ``format`` the date is known as precisely as the format
says (``%m/%Y`` gives a month, ``%Y`` a year). A ``birth_date_precision`` column, when
mapped, may say less still (``year``, ``month``; ``day`` or blank: the whole date).

Writing a partial birth date never makes up a day (or a month) the partner would take for
a real one:

* without a ``format`` it is written as partial ISO (``1980``, ``1980-05``), which reads
  back the same;
* with a ``format`` no finer than what is known (``%Y``, or ``%m/%Y`` for a month) it is
  written with that format;
* with a finer ``format`` (``%m/%d/%Y``) it is written as the first day of its period only
  when the mapping also maps ``birth_date_precision``, so the row itself says the day is a
  stand-in; otherwise the cell is left blank and a warning (mapping and column, no client
  data) is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from hub.core.partial_dates import (
    DAY,
    MONTH,
    PRECISIONS,
    YEAR,
    coarser,
    first_day,
    iso_text,
    parse_iso,
    precision_of,
)

log = logging.getLogger("hub.csv")

BIRTH_DATE = ("birth_date",)
"""The field path of a client's birth date."""
BIRTH_PRECISION = ("birth_date_precision",)
"""The field path of how much of it is known."""

_DIRECTIVE = re.compile(r"%[-#]?(.)")
_DAY_DIRECTIVES = frozenset("dejxcUWV")
_MONTH_DIRECTIVES = frozenset("mbBh")
_PRECISION_WORDS = {"": DAY, "day": DAY, "month": MONTH, "year": YEAR}


@cache
def format_precision(fmt: str | None) -> str:
    """How much of a date a strftime format holds (no format, ISO: the whole date)."""
    if fmt is None:
        return DAY
    found = set(_DIRECTIVE.findall(fmt))
    if found & _DAY_DIRECTIVES:
        return DAY
    return MONTH if found & _MONTH_DIRECTIVES else YEAR


def read_birth_date(cell: str, fmt: str | None) -> str | None:
    """A birth date cell as ISO 8601 at the precision known (``1980``, ``1980-05``,
    ``1980-05-17``); None when it is not a date in the column's form."""
    if fmt is None:
        parsed = parse_iso(cell)
        return None if parsed is None else iso_text(*parsed)
    try:
        day = datetime.strptime(cell, fmt).date()
    except ValueError:
        return None
    return iso_text(day, format_precision(fmt))


def read_precision(cell: str) -> str | None:
    """A ``birth_date_precision`` cell as the canonical word; None when it is not one."""
    return _PRECISION_WORDS.get(cell.strip().lower())


def settle(payload: dict[str, Any]) -> None:
    """Turn a mapped row's partial birth date (``1980``) into what a Client payload keeps:
    the first day of the period and ``birth_date_precision`` (the coarser of the cell's and
    a precision column's). A precision without a birth date is dropped."""
    text = payload.get("birth_date")
    if not isinstance(text, str):
        payload.pop("birth_date_precision", None)
        return
    parsed = parse_iso(text)
    if parsed is None:
        return  # left as it is: reading the record refuses it
    first, given = parsed
    known = coarser(given, str(payload.get("birth_date_precision", "")))
    payload["birth_date"] = first_day(first, known).isoformat()
    if known == DAY:
        payload.pop("birth_date_precision", None)
    else:
        payload["birth_date_precision"] = known


def write_birth_date(
    payload: Mapping[str, Any], fmt: str | None, *, precision_column: bool, where: str
) -> str:
    """The cell of a payload's birth date (see the module docstring); ``where`` names the
    mapping and column for the warning when a partial date is left blank."""
    text = payload.get("birth_date")
    if not text:
        return ""
    try:
        day = date.fromisoformat(str(text))
    except ValueError:
        return str(text)
    known = precision_of(str(payload.get("birth_date_precision", "")))
    if known == DAY:
        return day.isoformat() if fmt is None else day.strftime(fmt)
    if fmt is None:
        return iso_text(day, known)
    wanted = format_precision(fmt)
    if PRECISIONS.index(wanted) >= PRECISIONS.index(known) or precision_column:
        return first_day(day, known).strftime(fmt)
    log.warning(
        "%s: a birth date known only to the %s is left blank (the format needs a %s; map "
        "birth_date_precision too to write its first day)",
        where,
        known,
        "day" if wanted == DAY else "month",
    )
    return ""
