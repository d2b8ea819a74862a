"""Exact-value tests of the free-period rules (rules §3), each named with its rule id."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.free_period import rules
from chalicelib.free_period.rules import (
    DENIAL_REASONS,
    MAINLAND_REGIONS,
    MAX_FREE_DAYS,
    SERVICE_CLOSING_EVENTS,
    SERVICE_ENDING_EVENTS,
    EligibilityFacts,
    FilingEvent,
    approved_at,
    convert_days_for_upgrade,
    denial_reason,
    due_by,
    filing_clock_start,
    free_days,
    is_working_day,
    service_ended,
    service_ended_between,
)
from chalicelib.timeutil import SHANGHAI

CST = timezone(timedelta(hours=8))
D0 = datetime(2026, 3, 2, 9, 30, tzinfo=CST)


def d(n: int, **extra) -> datetime:
    return D0 + timedelta(days=n, **extra)


def ev(kind: str, at: datetime) -> FilingEvent:
    return FilingEvent(kind, at)


# ---------------------------------------------------------------- R-FREE-1

def test_R_FREE_1_withdrawal_restarts_clock_spec_example():
    events = [
        ev("submitted", d(0)),
        ev("withdrawn", d(3)),
        ev("submitted", d(5)),
        ev("rejected", d(8)),
        ev("submitted", d(9)),
        ev("approved", d(15)),
    ]
    start = filing_clock_start(events)
    assert start == d(5)
    assert approved_at(events) == d(15)
    assert free_days(start, approved_at(events)) == 10


def test_R_FREE_1_spec_example_in_shuffled_input_order():
    events = [
        ev("approved", d(15)),
        ev("submitted", d(9)),
        ev("withdrawn", d(3)),
        ev("rejected", d(8)),
        ev("submitted", d(0)),
        ev("submitted", d(5)),
    ]
    assert filing_clock_start(events) == d(5)


def test_R_FREE_1_never_withdrawn_counts_from_first_submission():
    events = [
        ev("submitted", d(0)),
        ev("rejected", d(2)),
        ev("submitted", d(4)),
        ev("approved", d(7)),
    ]
    assert filing_clock_start(events) == d(0)
    assert free_days(filing_clock_start(events), approved_at(events)) == 7


def test_R_FREE_1_rejection_does_not_restart_clock():
    events = [ev("submitted", d(0)), ev("rejected", d(1)), ev("submitted", d(2))]
    assert filing_clock_start(events) == d(0)


def test_R_FREE_1_several_withdrawals_use_last_one():
    events = [
        ev("submitted", d(0)),
        ev("withdrawn", d(1)),
        ev("submitted", d(2)),
        ev("withdrawn", d(3)),
        ev("submitted", d(4)),
        ev("submitted", d(6)),
    ]
    assert filing_clock_start(events) == d(4)


def test_E_4_no_submission_after_last_withdrawal_counts_from_the_last_submission_before_it():
    """E-4 (R-FREE-1): before E-4 this answered None (and the day count raised TypeError)."""
    assert filing_clock_start([ev("submitted", d(0)), ev("withdrawn", d(1))]) == d(0)
    events = [ev("submitted", d(0)), ev("rejected", d(2)), ev("submitted", d(3)), ev("withdrawn", d(4)),
              ev("approved", d(9))]
    assert filing_clock_start(events) == d(3)
    assert free_days(filing_clock_start(events), approved_at(events)) == 6
    assert filing_clock_start([]) is None
    assert filing_clock_start([ev("rejected", d(1))]) is None


def test_R_FREE_1_ties_keep_input_order():
    # withdrawal then submission at the same instant: the submission opens the final attempt
    assert filing_clock_start([ev("submitted", d(0)), ev("withdrawn", d(2)), ev("submitted", d(2))]) == d(2)
    # submission then withdrawal at the same instant: nothing left in the final attempt, so (E-4) the
    # last submission before the withdrawal counts
    assert filing_clock_start([ev("submitted", d(0)), ev("submitted", d(2)), ev("withdrawn", d(2))]) == d(2)


def test_R_FREE_1_E_13_approved_at_is_the_first_approval_or_none():
    assert approved_at([ev("approved", d(9)), ev("submitted", d(0)), ev("approved", d(4))]) == d(4)
    assert approved_at([ev("submitted", d(0))]) is None


def test_R_FREE_1_event_validation():
    with pytest.raises(ValueError):
        FilingEvent("approve", d(0))
    with pytest.raises(ValueError):
        FilingEvent("submitted", datetime(2026, 1, 1))


def test_R_FREE_1_three_days_one_second_is_four_days():
    assert free_days(d(0), d(3, seconds=1)) == 4


def test_R_FREE_1_one_microsecond_over_counts_a_day():
    assert free_days(d(0), d(3, microseconds=1)) == 4
    assert free_days(d(0), d(0, microseconds=1)) == 1


def test_R_FREE_1_exactly_three_days_is_three():
    assert free_days(d(0), d(3)) == 3


def test_R_FREE_1_exactly_three_days_across_time_zones():
    start = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)
    assert free_days(start, datetime(2026, 3, 5, 9, 30, tzinfo=SHANGHAI)) == 3


def test_R_FREE_1_sixty_days_capped_at_45():
    assert free_days(d(0), d(60)) == 45
    assert free_days(d(0), d(45)) == 45
    assert free_days(d(0), d(44, seconds=1)) == 45
    assert MAX_FREE_DAYS == 45


def test_R_FREE_1_approved_not_after_start_is_zero():
    assert free_days(d(0), d(0)) == 0
    assert free_days(d(5), d(0)) == 0


@given(
    start_offset=st.integers(min_value=-10**6, max_value=10**6),
    a=st.integers(min_value=-10**13, max_value=10**14),
    b=st.integers(min_value=-10**13, max_value=10**14),
)
def test_R_FREE_1_property_bounded_and_monotonic(start_offset, a, b):
    start = D0 + timedelta(seconds=start_offset)
    early, late = sorted((a, b))
    first = free_days(start, start + timedelta(microseconds=early))
    second = free_days(start, start + timedelta(microseconds=late))
    assert 0 <= first <= MAX_FREE_DAYS
    assert 0 <= second <= MAX_FREE_DAYS
    assert first <= second


# ---------------------------------------------------------------- R-FREE-5

def test_R_FREE_5_spec_example_20_days_10000_to_30000_is_7():
    assert convert_days_for_upgrade(20, 10000, 30000) == 7


def test_R_FREE_5_cheaper_plan_capped_at_45():
    assert convert_days_for_upgrade(40, 30000, 10000) == 45


def test_R_FREE_5_cheaper_plan_below_cap_rounds_up():
    assert convert_days_for_upgrade(10, 30000, 20000) == 15
    assert convert_days_for_upgrade(7, 10000, 20000) == 4  # 3.5 -> 4


def test_R_FREE_5_exact_division_not_rounded_up():
    assert convert_days_for_upgrade(30, 10000, 30000) == 10


def test_R_FREE_5_equal_prices_keep_days():
    assert convert_days_for_upgrade(20, 12345, 12345) == 20
    assert convert_days_for_upgrade(0, 10000, 30000) == 0


def test_R_FREE_5_refuses_bad_inputs():
    with pytest.raises(ValueError):
        convert_days_for_upgrade(20, 0, 30000)
    with pytest.raises(ValueError):
        convert_days_for_upgrade(-1, 10000, 30000)
    with pytest.raises(TypeError):
        convert_days_for_upgrade(20, 100.0, 300)


# ---------------------------------------------------------------- R-FREE-3

def test_R_FREE_3_working_days_from_official_calendar():
    assert is_working_day(date(2026, 11, 20)) is True  # Friday
    assert is_working_day(date(2026, 11, 21)) is False  # Saturday
    assert is_working_day(date(2025, 10, 1)) is False  # National Day
    assert is_working_day(date(2025, 10, 8)) is False  # last day of the 2025 holiday week
    assert is_working_day(date(2025, 9, 28)) is True  # Sunday swapped into a working day
    assert is_working_day(date(2025, 10, 11)) is True  # Saturday swapped into a working day


def test_R_FREE_3_unannounced_year_still_answers_without_swaps():
    # 2099: no holiday notice will be published for it by any calendar release this project could
    # pin, so this checks the behaviour for an unannounced year, not one release's data: fixed-date
    # statutory holidays, no swapped weekend workdays, no announced golden-week extension.
    assert is_working_day(date(2099, 10, 1)) is False  # National Day (a Thursday)
    assert is_working_day(date(2099, 9, 27)) is False  # a Sunday: no swapped workdays known
    assert is_working_day(date(2099, 10, 10)) is False  # a Saturday: no swapped workdays known
    assert is_working_day(date(2099, 10, 8)) is True  # a Thursday after the statutory days
    assert is_working_day(date(2099, 10, 12)) is True  # a Monday


def test_R_FREE_3_is_working_day_refuses_datetime():
    with pytest.raises(TypeError):
        is_working_day(datetime(2026, 11, 20, 12, tzinfo=SHANGHAI))


def test_R_FREE_3_friday_afternoon_due_monday_same_time():
    due = due_by(datetime(2026, 11, 20, 15, 0, tzinfo=CST))
    assert due == datetime(2026, 11, 23, 15, 0, tzinfo=CST)
    assert due.tzinfo is SHANGHAI
    assert due.isoformat() == "2026-11-23T15:00:00+08:00"


def test_R_FREE_3_saturday_due_monday_same_time():
    assert due_by(datetime(2026, 11, 21, 10, 0, tzinfo=CST)) == datetime(2026, 11, 23, 10, 0, tzinfo=CST)


def test_R_FREE_3_weekday_due_next_day():
    assert due_by(datetime(2026, 11, 17, 9, 15, 30, tzinfo=CST)) == datetime(2026, 11, 18, 9, 15, 30, tzinfo=CST)


def test_R_FREE_3_day_before_national_day_due_after_holiday_week():
    # the official 2025 calendar: 2025-10-01..08 are days off
    for n in range(1, 9):
        assert is_working_day(date(2025, 10, n)) is False
    assert due_by(datetime(2025, 9, 30, 11, 0, tzinfo=CST)) == datetime(2025, 10, 9, 11, 0, tzinfo=CST)


def test_R_FREE_3_swapped_sunday_is_a_due_day():
    # Friday 2025-09-26 -> Saturday 27 is off, Sunday 28 is an official (swapped) working day
    assert is_working_day(date(2025, 9, 27)) is False
    assert is_working_day(date(2025, 9, 28)) is True
    assert due_by(datetime(2025, 9, 26, 16, 45, tzinfo=CST)) == datetime(2025, 9, 28, 16, 45, tzinfo=CST)


def test_R_FREE_3_local_date_decides_utc_thursday_evening_is_shanghai_friday():
    # Thursday 2026-11-19 23:30 UTC = Friday 2026-11-20 07:30 in Shanghai -> due Monday 07:30
    accepted = datetime(2026, 11, 19, 23, 30, tzinfo=timezone.utc)
    assert due_by(accepted) == datetime(2026, 11, 23, 7, 30, tzinfo=CST)


def test_R_FREE_3_refuses_naive_acceptance():
    with pytest.raises(ValueError):
        due_by(datetime(2026, 11, 20, 15, 0))


# ---------------------------------------------------------------- R-FREE-2

ELIGIBLE = EligibilityFacts(
    application_server_id="srv-1",
    filing_server_id="srv-1",
    filing_approved=True,
    filing_is_change=False,
    other_first_filing_approved_before=False,
    billing_mode="monthly",
    region="cn-north-1",
    already_granted=False,
    service_ended=False,
    account_violation=False,
    server_violation=False,
)

SINGLE_FAILURES = {
    "server_mismatch": dict(application_server_id="srv-2"),
    "filing_not_approved": dict(filing_approved=False),
    "not_first_website": dict(other_first_filing_approved_before=True),
    "trial_server": dict(billing_mode="trial"),
    "not_monthly_package": dict(billing_mode="payg"),
    "region_not_mainland": dict(region="ap-northeast-1"),
    "already_granted": dict(already_granted=True),
    "service_ended": dict(service_ended=True),
    "violation": dict(account_violation=True),
}


def test_R_FREE_2_reason_codes_in_table_order():
    assert DENIAL_REASONS == (
        "server_mismatch",
        "filing_not_approved",
        "not_first_website",
        "trial_server",
        "not_monthly_package",
        "region_not_mainland",
        "already_granted",
        "service_ended",
        "violation",
    )
    assert tuple(code for code, _ in rules.ELIGIBILITY_TABLE) == DENIAL_REASONS


def test_R_FREE_2_eligible_is_none():
    assert denial_reason(ELIGIBLE) is None


@pytest.mark.parametrize("region", sorted(MAINLAND_REGIONS))
def test_R_FREE_2_every_mainland_region_eligible(region):
    assert denial_reason(replace(ELIGIBLE, region=region)) is None


@pytest.mark.parametrize("code", DENIAL_REASONS)
def test_R_FREE_2_each_reason_alone(code):
    assert denial_reason(replace(ELIGIBLE, **SINGLE_FAILURES[code])) == code


def test_R_FREE_2_change_filing_is_not_first_website():
    assert denial_reason(replace(ELIGIBLE, filing_is_change=True)) == "not_first_website"


def test_R_FREE_2_server_violation_alone():
    assert denial_reason(replace(ELIGIBLE, server_violation=True)) == "violation"


def test_R_FREE_2_ap_northeast_1_is_not_mainland():
    assert "ap-northeast-1" not in MAINLAND_REGIONS
    assert denial_reason(replace(ELIGIBLE, region="ap-northeast-1")) == "region_not_mainland"


def test_R_FREE_2_trial_and_not_mainland_gives_trial_server():
    assert denial_reason(replace(ELIGIBLE, billing_mode="trial", region="ap-northeast-1")) == "trial_server"


def test_R_FREE_2_first_failure_in_table_order_wins():
    for i, code in enumerate(DENIAL_REASONS):
        changes: dict = {}
        for later in DENIAL_REASONS[i:]:
            if later == "not_monthly_package" and "billing_mode" in changes:
                continue  # trial already makes it not monthly
            changes.update(SINGLE_FAILURES[later])
        assert denial_reason(replace(ELIGIBLE, **changes)) == code


def test_R_FREE_2_everything_failing_gives_server_mismatch():
    facts = EligibilityFacts(
        application_server_id="a",
        filing_server_id="b",
        filing_approved=False,
        filing_is_change=True,
        other_first_filing_approved_before=True,
        billing_mode="trial",
        region="us-east-1",
        already_granted=True,
        service_ended=True,
        account_violation=True,
        server_violation=True,
    )
    assert denial_reason(facts) == "server_mismatch"


# ---------------------------------------------------------------- R-FREE-2 (8)

def test_R_FREE_2_service_ended_boundaries_inclusive():
    start, end = d(0), d(10)
    assert service_ended_between([("expired", start)], start, end) is True
    assert service_ended_between([("refunded", end)], start, end) is True
    assert service_ended_between([("unsubscribed", d(5))], start, end) is True


def test_R_FREE_2_service_ended_outside_window_false():
    start, end = d(0), d(10)
    assert service_ended_between([("expired", start - timedelta(microseconds=1))], start, end) is False
    assert service_ended_between([("terminated", end + timedelta(microseconds=1))], start, end) is False
    assert service_ended_between([], start, end) is False


def test_R_FREE_2_service_ended_only_ending_kinds_count():
    start, end = d(0), d(10)
    assert service_ended_between([("renewed", d(5)), ("upgraded", d(6))], start, end) is False
    for kind in sorted(SERVICE_ENDING_EVENTS):
        assert service_ended_between([("renewed", d(1)), (kind, d(2))], start, end) is True
    assert SERVICE_ENDING_EVENTS == {"expired", "refunded", "unsubscribed", "replaced", "terminated"}


def test_R_FREE_2_service_ended_compares_instants_across_zones():
    start, end = d(0), d(10)  # d(0) = 2026-03-02 09:30 +08:00 = 01:30 UTC
    at_start_in_utc = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)
    assert service_ended_between([("replaced", at_start_in_utc)], start, end) is True
    assert service_ended_between([("replaced", at_start_in_utc - timedelta(seconds=1))], start, end) is False


# ---------------------------------------------------------------- argument checks: the message names the field

class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime carrying it is still not time-zone aware."""

    def utcoffset(self, dt):
        return None

    def dst(self, dt):
        return None

    def tzname(self, dt):
        return None


# (rule, call taking the value under test, the field the message must name)
AWARE_CHECKS = [
    ("R-FREE-1", lambda value: FilingEvent("submitted", value), "at"),
    ("R-FREE-1", lambda value: free_days(value, d(1)), "start"),
    ("R-FREE-1", lambda value: free_days(d(0), value), "approved"),
    ("R-FREE-3", lambda value: due_by(value), "accepted_at"),
    ("R-FREE-2(8)", lambda value: service_ended_between([], value, d(1)), "start"),
    ("R-FREE-2(8)", lambda value: service_ended_between([], d(0), value), "end"),
    ("E-8", lambda value: service_ended([], d(0), d(1), value), "decided_at"),
]
AWARE_IDS = [f"{rule}-{field}" for rule, _, field in AWARE_CHECKS]


def message_of(error: type[Exception], call) -> str:
    with pytest.raises(error) as raised:
        call()
    assert type(raised.value) is error
    return str(raised.value)


@pytest.mark.parametrize("rule, call, field", AWARE_CHECKS, ids=AWARE_IDS)
@pytest.mark.parametrize("value", [datetime(2026, 3, 2, 9, 30), datetime(2026, 3, 2, 9, 30, tzinfo=_NoOffset())],
                         ids=["naive", "tzinfo-without-offset"])
def test_R_FREE_instants_must_be_aware_message_names_the_field(rule, call, field, value):
    """R-FREE-1, R-FREE-2 (8), R-FREE-3: an instant without a UTC offset is refused with the field's name."""
    assert message_of(ValueError, lambda: call(value)) == f"{field} must be time-zone aware"


@pytest.mark.parametrize("rule, call, field", AWARE_CHECKS, ids=AWARE_IDS)
@pytest.mark.parametrize("value", [date(2026, 3, 2), "2026-03-02T09:30:00+08:00"], ids=["date", "str"])
def test_R_FREE_instants_must_be_datetimes_message_names_the_field(rule, call, field, value):
    """R-FREE-1, R-FREE-2 (8), R-FREE-3: a non-datetime instant is a TypeError naming the field."""
    assert message_of(TypeError, lambda: call(value)) == f"{field} must be a datetime"


def test_R_FREE_1_unknown_event_kind_message():
    assert message_of(ValueError, lambda: FilingEvent("approve", d(0))) == "unknown filing event kind: 'approve'"


@pytest.mark.parametrize(
    "args, error, message",
    [
        (("20", 10000, 30000), TypeError, "days must be an int"),
        ((True, 10000, 30000), TypeError, "days must be an int"),
        ((20, 100.0, 300), TypeError, "old_monthly_price must be an int"),
        ((20, 10000, "30000"), TypeError, "new_monthly_price must be an int"),
        ((-1, 10000, 30000), ValueError, "days must not be negative"),
        ((20, 0, 30000), ValueError, "monthly prices must be positive"),
        ((20, -10000, 30000), ValueError, "monthly prices must be positive"),
        ((20, 10000, 0), ValueError, "monthly prices must be positive"),
        ((20, 10000, -30000), ValueError, "monthly prices must be positive"),
        ((20, 0, 0), ValueError, "monthly prices must be positive"),
    ],
)
def test_R_FREE_5_bad_inputs_refused_with_exact_message(args, error, message):
    """R-FREE-5: days and both prices are validated, each message naming what is wrong."""
    assert message_of(error, lambda: convert_days_for_upgrade(*args)) == message


@pytest.mark.parametrize(
    "days, old, new, expected",
    [
        (20, 1, 2, 10),  # the smallest positive old price is a price: ceil(20 x 1 / 2) = 10
        (1, 2, 1, 2),  # the smallest positive new price is a price: ceil(1 x 2 / 1) = 2
        (3, 1, 1, 3),  # equal 1-fen prices keep the days
    ],
)
def test_R_FREE_5_one_fen_prices_are_positive(days, old, new, expected):
    """R-FREE-5: any positive fen price converts, 1 fen included."""
    assert convert_days_for_upgrade(days, old, new) == expected


@pytest.mark.parametrize("value", [datetime(2026, 11, 20, 12, tzinfo=SHANGHAI), "2026-11-20"], ids=["datetime", "str"])
def test_R_FREE_3_is_working_day_refusal_message(value):
    """R-FREE-3: the day is a local calendar date; anything else is refused with a hint."""
    assert message_of(TypeError, lambda: is_working_day(value)) == (
        "day must be a date (use timeutil.local_date for an instant)")


# ---------------------------------------------------------------- E-8: a service that ended early

@pytest.mark.parametrize("kind, at, ended", [
    ("terminated", d(12), True),    # after the approval, before the acceptance (d(14))
    ("terminated", d(14), True),    # at the acceptance
    ("terminated", d(-5), True),    # before the filing started: still an early end
    ("destroyed", d(13), True),
    ("terminated", d(14) + timedelta(microseconds=1), False),  # after the decision: not known then
    ("expired", d(12), False),      # an expiry after the approval does not deny (E-5)
    ("unsubscribed", d(12), True),
])
def test_E_8_a_termination_or_destruction_before_the_acceptance_ends_the_service(kind, at, ended):
    start, approved, accepted = d(0), d(10), d(14)
    assert service_ended([(kind, at)], start, approved, accepted) is ended
    assert SERVICE_CLOSING_EVENTS == {"refunded", "unsubscribed", "replaced", "terminated", "destroyed"}


def test_E_8_R_FREE_2_8_an_end_during_the_filing_still_denies():
    assert service_ended([("expired", d(5))], d(0), d(10), d(14)) is True
    assert service_ended([], d(0), d(10), d(14)) is False
