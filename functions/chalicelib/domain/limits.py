"""How deep a JSON body may nest (integration §6 "Identifiers and limits"): checked once on every body,
webhook or ops, before any model sees it, so no parser or encoder can run out of stack (a 400, not a 500).
How late a time may be from which a server's service can end is R-LIFE-3's: `lifecycle.rules`."""
from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidPayload

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

