"""Background work on the cloud's own queue: a task is a JSON message `{"kind", "args"}` on the SQS queue
`billing-background`; in AWS the `background_work` function runs each message as it arrives (many at
once), and `drain()` runs every queued one now (the local stack, tests, `POST /ops/background/drain`)."""
from __future__ import annotations

import importlib
import json
import logging
import time
from typing import Callable, Iterable

log = logging.getLogger(__name__)

# kind -> (module under chalicelib, function(args, budget) -> dict); imported only when such a task runs,
# so `import app` stays light
TASKS: dict[str, tuple[str, str]] = {
    "expiry_shard": ("background.sharded", "expiry_piece"),
    "metering_shard": ("background.sharded", "metering_piece"),
    "price_announcement": ("billing.plans", "announce_piece"),
    "notification_retry": ("notify.outbox", "retry_piece"),
    "backfill_segment": ("background.backfill", "segment_piece"),
    "arrears_settlement": ("accounts.money", "settle_task"),
}
BATCH = 10           # SendMessageBatch takes at most 10 entries
RETRY_AFTER = 60     # seconds a task that failed in drain() stays invisible before it is tried again
HOLD = 960           # seconds a task taken by drain() stays invisible: the queue's visibility timeout
RESERVE_MS = 60_000  # time kept at the end of an invocation to hand the rest over cleanly
# integration §7: every route answers within 25 s (API Gateway cuts it at 29 s); a route's own work stops
# here and hands the rest to background work, leaving time to record and answer
ROUTE_BUDGET_SECONDS = 20.0


class UnknownTask(ValueError):
    """A message no handler understands: running it again cannot help."""


class Budget:
    """The time a piece of work may still use: the invocation's remaining time minus a reserve for
    queueing its continuation and recording its summary. Without a clock it never runs out."""

    def __init__(self, remaining_ms: Callable[[], int] | None = None, reserve_ms: int = 0) -> None:
        self._remaining, self._reserve = remaining_ms, reserve_ms

    @classmethod
    def from_context(cls, context) -> "Budget":
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return cls()
        return cls(remaining, min(RESERVE_MS, remaining() // 10))

    @classmethod
    def for_route(cls, seconds: float = ROUTE_BUDGET_SECONDS,
                  clock: Callable[[], float] = time.monotonic) -> "Budget":
        """The work budget of one API call, counted from now on the given clock."""
        deadline = clock() + seconds
        return cls(lambda: int((deadline - clock()) * 1000))

    def should_stop(self) -> bool:
        return self._remaining is not None and self._remaining() < self._reserve


def task(kind: str, **args) -> dict:
    if kind not in TASKS:
        raise UnknownTask(f"no background task {kind!r}")
    return {"kind": kind, "args": args}


def _queue():
    from .. import aws
    from ..settings import get_settings

    return aws.client("sqs"), aws.queue_url(get_settings().background_queue)


def enqueue(kind: str, **args) -> None:
    enqueue_many([task(kind, **args)])


def enqueue_many(tasks: Iterable[dict]) -> int:
    """Queue tasks, ten per SendMessageBatch. Raises if any is refused: the caller's retry queues them
    again, and running a task twice is harmless (each one is safe to repeat)."""
    tasks = list(tasks)
    if not tasks:
        return 0
    sqs, url = _queue()
    for start in range(0, len(tasks), BATCH):
        entries = [{"Id": str(i), "MessageBody": json.dumps(t, sort_keys=True, separators=(",", ":"))}
                   for i, t in enumerate(tasks[start:start + BATCH])]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"queueing background work failed: {failed}")
    return len(tasks)


def run(message: str | bytes | dict, budget: Budget | None = None) -> dict:
    """Run one task; an exception means it failed and the message should be delivered again."""
    try:
        value = json.loads(message) if isinstance(message, (str, bytes)) else message
        kind, args = value["kind"], value.get("args") or {}
    except (ValueError, TypeError, KeyError):
        raise UnknownTask(f"not a background task: {str(message)[:200]}") from None
    if kind not in TASKS:
        raise UnknownTask(f"no background task {kind!r}")
    module, name = TASKS[kind]
    handler = getattr(importlib.import_module(f"..{module}", __package__), name)
    return handler(args, budget or Budget())


def other_work() -> list[Callable[["Budget"], dict]]:
    """Background work that is not a queued message, run by drain() once the queue is empty (such as
    publishing recorded notifications again); each answers {"ran", "succeeded", "failed", "handed_on"}."""
    from ..notify import outbox

    return [outbox.retry_recorded]


def drain(budget: Budget | None = None) -> dict:
    """Run every queued task now, including the continuations they queue, until the queue is empty;
    then the other background work. A task that fails is left on the queue (tried again later, by
    SQS's consumer or the next drain); one that no handler understands is dropped. With a budget
    (integration §7: a route's), no task starts after it ran out, the tasks themselves hand over at it,
    and `more` says that work was left for the next drain."""
    budget = budget or Budget()
    totals = {"ran": 0, "succeeded": 0, "failed": 0, "more": False}
    sqs, url = _queue()
    while True:
        if budget.should_stop():
            totals["more"] = True
            return totals
        # one at a time, hidden for as long as the consumer function may hold one, so that nobody else
        # starts a task this drain has taken but not reached yet
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                       VisibilityTimeout=HOLD).get("Messages", [])
        if not messages:
            break
        message = messages[0]
        totals["ran"] += 1
        try:
            run(message["Body"], budget)
        except UnknownTask:
            log.exception("dropping a background message")
            totals["failed"] += 1
        except Exception:  # noqa: BLE001 - one failed task does not stop the others
            log.exception("background task failed; it stays queued")
            totals["failed"] += 1
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=RETRY_AFTER)
            continue
        else:
            totals["succeeded"] += 1
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    for work in other_work():
        result = work(budget)
        for key in ("ran", "succeeded", "failed"):
            totals[key] += result[key]
        totals["more"] = totals["more"] or result["handed_on"] > 0
    return totals
