"""Run a decision in a fresh unit of work until it commits without a concurrent change, then send
what the commit promised (notifications to SNS, cluster-action wake-ups to SQS)."""
from __future__ import annotations

from typing import Callable, TypeVar

from .. import observability
from ..errors import ConcurrentUpdate
from .session import Session

T = TypeVar("T")


def after_commit(s: Session) -> None:
    from ..clusters import queue as cluster_queue
    from ..notify import outbox

    observability.notifications_recorded(len(s.notifications))
    outbox.publish(s.notifications)
    cluster_queue.announce(s.actions)
    for follow_up in s.follow_ups:  # e.g. the rest of an arrears crossing, before the caller answers
        follow_up()


def run(change: Callable[[Session, int], T], attempts: int = 5, what: str = "the record") -> T:
    """`change(session, attempt)` decides on freshly read records and stages its writes."""
    for attempt in range(attempts):
        s = Session()
        result = change(s, attempt)
        try:
            s.commit()
        except ConcurrentUpdate:
            continue
        after_commit(s)
        return result
    raise ConcurrentUpdate(f"{what} kept changing; try again")
