"""Business time of an operator call or a sweep: the wall clock, or a given time where the override is on."""
from __future__ import annotations

from datetime import datetime

from ..errors import ClockOverrideForbidden, InvalidPayload
from ..settings import get_settings
from ..timeutil import now_utc, parse_rfc3339


def business_time(given, field: str = "at") -> datetime:
    if given is None:
        return now_utc()
    if not get_settings().allow_clock_override:
        raise ClockOverrideForbidden(f"{field!r} is honoured only where ALLOW_CLOCK_OVERRIDE=1")
    try:
        return parse_rfc3339(given)
    except (ValueError, TypeError):
        raise InvalidPayload(f"{field} must be an RFC 3339 time with an offset", [field]) from None
