"""Node-group stop/start/destroy against moto's EKS (R-CLU-1, R-CLU-2, R-CLU-3, R-CLU-4)."""
import re
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from chalicelib.clusters import rules
from chalicelib.clusters.errors import PermanentClusterError, TransientClusterError
from chalicelib.clusters.nodegroups import destroy_cluster, start_nodegroups, stop_nodegroups

CLUSTER = "srv-0001"
KEY = rules.SAVED_SCALING_KEY


def _create_nodegroup(eks, name, min_size, desired, max_size):
    eks.create_nodegroup(
        clusterName=CLUSTER, nodegroupName=name, nodeRole="arn:aws:iam::123456789012:role/node",
        subnets=["subnet-1"], scalingConfig={"minSize": min_size, "desiredSize": desired, "maxSize": max_size},
    )


# One session for the module: building each client from a fresh default session costs ~0.25 s.
_SESSION = boto3.session.Session()


@pytest.fixture
def eks(monkeypatch):
    # moto's EC2 backend, pulled in by node groups, otherwise loads thousands of AMIs per test.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # moto validates each role ARN with a fresh boto3 Session (re-reading endpoints.json, ~0.09 s a call);
    # the shared session answers the same partitions from its cache.
    monkeypatch.setattr("moto.eks.utils.Session", lambda: _SESSION)
    with mock_aws():
        client = _SESSION.client("eks", region_name="us-east-1")
        client.create_cluster(name=CLUSTER, roleArn="arn:aws:iam::123456789012:role/eks",
                              resourcesVpcConfig={"subnetIds": ["subnet-1"]})
        _create_nodegroup(client, "general", 1, 2, 3)
        _create_nodegroup(client, "batch", 0, 1, 5)
        yield client


def scaling(eks, name):
    return eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]["scalingConfig"]


def labels(eks, name):
    return eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"].get("labels") or {}


def record_calls(eks):
    calls = []
    eks.meta.events.register("before-call.eks.*", lambda model, **_: calls.append(model.name))
    return calls


def record_updates(eks):
    """(node group, which parts) for each UpdateNodegroupConfig call, in order."""
    seen = []
    eks.meta.events.register("before-parameter-build.eks.UpdateNodegroupConfig", lambda params, **_: seen.append(
        (params["nodegroupName"], sorted(k for k in params if k in ("labels", "scalingConfig")))))
    return seen


def inject_error(eks, operation, code, status, times=1):
    """Answer the next `times` calls of `operation` with an AWS error, the way botocore would surface it."""
    left = {"n": times}

    def handler(**_):
        if left["n"] <= 0:
            return None
        left["n"] -= 1
        body = {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return SimpleNamespace(status_code=status, headers={}, content=b""), body

    eks.meta.events.register(f"before-call.eks.{operation}", handler)


def test_r_clu_1_stop_sets_min_and_desired_to_zero_keeping_max_and_saves_previous(eks):
    result = stop_nodegroups(eks, CLUSTER)

    assert result == [
        {"nodegroup": "batch", "saved": {"minSize": 0, "desiredSize": 1, "maxSize": 5},
         "scaling": {"minSize": 0, "desiredSize": 0, "maxSize": 5}, "changed": True},
        {"nodegroup": "general", "saved": {"minSize": 1, "desiredSize": 2, "maxSize": 3},
         "scaling": {"minSize": 0, "desiredSize": 0, "maxSize": 3}, "changed": True},
    ]
    assert scaling(eks, "general") == {"minSize": 0, "desiredSize": 0, "maxSize": 3}
    assert scaling(eks, "batch") == {"minSize": 0, "desiredSize": 0, "maxSize": 5}
    assert labels(eks, "general") == {KEY: "min1.desired2.max3"}
    assert labels(eks, "batch") == {KEY: "min0.desired1.max5"}


def test_r_clu_1_saving_comes_before_scaling(eks):
    seen = record_updates(eks)
    stop_nodegroups(eks, CLUSTER)
    assert seen == [("batch", ["labels"]), ("batch", ["scalingConfig"]),
                    ("general", ["labels"]), ("general", ["scalingConfig"])]


def test_r_clu_1_second_stop_keeps_saved_values(eks):
    stop_nodegroups(eks, CLUSTER)

    result = stop_nodegroups(eks, CLUSTER)

    assert [r["changed"] for r in result] == [False, False]
    assert [r["saved"] for r in result] == [{"minSize": 0, "desiredSize": 1, "maxSize": 5},
                                           {"minSize": 1, "desiredSize": 2, "maxSize": 3}]
    assert labels(eks, "general") == {KEY: "min1.desired2.max3"}
    assert labels(eks, "batch") == {KEY: "min0.desired1.max5"}
    assert scaling(eks, "general") == {"minSize": 0, "desiredSize": 0, "maxSize": 3}


def test_r_clu_4_throttled_stop_retried_finishes_with_the_values_saved_before_the_failure(eks):
    # The save goes through, the scale-down is throttled: the retry must not save the zeros it never set.
    calls = {"n": 0}

    def throttle_second(**_):
        calls["n"] += 1
        if calls["n"] == 2:
            body = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400}}
            return SimpleNamespace(status_code=400, headers={}, content=b""), body
        return None

    eks.meta.events.register("before-call.eks.UpdateNodegroupConfig", throttle_second)
    with pytest.raises(TransientClusterError) as caught:
        stop_nodegroups(eks, CLUSTER)
    assert caught.value.code == "ThrottlingException"
    assert labels(eks, "batch") == {KEY: "min0.desired1.max5"}

    stop_nodegroups(eks, CLUSTER)
    assert scaling(eks, "batch") == {"minSize": 0, "desiredSize": 0, "maxSize": 5}
    assert labels(eks, "batch") == {KEY: "min0.desired1.max5"}
    assert start_nodegroups(eks, CLUSTER)[0]["restored"] == {"minSize": 0, "desiredSize": 1, "maxSize": 5}


def test_r_clu_2_start_restores_exactly_and_removes_saved_value(eks):
    stop_nodegroups(eks, CLUSTER)
    _create_nodegroup(eks, "added-while-stopped", 2, 2, 4)

    result = start_nodegroups(eks, CLUSTER)

    assert result == [
        {"nodegroup": "added-while-stopped", "restored": None, "changed": False},
        {"nodegroup": "batch", "restored": {"minSize": 0, "desiredSize": 1, "maxSize": 5}, "changed": True},
        {"nodegroup": "general", "restored": {"minSize": 1, "desiredSize": 2, "maxSize": 3}, "changed": True},
    ]
    assert scaling(eks, "general") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert scaling(eks, "batch") == {"minSize": 0, "desiredSize": 1, "maxSize": 5}
    assert scaling(eks, "added-while-stopped") == {"minSize": 2, "desiredSize": 2, "maxSize": 4}
    assert labels(eks, "general") == {}
    assert labels(eks, "batch") == {}

    # A second start has nothing saved to restore.
    assert [r["changed"] for r in start_nodegroups(eks, CLUSTER)] == [False, False, False]
    assert scaling(eks, "general") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}


def test_r_clu_2_restore_happens_before_the_saved_value_is_removed(eks):
    stop_nodegroups(eks, CLUSTER)
    seen = record_updates(eks)
    start_nodegroups(eks, CLUSTER)
    assert seen == [("batch", ["scalingConfig"]), ("batch", ["labels"]),
                    ("general", ["scalingConfig"]), ("general", ["labels"])]


@pytest.mark.parametrize("action", [stop_nodegroups, start_nodegroups])
def test_r_clu_1_2_missing_cluster_is_permanent_with_a_clear_message(eks, action):
    with pytest.raises(PermanentClusterError, match="EKS cluster 'srv-missing' does not exist"):
        action(eks, "srv-missing")


@pytest.mark.parametrize("code,status", [("ThrottlingException", 400), ("TooManyRequestsException", 429),
                                         ("ServiceUnavailableException", 503), ("InternalFailure", 500),
                                         ("ServerException", 500)])
def test_r_clu_4_throttling_and_service_errors_are_transient(eks, code, status):
    inject_error(eks, "DescribeNodegroup", code, status)
    with pytest.raises(TransientClusterError) as caught:
        stop_nodegroups(eks, CLUSTER)
    assert caught.value.code == code


def test_r_clu_4_access_denied_is_permanent(eks):
    inject_error(eks, "UpdateNodegroupConfig", "AccessDeniedException", 403)
    with pytest.raises(PermanentClusterError) as caught:
        stop_nodegroups(eks, CLUSTER)
    assert caught.value.code == "AccessDeniedException"


def test_r_clu_3_destroy_deletes_node_groups_then_the_cluster(eks):
    calls = record_calls(eks)

    result = destroy_cluster(eks, CLUSTER)

    assert result == {"cluster": CLUSTER, "nodegroups_deleted": ["batch", "general"], "cluster_deleted": True,
                      "already_gone": False}
    deletes = [c for c in calls if c.startswith("Delete")]
    assert deletes == ["DeleteNodegroup", "DeleteNodegroup", "DeleteCluster"]
    assert eks.list_clusters()["clusters"] == []


def test_r_clu_3_destroy_twice_is_fine(eks):
    destroy_cluster(eks, CLUSTER)
    assert destroy_cluster(eks, CLUSTER) == {"cluster": CLUSTER, "nodegroups_deleted": [], "cluster_deleted": True,
                                             "already_gone": True}


def test_r_clu_3_destroy_after_a_partial_run_finishes(eks):
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="general")
    result = destroy_cluster(eks, CLUSTER)
    assert result == {"cluster": CLUSTER, "nodegroups_deleted": ["batch"], "cluster_deleted": True,
                      "already_gone": False}
    assert eks.list_clusters()["clusters"] == []


def test_r_clu_4_destroy_waits_for_node_groups_still_deleting(eks):
    # Real EKS deletes node groups asynchronously; a second delete of one under way answers ResourceInUse.
    inject_error(eks, "DeleteNodegroup", "ResourceInUseException", 409)
    calls = record_calls(eks)
    with pytest.raises(TransientClusterError, match="node groups still deleting: batch"):
        destroy_cluster(eks, CLUSTER)
    assert "DeleteCluster" not in calls
    assert destroy_cluster(eks, CLUSTER)["cluster_deleted"] is True
    assert eks.list_clusters()["clusters"] == []


def test_r_clu_4_cluster_still_in_use_during_destroy_is_transient(eks):
    inject_error(eks, "DeleteCluster", "ResourceInUseException", 409)
    with pytest.raises(TransientClusterError) as caught:
        destroy_cluster(eks, CLUSTER)
    assert caught.value.code == "ResourceInUseException"
    assert destroy_cluster(eks, CLUSTER)["cluster_deleted"] is True


def test_r_clu_1_saved_scaling_value_is_a_valid_tag_and_label_value():
    text = rules.encode_saved_scaling(1, 2, 3)
    assert text == "min1.desired2.max3"
    assert re.fullmatch(r"[A-Za-z0-9 _.:/=+\-@]{1,256}", text)  # EKS tag value
    assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?", text)  # Kubernetes label value
    assert rules.decode_saved_scaling(text) == rules.SavedScaling(1, 2, 3)
    assert rules.decode_saved_scaling(rules.encode_saved_scaling(0, 0, 100)) == (0, 0, 100)
    for bad in ("", "1,2,3", "min1.desired2", "min-1.desired2.max3"):
        with pytest.raises(ValueError):
            rules.decode_saved_scaling(bad)
    with pytest.raises(ValueError):
        rules.encode_saved_scaling(-1, 0, 1)
