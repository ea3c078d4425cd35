"""The experiment's admin page shows its results, checked in a real headless Chromium: per-variant
chance to win, the intervals drawn as an SVG chart, exposures over time, and the SRM warning.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); nothing is downloaded."""

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from tests.results.events import event, exposure, send

pytestmark = pytest.mark.django_db(transaction=True)

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser(monkeypatch):
    # Selenium never fetches a browser or driver: the installed ones are named.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_window_size(1400, 2400)
    yield driver
    driver.quit()


def log_in(browser, live_server) -> None:
    User.objects.create_superuser(email="admin@example.com", password=PASSWORD)
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin@example.com")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click returns before the login answer arrives; the next page needs its session cookie.
    WebDriverWait(browser, 30).until(lambda driver: "/admin/login/" not in driver.current_url)


def send_skewed_traffic(project, experiment) -> None:
    """A 50/50 flag that reached 200 control and 100 test users (a broken split); test users buy more."""
    events = []
    for variant, users, amounts in (("control", 200, (10, 11, 12)), ("test", 100, (15, 16, 17))):
        for index in range(users):
            user = f"{variant}-{index}"
            events.append(exposure(experiment, user, variant, experiment.start_date))
            events.append(event("purchase", user, experiment.start_date, amount=amounts[index % 3]))
    send(project, events)


def test_the_admin_page_draws_the_results_and_warns_of_a_sample_ratio_mismatch(
    api, project, recent_experiment, run_worker, browser, live_server
):
    experiment = recent_experiment
    send_skewed_traffic(project, experiment)
    assert (
        api.post(
            api.url(f"experiments/{experiment.id}/metrics_recalculation/"), {}, format="json"
        ).status_code
        == 201
    )
    run_worker()
    log_in(browser, live_server)

    browser.get(f"{live_server.url}/admin/experiments/experiment/{experiment.id}/change/")

    section = browser.find_element(By.ID, "experiment-results")
    rows = {
        row.get_attribute("data-variant"): row.find_elements(By.TAG_NAME, "td")
        for row in section.find_elements(By.CSS_SELECTOR, "table.results-variants tbody tr")
    }
    assert rows["control"][0].text == "control (baseline)"
    assert (rows["control"][1].text, rows["test"][1].text) == ("200", "100")
    assert rows["test"][3].text == "100.0%"  # chance to win
    assert rows["test"][6].text == "yes"
    # The interval is drawn to the right of the zero line, in the "better" colour, and laid out.
    bar = section.find_element(By.CSS_SELECTOR, "svg.results-intervals line.interval[data-variant=test]")
    zero = section.find_element(By.CSS_SELECTOR, "svg.results-intervals line[stroke-dasharray]")
    assert float(bar.get_attribute("x1")) > float(zero.get_attribute("x1"))
    assert bar.get_attribute("stroke") == "#29a347"
    assert bar.size["width"] > 10
    lines = section.find_elements(By.CSS_SELECTOR, "svg.results-exposure-chart polyline.exposure-line")
    assert [line.get_attribute("data-variant") for line in lines] == ["control", "test"]
    assert all(line.size["width"] > 100 for line in lines)
    totals = section.find_element(By.CLASS_NAME, "results-exposure-totals").text
    assert "control: 200" in totals and "test: 100" in totals
    warning = section.find_element(By.CLASS_NAME, "results-srm-warning")
    assert warning.is_displayed() and "Sample ratio mismatch" in warning.text


def test_an_experiment_without_results_says_how_to_get_them(
    api, project, recent_experiment, browser, live_server
):
    experiment = recent_experiment
    log_in(browser, live_server)

    browser.get(f"{live_server.url}/admin/experiments/experiment/{experiment.id}/change/")

    section = browser.find_element(By.ID, "experiment-results")
    assert "No results yet" in section.text
    assert section.find_elements(By.TAG_NAME, "svg") == []
