"""EventBridge schedule expressions, as the local stack's runner fires them: `rate(n unit)` and the
six-field `cron(minutes hours day-of-month month day-of-week year)`, always in UTC.

Supported cron syntax: `*`, `?`, numbers, names (JAN-DEC, SUN-SAT), lists `a,b`, ranges `a-b`, steps
`*/n` and `a-b/n`; day-of-week 1-7 is SUN-SAT, as in EventBridge. The `L`, `W` and `#` forms raise
ValueError rather than firing at a wrong time. No library for this is installed in the venv."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_RATE = re.compile(r"^rate\((\d+) (minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")
_UNIT = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_MONTHS = {name: i for i, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {name: i for i, name in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
_SCAN_DAYS = 366 * 8  # far enough for any supported expression (29 February in a year list) to come round


def parse(expression, anchor: datetime) -> "Rate | Cron":
    """A chalice Rate/Cron or its string; `anchor` is when a rate's rule was created (its first firing
    is one period later, as EventBridge counts it)."""
    text = expression if isinstance(expression, str) else expression.to_string()
    if match := _RATE.match(text):
        value, unit = int(match[1]), match[2].rstrip("s")
        if value < 1 or (value == 1) != (not match[2].endswith("s")):
            raise ValueError(f"{text}: EventBridge wants `1 {unit}` or `n {unit}s` with n > 1")
        return Rate(value * _UNIT[unit], anchor.astimezone(timezone.utc))
    if match := _CRON.match(text):
        minutes, hours, dom, month, dow, year = match.groups()
        if (dom == "?") == (dow == "?"):
            raise ValueError(f"{text}: exactly one of day-of-month and day-of-week must be `?`")
        return Cron(text, _field(minutes, 0, 59), _field(hours, 0, 23),
                    None if dom == "?" else _field(dom, 1, 31), _field(month, 1, 12, _MONTHS),
                    None if dow == "?" else _field(dow, 1, 7, _DAYS), _field(year, 1970, 2199))
    raise ValueError(f"{expression!r} is not a rate(...) or cron(...) expression")


def _field(text: str, low: int, high: int, names: dict | None = None) -> frozenset[int]:
    values = set()
    for part in text.split(","):
        if re.search(r"[LW#]", re.sub(r"[A-Za-z]{3}", "", part)):  # JUL and WED are names
            raise ValueError(f"cron field {text!r}: L, W and # are not supported by the local runner")
        span, _, step = part.partition("/")
        if span == "*":
            start, end = low, high
        else:
            first, dash, last = span.partition("-")
            start = _value(first, names)
            end = _value(last, names) if dash else (high if step else start)
        if not (low <= start <= end <= high) or (step and int(step) < 1):
            raise ValueError(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, int(step or 1)))
    return frozenset(values)


def _value(text: str, names: dict | None) -> int:
    return (names or {}).get(text.upper()) or int(text)


@dataclass(frozen=True)
class Rate:
    period: timedelta
    anchor: datetime

    def next_after(self, instant: datetime) -> datetime:
        periods = max(1, math.floor((instant - self.anchor) / self.period) + 1)
        return self.anchor + periods * self.period


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None
    months: frozenset[int]
    days_of_week: frozenset[int] | None
    years: frozenset[int]

    def _day_matches(self, day) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        return day.isoweekday() % 7 + 1 in self.days_of_week  # Sunday is 1

    def next_after(self, instant: datetime) -> datetime:
        """The first firing strictly after `instant` (which is timezone-aware)."""
        after = instant.astimezone(timezone.utc)
        for offset in range(_SCAN_DAYS):
            day = after.date() + timedelta(days=offset)
            if not self._day_matches(day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
                    if candidate > after:
                        return candidate
        raise ValueError(f"{self.text} does not fire within {_SCAN_DAYS} days of {instant.isoformat()}")
