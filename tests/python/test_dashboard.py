"""The web dashboard at `/`, driven in a real headless Chromium through WebDriver (selenium with
Debian's chromium and chromium-driver, installed by scripts/browser-env.sh): what a person sees.

A task locks node 1 and another waits for the cluster's node limit; the test hovers the locked
node's tile and reads its colour (computed style) and its tooltip (the task, its owner and the
deadline), reads the waiting task's reason in the tasks table, then locks node 7 over gRPC and
waits (bounded) until the open page shows it, without a reload. With --auth the page asks for a
token once, keeps it out of the URL, and shows the same. Set ARBITER_DASHBOARD_SCREENSHOT=PATH to
also save the screenshot there (docs/dashboard.png in the README is made so).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from arbiter_testlib import (
    EXAMPLE_INVENTORY, FORCE, NODE_STATE_DOWN, RPC_TIMEOUT_S, _field_bytes, _field_varint, groups,
    states, ts_seconds,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15  # every wait is bounded; an update normally arrives within a second

LOCKED_RGB = "rgba(112, 72, 232, 1)"  # --locked in style.css
UP_RGB = "rgba(47, 158, 68, 1)"  # --up


def _require_browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the dashboard tests need Debian's chromium and "
                    "chromium-driver; install them with `bash scripts/browser-env.sh` (scripts/test.sh "
                    "does)", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is missing: install tests/python/requirements.txt "
                    "(bash scripts/python-env.sh)", pytrace=False)


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--no-first-run",
                "--disable-background-networking", "--disable-extensions"):
        opts.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, what, message):
    """Waits (bounded) until `what(driver)` is truthy. The page re-renders on every event, so an
    element found a moment ago may be gone: a stale reference is retried, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: what(d), message)


def fresh(driver, read):
    """`read(driver)`, found afresh if the page re-rendered under it (bounded retries)."""
    from selenium.common.exceptions import StaleElementReferenceException
    for _ in range(50):
        try:
            return read(driver)
        except StaleElementReferenceException:
            time.sleep(0.05)
    return read(driver)


def tile(driver, node):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, f"node-{node}")


def hover_tooltip(driver, node) -> str:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    def shown(d):
        ActionChains(d).move_to_element(tile(d, node)).perform()
        tip = d.find_element(By.ID, "tooltip")
        return tip.text if tip.is_displayed() and f"Node {node}" in tip.text else False
    return wait(driver, shown, f"the tooltip of node {node} never showed")


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The example cluster, plus a weekly window for the tenant's dynamic nodes (10-12).
WINDOW = """
[[windows]]
name = "compute-saturday"
zone = "Europe/Berlin"
days = ["sat"]
start = "02:00"
end = "04:00"
tenant = "/Root/db1"
"""


def set_freeze(client, data_center: str, reason: str, seconds: int) -> None:
    """arbiter.v1 SetFreeze on a data center (hand-encoded: no Python stubs for arbiter.v1)."""
    req = (_field_varint(1, 1) + _field_varint(2, 3) + _field_bytes(3, data_center.encode())
           + _field_bytes(4, reason.encode()) + _field_bytes(5, _field_varint(1, seconds)))
    call = client.channel.unary_unary("/arbiter.v1.ArbiterService/SetFreeze",
                                      request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
    call(req, timeout=RPC_TIMEOUT_S, metadata=client.metadata())


def task_row_text(driver, uid) -> str:
    from selenium.webdriver.common.by import By

    def read(d):
        rows = d.find_elements(By.CSS_SELECTOR, f'#tasks tr[data-task="{uid}"]')
        return "\n".join(r.text for r in rows)
    return fresh(driver, read)


def test_dashboard_shows_locks_reasons_and_live_updates(server_factory, browser, tmp_path):
    from selenium.webdriver.common.by import By

    inventory = tmp_path / "cluster-12-window.toml"
    inventory.write_text(EXAMPLE_INVENTORY.read_text() + WINDOW)
    srv = server_factory(inventory, extra_args=["--http-listen", "127.0.0.1:0"])
    alice = srv.client("alice")
    bob = srv.client("bob")
    created = alice.create("kernel-upgrade-n1", groups(1, duration=1800),
                           description="kernel 6.12 rollout").expect().result
    deadline = ts_seconds(states(created)[0].deadline)
    # The example cluster allows one unavailable node: node 4 waits for node 1.
    waiting = bob.create("disk-swap-n4", groups(4, duration=600)).expect().result
    assert [s.status for s in states(waiting)] != [s.status for s in states(created)]
    # Node 12 waits too: outside its window (or, on a Saturday night, for the node limit).
    bob.create("db-patch-n12", groups(12, duration=600), description="db1 patch").expect()

    browser.get(srv.http_url + "/")
    wait(browser, lambda d: d.find_elements(By.ID, "node-1"), "the page never showed node 1")
    browser.execute_script("window.__notReloaded = true;")

    # The locked node: the locked colour (as the legend shows it), the up colour elsewhere.
    wait(browser, lambda d: tile(d, 1).get_attribute("data-state") == "locked",
         "node 1 is not shown locked")
    colour = "background-color"
    assert fresh(browser, lambda d: tile(d, 1).value_of_css_property(colour)) == LOCKED_RGB
    legend = '#legend li[data-state="locked"]'
    swatch = fresh(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, legend + " .swatch").value_of_css_property(colour))
    assert swatch == LOCKED_RGB
    assert "locked" in fresh(browser, lambda d: d.find_element(By.CSS_SELECTOR, legend).text)
    assert fresh(browser, lambda d: tile(d, 2).value_of_css_property(colour)) == UP_RGB

    # Its tooltip names the task, its owner and the deadline.
    tip = hover_tooltip(browser, 1)
    assert "kernel-upgrade-n1" in tip, tip
    assert "owner alice" in tip, tip
    assert "kernel 6.12 rollout" in tip, tip
    shown = re.search(r"deadline\s+(\S+Z)", tip)
    assert shown, f"no deadline in the tooltip: {tip!r}"
    shown_s = datetime.strptime(shown.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(shown_s.timestamp() - deadline) <= 1, (shown.group(1), utc(deadline))
    assert re.search(r"in (29|30)m", tip), f"no countdown to the deadline: {tip!r}"

    # The waiting task says why, in plain words and with the engine's details.
    row = task_row_text(browser, "disk-swap-n4")
    assert "pending" in row, row
    assert "the cluster's limit of unavailable nodes is reached" in row, row
    assert "DISABLED_NODES_LIMIT_REACHED" in row, row
    assert "node 1" in row, row  # the details name the node that counts
    assert fresh(browser, lambda d: tile(d, 4).find_element(By.CLASS_NAME, "badge").text).endswith("1")

    # A lock made elsewhere shows up on the open page, without a reload.
    assert fresh(browser, lambda d: tile(d, 7).get_attribute("data-state")) == "up"
    srv.client("carol").create("emergency-n7", groups(7, duration=900), mode=FORCE).expect()
    wait(browser, lambda d: tile(d, 7).get_attribute("data-state") == "locked",
         "node 7 never turned locked on the open page")
    assert fresh(browser, lambda d: tile(d, 7).value_of_css_property("background-color")) == LOCKED_RGB
    wait(browser, lambda d: "emergency-n7" in task_row_text(d, "emergency-n7"),
         "the new task never appeared in the tasks table")
    wait(browser, lambda d: "lock granted" in d.find_element(By.ID, "audit").text,
         "the audit entries never showed the grant")
    assert browser.execute_script("return window.__notReloaded === true;"), "the page was reloaded"
    assert "live" in fresh(browser, lambda d: d.find_element(By.ID, "live").text)

    # A node set down by hand: red, and the tooltip says why.
    srv.client("admin").set_node_state(11, NODE_STATE_DOWN, "PSU replaced")
    wait(browser, lambda d: tile(d, 11).get_attribute("data-state") == "down",
         "node 11 never turned down on the page")
    assert "PSU replaced" in hover_tooltip(browser, 11)

    # A freeze and the window show as banners, live too.
    banners = fresh(browser, lambda d: d.find_element(By.ID, "banners").text)
    assert "Window compute-saturday:" in banners, banners
    assert "Sat 02:00-04:00 Europe/Berlin" in banners, banners
    assert re.search(r"(opens|open until) 20\d\d-", banners), banners
    set_freeze(srv.client("admin"), "dc-2", "incident 4711", 7200)
    wait(browser, lambda d: "Freeze:" in d.find_element(By.ID, "banners").text,
         "the freeze never showed as a banner")
    text = fresh(browser, lambda d: d.find_element(By.ID, "banners").text)
    assert "data center 'dc-2' is frozen by admin" in text and "incident 4711" in text, text
    dc2 = fresh(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, '.dc[data-dc="dc-2"]').find_element(By.TAG_NAME, "h3").text)
    assert "frozen" in dc2.lower()
    row = task_row_text(browser, "db-patch-n12")
    assert "pending" in row, row

    # The JSON behind it, as curl would read it.
    with urllib.request.urlopen(srv.http_url + "/ui/state", timeout=10) as r:
        assert r.headers["Cache-Control"] == "no-store"
        body = json.load(r)
    n1 = next(n for n in body["nodes"] if n["id"] == 1)
    assert n1["display"] == "locked" and n1["lock"]["task"] == "kernel-upgrade-n1"

    # The screenshot (a hovered tile shows its details in it).
    hover_tooltip(browser, 1)
    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("ARBITER_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["ARBITER_DASHBOARD_SCREENSHOT"])


def test_dashboard_with_auth_asks_for_a_token_and_keeps_it_out_of_urls(server_factory, browser,
                                                                       tmp_path):
    from selenium.webdriver.common.by import By

    token = "viewer-token-0123456789abcdef"
    auth = tmp_path / "users.toml"
    auth.write_text(f'[[users]]\nname = "vera"\ntoken = "{token}"\nrole = "viewer"\n\n'
                    '[[users]]\nname = "olga"\ntoken = "operator-token-0123456789abcd"\n'
                    'role = "operator"\n')
    srv = server_factory(EXAMPLE_INVENTORY, auth=auth,
                         extra_args=["--http-listen", "127.0.0.1:0"])
    srv.client("operator-token-0123456789abcd").create("olga-n2", groups(2, duration=600)).expect()

    # Without a token the data routes refuse; the page itself loads and asks.
    for path in ("/ui/state", "/ui/events"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.http_url + path, timeout=10)
        assert e.value.code == 401, path
    browser.get(srv.http_url + "/")
    form = browser.find_element(By.ID, "login")
    wait(browser, lambda d: form.is_displayed(), "the page never asked for a token")

    field = browser.find_element(By.ID, "login-token")
    field.send_keys("wrong-token-0123456789")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    error = browser.find_element(By.ID, "login-error")
    wait(browser, lambda d: error.is_displayed() and error.text.strip(),
         "a wrong token was not refused on the page")
    assert form.is_displayed()

    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: d.find_elements(By.ID, "node-2")
         and d.find_element(By.ID, "node-2").get_attribute("data-state") == "locked",
         "the page never showed node 2 locked after the token was given")
    assert not form.is_displayed()
    assert token not in browser.current_url
    assert token not in browser.page_source
    # The token lives in this tab's sessionStorage, not in a cookie.
    assert browser.get_cookies() == []
    assert browser.execute_script("return sessionStorage.getItem('arbiter.token');") == token
    assert token not in srv.logs(tail=10_000)


def test_event_stream_sends_the_state_and_ends_on_shutdown(server_factory):
    """The stream as curl reads it: an `event: state` with the JSON at once, the next one after a
    change; an open stream does not hold up a graceful shutdown."""
    import time

    srv = server_factory(EXAMPLE_INVENTORY, extra_args=["--http-listen", "127.0.0.1:0"])
    stream = urllib.request.urlopen(srv.http_url + "/ui/events", timeout=10)
    assert stream.headers["Content-Type"].startswith("text/event-stream")

    def next_state() -> dict:
        event, data = None, []
        while True:
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].lstrip())
            elif line == "" and data:
                assert event == "state", event
                return json.loads("\n".join(data))

    first = next_state()
    assert [n["display"] for n in first["nodes"]] == ["up"] * 12
    srv.client("alice").create("t1", groups(3, duration=600)).expect()
    # The change arrives with the next event (after the commit; the periodic re-send is 3 s).
    started = time.monotonic()
    while True:
        state = next_state()
        if next(n for n in state["nodes"] if n["id"] == 3)["display"] == "locked":
            break
        assert time.monotonic() - started < WAIT_S, "the lock never arrived on the stream"
    srv.stop()  # asserts exit 0 within the stop timeout, with the stream still open
    stream.close()
