"""The web UI, driven as a person would use it, in headless Chromium.

Uses Debian's chromium and chromedriver at fixed paths so that Selenium
Manager never tries to download a browser or a driver.
"""

import os
import secrets
import string

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 20

_missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]

pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason="web UI test needs Debian's chromium and chromedriver; missing: "
    + ", ".join(_missing),
)

if not _missing:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait


def _unique_word():
    # Letters only, so that every tokenizer keeps it as one word.
    return "zyx" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--user-data-dir=" + str(tmp_path / "chrome-profile"),
    ):
        options.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, message):
    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.2,
        ignored_exceptions=(StaleElementReferenceException,),
    ).until(condition, message)


def _error_banner(driver):
    banner = driver.find_element(By.ID, "error")
    if banner.is_displayed():
        return driver.find_element(By.ID, "error-message").text
    return ""


def _upload_state(driver, name):
    """(state, text) of the upload entry for the file called name, or None."""
    for item in driver.find_elements(By.CSS_SELECTOR, "#uploads .upload"):
        if item.get_attribute("data-name") == name:
            return item.get_attribute("data-state"), item.text
    return None


def _search(driver, query):
    """Runs a search through the UI and returns the result items once shown."""
    results = driver.find_element(By.ID, "results")
    before = int(results.get_attribute("data-seq") or "0")
    box = driver.find_element(By.ID, "search-input")
    box.clear()
    box.send_keys(query)
    driver.find_element(By.ID, "search-button").click()

    def finished(d):
        r = d.find_element(By.ID, "results")
        return (int(r.get_attribute("data-seq") or "0") > before
                and r.get_attribute("data-state") == "done")

    _wait(driver, finished, "search did not finish; error shown: %r" % _error_banner(driver))
    return driver.find_elements(By.CSS_SELECTOR, "#results li.result")


def _result_documents(items):
    return [i.find_element(By.CSS_SELECTOR, ".result-document").text for i in items]


def _document_row(driver, name):
    for row in driver.find_elements(By.CSS_SELECTOR, "#documents tbody tr.document"):
        if row.get_attribute("data-name") == name:
            return row
    return None


def test_upload_search_delete_through_the_ui(server, browser, tmp_path):
    word = _unique_word()
    name = "web-ui-%s.md" % word[3:9]
    path = tmp_path / name
    path.write_text(
        "# Web UI test\n\n"
        "## The unusual word\n\n"
        "This note exists only to be found by the word %s, which no other "
        "document contains. It was uploaded through the browser.\n" % word,
        encoding="utf-8",
    )

    browser.get(server.url + "/")
    assert browser.title == "ragd"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"),
          "collection dropdown never filled")

    # Upload through the file picker.
    browser.find_element(By.ID, "file-input").send_keys(str(path))
    _wait(browser, lambda d: (_upload_state(d, name) or ("",))[0] in ("done", "failed"),
          "upload of %s never reached done/failed; shown: %r, error: %r"
          % (name, _upload_state(browser, name), _error_banner(browser)))
    state, text = _upload_state(browser, name)
    assert state == "done", "upload ended %s: %s" % (state, text)

    # The document is listed once ingested.
    _wait(browser, lambda d: _document_row(d, name) is not None,
          "%s not listed among the documents" % name)
    row = _document_row(browser, name)
    assert row.get_attribute("data-status") == "ready"

    # Searching for the unique word finds it.
    items = _search(browser, word)
    assert items, "no results for %r; status: %r, error: %r" % (
        word, browser.find_element(By.ID, "search-status").text, _error_banner(browser))
    assert name in _result_documents(items)
    assert items[0].find_element(By.CSS_SELECTOR, ".result-rank").text == "#1"
    assert word in items[0].find_element(By.CSS_SELECTOR, ".result-text").text

    # Delete it through the UI (two clicks: arm, then confirm).
    def delete_button(d):
        row = _document_row(d, name)
        return row.find_element(By.CSS_SELECTOR, "button.delete-document") if row else None

    delete_button(browser).click()
    _wait(browser, lambda d: delete_button(d).get_attribute("data-armed") == "true",
          "delete button did not ask for confirmation")
    delete_button(browser).click()
    _wait(browser, lambda d: _document_row(d, name) is None,
          "%s still listed after delete; error: %r" % (name, _error_banner(browser)))
    assert _error_banner(browser) == ""

    # A new search no longer finds it.
    items = _search(browser, word)
    assert name not in _result_documents(items)
    assert _error_banner(browser) == ""
