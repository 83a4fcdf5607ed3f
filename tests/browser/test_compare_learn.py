"""The compare page and the guided tour in a real browser: one click on the dashboard starts
RNN vs LSTM vs GRU and the compare page shows the three runs on shared scales; a /learn demo
starts with one click and draws its view inline."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, wait_for_run

TINY: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 16,
    "task": {"name": "adding", "seq_len": 30},
    "batch_size": 16,
    "steps": 60,
    "probe_every": 10,
}
FRAMES = 7  # probe frames at steps 0, 10, ..., 60


def test_compare_shows_three_runs_on_shared_scales(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/?config=" + urllib.parse.quote(json.dumps(TINY))))
    page.click("#compare-cells")
    page.wait_for_url(re.compile(r"/compare\?runs=[0-9a-f]+,[0-9a-f]+,[0-9a-f]+$"))
    ids = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["runs"][0].split(",")
    runs = [http.get(f"/api/runs/{i}").json() for i in ids]
    assert [r["config"]["cell"] for r in runs] == ["rnn_tanh", "lstm", "gru"]
    assert len({r["group"] for r in runs}) == 1
    expect(page.locator(".column")).to_have_count(3)
    for run_id in ids:
        expect(page.locator(heatmap(f"chart-gradflow-{run_id}"))).to_have_count(1)
        expect(page.locator(heatmap(f"chart-hidden-{run_id}"))).to_have_count(1)
    for run_id in ids:
        wait_for_run(http, run_id)
    poll(
        page,
        "() => window.__gatescopeCompare.columns.every("
        f"(c) => c.feed.ended && c.feed.gradflow.steps.length === {FRAMES})",
    )
    # one colour range for all three gradient-flow heatmaps, once each has drawn every row
    drawn = f"(c) => document.getElementById(`chart-gradflow-${{c.runId}}`).__chart.layer?.drawn === {FRAMES}"
    poll(page, f"() => window.__gatescopeCompare.columns.every({drawn})")
    ranges = page.evaluate(
        """() => window.__gatescopeCompare.columns.map((c) => {
             const spec = document.getElementById(`chart-gradflow-${c.runId}`).__chart.layer.spec;
             return [spec.min, spec.max];
           })"""
    )
    assert len({tuple(r) for r in ranges}) == 1, ranges
    expect(page.locator("#legend-flow")).to_contain_text("shared")
    reveal_all(page)
    screenshot(page, "compare", full_page=True)


def test_compare_without_runs_lists_groups(gs_page: Page, url: Callable[[str], str]) -> None:
    gs_page.goto(url("/compare"))
    expect(gs_page.locator("#compare-empty")).to_be_visible()
    expect(gs_page.locator("#groups li").first).to_be_visible()


def test_a_learn_demo_starts_with_one_click_and_draws_inline(
    gs_page: Page, url: Callable[[str], str]
) -> None:
    page = gs_page
    page.goto(url("/learn"))
    expect(page.locator(".lesson")).to_have_count(7)
    page.click('[data-demo="hello"]')
    panel = page.locator('[data-demo-out="hello"] .demo-panel')
    expect(panel).to_have_count(1)
    expect(panel.locator("canvas.gs-heatmap")).to_have_count(1)  # the hidden state, live
    expect(panel.locator(".status")).to_have_text("completed", timeout=90_000)
    expect(page.locator('[data-demo-status="hello"]')).to_contain_text("done")
    ticks = [t.text_content() for t in panel.locator(".xtick text").all()]
    assert ticks[-4:] == ["h", "e", "l", "l"]  # the input characters label the timesteps
    page.locator("#hello").screenshot(path=str(screenshot_path("learn-hello")))


def screenshot_path(name: str) -> Any:
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_learn_vanishing_demo_compares_three_cells(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/learn#vanishing"))
    page.click('[data-demo="vanishing"]')
    panels = page.locator('[data-demo-out="vanishing"] .demo-panel')
    expect(panels).to_have_count(3)
    expect(page.locator('[data-demo-out="vanishing"] canvas.gs-heatmap')).to_have_count(3, timeout=90_000)
    expect(page.locator('[data-demo-status="vanishing"] a')).to_have_attribute(
        "href", re.compile(r"^/compare\?runs=")
    )
    screenshot(page, "learn-vanishing-started")
    for panel in panels.all():  # leave the server quiet for the tests after this one
        http.post(f"/api/runs/{panel.get_attribute('data-run')}/stop")
