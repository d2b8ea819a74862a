"""Pure lifecycle rules (rules §2): stop reasons, retention, the sweep's steps."""
from __future__ import annotations

import pytest

from chalicelib.domain.records import Server
from chalicelib.lifecycle import rules
from chalicelib.timeutil import parse_rfc3339 as t
from chalicelib.timeutil import parse_stored  # no range check: times outside it


def server(**fields):
    base = dict(server_id="s", account_id="a", billing_mode="monthly", plan_id="p", region="cn-north-1",
                service_start=t("2026-01-01T10:00:00+08:00"), expires_at=t("2026-03-10T10:00:00+08:00"))
    base.update(fields)
    return Server(**base)


@pytest.mark.parametrize("ended", ["2026-03-10T00:00:00+08:00", "2026-03-10T10:00:00+08:00", "2026-03-10T23:59:59+08:00"])
def test_R_LIFE_3_spec_example(ended):
    assert rules.retain_until(t(ended)) == t("2026-03-18T00:00:00+08:00")


def test_R_LIFE_3_day_is_the_shanghai_day():
    assert rules.retain_until(t("2026-03-09T16:30:00Z")) == t("2026-03-18T00:00:00+08:00")  # 03-10 00:30 local


@pytest.mark.parametrize("reasons, strongest", [
    ({"expired", "violation"}, "violation"), ({"arrears", "expired"}, "arrears"),
    ({"security_incident", "violation", "terminated"}, "terminated"), (set(), None)])
def test_R_LIFE_2b_strongest_reason(reasons, strongest):
    assert rules.strongest_reason(reasons) == strongest


def test_R_LIFE_2b_lifting_one_reason_leaves_the_others():
    s = server()
    assert rules.add_reason(s, "expired", t("2026-03-10T10:00:00+08:00")) is True
    assert rules.add_reason(s, "violation", t("2026-03-11T00:00:00+08:00")) is False
    assert s.retain_until is None  # an operator hold keeps the data
    assert rules.lift_reason(s, "violation", t("2026-03-12T09:00:00+08:00")) is False
    assert (s.state, rules.strongest_reason(s.stop_reasons)) == ("stopped", "expired")
    assert s.retain_until == t("2026-03-20T00:00:00+08:00")  # (reading) counted from the lift


def test_R_LIFE_2_terminated_is_final_and_first_time_is_kept():
    s = server()
    rules.add_reason(s, "terminated", t("2026-03-01T00:00:00+08:00"))
    rules.add_reason(s, "terminated", t("2026-03-05T00:00:00+08:00"))
    assert s.stop_reasons["terminated"] == t("2026-03-01T00:00:00+08:00")
    assert s.retain_until == t("2026-03-09T00:00:00+08:00")


@pytest.mark.parametrize("now, steps", [
    # E-9: within the next 8 days of 03-10T10:00, so from 03-02T10:00
    ("2026-03-02T10:00:00+08:00", [("remind", "2026-03-02T10:00:00+08:00")]), ("2026-03-02T09:59:59+08:00", []),
    ("2026-03-05T00:10:00+08:00", [("remind", "2026-03-05T00:10:00+08:00")]),  # sent by this sweep, now
    ("2026-03-10T10:00:00+08:00", [("expire", "2026-03-10T10:00:00+08:00")]),
    ("2026-04-01T00:00:00+08:00", [("expire", "2026-03-10T10:00:00+08:00")])])  # R-LIFE-3: ends at expires_at
def test_R_PAY_8_E_9_R_LIFE_1_sweep_steps(now, steps):
    assert [(s.kind, s.at) for s in rules.sweep_steps(server(), t(now))] == [(k, t(at)) for k, at in steps]


def test_R_PAY_8_one_reminder_per_expiry_date():
    s = server(reminded_for=t("2026-03-10T10:00:00+08:00"))
    assert rules.sweep_steps(s, t("2026-03-05T00:10:00+08:00")) == []
    assert rules.next_due(s) == t("2026-03-10T10:00:00+08:00")
    s.expires_at = t("2026-04-10T10:00:00+08:00")
    assert rules.next_due(s) == t("2026-04-02T10:00:00+08:00")  # E-9: 8 days ahead


def test_trials_get_no_renewal_reminder_but_expire():
    s = server(billing_mode="trial")
    assert rules.next_due(s) == t("2026-03-10T10:00:00+08:00")
    assert rules.sweep_steps(s, t("2026-03-05T00:10:00+08:00")) == []


def test_R_LIFE_3_R_LIFE_4_warning_a_day_before_then_destruction():
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    assert rules.next_due(s) == t("2026-03-17T00:00:00+08:00")
    assert [x.kind for x in rules.retention_steps(s, t("2026-03-17T00:10:00+08:00"))] == ["warn"]
    s.warned_for = s.retain_until
    assert rules.next_due(s) == t("2026-03-18T00:00:00+08:00")
    assert rules.retention_steps(s, t("2026-03-17T23:59:59+08:00")) == []
    assert [x.kind for x in rules.retention_steps(s, t("2026-03-18T00:00:00+08:00"))] == ["destroy"]


@pytest.mark.parametrize("now, steps", [
    ("2026-03-16T23:59:59+08:00", []),
    ("2026-03-17T00:00:00+08:00", [("warn", "2026-03-17T00:00:00+08:00")]),  # exactly one day before
    ("2026-03-17T08:30:00+08:00", [("warn", "2026-03-17T08:30:00+08:00")]),
    ("2026-03-18T00:00:00+08:00", [("destroy", "2026-03-18T00:00:00+08:00")]),
    ("2026-03-20T07:00:00+08:00", [("destroy", "2026-03-20T07:00:00+08:00")])])  # the first sweep at or after
def test_R_LIFE_3_R_LIFE_4_retention_steps_are_taken_at_the_sweep_time(now, steps):
    s = server()
    rules.add_reason(s, "expired", s.expires_at)  # retain_until 2026-03-18T00:00:00+08:00
    assert [(x.kind, x.at) for x in rules.retention_steps(s, t(now))] == [(k, t(at)) for k, at in steps]


@pytest.mark.parametrize("hold", ["violation", "security_incident"])
def test_R_LIFE_2_R_LIFE_3_an_operator_hold_is_never_warned_nor_destroyed(hold):
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    rules.add_reason(s, hold, t("2026-03-11T00:00:00+08:00"))
    assert (s.state, s.retain_until) == ("stopped", None)
    assert rules.retention_steps(s, t("2026-03-17T12:00:00+08:00")) == []
    assert rules.retention_steps(s, t("2027-01-01T00:00:00+08:00")) == []


def test_payg_and_destroyed_servers_are_never_due():
    assert rules.next_due(server(billing_mode="payg", expires_at=None)) is None
    s = server(destroyed_at=t("2026-04-01T00:00:00+08:00"))
    rules.refresh(s)
    assert (s.state, rules.next_due(s)) == ("destroyed", None)


def test_R_FREE_4_free_days_are_whole_24_hour_days():
    assert rules.add_free_days(t("2026-03-10T10:00:00+08:00"), 10) == t("2026-03-20T10:00:00+08:00")


# ---- rules §6 edges ------------------------------------------------------------------------------
def test_E_1_termination_under_an_operator_hold_starts_the_retention_clock():
    s = server()
    rules.add_reason(s, "security_incident", t("2026-02-01T09:00:00+08:00"))
    assert s.retain_until is None
    rules.add_reason(s, "terminated", t("2026-02-05T15:00:00+08:00"))
    assert s.retain_until == t("2026-02-13T00:00:00+08:00")  # ended 02-05 → kept through 02-12
    assert rules.next_due(s) == t("2026-02-12T00:00:00+08:00")  # the warning, a day before
    # lifting the hold afterwards does not move a termination's clock
    rules.lift_reason(s, "security_incident", t("2026-02-10T00:00:00+08:00"))
    assert s.retain_until == t("2026-02-13T00:00:00+08:00")


def test_E_2_the_calendar_runs_during_a_hold():
    s = server()
    rules.add_reason(s, "violation", t("2026-03-01T00:00:00+08:00"))
    assert rules.next_due(s) == t("2026-03-02T10:00:00+08:00")  # the reminder is still owed (E-9: 8 days)
    assert [x.kind for x in rules.sweep_steps(s, t("2026-03-04T00:10:00+08:00"))] == ["remind"]
    s.reminded_for = s.expires_at
    assert rules.next_due(s) == t("2026-03-10T10:00:00+08:00")
    assert [(x.kind, x.at) for x in rules.sweep_steps(s, t("2026-03-11T00:10:00+08:00"))] == [
        ("expire", t("2026-03-10T10:00:00+08:00"))]
    rules.add_reason(s, "expired", s.expires_at)
    assert (rules.strongest_reason(s.stop_reasons), s.retain_until, rules.next_due(s)) == ("violation", None, None)
    # lifting the hold leaves it stopped as expired, retained from the lift (reading for holds)
    assert rules.lift_reason(s, "violation", t("2026-03-15T12:00:00+08:00")) is False
    assert (s.state, rules.strongest_reason(s.stop_reasons)) == ("stopped", "expired")
    assert s.retain_until == t("2026-03-23T00:00:00+08:00")


def test_E_2_terminated_and_destroyed_servers_have_no_calendar():
    s = server()
    rules.add_reason(s, "terminated", t("2026-03-01T00:00:00+08:00"))
    assert rules.sweep_steps(s, t("2026-03-11T00:10:00+08:00")) == []
    assert rules.next_due(s) == t("2026-03-08T00:00:00+08:00")  # only its retention


def test_E_5_moving_the_end_of_an_expired_server():
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    assert s.retain_until == t("2026-03-18T00:00:00+08:00")
    # 3 free days, still past at 2026-03-16: stays stopped, retention from 03-13
    assert rules.move_expiry(s, t("2026-03-13T10:00:00+08:00"), t("2026-03-16T09:00:00+08:00")) is False
    assert (s.state, s.expires_at, s.retain_until) == ("stopped", t("2026-03-13T10:00:00+08:00"),
                                                       t("2026-03-21T00:00:00+08:00"))
    # an end after `at`: the caller lifts `expired`
    assert rules.move_expiry(s, t("2026-03-20T10:00:00+08:00"), t("2026-03-16T09:00:00+08:00")) is True


def test_E_5_R_LIFE_1_an_end_moved_to_exactly_now_is_still_expired():
    """R-LIFE-1 expires at `expires_at <= now`: a new end equal to `at` leaves the server stopped."""
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    assert rules.move_expiry(s, t("2026-03-16T09:00:00+08:00"), t("2026-03-16T09:00:00+08:00")) is False
    assert (s.state, s.stop_reasons, s.retain_until) == (
        "stopped", {"expired": t("2026-03-16T09:00:00+08:00")}, t("2026-03-24T00:00:00+08:00"))


@pytest.mark.parametrize("reasons, state", [({}, "active"), ({"violation": "2026-03-01T00:00:00+08:00"}, "stopped")])
def test_E_5_R_FREE_4_a_server_not_stopped_as_expired_only_gets_the_new_end(reasons, state):
    """Nothing to lift: move_expiry says False and touches no reason (the caller lifts `expired` on True)."""
    s = server()
    for r, at in reasons.items():
        rules.add_reason(s, r, t(at))
    assert rules.move_expiry(s, t("2026-03-20T10:00:00+08:00"), t("2026-03-05T09:00:00+08:00")) is False
    assert (s.state, s.expires_at, s.stop_reasons, s.retain_until) == (
        state, t("2026-03-20T10:00:00+08:00"), {r: t(at) for r, at in reasons.items()}, None)


@pytest.mark.parametrize("at, over", [
    ("2026-03-17T23:59:59+08:00", False), ("2026-03-18T00:00:00+08:00", True), ("2026-03-19T00:00:00+08:00", True)])
def test_E_6_retention_ends_at_retain_until_by_business_time(at, over):
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    assert rules.retention_over(s, t(at)) is over
    # E-6 without a sweep: an active server past its expiry (03-10T10:00) ends the same way
    assert rules.retention_end(server(), t(at)) == t("2026-03-18T00:00:00+08:00")
    assert rules.retention_over(server(), t(at)) is over


def test_E_6_an_unseen_expiry_counts_only_once_it_is_past_and_not_under_a_hold():
    s = server()
    assert rules.retention_end(s, t("2026-03-10T09:59:59+08:00")) is None  # not expired yet: no end
    assert rules.retention_over(s, t("2026-03-10T09:59:59+08:00")) is False
    assert s.stop_reasons == {} and s.retain_until is None  # computed on a copy, the server is untouched
    rules.add_reason(s, "violation", t("2026-03-01T00:00:00+08:00"))
    assert rules.retention_end(s, t("2026-04-01T00:00:00+08:00")) is None  # E-2: a hold keeps the data
    assert rules.retention_over(s, t("2026-04-01T00:00:00+08:00")) is False
    payg = server(billing_mode="payg", expires_at=None)
    assert rules.retention_over(payg, t("2026-04-01T00:00:00+08:00")) is False


@pytest.mark.parametrize("before, reasons, destroyed, notice", [
    # E-1 under a hold: the date appears
    (None, {"violation": "2026-03-01T00:00:00+08:00", "terminated": "2026-03-05T15:00:00+08:00"}, False,
     "terminated#2026-03-12T16:00:00.000000Z"),
    ("2026-03-18T00:00:00+08:00", {"expired": "2026-03-12T10:00:00+08:00"}, False,
     "expired#2026-03-19T16:00:00.000000Z"),                                               # E-5 moved it
    ("2026-03-18T00:00:00+08:00", {"expired": "2026-03-10T10:00:00+08:00"}, False, None),  # unchanged
    (None, {"violation": "2026-03-01T00:00:00+08:00", "expired": "2026-03-10T10:00:00+08:00"}, False, None),
    (None, {}, False, None),                                                               # active
    ("2026-03-18T00:00:00+08:00", {"expired": "2026-03-12T10:00:00+08:00"}, True, None),  # destroyed
])
def test_E_11_a_stopped_servers_destruction_date_appearing_or_changing_is_owed_a_notice(
        before, reasons, destroyed, notice):
    s = server(stop_reasons={r: t(at) for r, at in reasons.items()},
               destroyed_at=t("2026-03-18T00:10:00+08:00") if destroyed else None)
    rules.refresh(s)
    assert rules.destruction_date_notice(s, t(before) if before else None) == notice


def test_E_11_at_most_one_notice_per_reason_and_date():
    """A hold put on and lifted the same day brings back the date the account was told at the stop."""
    s = server()
    rules.add_reason(s, "expired", s.expires_at)
    s.stop_noted_for = rules.stop_notice(s)
    assert s.stop_noted_for == "expired#2026-03-17T16:00:00.000000Z"  # 2026-03-18T00:00+08:00
    rules.add_reason(s, "violation", t("2026-03-10T12:00:00+08:00"))
    rules.lift_reason(s, "violation", t("2026-03-10T13:00:00+08:00"))
    assert s.retain_until == t("2026-03-18T00:00:00+08:00")
    assert rules.destruction_date_notice(s, None) is None


def test_R_LIFE_2b_the_last_reason_lifted_makes_the_server_active_and_a_reason_not_held_changes_nothing():
    s = server()
    rules.add_reason(s, "arrears", t("2026-03-01T10:00:00+08:00"))
    assert rules.lift_reason(s, "violation", t("2026-03-02T10:00:00+08:00")) is False  # never held
    assert (s.state, sorted(s.stop_reasons)) == ("stopped", ["arrears"])
    assert rules.lift_reason(s, "arrears", t("2026-03-02T10:00:00+08:00")) is True
    assert (s.state, s.stop_reasons, s.retain_until) == ("active", {}, None)


def test_R_LIFE_4_a_destroyed_server_never_comes_back_and_leaves_the_calendar():
    s = server()
    rules.add_reason(s, "expired", t("2026-03-10T10:00:00+08:00"))
    s.destroyed_at = t("2026-03-18T00:10:00+08:00")
    rules.refresh(s)
    assert rules.lift_reason(s, "expired", t("2026-03-19T10:00:00+08:00")) is False
    assert (s.state, list(s.stop_reasons), s.retain_until) == ("destroyed", ["expired"], None)
    assert rules.calendar_applies(s) is False
    assert rules.next_due(s) is None
    # E-6: its data is gone, even though retain_until is no longer set
    assert rules.retention_over(s, t("2026-03-18T00:10:00+08:00")) is True
    assert rules.retention_over(s, t("2026-04-10T10:00:00+08:00")) is True


@pytest.mark.parametrize("reasons", [{}, {"violation": "2026-03-01T00:00:00+08:00"}])
def test_E_2_R_LIFE_4_a_destroyed_package_server_has_no_calendar_whatever_its_reasons(reasons):
    """E-2 names `destroyed` on its own: the calendar stops at destruction, not only through `expired`
    or `terminated` among the reasons."""
    s = server(stop_reasons={r: t(at) for r, at in reasons.items()}, destroyed_at=t("2026-03-05T00:00:00+08:00"))
    rules.refresh(s)
    assert (s.state, s.retain_until) == ("destroyed", None)
    assert rules.calendar_applies(s) is False
    assert rules.sweep_steps(s, t("2026-03-05T00:10:00+08:00")) == []  # no reminder
    assert rules.sweep_steps(s, t("2026-03-11T00:10:00+08:00")) == []  # no expiry
    assert rules.next_due(s) is None
    assert rules.retention_over(s, t("2026-03-05T00:10:00+08:00")) is True


# ---- integration §6: the stored range 2000-01-01 .. 2199-12-31 (UTC), consequences included ----------------
@pytest.mark.parametrize("billing_mode, expires_at, retain_until, beyond", [
    ("payg", None, None, None),
    ("monthly", "2199-12-20T10:00:00+08:00", None, None),  # retention through 12-27 → 2199-12-28: inside
    ("monthly", "2199-12-28T10:00:00+08:00", None, "retention after expires_at"),  # retention → 2200-01-05
    ("monthly", "2199-12-31T23:59:59Z", None, "retention after expires_at"),  # the last storable instant
    ("monthly", "2200-01-01T00:00:00Z", None, "expires_at"),  # the first instant outside, named first
    ("monthly", "2200-01-20T10:00:00+08:00", "2200-01-29T00:00:00+08:00", "expires_at"),
    ("monthly", "2000-01-01T00:00:00Z", None, None),  # the first storable instant
    ("monthly", "1999-12-31T23:59:59Z", None, "expires_at"),
    ("payg", None, "2199-12-31T23:59:59Z", None),
    ("payg", None, "2200-01-01T00:00:00Z", "retain_until"),
    ("payg", None, "1999-12-31T23:59:59Z", "retain_until"),
    ("monthly", "2026-03-10T10:00:00+08:00", "2200-01-01T00:00:00Z", "retain_until"),
])
def test_integration_6_unstorable_names_the_first_date_outside_the_range(billing_mode, expires_at, retain_until, beyond):
    s = server(billing_mode=billing_mode, expires_at=expires_at and parse_stored(expires_at),
               retain_until=retain_until and parse_stored(retain_until))
    assert rules.unstorable(s) == beyond

