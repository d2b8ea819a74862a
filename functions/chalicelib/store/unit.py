"""Run a decision in a fresh unit of work until it commits without a concurrent change, then send
what the commit promised (cluster-action wake-ups to SQS; notifications are published later from the
outbox by background work, off the request path)."""
from __future__ import annotations

from typing import Callable, TypeVar

from .. import observability
from ..errors import ConcurrentUpdate
from .session import Session

T = TypeVar("T")


def after_commit(s: Session) -> bool:
    """Returns False when a follow-up was handed to background work (the caller says so in its answer)."""
    from ..clusters import queue as cluster_queue

    observability.notifications_recorded(len(s.notifications))
    cluster_queue.announce(s.actions)
    # e.g. the rest of an arrears crossing, before the caller answers; each runs even if one is queued
    return all([follow_up() for follow_up in s.follow_ups])


def run(change: Callable[[Session, int], T], attempts: int = 5, what: str = "the record",
        answer: dict | None = None) -> T:
    """`change(session, attempt)` decides on freshly read records and stages its writes. When its
    follow-up is left to background work, `answer` (the caller's answer) gets `"follow_up": "queued"`."""
    for attempt in range(attempts):
        s = Session()
        result = change(s, attempt)
        try:
            s.commit()
        except ConcurrentUpdate:
            continue
        if not after_commit(s) and answer is not None:
            answer["follow_up"] = "queued"
        return result
    raise ConcurrentUpdate(f"{what} kept changing; try again")
