"""The `billing` tool over real HTTP against the app behind the local stack's own server (the `http_api`
fixture: in a thread, on a free loopback port) over the moto-backed tables of the `aws` fixture."""
from __future__ import annotations

import json

from cli.main import main
from tests import support


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_plan_order_and_view_through_the_cli(http_api, capsys):
    ops = ("--api", http_api, "--token", support.OPS_TOKEN)
    code, out = run(capsys, "plan", "std-2c4g", "--monthly", "10000", "--hourly", "20",
                    "--effective-from", "2020-01-01T00:00:00+08:00", *ops)
    assert code == 0, out

    code, out = run(capsys, "trigger", "monthly-order", "--server", "s1", "--at", "2026-01-10T10:00:00+08:00",
                    "--months", "1", "--api", http_api, "--secret", support.PAY_SECRET)
    assert code == 0, out
    assert out.startswith("ids: order_id=ord_")
    answer = json.loads(out[out.index("{"):])
    assert answer["result"] == "processed"
    assert answer["outcome"]["server"] == {"server_id": "s1", "state": "active",
                                           "expires_at": "2026-02-10T10:00:00+08:00"}

    code, out = run(capsys, "server", "s1", *ops)
    assert code == 0, out
    rows = [line.split() for line in out.splitlines()]
    assert ["state", "active"] in rows
    assert ["expires_at", "2026-02-10T10:00:00+08:00"] in rows
    assert "ledger (1)" in out

    code, out = run(capsys, "account", "acc-demo", "--json", *ops)
    assert code == 0, out
    assert json.loads(out)["servers"] == ["s1"]


def test_refusals_come_back_as_exit_1(http_api, capsys):
    code, out = run(capsys, "trigger", "top-up", "--api", http_api, "--secret", "wrong")
    assert code == 1
    assert "HTTP 401" in out and "invalid_signature" in out

    code, out = run(capsys, "server", "nope", "--api", http_api, "--token", support.OPS_TOKEN)
    assert code == 1 and "HTTP 404" in out

    code, out = run(capsys, "drain", "--api", http_api, "--token", "wrong")
    assert code == 1 and "HTTP 401" in out


def test_ticketing_and_ops_round_trip(http_api, capsys):
    ops = ("--api", http_api, "--token", support.OPS_TOKEN)
    run(capsys, "plan", "std-2c4g", "--monthly", "10000", "--hourly", "20",
        "--effective-from", "2020-01-01T00:00:00+08:00", *ops)
    code, out = run(capsys, "trigger", "monthly-order", "--server", "s2", "--at", "2026-01-10T10:00:00+08:00",
                    "--api", http_api, "--secret", support.PAY_SECRET)
    assert code == 0, out
    code, out = run(capsys, "trigger", "filing-submitted", "--server", "s2", "--filing", "f2",
                    "--at", "2026-01-11T10:00:00+08:00", "--api", http_api, "--secret", support.TICKET_SECRET)
    assert code == 0, out
    assert '"result": "processed"' in out

    code, out = run(capsys, "sweep", "expiry", "--now", "2026-01-12T00:10:00+08:00", *ops)
    assert code == 0, out
    code, out = run(capsys, "dead-letters", *ops)
    assert code == 0, out
    assert "items (0)" in out
