"""integration §2/§6: in AWS the ops routes may use IAM authorization instead of tokens. The `iam` stage of
`.chalice/config.json` sets OPS_AUTH=iam, and the API that `chalice package --stage iam` builds puts every
`/ops/` route (and only those) behind SigV4; the default stage keeps bearer tokens."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `chalice package --stage S` does before it writes the template: load the stage's config, import
# app.py with the stage's environment, and generate the API's swagger (a fresh process per stage).
PROBE = """
import json, os, sys
from chalice.cli.factory import CLIFactory
from chalice.deploy.swagger import CFNSwaggerGenerator
config = CLIFactory(project_dir=".", environ=os.environ).create_config_obj(sys.argv[1])
doc = CFNSwaggerGenerator().generate_swagger(config.chalice_app)
print(json.dumps({"env": config.environment_variables, "definitions": doc.get("securityDefinitions"),
                  "security": {f"{m.upper()} {p}": op.get("security") for p, ms in doc["paths"].items()
                               for m, op in ms.items()}}))
"""


def probe(stage: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPS_AUTH"}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    result = subprocess.run([sys.executable, "-c", PROBE, stage], cwd=ROOT / "functions", env=env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_iam_stage_puts_every_ops_route_behind_sigv4_and_no_other():
    found = probe("iam")
    assert found["env"]["OPS_AUTH"] == "iam"
    assert found["definitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    ops = {k: v for k, v in found["security"].items() if k.split(" ", 1)[1].startswith("/ops/")}
    others = {k: v for k, v in found["security"].items() if k not in ops}
    assert len(ops) >= 21 and all(v == [{"sigv4": []}] for v in ops.values()), ops
    # the console's static files stay public: everything they show or do is an ops call, behind sigv4 here
    assert set(others) == {"POST /webhooks/payments", "POST /webhooks/ticketing", "GET /openapi.json",
                           "GET /console", "GET /console/{name}"}
    assert all(v is None for v in others.values())


def test_default_stage_uses_bearer_tokens():
    found = probe("dev")
    assert "OPS_AUTH" not in found["env"]
    assert found["definitions"] is None and all(v is None for v in found["security"].values())


def test_iam_stage_differs_from_dev_only_by_ops_auth():
    """Same functions, sizes, policies and concurrency: only who may call the ops routes changes."""
    stages = json.loads((ROOT / "functions" / ".chalice" / "config.json").read_text())["stages"]
    iam, dev = dict(stages["iam"]), dict(stages["dev"])
    assert iam.pop("environment_variables") == {"OPS_AUTH": "iam"} and "environment_variables" not in dev
    assert iam == dev
