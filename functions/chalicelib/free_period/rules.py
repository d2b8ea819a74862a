"""The filing free period's rules (rules §3, R-FREE-1 … R-FREE-5): pure functions, no I/O.

Only the standard library, python-holidays and ``chalicelib.timeutil`` are used here, so the
rules can be tested without any AWS fake. R-FREE-4 (applying the days) and R-FREE-6 (grant at
most once) are enforced where the grant is stored; this module supplies ``already_granted`` as
an eligibility check (R-FREE-2 (7)).

Reading choices, kept in one place each:

* **Rejection keeps the clock (R-FREE-1, reading).** Only a withdrawal ("given up halfway",
  P-II(1)) ends an attempt; a rejection followed by a resubmission stays in the same attempt.
  The set of event kinds that end an attempt is ``ATTEMPT_ENDING_KINDS``: adding
  ``"rejected"`` there would make a rejection restart the clock too.
* **A started day counts whole (R-FREE-1, P-FAQ(5)).** Free days are the elapsed duration
  rounded up to whole 24-hour days (integer ``timedelta`` arithmetic), capped at 45.
* **Eligibility order (R-FREE-2).** ``ELIGIBILITY_TABLE`` is checked top to bottom; the first
  failing row's code is the denial reason.
* **Working days (R-FREE-3).** ``holidays.China().is_working_day`` (python-holidays 0.109):
  Monday–Friday, minus public holidays, plus the weekend days officially swapped into working
  days. For years the State Council has announced (0.109 carries notices up to 2026) this is
  the official calendar, e.g. 2025-10-01…08 are days off and Sunday 2025-09-28 and Saturday
  2025-10-11 are working days.

  For a year not announced yet (2027, 2028 … checked with 0.109) the library still answers,
  without raising and without marking anything as estimated: it has NO swapped weekend
  workdays at all (every Saturday/Sunday is off) and no "golden week" bridging days; it knows
  the statutory holidays themselves — fixed-date ones (New Year's Day; Labour Day May 1–2;
  National Day Oct 1–3) and the lunar ones computed from the Chinese calendar (Spring
  Festival eve + 3 days, Tomb-Sweeping, Dragon Boat, Mid-Autumn) — and moves a statutory
  holiday that falls on a weekend to the next working day ("observed"). Checked values:
  2027-10-01 (Fri) is a holiday, 10-02/10-03 are the weekend, 10-04 and 10-05 are "National
  Day (observed)", 2027-10-06 is a working day; Spring Festival 2027 is 02-05 (eve, Fri) …
  02-08 plus observed 02-09 and 02-10, 2027-02-11 is a working day. 2028: 01-25 (eve) … 01-28
  are holidays, 2028-01-31 (Mon) works; 2028-10-01 … 10-03 (10-03 is also Mid-Autumn) plus
  observed 10-04, 2028-10-05 works. So for unannounced years ``due_by`` can come a few days
  earlier or later than the official notice will eventually make it; upgrading the
  ``holidays`` package once the notice is published fixes it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Iterable


from chalicelib.timeutil import SHANGHAI, to_local

MAX_FREE_DAYS = 45

_ONE_DAY = timedelta(days=1)

FILING_EVENT_KINDS = frozenset({"submitted", "withdrawn", "rejected", "approved"})

# R-FREE-1 (reading): the only event kind that ends an attempt and so restarts the clock.
ATTEMPT_ENDING_KINDS = frozenset({"withdrawn"})


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be time-zone aware")


@dataclass(frozen=True)
class FilingEvent:
    """One event of a filing from the ticketing system (R-FREE-1)."""

    kind: str  # "submitted" | "withdrawn" | "rejected" | "approved"
    at: datetime  # aware

    def __post_init__(self) -> None:
        if self.kind not in FILING_EVENT_KINDS:
            raise ValueError(f"unknown filing event kind: {self.kind!r}")
        _require_aware(self.at, "at")


def _in_time_order(events: Iterable[FilingEvent]) -> list[FilingEvent]:
    # sorted() is stable: events at the same instant keep their input order.
    return sorted(events, key=lambda event: event.at)


def filing_clock_start(events: Iterable[FilingEvent]) -> datetime | None:
    """R-FREE-1: when the filing clock starts — the first submission of the final attempt.

    The first submission ever if the filing was never withdrawn, else the first submission
    after the last withdrawal. A rejection and resubmission stay in the same attempt
    (reading, see ``ATTEMPT_ENDING_KINDS``). Events are taken in time order (stable on input
    order for ties). E-4: when no submission follows the last withdrawal, the last submission
    before it. ``None`` only if there is no submission at all.
    """
    start: datetime | None = None
    last_submission: datetime | None = None
    for event in _in_time_order(events):
        if event.kind in ATTEMPT_ENDING_KINDS:
            start = None
        elif event.kind == "submitted":
            last_submission = event.at
            if start is None:
                start = event.at
    # E-4: withdrawn with no submission since: the time counts from the last submission (P-II(1))
    return start if start is not None else last_submission


def approved_at(events: Iterable[FilingEvent]) -> datetime | None:
    """R-FREE-1, E-13: the time of the filing's approval (the end of the filing time), ``None`` if none.
    A filing's approval is its first; another approval of an approved filing moves nothing (neither
    the filing's length nor which website was first), so the earliest one stands."""
    approvals = [event.at for event in _in_time_order(events) if event.kind == "approved"]
    return approvals[0] if approvals else None


def free_days(start: datetime, approved: datetime) -> int:
    """R-FREE-1: ``ceil((approved - start) / 1 day)``, a started day counting whole, capped at 45.

    0 if ``approved <= start``. Integer arithmetic on ``timedelta`` only (no floats).
    """
    _require_aware(start, "start")
    _require_aware(approved, "approved")
    elapsed = approved - start
    if elapsed <= timedelta(0):
        return 0
    days = -((-elapsed) // _ONE_DAY)  # integer ceiling
    return min(MAX_FREE_DAYS, days)


def _require_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")


def convert_days_for_upgrade(days: int, old_monthly_price: int, new_monthly_price: int) -> int:
    """R-FREE-5: convert free days to a new plan at the old plan's value.

    ``min(45, ceil(days * old / new))`` with an integer ceiling; equal prices leave ``days``
    unchanged. Prices are integer fen. Example: 20 days, 10000 -> 30000 fen => 7.
    """
    _require_int(days, "days")
    _require_int(old_monthly_price, "old_monthly_price")
    _require_int(new_monthly_price, "new_monthly_price")
    if days < 0:
        raise ValueError("days must not be negative")
    if old_monthly_price <= 0 or new_monthly_price <= 0:
        raise ValueError("monthly prices must be positive")
    if old_monthly_price == new_monthly_price:
        return days
    converted = -(-(days * old_monthly_price) // new_monthly_price)  # integer ceiling
    return min(MAX_FREE_DAYS, converted)


@functools.lru_cache(maxsize=None)
def _china_calendar(year: int):
    """R-FREE-3: the official China calendar for one year (built once, then cached). Imported here
    so only an acceptance pays for loading the holiday data, not every webhook's cold start."""
    import holidays

    return holidays.China(years=year)


def is_working_day(day: date) -> bool:
    """R-FREE-3 (rules §0): whether ``day`` is a working day on China's official calendar.

    Monday–Friday, minus public holidays, plus weekend days swapped into working days, as
    python-holidays knows them (see the module docstring for years not announced yet).
    ``day`` is a local (Asia/Shanghai) calendar date, not a datetime.
    """
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError("day must be a date (use timeutil.local_date for an instant)")
    return _china_calendar(day.year).is_working_day(day)


def due_by(accepted_at: datetime) -> datetime:
    """R-FREE-3: the deadline for giving the free period after the engineer's acceptance.

    The acceptance's Asia/Shanghai clock time on the first working day after the acceptance's
    local date (Friday 15:00 -> Monday 15:00; Saturday 10:00 -> Monday 10:00). Returns an aware
    datetime in Asia/Shanghai.
    """
    _require_aware(accepted_at, "accepted_at")
    local = to_local(accepted_at)
    day = local.date() + _ONE_DAY
    for _ in range(366):
        if is_working_day(day):
            return datetime.combine(day, local.time(), tzinfo=SHANGHAI)
        day += _ONE_DAY
    raise RuntimeError(f"no working day within a year after {local.date()}")  # pragma: no cover


# ---------------------------------------------------------------- eligibility (R-FREE-2)

MAINLAND_REGIONS = frozenset({"cn-north-1", "cn-east-1", "cn-east-2", "cn-south-1"})


@dataclass(frozen=True)
class EligibilityFacts:
    """R-FREE-2: everything the eligibility table looks at, gathered by the caller."""

    application_server_id: str
    filing_server_id: str
    filing_approved: bool
    filing_is_change: bool
    other_first_filing_approved_before: bool  # another non-change filing of this server approved before this one
    billing_mode: str  # "monthly" | "payg" | "trial"
    region: str
    already_granted: bool
    service_ended: bool  # during the filing, or early at any time before the decision (E-8)
    account_violation: bool
    server_violation: bool


# R-FREE-2: (reason code, predicate that must hold), checked in this order; the first row
# whose predicate is False gives the denial's reason code.
ELIGIBILITY_TABLE: tuple[tuple[str, Callable[[EligibilityFacts], bool]], ...] = (
    ("server_mismatch", lambda f: f.application_server_id == f.filing_server_id),
    ("filing_not_approved", lambda f: f.filing_approved),
    (
        "not_first_website",
        lambda f: not f.filing_is_change and not f.other_first_filing_approved_before,
    ),
    ("trial_server", lambda f: f.billing_mode != "trial"),
    ("not_monthly_package", lambda f: f.billing_mode == "monthly"),
    ("region_not_mainland", lambda f: f.region in MAINLAND_REGIONS),
    ("already_granted", lambda f: not f.already_granted),
    ("service_ended", lambda f: not f.service_ended),
    ("violation", lambda f: not f.account_violation and not f.server_violation),
)

DENIAL_REASONS: tuple[str, ...] = tuple(code for code, _ in ELIGIBILITY_TABLE)


def denial_reason(facts: EligibilityFacts) -> str | None:
    """R-FREE-2: the first failing eligibility check's reason code, or ``None`` when eligible."""
    for code, holds in ELIGIBILITY_TABLE:
        if not holds(facts):
            return code
    return None


SERVICE_ENDING_EVENTS = frozenset({"expired", "refunded", "unsubscribed", "replaced", "terminated"})
# E-8: the service ended early (a termination for any reason — refund, unsubscription, closing, breach,
# incident, announcement — or a destruction): these deny whenever they happened before the decision,
# not only during the filing; an expiry denies only inside the filing (after it, E-5 applies)
SERVICE_CLOSING_EVENTS = SERVICE_ENDING_EVENTS - {"expired"} | {"destroyed"}


def service_ended_between(
    history: Iterable[tuple[str, datetime]], start: datetime, end: datetime
) -> bool:
    """R-FREE-2 (8): whether the server's service ended between the filing's start and approval.

    True if any ``(kind, at)`` in ``history`` has a kind in ``SERVICE_ENDING_EVENTS`` and
    ``start <= at <= end`` (both ends inclusive).
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    return any(kind in SERVICE_ENDING_EVENTS and start <= at <= end for kind, at in history)


def service_ended(history: Iterable[tuple[str, datetime]], start: datetime, end: datetime,
                  decided_at: datetime) -> bool:
    """R-FREE-2 (8) with E-8: the service ended between the filing's start and its approval
    (``service_ended_between``), or it ended early (``SERVICE_CLOSING_EVENTS``: terminated for any
    reason, or destroyed) at any time up to ``decided_at`` (the acceptance; the request for a
    preliminary verdict). An expiry after the approval does not deny (E-5 moves the server's end)."""
    _require_aware(decided_at, "decided_at")
    history = list(history)
    return service_ended_between(history, start, end) or any(
        kind in SERVICE_CLOSING_EVENTS and at <= decided_at for kind, at in history)
