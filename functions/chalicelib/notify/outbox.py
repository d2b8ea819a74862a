"""Notifications (R-NOTE-1): recorded in the same transaction as their cause (the (target, cause) key
makes them at most once), then published to SNS after the commit."""
from __future__ import annotations

import json
import logging
from datetime import datetime

from .. import observability
from ..domain.records import Notification
from ..store.session import Session

log = logging.getLogger(__name__)


def target_of(*, server_id: str | None = None, account_id: str | None = None) -> str:
    return f"server#{server_id}" if server_id else f"account#{account_id}"


def record(s: Session, *, kind: str, account_id: str, cause: str, at: datetime,
           server_id: str | None = None, details: dict | None = None) -> None:
    s.add_notification(Notification(
        target=target_of(server_id=server_id, account_id=account_id), cause=cause, kind=kind, at=at,
        account_id=account_id, server_id=server_id, details=details or {},
    ))


def publish(notes: list[Notification]) -> None:
    """Best effort after the commit: the record already guarantees at most once; a failed publish
    is logged and stays `recorded` (visible in the views) for an operator to resend."""
    if not notes:
        return
    from .. import aws
    from ..settings import get_settings
    from ..store import models as m

    try:
        arn = aws.topic_arn(get_settings().topic_name)
        sns = aws.client("sns")
    except Exception:  # noqa: BLE001 - publishing must never undo a committed change
        log.exception("notification topic unavailable; %d notifications stay recorded", len(notes))
        return
    for note in notes:
        try:
            sns.publish(TopicArn=arn, Subject=note.kind, Message=json.dumps(note.model_dump(mode="json")),
                        MessageAttributes={"kind": {"DataType": "String", "StringValue": note.kind}})
            m.NotificationRow(note.target, note.cause).update(actions=[m.NotificationRow.status.set("sent")])
            observability.notification_sent(True)
        except Exception:  # noqa: BLE001
            observability.notification_sent(False)
            log.exception("publishing %s for %s failed", note.kind, note.target)
