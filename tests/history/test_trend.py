"""The trend page: self-contained HTML, checked as text and in a real headless Chromium."""

from __future__ import annotations

import base64
import re
import tempfile
from datetime import timedelta

import pytest

from fleet.history.ingest import read_run
from fleet.history.store import HistoryStore
from fleet.regress import Policy, judge
from fleet.report.trend import render_trend, write_trend

from .factory import T0, Host, entry, write_run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    """Five nights, two systems, two (task, scenario) series; system a steps on night 4, confirmed
    on night 5 (a three-night minimum)."""
    tmp = tmp_path_factory.mktemp("trend")
    nights = [(100, 10, 200), (102, 10, 198), (101, 10, 200), (60, 14, 201), (61, 14, 199)]
    with HistoryStore(tmp / "h.sqlite") as store:
        for i, (a_off, a_ss, b_off) in enumerate(nights):
            when = T0 + timedelta(days=i)
            hosts = [
                Host("a", [entry("resnet50", "Offline", value=a_off, started=when),
                           entry("resnet50", "SingleStream", value=a_ss, started=when)]),
                Host("b<x>", [entry("resnet50", "Offline", value=b_off, started=when)], system="b<x>"),
            ]  # fmt: skip
            store.replace_run(*read_run(write_run(tmp / "runs", f"night{i}", hosts)))
        rows = store.results()
    return tmp, rows, judge(rows, Policy(threshold=0.05, min_runs=3))


@pytest.fixture(scope="module")
def html(history) -> str:
    _, rows, report = history
    return render_trend(rows, report)


def test_page_is_self_contained_with_one_plot_per_task_scenario(html: str) -> None:
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2  # resnet50 Offline, resnet50 SingleStream
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing fetched from anywhere
    assert "b&lt;x&gt;" in html and "b<x>" not in html
    assert "Regressions and breaks: 2" in html  # a_cpu Offline slower, a_cpu SingleStream slower
    assert "night0, night1, night2" in html.split("The nights each baseline stands on")[1]


def test_regression_table_names_only_the_slowed_system(html: str) -> None:
    section = html.split("<h2>Regressions and breaks</h2>")[1].split("<h2>")[0]
    assert section.count('<tr class="bad">') == 2
    assert "a_cpu" in section and "b&lt;x&gt;" not in section
    assert section.count("<td>synthetic</td>") == 2  # synthetic assets are marked as such
    assert "-39.6%" in section and "+40.0%" in section  # 61 vs median(100, 102, 101) = 101; 14 vs 10
    assert "since run night3" in section


def _driver(profile_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile_dir}"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def test_page_renders_in_headless_chromium(history) -> None:
    from selenium.webdriver.common.by import By

    tmp, rows, report = history
    page = write_trend(tmp / "trend.html", rows, report)
    with tempfile.TemporaryDirectory(prefix="fleet-chromium-") as profile:
        driver = _driver(profile)
        try:
            driver.get(page.as_uri())
            assert driver.title == "mlperf-fleet history"
            tables = driver.find_elements(By.TAG_NAME, "table")
            assert len(tables) == 2  # regressions, every series (no suspects, improvements, noisy ones)
            assert len(tables[1].find_elements(By.CSS_SELECTOR, "tbody tr")) == 3
            widths = driver.execute_script(
                "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
            )
            assert len(widths) == 2 and all(w > 0 for w in widths)
        finally:
            driver.quit()
