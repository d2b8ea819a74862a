"""integration §6 "Operators are named" in a deployed API whose OPS_API_TOKENS reads two ways: it cannot
refuse to start, so every ops call fails closed — 500 with a log line naming the problem, a good token
included — while the webhooks go on (ops/auth.py)."""
from __future__ import annotations

import logging
import os

from chalicelib.settings import reset_settings


def test_a_misconfigured_token_list_fails_every_ops_call_closed(priced, caplog):
    api = priced
    os.environ["OPS_API_TOKENS"] = "alice:t1,bob:t1,carol:t2"
    reset_settings()
    caplog.set_level(logging.ERROR)
    for token in ("t1", "t2", "nonsense"):
        status, body = api.ops("GET", "/ops/audit", token=token)
        assert (status, body["error"]["code"]) == (500, "internal_error")
    assert ("OPS_API_TOKENS is misconfigured: entry 2 repeats the token of entry 1 (names 'alice' and 'bob'); "
            "each token must name one operator; every ops call answers 500 until the configuration is fixed") in caplog.text
    assert api.buy_monthly("srv-tok", "2026-01-31T10:00:00+08:00")[0] == 200  # the webhooks go on
