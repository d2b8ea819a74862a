// The operators' console: every page is read from the ops API and every action is an ops API call.
// The token lives in sessionStorage (this tab only) and travels only in the Authorization header.
"use strict";

(function () {
  const TOKEN_KEY = "billing-ops-token";
  // The API is wherever this page is served from, less "/console" (locally "", in AWS the stage, e.g. "/api").
  const BASE = location.pathname.replace(/\/console\/?$/, "");
  const $ = (id) => document.getElementById(id);

  // ---- formatting ------------------------------------------------------------------------------
  /** Fen (an integer) to yuan, exact: BigInt arithmetic, never floating point. 12345 → "¥123.45". */
  function yuan(fen) {
    if (fen === null || fen === undefined || fen === "") return "";
    let n;
    try { n = BigInt(fen); } catch (e) { return String(fen); }
    const sign = n < 0n ? "-" : "";
    const abs = n < 0n ? -n : n;
    const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const cents = (abs % 100n).toString().padStart(2, "0");
    return `${sign}¥${whole}.${cents}`;
  }

  const SHANGHAI = new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  /** An RFC 3339 time shown as Asia/Shanghai wall time, "2026-04-30 10:00" (seconds when not zero). */
  function shanghai(text) {
    if (!text) return "";
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return String(text);
    const p = Object.fromEntries(SHANGHAI.formatToParts(date).map((part) => [part.type, part.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}` + (p.second !== "00" ? `:${p.second}` : "");
  }

  function thisMonth() {
    const p = Object.fromEntries(SHANGHAI.formatToParts(new Date()).map((part) => [part.type, part.value]));
    return `${p.year}-${p.month}`;
  }

  /** A countdown from this browser's clock: "in 3 d 4 h", or "overdue by 2 h 5 min" once the time has
   *  passed (the daily sweep has not acted on it yet). */
  function relative(text) {
    if (!text) return "";
    const ms = Date.parse(text) - Date.now();
    if (Number.isNaN(ms)) return "";
    const minutes = Math.floor(Math.abs(ms) / 60000);
    const d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    const span = d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
    return ms < 0 ? `overdue by ${span}` : `in ${span}`;
  }

  const countdown = (text) => el("span", { className: Date.parse(text) < Date.now() ? "overdue" : null }, relative(text));

  // ---- DOM helpers (text only: nothing from the API is ever parsed as HTML) ------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const serverLink = (id) => el("a", { href: `#/server/${encodeURIComponent(id)}`, className: "mono" }, id);
  const accountLink = (id) => el("a", { href: `#/account/${encodeURIComponent(id)}`, className: "mono" }, id);
  const money = (fen) => el("span", { className: fen < 0 ? "neg" : null }, yuan(fen));

  function say(text, isError) {
    const box = $("message");
    box.textContent = text;
    box.className = isError ? "error" : "";
    box.hidden = !text;
  }

  // ---- the ops API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    /** The API's own words, then its status and code. */
    get shown() { return this.status ? `${this.message} (${this.status} ${this.code})` : this.message; }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(BASE + path, init);
    } catch (e) {
      throw new ApiError(0, "network", `could not reach the API: ${e.message}`);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const error = data && data.error;
      const err = new ApiError(response.status, error && error.code ? error.code : `http_${response.status}`,
                               error && error.message ? error.message : (text || response.statusText));
      if (response.status === 401) signOut(err.shown);
      throw err;
    }
    return data;
  }

  // ---- tables -------------------------------------------------------------------------------------
  /** columns: [{label, cell(item) → node|text, className}] */
  function fillTable(table, columns, items, { append = false, empty = "none" } = {}) {
    const head = table.tHead;
    if (head && !head.rows.length) head.append(el("tr", {}, columns.map((c) => el("th", { className: c.className }, c.label))));
    const body = table.tBodies[0];
    if (!append) body.replaceChildren();
    for (const item of items) {
      body.append(el("tr", { "data-id": item.id || item.server_id || item.account_id || null },
        columns.map((c) => el("td", { className: c.className }, c.cell(item)))));
    }
    if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: columns.length, className: "empty" }, empty)));
  }

  function tableError(table, err) {
    const columns = table.tHead.rows[0] ? table.tHead.rows[0].cells.length : 1;
    table.tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: columns, className: "error" }, err.shown)));
  }

  /** Extra fields of a row (notification details, audit fields) as "key=value" text. */
  function rest(item, known) {
    return Object.entries(item).filter(([k, v]) => !known.includes(k) && v !== null && v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  }

  // ---- the lists page ----------------------------------------------------------------------------
  const LISTS = {
    expiring: {
      table: "list-expiring",
      path: () => `/ops/lists/expiring?days=${encodeURIComponent($("expiring-days").value || "7")}`,
      columns: [
        { label: "server", cell: (i) => serverLink(i.server_id) },
        { label: "account", cell: (i) => accountLink(i.account_id) },
        { label: "plan", cell: (i) => i.plan_id },
        { label: "expires at", cell: (i) => shanghai(i.expires_at), className: "time" },
        { label: "in", cell: (i) => countdown(i.expires_at) },
      ],
    },
    awaiting: {
      table: "list-awaiting",
      path: () => "/ops/lists/awaiting-destruction",
      columns: [
        { label: "server", cell: (i) => serverLink(i.server_id) },
        { label: "account", cell: (i) => accountLink(i.account_id) },
        { label: "plan", cell: (i) => i.plan_id },
        { label: "retained until", cell: (i) => shanghai(i.retain_until), className: "time" },
        { label: "destroyed", cell: (i) => countdown(i.retain_until) },
      ],
    },
    arrears: {
      table: "list-arrears",
      path: () => "/ops/lists/arrears",
      columns: [
        { label: "account", cell: (i) => accountLink(i.account_id) },
        { label: "balance", cell: (i) => money(i.balance), className: "money" },
      ],
    },
    dead: {
      table: "list-dead",
      path: () => "/ops/dead-letters",
      columns: [
        { label: "action", cell: (i) => i.id, className: "id" },
        { label: "server", cell: (i) => serverLink(i.server_id) },
        { label: "kind", cell: (i) => i.kind },
        { label: "attempts", cell: (i) => i.attempts },
        { label: "error", cell: (i) => i.error || "" },
        { label: "", cell: (i) => el("button", { type: "button", className: "replay", onclick: () => replay(i) }, "Replay…") },
      ],
    },
    grants: {
      table: "list-grants",
      path: () => `/ops/lists/grants?month=${encodeURIComponent($("grants-month").value || thisMonth())}`,
      columns: [
        { label: "server", cell: (i) => serverLink(i.server_id) },
        { label: "account", cell: (i) => accountLink(i.account_id) },
        { label: "days", cell: (i) => i.days },
        { label: "granted at", cell: (i) => shanghai(i.granted_at), className: "time" },
        { label: "ticket", cell: (i) => i.ticket_id || "" },
      ],
    },
  };

  async function loadList(name, cursor) {
    const def = LISTS[name];
    const table = $(def.table);
    const box = table.parentElement;
    const old = box.querySelector(".more");
    if (old) old.remove();
    table.dataset.state = "loading";  // ready / error once answered (the browser tests wait on it)
    let page;
    try {
      const path = def.path();
      page = await api("GET", cursor ? `${path}${path.includes("?") ? "&" : "?"}cursor=${encodeURIComponent(cursor)}` : path);
    } catch (err) {
      tableError(table, err);
      table.dataset.state = "error";
      return;
    }
    fillTable(table, def.columns, page.items, { append: Boolean(cursor) });
    table.dataset.state = "ready";
    if (page.next) {
      box.append(el("button", { type: "button", className: "more", onclick: () => loadList(name, page.next) }, "More…"));
    }
  }

  function showLists() {
    if (!$("grants-month").value) $("grants-month").value = thisMonth();
    show("page-lists");
    for (const name of Object.keys(LISTS)) loadList(name);
  }

  // ---- confirmation dialog -------------------------------------------------------------------------
  let pending = null;

  function confirmAction({ title, text, reasons, note, run }) {
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-reason-row").hidden = !reasons;
    $("confirm-reason").replaceChildren(...(reasons || []).map((r) => el("option", { value: r }, r)));
    $("confirm-note-row").hidden = !note;
    $("confirm-note").value = "";
    $("confirm-error").hidden = true;
    $("confirm-ok").disabled = false;
    pending = run;
    $("confirm").hidden = false;
    (reasons ? $("confirm-reason") : note ? $("confirm-note") : $("confirm-ok")).focus();
  }

  function closeConfirm() {
    $("confirm").hidden = true;
    pending = null;
  }

  async function onConfirm(event) {
    event.preventDefault();
    if (!pending) return;
    $("confirm-ok").disabled = true;
    const reason = $("confirm-reason-row").hidden ? undefined : $("confirm-reason").value;
    const note = $("confirm-note-row").hidden ? undefined : $("confirm-note").value;
    try {
      await pending(reason, note);
      closeConfirm();
    } catch (err) {
      // the dialog stays open with the API's words, so the operator sees why nothing happened
      $("confirm-error").textContent = err.shown || String(err);
      $("confirm-error").hidden = false;
      $("confirm-ok").disabled = false;
    }
  }

  function replay(item) {
    confirmAction({
      title: `Replay ${item.kind} of ${item.server_id}`,
      text: `Give dead cluster action ${item.id} a fresh set of attempts and run it now.`,
      run: async () => {
        const answer = await api("POST", `/ops/dead-letters/${encodeURIComponent(item.id)}/replay`);
        const a = answer.action || {};
        // in AWS the API only wakes the cluster_actions function (`queued`): the action is pending until it runs
        say(`Replayed ${a.id || item.id}: now ${a.status}` + (a.attempts ? ` after ${a.attempts} attempt(s)` : "")
            + (answer.queued ? " (handed to the cluster_actions worker)" : "") + (a.error ? ` — ${a.error}` : ""));
        route();
      },
    });
  }

  // ---- the server page -------------------------------------------------------------------------
  function fields(dl, pairs) {
    dl.replaceChildren(...pairs.filter(Boolean).flatMap(([label, value, id]) => [
      el("dt", {}, label), el("dd", { id }, value === null || value === undefined || value === "" ? "—" : value)]));
  }

  const LEDGER = [
    { label: "at", cell: (r) => shanghai(r.at), className: "time" },
    { label: "kind", cell: (r) => r.kind },
    { label: "amount", cell: (r) => (r.amount === undefined ? "" : money(r.amount)), className: "money" },
    { label: "cash", cell: (r) => (r.cash === undefined ? "" : yuan(r.cash)), className: "money" },
    { label: "balance after", cell: (r) => (r.balance_after === undefined ? "" : money(r.balance_after)), className: "money" },
    { label: "expiry before → after", cell: (r) => (r.expires_at_before || r.expires_at_after ? `${shanghai(r.expires_at_before) || "—"} → ${shanghai(r.expires_at_after) || "—"}` : "") },
    { label: "rule", cell: (r) => r.rule, className: "nowrap" },
    { label: "details", cell: (r) => rest(r, ["at", "kind", "amount", "cash", "balance_after", "balance_before", "expires_at_before", "expires_at_after", "rule", "account_id", "server_id"]) },
  ];
  // the account's ledger spans its servers: one more column says whose row it is
  const ACCOUNT_LEDGER = [LEDGER[0], { label: "server", cell: (r) => (r.server_id ? serverLink(r.server_id) : "") }, ...LEDGER.slice(1)];
  const NOTIFICATIONS = [
    { label: "kind", cell: (n) => n.kind },
    { label: "at", cell: (n) => shanghai(n.at), className: "time" },
    { label: "status", cell: (n) => n.status || "" },
    { label: "details", cell: (n) => rest(n, ["kind", "at", "status", "cause"]) },
  ];
  const AUDIT = [
    { label: "at", cell: (a) => shanghai(a.at), className: "time" },
    { label: "action", cell: (a) => a.action },
    { label: "actor", cell: (a) => a.actor },
    { label: "details", cell: (a) => rest(a, ["at", "action", "actor"]) },
  ];

  /** A view list, and an "Older…" button when the view says older entries exist (`<list>_next`). */
  function viewList(table, columns, view, name, basePath) {
    fillTable(table, columns, view[name] || []);
    const box = table.parentElement;
    box.querySelectorAll(`.more[data-list="${name}"]`).forEach((b) => b.remove());
    const next = view[`${name}_next`];
    if (!next) return;
    const more = el("button", {
      type: "button", className: "more", "data-list": name, onclick: async () => {
        try {
          const page = await api("GET", `${basePath}/${name}?before=${encodeURIComponent(next)}`);
          const older = { [name]: [...page.items, ...view[name]], [`${name}_next`]: page.next };
          viewList(table, columns, older, name, basePath);
        } catch (err) { say(err.shown, true); }
      },
    }, `Older ${name}…`);
    table.after(more);
  }

  function freePeriod(fp) {
    if (!fp) return null;
    return [fp.decision, fp.days !== undefined ? `${fp.days} days` : null, fp.reason,
      fp.granted_at ? `granted ${shanghai(fp.granted_at)}` : null, fp.due_by ? `due by ${shanghai(fp.due_by)}` : null]
      .filter(Boolean).join(" · ");
  }

  async function showServer(id) {
    show("page-server");
    $("server-id").textContent = id;
    let view;
    try {
      view = await api("GET", `/ops/servers/${encodeURIComponent(id)}`);
    } catch (err) {
      say(err.shown, true);
      return;
    }
    const state = $("server-state");
    state.textContent = view.state;
    state.className = `badge ${view.state}`;
    fields($("server-fields"), [
      ["state", view.state, "f-state"],
      ["stop reason", view.stop_reason, "f-stop-reason"],
      ["all stop reasons", (view.stop_reasons || []).join(", "), "f-stop-reasons"],
      ["termination reason", view.termination_reason, "f-termination"],
      ["account", accountLink(view.account_id), "f-account"],
      ["billing mode", view.billing_mode],
      ["plan", view.plan_id],
      ["region", view.region],
      ["service start", shanghai(view.service_start)],
      ["expires at", view.expires_at ? `${shanghai(view.expires_at)} (${relative(view.expires_at)})` : null, "f-expires"],
      ["retained until", view.retain_until ? `${shanghai(view.retain_until)} (destruction ${relative(view.retain_until)})` : null, "f-retain"],
      ["free period", freePeriod(view.free_period), "f-free-period"],
    ]);
    const base = `/ops/servers/${encodeURIComponent(id)}`;
    fillTable($("server-actions"), [
      { label: "id", cell: (a) => a.id, className: "id" },
      { label: "kind", cell: (a) => a.kind },
      { label: "status", cell: (a) => a.status },
      { label: "attempts", cell: (a) => a.attempts },
      { label: "error", cell: (a) => a.error || "" },
      { label: "", cell: (a) => (a.status === "dead" ? el("button", { type: "button", className: "replay", onclick: () => replay({ ...a, server_id: id }) }, "Replay…") : "") },
    ], view.cluster_actions || []);
    viewList($("server-ledger"), LEDGER, view, "ledger", base);
    viewList($("server-notifications"), NOTIFICATIONS, view, "notifications", base);
    $("server-audit-box").hidden = !Array.isArray(view.audit);
    if (Array.isArray(view.audit)) viewList($("server-audit"), AUDIT, view, "audit", base);
    const destroyed = view.state === "destroyed";
    $("do-suspend").disabled = destroyed;
    $("do-resume").disabled = destroyed;
    $("do-terminate").disabled = destroyed;
  }

  function currentServer() { return $("server-id").textContent; }

  function serverAction(kind) {
    const id = currentServer();
    const path = `/ops/servers/${encodeURIComponent(id)}/${kind}`;
    const specs = {
      suspend: { title: `Suspend ${id}`, text: "Stops the server and keeps its data until an operator resumes it.",
        reasons: ["violation", "security_incident"], note: true },
      resume: { title: `Resume ${id}`, text: "Lifts the operator suspension; other stop reasons stay.", note: true },
      terminate: { title: `Terminate ${id}`, text: "Ends the service now (R-LIFE-5). This cannot be undone.",
        reasons: ["user_closed", "replaced", "breach", "security_incident", "provider_announcement", "consensus"], note: true },
    };
    confirmAction({
      ...specs[kind],
      run: async (reason, note) => {
        const body = {};
        if (reason) body.reason = reason;
        if (note) body.note = note;
        const answer = await api("POST", path, body);
        if (kind === "terminate") say(`Terminated ${id}: refund ${yuan(answer.refund)}`);
        else say(`${kind === "suspend" ? "Suspended" : "Resumed"} ${id}: now ${answer.state}`);
        await showServer(id);
      },
    });
  }

  // ---- the account page ----------------------------------------------------------------------------
  async function showAccount(id) {
    show("page-account");
    $("account-id").textContent = id;
    let view;
    try {
      view = await api("GET", `/ops/accounts/${encodeURIComponent(id)}`);
    } catch (err) {
      say(err.shown, true);
      return;
    }
    fields($("account-fields"), [
      ["balance", money(view.balance), "f-balance"],
      ["in arrears", view.in_arrears ? "yes" : "no", "f-arrears"],
      ["violation", view.violation ? "yes" : "no"],
      ["agreement ended", view.agreement_ended ? "yes" : "no"],
      ["servers", view.server_count !== undefined ? view.server_count : view.servers.length, "f-server-count"],
    ]);
    const base = `/ops/accounts/${encodeURIComponent(id)}`;
    serverList(view.servers, view.servers_next, base);
    viewList($("account-ledger"), ACCOUNT_LEDGER, view, "ledger", base);
    viewList($("account-notifications"), NOTIFICATIONS, view, "notifications", base);
    $("account-audit-box").hidden = !Array.isArray(view.audit);
    if (Array.isArray(view.audit)) viewList($("account-audit"), AUDIT, view, "audit", base);
  }

  /** The account's servers; "Older servers…" pages back when the view holds only the latest ones. */
  function serverList(servers, next, base) {
    const list = $("account-servers");
    list.replaceChildren(...(servers.length ? servers.map((s) => el("li", {}, serverLink(s))) : [el("li", {}, "none")]));
    list.parentElement.querySelectorAll('.more[data-list="servers"]').forEach((b) => b.remove());
    if (!next) return;
    list.after(el("button", {
      type: "button", className: "more", "data-list": "servers", onclick: async () => {
        try {
          const page = await api("GET", `${base}/servers?before=${encodeURIComponent(next)}`);
          serverList([...page.items, ...servers], page.next, base);
        } catch (err) { say(err.shown, true); }
      },
    }, "Older servers…"));
  }

  // ---- sign-in and routing ---------------------------------------------------------------------------
  function show(page) {
    for (const id of ["signin", "page-lists", "page-server", "page-account"]) $(id).hidden = id !== page;
    $("nav").hidden = page === "signin";
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    closeConfirm();
    say("");
    show("signin");
    $("signin-error").textContent = reason || "";
    $("signin-error").hidden = !reason;
  }

  async function signIn(event) {
    event.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api("GET", "/ops/lists/arrears?limit=1");  // a cheap call that checks the token
    } catch (err) {
      if (err.status !== 401) signOut(err.shown);
      return;
    }
    $("signin-error").hidden = true;
    route();
  }

  /** The id a `#/server/<id>` or `#/account/<id>` link names, or null when its percent-encoding is
   *  malformed (decodeURIComponent throws on "%E0%A4%A"). */
  function linkedId(encoded) {
    try { return decodeURIComponent(encoded); } catch (e) { return null; }
  }

  function route() {
    if (!token()) { signOut(); return; }
    const match = /^#\/(server|account)\/(.+)$/.exec(location.hash);
    if (!match) { showLists(); return; }
    const id = linkedId(match[2]);
    if (id === null) {
      show(null);  // not the previous page: it would look like the one the link names
      say(`This link names no ${match[1]}: "${match[2]}" is not a valid percent-encoded id. ` +
          `Open a ${match[1]} by its id above, or go back to Today.`, true);
      return;
    }
    if (match[1] === "server") showServer(id);
    else showAccount(id);
  }

  function onHashChange() {
    say("");
    route();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut());
    $("lookup").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("lookup-id").value.trim();
      if (id) location.hash = `#/${$("lookup-kind").value}/${encodeURIComponent(id)}`;
    });
    $("expiring-days").addEventListener("change", () => loadList("expiring"));
    $("grants-month").addEventListener("change", () => loadList("grants"));
    $("do-suspend").addEventListener("click", () => serverAction("suspend"));
    $("do-resume").addEventListener("click", () => serverAction("resume"));
    $("do-terminate").addEventListener("click", () => serverAction("terminate"));
    $("confirm-form").addEventListener("submit", onConfirm);
    $("confirm-cancel").addEventListener("click", closeConfirm);
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeConfirm(); });
    window.addEventListener("hashchange", onHashChange);
    route();
  });
}());
