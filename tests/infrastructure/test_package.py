"""`chalice package --merge-template infra/resources.json` produces a template cfn-lint accepts, with the
contract's function names, schedules, queue trigger and every table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([str(BIN / "chalice"), "package", "--pkg-format", "cloudformation", "--merge-template",
                    str(ROOT / "infra" / "resources.json"), str(out)], cwd=ROOT / "functions", env=env,
                   check=True, capture_output=True)
    return out


def test_template_passes_cfn_lint(packaged):
    result = subprocess.run([str(BIN / "cfn-lint"), str(packaged / "sam.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_functions_schedules_and_queue_are_the_contracts(packaged):
    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    assert resources["ExpirySweep"]["Properties"]["Events"]["ExpirySweepEvent"]["Properties"]["Schedule"] == "cron(10 16 * * ? *)"
    assert resources["PaygMetering"]["Properties"]["Events"]["PaygMeteringEvent"]["Properties"]["Schedule"] == "rate(1 hour)"
    sqs = resources["ClusterActions"]["Properties"]["Events"]["ClusterActionsSqsEventSource"]["Properties"]
    assert sqs["Queue"]["Fn::Sub"].endswith(":billing-cluster-actions")
    assert resources["ClusterActions"]["DependsOn"] == ["ClusterActionsQueue"]
    assert {r["Properties"]["Handler"] for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"} == {
        "app.app", "app.expiry_sweep", "app.payg_metering", "app.cluster_actions", "app.background_work"}
    # issue 9: the scheduled runs fan out over the background queue, one invocation per shard at most
    background = resources["BackgroundWork"]["Properties"]["Events"]["BackgroundWorkSqsEventSource"]["Properties"]
    assert background["Queue"]["Fn::Sub"].endswith(":billing-background")
    assert background["ScalingConfig"] == {"MaximumConcurrency": 32}
    assert resources["BackgroundWork"]["DependsOn"] == ["BackgroundQueue"]
    assert resources["BackgroundQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert resources["BackgroundDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    tables = sorted(r["Properties"]["TableName"] for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table")
    assert tables == sorted(f"billing-{n}" for n in ("servers", "accounts", "ledger", "events", "orders", "plans",
                                                    "notifications", "cluster-actions", "filings", "tickets", "runs"))
    assert resources["ClusterActionsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 8


def test_package_fits_lambda_limits(packaged):
    archive = packaged / "deployment.zip"
    with zipfile.ZipFile(archive) as z:
        unzipped = sum(i.file_size for i in z.infolist())
        names = z.namelist()
    assert archive.stat().st_size < 50 * 1024 * 1024
    assert unzipped < 250 * 1024 * 1024
    assert "app.py" in names and "chalicelib/store/session.py" in names
