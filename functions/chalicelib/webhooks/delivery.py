"""Idempotent delivery shared by both webhooks: transport and signature checks, envelope, one unit
of work whose event marker commits with its effects; duplicates answer the first outcome."""
from __future__ import annotations

import importlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from .. import observability
from ..errors import Busy, ConcurrentUpdate, EventIdReused, EventInProgress, InvalidPayload
from pynamodb.exceptions import TransactGetError

from ..accounts import money
from ..store import unit
from ..store.session import EventMarker, Session, body_hash
from . import envelope, signature

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
# Full jitter on a doubling ceiling (10 ms, 20 ms … at most 250 ms): distinct events racing on one busy
# account spread out instead of colliding again; all attempts together stay near a second at worst.
BACKOFF_BASE, BACKOFF_CAP = 0.01, 0.25


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _with_follow_up(response: dict, finished: bool) -> dict:
    """integration §7: a committed change whose follow-up was left to background work still answers 200."""
    return response if finished else {**response, "outcome": {**response["outcome"], "follow_up": "queued"}}


@dataclass(frozen=True)
class EventType:
    """One event type: its payload model and service call as "module:name" under chalicelib (imported
    on first use), and the keys to read up front."""
    model_ref: str
    prefetch: Callable[[object], dict]
    apply_ref: str

    @property
    def model(self) -> type[envelope.Payload]:
        return _resolve(self.model_ref)

    @property
    def apply(self) -> Callable[[Session, str, object], dict]:
        return _resolve(self.apply_ref)


def _resolve(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(f"..{module}", __package__), name)


@observability.observe_delivery
def deliver(*, source: str, secrets: tuple[str, ...], types: dict[str, EventType],
            headers: dict, body: bytes, now_unix: float | None = None) -> dict:
    envelope.check_transport(headers.get("content-type"), body)
    signature.verify(headers.get("x-signature"), body, secrets, time.time() if now_unix is None else now_unix)
    env, raw = envelope.parse_envelope(body)
    observability.bind(event_id=env.id, event_type=env.type)
    event_type = types.get(env.type)
    if event_type is None:
        raise InvalidPayload(f"unknown event type {env.type!r}; expected one of {sorted(types)}", ["type"])
    payload = envelope.parse_data(event_type.model, env.data)
    marker = EventMarker(key=f"{source}#{env.id}", body_hash=body_hash(raw))
    keys = event_type.prefetch(payload)

    same_event = False
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(_backoff(attempt))
        s = Session()
        s.attempt = attempt
        try:
            s.prefetch(event_key=marker.key, **keys)
        except TransactGetError:
            continue  # a concurrent transaction holds one of the items
        seen = s.event(marker.key)
        if seen is not None:
            if seen.body_hash != marker.body_hash:
                raise EventIdReused(f"event id {env.id!r} was delivered before with another body")
            # what a cut-off first delivery left
            finished = money.finish_settlement(s, keys.get("account_id"))
            return _with_follow_up({**seen.response, "result": "duplicate"}, finished)
        outcome = event_type.apply(s, env.id, payload)
        response = {"event_id": env.id, "result": "processed", "outcome": outcome}
        s.mark_event(EventMarker(marker.key, marker.body_hash, response), at=env.created_at)
        try:
            s.commit()
        except ConcurrentUpdate as exc:
            log.info("event %s lost a race (attempt %d); deciding again", env.id, attempt + 1)
            same_event = exc.same_event
            continue
        return _with_follow_up(response, unit.after_commit(s))
    if same_event:
        raise EventInProgress(f"event {env.id!r} is being applied by another delivery; retry")
    raise Busy(f"the records event {env.id!r} changes kept changing under other events; nothing was "
               "changed, retry")
