"""Webhook secrets and ops tokens: the environment wins; in AWS they may come from one Secrets Manager
secret (JSON {"payments": "s1,s2", "ticketing": "s3", "ops": "t1"}) named by WEBHOOK_SECRETS_ID. A payments secret never
validates a ticketing callback: each sender has its own list."""
from __future__ import annotations

import json
import time

from ..settings import _csv, get_settings

_cache: dict = {"at": 0.0, "value": {}}
TTL_SECONDS = 300


def _from_secrets_manager() -> dict:
    settings = get_settings()
    if not settings.secrets_manager_secret:
        return {}
    if time.monotonic() - _cache["at"] > TTL_SECONDS:
        from .. import aws

        raw = aws.client("secretsmanager").get_secret_value(SecretId=settings.secrets_manager_secret)["SecretString"]
        _cache.update(at=time.monotonic(), value=json.loads(raw))
    return _cache["value"]


def payment_secrets() -> tuple[str, ...]:
    return get_settings().payment_secrets or _csv(_from_secrets_manager().get("payments"))


def ticketing_secrets() -> tuple[str, ...]:
    return get_settings().ticketing_secrets or _csv(_from_secrets_manager().get("ticketing"))


def ops_tokens() -> tuple[str, ...]:
    return get_settings().ops_tokens or _csv(_from_secrets_manager().get("ops"))
