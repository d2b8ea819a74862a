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


@pytest.mark.parametrize("mode, amount, months, expected", [
    ("monthly", 30000, 3, None), ("monthly", 29999, 3, "amount_mismatch"), ("trial", 0, 1, None),
    ("trial", 1, 1, "amount_mismatch"), ("payg", 12345, None, None)])
def test_R_PAY_2_order_amount(mode, amount, months, expected):
    price = PriceVersion(monthly_price=10000, hourly_price=20, effective_from=t("2020-01-01T00:00:00Z"))
    assert rules.order_amount_problem(mode, amount, months, price) == expected


def test_R_PAY_2_no_price_in_force_is_a_problem():
    assert rules.order_amount_problem("monthly", 10000, 1, None) == "no_price_in_force"


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


def test_R_LIFE_5_announcement_refund_rounds_half_up_per_period():
    start = t("2026-01-01T00:00:00+08:00")
    # 3 fen over 2 seconds, 1 second left: 1.5 → 2 (half up)
    p = Period(order_id="o", start=start, end=start + timedelta(seconds=2), amount=3, monthly_price=3, months=1)
    assert rules.announcement_refund([p], start + timedelta(seconds=1)) == 2
    q = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1)
    assert rules.announcement_refund([q], t("2026-01-11T00:00:00+08:00")) == 6774
    assert rules.announcement_refund([q], t("2025-12-01T00:00:00+08:00")) == 10000
    assert rules.announcement_refund([q], t("2026-02-01T00:00:00+08:00")) == 0


@pytest.mark.parametrize("reason", ["user_closed", "replaced", "breach", "consensus"])
def test_R_LIFE_5_terminations_without_computed_refund(reason):
    q = period("2026-01-01T00:00:00+08:00", "2026-02-01T00:00:00+08:00", 10000, 10000, 1)
    assert rules.termination_refund(reason, [q], t("2026-01-11T00:00:00+08:00")) == 0


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
