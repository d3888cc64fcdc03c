"""Crontab lines read as crontab(5) reads them, turned into APScheduler triggers.

APScheduler's ``CronTrigger.from_crontab`` counts the day of week from 0 = Monday, where
crontab counts from 0 = Sunday (and also accepts 7 = Sunday): ``0 2 * * 1`` would run on
Tuesdays and ``7`` would be refused. :func:`cron_trigger` translates the day-of-week field
(numbers, names, ranges, lists, steps) before building the trigger, so a schedule runs on
the days its crontab line names.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Crontab's day numbers 0-6 (7 is Sunday again)."""


def _day_number(text: str) -> int:
    """A crontab day of week (0-7 or a name such as ``mon``) as 0 = Sunday … 6 = Saturday."""
    name = text.lower()
    if name in _CRON_DAYS:
        return _CRON_DAYS.index(name)
    if not text.isdigit() or not 0 <= int(text) <= 7:
        raise ValueError(f"day of week {text!r} is not 0-7 or a day name (sun … sat)")
    return int(text) % 7


def _day_item(item: str) -> set[int]:
    """The days (0 = Sunday) of one comma-separated item: ``*``, ``n``, ``a-b``, with ``/s``."""
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ValueError(f"day of week step {step_text!r} is not a positive number")
        step = int(step_text)
    if span == "*":
        first, last = 0, 6
    elif "-" in span:
        low, _, high = span.partition("-")
        first, last = _day_number(low), _day_number(high)
        if high.isdigit() and int(high) == 7:
            last = 7  # "5-7": Friday to Sunday
        if first > last:
            raise ValueError(f"day of week range {span!r} runs backwards")
    elif slash:
        raise ValueError(f"day of week step in {item!r} needs a range or '*'")
    else:
        first = last = _day_number(span)
    return {day % 7 for day in range(first, last + 1, step)}


def day_of_week_field(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) in APScheduler's terms (0 = Monday)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        if not item:
            raise ValueError(f"day of week {field!r} has an empty list item")
        days |= _day_item(item)
    if len(days) == 7:
        return "*"
    return ",".join(str((day - 1) % 7) for day in sorted(days, key=lambda d: (d - 1) % 7))


def cron_trigger(line: str, timezone: tzinfo | str = UTC) -> BaseTrigger:
    """The trigger of a five-field crontab line (minute hour day month day-of-week), with the
    day of week counted as crontab counts it and a line restricting both days firing on
    either; raises ValueError for a line it cannot read."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    weekdays = day_of_week_field(weekday)

    def trigger(day: str, weekdays: str) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekdays,
            timezone=timezone,
        )

    # crontab(5) calls a field starting with "*" unrestricted ("*/2" included).
    if day.startswith("*") or weekday.startswith("*"):
        return trigger(day, weekdays)
    return OrTrigger([trigger(day, "*"), trigger("*", weekdays)])


def checked_cron_trigger(line: str, timezone: tzinfo | str = UTC) -> BaseTrigger:
    """:func:`cron_trigger`, also refusing a line that never fires (``0 0 31 2 *``)."""
    trigger = cron_trigger(line, timezone)
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError(f"crontab line {line!r} never fires")
    return trigger
