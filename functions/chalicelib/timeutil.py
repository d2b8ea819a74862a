"""Aware datetimes, the Asia/Shanghai calendar and RFC 3339 text: the one place local days are computed."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; it must carry an offset (naive times are refused)."""
    if not isinstance(text, str):
        raise ValueError("must be an RFC 3339 string")
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time-zone offset")
    return check_range(value)


def parse_stored(text: str) -> datetime:
    """A time read back from the store: no range check (a view must show what is stored, not fail on it)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def check_range(value: datetime) -> datetime:
    """Business times outside 2000–2199 are input errors, not instants to compute with."""
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 2000-01-01 and 2199-12-31")
    return value


def to_local(value: datetime) -> datetime:
    return value.astimezone(SHANGHAI)


def fmt(value: datetime | None) -> str | None:
    """RFC 3339 with the +08:00 offset, as every view shows times."""
    if value is None:
        return None
    return to_local(value).isoformat()


def store_key(value: datetime) -> str:
    """UTC text that sorts in time order (used in keys and indexes)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_store_key(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def local_date(value: datetime) -> date:
    return to_local(value).date()


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=SHANGHAI)


def add_months(value: datetime, months: int) -> datetime:
    """Calendar months in Asia/Shanghai; a day past the month's end clamps to its last day."""
    return (to_local(value) + relativedelta(months=months)).astimezone(UTC)


def add_days(value: datetime, days: int) -> datetime:
    """Whole days of 24 h."""
    return value + timedelta(days=days)
