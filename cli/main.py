"""`billing`: sign and send the contract's events and call the operators' API of any deployment of the
Kubernetes billing backend (docs/integration.md; usage in docs/cli.md). Standard library + requests only.

Defaults come from the environment: BILLING_API_URL (http://127.0.0.1:8000), PAYMENT_WEBHOOK_SECRET,
TICKETING_WEBHOOK_SECRET and OPS_API_TOKEN (the local stack's values); --api, --secret, --token override.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import requests

CST = timezone(timedelta(hours=8))
ENV = {  # setting -> (environment variable, local stack default)
    "api": ("BILLING_API_URL", "http://127.0.0.1:8000"),
    "payments": ("PAYMENT_WEBHOOK_SECRET", "local_payments_secret"),
    "ticketing": ("TICKETING_WEBHOOK_SECRET", "local_ticketing_secret"),
    "token": ("OPS_API_TOKEN", "local-ops-token"),
}
WEBHOOKS = {"payments": "/webhooks/payments", "ticketing": "/webhooks/ticketing"}
SENDER_OF = {"order": "payments", "account": "payments", "filing": "ticketing", "compensation": "ticketing"}

# Ready-made events. "{name}" is filled from the trigger's options, keeping the option's type (months
# stays an int). Ids listed in "new" are generated when not given (and printed); any other id option a
# template names must be given, since it refers to something the system already knows.
PER_MONTH = "price x months"
_ORDER = {"order_id": "{order}", "account_id": "{account}", "server_id": "{server}", "paid_at": "{at}",
          "amount": "{amount}", "currency": "CNY"}
TRIGGERS = {
    "monthly-order": {"type": "order.paid", "new": ("order", "server"), "amount": PER_MONTH, "data": {
        **_ORDER, "kind": "new", "billing_mode": "monthly", "plan_id": "{plan}", "region": "{region}",
        "months": "{months}"}},
    "payg-order": {"type": "order.paid", "new": ("order", "server"), "amount": 0, "data": {
        **_ORDER, "kind": "new", "billing_mode": "payg", "plan_id": "{plan}", "region": "{region}"}},
    "renewal": {"type": "order.paid", "new": ("order",), "amount": PER_MONTH, "data": {
        **_ORDER, "kind": "renewal", "months": "{months}"}},
    "upgrade": {"type": "order.paid", "new": ("order",), "amount": 0, "plan": "pro-4c8g", "data": {
        **_ORDER, "kind": "upgrade", "plan_id": "{plan}"}},
    "refund": {"type": "order.refunded", "amount": 0, "data": {
        "order_id": "{order}", "account_id": "{account}", "server_id": "{server}", "amount": "{amount}",
        "refunded_at": "{at}"}},
    "top-up": {"type": "account.topped_up", "amount": 10000, "data": {
        "account_id": "{account}", "amount": "{amount}", "topped_up_at": "{at}"}},
    "filing-submitted": {"type": "filing.submitted", "new": ("filing",), "data": {
        "filing_id": "{filing}", "server_id": "{server}", "website": "{website}", "is_change": "{is_change}",
        "submitted_at": "{at}"}},
    "filing-approved": {"type": "filing.approved", "data": {"filing_id": "{filing}", "approved_at": "{at}"}},
    "filing-withdrawn": {"type": "filing.withdrawn", "data": {"filing_id": "{filing}", "withdrawn_at": "{at}"}},
    "filing-rejected": {"type": "filing.rejected", "data": {"filing_id": "{filing}", "rejected_at": "{at}"}},
    "compensation-requested": {"type": "compensation.requested", "new": ("ticket",), "data": {
        "ticket_id": "{ticket}", "filing_id": "{filing}", "server_id": "{server}", "requested_at": "{at}"}},
    "compensation-accepted": {"type": "compensation.accepted", "data": {
        "ticket_id": "{ticket}", "engineer_id": "{engineer}", "accepted_at": "{at}"}},
}
ID_OPTIONS = {"order": "ord", "server": "srv", "filing": "fil", "ticket": "tkt"}  # option -> generated prefix
OPTION_DEFAULTS = {"account": "acc-demo", "plan": "std-2c4g", "region": "cn-north-1", "months": 1,
                   "price": 10000, "website": "www.example.cn", "is_change": False, "engineer": "eng-1"}

# The list fields of the views shown as sub-tables, with their preferred column order.
SECTIONS = {
    "cluster_actions": ("id", "kind", "status", "attempts", "error"),
    "notifications": ("at", "kind", "cause"),
    "ledger": ("at", "kind", "amount", "cash", "balance_before", "balance_after", "expires_at_before",
               "expires_at_after", "rule", "event_id", "note"),
    "audit": ("at", "action", "actor", "reason", "note"),
    "items": ("id", "server_id", "kind", "attempts", "error"),
}
LISTS = {"server": ("ledger", "notifications", "cluster_actions", "audit"),
         "account": ("ledger", "notifications", "audit", "servers")}


class CliError(Exception):
    """A usage problem reported as `billing: <message>` with exit code 1."""


# ---- pure pieces -----------------------------------------------------------------------------------
def now_rfc3339() -> str:
    return datetime.now(CST).isoformat(timespec="seconds")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Signature value: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def parse_value(text: str):
    """JSON when it parses (10000 -> int, false -> bool, {"a": 1} -> dict), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sets(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--set needs key=value, got {pair!r}")
        out[key] = parse_value(value)
    return out


def sender_for(event_type: str) -> str:
    """Which sender (and so webhook and secret) an event type belongs to."""
    sender = SENDER_OF.get(event_type.partition(".")[0])
    if sender is None:
        raise CliError(f"cannot tell the webhook for {event_type!r}; use --to payments|ticketing")
    return sender


def envelope(event_type: str, data: dict, event_id: str | None = None, created_at: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "type": event_type,
            "created_at": created_at or now_rfc3339(), "data": data}


def build_trigger(name: str, options: dict) -> tuple[str, dict, dict]:
    """(event type, data, generated ids) for a ready-made event; `options` are the given ones (None = not given)."""
    spec = TRIGGERS[name]
    values = {**OPTION_DEFAULTS, **{k: spec[k] for k in OPTION_DEFAULTS if k in spec}}
    values.update({k: v for k, v in options.items() if v is not None})
    values.setdefault("at", now_rfc3339())
    if values.get("amount") is None:
        default = spec.get("amount", 0)
        values["amount"] = values["price"] * values["months"] if default == PER_MONTH else default
    generated = {}
    for option, prefix in ID_OPTIONS.items():
        if values.get(option) is None and option in spec.get("new", ()):
            values[option] = generated[f"{option}_id"] = f"{prefix}_{uuid.uuid4().hex[:8]}"
    data = {}
    for key, value in spec["data"].items():
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            option = value[1:-1]
            if values.get(option) is None:
                raise CliError(f"trigger {name} needs --{option.replace('_', '-')}")
            value = values[option]
        data[key] = value
    return spec["type"], data, generated


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def table(rows: list[dict], preferred: tuple = ()) -> list[str]:
    columns = [c for c in preferred if any(c in r for r in rows)]
    for row in rows:
        columns += [c for c in row if c not in columns]
    grid = [columns] + [[cell(r.get(c)) if c in r else "" for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in grid]


def render_view(view: dict) -> list[str]:
    """Key/value lines for the scalar fields, then one sub-table per list of rows."""
    is_rows = {k: k in SECTIONS or (isinstance(v, list) and v and all(isinstance(r, dict) for r in v))
               for k, v in view.items()}
    # a list's `<list>_next` cursor goes in its heading, as the flags that show the older entries
    cursors = {k[:-len("_next")]: v for k, v in view.items() if k.endswith("_next") and is_rows.get(k[:-len("_next")])}
    scalars = [k for k in view if not is_rows[k] and k[:-len("_next")] not in cursors]
    width = max((len(k) for k in scalars), default=0)
    lines = [f"{k.ljust(width)}  {cell(view[k])}".rstrip() for k in scalars]
    for key in (k for k in view if is_rows[k]):
        rows = view[key] or []
        older = f", older: --list {key} --before {cursors[key]}" if cursors.get(key) else ""
        lines += ["", f"{key} ({len(rows)}{older})"] + (["  " + line for line in table(rows, SECTIONS.get(key, ()))]
                                                        if rows else [])
    return lines[1:] if lines[:1] == [""] else lines


# ---- I/O ---------------------------------------------------------------------------------------------
def setting(name: str, given: str | None = None) -> str:
    """A flag's value, else the environment's, else the local stack's default (read at call time)."""
    variable, default = ENV[name]
    return given or os.environ.get(variable) or default


def request(args, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None):
    url = setting("api", args.api).rstrip("/") + path
    try:
        response = requests.request(method, url, data=body, headers=headers, timeout=120)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    return response.status_code, answer


def pretty(answer) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer, indent=2, ensure_ascii=False)


def show(status: int, answer, *, view: bool = False, raw: bool = False) -> int:
    """Exit code 0 for 2xx, 1 otherwise. A view is a table (or, with --json, the bare JSON)."""
    ok = 200 <= status < 300
    if ok and view:
        print(pretty(answer) if raw or not isinstance(answer, dict) else "\n".join(render_view(answer)))
    else:
        print(f"HTTP {status}\n{pretty(answer)}")
    return 0 if ok else 1


def deliver(args, event_type: str, data: dict) -> int:
    data = {**data, **parse_sets(args.set)}
    sender = args.to or sender_for(event_type)
    event = envelope(event_type, data, args.id)
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Signature": sign(setting(sender, args.secret), body)}
    print(f"{event_type} {event['id']} -> POST {WEBHOOKS[sender]}")
    return show(*request(args, "POST", WEBHOOKS[sender], body=body, headers=headers))


def ops(args, method: str, path: str, body: dict | None = None):
    headers = {"Authorization": f"Bearer {setting('token', args.token)}", "Content-Type": "application/json"}
    return request(args, method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)


# ---- subcommands -------------------------------------------------------------------------------------
def cmd_send(args) -> int:
    if args.data and args.data_file:
        raise CliError("give --data or --data-file, not both")
    if args.data_file:
        text = sys.stdin.read() if args.data_file == "-" else open(args.data_file, encoding="utf-8").read()
    else:
        text = args.data or "{}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError("data must be a JSON object")
    return deliver(args, args.type, data)


def cmd_trigger(args) -> int:
    options = {k: getattr(args, k) for k in (*ID_OPTIONS, *OPTION_DEFAULTS, "at", "amount")}
    options["is_change"] = True if args.is_change else None
    event_type, data, generated = build_trigger(args.name, options)
    if generated:
        print("ids: " + " ".join(f"{k}={v}" for k, v in generated.items()))
    return deliver(args, event_type, data)


def cmd_sweep(args) -> int:
    return show(*ops(args, "POST", f"/ops/sweeps/{args.job}", {"now": args.now} if args.now else {}))


def cmd_drain(args) -> int:
    path = "/ops/background/drain" if args.background else "/ops/cluster-actions/drain"
    return show(*ops(args, "POST", path, {}))


def cmd_backfill(args) -> int:
    """issue 18: re-save a table's rows in the background (docs/operations.md); prints the run's id."""
    return show(*ops(args, "POST", "/ops/backfills", {"table": args.table}))


def cmd_dead_letters(args) -> int:
    if args.replay:
        return show(*ops(args, "POST", f"/ops/dead-letters/{args.replay}/replay", {}))
    return show(*ops(args, "GET", "/ops/dead-letters"), view=True, raw=args.json)


def _before(cursor: str | None) -> str:
    return f"?before={cursor}" if cursor else ""


def cmd_view(args) -> int:
    """The view, or with --list one of its lists (100 entries, older ones with --before)."""
    collection = {"server": "servers", "account": "accounts"}[args.command]
    if args.list:
        path = f"/ops/{collection}/{args.id}/{args.list}{_before(args.before)}"
        status, answer = ops(args, "GET", path)
        if 200 <= status < 300 and isinstance(answer, dict) and not args.json:
            answer = {args.list: answer.get("items", []), f"{args.list}_next": answer.get("next")}
        return show(status, answer, view=True, raw=args.json)
    if args.before:
        raise CliError("--before needs --list")
    return show(*ops(args, "GET", f"/ops/{collection}/{args.id}"), view=True, raw=args.json)


def cmd_audit(args) -> int:
    """Operator changes about no one server or account (price versions, runs by hand, replays)."""
    status, answer = ops(args, "GET", f"/ops/audit{_before(args.before)}")
    if 200 <= status < 300 and isinstance(answer, dict) and not args.json:
        answer = {"audit": answer.get("items", []), "audit_next": answer.get("next")}
    return show(status, answer, view=True, raw=args.json)


def cmd_plan(args) -> int:
    body = {"monthly_price": args.monthly, "hourly_price": args.hourly,
            "effective_from": args.effective_from or now_rfc3339()}
    if args.at:
        body["at"] = args.at
    return show(*ops(args, "PUT", f"/ops/plans/{args.id}", body))


def cmd_sign(args) -> int:
    secret = setting("ticketing" if args.ticketing else "payments", args.secret)
    print(sign(secret, sys.stdin.buffer.read(), args.timestamp))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="billing", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_, *, api=True, secret=False, token=False):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        if api:
            p.add_argument("--api", help="API base URL (env BILLING_API_URL, default http://127.0.0.1:8000)")
        if secret:
            p.add_argument("--secret", help="webhook secret (env PAYMENT_/TICKETING_WEBHOOK_SECRET)")
        if token:
            p.add_argument("--token", help="operator bearer token (env OPS_API_TOKEN)")
        return p

    def event_flags(p):
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="set a data field (value parsed as JSON when possible)")
        p.add_argument("--id", help="event id (default: a random evt_…)")
        p.add_argument("--to", choices=sorted(WEBHOOKS), help="force the webhook (default: from the type)")

    p = command("send", cmd_send, "sign and POST one event to its webhook", secret=True)
    p.add_argument("type", help="event type, e.g. order.paid")
    p.add_argument("--data", help="the data object as JSON")
    p.add_argument("--data-file", help="file holding the data object as JSON (- for stdin)")
    event_flags(p)

    p = command("trigger", cmd_trigger, "send a ready-made event with sensible defaults", secret=True)
    p.add_argument("name", choices=list(TRIGGERS), metavar="NAME", help=", ".join(TRIGGERS))
    for option in ID_OPTIONS:
        p.add_argument(f"--{option}", help=f"{option} id")
    p.add_argument("--account", help=f"account id (default {OPTION_DEFAULTS['account']})")
    p.add_argument("--at", help="business time of the event, RFC 3339 (default now)")
    p.add_argument("--months", type=int, help="months bought (default 1)")
    p.add_argument("--plan", help="plan id (default std-2c4g; pro-4c8g for upgrade)")
    p.add_argument("--region", help="region (default cn-north-1)")
    p.add_argument("--amount", type=int, help="amount in fen (default: price x months for orders)")
    p.add_argument("--price", type=int, help="monthly price used for the default amount (default 10000)")
    p.add_argument("--website", help="filed website (default www.example.cn)")
    p.add_argument("--is-change", action="store_true", help="the filing is a change of an existing one")
    p.add_argument("--engineer", help="engineer id (default eng-1)")
    event_flags(p)

    p = command("sweep", cmd_sweep, "run the expiry sweep or pay-as-you-go metering now", token=True)
    p.add_argument("job", choices=("expiry", "metering"))
    p.add_argument("--now", help="business time of the run (where ALLOW_CLOCK_OVERRIDE=1)")
    p = command("drain", cmd_drain, "run queued cluster actions (or background work) now", token=True)
    p.add_argument("--background", action="store_true",
                   help="run queued background work instead: shards of scheduled runs, price announcements")
    p = command("backfill", cmd_backfill, "re-save a table's rows so that old rows join a new index", token=True)
    p.add_argument("table", choices=("servers", "accounts"))
    p = command("dead-letters", cmd_dead_letters, "list dead cluster actions, or replay one", token=True)
    p.add_argument("--replay", metavar="ID", help="replay this dead letter")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    for name in ("server", "account"):
        p = command(name, cmd_view, f"show the {name} view as a table", token=True)
        p.add_argument("id")
        p.add_argument("--list", choices=LISTS[name], help="show only this list (the latest 100 entries)")
        p.add_argument("--before", metavar="CURSOR", help="the 100 entries before this cursor (with --list)")
        p.add_argument("--json", action="store_true", help="print the raw JSON")
    p = command("audit", cmd_audit, "show operator changes about no one server or account", token=True)
    p.add_argument("--before", metavar="CURSOR", help="the 100 entries before this cursor")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p = command("plan", cmd_plan, "add a price version to a plan", token=True)
    p.add_argument("id")
    p.add_argument("--monthly", type=int, required=True, help="monthly price in fen")
    p.add_argument("--hourly", type=int, required=True, help="hourly price in fen")
    p.add_argument("--effective-from", help="RFC 3339 (default now)")
    p.add_argument("--at", help="business time of the change (where ALLOW_CLOCK_OVERRIDE=1)")

    p = command("sign", cmd_sign, "print the X-Signature value for the body on stdin", api=False, secret=True)
    p.add_argument("--timestamp", type=int, help="unix time to sign with (default now)")
    p.add_argument("--ticketing", action="store_true", help="default to the ticketing secret")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, OSError) as exc:
        print(f"billing: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
