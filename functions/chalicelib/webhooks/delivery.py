"""Idempotent delivery shared by both webhooks: transport and signature checks, envelope, one unit
of work whose event marker commits with its effects; duplicates answer the first outcome."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from .. import observability
from ..errors import ConcurrentUpdate, EventIdReused, EventInProgress, InvalidPayload
from pynamodb.exceptions import TransactGetError

from ..accounts import money
from ..store import unit
from ..store.session import EventMarker, Session, body_hash
from . import envelope, signature

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class EventType:
    """One event type: its payload model, the keys to read up front and the service call."""
    model: type[envelope.Payload]
    prefetch: Callable[[object], dict]
    apply: Callable[[Session, str, object], dict]


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

    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.02 * attempt))  # jitter so racing deliveries spread out
        s = Session()
        try:
            s.prefetch(event_key=marker.key, **keys)
        except TransactGetError:
            continue  # a concurrent transaction holds one of the items
        seen = s.event(marker.key)
        if seen is not None:
            if seen.body_hash != marker.body_hash:
                raise EventIdReused(f"event id {env.id!r} was delivered before with another body")
            money.finish_settlement(s, keys.get("account_id"))  # what a cut-off first delivery left
            return {**seen.response, "result": "duplicate"}
        outcome = event_type.apply(s, env.id, payload)
        response = {"event_id": env.id, "result": "processed", "outcome": outcome}
        s.mark_event(EventMarker(marker.key, marker.body_hash, response), at=env.created_at)
        try:
            s.commit()
        except ConcurrentUpdate:
            log.info("event %s lost a race (attempt %d); deciding again", env.id, attempt + 1)
            continue
        unit.after_commit(s)
        return response
    raise EventInProgress(f"event {env.id!r} is being applied by another delivery; retry")
