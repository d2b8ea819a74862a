"""Environment → one settings object: secrets, tokens, table names, flags (read once, lazily)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    region: str
    table_prefix: str
    payment_secrets: tuple[str, ...]
    ticketing_secrets: tuple[str, ...]
    ops_tokens: tuple[str, ...]
    allow_clock_override: bool
    queue_name: str
    background_queue: str
    topic_name: str
    secrets_manager_secret: str | None
    cluster_action_max_attempts: int
    cluster_retry_base_seconds: float
    # False in the API function in AWS: only cluster_actions holds the EKS and kubeconfig rights
    cluster_actions_inline: bool = True

    def table(self, name: str) -> str:
        return self.table_prefix + name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    env = os.environ
    return Settings(
        region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        table_prefix=env.get("TABLE_PREFIX", "billing-"),
        payment_secrets=_csv(env.get("PAYMENT_WEBHOOK_SECRETS")),
        ticketing_secrets=_csv(env.get("TICKETING_WEBHOOK_SECRETS")),
        ops_tokens=_csv(env.get("OPS_API_TOKENS")),
        allow_clock_override=env.get("ALLOW_CLOCK_OVERRIDE") == "1",
        queue_name=env.get("CLUSTER_ACTIONS_QUEUE", "billing-cluster-actions"),
        background_queue=env.get("BACKGROUND_QUEUE", "billing-background"),
        topic_name=env.get("NOTIFICATIONS_TOPIC", "billing-notifications"),
        secrets_manager_secret=env.get("WEBHOOK_SECRETS_ID") or None,
        cluster_action_max_attempts=int(env.get("CLUSTER_ACTION_MAX_ATTEMPTS", "5")),
        cluster_retry_base_seconds=float(env.get("CLUSTER_RETRY_BASE_SECONDS", "0.5")),
        cluster_actions_inline=env.get("CLUSTER_ACTIONS_INLINE", "1") != "0",
    )


def reset_settings() -> None:
    """Tests change the environment between cases."""
    get_settings.cache_clear()
