"""Property tests of integration §6 "Identifiers and limits" through the in-process app: identifiers drawn
over the whole id alphabet (A–Z a–z 0–9 . _ : -, 1–128 characters) and beyond it (other ASCII and
non-ASCII characters, empty, longer than 128), in every id field of a payload and in the path of every ops
route, and JSON bodies nested at every depth up to far past the limit (32 levels). It checks:
- inside the alphabet: accepted (200, the record is viewable under that id);
- outside it: 400 `invalid_payload` naming the field (payloads) or 404 (paths), never a 5xx, and
  nothing changed (no server, account or order appears; a flag stays as it was);
- nesting: accepted up to 32 levels, 400 beyond, never a 5xx, nothing changed when refused;
and, without I/O, that ledger keys cannot collide whatever the ids and that the signature's `t` is
plain digits only. The emulator is shared by the examples of a test; every example uses fresh ids."""
from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from hypothesis import example, HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import support
from tests.support import envelope, order_paid

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_DEPTH = 32
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_fresh = itertools.count()

good_ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=128)
bad_ids = st.one_of(
    st.just(""),
    st.text(alphabet=ID_CHARS, min_size=129, max_size=400),
    # at least one character outside the alphabet, anywhere, among allowed ones
    st.tuples(st.text(alphabet=ID_CHARS, max_size=60),
              st.characters(blacklist_characters=ID_CHARS, blacklist_categories=("Cs",)),
              st.text(alphabet=ID_CHARS, max_size=60)).map("".join),
    st.text(min_size=1, max_size=200).filter(lambda s: not ID_RE.fullmatch(s)),
)


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_fresh)}"


def new_order_data(**ids) -> dict:
    ids = {"order_id": fresh("ord"), "account_id": fresh("acc"), "server_id": fresh("srv"), "plan_id": "std", **ids}
    return order_paid(ids["order_id"], ids["account_id"], ids["server_id"], "new", "2026-01-01T10:00:00+08:00", 10000,
                      billing_mode="monthly", plan_id=ids["plan_id"], region="cn-north-1", months=1)


def status_of(api, method: str, path: str, body: dict | str | None = None) -> tuple[int, dict | None]:
    headers = {"Authorization": f"Bearer {support.OPS_TOKEN}", "Content-Type": "application/json"}
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
    response = getattr(api.client.http, method.lower())(path, **kwargs)
    return response.status_code, json.loads(response.body) if response.body else None


# ---- payload ids ------------------------------------------------------------------------------------
ROLES = ["order_id", "account_id", "server_id", "plan_id", "event_id"]


@SETTINGS
@given(role=st.sampled_from(ROLES), value=good_ids)
def test_any_id_inside_the_alphabet_is_accepted(priced, role, value):
    if role == "plan_id":
        status, body = status_of(priced, "PUT", f"/ops/plans/{value}", {
            "monthly_price": 10000, "hourly_price": 20, "effective_from": "2020-01-01T00:00:00+08:00"})
        assert status == 200, body
    ids = {r: fresh(r.split("_")[0]) for r in ROLES if r != "plan_id"}
    ids[role] = value
    data = new_order_data(**{k: v for k, v in ids.items() if k != "event_id"})
    status, body = priced.pay("order.paid", data, event_id=ids["event_id"])
    assert status == 200, body
    # a repeated id from an earlier example is a decision (held / duplicate), never a refusal
    if body["result"] == "processed" and body["outcome"]["decision"] == "applied":
        view = priced.server(data["server_id"])
        assert (view["server_id"], view["account_id"], view["plan_id"]) == (
            data["server_id"], data["account_id"], data["plan_id"])
        assert priced.account(data["account_id"])["servers"] == [data["server_id"]]


@SETTINGS
@given(role=st.sampled_from(ROLES), value=bad_ids)
def test_any_id_outside_the_alphabet_is_400_naming_the_field_and_changes_nothing(priced, role, value):
    ids = {r: fresh(r.split("_")[0]) for r in ROLES}
    ids["plan_id"] = "std"
    ids[role] = value
    data = new_order_data(**{k: v for k, v in ids.items() if k != "event_id"})
    event = envelope("order.paid", data)
    event["id"] = ids["event_id"]
    raw = json.dumps(event).encode()
    if len(raw) > 256 * 1024:
        return
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET, raw=raw)
    field = "id" if role == "event_id" else f"data.{role}"
    assert status == 400 and body["error"]["code"] == "invalid_payload", (role, value, status, body)
    assert field in body["error"]["fields"], body
    for kind, key in (("servers", "server_id"), ("accounts", "account_id")):
        if ID_RE.fullmatch(ids[key]):
            assert status_of(priced, "GET", f"/ops/{kind}/{ids[key]}")[0] == 404


@SETTINGS
@given(field=st.sampled_from(["filing_id", "server_id"]), value=bad_ids)
def test_ticketing_ids_outside_the_alphabet_are_400(priced, field, value):
    data = {"filing_id": fresh("f"), "server_id": fresh("srv"), "website": "w.example.cn", "is_change": False,
            "submitted_at": "2026-01-02T00:00:00+08:00"}
    data[field] = value
    status, body = priced.ticket("filing.submitted", data)
    assert (status, body["error"]["code"]) == (400, "invalid_payload")
    assert f"data.{field}" in body["error"]["fields"]


# ---- path ids ---------------------------------------------------------------------------------------
ROUTES = [("GET", "/ops/servers/{}", None), ("GET", "/ops/accounts/{}", None),
          ("POST", "/ops/servers/{}/suspend", {"reason": "violation"}), ("POST", "/ops/servers/{}/resume", {}),
          ("POST", "/ops/servers/{}/terminate", {"reason": "breach"}),
          ("POST", "/ops/accounts/{}/violation", {"flag": True}),
          ("PUT", "/ops/plans/{}", {"monthly_price": 1, "hourly_price": 1, "effective_from": "2020-01-01T00:00:00+08:00"}),
          ("POST", "/ops/dead-letters/{}/replay", None)]


@SETTINGS
@given(route=st.sampled_from(ROUTES), value=bad_ids)
def test_any_path_id_outside_the_alphabet_is_404_and_changes_nothing(priced, route, value):
    method, template, body = route
    path = template.format(quote(value, safe=""))
    # an empty id is another route (`/ops/servers/`), which the gateway answers itself
    assume(value != "" and path.count("/") == template.count("/"))
    status, answer = status_of(priced, method, path, body)
    assert status == 404, (path, status, answer)
    assert answer["error"]["code"] == "not_found"


@SETTINGS
@given(route=st.sampled_from(ROUTES[:6]), value=good_ids)
def test_any_path_id_inside_the_alphabet_reaches_the_service(priced, route, value):
    """An unknown id inside the alphabet is looked up (404 from the service), a known one is served."""
    method, template, body = route
    status, answer = status_of(priced, method, template.format(value), body)
    assert status in (404, 409), (status, answer)
    assert "ids are 1-128 characters" not in answer["error"]["message"]


# ---- nesting ----------------------------------------------------------------------------------------
@st.composite
def nested_json(draw) -> tuple[int, str]:
    """(depth, JSON text) of a value nested `depth` levels, each level an object or an array."""
    depth = draw(st.one_of(st.integers(0, 64), st.integers(65, 3000), st.sampled_from([MAX_DEPTH - 3, MAX_DEPTH - 2])))
    kinds = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
    leaf = draw(st.sampled_from(["1", "null", '"x"', "true", "[]", "{}"]))
    extra = 1 if leaf in ("[]", "{}") else 0
    text = leaf
    for is_object in reversed(kinds):
        text = '{"k":' + text + "}" if is_object else "[" + text + "]"
    return depth + extra, text


@SETTINGS
@given(value=nested_json())
def test_webhook_bodies_nested_past_the_limit_are_400_and_within_it_apply(priced, value):
    depth, text = value
    data = new_order_data()
    event = envelope("order.paid", data)
    raw = json.dumps(event)
    raw = (raw[:-2] + ', "extra": ' + text + "}}").encode()  # extra sits in data: 2 levels down
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET, raw=raw)
    if depth + 2 > MAX_DEPTH:
        assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["body"])
        assert status_of(priced, "GET", f"/ops/servers/{data['server_id']}")[0] == 404
    else:
        assert (status, body["outcome"]["decision"]) == (200, "applied"), body


@SETTINGS
@given(value=nested_json())
def test_ops_bodies_nested_past_the_limit_are_400_and_change_nothing(priced, value):
    depth, text = value
    data = new_order_data()
    assert priced.pay("order.paid", data)[0] == 200
    status, body = status_of(priced, "POST", f"/ops/accounts/{data['account_id']}/violation",
                             '{"flag": true, "extra": ' + text + "}")
    if depth + 1 > MAX_DEPTH:
        assert (status, body["error"]["code"]) == (400, "invalid_payload")
        assert priced.account(data["account_id"])["violation"] is False
    else:
        assert status == 200, body
        assert priced.account(data["account_id"])["violation"] is True


# ---- pure: keys and signatures ---------------------------------------------------------------------
key_parts = st.tuples(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=40)), st.integers(1, 999))


@settings(max_examples=2000, deadline=None, database=None)
@given(a=key_parts, b=key_parts, seconds=st.integers(0, 10**9))
def test_ledger_keys_never_collide_and_start_with_the_time(a, b, seconds):
    """integration §6: different (cause, server, seq) give different keys at one instant, whatever they hold."""
    from chalicelib.store.session import ledger_row_id
    from chalicelib.timeutil import store_key

    at = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    key_a, key_b = ledger_row_id(at, *a), ledger_row_id(at, *b)
    assert key_a.startswith(store_key(at) + "#")
    normal = lambda parts: (parts[0], parts[1] or "", parts[2])  # noqa: E731 - no server is stored as ""
    assert (key_a == key_b) == (normal(a) == normal(b))


@settings(max_examples=1000, deadline=None, database=None)
@given(t_text=st.text(min_size=0, max_size=14))
@example(t_text="0\r").via("a trailing white space once found by this test")
@example(t_text=" 12").via("white space before the value is refused")
@example(t_text="0\x1f").via("a trailing separator that str.strip() takes and int() does not")
def test_signature_t_is_plain_digits_only(t_text):
    from chalicelib.errors import InvalidSignature
    from chalicelib.webhooks import signature

    body = b"{}"
    now = 1_800_000_000
    # white space closing a comma-separated part of the header is tolerated (each part is stripped);
    # the value itself must be plain digits
    canonical = re.fullmatch(r"0|[1-9][0-9]{0,11}", t_text.rstrip()) is not None
    try:
        # a canonical value is signed as the digits it holds: int() does not take every character str.strip()
        # does (hypothesis once found "0\x1f", signed with `now` while the header says 0)
        value = int(t_text.rstrip()) if canonical else int(t_text)
    except ValueError:
        value = now
    header = f"t={t_text},v1={signature.sign('s', value, body)}"
    try:
        signature.verify(header, body, ("s",), value)
    except InvalidSignature:
        assert not canonical or "," in t_text
    else:
        assert canonical
