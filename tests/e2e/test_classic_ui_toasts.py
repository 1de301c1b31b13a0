"""Classic UI in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium): editors see alerts as toasts, users who may
not view the object see nothing, and a page survives a sidecar restart.

Screenshots go to test-artifacts/ (or $EDUHUB_TEST_ARTIFACTS).
"""

from pathlib import Path
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import os
import pytest
import shutil
import time


pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("EDUHUB_TEST_ARTIFACTS", "test-artifacts"))
WAIT = 20


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        raise RuntimeError(
            "browser tests need Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def open_browser(tmp_path_factory):
    browser, driver = chromium_paths()
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    drivers = []

    def open_():
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1280,900",
            f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        ):
            options.add_argument(flag)
        session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
        drivers.append(session)
        return session

    yield open_
    for session in drivers:
        session.quit()


def log_in(browser, stack, user: str, password: str):
    browser.get(f"{stack.plone_url}/login")
    browser.find_element(By.NAME, "__ac_name").send_keys(user)
    browser.find_element(By.NAME, "__ac_password").send_keys(password)
    browser.find_element(By.NAME, "buttons.login").click()
    WebDriverWait(browser, WAIT).until(lambda b: "/login" not in b.current_url)
    browser.get(stack.plone_url)
    wait_for_status(browser, "open")


def wait_for_status(browser, status: str):
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, f".eduhub-alerts-status[data-status='{status}']")
    )


def toast_titles(browser) -> list[str]:
    return [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".eduhub-alert-title")]


def wait_for_toast(browser, title: str) -> float:
    """Wait until a toast with ``title`` shows; return the seconds it took."""
    start = time.monotonic()
    WebDriverWait(browser, WAIT).until(lambda b: title in toast_titles(b))
    return time.monotonic() - start


def screenshot(browser, name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def create_and_transition(admin, stack, doc_id: str, title: str, transition: str):
    response = admin.post(stack.plone_url, json={"@type": "Document", "id": doc_id, "title": title})
    assert response.status_code == 201, response.text
    response = admin.post(f"{stack.plone_url}/{doc_id}/@workflow/{transition}")
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def people(make_user):
    return {
        "teacher": make_user("teacher", ["Editor"]),
        "pupil": make_user("pupil", ["Member"]),
    }


def test_editor_sees_a_toast_and_a_member_only_what_they_may_view(
    stack, admin, people, open_browser
):
    teacher, pupil = open_browser(), open_browser()
    log_in(teacher, stack, "teacher", people["teacher"].password)
    log_in(pupil, stack, "pupil", people["pupil"].password)

    create_and_transition(admin, stack, "marks", "Exam marks", "submit")
    create_and_transition(admin, stack, "sports-day", "Sports day", "publish")

    took = wait_for_toast(teacher, "Submit for publication: Exam marks")
    print(f"\ntoast shown {took * 1000:.0f} ms after the publish request returned")
    wait_for_toast(teacher, "Publish: Sports day")
    wait_for_toast(pupil, "Publish: Sports day")
    # Alerts arrive in order: the submitted page's would have come first.
    assert toast_titles(pupil) == ["Publish: Sports day"]

    toast = teacher.find_element(By.CSS_SELECTOR, ".eduhub-alert-success")
    assert toast.find_element(By.CSS_SELECTOR, "a.eduhub-alert-link").get_attribute("href") == (
        f"{stack.plone_url}/sports-day"
    )
    live_region = teacher.find_element(By.CSS_SELECTOR, ".eduhub-alerts-stack")
    assert live_region.get_attribute("aria-live") == "polite"
    screenshot(teacher, "classic-ui-editor-toasts")
    screenshot(pupil, "classic-ui-member-toasts")


def test_page_reconnects_after_a_sidecar_restart_and_shows_what_it_missed(
    stack, stack_runner, admin, people, open_browser
):
    teacher = open_browser()
    log_in(teacher, stack, "teacher", people["teacher"].password)

    stack_runner.stop_sidecar()
    wait_for_status(teacher, "reconnecting")
    create_and_transition(admin, stack, "canteen", "Canteen menu", "publish")
    stack_runner.start_sidecar()

    wait_for_status(teacher, "open")
    wait_for_toast(teacher, "Publish: Canteen menu")
    screenshot(teacher, "classic-ui-after-sidecar-restart")


def test_anonymous_visitors_get_no_live_alerts(stack, open_browser):
    visitor = open_browser()
    visitor.get(stack.plone_url)
    WebDriverWait(visitor, WAIT).until(lambda b: b.execute_script("return document.readyState") == "complete")
    assert visitor.find_elements(By.CSS_SELECTOR, ".eduhub-alerts") == []
    # One script call: Plone's own scripts add and remove <script> elements
    # while the page settles, so element handles can go stale between calls.
    loaded = visitor.execute_script(
        "return Array.from(document.scripts, s => s.src)"
        ".concat(performance.getEntriesByType('resource').map(r => r.name))"
    )
    assert not [url for url in loaded if "eduhub-alerts" in url]


def test_operators_status_page_shows_the_connection_and_alerts(stack, admin, people, open_browser):
    page = open_browser()
    page.get(f"{stack.sidecar_url}/status")
    page.find_element(By.ID, "token").send_keys(people["teacher"].alerts_token()["token"])
    page.find_element(By.CSS_SELECTOR, "#connect button[type=submit]").click()
    WebDriverWait(page, WAIT).until(
        lambda b: b.find_element(By.ID, "status").get_attribute("data-status") == "open"
    )
    create_and_transition(admin, stack, "assembly", "Assembly moved", "publish")
    WebDriverWait(page, WAIT).until(
        lambda b: "Publish: Assembly moved"
        in [t.text for t in b.find_elements(By.CSS_SELECTOR, "#alerts .alert-title")]
    )
    screenshot(page, "sidecar-status-page")


def test_a_user_mutes_live_alerts_and_the_choice_follows_them(stack, admin, make_user, open_browser):
    parent = make_user("parent", ["Member"])
    page = open_browser()
    log_in(page, stack, "parent", parent.password)
    page.find_element(By.CSS_SELECTOR, ".eduhub-alerts-toggle").click()
    wait_for_status(page, "muted")
    assert parent.session.get(f"{stack.plone_url}/@alerts-preferences").json() == {"muted": True}

    create_and_transition(admin, stack, "trip", "School trip", "publish")
    page.get(stack.plone_url)  # another page: still muted, from the member data
    wait_for_status(page, "muted")
    assert toast_titles(page) == []
    screenshot(page, "classic-ui-muted")

    page.find_element(By.CSS_SELECTOR, ".eduhub-alerts-toggle").click()
    wait_for_status(page, "open")
    create_and_transition(admin, stack, "trip-2", "Second trip", "publish")
    wait_for_toast(page, "Publish: Second trip")
