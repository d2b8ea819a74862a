"""Test-wide setup: `functions/` on the import path, and a fake AWS identity so nothing can reach a real account."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_PROFILE", None)

import pytest  # noqa: E402

# Tests marked `both_backends` (the ones whose point is real concurrency) run with DynamoDB on moto,
# which answers one request at a time, and on Amazon's DynamoDB Local, where transactions really race.
# TEST_DYNAMODB=dynamodb-local runs every test that uses the emulator on DynamoDB Local.
BACKENDS = ("moto", "dynamodb-local")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request):
    """Where DynamoDB requests go: "moto" unless the test is marked `both_backends`."""
    return getattr(request, "param", os.environ.get("TEST_DYNAMODB", "moto"))


@pytest.fixture(scope="session")
def dynamodb_local():
    """DynamoDB Local in memory on a free port for the session (started on first use)."""
    from infra.local import dynamodb_local as ddb_local
    from tests import support

    port = support.free_port()
    process = ddb_local.start(port)
    try:
        ddb_local.wait_ready(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
