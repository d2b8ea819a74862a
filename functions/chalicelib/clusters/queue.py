"""Cluster actions as durable requests (R-CLU-4): recorded with the state change that causes them,
then announced on the SQS queue after the commit. The record, not the message, is the truth: a lost
message only delays the action until the next drain."""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from ..domain.records import ClusterAction
from ..store.session import Session

log = logging.getLogger(__name__)


def request(s: Session, server_id: str, kind: str, at: datetime, cause: str) -> None:
    action_id = f"{time.time_ns():020d}-{kind}"
    s.add_cluster_action(ClusterAction(action_id=action_id, server_id=server_id, kind=kind,
                                       created_at=at, cause=cause))


def announce(actions: list[ClusterAction]) -> None:
    wake(sorted({a.server_id for a in actions}))


def wake(server_ids: list[str]) -> None:
    if not server_ids:
        return
    from .. import aws
    from ..settings import get_settings

    try:
        url = aws.queue_url(get_settings().queue_name)
        sqs = aws.client("sqs")
        for i in range(0, len(server_ids), 10):  # SQS takes 10 messages a call (an arrears crossing moves many)
            answer = sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"server_id": server_id})}
                for n, server_id in enumerate(server_ids[i:i + 10])])
            if answer.get("Failed"):
                log.warning("announcing cluster actions: %d messages refused; they stay pending", len(answer["Failed"]))
    except Exception:  # noqa: BLE001 - the recorded action is picked up by the next drain
        log.exception("waking the cluster-action worker for %d servers failed; their actions stay pending",
                      len(server_ids))
