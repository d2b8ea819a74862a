"""Cluster actions through the contract: a lapse stops the customer's cluster, a renewal restores it,
destruction deletes it (R-CLU-1 … R-CLU-4). Kubernetes is the fake API server on loopback, driven by
the official client; EKS and Secrets Manager are the moto server over HTTP."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.fake_kube import FakeKube
from tests.support import order_paid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_kube():
    with FakeKube() as server:
        yield server


@pytest.fixture
def cluster(api, fake_kube):
    """Server srv-k with a real-looking cluster: workloads in two customer namespaces, a protected and a
    system namespace, and two node groups; its kubeconfig in Secrets Manager."""
    from chalicelib import aws

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-k", "2026-01-01T10:00:00+08:00")
    for ns, labels in [("shop", None), ("batch", None), ("vault", {"billing/protected": "true"}), ("kube-system", None)]:
        fake_kube.add_namespace(ns, labels)
    fake_kube.add_deployment("shop", "web", replicas=3)
    fake_kube.add_statefulset("shop", "db", replicas=2)
    fake_kube.add_cronjob("batch", "report", suspend=False)
    fake_kube.add_cronjob("batch", "paused", suspend=True)
    fake_kube.add_deployment("vault", "keeper", replicas=1)
    fake_kube.add_deployment("kube-system", "coredns", replicas=2)
    eks = aws.client("eks")
    eks.create_cluster(name="srv-k", roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    for name, scaling in [("ng-a", {"minSize": 1, "desiredSize": 2, "maxSize": 3}),
                          ("ng-b", {"minSize": 0, "desiredSize": 1, "maxSize": 5})]:
        eks.create_nodegroup(clusterName="srv-k", nodegroupName=name, scalingConfig=scaling,
                             subnets=["subnet-1"], nodeRole="arn:aws:iam::123456789012:role/node")
    aws.client("secretsmanager").create_secret(Name="clusters/srv-k/kubeconfig", SecretString=fake_kube.kubeconfig_yaml())
    return eks


def scaling(eks, name):
    return eks.describe_nodegroup(clusterName="srv-k", nodegroupName=name)["nodegroup"]["scalingConfig"]


def drain(api):
    status, body = api.ops("POST", "/ops/cluster-actions/drain")
    assert status == 200, body
    return body


def test_R_CLU_1_R_CLU_2_expiry_stops_the_cluster_and_renewal_restores_it_exactly(api, cluster, fake_kube):
    api.sweep("2026-02-02T00:10:00+08:00")
    assert api.server("srv-k")["cluster_actions"][0]["status"] == "pending"
    assert drain(api) == {"ran": 1, "succeeded": 1, "failed": 0, "dead": 0, "overtaken": 0, "held": 0, "more": False}
    assert [(a["kind"], a["status"], a["attempts"]) for a in api.server("srv-k")["cluster_actions"]] == [("stop", "succeeded", 1)]
    assert (fake_kube.replicas("deployments", "shop", "web"), fake_kube.replicas("statefulsets", "shop", "db")) == (0, 0)
    assert fake_kube.get("cronjobs", "batch", "report")["spec"]["suspend"] is True
    assert fake_kube.replicas("deployments", "vault", "keeper") == 1
    assert fake_kube.replicas("deployments", "kube-system", "coredns") == 2
    assert scaling(cluster, "ng-a") == {"minSize": 0, "desiredSize": 0, "maxSize": 3}
    assert scaling(cluster, "ng-b") == {"minSize": 0, "desiredSize": 0, "maxSize": 5}
    fake_kube.add_deployment("shop", "created-while-stopped", replicas=4)
    api.pay("order.paid", order_paid("ord-r", "acc-1", "srv-k", "renewal", "2026-02-03T10:00:00+08:00", 10000, months=1))
    assert drain(api)["succeeded"] == 1
    assert (fake_kube.replicas("deployments", "shop", "web"), fake_kube.replicas("statefulsets", "shop", "db")) == (3, 2)
    assert fake_kube.get("cronjobs", "batch", "report")["spec"]["suspend"] is False
    assert fake_kube.get("cronjobs", "batch", "paused")["spec"]["suspend"] is True
    assert fake_kube.annotations("deployments", "shop", "web") == {}
    assert fake_kube.replicas("deployments", "shop", "created-while-stopped") == 4
    assert scaling(cluster, "ng-a") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert scaling(cluster, "ng-b") == {"minSize": 0, "desiredSize": 1, "maxSize": 5}


def test_R_CLU_3_destruction_deletes_node_groups_and_cluster(api, cluster, fake_kube):
    api.sweep("2026-02-02T00:10:00+08:00")
    api.sweep("2026-02-10T00:10:00+08:00")
    assert drain(api)["succeeded"] == 2
    assert api.server("srv-k")["state"] == "destroyed"
    assert cluster.list_clusters()["clusters"] == []


def test_R_CLU_4_outage_ends_in_a_dead_letter_that_a_replay_completes(api, cluster, fake_kube):
    api.sweep("2026-02-02T00:10:00+08:00")
    fake_kube.fail_next(count=1000, status=503)
    for attempt in range(1, 6):
        result = drain(api)
        assert result["failed"] == 1
        view = api.server("srv-k")
        assert view["cluster_actions"][0]["attempts"] == attempt
    assert view["cluster_actions"][0]["status"] == "dead"
    assert "503" in view["cluster_actions"][0]["error"]
    assert view["state"] == "stopped"  # the decision stands; the record says the cluster did not stop
    assert scaling(cluster, "ng-a") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert drain(api)["ran"] == 0
    status, letters = api.ops("GET", "/ops/dead-letters")
    assert [(i["server_id"], i["kind"], i["attempts"]) for i in letters["items"]] == [("srv-k", "stop", 5)]
    fake_kube.clear_failures()
    status, replayed = api.ops("POST", f"/ops/dead-letters/{letters['items'][0]['id']}/replay")
    assert status == 200
    assert replayed["action"]["status"] == "succeeded"
    assert fake_kube.replicas("deployments", "shop", "web") == 0
    assert api.ops("GET", "/ops/dead-letters")[1]["items"] == []


def test_R_CLU_4_missing_credentials_fail_with_a_clear_reason_and_are_kept(api):
    api.plan("std", 10000, 20)
    api.buy_monthly("srv-n", "2026-01-01T10:00:00+08:00")
    api.sweep("2026-02-02T00:10:00+08:00")
    assert drain(api)["failed"] == 1
    action = api.server("srv-n")["cluster_actions"][0]
    assert action["status"] == "failed"
    assert "no kubeconfig for server srv-n" in action["error"]


def test_R_CLU_5_a_second_delivery_finds_the_lane_held_and_leaves_the_server_to_its_holder(api):
    """SQS delivers a wake-up at least once: a second worker may take the same server while the first is
    performing its action. It performs nothing and records nothing; the holder's record stands."""
    from chalicelib.clusters import executor

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-n", "2026-01-01T10:00:00+08:00")
    api.sweep("2026-02-02T00:10:00+08:00")
    performed = []

    def second_delivery_meanwhile(action):
        performed.append(action.kind)
        assert executor.run_for_server(action.server_id, performer=lambda a: performed.append(a.kind)) == {
            "ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0, "held": 1, "more": False}

    assert executor.run_for_server("srv-n", performer=second_delivery_meanwhile) == {
        "ran": 1, "succeeded": 1, "failed": 0, "dead": 0, "overtaken": 0, "held": 0, "more": False}
    assert performed == ["stop"]  # once, by the holder
    action = api.server("srv-n")["cluster_actions"][0]
    assert (action["kind"], action["status"], action["attempts"]) == ("stop", "succeeded", 1)
    assert drain(api)["ran"] == 0


def test_cluster_actions_queue_function_runs_the_server_actions(api, cluster, fake_kube):
    api.sweep("2026-02-02T00:10:00+08:00")
    event = api.client.events.generate_sqs_event(['{"server_id": "srv-k"}'], queue_name="billing-cluster-actions")
    api.client.lambda_.invoke("cluster_actions", event)
    assert api.server("srv-k")["cluster_actions"][0]["status"] == "succeeded"
    assert fake_kube.replicas("deployments", "shop", "web") == 0


def test_importing_the_app_does_not_import_kubernetes():
    """Cold start: only the cluster-action path pays for the kubernetes client."""
    code = "import sys, app; print('kubernetes' in sys.modules, 'chalicelib.clusters.kube' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "functions", capture_output=True, text=True,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.split() == ["False", "False"]
