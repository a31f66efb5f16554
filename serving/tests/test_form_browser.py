"""The triage form in a real headless Chromium (Debian's chromium and chromium-driver, driven through Selenium):
search a symptom by name, tick it, enter the patient and the vitals, submit, read the estimate; in English and,
with the browser set to Spanish (--lang=es, Accept-Language es), in Spanish.

Without /usr/bin/chromium the tests skip, naming the packages to install, except in CI (CI set): there a missing
browser fails them, as does a Chromium without /usr/bin/chromedriver anywhere. Every wait is bounded (WAIT_S, the
page-load and script timeouts; Selenium's own HTTP calls to the driver give up after 120 s).
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from serving.api.form import MESSAGES
from serving.schemas import DISCLAIMER
from serving.tests.http_server import API_KEY, Server, publish_release, running_server, service_env
from serving.tests.published import CLASS_LABELS, Release
from serving.tests.test_form import labelled_release

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# FIELD_NOTES' flags for Chromium here, plus a small /dev/shm's workaround; a fresh profile per browser.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,1900",
)
WAIT_S = 20.0
PAGE_LOAD_S = 30.0
KEY_STORAGE = "rare-triage.api-key"
VITALS = {
    "age_years": "7",
    "temperature_c": "38.4",
    "heart_rate": "121",
    "respiratory_rate": "24",
    "spo2": "97",
    "systolic_bp": "105",
    "diastolic_bp": "65",
    "pain_score": "3",
    "symptom_duration_days": "4",
}
# What the form must send for the English test's input.
ENCOUNTER: dict[str, Any] = {
    "sex": "F",
    **{name: float(value) for name, value in VITALS.items()},
    "hpo_observed": ["HP:0001250"],
    "hpo_excluded": ["HP:0002027"],
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def browser_available() -> None:
    """Skip when Debian's Chromium is not installed, outside CI only; fail when CI is set, or when Chromium is
    there without its driver."""
    install = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if not CHROMIUM.is_file():
        if in_ci():
            pytest.fail(f"CI is set and {CHROMIUM} is missing: .ci/run should {install}")
        pytest.skip(f"{CHROMIUM} missing: {install} to run the form's browser tests")
    if not CHROMEDRIVER.is_file():
        pytest.fail(f"{CHROMIUM} is installed but {CHROMEDRIVER} is missing: {install}")


@pytest.fixture(scope="module")
def release() -> Release:
    return labelled_release()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, release: Release, browser_available: None) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("form-browser")
    publish_release(root / "bucket", release)
    env = service_env(root / "home", root / "bucket", SERVING_API_KEY=API_KEY)
    with running_server(env, root / "work") as running:
        yield running


def chromium(profile: Path, language: str) -> WebDriver:
    """Headless Chromium through /usr/bin/chromedriver (Selenium Manager is never asked: both paths are given)."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--lang={language}")
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(PAGE_LOAD_S)
    driver.set_script_timeout(WAIT_S)
    return driver


@pytest.fixture(scope="module", params=["en", "es"])
def browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, server: Server
) -> Iterator[WebDriver]:
    root = tmp_path_factory.mktemp(f"chromium-{request.param}")
    driver = chromium(root / "profile", request.param)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(root / "profile", ignore_errors=True)


def wait(driver: WebDriver, timeout_s: float = WAIT_S) -> WebDriverWait:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.05)


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def open_form(driver: WebDriver, server: Server) -> None:
    """Load / afresh (an empty form) and wait until the model's vocabulary is listed."""
    driver.get(server.base_url + "/")
    wait(driver).until(lambda d: d.find_element(By.ID, "triage-form").get_attribute("data-vocabulary") == "loaded")


def symptom_row(driver: WebDriver, hpo_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#symptom-list li[data-hpo-id="{hpo_id}"]')


def search_symptom(driver: WebDriver, text: str, hpo_id: str) -> WebElement:
    """Type `text` in the search box and wait until the row of `hpo_id` is shown; that row."""
    search = by_id(driver, "symptom-search")
    search.clear()
    search.send_keys(text)
    wait(driver).until(lambda d: symptom_row(d, hpo_id).is_displayed())
    return symptom_row(driver, hpo_id)


def fill_vitals(driver: WebDriver, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = by_id(driver, name)
        field.clear()
        field.send_keys(value)


def enter_key(driver: WebDriver, key: str) -> None:
    field = by_id(driver, "api-key")
    field.clear()
    field.send_keys(key)


def submit_and_wait(driver: WebDriver, outcome: str) -> WebElement:
    """Submit the form and wait until the section `outcome` (result or error) is shown."""
    by_id(driver, "submit").click()
    wait(driver).until(expected_conditions.visibility_of_element_located((By.ID, outcome)))
    return by_id(driver, outcome)


def shown_probabilities(driver: WebDriver) -> dict[str, float]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#result-probabilities tbody tr")
    return {str(row.get_attribute("data-class")): float(str(row.get_attribute("data-probability"))) for row in rows}


def language(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "html").get_attribute("lang"))


def test_a_clinician_picks_symptoms_by_name_enters_vitals_and_reads_the_estimate(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    open_form(browser, server)
    lang = language(browser)
    messages = {"en": MESSAGES["en"], "es": MESSAGES["es"]}[lang]

    seizure = search_symptom(browser, "seiz", "HP:0001250")
    assert not symptom_row(browser, "HP:0002027").is_displayed()  # the search narrowed the list
    seizure.find_element(By.CSS_SELECTOR, 'input[name="observed"]').click()
    pain = search_symptom(browser, "abdominal", "HP:0002027")
    excluded = pain.find_element(By.CSS_SELECTOR, 'input[name="excluded"]')
    excluded.send_keys(Keys.SPACE)  # the keyboard ticks a box as well as the mouse
    assert excluded.is_selected()
    assert symptom_row(browser, "HP:0001250").is_displayed()  # a ticked symptom stays listed
    Select(by_id(browser, "sex")).select_by_value("F")
    fill_vitals(browser, VITALS)
    enter_key(browser, API_KEY)

    result = submit_and_wait(browser, "result")
    browser.save_screenshot(str(tmp_path / f"form-{lang}.png"))

    with server.client(headers={"X-API-Key": API_KEY}) as client:
        expected = client.post("/v1/predict", json=ENCOUNTER).json()
    assert browser.switch_to.active_element == result  # focus moves to the estimate
    assert by_id(browser, "result-class").get_attribute("data-class") == expected["class"]
    assert by_id(browser, "result-class").text == messages[f"class_{expected['class']}"]
    assert shown_probabilities(browser) == pytest.approx(expected["probabilities"], abs=1e-9)
    assert list(shown_probabilities(browser)) == CLASS_LABELS
    assert by_id(browser, "result-orphan-flag").get_attribute("data-flag") == str(expected["orphan_flag"]).lower()
    threshold = "30.0" if lang == "en" else "30,0"
    assert threshold in by_id(browser, "result-orphan-flag").text
    assert by_id(browser, "result-needs-review").get_attribute("data-needs-review") == (
        str(expected["needs_review"]).lower()
    )
    assert by_id(browser, "result-model-version").text == expected["model_version"]
    assert by_id(browser, "result-unknown-hpo").text == messages["unknown_hpo_none"]
    disclaimer = by_id(browser, "result-disclaimer").text
    assert disclaimer == messages["disclaimer"]
    assert ("not a diagnosis" in disclaimer) if lang == "en" else ("no un diagnóstico" in disclaimer)
    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") == API_KEY
    assert browser.execute_script("return localStorage.length") == 0 and browser.get_cookies() == []


def test_the_page_speaks_the_browsers_language(browser: WebDriver, server: Server) -> None:
    open_form(browser, server)

    asked = str(browser.execute_script("return navigator.language"))
    lang = language(browser)
    messages = {"en": MESSAGES["en"], "es": MESSAGES["es"]}[lang]
    assert lang == asked.split("-", maxsplit=1)[0]
    assert browser.title == messages["title"]
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="symptom-search"]').text == messages["symptom_search"]
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="temperature_c"]').text == messages["temperature_c"]
    assert by_id(browser, "symptom-count").text == messages["symptoms_shown"].format(shown=4, total=4)
    if lang == "es":  # in the clinician's words, not only in whatever the catalogue says
        assert browser.find_element(By.CSS_SELECTOR, 'label[for="symptom-search"]').text == "Buscar síntomas por nombre"
        assert DISCLAIMER not in browser.page_source


def test_a_wrong_key_is_refused_and_the_key_field_is_pointed_at(browser: WebDriver, server: Server) -> None:
    open_form(browser, server)
    messages = {"en": MESSAGES["en"], "es": MESSAGES["es"]}[language(browser)]
    enter_key(browser, "not-the-key-0123456789")

    error = submit_and_wait(browser, "error")

    assert by_id(browser, "error-message").text == messages["error_api_key"]
    assert by_id(browser, "api-key").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element == by_id(browser, "api-key")
    assert not by_id(browser, "result").is_displayed() and error.is_displayed()


def test_a_field_the_service_refuses_is_shown_next_to_it(browser: WebDriver, server: Server) -> None:
    open_form(browser, server)
    enter_key(browser, API_KEY)
    fill_vitals(browser, {"systolic_bp": "80", "diastolic_bp": "95"})  # each in range, together refused

    submit_and_wait(browser, "error")

    note = by_id(browser, "systolic_bp-error")
    assert note.is_displayed() and "below diastolic_bp" in note.text
    assert by_id(browser, "systolic_bp").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element == by_id(browser, "systolic_bp")


def test_the_forget_button_removes_the_key_from_the_tab(browser: WebDriver, server: Server) -> None:
    open_form(browser, server)
    enter_key(browser, API_KEY)
    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") == API_KEY

    by_id(browser, "api-key-forget").click()

    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") is None
    assert by_id(browser, "api-key").get_attribute("value") == ""
