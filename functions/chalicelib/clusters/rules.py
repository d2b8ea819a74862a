"""Pure cluster-action rules: which namespaces a stop touches, how saved values are written down, and which
of a server's actions may run (R-CLU-1, R-CLU-2, R-CLU-5)."""
from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Optional

# R-CLU-1: the namespaces a stop never touches, as a table so the list is in one place.
SYSTEM_NAMESPACES: frozenset[str] = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# R-CLU-1: a customer opts a namespace out of stops with this label.
PROTECTED_LABEL_KEY = "billing/protected"
PROTECTED_LABEL_VALUE = "true"

# R-CLU-1/2: annotations on each workload that remember what a stop changed.
SAVED_REPLICAS_ANNOTATION = "billing.example.com/saved-replicas"
SAVED_SUSPEND_ANNOTATION = "billing.example.com/saved-suspend"

# R-CLU-1/2: where a node group's previous scaling is kept while stopped. The same key and
# value format are valid both as an EKS tag and as a Kubernetes/EKS node-group label
# (label values allow only letters, digits and `- _ .`, begin and end alphanumeric, <= 63).
SAVED_SCALING_KEY = "billing.example.com/saved-scaling"

_SCALING_RE = re.compile(r"min([0-9]{1,9})\.desired([0-9]{1,9})\.max([0-9]{1,9})")  # fullmatch: ASCII digits only


class SavedScaling(NamedTuple):
    """A node group's scaling before a stop (R-CLU-1), restored exactly by a start (R-CLU-2)."""

    min_size: int
    desired_size: int
    max_size: int


def should_touch_namespace(name: str, labels: Optional[Mapping[str, str]]) -> bool:
    """R-CLU-1: a stop acts on every namespace except the system ones and those labelled `billing/protected=true`."""
    if name in SYSTEM_NAMESPACES:
        return False
    if (labels or {}).get(PROTECTED_LABEL_KEY) == PROTECTED_LABEL_VALUE:
        return False
    return True


def should_restore_namespace(name: str, labels: Optional[Mapping[str, str]]) -> bool:
    """R-CLU-2 **(reading)**: a start restores every object carrying a saved value, wherever it is.

    The saved annotation is the record of what a stop did; a namespace labelled protected
    after the stop must still get its workloads back. Only system namespaces are skipped,
    because a stop never writes there.
    """
    return name not in SYSTEM_NAMESPACES


def encode_saved_replicas(replicas: Optional[int]) -> str:
    """R-CLU-1: the annotation text for a workload's replicas before the stop (unset means the API default 1)."""
    return str(1 if replicas is None else int(replicas))


def decode_saved_replicas(text: str) -> int:
    """R-CLU-2: the replicas to restore; refuses anything that is not a non-negative integer."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]+", text):  # ASCII digits: not "²" or "١٢"
        raise ValueError(f"saved replicas is not a non-negative integer: {text!r}")
    return int(text)


def encode_saved_suspend(suspend: Optional[bool]) -> str:
    """R-CLU-1: the annotation text for a CronJob's `spec.suspend` before the stop (unset means false)."""
    return "true" if suspend else "false"


def decode_saved_suspend(text: str) -> bool:
    """R-CLU-2: the `spec.suspend` value to restore."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"saved suspend is not 'true' or 'false': {text!r}")


def encode_saved_scaling(min_size: int, desired_size: int, max_size: int) -> str:
    """R-CLU-1: node-group scaling as one tag/label value, e.g. `min1.desired2.max3` (no commas: EKS refuses them)."""
    values = (min_size, desired_size, max_size)
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
        raise ValueError(f"scaling sizes must be non-negative integers: {values!r}")
    return f"min{min_size}.desired{desired_size}.max{max_size}"


def decode_saved_scaling(text: str) -> SavedScaling:
    """R-CLU-2: the node-group scaling to restore, from `encode_saved_scaling` text."""
    match = _SCALING_RE.fullmatch(text or "")
    if not match:
        raise ValueError(f"saved scaling is not in the form min<N>.desired<N>.max<N>: {text!r}")
    return SavedScaling(*(int(group) for group in match.groups()))


def stopped_scaling(current_max: int) -> dict:
    """R-CLU-1: the scaling a stopped node group gets: min 0, desired 0, max unchanged."""
    return {"minSize": 0, "desiredSize": 0, "maxSize": current_max}


def started_after(action_id: str, tried: Iterable[str]) -> Optional[str]:
    """R-CLU-5: the newest of the server's already-tried actions decided after `action_id`, if any.

    Action ids sort in the order they were decided. An action with a newer one already tried (only a
    replayed dead letter can be one) must not run: it would undo what was decided after it.
    """
    newer = [other for other in tried if other > action_id]
    return max(newer) if newer else None
