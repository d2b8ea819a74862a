"""Notifications (R-NOTE-1, R-NOTE-2, integration §6) as a transactional outbox: recorded in the same
transaction as their cause (the (target, cause) key makes them at most once), published to the topic
later by background work, which marks each one `sent`."""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone

from .. import observability
from ..domain.records import Notification
from ..store.session import Session
from ..timeutil import to_local

log = logging.getLogger(__name__)
PAGE_SIZE = 100
# a notification whose publish still fails this long after it was recorded is stuck, not merely waiting
# for the next retry run (what NotificationsStuckAlarm watches)
STUCK_AFTER = timedelta(hours=1)


def target_of(*, server_id: str | None = None, account_id: str | None = None) -> str:
    return f"server#{server_id}" if server_id else f"account#{account_id}"


def notification_id(target: str, cause: str) -> str:
    """Stable across retries and publishers (derived from the row's key), so a subscriber drops repeats."""
    return "ntf_" + hashlib.sha256(f"{target}\n{cause}".encode()).hexdigest()[:32]


def record(s: Session, *, kind: str, account_id: str, cause: str, at: datetime,
           server_id: str | None = None, details: dict | None = None) -> None:
    """Stage one notification in the cause's transaction. Its time is kept at +08:00 (integration §7:
    every time in a published message), whatever offset the caller's instant carries (an expiry's is
    UTC as stored)."""
    s.add_notification(Notification(
        target=target_of(server_id=server_id, account_id=account_id), cause=cause, kind=kind, at=to_local(at),
        account_id=account_id, server_id=server_id, details=details or {},
    ))


def message(doc: dict) -> tuple[str, dict]:
    """The message body (the notification with its id, target and cause) and its attributes."""
    nid = notification_id(doc["target"], doc["cause"])
    body = {"notification_id": nid, **doc}
    attributes = {"notification_id": {"DataType": "String", "StringValue": nid},
                  "kind": {"DataType": "String", "StringValue": doc["kind"]}}
    return json.dumps(body, sort_keys=True), attributes


def _mark_sent(row) -> bool:
    """Conditional: of two publishers racing on one notification, only one marks it (the other's
    message is a repeat the subscriber drops by notification_id). Removing the index keys takes it
    out of the sparse index."""
    from pynamodb.exceptions import UpdateError

    from ..store import models as m

    try:
        row.update(actions=[m.NotificationRow.status.set("sent"), m.NotificationRow.pending_shard.remove(),
                            m.NotificationRow.pending_at.remove(),
                            m.NotificationRow.sent_at.set(datetime.now(timezone.utc).isoformat())],
                   condition=m.NotificationRow.status == "recorded")
        return True
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise


def retry_recorded(budget=None, page_size: int = PAGE_SIZE, *, shards: list[str] | None = None,
                   after: dict | None = None) -> dict:
    """Publish every notification still `recorded` (found through the sparse index, page by page,
    oldest first in each shard, from the cursor `after` in the first) and mark it `sent`. A failed
    publish leaves it recorded for the next run; nothing is lost and a sent one is never published again
    by a later run. When `budget` runs low, the shard in hand (from its cursor) and the shards not
    reached are queued as `notification_retry` background tasks (`handed_on` counts them), so a
    scheduled run never outlives its invocation however many are waiting."""
    from .. import aws, background
    from ..background import sharded
    from ..settings import get_settings
    from ..store import session as store
    from ..timeutil import now_utc, store_key

    budget = budget or background.Budget()
    summary = {"ran": 0, "succeeded": 0, "failed": 0, "handed_on": 0}
    store.ensure_configured()
    sns: list = []  # the client and the topic, made on the first publish
    stuck_before = store_key(now_utc() - STUCK_AFTER)

    def publish(row) -> None:
        summary["ran"] += 1
        try:
            if not sns:
                sns.extend([aws.client("sns"), aws.topic_arn(get_settings().topic_name)])
            body, attributes = message(row.doc)
            sns[0].publish(TopicArn=sns[1], Subject=row.doc["kind"], Message=body, MessageAttributes=attributes)
        except Exception:  # noqa: BLE001 - stays recorded; the next run tries again
            log.exception("publishing %s %s failed; it stays recorded", row.target, row.cause)
            observability.notification_sent(False)
            if (row.pending_at or "") < stuck_before:
                observability.notification_stuck()
            summary["failed"] += 1
            return
        if _mark_sent(row):  # a racing publisher's repeat is not counted as sent twice
            observability.notification_sent(True)
        summary["succeeded"] += 1

    shards = list(shards or map(str, range(store.SHARDS)))
    for i, shard in enumerate(shards):
        if i and budget.should_stop():
            rest = [(s, None) for s in shards[i:]]
        else:
            done, cursor = sharded.walk(
                lambda start, shard=shard: store.recorded_notifications(shard, page_size, last_key=start),
                publish, budget.should_stop, after if i == 0 else None)
            if done:
                continue
            rest = [(shard, cursor)] + [(s, None) for s in shards[i + 1:]]
        summary["handed_on"] = background.enqueue_many(
            background.task("notification_retry", shard=s, after=c) for s, c in rest)
        break
    if summary["ran"]:
        log.info("notifications %s", summary)
    return summary


def retry_piece(args: dict, budget) -> dict:
    """The background task `notification_retry`: one shard, from its cursor, handing on again if need be."""
    return retry_recorded(budget, shards=[str(args["shard"])], after=args.get("after"))
