"""Pure rules of buying, renewing, metering and refunding (rules §1, R-LIFE-5, R-LIFE-6). No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Optional

from ..domain.records import PaygSegment, Period, Plan, PlanUse, PriceVersion
from ..timeutil import add_months

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


def price_in_force(plan: Plan, at: datetime) -> Optional[PriceVersion]:
    """T2.5 / R-PAY-2: the latest version whose effective_from is at or before `at`."""
    best = None
    for version in plan.versions:
        if version.effective_from <= at and (best is None or version.effective_from >= best.effective_from):
            best = version
    return best


def order_amount_problem(billing_mode: str, amount: int, months: Optional[int],
                         price: Optional[PriceVersion]) -> Optional[str]:
    """R-PAY-2: why an order's amount cannot be applied (None when it can). E-14: a pay-as-you-go
    order on a plan with no price in force is held too (it would otherwise run at 0 an hour)."""
    if billing_mode == "trial":
        return None if amount == 0 else "amount_mismatch"
    if price is None:
        return "no_price_in_force"
    if billing_mode == "payg":
        return None
    if amount != price.monthly_price * months:
        return "amount_mismatch"
    return None


def renewal_period(expires_at: datetime, paid_at: datetime, months: int) -> tuple[datetime, datetime]:
    """R-PAY-3 (reading): a renewal counts from max(expires_at, paid_at), so nobody pays for stopped days."""
    start = max(expires_at, paid_at)
    return start, add_months(start, months)


# ---- pay-as-you-go (R-PAY-6) ----------------------------------------------------------------
def plan_at(history: Iterable[PlanUse], at: datetime, default: str) -> str:
    """The plan in use at `at` (R-PAY-5: an upgrade applies from its paid_at)."""
    current = default
    for use in sorted(history, key=lambda u: u.since):
        if use.since <= at:
            current = use.plan_id
    return current


def _hour_is_billable(segment: PaygSegment, k: int, now: datetime) -> bool:
    start = segment.anchor + k * HOUR
    return start <= now and (segment.end is None or start < segment.end)


def next_unbilled_hour(segments: Iterable[PaygSegment]) -> Optional[datetime]:
    """Start of the earliest hour still to charge (the metering index key), or None."""
    starts = []
    for seg in segments:
        start = seg.anchor + seg.charged * HOUR
        if seg.end is None or start < seg.end:
            starts.append(start)
    return min(starts) if starts else None


@dataclass(frozen=True)
class HourCharge:
    hour_start: datetime
    plan_id: str
    price: int


def hours_to_charge(segments: list[PaygSegment], now: datetime, plan_history: list[PlanUse],
                    default_plan: str, plans: dict[str, Plan]) -> list[HourCharge]:
    """R-PAY-6: every hour that has started (start + k h <= now), was not charged yet and did not start
    while stopped, each at the hourly price in force when it started. Marks them charged on `segments`."""
    charges = []
    for seg in segments:
        k = seg.charged
        while _hour_is_billable(seg, k, now):
            start = seg.anchor + k * HOUR
            plan_id = plan_at(plan_history, start, default_plan)
            version = price_in_force(plans[plan_id], start) if plan_id in plans else None
            charges.append(HourCharge(start, plan_id, version.hourly_price if version else 0))
            k += 1
        seg.charged = k
    return sorted(charges, key=lambda c: c.hour_start)


def close_segment(segments: list[PaygSegment], at: datetime) -> None:
    """A stop ends the open hour grid; hours that started before it are still charged."""
    for seg in segments:
        if seg.end is None:
            seg.end = at


def open_segment(segments: list[PaygSegment], at: datetime) -> None:
    """After a resume the hour grid restarts at the resume time; fully billed segments are dropped."""
    segments[:] = [s for s in segments if next_unbilled_hour([s]) is not None]
    segments.append(PaygSegment(anchor=at))


# ---- refunds (R-LIFE-5, R-LIFE-6) -------------------------------------------------------------
def months_used(start: datetime, at: datetime) -> int:
    """Months counted from the period's start, a started month counting as whole (T7.3.4). E-3: the
    months started at `at`: at the start instant the first month has started (1), exactly one
    month later the second (2)."""
    if at < start:
        return 0
    used = 1
    while add_months(start, used) <= at:
        used += 1
    return used


def security_incident_refund(periods: Iterable[Period], at: datetime) -> int:
    """R-LIFE-5 (T7.3.4): unstarted periods refund in whole; the current one refunds
    amount − monthly price × months used (never below 0); finished ones nothing. Free days are in no period (R-LIFE-6)."""
    total = 0
    for p in periods:
        if p.refunded:
            continue
        if at < p.start:
            total += p.amount
        elif at < p.end:
            total += max(0, p.amount - p.monthly_price * months_used(p.start, at))
    return total


def announcement_refund(periods: Iterable[Period], at: datetime) -> int:
    """R-LIFE-5 (T7.3.5): paid-but-unspent, amount × remaining / length per period, rounded half-up to the fen."""
    total = 0
    for p in periods:
        if p.refunded:
            continue
        # whole microseconds as exact integers (total_seconds() is a float and could lose the last one)
        length = (p.end - p.start) // MICROSECOND
        remaining = max(0, (p.end - max(at, p.start)) // MICROSECOND)
        if remaining <= 0:  # at or after the end; also every empty period, as remaining <= length
            continue
        total += (2 * p.amount * remaining + length) // (2 * length)
    return total


REFUND_RULES = {
    # terminate reason -> how the refund is computed (R-LIFE-5); None = no computed refund.
    "user_closed": None,
    "replaced": None,
    "breach": None,
    "consensus": None,
    "security_incident": security_incident_refund,
    "provider_announcement": announcement_refund,
}


def termination_refund(reason: str, periods: Iterable[Period], at: datetime) -> int:
    rule = REFUND_RULES[reason]
    return rule(list(periods), at) if rule else 0


# ---- price-change announcements (R-NOTE-2) -----------------------------------------------------
def accounts_to_announce(servers: Iterable[tuple[str, str, bool]]) -> list[str]:
    """E-7 (R-NOTE-2): "the accounts they affect" are those with at least one server on the plan
    that is neither terminated nor destroyed. `servers` are (account_id, state, terminated)."""
    return sorted({account_id for account_id, state, terminated in servers
                   if state != "destroyed" and not terminated})
