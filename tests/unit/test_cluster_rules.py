"""Pure cluster-action rules (rules §4): which namespaces a stop or start touches (R-CLU-1, R-CLU-2) and how
the saved replicas / suspend / node-group scaling are written down and read back exactly."""
from __future__ import annotations

import pytest

from chalicelib.clusters import rules
from chalicelib.clusters.rules import SavedScaling

SYSTEM = ["kube-system", "kube-public", "kube-node-lease"]


# ---- R-CLU-1 / R-CLU-2: namespaces ----------------------------------------------------------------------

@pytest.mark.parametrize("name, labels, touched", [
    ("kube-system", None, False),
    ("kube-public", {}, False),
    ("kube-node-lease", {"team": "x"}, False),
    ("kube-system", {"billing/protected": "false"}, False),
    ("shop", {"billing/protected": "true"}, False),
    ("shop", {"team": "x", "billing/protected": "true"}, False),
    ("shop", None, True),
    ("shop", {}, True),
    ("shop", {"team": "x"}, True),
    ("shop", {"billing/protected": "false"}, True),
    ("shop", {"billing/protected": "True"}, True),  # the label is `billing/protected=true`, exactly
    ("shop", {"billing/protected": ""}, True),
    ("shop", {"protected": "true"}, True),
    ("shop", {"billing/protected-x": "true"}, True),
    ("default", None, True),
    ("kube-systemx", None, True),
    ("Kube-System", None, True),
])
def test_R_CLU_1_stop_skips_system_and_protected_namespaces(name, labels, touched):
    """R-CLU-1: every namespace except kube-system, kube-public, kube-node-lease and `billing/protected=true`."""
    assert rules.should_touch_namespace(name, labels) is touched


@pytest.mark.parametrize("name, labels, restored", [
    ("kube-system", None, False),
    ("kube-public", None, False),
    ("kube-node-lease", None, False),
    ("shop", {"billing/protected": "true"}, True),  # labelled after the stop: its workloads still come back
    ("shop", None, True),
    ("default", {}, True),
])
def test_R_CLU_2_start_restores_everywhere_but_system_namespaces(name, labels, restored):
    """R-CLU-2 (reading): what a stop saved is restored wherever it is; only system namespaces are skipped."""
    assert rules.should_restore_namespace(name, labels) is restored


def test_R_CLU_1_system_namespaces_are_exactly_the_three():
    assert rules.SYSTEM_NAMESPACES == frozenset(SYSTEM)


# ---- R-CLU-1 / R-CLU-2: saved replicas ------------------------------------------------------------------

@pytest.mark.parametrize("replicas, text", [(None, "1"), (0, "0"), (1, "1"), (3, "3"), (250, "250")])
def test_R_CLU_1_saved_replicas_text(replicas, text):
    """R-CLU-1: the previous replicas are saved as decimal text; unset is the API default 1."""
    assert rules.encode_saved_replicas(replicas) == text


@pytest.mark.parametrize("text, replicas", [("0", 0), ("1", 1), ("3", 3), ("250", 250)])
def test_R_CLU_2_saved_replicas_read_back(text, replicas):
    """R-CLU-2: a start restores exactly the saved replicas."""
    assert rules.decode_saved_replicas(text) == replicas


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.5", " 1", "1 ", "one", "0x10", None, 3, "\u00b2", "\u0661\u0662",
                                  "1\n"])
def test_R_CLU_2_saved_replicas_refuses_what_is_not_a_count(text):
    """R-CLU-2: a saved value that is not a non-negative integer is refused (never guessed), naming the value."""
    with pytest.raises(ValueError) as caught:
        rules.decode_saved_replicas(text)
    assert str(caught.value) == f"saved replicas is not a non-negative integer: {text!r}"


# ---- R-CLU-1 / R-CLU-2: saved CronJob suspend --------------------------------------------------------------

@pytest.mark.parametrize("suspend, text", [(None, "false"), (False, "false"), (True, "true")])
def test_R_CLU_1_saved_suspend_text(suspend, text):
    """R-CLU-1: the previous `spec.suspend` is saved; unset counts as false."""
    assert rules.encode_saved_suspend(suspend) == text


@pytest.mark.parametrize("text, suspend", [("true", True), ("false", False)])
def test_R_CLU_2_saved_suspend_read_back(text, suspend):
    """R-CLU-2: a start restores exactly the saved `spec.suspend`."""
    assert rules.decode_saved_suspend(text) is suspend


@pytest.mark.parametrize("text", ["", "True", "FALSE", "1", "0", "yes", " true", None])
def test_R_CLU_2_saved_suspend_refuses_anything_else(text):
    with pytest.raises(ValueError) as caught:
        rules.decode_saved_suspend(text)
    assert str(caught.value) == f"saved suspend is not 'true' or 'false': {text!r}"


# ---- R-CLU-1 / R-CLU-2: saved node-group scaling --------------------------------------------------------

@pytest.mark.parametrize("sizes, text", [
    ((1, 2, 3), "min1.desired2.max3"),
    ((0, 0, 0), "min0.desired0.max0"),
    ((0, 4, 10), "min0.desired4.max10"),
    ((2, 2, 2), "min2.desired2.max2"),
])
def test_R_CLU_1_saved_scaling_text(sizes, text):
    """R-CLU-1: min/desired/max saved as one tag/label value, in that order."""
    assert rules.encode_saved_scaling(*sizes) == text


@pytest.mark.parametrize("sizes", [(-1, 2, 3), (1, -1, 3), (1, 2, -1), (True, 2, 3), (1, False, 3),
                                   (1, 2, 3.0), ("1", 2, 3), (1, None, 3)])
def test_R_CLU_1_saved_scaling_refuses_what_is_not_a_size(sizes):
    with pytest.raises(ValueError) as caught:
        rules.encode_saved_scaling(*sizes)
    assert str(caught.value) == f"scaling sizes must be non-negative integers: {sizes!r}"


@pytest.mark.parametrize("text, scaling", [
    ("min1.desired2.max3", SavedScaling(1, 2, 3)),
    ("min0.desired0.max0", SavedScaling(0, 0, 0)),
    ("min0.desired4.max10", SavedScaling(min_size=0, desired_size=4, max_size=10)),
    ("min999999999.desired1.max999999999", SavedScaling(999999999, 1, 999999999)),
])
def test_R_CLU_2_saved_scaling_read_back(text, scaling):
    """R-CLU-2: a start restores exactly the saved min/desired/max."""
    decoded = rules.decode_saved_scaling(text)
    assert decoded == scaling
    assert type(decoded) is SavedScaling
    assert all(type(v) is int for v in decoded)


@pytest.mark.parametrize("text", ["", None, "min1,desired2,max3", "min1.desired2", "min1.desired2.max3x",
                                  "xmin1.desired2.max3", "min-1.desired2.max3", "min1.desired.max3",
                                  "min1234567890.desired1.max1", "max3.desired2.min1", "min1.desired2.max3\n",
                                  "min\u0661.desired2.max3"])
def test_R_CLU_2_saved_scaling_refuses_other_text(text):
    with pytest.raises(ValueError) as caught:
        rules.decode_saved_scaling(text)
    assert str(caught.value) == f"saved scaling is not in the form min<N>.desired<N>.max<N>: {text!r}"


@pytest.mark.parametrize("sizes", [(0, 0, 0), (1, 2, 3), (5, 7, 40)])
def test_R_CLU_2_saved_scaling_round_trip(sizes):
    """R-CLU-2: "restore exactly what was saved"."""
    assert rules.decode_saved_scaling(rules.encode_saved_scaling(*sizes)) == SavedScaling(*sizes)


@pytest.mark.parametrize("current_max, expected", [
    (3, {"minSize": 0, "desiredSize": 0, "maxSize": 3}),
    (1, {"minSize": 0, "desiredSize": 0, "maxSize": 1}),
    (40, {"minSize": 0, "desiredSize": 0, "maxSize": 40}),
])
def test_R_CLU_1_stopped_scaling_keeps_max(current_max, expected):
    """R-CLU-1: a stopped node group gets minSize 0, desiredSize 0, maxSize unchanged."""
    assert rules.stopped_scaling(current_max) == expected


# ---- R-CLU-5: an action never runs after a newer one has been tried ---------------------------------------

@pytest.mark.parametrize("action_id, tried, newer", [
    ("0002-stop", [], None),
    ("0002-stop", ["0001-start", "0002-stop"], None),  # older ones and itself do not count
    ("0002-stop", ["0001-start", "0003-start"], "0003-start"),
    ("0002-stop", ["0004-stop", "0003-start", "0001-stop"], "0004-stop"),  # the newest of them
])
def test_R_CLU_5_started_after_names_the_newest_action_tried_after_this_one(action_id, tried, newer):
    assert rules.started_after(action_id, tried) == newer
