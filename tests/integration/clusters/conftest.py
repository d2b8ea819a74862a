"""Fixtures for the cluster adapters: a fake Kubernetes API on loopback."""
import sys
from pathlib import Path

import pytest

# tests/conftest.py normally does this; kept here so this folder also runs on its own.
_FUNCTIONS = str(Path(__file__).resolve().parents[3] / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)

from tests.fakes.fake_kube import FakeKube  # noqa: E402


@pytest.fixture
def fake_kube():
    """A started FakeKube; seed it with add_namespace/add_deployment/..., point KubeWorkloads at kubeconfig_yaml()."""
    with FakeKube() as server:
        yield server
