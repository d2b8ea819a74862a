"""Runs recorded cluster actions in order, per server, one worker at a time (R-CLU-1 … R-CLU-5): the server's
lane is claimed before anything is performed; quick retries with backoff for transient faults, an attempt
count on the record, and the dead-letter state after the last one."""
from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from .. import observability
from ..background import Budget
from ..domain.records import ClusterAction
from ..errors import Conflict, NotFound
from ..settings import get_settings
from ..store import models as m
from ..store import session as store
from . import rules
from .errors import ClusterActionError
from .lane import Lane

log = logging.getLogger(__name__)
QUICK_TRIES = 3
OPEN = ("pending", "failed")


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
    row.open_key = "open" if action.status in OPEN else None
    row.dead_key = "dead" if action.status == "dead" else None
    return row


def _save(row: m.ClusterActionRow, action: ClusterAction) -> bool:
    """Record the attempt. False when another worker recorded one first (the version attribute refuses this
    stale write): that worker took the server's lane over, and its record stands."""
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


def _zero() -> dict:
    # held: the server's lane was another worker's, so this run left the server to it
    return {"ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0, "held": 0}


def _actions(server_id: str) -> list[tuple[m.ClusterActionRow, ClusterAction]]:
    """The server's actions in the order they were decided (action ids sort by time of decision)."""
    return [(row, ClusterAction.model_validate(row.doc))
            for row in m.ClusterActionRow.query(server_id, consistent_read=True)]


def _overtaken_by(newer: str) -> str:
    return f"action {newer}, decided after it, has already run; running this one now would undo it (R-CLU-5)"


def _run_held(server_id: str, lane: Lane, counts: dict, performer: Performer, sleep: Callable[[float], None],
              budget: Budget) -> bool:
    """Run the server's open actions oldest first while holding its lane. True when every one of them was
    taken care of; False at a failure (order is kept: the rest wait for its retry), at the budget, or when
    the lane was taken over."""
    max_attempts = get_settings().cluster_action_max_attempts
    actions = _actions(server_id)
    tried = [action.action_id for _, action in actions if action.attempts > 0]
    for row, action in actions:
        if action.status not in OPEN:
            continue
        if budget.should_stop():
            counts["more"] = True
            return False
        if not lane.renew():  # our lease ran out and another worker holds the lane: it runs the queue now
            log.warning("the lane of server %s was taken over; leaving the server to its holder", server_id)
            counts["overtaken"] += 1
            return False
        counts["ran"] += 1
        observability.bind(action_id=action.action_id, server_id=server_id, kind=action.kind)
        newer = rules.started_after(action.action_id, tried)
        if newer is not None:
            # only a replayed dead letter gets here (replay refuses it unless a newer one started meanwhile)
            action.status, error = "dead", f"not run: {_overtaken_by(newer)}"  # not attempted: attempts unchanged
        else:
            error = _attempt(action, performer, sleep)
            action.attempts += 1
            if error is not None:
                action.status = "dead" if action.attempts >= max_attempts else "failed"
            else:
                action.status = "succeeded"
        action.error = error
        if not _save(row, action):  # a stale worker's record would be refused the same way: ours is stale
            log.warning("cluster action %s was recorded by another worker first; leaving the server to it",
                        action.action_id)
            counts["overtaken"] += 1
            return False
        counts["succeeded" if error is None else "failed"] += 1
        counts["dead"] += action.status == "dead"
        observability.cluster_action_finished(action.status, error)
        if error is not None and newer is None:
            return False
    return True


def run_for_server(server_id: str, performer: Performer = perform, sleep: Callable[[float], None] = time.sleep,
                   budget: Budget | None = None, clock: Callable[[], float] = time.time) -> dict:
    """R-CLU-5: claim the server's lane, then run its open actions oldest first, one at a time; stop at the
    first failure so order is kept. A run that finds the lane held leaves the server to its holder, which
    reads the queue again after releasing the lane, so nothing decided meanwhile is stranded."""
    store.ensure_configured()
    budget = budget or Budget()
    counts = {**_zero(), "more": False}
    lane = Lane(server_id, clock)
    while any(action.status in OPEN for _, action in _actions(server_id)):
        if not lane.take():
            counts["held"] += 1
            break
        try:
            finished = _run_held(server_id, lane, counts, performer, sleep, budget)
        finally:
            lane.release()
        if not finished:
            break
    return counts


def _add(totals: dict, result: dict) -> None:
    for key in totals:
        totals[key] += result[key]


def drain(performer: Performer = perform, sleep: Callable[[float], None] = time.sleep,
          budget: Budget | None = None) -> dict:
    """Run the open actions now, server by server in the order of their oldest open action, until the route's
    budget (integration §7): `more` says whether work was left. In AWS the API function only wakes
    `cluster_actions` through the queue."""
    store.ensure_configured()
    budget = budget or Budget.for_route()
    totals = _zero()
    open_rows = m.ClusterActionRow.by_open.query("open")
    if not get_settings().cluster_actions_inline:
        return {**totals, "queued": _wake(sorted({row.server_id for row in open_rows})), "more": False}
    seen: set[str] = set()
    for row in open_rows:
        if row.server_id in seen:
            continue
        if budget.should_stop():
            return {**totals, "more": True}
        seen.add(row.server_id)
        result = run_for_server(row.server_id, performer, sleep, budget)
        _add(totals, result)
        if result["more"]:
            return {**totals, "more": True}
    return {**totals, "more": False}


def replay(action_id: str, performer: Performer = perform, sleep: Callable[[float], None] = time.sleep,
           also: Callable[[store.Session, ClusterAction], None] | None = None) -> dict:
    """Give a dead action a fresh set of attempts and run its server's queue now; `also` stages more
    writes (the operator's audit entry) in the transaction that revives it. An action whose server has
    run a newer one since is refused (R-CLU-5): replaying it would undo what was decided after it."""
    store.ensure_configured()
    rows = list(m.ClusterActionRow.by_dead.query("dead", m.ClusterActionRow.action_id == action_id))
    if not rows:
        raise NotFound(f"no dead letter {action_id!r}")
    row = m.ClusterActionRow.get(rows[0].server_id, action_id, consistent_read=True)
    action = ClusterAction.model_validate(row.doc)
    if action.status != "dead":
        raise Conflict(f"action {action_id!r} is {action.status}, not dead")
    newer = rules.started_after(action_id, [other.action_id for _, other in _actions(action.server_id)
                                            if other.attempts > 0])
    if newer is not None:
        raise Conflict(f"action {action_id!r} cannot be replayed: {_overtaken_by(newer)}")
    action.status, action.attempts = "pending", 0
    s = store.Session()
    s.put_row(_set(row, action))
    if also is not None:
        also(s, action)
    s.commit()
    if get_settings().cluster_actions_inline:
        result = run_for_server(action.server_id, performer, sleep, Budget.for_route())
    else:
        result = {**_zero(), "more": False, "queued": _wake([action.server_id])}
    final = ClusterAction.model_validate(m.ClusterActionRow.get(action.server_id, action_id, consistent_read=True).doc)
    return {**result, "action": {"id": final.action_id, "server_id": final.server_id, "kind": final.kind,
                                 "status": final.status, "attempts": final.attempts, "error": final.error}}


def _wake(server_ids: list[str]) -> int:
    """Hand the servers' open actions to the `cluster_actions` function through its queue; answers how many
    wake-ups were sent."""
    from . import queue

    return len(server_ids) - queue.wake(server_ids)


def from_queue_message(body: str, performer: Performer = perform, budget: Budget | None = None) -> dict:
    """The SQS message only names the server: the records say what to do. A run cut short by the
    invocation's budget wakes the server again, so the rest runs in a fresh invocation."""
    import json

    server_id = json.loads(body)["server_id"]
    result = run_for_server(server_id, performer, budget=budget)
    if result["more"]:
        _wake([server_id])
    return result
