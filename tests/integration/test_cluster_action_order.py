"""One server's cluster actions in order, one at a time, whatever the workers' timing (SPEC R-CLU-5,
integration §7 "Cluster actions in order"; issue 20).

Several workers take one server's stop/start/stop/start at once, as SQS's at-least-once wake-ups and
`cluster_actions`' concurrency let them. The cluster is a fake whose first action, in the first worker,
waits on an event until the others are done: without a claim before acting, the others run the queue
meanwhile and the first worker's stale stop lands after the last start."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

AT = datetime(2026, 2, 2, 0, 10, tzinfo=timezone.utc)
SERVER = "srv-o"
WAIT = 60  # seconds: only bounds a broken run; every wait below is released by an event


class SlowCluster:
    """A cluster that is either started or stopped. It notes each action it performs, in order, and whether
    two ever ran at once; a worker's performer may hold its first action until the test releases it."""

    def __init__(self) -> None:
        self.state = "started"
        self.performed: list[str] = []
        self.overlapped = False
        self._busy = 0
        self._lock = threading.Lock()

    def performer(self, hold: threading.Event | None = None, entered: threading.Event | None = None,
                  hold_after: bool = False):
        first = [True]

        def perform(action) -> None:
            with self._lock:
                self._busy += 1
                self.overlapped |= self._busy > 1
            try:
                holding, first[0] = first[0] and hold is not None, False
                if holding and not hold_after:
                    entered.set()
                    assert hold.wait(WAIT)
                with self._lock:
                    self.state = "stopped" if action.kind == "stop" else "started"
                    self.performed.append(action.action_id)
                if holding and hold_after:
                    entered.set()
                    assert hold.wait(WAIT)
            finally:
                with self._lock:
                    self._busy -= 1
        return perform


def decide(kind: str, server_id: str = SERVER) -> str:
    """Record one decided action, as a state change does (the wake-up is the test's to send)."""
    from chalicelib.clusters import queue
    from chalicelib.store import session as store

    s = store.Session()
    queue.request(s, server_id, kind, AT, f"test:{kind}")
    s.commit()
    return s.actions[0].action_id


def worker(results: dict, name: str, **kwargs) -> threading.Thread:
    from chalicelib.clusters import executor

    def run() -> None:
        results[name] = executor.run_for_server(SERVER, sleep=lambda _: None, **kwargs)
    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def records() -> list[tuple[str, str, str, int]]:
    from chalicelib.store import models as m

    return [(row.action_id, row.doc["kind"], row.doc["status"], row.doc["attempts"])
            for row in m.ClusterActionRow.query(SERVER, consistent_read=True)]


@pytest.mark.both_backends
def test_R_CLU_5_concurrent_workers_leave_the_cluster_in_the_last_decided_state(aws, backend):
    ids = [decide(kind) for kind in ("stop", "start", "stop", "start")]
    cluster, results = SlowCluster(), {}
    release, entered = threading.Event(), threading.Event()
    first = worker(results, "first", performer=cluster.performer(release, entered))
    assert entered.wait(WAIT)  # the first worker is inside the first stop
    others = [worker(results, name, performer=cluster.performer()) for name in ("second", "third")]
    for thread in others:
        thread.join(WAIT)
    release.set()
    first.join(WAIT)

    assert cluster.state == "started"
    assert cluster.performed == ids  # each once, in the order decided
    assert cluster.overlapped is False
    assert records() == [(ids[0], "stop", "succeeded", 1), (ids[1], "start", "succeeded", 1),
                         (ids[2], "stop", "succeeded", 1), (ids[3], "start", "succeeded", 1)]
    assert {name: (r["ran"], r["succeeded"], r["held"]) for name, r in results.items()} == {
        "first": (4, 4, 0), "second": (0, 0, 1), "third": (0, 0, 1)}


@pytest.mark.both_backends
def test_R_CLU_5_actions_decided_while_the_lane_is_held_are_run_by_its_holder(aws, backend):
    """Each new decision's wake-up finds the lane held and leaves; the holder re-reads the queue, so
    nothing decided meanwhile is stranded."""
    ids = [decide("stop")]
    cluster, results = SlowCluster(), {}
    release, entered = threading.Event(), threading.Event()
    first = worker(results, "first", performer=cluster.performer(release, entered))
    assert entered.wait(WAIT)
    for n, kind in enumerate(("start", "stop", "start")):
        ids.append(decide(kind))
        worker(results, f"wake-{n}", performer=cluster.performer()).join(WAIT)
    release.set()
    first.join(WAIT)

    assert cluster.state == "started"
    assert cluster.performed == ids
    assert cluster.overlapped is False
    assert [status for _, _, status, _ in records()] == ["succeeded"] * 4
    assert [results[f"wake-{n}"]["held"] for n in range(3)] == [1, 1, 1]
    assert results["first"]["succeeded"] == 4


def test_R_CLU_5_a_holder_whose_lease_was_taken_over_stops_before_its_next_action(aws):
    """A holder past its lease (impossible inside `cluster_actions`' 900 s, modelled with a clock that stalls
    it just before it renews the lease for its second action) learns at the renewal that the lane is another
    worker's, and performs nothing more."""
    from chalicelib.clusters import lane

    ids = [decide(kind) for kind in ("stop", "start")]
    cluster, results = SlowCluster(), {}
    release, entered = threading.Event(), threading.Event()
    now, calls = [1_000_000.0], []

    def stalling_clock() -> float:  # called by take, by the renewal before the stop, then before the start
        calls.append(now[0])
        if len(calls) == 3:
            entered.set()
            assert release.wait(WAIT)
        return now[0]

    first = worker(results, "first", performer=cluster.performer(), clock=stalling_clock)
    assert entered.wait(WAIT)  # the stop is done and recorded; the first worker is about to renew
    now[0] += lane.LEASE_SECONDS + 1
    worker(results, "second", performer=cluster.performer(), clock=lambda: now[0]).join(WAIT)
    release.set()
    first.join(WAIT)

    assert cluster.performed == ids  # each once
    assert cluster.state == "started"
    assert records() == [(ids[0], "stop", "succeeded", 1), (ids[1], "start", "succeeded", 1)]
    assert (results["first"]["ran"], results["first"]["succeeded"], results["first"]["overtaken"]) == (1, 1, 1)
    assert (results["second"]["ran"], results["second"]["succeeded"]) == (1, 1)


def test_R_CLU_5_a_stale_holders_late_record_is_refused(aws):
    """A holder stalled past its lease inside an action: the new holder runs the queue from that action on;
    the stale holder's record of it is refused by the record's version and it performs nothing more."""
    from chalicelib.clusters import lane

    ids = [decide(kind) for kind in ("stop", "start")]
    cluster, results = SlowCluster(), {}
    release, entered = threading.Event(), threading.Event()
    now = [1_000_000.0]
    first = worker(results, "first", performer=cluster.performer(release, entered, hold_after=True),
                   clock=lambda: now[0])
    assert entered.wait(WAIT)  # the first stop took effect; its record is not written yet
    now[0] += lane.LEASE_SECONDS + 1
    worker(results, "second", performer=cluster.performer(), clock=lambda: now[0]).join(WAIT)
    release.set()
    first.join(WAIT)

    assert cluster.performed == [ids[0], ids[0], ids[1]]  # the stop twice (idempotent), then the start once
    assert cluster.state == "started"
    assert records() == [(ids[0], "stop", "succeeded", 1), (ids[1], "start", "succeeded", 1)]
    assert (results["first"]["ran"], results["first"]["succeeded"], results["first"]["overtaken"]) == (1, 0, 1)
    assert (results["second"]["ran"], results["second"]["succeeded"]) == (2, 2)


def test_R_CLU_5_a_replayed_dead_letter_never_runs_after_a_newer_action_has_run(aws, monkeypatch):
    """A stop that went dead, then a start that succeeded: replaying the stop would leave the cluster
    stopped, against the last decision. The replay is refused, and a stop revived anyway (a replay racing the
    start) is recorded dead with the reason, never performed."""
    from chalicelib.clusters import executor
    from chalicelib.clusters.errors import PermanentClusterError
    from chalicelib.errors import Conflict
    from chalicelib.settings import reset_settings
    from chalicelib.store import models as m

    def refuse(action):
        raise PermanentClusterError("cluster refused")

    monkeypatch.setenv("CLUSTER_ACTION_MAX_ATTEMPTS", "1")
    reset_settings()
    stop = decide("stop")
    assert executor.run_for_server(SERVER, performer=refuse)["dead"] == 1
    start = decide("start")
    cluster = SlowCluster()
    assert executor.run_for_server(SERVER, performer=cluster.performer())["succeeded"] == 1

    with pytest.raises(Conflict, match=f"action {start}, decided after it, has already run"):
        executor.replay(stop, performer=cluster.performer())
    row = m.ClusterActionRow.get(SERVER, stop, consistent_read=True)
    row.doc = {**row.doc, "status": "pending", "attempts": 0}
    row.open_key, row.dead_key = "open", None
    row.save()
    result = executor.run_for_server(SERVER, performer=cluster.performer())
    assert (result["ran"], result["succeeded"], result["dead"]) == (1, 0, 1)
    assert cluster.performed == [start] and cluster.state == "started"
    action = m.ClusterActionRow.get(SERVER, stop, consistent_read=True).doc
    assert (action["status"], action["attempts"]) == ("dead", 0)
    assert action["error"].startswith(f"not run: action {start}, decided after it, has already run")


class Spent:
    """A budget that runs out once `after` actions have been performed."""

    def __init__(self, after: int) -> None:
        self.left = after

    def should_stop(self) -> bool:
        return self.left <= 0

    def performer(self, cluster: SlowCluster):
        perform = cluster.performer()

        def counted(action) -> None:
            perform(action)
            self.left -= 1
        return counted


def test_integration_7_the_drain_by_hand_stops_at_its_budget_and_says_more(aws):
    from chalicelib.clusters import executor

    ids = {server: decide("stop", server) for server in ("srv-1", "srv-2", "srv-3")}
    cluster, budget = SlowCluster(), Spent(after=2)
    first = executor.drain(performer=budget.performer(cluster), budget=budget)
    assert first == {"ran": 2, "succeeded": 2, "failed": 0, "dead": 0, "overtaken": 0, "held": 0, "more": True}
    assert cluster.performed == [ids["srv-1"], ids["srv-2"]]  # oldest first
    second = executor.drain(performer=cluster.performer())
    assert second == {"ran": 1, "succeeded": 1, "failed": 0, "dead": 0, "overtaken": 0, "held": 0, "more": False}
    assert cluster.performed == list(ids.values())


def test_R_CLU_5_a_queued_run_cut_by_its_budget_wakes_the_server_again_for_the_rest(aws):
    import json

    from chalicelib.clusters import executor
    from tests import support

    ids = [decide(kind) for kind in ("stop", "start")]
    support.take_messages(aws["queues"]["billing-cluster-actions"])
    cluster, budget = SlowCluster(), Spent(after=1)
    result = executor.from_queue_message(json.dumps({"server_id": SERVER}), budget.performer(cluster), budget)
    assert (result["ran"], result["succeeded"], result["more"]) == (1, 1, True)
    assert support.take_messages(aws["queues"]["billing-cluster-actions"]) == [{"server_id": SERVER}]
    assert cluster.performed == ids[:1]
    assert [status for _, _, status, _ in records()] == ["succeeded", "pending"]
