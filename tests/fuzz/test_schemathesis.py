"""Schemathesis against the OpenAPI document the RUNNING local stack serves (GET /openapi.json).

The stack is started the way the README does it (`make run`, free ports, LOCAL_SCHEDULES=0) and
stopped with Ctrl-C (SIGINT to its process group). The document is loaded from the stack over HTTP
with schemathesis; every operation is fuzzed with positive and negative cases, sent over HTTP with
webhook bodies signed with the local secrets (over the exact bytes sent) and ops calls authorised
with the local token (schemathesis still drops those headers in some negative cases, on purpose).
Every answer is checked for:
- no 5xx ever (`not_a_server_error`; integration §1: a 5xx is only for the system's own faults);
- conformance to the document: documented status code, content type and body schema;
- invalid input (per the document) is rejected (`negative_data_rejection`);
- integration §6: path ids over the whole id alphabet and beyond it (404 outside it), and bodies nested at
  every depth (400 past 32 levels) on every operation that takes a body, answered without a 5xx;
- integration §1/§2 "whatever is answered with 4xx changes no state" (and "a 5xx ... leaves no partial
  state"): around every 4xx/5xx answer the views of a known account/server (`acc-fz`/`srv-fz`, created
  through a signed event first) and the number of items in every DynamoDB table of the stack's
  emulator are unchanged; and those views keep answering 200 whatever was accepted before.

Half the generated cases are steered towards real records (the known ids, the fields a kind needs,
fresh event ids, parseable business times) so fuzzing gets past the first validation layer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup

from tests import support

ROOT = Path(__file__).resolve().parents[2]
PAY_SECRET = "local_payments_secret"
TICKET_SECRET = "local_ticketing_secret"
OPS_TOKEN = "local-ops-token"
SECRETS = {"/webhooks/payments": PAY_SECRET, "/webhooks/ticketing": TICKET_SECRET}
# Records that exist (the account, server and order from the seed event; a seed plan) or that steered
# cases create (the filing and the ticket), so fuzzed requests can name something real.
KNOWN = {"account_id": "acc-fz", "server_id": "srv-fz", "order_id": "ord-fz", "plan_id": "std-2c4g",
         "filing_id": "fil-fz", "ticket_id": "tic-fz"}
SEED_PRICE = 10000  # std-2c4g monthly price in the local seed catalogue
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
# A new seed every run, so the suite keeps exploring; a failure names it, and FUZZ_SEED=<n> replays it.
SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**31))
MAX_EXAMPLES = 15

# Every operation of the document, as `METHOD /path`. schemathesis' own lazy loader
# (`schemathesis.pytest.from_fixture(...).parametrize()`) cannot run under pytest 9.2 - it reads
# `Function._nodeid`, which pytest 9 no longer has - so each operation is a pytest parameter here and its
# cases come from the operation's schemathesis strategy under `@given`.
OPERATIONS = [
    "POST /webhooks/payments",
    "POST /webhooks/ticketing",
    "GET /ops/servers/{server_id}",
    "GET /ops/accounts/{account_id}",
    "POST /ops/servers/{server_id}/suspend",
    "POST /ops/servers/{server_id}/resume",
    "POST /ops/servers/{server_id}/terminate",
    "POST /ops/accounts/{account_id}/violation",
    "PUT /ops/plans/{plan_id}",
    "POST /ops/sweeps/expiry",
    "POST /ops/sweeps/metering",
    "POST /ops/cluster-actions/drain",
    "POST /ops/background/drain",
    "POST /ops/backfills",
    "GET /ops/runs/{run_id}",
    "GET /ops/dead-letters",
    "POST /ops/dead-letters/{action_id}/replay",
    "GET /ops/lists/expiring",
    "GET /ops/lists/awaiting-destruction",
    "GET /ops/lists/arrears",
    "GET /ops/lists/grants",
    # integration §6: the operators' trail and the pages of the views' lists
    "GET /ops/audit",
    "GET /ops/servers/{server_id}/ledger",
    "GET /ops/servers/{server_id}/notifications",
    "GET /ops/servers/{server_id}/cluster_actions",
    "GET /ops/servers/{server_id}/audit",
    "GET /ops/accounts/{account_id}/ledger",
    "GET /ops/accounts/{account_id}/notifications",
    "GET /ops/accounts/{account_id}/audit",
    "GET /ops/accounts/{account_id}/servers",
]


# ---- the local stack ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack():
    with support.local_stack() as running:
        yield running


def sign(body: bytes, secret: str) -> str:
    """integration §1: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body bytes>")>."""
    t = int(time.time())
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


# ---- the state a rejected request must not touch -----------------------------------------------------
class State:
    """Views of the known account and server, and the item count of every table of the emulator."""

    def __init__(self, stack):
        self.api = stack["api"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {OPS_TOKEN}"
        self.ddb = boto3.client("dynamodb", endpoint_url=stack["aws"], region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")
        self.tables = sorted(self.ddb.list_tables()["TableNames"])
        assert self.tables, "the stack created no tables"
        self._last = None  # the snapshot taken after the last 4xx/5xx (nothing ran since), or None
        self._changed_by = "(none)"  # the last request that may have changed state
        self._unreadable_reported = False

    def _count(self, table: str) -> int:
        total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
        while True:
            page = self.ddb.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def snapshot(self) -> dict:
        views = {}
        for path in (f"/ops/servers/{KNOWN['server_id']}", f"/ops/accounts/{KNOWN['account_id']}"):
            response = self.http.get(self.api + path, timeout=30)
            views[path] = (response.status_code, response.json() if response.status_code == 200 else response.text)
        return {"views": views, "items": {t: self._count(t) for t in self.tables}}

    def before(self) -> tuple[dict, str | None]:
        """The state now, and a failure if the known records can no longer be read (reported once)."""
        problem = None
        if self._last is None:
            self._last = self.snapshot()
            unreadable = {p: v for p, v in self._last["views"].items() if v[0] != 200}
            if unreadable and not self._unreadable_reported:
                self._unreadable_reported = True
                problem = (f"The views of the known records stopped answering 200: {unreadable}\n"
                           f"    after the request {self._changed_by}")
        return self._last, problem

    def after(self, status: int, before: dict, describe) -> str | None:
        """integration §1: a 4xx changes no state, and a 5xx leaves no partial state. Returns what went wrong."""
        if status < 400:
            self._last = None  # a 2xx may change state: take a fresh snapshot next time
            self._changed_by = describe()
            return None
        now = self.snapshot()
        self._last = now
        if now == before:
            return None
        changed = {t: (before["items"][t], now["items"][t]) for t in self.tables
                   if before["items"][t] != now["items"][t]}
        views = [p for p in now["views"] if now["views"][p] != before["views"][p]]
        rule = "a 4xx changes no state" if status < 500 else "a 5xx leaves no partial state"
        return (f"State changed by a request answered {status} (integration guide: {rule})\n"
                f"    {describe()}\n    item counts (before, after): {changed}; views changed: {views}")


@pytest.fixture(scope="module")
def state(stack):
    seed_event = support.envelope("order.paid", support.order_paid(
        KNOWN["order_id"], KNOWN["account_id"], KNOWN["server_id"], "new", "2026-01-01T10:00:00+08:00", SEED_PRICE,
        billing_mode="monthly", plan_id=KNOWN["plan_id"], region="cn-north-1", months=1), "evt-fz-seed")
    body = json.dumps(seed_event).encode()
    answer = requests.post(stack["api"] + "/webhooks/payments", data=body, timeout=30, headers={
        "Content-Type": "application/json", "X-Signature": sign(body, PAY_SECRET)})
    assert answer.status_code == 200 and answer.json()["outcome"]["decision"] == "applied", answer.text
    return State(stack)


# ---- generation -----------------------------------------------------------------------------------------
def _offsets():
    return st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


def datetimes_rfc3339() -> st.SearchStrategy[str]:
    """RFC 3339 times: around the business dates, anywhere in 0001..9999 with any offset, and the edges."""
    near = st.datetimes(min_value=datetime(2025, 6, 1), max_value=datetime(2027, 6, 1),
                        timezones=st.sampled_from([timezone(timedelta(hours=8)), timezone.utc])).map(datetime.isoformat)
    anywhere = st.datetimes(timezones=_offsets()).map(datetime.isoformat)
    edges = st.sampled_from(["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z",
                             "9999-12-31T23:59:59-08:00", "9999-12-31T23:59:59.999999Z"])
    return st.one_of(near, anywhere, edges)


ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # integration §6


def _is_id(value) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def _order_fields(data: dict, draw) -> dict:
    """The fields order.paid needs for its kind (integration §1), and sometimes the right amount (R-PAY-2)."""
    kind = data.get("kind")
    if kind == "new":
        data.setdefault("billing_mode", draw(st.sampled_from(["monthly", "payg", "trial"])))
        data.setdefault("plan_id", KNOWN["plan_id"])
        data.setdefault("region", "cn-north-1")
        if data["billing_mode"] in ("monthly", "trial"):
            data.setdefault("months", 1)
    elif kind == "renewal":
        data.setdefault("months", 1)
    elif kind == "upgrade":
        data.setdefault("plan_id", KNOWN["plan_id"])
    months = data.get("months")
    if (kind == "renewal" or data.get("billing_mode") == "monthly") and isinstance(months, int) and draw(st.booleans()):
        data["amount"] = SEED_PRICE * months
    return data


def steer(body, mode: GenerationMode, draw):
    """Point a generated body at real records. Negative cases only get ids that are well-formed strings
    replaced, so they stay negative; positive cases also get what the kind needs, fresh event ids and
    parseable business times for the ops' free-text `at`/`now`."""
    if not isinstance(body, dict):
        return body
    if isinstance(body.get("data"), dict):  # a webhook envelope
        data = {k: (KNOWN[k] if k in KNOWN and _is_id(v) else v) for k, v in body["data"].items()}
        if mode is GenerationMode.POSITIVE:
            data = {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in data.items()}
            if body.get("type") == "order.paid":
                data = _order_fields(data, draw)
            body = {**body, "data": data}
            body["id"] = "fz-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
            return body
        return {**body, "data": data}
    if mode is GenerationMode.POSITIVE:
        return {k: (draw(datetimes_rfc3339()) if k in ("at", "now") and isinstance(v, str) else v)
                for k, v in body.items()}
    return body


@pytest.fixture(scope="module")
def api_schema(stack):
    # Generation is driven per operation below (hypothesis settings and seed there); this only pins
    # schemathesis' own seed.
    config = schemathesis.Config.from_dict({"seed": SEED})
    schemathesis.openapi.format("date-time", datetimes_rfc3339())
    schema = schemathesis.openapi.from_url(stack["api"] + "/openapi.json", config=config, timeout=30)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        """Half the time, the path names the known server or account instead of a random id."""
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        known = {k: KNOWN[k] for k in ("server_id", "account_id") if k in path_parameters}
        if not known or not all(_is_id(path_parameters[k]) for k in known):
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **known}])

    return schema


def test_the_served_document_has_exactly_the_fuzzed_operations(api_schema):
    served = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations())
    assert served == sorted(OPERATIONS)


def _raw(body) -> bytes:
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):  # a negative case: bytes that are not JSON
        return body
    return json.dumps(body).encode()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("label", OPERATIONS)
def test_answers_conform_and_rejections_change_nothing(label, mode, api_schema, stack, state):
    """integration §1/§2 for every operation of the document: no 5xx, answers as documented, invalid
    input rejected, and a 4xx (or 5xx) answer changes no state."""
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    failures: list[str] = []

    @seed(SEED)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data):
        if data.draw(st.booleans(), label="steer"):
            steered = steer(case.body, mode, data.draw)
            if steered is not case.body:
                case.body = steered
        raw = _raw(case.body)
        headers = {"Content-Type": "application/json"}
        if case.operation.path in SECRETS:  # sign the exact bytes that are sent
            headers["X-Signature"] = sign(raw, SECRETS[case.operation.path])
        else:
            headers["Authorization"] = f"Bearer {OPS_TOKEN}"
        before, problem = state.before()
        if problem:
            failures.append(problem)
        response = case.call(base_url=stack["api"], headers=headers, data=raw, timeout=60)

        def request() -> str:
            return (f"{case.method} {case.formatted_path}  query: {case.query!r}  body: {raw[:700]!r}\n"
                    f"    answered {response.status_code}: {response.text[:300]}")

        # Failures are collected, not raised: the server keeps state, so hypothesis' replay of a failing
        # case would meet another state (and report "flaky"); the failures are reported below.
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as exc:
            titles = sorted({failure.title for failure in exc.exceptions})
            failures.append(f"{'; '.join(titles)}\n    {request()}")
        problem = state.after(response.status_code, before, request)
        if problem:
            failures.append(problem)

    run()
    if failures:
        pytest.fail(f"{label} ({mode.value}, FUZZ_SEED={SEED}): {len(failures)} failing case(s) of {MAX_EXAMPLES}; the first ones:\n\n"
                    + "\n\n".join(failures[:5]), pytrace=False)


# ---- integration §6: path ids and nesting, on every operation ------------------------------------------
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
MAX_DEPTH = 32
WITH_PATH_ID = [label for label in OPERATIONS if "{" in label]
WITH_BODY = [label for label in OPERATIONS if label.split()[0] in ("POST", "PUT")]


def path_ids() -> st.SearchStrategy[str]:
    """Ids over the whole alphabet, and beyond it: other characters (`/`, `%`, spaces, non-ASCII …),
    longer than 128 (up to 3 000), anywhere in the id. ("." and ".." alone are dot segments: HTTP
    clients remove them, so they name another route.)"""
    inside = st.text(alphabet=ID_CHARS, min_size=1, max_size=128)
    outside = st.one_of(
        st.tuples(st.text(alphabet=ID_CHARS, max_size=40),
                  st.characters(blacklist_characters=ID_CHARS, blacklist_categories=("Cs", "Cc")),
                  st.text(alphabet=ID_CHARS, max_size=40)).map("".join),
        st.text(alphabet=ID_CHARS, min_size=129, max_size=3000))
    return st.one_of(inside, outside, st.sampled_from([KNOWN["server_id"], KNOWN["account_id"], "a/b", "a%2Fb",
                                                       "a b", "中文", "%", "x" * 3000]))


def _body_for(label: str, nested: str) -> bytes:
    """A body that would be accepted but for `extra`, nested as drawn (integration §6)."""
    path = label.split()[1]
    if path in SECRETS:
        event = support.envelope("account.topped_up", {"account_id": KNOWN["account_id"], "amount": 1,
                                                       "topped_up_at": "2026-01-02T00:00:00+08:00"})
        text = json.dumps(event)
        return (text[:-2] + ', "extra": ' + nested + "}}").encode()  # 2 levels down
    return ('{"reason": "violation", "flag": false, "extra": ' + nested + "}").encode()  # 1 level down


@pytest.mark.parametrize("label", OPERATIONS)
def test_path_ids_and_nesting_are_4xx_never_5xx_and_change_nothing(label, stack, state):
    """integration §6 on the running stack: an id outside the alphabet in a path is 404 (never 5xx), one inside
    reaches the service; a body nested past 32 levels is 400; a refused request changes nothing."""
    method, template = label.split()
    failures: list[str] = []

    @seed(SEED)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        path, expect_404 = template, False
        if label in WITH_PATH_ID:
            value = data.draw(path_ids(), label="id")
            assume(value not in (".", ".."))
            expect_404 = not _is_id(value)
            # ":" is sent as is: `chalice local` does not percent-decode path parameters (API Gateway does)
            path = re.sub(r"\{[a-z_]+\}", lambda _: requests.utils.quote(value, safe=":"), template)
        raw, depth = b"", 0
        if label in WITH_BODY and data.draw(st.booleans(), label="nest"):
            depth = data.draw(st.one_of(st.integers(0, 40), st.sampled_from([100, 1000, 20_000])), label="depth")
            kinds = data.draw(st.lists(st.booleans(), min_size=depth, max_size=depth), label="kinds")
            nested = "1"
            for is_object in kinds:
                nested = '{"k":' + nested + "}" if is_object else "[" + nested + "]"
            raw = _body_for(label, nested)
            depth += 2 if template in SECRETS else 1
        headers = {"Content-Type": "application/json"}
        if template in SECRETS:
            headers["X-Signature"] = sign(raw, SECRETS[template])
        else:
            headers["Authorization"] = f"Bearer {OPS_TOKEN}"
        before, problem = state.before()
        if problem:
            failures.append(problem)
        response = requests.request(method, stack["api"] + path, data=raw or None, headers=headers, timeout=60)

        def request() -> str:
            return f"{method} {path[:200]}  body: {raw[:200]!r}\n    answered {response.status_code}: {response.text[:300]}"

        status = response.status_code
        if status >= 500:
            failures.append(f"5xx\n    {request()}")
        elif expect_404 and status != 404:
            failures.append(f"a path id outside the alphabet answered {status}, not 404\n    {request()}")
        elif not expect_404 and depth > MAX_DEPTH and status != 400:
            failures.append(f"a body nested {depth} levels answered {status}, not 400\n    {request()}")
        problem = state.after(status, before, request)
        if problem:
            failures.append(problem)

    run()
    if failures:
        pytest.fail(f"{label} (FUZZ_SEED={SEED}): {len(failures)} failing case(s) of {MAX_EXAMPLES}; the first ones:\n\n"
                    + "\n\n".join(failures[:5]), pytrace=False)
