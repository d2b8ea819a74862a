"""The `billing` tool over real HTTP against the app served by `chalice local`'s server (in a thread, on a
free loopback port) over the moto-backed tables of the `aws` fixture."""
from __future__ import annotations

import json
import threading

import pytest

from cli.main import main
from tests import support


@pytest.fixture
def local_api(aws):
    """What `chalice local` builds, without its CLI: create_local_server swaps the app object's class for a
    thread-local-request subclass; the original class is put back afterwards so the other tests'
    chalice.test.Client sees the app unchanged."""
    from chalice.config import Config
    from chalice.local import create_local_server

    import app as chalice_app

    app_obj = chalice_app.app
    original_class = app_obj.__class__
    port = support.free_port()
    server = create_local_server(app_obj, Config.create(chalice_app=app_obj), "127.0.0.1", port)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)  # skips the "Serving on" print
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(timeout=10)
        app_obj.__class__ = original_class


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_plan_order_and_view_through_the_cli(local_api, capsys):
    ops = ("--api", local_api, "--token", support.OPS_TOKEN)
    code, out = run(capsys, "plan", "std-2c4g", "--monthly", "10000", "--hourly", "20",
                    "--effective-from", "2020-01-01T00:00:00+08:00", *ops)
    assert code == 0, out

    code, out = run(capsys, "trigger", "monthly-order", "--server", "s1", "--at", "2026-01-10T10:00:00+08:00",
                    "--months", "1", "--api", local_api, "--secret", support.PAY_SECRET)
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


def test_refusals_come_back_as_exit_1(local_api, capsys):
    code, out = run(capsys, "trigger", "top-up", "--api", local_api, "--secret", "wrong")
    assert code == 1
    assert "HTTP 401" in out and "invalid_signature" in out

    code, out = run(capsys, "server", "nope", "--api", local_api, "--token", support.OPS_TOKEN)
    assert code == 1 and "HTTP 404" in out

    code, out = run(capsys, "drain", "--api", local_api, "--token", "wrong")
    assert code == 1 and "HTTP 401" in out


def test_ticketing_and_ops_round_trip(local_api, capsys):
    ops = ("--api", local_api, "--token", support.OPS_TOKEN)
    run(capsys, "plan", "std-2c4g", "--monthly", "10000", "--hourly", "20",
        "--effective-from", "2020-01-01T00:00:00+08:00", *ops)
    code, out = run(capsys, "trigger", "monthly-order", "--server", "s2", "--at", "2026-01-10T10:00:00+08:00",
                    "--api", local_api, "--secret", support.PAY_SECRET)
    assert code == 0, out
    code, out = run(capsys, "trigger", "filing-submitted", "--server", "s2", "--filing", "f2",
                    "--at", "2026-01-11T10:00:00+08:00", "--api", local_api, "--secret", support.TICKET_SECRET)
    assert code == 0, out
    assert '"result": "processed"' in out

    code, out = run(capsys, "sweep", "expiry", "--now", "2026-01-12T00:10:00+08:00", *ops)
    assert code == 0, out
    code, out = run(capsys, "dead-letters", *ops)
    assert code == 0, out
    assert "items (0)" in out
