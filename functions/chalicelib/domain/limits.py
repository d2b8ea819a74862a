"""Input limits of integration §6 "Identifiers and limits": how deep a JSON body may nest (checked once on
every body, webhook or ops, before any model sees it, so no parser or encoder can run out of stack: a 400,
not a 500), and how late a time may be from which a server's service can end."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..errors import InvalidPayload
from ..timeutil import EARLIEST, LATEST

# The deepest contract body is an envelope → data → a field (3); 32 leaves room for unknown extra
# fields, which are ignored, while staying far from Python's recursion limit (~1000).
MAX_DEPTH = 32


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, `{}` and `[]` are 1), without recursion; counting
    stops just past MAX_DEPTH (enough to refuse)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads_object(raw: bytes | str, field: str = "body") -> dict:
    """Parse a body that must be one JSON object nested at most MAX_DEPTH deep; InvalidPayload otherwise."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidPayload(f"{field} is not JSON (or nests deeper than {MAX_DEPTH})", [field]) from None
    if not isinstance(value, dict):
        raise InvalidPayload(f"{field} must be a JSON object", [field])
    if depth(value) > MAX_DEPTH:
        raise InvalidPayload(f"{field} nests deeper than {MAX_DEPTH} levels", [field])
    return value


def service_may_end_at(value: datetime, field: str) -> datetime:
    """integration §6: `value` is a time from which a server's service may end later without another time
    arriving: a pay-as-you-go order's start or a balance change (its hours run on, and an arrears crossing
    at that time or at a metering run from it stops the server, R-PAY-7), a metering run. The 7-day
    retention that would follow (R-LIFE-3) must be storable, so such a time is refused (400 naming
    `field`) when it arrives, not accepted and then failing every later run: the last one taken is on
    2199-12-24 (Asia/Shanghai), whose retention ends 2200-01-01T00:00+08:00. A consequence saved in the
    same call (an expiry, a termination) is checked on save instead (`lifecycle.rules.unstorable`)."""
    from ..lifecycle.rules import retain_until  # the one place R-LIFE-3's reading is written

    if not EARLIEST <= retain_until(value) < LATEST:
        raise InvalidPayload(f"{field} is too late: the 7-day retention after it (R-LIFE-3) would end in 2200, "
                             "outside the range the system stores (2000-01-01 .. 2199-12-31)", [field])
    return value
