"""Lazily created boto3 clients (one per service per process); botocore honours AWS_ENDPOINT_URL[_<SERVICE>]."""
from __future__ import annotations

import threading
from functools import lru_cache

from .settings import get_settings

_lock = threading.Lock()


@lru_cache(maxsize=None)
def client(service: str):
    import boto3  # boto3 is already loaded by pynamodb's botocore; the import is for the session

    with _lock:
        return boto3.session.Session().client(service, region_name=get_settings().region)


def reset_clients() -> None:
    client.cache_clear()
    queue_url.cache_clear()
    topic_arn.cache_clear()


@lru_cache(maxsize=None)
def queue_url(name: str) -> str:
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


@lru_cache(maxsize=None)
def topic_arn(name: str) -> str:
    """The topic's ARN from its name: partition and account from the caller's identity."""
    identity = client("sts").get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    return f"arn:{partition}:sns:{get_settings().region}:{identity['Account']}:{name}"
