"""Pure lifecycle rules: stop reasons and their strength, retention, what the daily sweep owes a server (rules §2)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from ..domain.records import Server
from ..errors import InvalidPayload
from ..timeutil import EARLIEST, LATEST, add_days, local_date, local_midnight, store_key

# R-LIFE-2 / R-LIFE-2b: strongest first; who may lift it; whether it starts the retention clock (R-LIFE-3).
STOP_REASONS = {
    #  reason               strength  lifted_by   starts_retention
    "terminated":          (5,        None,       True),
    "security_incident":   (4,        "operator", False),
    "violation":           (3,        "operator", False),
    "arrears":             (2,        "payment",  True),
    "expired":             (1,        "payment",  True),
}
OPERATOR_REASONS = frozenset(r for r, (_, who, _) in STOP_REASONS.items() if who == "operator")
RETENTION_DAYS = 7
# E-9 (R-PAY-8, T2.2.1.2): 8 days, so a daily sweep reminds 7–8 days ahead, before the customer's own
# deadline to pay (at least 7 days before expiry)
REMINDER_LEAD = timedelta(days=8)
WARNING_LEAD = timedelta(days=1)


def strongest_reason(reasons) -> Optional[str]:
    """R-LIFE-2b: the reason shown as `stop_reason`."""
    return max(reasons, key=lambda r: STOP_REASONS[r][0]) if reasons else None


def state_of(server: Server) -> str:
    if server.destroyed_at is not None:
        return "destroyed"
    return "stopped" if server.stop_reasons else "active"


def retention_start(server: Server) -> Optional[datetime]:
    """R-LIFE-3: when the service ended, for the retention clock. None while an operator holds the
    server (data is kept) or while nothing that starts retention holds; E-1: a termination under a
    hold starts the clock at the termination. (reading) After an operator
    hold is lifted, the clock counts from the later of the end and the lift, so the hold never eats
    into the customer's seven days."""
    reasons = server.stop_reasons
    held = any(r in OPERATOR_REASONS for r in reasons)
    if "terminated" in reasons and (held or (server.hold_lifted_at and server.hold_lifted_at > reasons["terminated"])):
        return reasons["terminated"]  # E-1: terminated under a hold: the clock starts at the termination
    if not reasons or held:
        return None
    starts = [since for r, since in reasons.items() if STOP_REASONS[r][2]]
    if not starts:
        return None
    start = min(starts)
    if server.hold_lifted_at and server.hold_lifted_at > start:
        start = server.hold_lifted_at
    return start


def retain_until(ended_at: datetime) -> datetime:
    """R-LIFE-3 (reading): kept 7 natural days after the local day the service ended, until 00:00
    Asia/Shanghai at the start of the 8th day. Ended 2026-03-10 → 2026-03-18T00:00:00+08:00."""
    return local_midnight(local_date(ended_at) + timedelta(days=RETENTION_DAYS + 1))


def refresh(server: Server) -> Server:
    """Derived fields: state and retain_until follow the stop reasons."""
    server.state = state_of(server)
    if server.state == "destroyed":
        server.retain_until = None
    else:
        start = retention_start(server)
        server.retain_until = retain_until(start) if start else None
    return server


def add_reason(server: Server, reason: str, at: datetime) -> bool:
    """R-LIFE-2b: several reasons may hold; the first time a reason is given is kept. True if the
    server went from active to stopped."""
    was_active = state_of(server) == "active"
    server.stop_reasons.setdefault(reason, at)
    refresh(server)
    return was_active and server.state == "stopped"


def lift_reason(server: Server, reason: str, at: datetime) -> bool:
    """R-LIFE-2b: lifting one reason leaves the others. True if the server became active again."""
    if reason not in server.stop_reasons or server.state == "destroyed":
        return False
    del server.stop_reasons[reason]
    if reason in OPERATOR_REASONS:
        server.hold_lifted_at = at
    refresh(server)
    return server.state == "active"


@dataclass(frozen=True)
class SweepStep:
    kind: str  # "remind" | "expire" | "warn" | "destroy"
    at: datetime


def is_package(server: Server) -> bool:
    return server.billing_mode in ("monthly", "trial")


def calendar_applies(server: Server) -> bool:
    """E-2 (R-PAY-8, R-LIFE-1): the package calendar (reminder, expiry) runs for every package server
    that is neither destroyed nor terminated, whatever else holds it, until it has expired."""
    return (is_package(server) and server.expires_at is not None and server.state != "destroyed"
            and "terminated" not in server.stop_reasons and "expired" not in server.stop_reasons)


def _reminder_owed(server: Server) -> bool:
    """R-PAY-8: one reminder per expiry date, for monthly packages."""
    return server.billing_mode == "monthly" and server.reminded_for != server.expires_at


def next_due(server: Server) -> Optional[datetime]:
    """When the daily sweep must next look at this server (the sparse due-date index), or None:
    the earlier of its calendar (E-2: held servers too) and its retention; a destroyed server has
    neither (calendar_applies and the retention both exclude it), so it is never due."""
    due = []
    if calendar_applies(server):
        due.append(server.expires_at - REMINDER_LEAD if _reminder_owed(server) else server.expires_at)
    if server.state == "stopped" and server.retain_until is not None:
        due.append(server.retain_until - WARNING_LEAD if server.warned_for != server.retain_until
                   else server.retain_until)
    return min(due) if due else None


def sweep_steps(server: Server, now: datetime) -> list[SweepStep]:
    """R-PAY-8, R-LIFE-1, E-2: what the calendar owes this server at `now`: a reminder, or the expiry
    (which adds `expired` beside any hold, R-LIFE-2b). Retention follows in `retention_steps`."""
    steps: list[SweepStep] = []
    if calendar_applies(server):
        if server.expires_at <= now:
            steps.append(SweepStep("expire", server.expires_at))
        elif server.expires_at - REMINDER_LEAD <= now and _reminder_owed(server):
            steps.append(SweepStep("remind", now))
    return steps


def retention_steps(server: Server, now: datetime) -> list[SweepStep]:
    """After stopping: warn one day before destruction, destroy at or after retain_until."""
    if server.state != "stopped" or server.retain_until is None:
        return []
    if server.retain_until <= now:
        return [SweepStep("destroy", now)]
    if server.retain_until - WARNING_LEAD <= now and server.warned_for != server.retain_until:
        return [SweepStep("warn", now)]
    return []


def unstorable(server: Server) -> Optional[str]:
    """integration §6: the first of the server's dates, or the retention its expiry would bring, that falls
    outside the range the system stores and shows (2000–2199), or None. Checked before every save, so a
    time whose consequences fall outside is refused when it arrives instead of breaking the views."""
    dates = {"expires_at": server.expires_at, "retain_until": server.retain_until,
             "retention after expires_at": retain_until(server.expires_at) if server.expires_at else None}
    for name, value in dates.items():
        if value is not None and not EARLIEST <= value < LATEST:
            return name
    return None


def service_may_end_at(value: datetime, field: str) -> datetime:
    """integration §6: `value` is a time from which a server's service may end later without another time
    arriving: a pay-as-you-go order's start or a balance change (its hours run on, and an arrears crossing
    at that time or at a metering run from it stops the server, R-PAY-7), a metering run. The 7-day
    retention that would follow (R-LIFE-3) must be storable, so such a time is refused (400 naming
    `field`) when it arrives, not accepted and then failing every later run: the last one taken is on
    2199-12-24 (Asia/Shanghai), whose retention ends 2200-01-01T00:00+08:00. A consequence saved in the
    same call (an expiry, a termination) is checked on save instead (`unstorable` above)."""
    if not EARLIEST <= retain_until(value) < LATEST:
        raise InvalidPayload(f"{field} is too late: the 7-day retention after it (R-LIFE-3) would end in 2200, "
                             "outside the range the system stores (2000-01-01 .. 2199-12-31)", [field])
    return value


def retention_end(server: Server, at: datetime) -> Optional[datetime]:
    """E-6 (R-LIFE-3): the `retain_until` in force at business time `at`, whether or not a sweep has
    stopped the server: an expiry the sweep has not seen yet counts from `expires_at`'s local date, as
    the sweep would have counted it (beside any hold, E-2)."""
    if calendar_applies(server) and server.expires_at <= at:
        lapsed = server.model_copy(deep=True)
        add_reason(lapsed, "expired", server.expires_at)
        return lapsed.retain_until
    return server.retain_until


def retention_over(server: Server, at: datetime) -> bool:
    """E-6 (R-PAY-3, R-LIFE-3, R-PAY-4): the data is gone at `retain_until` by business time, whether
    or not the destroying sweep, or the sweep that stops it, has run yet."""
    if server.state == "destroyed":
        return True
    end = retention_end(server, at)
    return end is not None and at >= end


def stop_notice(server: Server) -> str:
    """R-NOTE-1, E-11: what a `stopped` notification tells: the strongest reason and the destruction date."""
    until = store_key(server.retain_until) if server.retain_until else "none"
    return f"{strongest_reason(server.stop_reasons)}#{until}"


def destruction_date_notice(server: Server, retain_until_before: Optional[datetime]) -> Optional[str]:
    """E-11 (R-NOTE-1): when a stopped server's destruction date appeared or changed (a stop itself
    notifies where it happens, R-LIFE-1), the `stop_notice` the account is owed; None when nothing is
    owed, or when the account was last told exactly this (at most one per reason and date: a hold put
    on and lifted the same day brings the date back unchanged)."""
    if server.state != "stopped" or server.retain_until is None or server.retain_until == retain_until_before:
        return None
    notice = stop_notice(server)
    return None if notice == server.stop_noted_for else notice


def move_expiry(server: Server, expires_at: datetime, at: datetime) -> bool:
    """E-5 (R-FREE-4, R-LIFE-3): a new `expires_at` for a server stopped as `expired` moves its end.
    True when the new end is after `at` (the caller lifts `expired`); otherwise it stays stopped and
    the retention counts from the new end's local date."""
    server.expires_at = expires_at
    if "expired" not in server.stop_reasons:
        return False
    if expires_at > at:
        return True
    server.stop_reasons["expired"] = expires_at
    refresh(server)
    return False


def add_free_days(expires_at: datetime, days: int) -> datetime:
    """R-FREE-4: whole days of 24 h appended at the end."""
    return add_days(expires_at, days)
