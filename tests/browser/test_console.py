"""The operators' console in a real headless Chromium against the local stack (`make run` on free ports,
schedules off): sign in, the day's lists, a server found in the expiring list and suspended with a
reason, a terminate showing the refund the API answered, the account page, a dead letter replayed."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from dateutil.relativedelta import relativedelta
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests import support

TOKEN = "local-ops-token"  # the local stack's default OPS_API_TOKENS
PAY_SECRET, TICKET_SECRET = "local_payments_secret", "local_ticketing_secret"
SHANGHAI = ZoneInfo("Asia/Shanghai")
WAIT = 20  # seconds an element may take to appear (the local stack answers in well under a second)


# ---- the expected texts, computed independently of the console's JavaScript ---------------------------
def yuan(fen: int) -> str:
    """12345 → "¥123.45", -60 → "-¥0.60" (integer arithmetic)."""
    sign, fen = ("-" if fen < 0 else ""), abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def shown_time(text: str) -> str:
    """An RFC 3339 time as the console shows it: Asia/Shanghai, seconds only when not zero."""
    local = datetime.fromisoformat(text).astimezone(SHANGHAI)
    return local.strftime("%Y-%m-%d %H:%M") + (local.strftime(":%S") if local.second else "")


def rfc(value: datetime) -> str:
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds")


# ---- the stack and its data ----------------------------------------------------------------------------
class Stack:
    def __init__(self, running: dict):
        self.api = running["api"]
        # As the contract's senders do, a dropped connection is retried (a webhook's event id makes the
        # retry a duplicate; the seeding's sweeps and drains are repeatable). `chalice local` on a loaded
        # machine has been seen to close a connection without answering.
        self.http = requests.Session()
        retry = Retry(total=3, connect=3, read=3, status=0, allowed_methods=None, backoff_factor=0)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))

    def send(self, event_type: str, data: dict, secret: str = PAY_SECRET, path: str = "/webhooks/payments") -> dict:
        body = json.dumps(support.envelope(event_type, data)).encode()
        response = self.http.post(self.api + path, data=body, timeout=60, headers={
            "Content-Type": "application/json", "X-Signature": support.sign(body, secret)})
        assert response.status_code == 200, response.text
        return response.json()["outcome"]

    def ticket(self, event_type: str, data: dict) -> dict:
        return self.send(event_type, data, TICKET_SECRET, "/webhooks/ticketing")

    def ops(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.http.request(method, self.api + path, json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text
        return response.json()

    def buy(self, server: str, account: str, paid_at: datetime, months: int, plan="std-2c4g", mode="monthly") -> None:
        price = {"std-2c4g": 10000, "pro-4c8g": 30000}[plan]
        extra = {"months": months} if mode == "monthly" else {}
        outcome = self.send("order.paid", support.order_paid(
            f"ord-{server}", account, server, "new", rfc(paid_at), price * months if mode == "monthly" else 0,
            billing_mode=mode, plan_id=plan, region="cn-north-1", **extra))
        assert outcome["decision"] == "applied", outcome


@pytest.fixture(scope="module")
def stack():
    """The local stack with a day's worth of work, dated around the wall clock (the console's "now")."""
    with support.local_stack() as running:
        s = Stack(running)
        now = datetime.now(timezone.utc)
        s.buy("srv-exp", "acc-console", now - relativedelta(months=1, days=-3), 1)     # expires in ~3 days
        s.buy("srv-term", "acc-console", now - relativedelta(days=10), 3, plan="pro-4c8g")
        s.buy("srv-grant", "acc-console", now - relativedelta(days=20), 6)
        s.buy("srv-dead", "acc-dead", now - relativedelta(months=1, days=2), 1)         # expired 2 days ago
        s.buy("srv-payg", "acc-payg", now - relativedelta(hours=1), 0, mode="payg")
        # a free period granted now (R-FREE-1: submitted 15 days ago, approved 5 days ago → 10 days)
        s.ticket("filing.submitted", {"filing_id": "fil-1", "server_id": "srv-grant", "website": "shop.example.cn",
                                      "is_change": False, "submitted_at": rfc(now - relativedelta(days=15))})
        s.ticket("filing.approved", {"filing_id": "fil-1", "approved_at": rfc(now - relativedelta(days=5))})
        s.ticket("compensation.requested", {"ticket_id": "tk-1", "filing_id": "fil-1", "server_id": "srv-grant",
                                            "requested_at": rfc(now - relativedelta(days=4))})
        granted = s.ticket("compensation.accepted", {"ticket_id": "tk-1", "engineer_id": "eng-1",
                                                     "accepted_at": rfc(now - relativedelta(minutes=1))})
        assert (granted["decision"], granted["days"]) == ("granted", 10)
        # R-LIFE-1: the sweep stops srv-dead; with no kubeconfig its stop fails 5 times (R-CLU-4) → dead letter
        s.ops("POST", "/ops/sweeps/expiry", {})
        for _ in range(5):
            s.ops("POST", "/ops/cluster-actions/drain")
        # R-PAY-6/7: pay-as-you-go hours on a zero balance put acc-payg in arrears
        s.ops("POST", "/ops/sweeps/metering", {"now": rfc(now + relativedelta(hours=2))})
        assert s.ops("GET", "/ops/accounts/acc-payg")["in_arrears"] is True
        yield s


# ---- driving the page ------------------------------------------------------------------------------
def wait(driver, condition, timeout: float = WAIT):
    return WebDriverWait(driver, timeout).until(condition)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def row(list_id: str, data_id: str) -> tuple[str, str]:
    return By.CSS_SELECTOR, f'#{list_id} tbody tr[data-id="{data_id}"]'


def assert_no_token_in_url(driver) -> None:
    assert TOKEN not in driver.current_url
    assert "token" not in driver.current_url.lower()


def open_console(driver, stack) -> None:
    """Open the console, signed in (the token is kept for the tab, so a later test may find it there)."""
    driver.get(stack.api + "/console")
    signin = driver.find_element(By.ID, "signin")
    wait(driver, lambda d: signin.is_displayed() or d.find_element(By.ID, "page-lists").is_displayed())
    if signin.is_displayed():
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(driver, EC.visibility_of_element_located((By.ID, "page-lists")))


def confirm(driver, reason: str | None = None, note: str | None = None) -> None:
    wait(driver, EC.visibility_of_element_located((By.ID, "confirm")))
    if reason is not None:
        Select(driver.find_element(By.ID, "confirm-reason")).select_by_value(reason)
    if note is not None:
        driver.find_element(By.ID, "confirm-note").send_keys(note)
    driver.find_element(By.ID, "confirm-ok").click()


def open_server(driver, server_id: str) -> None:
    driver.find_element(By.ID, "lookup-id").clear()
    driver.find_element(By.ID, "lookup-id").send_keys(server_id)
    driver.find_element(By.CSS_SELECTOR, "#lookup button").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "server-id"), server_id))
    wait(driver, lambda d: d.find_element(By.ID, "server-state").text != "")


# ---- the tests -------------------------------------------------------------------------------------
def test_sign_in_keeps_the_token_in_the_tab_and_out_of_urls(browser, stack):
    """A wrong token shows the API's own refusal; the right one is kept in sessionStorage only."""
    browser.get(stack.api + "/console")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, EC.visibility_of_element_located((By.ID, "signin")))
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    error = wait(browser, EC.visibility_of_element_located((By.ID, "signin-error")))
    assert error.text == "a valid Authorization: Bearer <token> is required (401 unauthorized)"
    assert browser.execute_script("return sessionStorage.length") == 0
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(browser, EC.visibility_of_element_located((By.ID, "page-lists")))
    assert browser.execute_script("return Object.values(sessionStorage)") == [TOKEN]
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert_no_token_in_url(browser)


def test_todays_lists_show_each_list_with_times_in_shanghai_and_money_in_yuan(browser, stack, screenshots):
    open_console(browser, stack)
    expiring = stack.ops("GET", "/ops/servers/srv-exp")
    dead = stack.ops("GET", "/ops/servers/srv-dead")
    payg = stack.ops("GET", "/ops/accounts/acc-payg")
    letters = stack.ops("GET", "/ops/dead-letters")["items"]
    cells = [c.text for c in wait(browser, EC.presence_of_element_located(row("list-expiring", "srv-exp")))
             .find_elements(By.TAG_NAME, "td")]
    assert cells[:4] == ["srv-exp", "acc-console", "std-2c4g", shown_time(expiring["expires_at"])]
    assert cells[4].startswith("in ")
    cells = [c.text for c in wait(browser, EC.presence_of_element_located(row("list-awaiting", "srv-dead")))
             .find_elements(By.TAG_NAME, "td")]
    assert cells[:4] == ["srv-dead", "acc-dead", "std-2c4g", shown_time(dead["retain_until"])]
    cells = [c.text for c in wait(browser, EC.presence_of_element_located(row("list-arrears", "acc-payg")))
             .find_elements(By.TAG_NAME, "td")]
    assert cells == ["acc-payg", yuan(payg["balance"])] and payg["balance"] < 0
    cells = [c.text for c in wait(browser, EC.presence_of_element_located(row("list-dead", letters[0]["id"])))
             .find_elements(By.TAG_NAME, "td")]
    assert cells[:4] == [letters[0]["id"], "srv-dead", "stop", "5"]
    cells = [c.text for c in wait(browser, EC.presence_of_element_located(row("list-grants", "srv-grant")))
             .find_elements(By.TAG_NAME, "td")]
    assert cells[:3] == ["srv-grant", "acc-console", "10"] and cells[4] == "tk-1"
    browser.save_screenshot(str(screenshots / "lists.png"))


def test_expiring_server_opened_from_the_list_and_suspended_with_a_reason(browser, stack, screenshots):
    """R-LIFE-2: an operator suspension stops the server; the page shows the new state, and resuming an
    unsuspended server shows the API's refusal in its own words."""
    open_console(browser, stack)
    wait(browser, EC.element_to_be_clickable((By.CSS_SELECTOR, '#list-expiring tr[data-id="srv-exp"] a[href="#/server/srv-exp"]'))).click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "active"))
    view = stack.ops("GET", "/ops/servers/srv-exp")
    assert browser.current_url.endswith("/console#/server/srv-exp")
    assert text_of(browser, "#f-expires").startswith(shown_time(view["expires_at"]) + " (in ")
    first = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#server-ledger tbody tr:first-child td")]
    assert first[:4] == [shown_time(view["ledger"][0]["at"]), "order_paid", "", yuan(10000)]  # cash ¥100.00

    browser.find_element(By.ID, "do-suspend").click()
    confirm(browser, reason="security_incident", note="abuse report 42")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "stopped"))
    assert text_of(browser, "#f-stop-reason") == "security_incident"
    assert text_of(browser, "#message") == "Suspended srv-exp: now stopped"
    assert not browser.find_element(By.ID, "confirm").is_displayed()
    view = stack.ops("GET", "/ops/servers/srv-exp")
    assert (view["state"], view["stop_reason"], view["retain_until"]) == ("stopped", "security_incident", None)
    assert [(a["kind"], a["status"]) for a in view["cluster_actions"]] == [("stop", "pending")]
    assert text_of(browser, "#server-actions tbody tr:last-child td:nth-child(2)") == "stop"
    # integration §6: the suspension is in the server's audit trail, with its actor, reason and note
    assert view["audit"][-1] == {"at": view["audit"][-1]["at"], "action": "suspend", "actor": "operator",
                                 "reason": "security_incident", "note": "abuse report 42"}
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#server-audit tbody tr:last-child td")]
    assert cells == [shown_time(view["audit"][-1]["at"]), "suspend", "operator",
                     "reason=security_incident · note=abuse report 42"]
    browser.save_screenshot(str(screenshots / "server.png"))
    # the server has left the expiring list (it is no longer active)
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="#/"]').click()
    # the lists page is shown in the same step that starts reloading the lists, so "shown and ready"
    # is a fresh answer, never the table of the earlier visit
    wait(browser, lambda d: d.find_element(By.ID, "page-lists").is_displayed()
         and d.find_element(By.ID, "list-expiring").get_attribute("data-state") == "ready")
    assert browser.find_elements(*row("list-expiring", "srv-exp")) == []

    open_server(browser, "srv-exp")
    browser.find_element(By.ID, "do-resume").click()
    confirm(browser, note="cleared")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "active"))
    assert text_of(browser, "#message") == "Resumed srv-exp: now active"
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#server-audit tbody tr:last-child td")][1:] == [
        "resume", "operator", 'note=cleared · lifted=["security_incident"]']
    browser.find_element(By.ID, "do-resume").click()
    confirm(browser)
    error = wait(browser, EC.visibility_of_element_located((By.ID, "confirm-error")))
    assert error.text == "server 'srv-exp' has no operator suspension (409 conflict)"
    browser.find_element(By.ID, "confirm-cancel").click()
    wait(browser, EC.invisibility_of_element_located((By.ID, "confirm")))
    assert stack.ops("GET", "/ops/servers/srv-exp")["state"] == "active"
    assert_no_token_in_url(browser)


def test_terminate_shows_the_refund_the_api_answered(browser, stack):
    """R-LIFE-5 (security incident): 3 months of pro-4c8g (90 000 fen) paid 10 days ago, terminated in
    the first month: refund 90 000 − 30 000 × 1 = 60 000 fen, credited to the account."""
    open_console(browser, stack)
    open_server(browser, "srv-term")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "active"))
    before = stack.ops("GET", "/ops/accounts/acc-console")["balance"]
    browser.find_element(By.ID, "do-terminate").click()
    confirm(browser, reason="security_incident")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "stopped"))
    assert text_of(browser, "#message") == "Terminated srv-term: refund ¥600.00"
    assert text_of(browser, "#f-termination") == "security_incident"
    assert stack.ops("GET", "/ops/accounts/acc-console")["balance"] == before + 60000


def test_account_page_shows_balance_servers_and_ledger(browser, stack, screenshots):
    open_console(browser, stack)
    open_server(browser, "srv-grant")
    assert "granted · 10 days" in text_of(browser, "#f-free-period")
    browser.find_element(By.CSS_SELECTOR, '#f-account a').click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "account-id"), "acc-console"))
    account = stack.ops("GET", "/ops/accounts/acc-console")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "f-balance"), yuan(account["balance"])))
    assert text_of(browser, "#f-server-count") == str(account["server_count"]) == "3"
    servers = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#account-servers a")]
    assert servers == account["servers"] and {"srv-exp", "srv-term", "srv-grant"} <= set(servers)
    ledger_rows = browser.find_elements(By.CSS_SELECTOR, "#account-ledger tbody tr")
    assert len(ledger_rows) == len(account["ledger"])
    assert shown_time(account["ledger"][0]["at"]) == ledger_rows[0].find_element(By.TAG_NAME, "td").text
    browser.save_screenshot(str(screenshots / "account.png"))


def test_R_CLU_4_dead_letter_replayed_from_the_list(browser, stack):
    """A replay gives the dead action fresh attempts and runs it now; without a kubeconfig it fails again
    (attempt 1 of a new set), so it leaves the dead list as failed."""
    open_console(browser, stack)
    [letter] = [i for i in stack.ops("GET", "/ops/dead-letters")["items"] if i["server_id"] == "srv-dead"]
    wait(browser, EC.presence_of_element_located(row("list-dead", letter["id"])))
    browser.find_element(By.CSS_SELECTOR, f'#list-dead tr[data-id="{letter["id"]}"] button.replay').click()
    confirm(browser)
    message = wait(browser, EC.visibility_of_element_located((By.ID, "message")))
    wait(browser, lambda d: message.text.startswith("Replayed"))
    assert message.text.startswith(f"Replayed {letter['id']}: now failed after 1 attempt(s) — no kubeconfig for server srv-dead")
    wait(browser, lambda d: d.find_element(By.ID, "list-dead").get_attribute("data-state") == "ready"
         and not d.find_elements(*row("list-dead", letter["id"])))
    assert [i["id"] for i in stack.ops("GET", "/ops/dead-letters")["items"]] == []
    replayed = [e for e in stack.ops("GET", "/ops/audit")["items"] if e["action"] == "replay_dead_letter"]
    assert [(e["actor"], e["action_id"], e["server_id"]) for e in replayed] == [("operator", letter["id"], "srv-dead")]
    view = stack.ops("GET", "/ops/servers/srv-dead")
    [action] = view["cluster_actions"]
    assert (action["status"], action["attempts"]) == ("failed", 1)
    # the server page: the retention countdown (R-LIFE-3) and the action's new status
    browser.find_element(By.CSS_SELECTOR, f'#list-awaiting tr[data-id="srv-dead"] a[href="#/server/srv-dead"]').click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-state"), "stopped"))
    assert text_of(browser, "#f-retain").startswith(f"{shown_time(view['retain_until'])} (destruction in ")
    assert text_of(browser, "#f-stop-reason") == "expired"
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#server-actions tbody tr td")]
    assert cells[1:4] == ["stop", "failed", "1"] and cells[4].startswith("no kubeconfig for server srv-dead")


def test_console_at_a_trailing_slash_loads_and_a_malformed_link_says_so(browser, stack):
    """Issue 17: at `/console/` the page's relative script and style resolved under `/console/console/`,
    which nothing serves (403 in API Gateway): a blank page. Now both load there. A `#/server/%E0%A4%A`
    link (malformed percent-encoding) made decodeURIComponent throw and left the previous page on screen;
    now the page is replaced by a message naming the link (no script error: see `no_script_errors`)."""
    open_console(browser, stack)  # signs in; the token stays in the tab
    browser.get(stack.api + "/console/#/server/srv-exp")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "server-id"), "srv-exp"))
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"
    assert browser.execute_script("return [...document.scripts].map((s) => s.src)") == [
        stack.api + "/console/console.js"]
    expected = ('This link names no server: "%E0%A4%A" is not a valid percent-encoded id. '
                "Open a server by its id above, or go back to Today.")
    browser.get(stack.api + "/console/#/server/%E0%A4%A")  # only the hash changes: the server page was on screen
    wait(browser, EC.text_to_be_present_in_element((By.ID, "message"), expected))
    assert not browser.find_element(By.ID, "page-server").is_displayed()
    assert browser.find_element(By.ID, "nav").is_displayed()
    browser.refresh()  # the same link opened afresh
    wait(browser, EC.text_to_be_present_in_element((By.ID, "message"), expected))
    assert [browser.find_element(By.ID, page).is_displayed() for page in ("page-lists", "page-server")] == [False, False]
    browser.get(stack.api + "/console/#/account/acc-console")  # a good link afterwards clears the message
    wait(browser, EC.text_to_be_present_in_element((By.ID, "account-id"), "acc-console"))
    assert not browser.find_element(By.ID, "message").is_displayed()
