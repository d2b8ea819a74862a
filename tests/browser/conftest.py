"""A real browser for the console tests: Debian's headless Chromium driven through its chromedriver
(installed by `make test` when missing; Selenium Manager cannot download anything here)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1360,1000", "--lang=en-US")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} is missing: `make test` installs chromium and chromium-driver"
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where the pages' screenshots go: `CONSOLE_SCREENSHOTS` (`make screenshots` sets docs/console),
    else a temporary folder, so an ordinary test run leaves the repository untouched."""
    target = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def no_script_errors(browser):
    """After each test: the page raised no JavaScript error and the CSP blocked nothing (an API's 4xx
    answer is logged by Chromium as a failed resource; that one is expected and allowed)."""
    browser.get_log("browser")  # drop what earlier tests left
    yield
    problems = [entry["message"] for entry in browser.get_log("browser")
                if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
    assert problems == []
