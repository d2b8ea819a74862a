"""Cluster actions as durable requests (R-CLU-4): recorded with the state change that causes them,
then announced on the SQS queue after the commit. The record, not the message, is the truth: a wake-up
that is lost or refused is logged and counted, and the schedule that wakes old pending actions again
sends it later, so a lost message delays an action and never loses it (issue 19)."""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from .. import observability
from ..domain.records import ClusterAction
from ..store.session import Session

log = logging.getLogger(__name__)

# How long a pending action may wait for its own wake-up before the schedule sends another: longer than a
# commit-then-send takes, shorter than anyone would wait for a cluster to stop or start.
REWAKE_AFTER_SECONDS = 300


def _action_id(ns: int, kind: str) -> str:
    # the decision's wall-clock time first: a server's actions, and the open-actions index, sort by it
    return f"{ns:020d}-{kind}"


def request(s: Session, server_id: str, kind: str, at: datetime, cause: str) -> None:
    s.add_cluster_action(ClusterAction(action_id=_action_id(time.time_ns(), kind), server_id=server_id, kind=kind,
                                       created_at=at, cause=cause))


def announce(actions: list[ClusterAction]) -> None:
    wake(sorted({a.server_id for a in actions}))


def wake(server_ids: list[str]) -> int:
    """Send one wake-up per server; answers how many were not sent (each logged and counted)."""
    if not server_ids:
        return 0
    from .. import aws
    from ..settings import get_settings

    failed: list[str] = []
    for i in range(0, len(server_ids), 10):  # SQS takes 10 messages a call (an arrears crossing moves many)
        chunk = server_ids[i:i + 10]
        try:
            answer = aws.client("sqs").send_message_batch(
                QueueUrl=aws.queue_url(get_settings().queue_name),
                Entries=[{"Id": str(n), "MessageBody": json.dumps({"server_id": server_id})}
                         for n, server_id in enumerate(chunk)])
        except Exception:  # noqa: BLE001 - the recorded actions stay pending; the rewake schedule sends again
            # the queue is unreachable: trying the other chunks would only hold the caller up
            log.exception("waking the cluster-action worker failed for %d servers from %s", len(server_ids) - i,
                          chunk)
            failed.extend(server_ids[i:])
            break
        for entry in answer.get("Failed", []):
            log.warning("the wake-up for server %s was refused (%s: %s)", chunk[int(entry["Id"])],
                        entry.get("Code"), entry.get("Message"))
            failed.append(chunk[int(entry["Id"])])
    if failed:
        log.warning("%d cluster-action wake-ups not sent; their actions stay pending until the rewake schedule",
                    len(failed))
        observability.count("ClusterActionWakeupsFailed", len(failed))
    return len(failed)


def rewake(now_ns: int | None = None) -> dict:
    """Wake again every server whose oldest open action is pending and was decided more than
    REWAKE_AFTER_SECONDS ago. A failed one is left to its own message, which SQS delivers again."""
    from ..store import models as m
    from ..store import session as store

    store.ensure_configured()
    now_ns = time.time_ns() if now_ns is None else now_ns
    before = _action_id(now_ns - REWAKE_AFTER_SECONDS * 1_000_000_000, "")
    oldest: dict[str, str] = {}
    index = m.ClusterActionRow.by_open
    for row in index.query("open", m.ClusterActionRow.action_id < before):  # oldest first, across servers
        oldest.setdefault(row.server_id, row.doc["status"])
    servers = sorted(server for server, status in oldest.items() if status == "pending")
    failed = wake(servers)
    return {"woken": len(servers) - failed, "failed": failed}
