"""Pure billing rules (rules §1, R-LIFE-5, R-LIFE-6): exact fen, dates and hours."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chalicelib.billing import rules
from chalicelib.domain.records import PaygSegment, Period, Plan, PlanUse, PriceVersion
from chalicelib.timeutil import add_months, parse_rfc3339 as t


def plan(*versions):
    return Plan(plan_id="p", versions=[PriceVersion(monthly_price=m, hourly_price=h, effective_from=t(at)) for m, h, at in versions])


def test_R_PAY_2_price_in_force_is_the_latest_version_not_after_the_time():
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"), (12000, 25, "2026-03-01T00:00:00+08:00"))
    assert rules.price_in_force(p, t("2026-02-28T23:59:59+08:00")).monthly_price == 10000
    assert rules.price_in_force(p, t("2026-03-01T00:00:00+08:00")).monthly_price == 12000
    assert rules.price_in_force(p, t("2025-12-31T23:59:59+08:00")) is None


def test_R_PAY_2_price_in_force_a_correction_at_the_same_instant_wins():
    """T2.5 / R-PAY-2: of two versions with the same effective_from, the one listed later is the
    correction (a put at the same effective_from replaces the version) and is the one in force."""
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"), (11000, 22, "2026-01-01T00:00:00+08:00"))
    assert rules.price_in_force(p, t("2026-01-15T00:00:00+08:00")).monthly_price == 11000


@pytest.mark.parametrize("mode, amount, months, expected", [
    ("monthly", 30000, 3, None), ("monthly", 29999, 3, "amount_mismatch"), ("trial", 0, 1, None),
    ("trial", 1, 1, "amount_mismatch"), ("payg", 12345, None, None)])
def test_R_PAY_2_order_amount(mode, amount, months, expected):
    price = PriceVersion(monthly_price=10000, hourly_price=20, effective_from=t("2020-01-01T00:00:00Z"))
    assert rules.order_amount_problem(mode, amount, months, price) == expected


@pytest.mark.parametrize("mode, amount, months, expected", [
    ("monthly", 10000, 1, "no_price_in_force"),
    ("payg", 0, None, "no_price_in_force"), ("payg", 5000, None, "no_price_in_force"),  # E-14: held too
    ("trial", 0, 1, None)])  # a trial costs 0 whatever the price
def test_R_PAY_2_E_14_no_price_in_force_is_a_problem(mode, amount, months, expected):
    assert rules.order_amount_problem(mode, amount, months, None) == expected


def test_R_PAY_1_month_arithmetic_clamps_in_shanghai():
    assert add_months(t("2026-01-31T10:00:00+08:00"), 1) == t("2026-02-28T10:00:00+08:00")
    assert add_months(t("2028-01-31T10:00:00+08:00"), 1) == t("2028-02-29T10:00:00+08:00")
    # 2026-01-31T20:00Z is already 02-01 in Shanghai: months count on the local calendar
    assert add_months(t("2026-01-31T20:00:00Z"), 1) == t("2026-03-01T04:00:00+08:00")


@pytest.mark.parametrize("expires, paid, start, end", [
    ("2026-03-10T10:00:00+08:00", "2026-03-01T09:00:00+08:00", "2026-03-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00"),
    ("2026-03-10T10:00:00+08:00", "2026-03-12T09:00:00+08:00", "2026-03-12T09:00:00+08:00", "2026-04-12T09:00:00+08:00"),
])
def test_R_PAY_3_renewal_counts_from_the_later_of_expiry_and_payment(expires, paid, start, end):
    assert rules.renewal_period(t(expires), t(paid), 1) == (t(start), t(end))


def test_R_PAY_6_every_started_hour_once_at_the_price_when_it_started():
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"), (10000, 30, "2026-01-01T02:00:00+08:00"))
    segments = [PaygSegment(anchor=t("2026-01-01T00:30:00+08:00"))]
    history = [PlanUse(plan_id="p", since=t("2026-01-01T00:30:00+08:00"))]
    charges = rules.hours_to_charge(segments, t("2026-01-01T02:30:00+08:00"), history, "p", {"p": p})
    assert [(c.hour_start, c.price) for c in charges] == [
        (t("2026-01-01T00:30:00+08:00"), 20), (t("2026-01-01T01:30:00+08:00"), 20), (t("2026-01-01T02:30:00+08:00"), 30)]
    assert rules.hours_to_charge(segments, t("2026-01-01T03:29:59+08:00"), history, "p", {"p": p}) == []
    assert rules.next_unbilled_hour(segments) == t("2026-01-01T03:30:00+08:00")


def test_R_PAY_6_no_hour_starting_while_stopped_and_grid_restarts_at_resume():
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"))
    segments = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    rules.close_segment(segments, t("2026-01-01T01:15:00+08:00"))
    rules.open_segment(segments, t("2026-01-01T05:40:00+08:00"))
    charges = rules.hours_to_charge(segments, t("2026-01-01T06:40:00+08:00"), [], "p", {"p": p})
    assert [c.hour_start for c in charges] == [t("2026-01-01T00:00:00+08:00"), t("2026-01-01T01:00:00+08:00"),
                                               t("2026-01-01T05:40:00+08:00"), t("2026-01-01T06:40:00+08:00")]


def test_R_PAY_6_an_hour_starting_at_the_stop_instant_is_not_charged():
    """The server is stopped from the stop instant on: an hour starting exactly then started while stopped
    (a boundary a mutant `start <= end` once passed the suite with)."""
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"))
    segments = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    rules.close_segment(segments, t("2026-01-01T02:00:00+08:00"))
    charges = rules.hours_to_charge(segments, t("2026-01-01T05:00:00+08:00"), [], "p", {"p": p})
    assert [c.hour_start for c in charges] == [t("2026-01-01T00:00:00+08:00"), t("2026-01-01T01:00:00+08:00")]
    assert rules.next_unbilled_hour(segments) is None


@pytest.mark.parametrize("at, plan_id", [
    ("2026-01-01T00:59:59+08:00", "default"), ("2026-01-01T01:00:00+08:00", "std"),
    ("2026-01-01T01:59:59+08:00", "std"), ("2026-01-01T02:00:00+08:00", "pro")])
def test_R_PAY_5_plan_at_is_the_latest_use_since_at_or_before_else_the_default(at, plan_id):
    """R-PAY-5: a plan applies from its `since` (the history need not be sorted); before any, the default."""
    history = [PlanUse(plan_id="pro", since=t("2026-01-01T02:00:00+08:00")),
               PlanUse(plan_id="std", since=t("2026-01-01T01:00:00+08:00"))]
    assert rules.plan_at(history, t(at), "default") == plan_id
    assert rules.plan_at([], t(at), "default") == "default"


def test_R_PAY_6_hours_without_plan_history_are_charged_on_the_server_plan():
    p = plan((10000, 20, "2026-01-01T00:00:00+08:00"))
    segments = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    charges = rules.hours_to_charge(segments, t("2026-01-01T01:00:00+08:00"), [], "p", {"p": p})
    assert [(c.hour_start, c.plan_id, c.price) for c in charges] == [
        (t("2026-01-01T00:00:00+08:00"), "p", 20), (t("2026-01-01T01:00:00+08:00"), "p", 20)]


def test_R_PAY_6_an_hour_with_no_price_in_force_or_no_known_plan_is_charged_0():
    """R-PAY-6 charges the hourly price in force when the hour started: none in force (the first version
    starts later) or a plan that is not known (deleted) charges 0 fen, and the hour still counts once."""
    p = plan((10000, 20, "2026-01-01T01:00:00+08:00"))
    early = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    charges = rules.hours_to_charge(early, t("2026-01-01T01:00:00+08:00"), [], "p", {"p": p})
    assert [(c.hour_start, c.plan_id, c.price) for c in charges] == [
        (t("2026-01-01T00:00:00+08:00"), "p", 0), (t("2026-01-01T01:00:00+08:00"), "p", 20)]
    gone = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    charges = rules.hours_to_charge(gone, t("2026-01-01T00:30:00+08:00"), [], "deleted", {"p": p})
    assert [(c.hour_start, c.plan_id, c.price) for c in charges] == [(t("2026-01-01T00:00:00+08:00"), "deleted", 0)]
    assert gone[0].charged == 1


def test_R_PAY_5_upgrade_prices_hours_after_it_with_the_new_plan():
    std, pro = plan((10000, 20, "2020-01-01T00:00:00Z")), plan((30000, 60, "2020-01-01T00:00:00Z"))
    history = [PlanUse(plan_id="std", since=t("2026-01-01T00:00:00+08:00")), PlanUse(plan_id="pro", since=t("2026-01-01T01:30:00+08:00"))]
    segments = [PaygSegment(anchor=t("2026-01-01T00:00:00+08:00"))]
    charges = rules.hours_to_charge(segments, t("2026-01-01T02:00:00+08:00"), history, "pro", {"std": std, "pro": pro})
    assert [c.price for c in charges] == [20, 20, 60]


def period(start, end, amount, price, months, refunded=False):
    return Period(order_id="o", start=t(start), end=t(end), amount=amount, monthly_price=price, months=months, refunded=refunded)


@pytest.mark.parametrize("at, used", [
    ("2026-01-10T09:59:59+08:00", 0), ("2026-01-10T10:00:00+08:00", 1), ("2026-01-10T10:00:01+08:00", 1), ("2026-02-10T09:59:59+08:00", 1),
    ("2026-02-10T10:00:00+08:00", 2), ("2026-03-31T00:00:00+08:00", 3)])
def test_R_LIFE_5_months_used_counts_a_started_month_whole(at, used):
    """R-LIFE-5, E-3: at the period's start instant 1 month is used (was 0 before E-3); before it 0."""
    assert rules.months_used(t("2026-01-10T10:00:00+08:00"), t(at)) == used


def test_R_LIFE_5_security_incident_refund_per_period():
    periods = [
        period("2025-10-10T10:00:00+08:00", "2026-01-10T10:00:00+08:00", 30000, 10000, 3),  # finished: 0
        period("2026-01-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", 36000, 12000, 3),  # current, 2 used: 12000
        period("2026-04-10T10:00:00+08:00", "2026-05-10T10:00:00+08:00", 12000, 12000, 1),  # not started: all
        period("2026-05-10T10:00:00+08:00", "2026-06-10T10:00:00+08:00", 12000, 12000, 1, refunded=True),
    ]
    assert rules.security_incident_refund(periods, t("2026-02-15T00:00:00+08:00")) == 12000 + 12000


def test_R_LIFE_5_security_incident_refund_never_below_zero():
    periods = [period("2026-01-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", 20000, 10000, 3)]
    assert rules.security_incident_refund(periods, t("2026-03-15T00:00:00+08:00")) == 0


def test_R_LIFE_5_security_incident_refund_sums_every_period_in_any_order():
    """R-LIFE-5: refunded periods are left out wherever they are listed, and every other period adds its part."""
    periods = [
        period("2026-04-10T10:00:00+08:00", "2026-05-10T10:00:00+08:00", 12000, 12000, 1, refunded=True),
        period("2026-04-10T10:00:00+08:00", "2026-05-10T10:00:00+08:00", 12000, 12000, 1),  # not started: all
        period("2026-02-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", 24000, 12000, 2),  # current, 1 used
    ]
    assert rules.security_incident_refund(periods, t("2026-03-01T00:00:00+08:00")) == 12000 + (24000 - 12000)


@pytest.mark.parametrize("at, refund", [
    ("2026-04-10T10:00:00+08:00", 0),                    # the end instant: finished, nothing
    ("2026-04-10T09:59:59+08:00", 60000 - 3 * 12000)])  # a second before: current, 3 months used
def test_R_LIFE_5_security_incident_a_period_is_finished_at_its_end_instant(at, refund):
    """R-LIFE-5: a period is [start, end); a finished one refunds nothing whatever its amount (here more
    than monthly price x months, so the months-used formula would still leave something)."""
    periods = [period("2026-01-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", 60000, 12000, 3)]
    assert rules.security_incident_refund(periods, t(at)) == refund


def test_R_LIFE_5_announcement_refund_rounds_half_up_per_period():
    start = t("2026-01-01T00:00:00+08:00")
    # 3 fen over 2 seconds, 1 second left: 1.5 → 2 (half up)
    p = Period(order_id="o", start=start, end=start + timedelta(seconds=2), amount=3, monthly_price=3, months=1)
    assert rules.announcement_refund([p], start + timedelta(seconds=1)) == 2
    q = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1)
    assert rules.announcement_refund([q], t("2026-01-11T00:00:00+08:00")) == 6774
    assert rules.announcement_refund([q], t("2025-12-01T00:00:00+08:00")) == 10000
    assert rules.announcement_refund([q], t("2026-02-01T00:00:00+08:00")) == 0


def test_R_LIFE_5_announcement_refund_sums_every_unrefunded_period_in_any_order():
    periods = [
        period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1, refunded=True),
        period("2025-12-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00", 10000, 10000, 1),  # finished: 0
        period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1),  # 21 of 31 days: 6774
        period("2026-02-01T00:00:00+08:00", "2026-03-01T00:00:00+08:00", 12000, 12000, 1),  # not started: all
    ]
    assert rules.announcement_refund(periods, t("2026-01-11T00:00:00+08:00")) == 6774 + 12000


@pytest.mark.parametrize("at, refund", [
    ("2026-01-01T00:00:00.000000+08:00", 500_000),  # at the start: the whole amount
    ("2026-01-01T00:00:00.999999+08:00", 1),        # 1 us of 1 s left: 0.5 fen, half up -> 1
    ("2026-01-01T00:00:01.000000+08:00", 0),        # the end instant: nothing left
    ("2026-01-01T00:00:01.000001+08:00", 0)])       # after the end
def test_R_LIFE_5_announcement_refund_counts_to_the_microsecond(at, refund):
    """R-LIFE-5 (T7.3.5): amount x remaining / length with remaining = max(0, end - max(at, start)),
    exact to the microsecond: a 1-second period of 500 000 fen."""
    start = t("2026-01-01T00:00:00+08:00")
    p = Period(order_id="o", start=start, end=start + timedelta(seconds=1), amount=500_000, monthly_price=500_000, months=1)
    got = rules.announcement_refund([p], t(at))
    assert got == refund and type(got) is int


def test_R_LIFE_5_announcement_refund_rounds_an_exact_half_up_with_sub_second_times():
    """R-LIFE-5: 1000 fen over January (31 days), 1 d 12:49:40.8 left: exactly 49.5 fen -> 50. Computed
    through float seconds this once came out as 49.49999... -> 49 (money never goes through floats, rules §0)."""
    q = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 1000, 1000, 1)
    got = rules.announcement_refund([q], t("2026-01-30T11:10:19.200000+08:00"))
    assert got == 50 and type(got) is int
    assert rules.announcement_refund([q], t("2026-01-28T20:29:02.400000+08:00")) == 102  # 101.5 -> 102


def test_R_LIFE_5_announcement_refund_of_an_empty_period_is_0():
    """A period with start == end has nothing left to refund (and no length to divide by)."""
    start = t("2026-01-01T00:00:00+08:00")
    p = Period(order_id="o", start=start, end=start, amount=1000, monthly_price=1000, months=1)
    assert rules.announcement_refund([p], start - timedelta(days=1)) == 0


@pytest.mark.parametrize("reason", ["user_closed", "replaced", "breach", "consensus"])
def test_R_LIFE_5_terminations_without_computed_refund(reason):
    q = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1)
    assert rules.termination_refund(reason, [q], t("2026-01-11T00:00:00+08:00")) == 0


@pytest.mark.parametrize("reason, refund", [
    ("security_incident", (10000 - 10000 * 1) + 12000),  # current period with 1 month used, the next whole
    ("provider_announcement", 6774 + 12000)])           # 21 of 31 days left, the next whole
def test_R_LIFE_5_terminations_with_computed_refund(reason, refund):
    """R-LIFE-5: security incident and provider announcement refund per paid period (any iterable of them)."""
    periods = iter([period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1),
                    period("2026-02-01T00:00:00+08:00", "2026-03-01T00:00:00+08:00", 12000, 12000, 1)])
    assert rules.termination_refund(reason, periods, t("2026-01-11T00:00:00+08:00")) == refund


def test_R_LIFE_6_free_days_after_the_paid_period_refund_nothing():
    paid = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1)
    at = t("2026-02-05T00:00:00+08:00")  # inside free days appended after 02-01
    assert rules.announcement_refund([paid], at) == 0
    assert rules.security_incident_refund([paid], at) == 0


def test_datetimes_here_are_aware():
    assert isinstance(t("2026-01-01T00:00:00Z"), datetime) and t("2026-01-01T00:00:00Z").utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        t("2026-01-01T00:00:00")


@pytest.mark.parametrize("at, refund", [
    ("2026-01-10T10:00:00+08:00", 36000 - 12000), ("2026-02-10T10:00:00+08:00", 36000 - 24000),
    ("2026-02-10T09:59:59+08:00", 36000 - 24000 + 12000)])
def test_E_3_security_incident_refund_at_period_boundaries(at, refund):
    """E-3: at the start instant one month is used; exactly a month later two."""
    periods = [period("2026-01-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", 36000, 12000, 3)]
    assert rules.security_incident_refund(periods, t(at)) == refund


def test_E_7_price_changes_go_to_accounts_with_a_live_server_on_the_plan():
    servers = [("acc-live", "active", False), ("acc-gone", "destroyed", False), ("acc-term", "stopped", True),
               ("acc-mixed", "destroyed", False), ("acc-mixed", "stopped", False), ("acc-live", "stopped", True)]
    assert rules.accounts_to_announce(servers) == ["acc-live", "acc-mixed"]
