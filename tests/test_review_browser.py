"""The review app in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium,
against the real app (waitress on loopback) over the results of a real run. Keyboard only.

FORMDIGITS_SCREENSHOT=docs/review-queue.png writes the screenshot docs/review.md shows (`make screenshots`).
"""

import json
import os
import shutil
import threading

import pytest

from pipeline.review.app import create_app, make_server
from support.beam import count

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow  # Chromium

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def review_db(batch_output, tmp_path):
    """A private copy of the pipeline test run's results (its flagged fields and their crops)."""
    db = tmp_path / "results"
    db.mkdir()
    shutil.copy(batch_output / "results.duckdb", db / "results.duckdb")
    return db


@pytest.fixture
def app_url(review_db):
    server = make_server(create_app(str(review_db), reviewer="tester"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/"
    server.close()


@pytest.fixture
def browser():
    assert CHROMIUM and DRIVER, "chromium and chromedriver are installed by `make setup` (Debian chromium, " \
                                "chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--disable-gpu", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def _shown_key(driver):
    key = driver.find_element(By.TAG_NAME, "body").get_attribute("data-key")
    return json.loads(key) if key else None


def _next_key(driver, previous):
    """Waits until the page shows an item other than `previous`; returns its key."""
    WebDriverWait(driver, 10).until(lambda d: _shown_key(d) != previous)
    return _shown_key(driver)


def _save(driver, digits: str, saved) -> None:
    """Types `digits` and Enter, confirms when the page asks (a reading against the field's rule), and waits
    until `saved(driver)`. The question comes with the server's answer: waited for, not looked for at once."""
    _type(driver, digits + Keys.ENTER)
    confirm = driver.find_element(By.ID, "confirm")
    WebDriverWait(driver, 10).until(lambda d: confirm.is_displayed() or saved(d))
    if confirm.is_displayed():
        _type(driver, Keys.ENTER)
    WebDriverWait(driver, 10).until(saved)


def _remaining(driver) -> int:
    return int(driver.find_element(By.ID, "remaining").get_attribute("data-count"))


def _type(driver, keys):
    driver.switch_to.active_element.send_keys(keys)


def test_correct_two_accept_one_by_keyboard_then_reload(app_url, browser, review_db, tmp_path):
    browser.get(app_url)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    before = _remaining(browser)
    assert before >= 4
    first = _shown_key(browser)
    assert browser.find_element(By.ID, "crop").get_attribute("src").startswith("data:image/png;base64,")

    # A correction that breaks the field's rule (one digit where the template wants more) asks first.
    _type(browser, "7" + Keys.ENTER)
    confirm = browser.find_element(By.ID, "confirm")
    WebDriverWait(browser, 10).until(lambda d: confirm.is_displayed() or _shown_key(d) != first)
    if confirm.is_displayed():
        assert "rule" in confirm.text
        _type(browser, Keys.ENTER)  # save it anyway
    second = _next_key(browser, first)
    _type(browser, "4096" + Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: confirm.is_displayed() or _shown_key(d) != second)
    if confirm.is_displayed():
        _type(browser, Keys.ENTER)
    third = _next_key(browser, second)
    third_value = browser.find_element(By.ID, "value").text
    screenshot = os.environ.get("FORMDIGITS_SCREENSHOT") or str(tmp_path / "review.png")
    browser.save_screenshot(screenshot)
    if "low confidence" in browser.find_element(By.ID, "reason").text:
        _type(browser, third_value)  # an unsure reading is keyed, not waved through
    _type(browser, Keys.ENTER)  # the reading is right
    fourth = _next_key(browser, third)

    browser.refresh()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert _shown_key(browser) == fourth and _remaining(browser) == before - 3

    rows = count(review_db, "SELECT source_uri, page, field, action, value_corrected, reviewer FROM corrections "
                            "ORDER BY reviewed_at")
    assert [list(r[:3]) for r in rows] == [first, second, third]
    assert [r[3:] for r in rows][:2] == [("correct", "7", "tester"), ("correct", "4096", "tester")]
    (accepted,), = count(review_db, f"SELECT value FROM fields WHERE source_uri = '{third[0]}' "
                                    f"AND page = {third[1]} AND field = '{third[2]}'")
    assert rows[2][3:] == ("accept", accepted, "tester")
    assert (third_value == accepted) or (third_value == "(nothing read)" and accepted == "")
    final = {tuple(r[:3]): r[3:] for r in count(review_db, """
        SELECT source_uri, page, field, value, review_status FROM fields_reviewed WHERE review_status <> 'pending'
        AND review_status <> 'not flagged'""")}
    assert final == {tuple(first): ("7", "correct"), tuple(second): ("4096", "correct"),
                     tuple(third): (accepted, "accept")}


def _ready(driver, url):
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def _unsure_first(driver) -> None:
    """Skips until the item shown has an unsure reading (the queue starts with the least confident)."""
    for _ in range(20):
        if "low confidence" in driver.find_element(By.ID, "reason").text:
            return
        previous = _shown_key(driver)
        _type(driver, "s")
        _next_key(driver, previous)
    pytest.fail("no unsure reading in the queue")


def test_enter_alone_does_not_accept_an_unsure_reading_and_keying_it_does(app_url, browser, review_db):
    _ready(browser, app_url)
    _unsure_first(browser)
    key, before, read = _shown_key(browser), _remaining(browser), browser.find_element(By.ID, "value").text
    _type(browser, Keys.ENTER)
    WebDriverWait(browser, 5).until(lambda d: "unsure" in d.find_element(By.ID, "status").text)
    assert _shown_key(browser) == key and _remaining(browser) == before
    assert count(review_db, "SELECT count(*) FROM corrections") == [(0,)]
    _type(browser, read + Keys.ENTER)
    _next_key(browser, key)
    assert count(review_db, "SELECT action FROM corrections") == [("accept",)]


def test_b_goes_back_to_a_skipped_item_and_a_reviewed_one_can_be_reopened(app_url, browser, review_db):
    _ready(browser, app_url)
    first = _shown_key(browser)
    _type(browser, "s")
    second = _next_key(browser, first)
    _type(browser, "b")  # back to the item skipped, in a fresh session
    assert _next_key(browser, second) == first
    _save(browser, "4096", lambda d: _shown_key(d) != first)
    source = browser.find_element(By.ID, "f-source")
    source.send_keys(first[0].rsplit("/", 1)[-1] + Keys.TAB)  # by file ...
    # ... and reviewed: to reopen. Chosen as a click would choose it: typed keys race the answer box, which
    # takes the focus back once the file filter's answer arrives.
    Select(browser.find_element(By.ID, "f-status")).select_by_value("reviewed")
    WebDriverWait(browser, 10).until(lambda d: _shown_key(d) == first)
    assert "already corrected: 4096" in browser.find_element(By.ID, "earlier").text
    browser.find_element(By.ID, "answer").click()
    _save(browser, "4097", lambda d: count(review_db, "SELECT count(*) FROM corrections") == [(2,)])
    final = count(review_db, f"SELECT value FROM fields_reviewed WHERE source_uri = '{first[0]}' AND page = "
                             f"{first[1]} AND field = '{first[2]}'")
    assert final == [("4097",)]


def test_the_item_and_its_answer_box_fit_a_1280x720_window_and_positions_count_from_1(app_url, browser):
    browser.set_window_size(1280, 720)
    _ready(browser, app_url)
    inner = browser.execute_script("return window.innerHeight")
    for _ in range(5):
        bottom = browser.execute_script("return document.getElementById('answer').getBoundingClientRect().bottom")
        assert bottom <= inner, f"the answer box ends at {bottom}px of a {inner}px window"
        first_position = browser.find_element(By.CSS_SELECTOR, "#digits tbody tr td").text
        assert first_position == "1"
        previous = _shown_key(browser)
        _type(browser, "s")
        if _next_key(browser, previous) is None:
            break
