"""The dashboard in a real headless Chromium, against a running robocall whose calls ran on
FakeSwitch: sign in, read the lines gauge and the requests' progress, follow a request to its
calls' step traces, and watch the page refresh itself when the last call ends.

The call still running while the pages are read is one transferred to an extension that stays
on the line until the test hangs it up: no timer (a ring timeout, a gather timeout) can end it
before the assertions about it, however slow the machine."""

from __future__ import annotations

import secrets
import time

import gevent
import pytest
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By

from robocall.store.db import is_postgresql
from robocall.testing import Callee, Press
from tests.support.browser import keep_screenshot
from tests.support.service import SETTLE_SECONDS, RunningService

pytestmark = pytest.mark.usefixtures("repo")

CONFIRMS = "+6583000001"  # presses 1 when asked
BUSY = "+6583000002"
NO_ANSWER = "+6583000003"
TRANSFERRED = "+6583000004"  # presses 2, is put through to extension 1000 who talks on and on
# Each press counts from the start of the gather's prompt (as a person answers what they hear),
# so no load can make it miss the gather.
PRESSES_1 = (Press(1000, "1", on_prompt=1),)
PRESSES_2 = (Press(1000, "2", on_prompt=1),)

CALL_FLOW = {
    "steps": [
        {"name": "play", "message": {"msg": "This is a reminder from the clinic."}},
        {
            "name": "gather",
            "message": {"msg": "Press 1 to confirm your visit."},
            "maxRetries": 2,
            "branches": [
                {"digit": "1", "callFlow": {"steps": [
                    {"name": "play", "message": {"msg": "Thank you, see you soon."}}]}},
                {"digit": "2", "callFlow": {"steps": [
                    {"name": "transfer", "destination": "Ext:1000"}]}},
                {"default": "true", "callFlow": {"steps": [
                    {"name": "play", "message": {"msg": "Goodbye."}}]}},
            ],
        },
    ]
}


def wait_until(predicate, what: str):
    """Poll ``predicate`` (re-read when a page reload replaced the elements, or caught the page
    half loaded) until true."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            if predicate():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        except WebDriverException as err:
            # Chromium's word for an element of the page a reload just replaced
            if "does not belong to the document" not in str(err):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.1)


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def counts_shown(driver, css: str) -> dict[str, int]:
    """The per-status counts under a progress bar, as shown."""
    shown = {}
    for span in driver.find_elements(By.CSS_SELECTOR, f"{css} [data-status]"):
        shown[span.get_attribute("data-status")] = int(span.find_element(By.TAG_NAME, "b").text)
    return shown


def sign_in(driver, running: RunningService) -> None:
    driver.get(f"{running.base_url}/")
    assert driver.current_url.endswith("/login")
    driver.find_element(By.ID, "key").send_keys(running.key)
    driver.find_element(By.ID, "sign-in").click()
    wait_until(lambda: driver.current_url == f"{running.base_url}/", "the overview")


def test_the_dashboard_shows_lines_requests_and_step_traces(start_service, chromium, repo):
    backend = "postgresql" if is_postgresql(repo.database) else "sqlite"
    driver = chromium
    # given an organization of 2 lines, one held by another app's call (so the robo calls go
    # one after another, and the last one dialled still rings when the page is read: a ringing
    # call fails at the originate timeout, 3 s here, and the one before it takes that long)
    running = start_service(
        {
            CONFIRMS: Callee(presses=PRESSES_1),
            BUSY: Callee(outcome="busy", ring=False),
            NO_ANSWER: Callee(outcome="no_answer"),
            TRANSFERRED: Callee(presses=PRESSES_2),
            "1000": Callee(answer_after_ms=500),  # never hangs up by itself
        },
        lines=2,
    )
    running.fake.start_external_call({"accountcode": running.org_id})
    wait_until(
        lambda: running.service.dispatcher.report(running.org_id).other == 1, "the other app"
    )

    # when a person signs in with the organization's key
    sign_in(driver, running)
    # then the gauge shows the other app's line and a free one, and no request yet
    assert text(driver, "#lines-total") == "2"
    assert (text(driver, "#lines-robo"), text(driver, "#lines-other")) == ("0", "1")
    assert text(driver, "#lines-free") == "1"
    assert driver.find_element(By.ID, "no-requests").is_displayed()
    assert running.org_id in text(driver, "#organization")

    # when a request of four calls has run but for the one still transferred
    request_id = f"clinic-{secrets.token_hex(3)}"
    body = {
        "requestId": request_id,
        "destinations": [
            {"phone": number, "caller": "+6582674904"}
            for number in (CONFIRMS, BUSY, NO_ANSWER, TRANSFERRED)
        ],
        "callFlow": CALL_FLOW,
    }
    running.warm_prompts(body)
    assert running.post_call(body).status_code == 200
    wait_until(
        lambda: running.status(request_id)["counts"]
        == {"completed": 1, "failed": 2, "onProgress": 1}
        and any(c.kind == "bleg" and c.answer_state == "answered" for c in running.fake.channels()),
        "all calls but the transferred one to end, and extension 1000 to answer",
    )
    driver.get(f"{running.base_url}/")
    # then the gauge counts the transferred robo call (the extension is no line) next to the
    # other app's call
    assert (text(driver, "#lines-robo"), text(driver, "#lines-other")) == ("1", "1")
    assert text(driver, "#lines-free") == "0"
    # and the request is listed with its progress per status (read whole from one page: the
    # overview reloads itself, and a loaded machine may catch it between two pages)
    row_css = f'tr.request[data-request-id="{request_id}"]'
    shown: dict[str, object] = {}

    def read_row() -> bool:
        row = driver.find_element(By.CSS_SELECTOR, row_css)
        shown.update(
            status=row.find_element(By.CSS_SELECTOR, ".status").text,
            total=row.find_element(By.CSS_SELECTOR, ".total").text,
            counts=counts_shown(row, ".counts"),
            counts_text=row.find_element(By.CSS_SELECTOR, ".counts").text,
            segments=[s.get_attribute("class") for s in row.find_elements(By.CSS_SELECTOR,
                                                                          ".bar span")],
        )
        return True

    wait_until(read_row, "the request's row on the overview")
    assert shown["status"] == "onProgress"
    assert shown["total"] == "4"
    assert shown["counts"] == {"completed": 1, "failed": 2, "onProgress": 1}
    assert "75% done" in str(shown["counts_text"])
    assert shown["segments"] == ["seg-completed", "seg-failed", "seg-onProgress"]
    keep_screenshot(driver, f"dashboard-overview-{backend}")

    # when the person opens the request
    def open_request() -> bool:
        row = driver.find_element(By.CSS_SELECTOR, row_css)
        row.find_element(By.LINK_TEXT, request_id).click()
        return True

    wait_until(open_request, "the request's link on the overview")
    wait_until(lambda: text(driver, "#request-id") == request_id, "the request page")
    # then each call shows its status, hangup cause and step trace
    calls = {
        tr.get_attribute("data-destination"): tr
        for tr in driver.find_elements(By.CSS_SELECTOR, "tr.call")
    }
    assert set(calls) == {CONFIRMS, BUSY, NO_ANSWER, TRANSFERRED}
    confirmed = calls[CONFIRMS]
    assert confirmed.find_element(By.CSS_SELECTOR, ".status").text == "completed"
    assert confirmed.find_element(By.CSS_SELECTOR, ".hangup-cause").text == "NORMAL_CLEARING"
    assert [li.text for li in confirmed.find_elements(By.CSS_SELECTOR, "li.step")] == [
        "play: sucess_ok",
        "gather: sucess_ok, pressed 1",
        "play: sucess_ok",
    ]
    # and the channel uuid an admin passes to uuid_dump
    detail = running.calls_by_destination(running.status(request_id))
    uuid = detail[CONFIRMS]["monitorData"][0]["uuid"]
    assert confirmed.find_element(By.CSS_SELECTOR, "code.uuid").text == uuid
    busy = calls[BUSY]
    assert busy.find_element(By.CSS_SELECTOR, ".status").text == "failed"
    assert busy.find_element(By.CSS_SELECTOR, ".hangup-cause").text == "USER_BUSY"
    assert [li.text for li in busy.find_elements(By.CSS_SELECTOR, "li.step")] == [
        "play: error_not_answered, busy"
    ]
    assert calls[TRANSFERRED].find_element(By.CSS_SELECTOR, ".status").text == "onProgress"
    assert text(driver, "#request-status") == "onProgress"

    # when extension 1000 hangs up, the open page refreshes itself
    for channel in running.fake.channels():
        if channel.kind == "bleg":
            channel.hangup("NORMAL_CLEARING", "recv_bye")
    wait_until(lambda: text(driver, "#request-status") == "completed", "the page to refresh")
    # then it shows the request final, the transferred call completed with the API's cause
    assert counts_shown(driver, "#request-counts") == {"completed": 2, "failed": 2}
    transferred = driver.find_element(
        By.CSS_SELECTOR, f'tr.call[data-destination="{TRANSFERRED}"]')
    assert transferred.find_element(By.CSS_SELECTOR, ".status").text == "completed"
    final = running.calls_by_destination(running.status(request_id))[TRANSFERRED]
    assert final["hangupCause"]
    assert transferred.find_element(By.CSS_SELECTOR, ".hangup-cause").text == final["hangupCause"]
    assert "pressed 2" in transferred.text
    # and a final request's page stops refreshing
    assert driver.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]') == []
    keep_screenshot(driver, f"dashboard-request-{backend}")
