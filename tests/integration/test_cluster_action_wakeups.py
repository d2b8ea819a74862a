"""Nothing lost (issue 19, R-CLU-4): a wake-up SQS never got or refused is logged and counted, and the
`cluster_actions_rewake` schedule wakes pending actions older than five minutes again."""
from __future__ import annotations

import time

import pytest

from tests import support
from tests.integration.test_cluster_action_order import decide
from tests.integration.test_observability import logs, metrics, printed

MINUTES_5 = 300 * 1_000_000_000


def queued(aws_created) -> list[dict]:
    return support.take_messages(aws_created["queues"]["billing-cluster-actions"])


def unreachable(**_):
    raise ConnectionError("SQS endpoint unreachable")


def refused(Entries, **_):
    return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KMS.ThrottlingException", "SenderFault": False,
                                          "Message": "throttled"} for e in Entries]}


@pytest.mark.parametrize("send", [unreachable, refused], ids=["unreachable", "refused"])
def test_issue_19_a_lost_wake_up_is_logged_and_counted_and_the_action_stays_pending(api, aws, capfd, monkeypatch,
                                                                                  send):
    from chalicelib import aws as clients

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-w", "2026-01-01T10:00:00+08:00")
    queued(aws)
    printed(capfd)
    monkeypatch.setattr(clients.client("sqs"), "send_message_batch", send)
    api.sweep("2026-02-02T00:10:00+08:00")  # R-LIFE-1: the stop is recorded; its wake-up is lost
    objects = printed(capfd)
    assert metrics(objects)[("ClusterActionWakeupsFailed", ())] == 1
    [line] = logs(objects, "1 cluster-action wake-ups not sent; their actions stay pending until the rewake schedule")
    assert line["level"] == "WARNING"
    monkeypatch.undo()
    assert queued(aws) == []
    assert [(a["kind"], a["status"]) for a in api.server("srv-w")["cluster_actions"]] == [("stop", "pending")]


def test_issue_19_the_rewake_wakes_pending_actions_older_than_five_minutes_only(aws):
    """srv-old's stop waited more than 5 minutes: woken. srv-new's was decided after the cut: left to its own
    wake-up. srv-failed's oldest open action failed: SQS delivers its message again, so it is left alone even
    though a pending start waits behind it."""
    from chalicelib.clusters import executor, queue
    from chalicelib.clusters.errors import PermanentClusterError

    def refuse(action):
        raise PermanentClusterError("cluster refused")

    old_id = decide("stop", "srv-old")
    decide("stop", "srv-failed")
    assert executor.run_for_server("srv-failed", performer=refuse)["failed"] == 1
    decide("start", "srv-failed")
    new_id = decide("stop", "srv-new")
    queued(aws)

    def decided_ns(action_id: str) -> int:
        return int(action_id.split("-")[0])

    assert queue.rewake(now_ns=decided_ns(old_id) + MINUTES_5) == {"woken": 0, "failed": 0}  # exactly 5 minutes
    assert queue.rewake(now_ns=decided_ns(new_id) + MINUTES_5) == {"woken": 1, "failed": 0}
    assert queued(aws) == [{"server_id": "srv-old"}]
    assert queue.rewake(now_ns=decided_ns(new_id) + MINUTES_5 + 1) == {"woken": 2, "failed": 0}
    assert sorted(m["server_id"] for m in queued(aws)) == ["srv-new", "srv-old"]
