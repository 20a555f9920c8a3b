"""index.html opened in a real headless Chromium: the tables and the plots render."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

import pytest

from fleet.report.publish import write_reports

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def page(report_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("html") / "run"
    shutil.copytree(report_run, run)
    (run / "check.txt").write_text("VERDICT: FAIL under the full v3.1 rules: 24 rule problems\n")
    return write_reports(run, ("html",))[0]


def test_page_is_self_contained(page):
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    images = text.count('src="data:image/png;base64,')
    assert images == 2
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    assert base64.b64decode(text[start : text.index('"', start)]).startswith(b"\x89PNG")


@pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian chromium and chromedriver (/usr/bin/chromium, /usr/bin/chromedriver)",
)
def test_page_renders_tables_and_plots_in_headless_chromium(page):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="fleet-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.get(page.resolve().as_uri())
            assert "run-report" in driver.title
            rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
            assert len(rows) == 38
            headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#results thead th")]
            assert headers[:3] == ["run_id", "system", "category"] and "synthetic" in headers
            assert len(driver.find_elements(By.CSS_SELECTOR, "#results tr.synthetic")) == 38
            first = rows[0].find_elements(By.TAG_NAME, "td")
            assert first[1].text == "dc-server" and first[0].is_displayed()
            images = driver.find_elements(By.TAG_NAME, "img")
            assert {img.get_attribute("id") for img in images} == {"plot-throughput", "plot-latency"}
            for img in images:
                assert (
                    driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                    > 0
                )
            assert "VERDICT: FAIL" in driver.find_element(By.TAG_NAME, "pre").text
            assert "synthetic models" in driver.find_element(By.CSS_SELECTOR, "p.note").text
        finally:
            driver.quit()
