"""The local runner's schedule expressions (infra/local/schedule.py): integration §3's instants, in UTC."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from chalice import Cron, Rate

from infra.local import schedule

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
ANCHOR = datetime(2026, 12, 5, 13, 37, 12, tzinfo=UTC)


def test_contract_3_expiry_sweep_fires_daily_at_00_10_shanghai():
    cron = schedule.parse(Cron(10, 16, "*", "*", "?", "*"), ANCHOR)
    first = cron.next_after(ANCHOR)
    assert first == datetime(2026, 12, 5, 16, 10, tzinfo=UTC)
    assert first.astimezone(SHANGHAI).isoformat() == "2026-12-06T00:10:00+08:00"
    assert cron.next_after(first) == datetime(2026, 12, 6, 16, 10, tzinfo=UTC)  # strictly after
    assert cron.next_after(datetime(2026, 12, 31, 16, 10, 1, tzinfo=UTC)) == datetime(2027, 1, 1, 16, 10, tzinfo=UTC)


def test_the_hourly_cron_fires_on_the_hour():
    cron = schedule.parse("cron(0 * * * ? *)", ANCHOR)
    assert cron.next_after(ANCHOR) == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    assert cron.next_after(datetime(2026, 12, 5, 23, 0, tzinfo=UTC)) == datetime(2026, 12, 6, 0, 0, tzinfo=UTC)


def test_a_rate_counts_whole_periods_from_its_rules_creation():
    five = schedule.parse(Rate(5, unit=Rate.MINUTES), ANCHOR)
    assert five.next_after(ANCHOR) == datetime(2026, 12, 5, 13, 42, 12, tzinfo=UTC)
    assert five.next_after(datetime(2026, 12, 5, 13, 42, 12, tzinfo=UTC)) == datetime(2026, 12, 5, 13, 47, 12, tzinfo=UTC)
    assert five.next_after(datetime(2026, 12, 5, 14, 0, tzinfo=UTC)) == datetime(2026, 12, 5, 14, 2, 12, tzinfo=UTC)
    hourly = schedule.parse(Rate(1, unit=Rate.HOURS), ANCHOR)
    assert hourly.next_after(ANCHOR) == datetime(2026, 12, 5, 14, 37, 12, tzinfo=UTC)
    assert schedule.parse("rate(2 days)", ANCHOR).next_after(ANCHOR) == datetime(2026, 12, 7, 13, 37, 12, tzinfo=UTC)


def test_lists_ranges_steps_names_and_days_of_week():
    # 08:15 and 08:45 on weekdays (MON-FRI = 2-6); 2026-12-05 is a Saturday
    cron = schedule.parse("cron(15/30 8 ? * MON-FRI *)", ANCHOR)
    assert cron.next_after(ANCHOR) == datetime(2026, 12, 7, 8, 15, tzinfo=UTC)
    assert cron.next_after(datetime(2026, 12, 7, 8, 15, tzinfo=UTC)) == datetime(2026, 12, 7, 8, 45, tzinfo=UTC)
    sunday = schedule.parse("cron(0 0 ? * 1 *)", ANCHOR)  # 1 is SUN in EventBridge
    assert sunday.next_after(ANCHOR) == datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    leap = schedule.parse("cron(0 12 29 FEB ? 2027,2028)", ANCHOR)
    assert leap.next_after(ANCHOR) == datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    listed = schedule.parse("cron(0 3,9-10 1 JAN,JUL ? *)", ANCHOR)
    assert listed.next_after(ANCHOR) == datetime(2027, 1, 1, 3, 0, tzinfo=UTC)
    assert listed.next_after(datetime(2027, 1, 1, 3, 0, tzinfo=UTC)) == datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "cron(0 10 * * * *)", "cron(0 10 ? * ? *)", "cron(0 10 L * ? *)", "cron(0 10 ? * 6#3 *)", "cron(60 * * * ? *)",
    "cron(0 10 * *)", "rate(1 hours)", "rate(5 minute)", "rate(0 minutes)", "every 5 minutes",
])
def test_expressions_the_runner_would_misread_are_refused(text):
    with pytest.raises(ValueError):
        schedule.parse(text, ANCHOR)
