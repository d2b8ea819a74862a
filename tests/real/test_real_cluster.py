"""Opt-in check of KubeWorkloads stop/start against a real cluster named by KUBECONFIG (R-CLU-1, R-CLU-2)."""
import os
import uuid

import pytest

from chalicelib.clusters import rules
from chalicelib.clusters.kube import KubeWorkloads

pytestmark = pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real cluster: set KUBECONFIG")

# The stop is cluster-wide by design (R-CLU-1); on a cluster with other workloads it would scale them
# down too, if only until the start a moment later. KUBECONFIG is often set in a developer's shell, so
# such a cluster needs this second, explicit yes.
ALLOW_OTHERS = "REAL_CLUSTER_ALLOW_CLUSTER_WIDE_STOP"


def _kubeconfig_text() -> str:
    path = os.environ["KUBECONFIG"].split(os.pathsep)[0]
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        return handle.read()


def _other_workloads(apps, batch, core, own_namespace):
    protected = {ns.metadata.name for ns in core.list_namespace().items
                 if not rules.should_touch_namespace(ns.metadata.name, ns.metadata.labels)}
    found = []
    for listing in (apps.list_deployment_for_all_namespaces(), apps.list_stateful_set_for_all_namespaces(),
                    batch.list_cron_job_for_all_namespaces()):
        found += [f"{o.metadata.namespace}/{o.metadata.name}" for o in listing.items
                  if o.metadata.namespace not in protected and o.metadata.namespace != own_namespace]
    return found


def test_r_clu_1_2_stop_then_start_on_a_real_cluster():
    import yaml
    from kubernetes import client, config

    text = _kubeconfig_text()
    namespace = f"billing-realtest-{uuid.uuid4().hex[:8]}"
    api_client = config.new_client_from_config_dict(yaml.safe_load(text), persist_config=False)
    with api_client:
        core, apps, batch = client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.BatchV1Api(api_client)
        others = _other_workloads(apps, batch, core, namespace)
        if others and os.environ.get(ALLOW_OTHERS) != "1":
            pytest.skip(f"cluster has other workloads ({', '.join(others[:5])}…) that a stop would scale down; "
                        f"use a disposable cluster or set {ALLOW_OTHERS}=1")

        core.create_namespace({"metadata": {"name": namespace}})
        try:
            labels = {"app": "billing-realtest"}
            apps.create_namespaced_deployment(namespace, {
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}}},
            })
            workloads = KubeWorkloads(text, request_timeout=30)
            try:
                workloads.stop()
                stopped = apps.read_namespaced_deployment("web", namespace)
                assert stopped.spec.replicas == 0
                assert stopped.metadata.annotations[rules.SAVED_REPLICAS_ANNOTATION] == "2"
            finally:
                # Whatever happened above, give the cluster its workloads back.
                workloads.start()
            started = apps.read_namespaced_deployment("web", namespace)
            assert started.spec.replicas == 2
            assert rules.SAVED_REPLICAS_ANNOTATION not in (started.metadata.annotations or {})
        finally:
            core.delete_namespace(namespace)
