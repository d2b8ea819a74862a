"""Stop and start a cluster's workloads through the official Kubernetes client, saving previous values in annotations (R-CLU-1, R-CLU-2)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from . import rules
from .errors import ClusterActionError, PermanentClusterError, TransientClusterError

# Merge patch (RFC 7386) deletes an annotation with `null` and works the same on every resource kind.
MERGE_PATCH = "application/merge-patch+json"

# Lists are paged so a large cluster does not come back in one response.
PAGE_SIZE = 500

# plural -> (API class name, list method, patch method); scaled workloads first, then CronJobs.
_SCALED_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("deployments", "AppsV1Api", "list_namespaced_deployment", "patch_namespaced_deployment"),
    ("statefulsets", "AppsV1Api", "list_namespaced_stateful_set", "patch_namespaced_stateful_set"),
)
_CRONJOBS = ("cronjobs", "BatchV1Api", "list_namespaced_cron_job", "patch_namespaced_cron_job")


def _is_transient_status(status: int) -> bool:
    """R-CLU-4: throttling, write conflicts and server errors may succeed on a later try."""
    return status in (409, 429) or status >= 500


def translate_error(exc: BaseException, what: str) -> ClusterActionError:
    """Map a client-side exception to a Transient/Permanent cluster error (R-CLU-4)."""
    if isinstance(exc, ClusterActionError):
        return exc
    from kubernetes.client.exceptions import ApiException
    import urllib3.exceptions as u3

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = (exc.reason or "").strip()
        if status == 0:
            # The client reports TLS failures and unusable requests with status 0: a bad certificate stays bad.
            return PermanentClusterError(f"{what}: {reason}", status=0)
        message = f"{what}: HTTP {status} {reason}"
        if _is_transient_status(status):
            return TransientClusterError(message, status=status)
        return PermanentClusterError(message, status=status)
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, u3.SSLError):
        return PermanentClusterError(f"{what}: TLS error: {exc}")
    if isinstance(exc, (u3.HTTPError, OSError)):
        # Timeouts, refused or reset connections, protocol errors: the API may be back soon.
        return TransientClusterError(f"{what}: {type(exc).__name__}: {exc}")
    return PermanentClusterError(f"{what}: {type(exc).__name__}: {exc}")


class KubeWorkloads:
    """Workload side of a cluster stop/start; node groups live in `nodegroups.py`."""

    def __init__(self, kubeconfig_yaml: str, request_timeout: float = 10.0):
        self._kubeconfig_yaml = kubeconfig_yaml
        self._request_timeout = request_timeout

    # ---- public ----------------------------------------------------------
    def stop(self) -> dict:
        """R-CLU-1: scale Deployments/StatefulSets to 0 and suspend CronJobs outside system and protected namespaces.

        The previous value is written in the same patch that changes it (one atomic write, guarded by
        the object's resourceVersion), so there is never a stopped object without its saved value.
        An object that already carries a saved value keeps it: a second stop only re-asserts 0/suspended.
        Returns counts of objects changed now, objects already stopped, and the namespaces skipped.
        """
        return self._walk(rules.should_touch_namespace, _stop_scaled_patch, _stop_cronjob_patch)

    def start(self) -> dict:
        """R-CLU-2: restore exactly the saved replicas / suspend values and remove the saved annotations.

        Objects without a saved value (created while stopped, or never stopped) are left alone.
        Call it after the node groups are restored, so the restored pods have nodes to land on.
        """
        return self._walk(rules.should_restore_namespace, _start_scaled_patch, _start_cronjob_patch)

    def _walk(self, include_namespace, scaled_patch, cronjob_patch) -> dict:
        """Patch every workload of the included namespaces with the patch its kind's builder makes."""
        result: dict[str, Any] = {"deployments": 0, "statefulsets": 0, "cronjobs": 0, "unchanged": 0,
                                  "namespaces_skipped": []}
        kinds = [(kind, scaled_patch) for kind in _SCALED_KINDS] + [(_CRONJOBS, cronjob_patch)]
        with self._api() as api:
            namespaces, result["namespaces_skipped"] = self._namespaces(api, include_namespace)
            for namespace in namespaces:
                for (plural, api_name, list_name, patch_name), make_patch in kinds:
                    for obj in self._list(api, api_name, list_name, namespace, plural):
                        self._apply(api, api_name, patch_name, plural, obj, make_patch(obj), result)
        return result

    # ---- client plumbing -------------------------------------------------
    @contextmanager
    def _api(self) -> Iterator[Any]:
        import yaml
        from kubernetes import client, config

        try:
            config_dict = yaml.safe_load(self._kubeconfig_yaml)
        except yaml.YAMLError as exc:
            raise PermanentClusterError(f"kubeconfig is not valid YAML: {exc}") from None
        if not isinstance(config_dict, dict):
            raise PermanentClusterError("kubeconfig is not a YAML mapping")
        configuration = client.Configuration()
        try:
            config.load_kube_config_from_dict(config_dict, client_configuration=configuration,
                                              persist_config=False)
        except Exception as exc:  # ConfigException, or a KeyError/TypeError from a malformed document
            raise PermanentClusterError(f"kubeconfig cannot be used: {type(exc).__name__}: {exc}") from None
        # Retries belong to the action queue (R-CLU-4); urllib3's own would multiply the timeout.
        configuration.retries = False
        with client.ApiClient(configuration) as api_client:
            yield _Apis(client, api_client)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self._request_timeout, **kwargs)
        except Exception as exc:
            raise translate_error(exc, what) from exc

    def _namespaces(self, api: "_Apis", keep: Callable[[str, Optional[dict]], bool]) -> tuple[list[str], list[str]]:
        kept, skipped = [], []
        for ns in self._paged("list namespaces", api.get("CoreV1Api").list_namespace):
            name = ns.metadata.name
            (kept if keep(name, ns.metadata.labels) else skipped).append(name)
        return kept, sorted(skipped)

    def _list(self, api: "_Apis", api_name: str, list_name: str, namespace: str, plural: str) -> Iterator[Any]:
        fn = getattr(api.get(api_name), list_name)
        yield from self._paged(f"list {plural} in {namespace}", fn, namespace)

    def _paged(self, what: str, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        token: Optional[str] = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
            if token:
                kwargs["_continue"] = token
            page = self._call(what, fn, *args, **kwargs)
            yield from page.items or []
            token = getattr(page.metadata, "var_continue", None) if page.metadata else None
            if not token:
                return

    def _apply(self, api: "_Apis", api_name: str, patch_name: str, plural: str, obj: Any,
               patch: Optional[dict], result: dict) -> None:
        if patch is None:
            result["unchanged"] += 1
            return
        meta = obj.metadata
        what = f"patch {plural} {meta.namespace}/{meta.name}"
        try:
            fn = getattr(api.get(api_name), patch_name)
            self._call(what, fn, meta.name, meta.namespace, patch, _content_type=MERGE_PATCH)
        except ClusterActionError as exc:
            if exc.status == 404:
                return  # deleted since the list: nothing left to stop or start
            raise
        result[plural] += 1


class _Apis:
    """One API object per group, built on first use so only the groups needed are loaded."""

    def __init__(self, client_module: Any, api_client: Any):
        self._client = client_module
        self._api_client = api_client
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = getattr(self._client, name)(self._api_client)
        return self._cache[name]


# ---- patches: pure decisions from an object's current state ---------------

def _annotations(obj: Any) -> dict:
    return dict(obj.metadata.annotations or {})


def _stop_scaled_patch(obj: Any) -> Optional[dict]:
    """R-CLU-1: save replicas once and scale to 0; None when nothing needs writing."""
    saved = _annotations(obj).get(rules.SAVED_REPLICAS_ANNOTATION)
    replicas = obj.spec.replicas
    if saved is not None:
        # Second stop: the saved value is never overwritten; only undo a scale-up made while stopped.
        return None if replicas == 0 else {"spec": {"replicas": 0}}
    return {
        # The resourceVersion makes the write fail (409, retried) if someone scaled it since we read it.
        "metadata": {"resourceVersion": obj.metadata.resource_version,
                     "annotations": {rules.SAVED_REPLICAS_ANNOTATION: rules.encode_saved_replicas(replicas)}},
        "spec": {"replicas": 0},
    }


def _stop_cronjob_patch(obj: Any) -> Optional[dict]:
    """R-CLU-1: save `spec.suspend` once (unset counts as false) and suspend."""
    saved = _annotations(obj).get(rules.SAVED_SUSPEND_ANNOTATION)
    suspend = obj.spec.suspend
    if saved is not None:
        return None if suspend is True else {"spec": {"suspend": True}}
    return {
        "metadata": {"resourceVersion": obj.metadata.resource_version,
                     "annotations": {rules.SAVED_SUSPEND_ANNOTATION: rules.encode_saved_suspend(suspend)}},
        "spec": {"suspend": True},
    }


def _start_scaled_patch(obj: Any) -> Optional[dict]:
    """R-CLU-2: restore the saved replicas and drop the annotation in one write; None if nothing was saved."""
    saved = _annotations(obj).get(rules.SAVED_REPLICAS_ANNOTATION)
    if saved is None:
        return None
    try:
        replicas = rules.decode_saved_replicas(saved)
    except ValueError as exc:
        raise PermanentClusterError(f"{obj.metadata.namespace}/{obj.metadata.name}: {exc}") from None
    return {"metadata": {"annotations": {rules.SAVED_REPLICAS_ANNOTATION: None}},
            "spec": {"replicas": replicas}}


def _start_cronjob_patch(obj: Any) -> Optional[dict]:
    """R-CLU-2: restore the saved `spec.suspend` and drop the annotation in one write; None if nothing was saved."""
    saved = _annotations(obj).get(rules.SAVED_SUSPEND_ANNOTATION)
    if saved is None:
        return None
    try:
        suspend = rules.decode_saved_suspend(saved)
    except ValueError as exc:
        raise PermanentClusterError(f"{obj.metadata.namespace}/{obj.metadata.name}: {exc}") from None
    return {"metadata": {"annotations": {rules.SAVED_SUSPEND_ANNOTATION: None}},
            "spec": {"suspend": suspend}}
