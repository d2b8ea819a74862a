"""Webhook secrets and ops tokens: the environment wins; in AWS they may come from one Secrets Manager
secret (JSON {"payments": "s1,s2", "ticketing": "s3", "ops": "t1"}) named by WEBHOOK_SECRETS_ID. A payments secret never
validates a ticketing callback: each sender has its own list.

The secret is read on first use (integration §7 "A fresh execution environment": a new microVM's monotonic
clock starts near 0, so nothing here compares it with an initial 0) and again after TTL_SECONDS. It is state
shared on purpose by every request of the process, so one thread reads it while the others wait for that
read, and readers only ever see a whole, never-mutated value."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace

from .. import observability
from ..settings import _csv, get_settings

TTL_SECONDS = 300  # a rotated secret reaches every warm environment within 5 minutes
# When a refresh fails, the last good value keeps answering for up to an hour after it was read: rotation
# lists the new secret beside the old one for longer than that, so senders still match it, and a Secrets
# Manager outage of a few minutes should not turn every webhook into a 5xx. Past the hour a token revoked
# meanwhile must stop working, so the requests fail (5xx, retried by the senders) until a read succeeds.
STALE_SECONDS = 3600
# While the last good value answers, only one request every RETRY_SECONDS tries Secrets Manager again.
RETRY_SECONDS = 30
KEYS = ("payments", "ticketing", "ops")

_clock = time.monotonic


class SecretsUnavailable(RuntimeError):
    """No good value to answer with: the request fails as the system's own fault (500, and the sender
    retries), never as the sender's bad signature (401, which a payment provider may not retry)."""


@dataclass(frozen=True)
class _Held:
    secret_id: str
    value: dict[str, tuple[str, ...]]
    read_at: float
    retry_at: float  # read_at + TTL_SECONDS; after a failed refresh, RETRY_SECONDS later (within the hour)


_lock = threading.Lock()
_held: _Held | None = None
_attempts = 0  # reads finished, so a thread that waited for a failed read fails with it instead of repeating it
_last_error: Exception | None = None


def _read(secret_id: str) -> dict[str, tuple[str, ...]]:
    from .. import aws

    raw = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    document = json.loads(raw)
    if not isinstance(document, dict) or not all(isinstance(document.get(k, ""), str) for k in KEYS):
        raise ValueError(f"secret {secret_id} is not a JSON object of comma-separated strings")
    return {key: _csv(document.get(key)) for key in KEYS}


def _held_for(secret_id: str) -> _Held | None:
    held = _held
    return held if held is not None and held.secret_id == secret_id else None


def _from_secrets_manager(key: str) -> tuple[str, ...]:
    secret_id = get_settings().secrets_manager_secret
    if not secret_id:
        return ()
    held, attempts_seen = _held_for(secret_id), _attempts
    if held is not None and _clock() < held.retry_at:
        return held.value[key]
    still_good = held is not None and _clock() - held.read_at <= STALE_SECONDS
    if not _lock.acquire(blocking=not still_good):
        return held.value[key]  # another thread is refreshing it; until then the value held answers
    try:
        return _load(secret_id, attempts_seen)[key]
    finally:
        _lock.release()


def _load(secret_id: str, attempts_seen: int) -> dict[str, tuple[str, ...]]:
    """Under the lock: the value, read now unless a thread this one waited for has just read it."""
    global _held, _attempts, _last_error
    held, now = _held_for(secret_id), _clock()
    if held is not None and now < held.retry_at:
        return held.value
    if _attempts != attempts_seen and _last_error is not None:
        raise SecretsUnavailable(f"Secrets Manager secret {secret_id} could not be read") from _last_error
    try:
        value = _read(secret_id)
    except Exception as exc:  # noqa: BLE001 - any failure to read it is handled the same way
        _attempts, _last_error = _attempts + 1, exc
        age = None if held is None else now - held.read_at
        if age is None or age > STALE_SECONDS:
            observability.secrets_unavailable(exc, None)
            raise SecretsUnavailable(f"Secrets Manager secret {secret_id} could not be read") from exc
        observability.secrets_unavailable(exc, age)
        _held = replace(held, retry_at=min(now + RETRY_SECONDS, held.read_at + STALE_SECONDS))
        return held.value
    _held, _attempts, _last_error = _Held(secret_id, value, now, now + TTL_SECONDS), _attempts + 1, None
    return value


def reset() -> None:
    """Forget what was read (tests change the secret between cases)."""
    global _held, _last_error
    with _lock:
        _held, _last_error = None, None


def payment_secrets() -> tuple[str, ...]:
    return get_settings().payment_secrets or _from_secrets_manager("payments")


def ticketing_secrets() -> tuple[str, ...]:
    return get_settings().ticketing_secrets or _from_secrets_manager("ticketing")


def ops_tokens() -> tuple[str, ...]:
    return get_settings().ops_tokens or _from_secrets_manager("ops")
