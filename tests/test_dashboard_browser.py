"""The dashboard in a real browser: headless Debian chromium driven by chromedriver (Selenium), against the
local API on loopback over a real job log: shelf photos run through the shipped shelf model, a failed job,
queued jobs, a quarantined file and a catalogue. The tests assert what a person sees (numbers, table rows,
boxes and their names) and save a screenshot of each page under a tmp dir (``EDGECV_SCREENSHOT_DIR`` to
keep them elsewhere)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.agent import wait_until
from helpers.api import finish, live_api, queued_job
from helpers.scripts import load_script

from edgecv.config import load_config
from edgecv.ingest import ingest_file
from edgecv.oneshot import process_files
from edgecv.runtime.installed import installed_models
from edgecv.store import Store
from edgecv.store.counts import jobs_by_status

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.process,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh test installs them)",
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A job log with real results, served on loopback: ``(base URL, store, facts)``."""
    tmp = tmp_path_factory.mktemp("dashboard")
    inbox = tmp / "inbox"
    inbox.mkdir()
    config = load_config(
        overrides={
            "data_dir": tmp / "data",
            "inbox": inbox,
            "default_model": "shelf-detection-v2",
            "workers": 1,
        },
        environ={},
    )
    store = Store(config.db_path)
    gen = load_script("generate")
    gen.generate("shelves", tmp / "shelves", 2, 11, (1280, 720))
    shelves = sorted((tmp / "shelves" / "images").glob("*.jpg"))
    done = process_files(store, config, shelves, model="shelf-detection-v2")
    assert all(j.status == "completed" for j in done), [getattr(j, "error_code", j) for j in done]
    failed = finish(store, queued_job(store, config, 1, model="shelf-detection-v2"), fail=True)
    queued = [queued_job(store, config, i, model="shelf-detection-v2") for i in (2, 3, 4)]
    bad = inbox / "notes.jpg"
    bad.write_text("this is a text file, not a photo\n")
    assert ingest_file(store, config, bad, inbox) is None  # quarantined
    demo = REPO / "edgecv" / "catalog" / "demo"
    for sku in ("fizzo-cola-330ml", "aquara-still-500ml"):
        shutil.copytree(demo / sku, config.catalog_dir / sku)
    with live_api(config, store) as server:
        yield (
            f"http://127.0.0.1:{server.port}",
            store,
            {"done": done, "failed": failed, "queued": queued, "config": config},
        )
    store.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("EDGECV_SCREENSHOT_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _open(browser, url: str) -> None:
    browser.get(url)
    wait_until(lambda: browser.execute_script("return document.readyState") == "complete", timeout=20)


def _texts(browser, css: str) -> list[str]:
    return [el.text for el in browser.find_elements("css selector", css)]


def _live(browser, key: str) -> str:
    return browser.find_element("css selector", f'[data-live="{key}"]').text


def _assert_stayed_on_the_device(browser, base: str) -> None:
    """Every resource the page loaded came from the agent, and the browser reported no errors (a CSP
    violation or a failed request is a SEVERE console entry)."""
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base + "/") for u in urls), urls
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


def test_status_page_shows_the_job_log_and_updates_live(site, browser, shots):
    base, store, facts = site
    _open(browser, base + "/")
    counts = jobs_by_status(store)
    assert _live(browser, "jobs.completed") == str(counts["completed"]) == "2"
    assert _live(browser, "jobs.failed") == "1"
    assert _live(browser, "queue.depth") == "3"
    assert _live(browser, "hour.completed") == "2"
    assert _live(browser, "hour.failed") == "1"
    assert _live(browser, "sync.state") == "disabled (no sync.url)"
    errors = browser.find_elements("css selector", "#last-errors tr")[1:]
    assert [r.find_element("css selector", "a").text for r in errors] == [facts["failed"].id]
    assert "image_unreadable" in errors[0].text
    models = _texts(browser, "#models tr td:first-child")
    assert models == ["building-inspection-v1", "damage-assessment-v1", "shelf-detection-v2"]
    assert len(browser.find_elements("css selector", "#throughput g")) == 60
    _assert_stayed_on_the_device(browser, base)
    browser.save_screenshot(str(shots / "status.png"))

    browser.execute_script("window.__stillTheSamePage = true")
    finish(store, facts["queued"][0])  # a worker finishes a job: the page shows it without a reload
    wait_until(lambda: _live(browser, "jobs.completed") == "3", timeout=20)
    assert _live(browser, "queue.depth") == "2"
    assert _live(browser, "hour.completed") == "3"
    assert browser.execute_script("return window.__stillTheSamePage") is True


def test_jobs_list_shows_thumbnails_filters_and_pages(site, browser, shots):
    base, store, facts = site
    _open(browser, base + "/jobs")
    all_ids = [j.id for j in store.list_jobs(limit=100)[0]]
    assert _texts(browser, "#jobs tr.job td:nth-child(2)") == all_ids
    thumbs = browser.find_elements("css selector", "#jobs img.thumb")
    assert len(thumbs) == len(all_ids)
    wait_until(
        lambda: all(browser.execute_script("return arguments[0].complete", t) for t in thumbs), timeout=20
    )
    widths = [browser.execute_script("return arguments[0].naturalWidth", t) for t in thumbs]
    assert all(0 < w <= 160 for w in widths), widths
    names = _texts(browser, "#jobs tr.job td:nth-child(3)")
    assert any(n.startswith("shelves_11_") for n in names), names
    _assert_stayed_on_the_device(browser, base)
    browser.save_screenshot(str(shots / "jobs.png"))

    browser.find_element("css selector", "select[name=status] option[value=failed]").click()
    browser.find_element("css selector", "form.filters button").click()
    wait_until(lambda: "status=failed" in browser.current_url, timeout=20)
    assert _texts(browser, "#jobs tr.job td:nth-child(2)") == [facts["failed"].id]
    assert _texts(browser, "#jobs tr.job .badge") == ["failed"]

    _open(browser, base + "/jobs?date=2001-01-01")
    assert browser.find_element("css selector", "#jobs").text == "No jobs match."
    today = facts["done"][0].created_at[:10]
    _open(browser, f"{base}/jobs?date={today}")
    assert _texts(browser, "#jobs tr.job td:nth-child(2)") == all_ids

    _open(browser, base + "/jobs?limit=2")  # cursor paging: every job once, newest first
    seen = []
    while True:
        seen += _texts(browser, "#jobs tr.job td:nth-child(2)")
        nxt = browser.find_elements("css selector", "#next-page")
        if not nxt:
            break
        nxt[0].click()
        wait_until(lambda: "cursor=" in browser.current_url, timeout=20)
    assert seen == all_ids


def test_job_page_draws_the_boxes_over_the_image(site, browser, shots):
    base, store, facts = site
    job = max(facts["done"], key=lambda j: len(j.result["detections"]))
    detections = job.result["detections"]
    assert detections, "the shelf model found no products on a generated shelf"
    _open(browser, f"{base}/jobs/{job.id}")
    wait_until(lambda: browser.find_elements("css selector", "svg.boxes rect.box"), timeout=20)
    rects = browser.find_elements("css selector", "svg.boxes rect.box")
    assert len(rects) == len(detections)
    titles = [
        browser.execute_script("return arguments[0].querySelector('title').textContent", r) for r in rects
    ]
    for title, det in zip(titles, detections, strict=True):
        name, _, rest = title.rpartition(" · ")[0].rpartition(" ")
        assert (
            name == det["objectName"] and abs(float(rest.rstrip("%")) - det["confidence"] * 100) <= 0.051
        ), title
        assert f"facings={det['attributes']['facings']}" in title
    first = detections[0]["boundingBox"]
    assert [float(rects[0].get_attribute(k)) for k in ("x", "y", "width", "height")] == [
        first["x"],
        first["y"],
        first["width"],
        first["height"],
    ]
    img = browser.find_element("css selector", "#job-image")
    wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", img) == 1280, timeout=20)

    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(rects[0]).perform()
    wait_until(lambda: detections[0]["objectName"] in browser.find_element("id", "box-info").text, timeout=10)

    summary = job.result["summary"]
    shelf = browser.find_element("id", "shelf-summary").text
    assert f"{summary['complianceScore'] * 100:.1f} %" in shelf
    assert f"products {summary['totalProducts']}" in shelf
    assert f"shelf rows {summary['shelfRows']}" in shelf
    out = ", ".join(summary["outOfStock"]) or "none"
    assert f"out of stock {out}" in shelf
    runs = browser.find_elements("css selector", "#shelf-runs tr")[1:]
    # one line per facing run: its facings add up to the products found
    assert sum(int(r.find_elements("css selector", "td")[2].text) for r in runs) == len(detections)
    assert runs and {r.find_elements("css selector", "td")[1].text for r in runs} == {
        d["objectName"] for d in detections
    }
    shown = json.loads(browser.find_element("id", "result-json").text)
    assert shown == job.to_dict()
    _assert_stayed_on_the_device(browser, base)
    browser.save_screenshot(str(shots / "job.png"))


def test_quarantine_models_and_catalogue_pages(site, browser, shots):
    base, _, facts = site
    _open(browser, base + "/quarantine")
    rows = browser.find_elements("css selector", "#quarantine tr")[1:]
    assert len(rows) == 1
    cells = [c.text for c in rows[0].find_elements("css selector", "td")]
    assert cells[1] == "not_an_image" and cells[2].endswith("/inbox/notes.jpg"), cells
    browser.save_screenshot(str(shots / "quarantine.png"))

    _open(browser, base + "/models")
    installed = installed_models(facts["config"])
    assert _texts(browser, "#model-list h2") == [f"{n} {installed[n].version}" for n in sorted(installed)]
    browser.save_screenshot(str(shots / "models.png"))

    _open(browser, base + "/catalog")
    assert _texts(browser, "#catalog tr td:nth-child(2)") == ["aquara-still-500ml", "fizzo-cola-330ml"]
    assert _texts(browser, "#catalog tr td:nth-child(3)") == ["Aquara Still 500ml", "Fizzo Cola 330ml"]
    images = browser.find_elements("css selector", "#catalog img.thumb")
    wait_until(lambda: all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images))
    _assert_stayed_on_the_device(browser, base)
    browser.save_screenshot(str(shots / "catalog.png"))
