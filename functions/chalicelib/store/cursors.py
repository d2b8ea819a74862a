"""Paging cursors sealed with an HMAC (integration §7): a cursor is read back only if this system issued it
for the same list of the same record, so a malformed, forged or borrowed one is a 400, never a position.

The key is derived from the secrets the functions already read (webhook secrets and ops tokens, from the
environment or the Secrets Manager secret): no new setting in AWS or locally, the same key in every
execution environment of a stage, and none that a caller without all of those secrets can compute. Rotating
a secret changes the key: cursors issued before it are refused (400) and the list is read again from its
first page, which loses nothing."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

from ..errors import InvalidPayload

MAC_BYTES = 16  # 128 bits: cursors stay short, forging one stays out of reach
# "<position: base64url JSON>.<mac: base64url>", ASCII only; DynamoDB keys are at most 1 024 bytes and a
# position holds at most three of them
_FORM = re.compile(r"([A-Za-z0-9_-]{1,8000})\.([A-Za-z0-9_-]{22})")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:  # the last character's spare bits: one cursor, one spelling
        raise ValueError("not the canonical base64 of its bytes")
    return raw


def _key() -> bytes:
    from ..webhooks import secrets

    material = json.dumps([secrets.payment_secrets(), secrets.ticketing_secrets(), secrets.ops_tokens()])
    return hashlib.sha256(b"k8s-billing paging cursor\0" + material.encode()).digest()


def _mac(key: bytes, scope: str, position: bytes) -> bytes:
    # the scope (list and record) is signed but not carried: a cursor shown to another list fails its MAC
    return hmac.new(key, scope.encode() + b"\0" + position, hashlib.sha256).digest()[:MAC_BYTES]


def seal(scope: str, position: list[str]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return f"{_b64(raw)}.{_b64(_mac(_key(), scope, raw))}"


def unseal(cursor: str, scope: str, size: int, field: str, message: str) -> list[str]:
    """The position (`size` strings) of a cursor issued for `scope`, or InvalidPayload naming `field`."""
    form = _FORM.fullmatch(cursor) if isinstance(cursor, str) else None
    try:
        if form is not None:
            raw, mac = _unb64(form.group(1)), _unb64(form.group(2))
            if hmac.compare_digest(mac, _mac(_key(), scope, raw)):
                position = json.loads(raw)
                if (isinstance(position, list) and len(position) == size
                        and all(isinstance(v, str) and v for v in position)):
                    return position
    except (ValueError, binascii.Error):
        pass
    raise InvalidPayload(message, [field])
