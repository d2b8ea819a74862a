"""Runs recorded cluster actions in order, per server (R-CLU-1 … R-CLU-4): quick retries with backoff
for transient faults, an attempt count on the record, and the dead-letter state after the last one."""
from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from .. import observability
from ..domain.records import ClusterAction
from ..errors import Conflict, NotFound
from ..settings import get_settings
from ..store import models as m
from ..store import session as store
from .errors import ClusterActionError

log = logging.getLogger(__name__)
QUICK_TRIES = 3


class Performer(Protocol):
    def __call__(self, action: ClusterAction) -> None: ...


def perform(action: ClusterAction) -> None:
    """The real thing: kubeconfig from Secrets Manager, workloads through the Kubernetes API (imported
    only here), node groups through EKS."""
    from .. import aws
    from . import nodegroups
    from .errors import NoCredentialsError

    eks = aws.client("eks")
    if action.kind == "destroy":
        nodegroups.destroy_cluster(eks, action.server_id)
        return
    try:
        secret = aws.client("secretsmanager").get_secret_value(SecretId=f"clusters/{action.server_id}/kubeconfig")
    except Exception as exc:  # noqa: BLE001 - any failure to read credentials is reported the same way
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise NoCredentialsError(f"no kubeconfig for server {action.server_id} "
                                 f"(secret clusters/{action.server_id}/kubeconfig: {code})") from None
    from .kube import KubeWorkloads

    workloads = KubeWorkloads(secret["SecretString"])
    if action.kind == "stop":
        workloads.stop()
        nodegroups.stop_nodegroups(eks, action.server_id)
    else:
        nodegroups.start_nodegroups(eks, action.server_id)
        workloads.start()


def _set(row: m.ClusterActionRow, action: ClusterAction) -> m.ClusterActionRow:
    row.doc = action.model_dump(mode="json", exclude_none=True)
    row.open_key = "open" if action.status in ("pending", "failed") else None
    row.dead_key = "dead" if action.status == "dead" else None
    return row


def _save(row: m.ClusterActionRow, action: ClusterAction) -> bool:
    """Record the attempt. False when another worker recorded one first (the version attribute refuses this
    stale write): that worker has the server's queue now, and its record stands."""
    from pynamodb.exceptions import PutError

    try:
        _set(row, action).save()
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _attempt(action: ClusterAction, performer: Performer, sleep: Callable[[float], None]) -> str | None:
    base = get_settings().cluster_retry_base_seconds
    for quick in range(QUICK_TRIES):
        try:
            performer(action)
            return None
        except ClusterActionError as exc:
            if not exc.transient or quick == QUICK_TRIES - 1:
                return str(exc)
            sleep(base * (2 ** quick))
        except Exception as exc:  # noqa: BLE001 - an unexpected fault is still a failed attempt, kept for replay
            log.exception("cluster action %s failed unexpectedly", action.action_id)
            return f"{type(exc).__name__}: {exc}"
    return "unreachable"


def run_for_server(server_id: str, performer: Performer = perform, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Run the server's open actions oldest first; stop at the first failure so order is kept."""
    store.ensure_configured()
    counts = {"ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0}
    max_attempts = get_settings().cluster_action_max_attempts
    for row in m.ClusterActionRow.query(server_id, consistent_read=True):
        action = ClusterAction.model_validate(row.doc)
        if action.status not in ("pending", "failed"):
            continue
        counts["ran"] += 1
        observability.bind(action_id=action.action_id, server_id=server_id, kind=action.kind)
        error = _attempt(action, performer, sleep)
        action.attempts += 1
        if error is None:
            action.status, action.error = "succeeded", None
        else:
            action.status = "dead" if action.attempts >= max_attempts else "failed"
            action.error = error
        if not _save(row, action):  # a second delivery of the same wake-up ran this action at the same time
            log.warning("cluster action %s was recorded by another worker first; leaving the server to it",
                        action.action_id)
            counts["overtaken"] += 1
            break
        counts["succeeded" if error is None else "failed"] += 1
        counts["dead"] += action.status == "dead"
        observability.cluster_action_finished(action.status, error)
        if error is not None:
            break
    return counts


def drain(performer: Performer = perform, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Run every open action now (local stack and tests; in AWS the queue triggers `cluster_actions`)."""
    store.ensure_configured()
    servers = sorted({row.server_id for row in m.ClusterActionRow.by_open.query("open")})
    totals = {"ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0}
    if not get_settings().cluster_actions_inline:
        return {**totals, "queued": _wake(servers)}
    for server_id in servers:
        for key, value in run_for_server(server_id, performer, sleep).items():
            totals[key] += value
    return totals


def replay(action_id: str, performer: Performer = perform, sleep: Callable[[float], None] = time.sleep,
           also: Callable[[store.Session, ClusterAction], None] | None = None) -> dict:
    """Give a dead action a fresh set of attempts and run its server's queue now; `also` stages more
    writes (the operator's audit entry) in the transaction that revives it."""
    store.ensure_configured()
    rows = list(m.ClusterActionRow.by_dead.query("dead", m.ClusterActionRow.action_id == action_id))
    if not rows:
        raise NotFound(f"no dead letter {action_id!r}")
    row = m.ClusterActionRow.get(rows[0].server_id, action_id, consistent_read=True)
    action = ClusterAction.model_validate(row.doc)
    if action.status != "dead":
        raise Conflict(f"action {action_id!r} is {action.status}, not dead")
    action.status, action.attempts = "pending", 0
    s = store.Session()
    s.put_row(_set(row, action))
    if also is not None:
        also(s, action)
    s.commit()
    result = run_for_server(action.server_id, performer, sleep) if get_settings().cluster_actions_inline else {
        "ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0, "queued": _wake([action.server_id])}
    final = ClusterAction.model_validate(m.ClusterActionRow.get(action.server_id, action_id, consistent_read=True).doc)
    return {**result, "action": {"id": final.action_id, "server_id": final.server_id, "kind": final.kind,
                                 "status": final.status, "attempts": final.attempts, "error": final.error}}


def _wake(server_ids: list[str]) -> int:
    """Hand the servers' open actions to the `cluster_actions` function through its queue."""
    from . import queue

    queue.wake(server_ids)
    return len(server_ids)


def from_queue_message(body: str, performer: Performer = perform) -> dict:
    """The SQS message only names the server: the records say what to do."""
    import json

    server_id = json.loads(body)["server_id"]
    result = run_for_server(server_id, performer)
    return result


