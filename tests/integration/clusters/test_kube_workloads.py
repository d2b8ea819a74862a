"""KubeWorkloads through the official Kubernetes client against the loopback fake API (R-CLU-1, R-CLU-2, R-CLU-4)."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.clusters import kube, rules
from chalicelib.clusters.errors import PermanentClusterError, TransientClusterError
from chalicelib.clusters.kube import KubeWorkloads
from tests.fakes.fake_kube import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH

REPLICAS = rules.SAVED_REPLICAS_ANNOTATION
SUSPEND = rules.SAVED_SUSPEND_ANNOTATION


@pytest.fixture
def cluster(fake_kube):
    """A customer cluster: two customer namespaces, the system ones, and a protected one."""
    for name in ("default", "shop", "kube-system", "kube-public", "kube-node-lease"):
        fake_kube.add_namespace(name)
    fake_kube.add_namespace("billing-agent", {rules.PROTECTED_LABEL_KEY: "true"})
    fake_kube.add_namespace("not-protected", {rules.PROTECTED_LABEL_KEY: "false"})
    fake_kube.add_deployment("default", "web", replicas=3)
    fake_kube.add_statefulset("default", "db", replicas=2)
    fake_kube.add_cronjob("default", "nightly", suspend=False)
    fake_kube.add_cronjob("default", "paused", suspend=True)
    fake_kube.add_cronjob("default", "unset", suspend=None)
    fake_kube.add_deployment("shop", "api", replicas=5)
    fake_kube.add_deployment("not-protected", "worker", replicas=1)
    fake_kube.add_deployment("kube-system", "coredns", replicas=2)
    fake_kube.add_deployment("kube-public", "x", replicas=1)
    fake_kube.add_deployment("kube-node-lease", "y", replicas=1)
    fake_kube.add_deployment("billing-agent", "agent", replicas=1)
    fake_kube.add_cronjob("billing-agent", "report", suspend=False)
    return fake_kube


def workloads(fake, timeout=5.0):
    return KubeWorkloads(fake.kubeconfig_yaml(), request_timeout=timeout)


def test_r_clu_1_stop_scales_to_zero_and_suspends_cronjobs_saving_previous_values(cluster):
    result = workloads(cluster).stop()

    assert result == {"deployments": 3, "statefulsets": 1, "cronjobs": 3, "unchanged": 0,
                      "namespaces_skipped": ["billing-agent", "kube-node-lease", "kube-public", "kube-system"]}
    assert cluster.replicas("deployments", "default", "web") == 0
    assert cluster.annotations("deployments", "default", "web") == {REPLICAS: "3"}
    assert cluster.replicas("statefulsets", "default", "db") == 0
    assert cluster.annotations("statefulsets", "default", "db") == {REPLICAS: "2"}
    assert cluster.replicas("deployments", "shop", "api") == 0
    assert cluster.annotations("deployments", "shop", "api") == {REPLICAS: "5"}
    assert cluster.replicas("deployments", "not-protected", "worker") == 0
    for name, saved in (("nightly", "false"), ("paused", "true"), ("unset", "false")):
        assert cluster.get("cronjobs", "default", name)["spec"]["suspend"] is True
        assert cluster.annotations("cronjobs", "default", name) == {SUSPEND: saved}


def test_r_clu_1_system_and_protected_namespaces_are_untouched(cluster):
    workloads(cluster).stop()

    assert cluster.replicas("deployments", "kube-system", "coredns") == 2
    assert cluster.replicas("deployments", "kube-public", "x") == 1
    assert cluster.replicas("deployments", "kube-node-lease", "y") == 1
    assert cluster.replicas("deployments", "billing-agent", "agent") == 1
    assert cluster.get("cronjobs", "billing-agent", "report")["spec"]["suspend"] is False
    assert cluster.annotations("deployments", "kube-system", "coredns") == {}
    assert cluster.annotations("deployments", "billing-agent", "agent") == {}
    # Not even listed: nothing in those namespaces is read or written.
    untouched = ("/kube-system/", "/kube-public/", "/kube-node-lease/", "/billing-agent/")
    assert [r.path for r in cluster.requests if any(ns in r.path for ns in untouched)] == []


def test_r_clu_1_second_stop_never_overwrites_saved_values(cluster):
    kw = workloads(cluster)
    kw.stop()
    # Someone scales a stopped workload up and un-suspends a CronJob by hand.
    cluster.set_spec("deployments", "default", "web", replicas=4)
    cluster.set_spec("cronjobs", "default", "nightly", suspend=False)

    result = kw.stop()

    assert result == {"deployments": 1, "statefulsets": 0, "cronjobs": 1, "unchanged": 5,
                      "namespaces_skipped": ["billing-agent", "kube-node-lease", "kube-public", "kube-system"]}
    assert cluster.replicas("deployments", "default", "web") == 0
    assert cluster.annotations("deployments", "default", "web") == {REPLICAS: "3"}
    assert cluster.get("cronjobs", "default", "nightly")["spec"]["suspend"] is True
    assert cluster.annotations("cronjobs", "default", "nightly") == {SUSPEND: "false"}
    assert cluster.annotations("statefulsets", "default", "db") == {REPLICAS: "2"}

    cluster.clear_requests()
    assert kw.stop()["unchanged"] == 7
    assert cluster.patches() == []


def test_r_clu_2_start_restores_exact_values_and_removes_annotations(cluster):
    kw = workloads(cluster)
    kw.stop()

    result = kw.start()

    # R-CLU-2 (reading): the protected namespace is looked at too; nothing there carries a saved value.
    assert result == {"deployments": 3, "statefulsets": 1, "cronjobs": 3, "unchanged": 2,
                      "namespaces_skipped": ["kube-node-lease", "kube-public", "kube-system"]}
    assert cluster.replicas("deployments", "default", "web") == 3
    assert cluster.replicas("statefulsets", "default", "db") == 2
    assert cluster.replicas("deployments", "shop", "api") == 5
    assert cluster.replicas("deployments", "not-protected", "worker") == 1
    assert cluster.get("cronjobs", "default", "nightly")["spec"]["suspend"] is False
    assert cluster.get("cronjobs", "default", "paused")["spec"]["suspend"] is True
    assert cluster.get("cronjobs", "default", "unset")["spec"]["suspend"] is False
    for plural, ns, name in (("deployments", "default", "web"), ("statefulsets", "default", "db"),
                             ("deployments", "shop", "api"), ("cronjobs", "default", "nightly"),
                             ("cronjobs", "default", "paused"), ("cronjobs", "default", "unset")):
        assert "annotations" not in cluster.get(plural, ns, name)["metadata"], (plural, name)
    # Untouched by stop, untouched by start.
    assert cluster.replicas("deployments", "billing-agent", "agent") == 1
    assert cluster.get("cronjobs", "billing-agent", "report")["spec"]["suspend"] is False

    cluster.clear_requests()
    assert kw.start()["unchanged"] == 9
    assert cluster.patches() == []


def test_r_clu_2_objects_created_while_stopped_are_left_alone(cluster):
    kw = workloads(cluster)
    kw.stop()
    cluster.add_deployment("default", "new-web", replicas=2)
    cluster.add_cronjob("default", "new-job", suspend=False)

    kw.start()

    assert cluster.replicas("deployments", "default", "new-web") == 2
    assert cluster.get("cronjobs", "default", "new-job")["spec"]["suspend"] is False
    assert [p.path for p in cluster.patches() if "new-" in p.path] == []


def test_r_clu_2_reading_start_restores_a_namespace_protected_after_the_stop(cluster):
    kw = workloads(cluster)
    kw.stop()
    cluster.add_namespace("shop", {rules.PROTECTED_LABEL_KEY: "true"})

    kw.start()

    assert cluster.replicas("deployments", "shop", "api") == 5
    assert cluster.annotations("deployments", "shop", "api") == {}


def test_r_clu_1_patches_use_a_real_content_type_and_guard_the_save_with_resource_version(cluster):
    workloads(cluster).stop()

    patches = cluster.patches()
    assert {p.content_type for p in patches} == {MERGE_PATCH}
    web = next(p for p in patches if p.path == "/apis/apps/v1/namespaces/default/deployments/web")
    assert web.body["spec"] == {"replicas": 0}
    assert web.body["metadata"]["annotations"] == {REPLICAS: "3"}
    assert set(web.body["metadata"]) == {"annotations", "resourceVersion"}
    assert "/apis/batch/v1/namespaces/default/cronjobs/nightly" in {p.path for p in patches}


def test_r_clu_1_lists_are_paged(cluster, monkeypatch):
    monkeypatch.setattr(kube, "PAGE_SIZE", 2)
    for i in range(4):
        cluster.add_deployment("shop", f"extra-{i}", replicas=i + 1)

    result = workloads(cluster).stop()

    assert result["deployments"] == 7
    assert [cluster.replicas("deployments", "shop", f"extra-{i}") for i in range(4)] == [0, 0, 0, 0]
    assert [cluster.annotations("deployments", "shop", f"extra-{i}")[REPLICAS] for i in range(4)] == ["1", "2", "3", "4"]
    shop_lists = [r.query for r in cluster.requests if r.path == "/apis/apps/v1/namespaces/shop/deployments"]
    assert [q.get("continue") for q in shop_lists] == [None, ["2"], ["4"]]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_r_clu_4_server_errors_and_throttling_are_transient_and_a_retry_finishes(cluster, status):
    cluster.fail_next(1, status=status, method="PATCH", path_contains="/deployments/")
    kw = workloads(cluster)

    with pytest.raises(TransientClusterError) as caught:
        kw.stop()
    assert caught.value.status == status
    assert caught.value.transient is True

    # The outage is over: a retry of the same request completes with the right saved values.
    kw.stop()
    assert cluster.replicas("deployments", "default", "web") == 0
    assert cluster.annotations("deployments", "default", "web") == {REPLICAS: "3"}


def test_r_clu_4_conflict_is_transient(cluster):
    cluster.fail_next(1, status=409, method="PATCH")
    with pytest.raises(TransientClusterError) as caught:
        workloads(cluster).stop()
    assert caught.value.status == 409


def test_r_clu_4_forbidden_is_permanent(cluster):
    cluster.fail_next(1, status=403, method="PATCH")
    with pytest.raises(PermanentClusterError) as caught:
        workloads(cluster).stop()
    assert caught.value.status == 403
    assert caught.value.transient is False


def test_r_clu_4_wrong_token_is_permanent(cluster):
    kw = KubeWorkloads(cluster.kubeconfig_yaml(token="stale"), request_timeout=5)
    with pytest.raises(PermanentClusterError) as caught:
        kw.stop()
    assert caught.value.status == 401


def test_r_clu_4_timeout_is_transient(cluster):
    cluster.hang_next(1, path_contains="/deployments")
    kw = workloads(cluster, timeout=0.3)
    try:
        with pytest.raises(TransientClusterError) as caught:
            kw.stop()
        assert "Timeout" in str(caught.value)
    finally:
        cluster.release()
    assert kw.stop()["deployments"] == 3


def test_r_clu_4_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    with pytest.raises(TransientClusterError):
        KubeWorkloads(config, request_timeout=2).stop()


@pytest.mark.parametrize("text", ["{not yaml: [", "just a string", "apiVersion: v1\nkind: Config\n"])
def test_r_clu_4_unusable_kubeconfig_is_permanent(text):
    with pytest.raises(PermanentClusterError):
        KubeWorkloads(text).stop()


def test_r_clu_1_object_deleted_between_list_and_patch_is_skipped(cluster):
    cluster.fail_next(1, status=404, method="PATCH", path_contains="/deployments/web")
    result = workloads(cluster).stop()
    assert result["deployments"] == 2
    assert cluster.replicas("deployments", "shop", "api") == 0


def test_r_clu_2_a_corrupt_saved_value_is_permanent(fake_kube):
    fake_kube.add_namespace("default")
    fake_kube.add_deployment("default", "web", replicas=0, annotations={REPLICAS: "three"})
    with pytest.raises(PermanentClusterError, match="three"):
        workloads(fake_kube).start()
    assert fake_kube.replicas("deployments", "default", "web") == 0


def test_fake_honours_json_patch_and_strategic_merge_through_the_official_client(fake_kube):
    """The fake must accept what the client sends by default, so other tests can rely on it."""
    from kubernetes import client

    fake_kube.add_namespace("default")
    fake_kube.add_deployment("default", "web", replicas=3, annotations={"a": "1", "b": "2"})
    with KubeWorkloads(fake_kube.kubeconfig_yaml())._api() as api:
        apps = api.get("AppsV1Api")
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
        apps.patch_namespaced_deployment("web", "default", [
            {"op": "remove", "path": "/metadata/annotations/a"},
            {"op": "replace", "path": "/spec/replicas", "value": 6},
            {"op": "add", "path": "/metadata/annotations/c", "value": "3"},
        ])
        scale = apps.read_namespaced_deployment_scale("web", "default")
        assert isinstance(scale, client.V1Scale)
        with pytest.raises(client.exceptions.ApiException) as caught:
            apps.read_namespaced_deployment("missing", "default")
    assert caught.value.status == 404
    assert scale.spec.replicas == 6
    assert fake_kube.annotations("deployments", "default", "web") == {"b": "2", "c": "3"}
    assert [p.content_type for p in fake_kube.patches()] == [STRATEGIC_MERGE_PATCH, JSON_PATCH]


def test_rules_saved_values_round_trip():
    """R-CLU-1/2: saved annotation texts decode to exactly what was encoded."""
    assert rules.encode_saved_replicas(None) == "1"
    assert rules.decode_saved_replicas(rules.encode_saved_replicas(7)) == 7
    assert rules.decode_saved_suspend(rules.encode_saved_suspend(None)) is False
    assert rules.decode_saved_suspend(rules.encode_saved_suspend(True)) is True
    with pytest.raises(ValueError):
        rules.decode_saved_replicas("-1")
    with pytest.raises(ValueError):
        rules.decode_saved_suspend("yes")
    assert rules.should_touch_namespace("default", None) is True
    assert rules.should_touch_namespace("kube-system", {}) is False
    assert rules.should_touch_namespace("x", {"billing/protected": "true"}) is False
    assert rules.should_touch_namespace("x", {"billing/protected": "false"}) is True


def test_importing_the_adapters_does_not_import_kubernetes():
    """Cold start: the app imports these modules; the kubernetes client loads only when an action runs."""
    functions = Path(__file__).resolve().parents[3] / "functions"
    code = ("import sys; import chalicelib.clusters.kube, chalicelib.clusters.nodegroups, "
            "chalicelib.clusters.rules, chalicelib.clusters.errors; "
            "assert 'kubernetes' not in sys.modules, 'kubernetes imported'")
    subprocess.run([sys.executable, "-c", code], cwd=functions, check=True, timeout=60)
