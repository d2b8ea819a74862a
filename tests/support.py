"""Helpers shared by the tests: an emulator over HTTP, signed deliveries, event builders."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import time
import uuid
from contextlib import contextmanager

import stripe

PAY_SECRET = "pay_test_secret"
PAY_SECRET_OLD = "pay_old_secret"
TICKET_SECRET = "ticket_test_secret"
OPS_TOKEN = "ops-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """An independent signer (Stripe's format is the contract's); raw HMAC for bodies that are not UTF-8."""
    t = timestamp if timestamp is not None else int(time.time())
    try:
        return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, t)
    except UnicodeDecodeError:
        digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={digest}"


def envelope(event_type: str, data: dict, event_id: str | None = None,
             created_at: str = "2026-01-01T00:00:00+08:00") -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:12]}", "type": event_type, "created_at": created_at, "data": data}


def order_paid(order_id, account_id, server_id, kind, paid_at, amount, **extra) -> dict:
    data = {"order_id": order_id, "account_id": account_id, "server_id": server_id, "kind": kind,
            "paid_at": paid_at, "amount": amount, "currency": "CNY"}
    data.update(extra)
    return data


@contextmanager
def environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dumps(value) -> bytes:
    return json.dumps(value).encode()
