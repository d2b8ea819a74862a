"""X-Signature check (integration §1): `t=<unix>,v1=<hex>` HMAC-SHA256 over "<t>.<raw body>", several v1
allowed, every configured secret accepted (rotation), constant-time, 300 s window both ways."""
from __future__ import annotations

import hashlib
import hmac
import re

from ..errors import InvalidSignature, StaleSignature

TOLERANCE_SECONDS = 300
# `t` is plain ASCII digits without leading zeros: int() alone would also take "017…", "+17…", " 17…",
# "1_7…" and other scripts' digits, so one signed time could be written several ways.
_UNIX_TIME = re.compile(r"0|[1-9][0-9]{0,11}")
# integration §7: a v1 is 64 hexadecimal ASCII characters (explicit ranges: no other script's digits)
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise InvalidSignature("X-Signature header is missing")
    timestamp, candidates = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("X-Signature header is malformed")
        if key == "t":
            if not _UNIX_TIME.fullmatch(value):
                raise InvalidSignature("X-Signature t is not a unix time (plain digits)")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise InvalidSignature("X-Signature header needs t= and at least one v1=")
    return timestamp, candidates


def verify(header: str | None, body: bytes, secrets: tuple[str, ...], now_unix: float) -> None:
    """Raise InvalidSignature unless some v1 matches some secret; then StaleSignature if t is off by > 300 s."""
    timestamp, candidates = _parse(header)
    # A v1 that is not 64 hex characters can match nothing (and compare_digest raises on non-ASCII text),
    # so it is dropped, not refused on its own: one valid entry is enough (§1), and a sender may list an
    # entry of another form beside a good one. With no well-formed entry left, nothing matches: 401.
    digests = [c for c in candidates if _HEX_DIGEST.fullmatch(c)]
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, body)
        for candidate in digests:
            # compare_digest on every pair: no early exit that would leak which one matched
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("no v1 signature matches")
    if abs(now_unix - timestamp) > TOLERANCE_SECONDS:
        raise StaleSignature(f"signature time is more than {TOLERANCE_SECONDS} s from the server's clock")
