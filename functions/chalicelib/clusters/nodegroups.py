"""Stop, start and destroy a cluster's managed node groups through a boto3 `eks` client (R-CLU-1, R-CLU-2, R-CLU-3).

Where the previous scaling is kept: EKS can tag a node group (`tag_resource` on its ARN), but moto 5.2.5
tags clusters only (TagResource/ListTagsForResource/UntagResource on a node-group ARN answer
ResourceNotFoundException), so the saved min/desired/max is kept in a node-group *label* instead
(`update_nodegroup_config(labels=...)`), which moto stores and `describe_nodegroup` returns. The value format
(`rules.encode_saved_scaling`) is valid both as a label and as a tag, so moving to tags changes two calls only.

EKS refuses labels and scaling in one update ("only one type of update"), so saving and scaling are two
updates; on real EKS the second may meet `ResourceInUseException` while the first is still applying.
That is mapped to TransientClusterError, and every step is idempotent, so the queue's retry finishes the job.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

from . import rules
from .errors import ClusterActionError, PermanentClusterError, TransientClusterError

# R-CLU-4: error codes a later try can get past (throttling, service trouble, an update still applying).
TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "ServiceUnavailableException", "ServiceUnavailable", "InternalFailure", "InternalServerError",
    "ServerException", "RequestTimeout", "RequestTimeoutException", "ResourceInUseException",
})
NOT_FOUND = "ResourceNotFoundException"


def translate_error(exc: BaseException, what: str) -> ClusterActionError:
    """Map a botocore error to a Transient/Permanent cluster error (R-CLU-4)."""
    if isinstance(exc, ClusterActionError):
        return exc
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = f"{what}: {code}: {error.get('Message', '')}".rstrip(": ")
        if code in TRANSIENT_CODES or (status is not None and (status == 429 or status >= 500)):
            return TransientClusterError(message, status=status, code=code)
        return PermanentClusterError(message, status=status, code=code)
    if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError)):
        # Endpoint unreachable, connect/read timeouts, connection closed.
        return TransientClusterError(f"{what}: {type(exc).__name__}: {exc}")
    return PermanentClusterError(f"{what}: {type(exc).__name__}: {exc}")


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise translate_error(exc, what) from exc


def _is_not_found(exc: ClusterActionError) -> bool:
    return exc.code == NOT_FOUND


def _require_cluster(eks: Any, cluster_name: str) -> None:
    # moto's list_nodegroups fails with a KeyError for a missing cluster; asking first gives one clear answer.
    try:
        _call(f"describe cluster {cluster_name}", eks.describe_cluster, name=cluster_name)
    except ClusterActionError as exc:
        if _is_not_found(exc):
            raise PermanentClusterError(f"EKS cluster {cluster_name!r} does not exist", status=exc.status,
                                        code=exc.code) from exc
        raise


def _nodegroup_names(eks: Any, cluster_name: str) -> list[str]:
    names: list[str] = []
    paginator = eks.get_paginator("list_nodegroups")
    try:
        for page in paginator.paginate(clusterName=cluster_name):
            names.extend(page.get("nodegroups", []))
    except Exception as exc:
        raise translate_error(exc, f"list node groups of {cluster_name}") from exc
    return sorted(names)


def _describe(eks: Any, cluster_name: str, name: str) -> Optional[dict]:
    try:
        return _call(f"describe node group {cluster_name}/{name}", eks.describe_nodegroup,
                     clusterName=cluster_name, nodegroupName=name)["nodegroup"]
    except ClusterActionError as exc:
        if _is_not_found(exc):
            return None  # deleted since the list
        raise


def _scaling(nodegroup: dict) -> rules.SavedScaling:
    config = nodegroup.get("scalingConfig") or {}
    return rules.SavedScaling(int(config.get("minSize", 0)), int(config.get("desiredSize", 0)),
                              int(config.get("maxSize", 0)))


def _as_config(scaling: rules.SavedScaling) -> dict:
    return {"minSize": scaling.min_size, "desiredSize": scaling.desired_size, "maxSize": scaling.max_size}


def _live_nodegroups(eks: Any, cluster_name: str) -> Iterator[tuple[str, dict]]:
    """The cluster's node groups that exist and are not being deleted, with their descriptions."""
    _require_cluster(eks, cluster_name)
    for name in _nodegroup_names(eks, cluster_name):
        nodegroup = _describe(eks, cluster_name, name)
        if nodegroup is not None and nodegroup.get("status") != "DELETING":
            yield name, nodegroup


def stop_nodegroups(eks: Any, cluster_name: str) -> list[dict]:
    """R-CLU-1: save each node group's min/desired/max, then set min 0 / desired 0 with max unchanged.

    A node group that already carries a saved value keeps it (a second stop never saves zeros).
    Returns one entry per node group: name, the saved scaling, and whether this call changed anything.
    """
    results = []
    for name, nodegroup in _live_nodegroups(eks, cluster_name):
        what = f"stop node group {cluster_name}/{name}"
        current = _scaling(nodegroup)
        labels = nodegroup.get("labels") or {}
        changed = False
        if rules.SAVED_SCALING_KEY in labels:
            saved = _decode(labels[rules.SAVED_SCALING_KEY], what)
        else:
            saved = current
            # Saved before scaling, so a failure between the two calls never loses the previous sizes.
            _call(what, eks.update_nodegroup_config, clusterName=cluster_name, nodegroupName=name,
                  labels={"addOrUpdateLabels": {rules.SAVED_SCALING_KEY: rules.encode_saved_scaling(*saved)}})
            changed = True
        target = rules.stopped_scaling(current.max_size)
        if (current.min_size, current.desired_size) != (0, 0):
            _call(what, eks.update_nodegroup_config, clusterName=cluster_name, nodegroupName=name,
                  scalingConfig=target)
            changed = True
        results.append({"nodegroup": name, "saved": _as_config(saved), "scaling": target, "changed": changed})
    return results


def start_nodegroups(eks: Any, cluster_name: str) -> list[dict]:
    """R-CLU-2: restore each node group's saved min/desired/max exactly, then remove the saved value.

    Node groups without a saved value (never stopped, or added while stopped) are left alone.
    """
    results = []
    for name, nodegroup in _live_nodegroups(eks, cluster_name):
        labels = nodegroup.get("labels") or {}
        if rules.SAVED_SCALING_KEY not in labels:
            results.append({"nodegroup": name, "restored": None, "changed": False})
            continue
        what = f"start node group {cluster_name}/{name}"
        saved = _decode(labels[rules.SAVED_SCALING_KEY], what)
        if _scaling(nodegroup) != saved:
            _call(what, eks.update_nodegroup_config, clusterName=cluster_name, nodegroupName=name,
                  scalingConfig=_as_config(saved))
        # Removed only after the restore went through, so a retry still knows what to restore.
        _call(what, eks.update_nodegroup_config, clusterName=cluster_name, nodegroupName=name,
              labels={"removeLabels": [rules.SAVED_SCALING_KEY]})
        results.append({"nodegroup": name, "restored": _as_config(saved), "changed": True})
    return results


def destroy_cluster(eks: Any, cluster_name: str) -> dict:
    """R-CLU-3: delete every node group, then the cluster; whatever is already gone counts as deleted.

    EKS deletes asynchronously: while node groups are still going away the cluster cannot be deleted,
    so this raises TransientClusterError and the queue's retry finishes the destroy.
    """
    result: dict[str, Any] = {"cluster": cluster_name, "nodegroups_deleted": [], "cluster_deleted": False,
                              "already_gone": False}
    try:
        _call(f"describe cluster {cluster_name}", eks.describe_cluster, name=cluster_name)
    except ClusterActionError as exc:
        if _is_not_found(exc):
            result.update(cluster_deleted=True, already_gone=True)
            return result
        raise
    for name in _nodegroup_names(eks, cluster_name):
        try:
            _call(f"delete node group {cluster_name}/{name}", eks.delete_nodegroup,
                  clusterName=cluster_name, nodegroupName=name)
        except ClusterActionError as exc:
            # Not found: already gone. In use: a delete is already under way.
            if exc.code not in (NOT_FOUND, "ResourceInUseException"):
                raise
        result["nodegroups_deleted"].append(name)
    remaining = _nodegroup_names(eks, cluster_name)
    if remaining:
        raise TransientClusterError(f"destroy {cluster_name}: node groups still deleting: {', '.join(remaining)}",
                                    code="NodegroupsDeleting")
    try:
        _call(f"delete cluster {cluster_name}", eks.delete_cluster, name=cluster_name)
    except ClusterActionError as exc:
        if not _is_not_found(exc):
            raise
    result["cluster_deleted"] = True
    return result


def _decode(text: str, what: str) -> rules.SavedScaling:
    try:
        return rules.decode_saved_scaling(text)
    except ValueError as exc:
        raise PermanentClusterError(f"{what}: {exc}") from None
