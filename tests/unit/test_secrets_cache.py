"""The Secrets Manager cache of webhook secrets and ops tokens (integration §1, §7 "A fresh execution
environment"), with an injected clock and an injected read: read on first use whatever the clock, once when
many threads ask together, again after its TTL; through a failed refresh the last good value answers for up
to an hour, counted; the environment wins."""
from __future__ import annotations

import json
import sys
import threading
from collections import Counter

import pytest

from tests import support

SECRET_ID = "billing/webhook-secrets"


class FakeSecretsManager:
    """What `_read` answers next: a dict, or an exception to raise."""

    def __init__(self, answer):
        self.answer, self.reads = answer, 0

    def __call__(self, secret_id: str):
        assert secret_id == SECRET_ID
        self.reads += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def value(payments="p1", ops="t1") -> dict:
    return {"payments": (payments,), "ticketing": ("k1",), "ops": (ops,)}


class Clock:
    now = 2.0  # a fresh microVM's monotonic clock

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def secrets(monkeypatch, clock):
    """The module with no value read, on the injected clock, secrets only in Secrets Manager."""
    from chalicelib.settings import reset_settings
    from chalicelib.webhooks import secrets

    monkeypatch.setattr(secrets, "_clock", clock)
    secrets.reset()
    with support.environment(PAYMENT_WEBHOOK_SECRETS=None, TICKETING_WEBHOOK_SECRETS=None, OPS_API_TOKENS=None,
                             WEBHOOK_SECRETS_ID=SECRET_ID):
        reset_settings()
        yield secrets
    secrets.reset()
    reset_settings()


def emf_counts(capfd) -> Counter:
    totals: Counter = Counter()
    for line in capfd.readouterr().out.splitlines():
        obj = json.loads(line)
        for directive in obj.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                totals[metric["Name"]] += sum(obj[metric["Name"]])
    return totals


@pytest.mark.parametrize("now", [0.0, 2.0, 299.0, 1e6])
def test_contract_7_the_first_use_reads_the_secret_whatever_the_monotonic_clock(secrets, clock, monkeypatch, now):
    fake = FakeSecretsManager(value())
    monkeypatch.setattr(secrets, "_read", fake)
    clock.now = now
    assert (secrets.payment_secrets(), secrets.ticketing_secrets(), secrets.ops_tokens()) == (("p1",), ("k1",), ("t1",))
    assert fake.reads == 1


def test_contract_1_a_rotated_secret_is_read_again_after_the_ttl(secrets, clock, monkeypatch):
    fake = FakeSecretsManager(value("p1"))
    monkeypatch.setattr(secrets, "_read", fake)
    assert secrets.payment_secrets() == ("p1",)
    fake.answer = value("p2")
    clock.now = 2.0 + secrets.TTL_SECONDS - 0.1
    assert (secrets.payment_secrets(), fake.reads) == (("p1",), 1)
    clock.now = 2.0 + secrets.TTL_SECONDS
    assert (secrets.payment_secrets(), fake.reads) == (("p2",), 2)


def test_contract_1_the_environment_wins_over_secrets_manager(secrets, monkeypatch):
    from chalicelib.settings import reset_settings

    fake = FakeSecretsManager(value())
    monkeypatch.setattr(secrets, "_read", fake)
    with support.environment(PAYMENT_WEBHOOK_SECRETS="env-p1,env-p2"):
        reset_settings()
        assert (secrets.payment_secrets(), fake.reads) == (("env-p1", "env-p2"), 0)
        assert (secrets.ops_tokens(), fake.reads) == (("t1",), 1)


def test_many_threads_asking_at_once_for_the_first_value_read_it_once(secrets, monkeypatch):
    """32 threads released together by a barrier (thread switches every microsecond); the one read is held
    open until all of them have asked, so every other one meets it in progress."""
    fake = FakeSecretsManager(value())
    reading, release = threading.Event(), threading.Event()

    def slow_read(secret_id):
        reading.set()
        release.wait(timeout=60)
        return fake(secret_id)

    monkeypatch.setattr(secrets, "_read", slow_read)
    barrier, answers = threading.Barrier(33), []

    def ask():
        barrier.wait()
        answers.append(secrets.ops_tokens())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=ask) for _ in range(32)]
        for t in threads:
            t.start()
        barrier.wait()
        assert reading.wait(timeout=60)
        release.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert (fake.reads, answers) == (1, [("t1",)] * 32)


def test_a_failed_refresh_keeps_the_last_good_value_for_an_hour_counted_then_fails(secrets, clock, monkeypatch, capfd):
    """Read at 2 s; Secrets Manager fails from 400 s: the value read at 2 s answers (one attempt every
    RETRY_SECONDS, each counted as SecretsUnavailable) until it is an hour old, then SecretsUnavailable is
    raised (the request fails as a 5xx); once Secrets Manager answers again, its new value is used."""
    fake = FakeSecretsManager(value("p1"))
    monkeypatch.setattr(secrets, "_read", fake)
    assert secrets.payment_secrets() == ("p1",)
    capfd.readouterr()

    fake.answer = ConnectionError("endpoint unreachable")
    clock.now = 400.0
    assert (secrets.payment_secrets(), fake.reads) == (("p1",), 2)
    [line] = [json.loads(line) for line in capfd.readouterr().out.splitlines() if "secrets unavailable" in line]
    assert (line["serving"], line["last_good_age_seconds"], line["error"]) == (
        "last good value", 398, "ConnectionError: endpoint unreachable")
    clock.now = 400.0 + secrets.RETRY_SECONDS - 0.1
    assert (secrets.payment_secrets(), fake.reads) == (("p1",), 2)
    clock.now = 400.0 + secrets.RETRY_SECONDS
    assert (secrets.ops_tokens(), fake.reads) == (("t1",), 3)
    clock.now = 2.0 + secrets.STALE_SECONDS
    assert (secrets.payment_secrets(), fake.reads) == (("p1",), 4)
    assert emf_counts(capfd) == Counter({"SecretsUnavailable": 2})

    clock.now = 2.0 + secrets.STALE_SECONDS + 0.1
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.payment_secrets()
    assert fake.reads == 5
    assert emf_counts(capfd) == Counter({"SecretsUnavailable": 1})

    fake.answer = value("p2")
    assert (secrets.payment_secrets(), fake.reads) == (("p2",), 6)


@pytest.mark.parametrize("document", ['["p1"]', '{"payments": ["p1"]}', '{"ops": 7}', "not json"])
def test_a_secret_that_is_not_an_object_of_comma_separated_strings_is_a_failed_read(secrets, monkeypatch, document):
    answer_with(monkeypatch, document)
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.ops_tokens()


def test_the_secret_s_lists_are_comma_separated_and_other_keys_are_ignored(secrets, monkeypatch):
    answer_with(monkeypatch, json.dumps({"payments": " p1 , p2,", "ops": "eve:t1", "other": {"x": 1}}))
    assert (secrets.payment_secrets(), secrets.ticketing_secrets(), secrets.ops_tokens()) == (
        ("p1", "p2"), (), ("eve:t1",))


def answer_with(monkeypatch, document: str) -> None:
    """Secrets Manager (the boto3 client `_read` uses) answering with this SecretString."""
    from chalicelib import aws

    class Client:
        def get_secret_value(self, SecretId):
            assert SecretId == SECRET_ID
            return {"SecretString": document}

    monkeypatch.setattr(aws, "client", lambda service: Client())


class WatchedLock:
    """The cache's lock, saying when a thread starts waiting for it."""

    def __init__(self):
        self._lock, self.waiting = threading.Lock(), threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.waiting.set()
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self):
        self.acquire()

    def __exit__(self, *_):
        self.release()


def test_a_thread_that_waited_for_a_failed_first_read_fails_with_it_without_reading_again(
        secrets, monkeypatch, capfd):
    """A first read in progress, a second thread waiting for it; the read fails: both requests fail with
    SecretsUnavailable, Secrets Manager was asked once, and the failure is counted once."""
    lock, reading, release = WatchedLock(), threading.Event(), threading.Event()
    fake = FakeSecretsManager(ConnectionError("endpoint unreachable"))

    def slow_read(secret_id):
        reading.set()
        release.wait(timeout=60)
        return fake(secret_id)

    monkeypatch.setattr(secrets, "_lock", lock)
    monkeypatch.setattr(secrets, "_read", slow_read)
    capfd.readouterr()
    failures = []

    def ask():
        try:
            secrets.payment_secrets()
        except secrets.SecretsUnavailable as exc:
            failures.append(type(exc.__cause__).__name__)

    first, second = threading.Thread(target=ask), threading.Thread(target=ask)
    first.start()
    assert reading.wait(timeout=60)
    second.start()
    assert lock.waiting.wait(timeout=60)
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert (failures, fake.reads) == (["ConnectionError", "ConnectionError"], 1)
    assert emf_counts(capfd) == Counter({"SecretsUnavailable": 1})
