"""The run page's diagnosis panel in Chromium: a diverged run lists its findings with their
remedies, a healthy one says nothing was found, and a page opened before the run's first probe
reads the diagnosis once that frame arrives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.browser.conftest import poll, screenshot, wait_for_run
from tests.live_server import serve
from tests.services.test_diagnosis import CONFIGS


def _open(page: Page, url: Callable[[str], str], http: httpx.Client, name: str) -> str:
    run = http.post("/api/runs", json=CONFIGS[name]).json()
    wait_for_run(http, run["id"])
    page.goto(url(f"/runs/{run['id']}"))
    poll(
        page,
        "() => !document.getElementById('diagnosis').hidden"
        " && document.getElementById('diagnosis-note').textContent",
    )
    run_id: str = run["id"]
    return run_id


def test_a_diverged_run_shows_its_findings(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = _open(gs_page, url, http, "exploding, not clipped")
    kinds = gs_page.evaluate(
        "() => [...document.querySelectorAll('#diagnosis-list .finding')].map((n) => n.dataset.kind)"
    )
    assert kinds == [f["kind"] for f in http.get(f"/api/runs/{run_id}/diagnosis").json()["findings"]]
    assert kinds == ["diverged", "exploding"]
    text = gs_page.locator("#diagnosis").inner_text()
    assert (
        "The gradient norm reached " in text
        and 'Remedy: clip the gradient norm at 1 {"clip":{"mode":"norm","threshold":1}}' in text
    )
    gs_page.locator("#diagnosis").scroll_into_view_if_needed()
    screenshot(gs_page, "diagnosis-diverged")


def test_a_healthy_run_has_nothing_found(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    _open(gs_page, url, http, "hello")
    assert gs_page.locator("#diagnosis-note").inner_text().startswith("Nothing found at step 300")
    assert gs_page.locator("#diagnosis-list .finding").count() == 0
    screenshot(gs_page, "diagnosis-healthy")


def test_a_page_opened_before_the_first_probe_reads_the_diagnosis_when_it_comes(
    gs_page: Page, tmp_path: Path
) -> None:
    with (
        serve(tmp_path / "one-slot", GATESCOPE_MAX_RUNS="1") as live,
        httpx.Client(base_url=live.url) as http,
    ):
        blocker = http.post("/api/runs", json={**CONFIGS["hello"], "steps": 100_000}).json()["id"]
        run = http.post("/api/runs", json=CONFIGS["exploding, not clipped"]).json()["id"]
        gs_page.goto(f"{live.url}/runs/{run}")  # queued behind the blocker: no frame yet
        note = "() => document.getElementById('diagnosis-note').textContent"
        assert poll(gs_page, note) == "The diagnosis comes with the run's first probe frame."
        http.post(f"/api/runs/{blocker}/stop")
        kinds = "() => [...document.querySelectorAll('#diagnosis-list .finding')].map((n) => n.dataset.kind)"
        assert "exploding" in poll(gs_page, f"() => ({kinds})().length && ({kinds})()")  # no click
