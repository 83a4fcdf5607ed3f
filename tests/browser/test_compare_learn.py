"""The compare page and the guided tour in a real browser: one click on the dashboard starts
RNN vs LSTM vs GRU and the compare page shows the three runs on shared scales; a /learn demo
starts its runs as one group with one click, draws its views inline with a colour bar on every
heatmap, says where its runs wait in the queue, prints what they showed when they end, and
leaves nothing behind when it cannot start."""

from __future__ import annotations

import json
import re
import time
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


def test_compare_shows_four_runs_on_shared_scales(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/?config=" + urllib.parse.quote(json.dumps(TINY))))
    page.click("#compare-cells")
    page.wait_for_url(re.compile(r"/compare\?runs=[0-9a-f]+,[0-9a-f]+,[0-9a-f]+,[0-9a-f]+$"))
    ids = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["runs"][0].split(",")
    runs = [http.get(f"/api/runs/{i}").json() for i in ids]
    assert [r["config"]["cell"] for r in runs] == ["rnn_tanh", "lstm", "gru", "mingru"]
    assert len({r["group"] for r in runs}) == 1
    expect(page.locator(".column")).to_have_count(4)
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
    # one colour range for all four gradient-flow heatmaps, once each has drawn every row
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
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/learn"))
    expect(page.locator(".lesson")).to_have_count(8)
    page.click('[data-demo="hello"]')
    panel = page.locator('[data-demo-out="hello"] .demo-panel')
    expect(panel).to_have_count(1)
    expect(panel.locator("canvas.gs-heatmap")).to_have_count(1)  # the hidden state, live
    expect(panel.locator("h4 a")).to_have_text('LSTM on "hello"')  # the run's name: its panel's title
    run = http.get(f"/api/runs/{panel.get_attribute('data-run')}").json()
    assert run["name"] == 'LSTM on "hello"' and run["group"] is not None
    expect(panel.locator(".status")).to_have_text("completed", timeout=90_000)
    expect(page.locator('[data-demo-status="hello"]')).to_contain_text("done")
    ticks = [t.text_content() for t in panel.locator(".xtick text").all()]
    assert ticks[-4:] == ["0", "1", "2", "3"]  # t, with the input characters in the row under it
    assert [c.text_content() for c in panel.locator(".gs-input-text span").all()] == ["h", "e", "l", "l"]
    bar = panel.locator(".legend")  # the hidden state's colour bar, with its values
    expect(bar.locator(".legend-bar")).to_have_count(1)
    expect(bar).to_contain_text(re.compile(r"-?\d"))
    findings = page.locator('[data-findings="hello"]')
    expect(findings).to_contain_text("What these runs showed: After 300 steps the loss is")
    expect(findings).to_have_class(re.compile(r"findings-hold"))
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
    expect(panels.locator("h4 a")).to_have_text(["tanh RNN", "LSTM, forget bias 1", "GRU"])
    # the gradient flows: the why view's line charts carry a heatmap canvas too, hidden
    drawn = '[data-demo-out="vanishing"] canvas.gs-heatmap:not([hidden])'
    expect(page.locator(drawn)).to_have_count(3, timeout=90_000)
    expect(page.locator('[data-demo-status="vanishing"] a')).to_have_attribute(
        "href", re.compile(r"^/compare\?runs=")
    )
    runs = [http.get(f"/api/runs/{p.get_attribute('data-run')}").json() for p in panels.all()]
    assert len({r["group"] for r in runs}) == 1  # one POST /api/groups
    screenshot(page, "learn-vanishing-started")
    for run in runs:  # leave the server quiet for the tests after this one
        http.post(f"/api/runs/{run['id']}/stop")
    # stopped runs did not run their course: the page says so, and asks for no findings
    expect(page.locator('[data-findings="vanishing"]')).to_have_text(
        re.compile(r"^No findings: .+ ended stopped before it ran its course\.$")
    )


def test_learn_after_the_lstm_demo_runs_five_cells_to_its_findings(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/learn#modern"))
    page.click('[data-demo="modern"]')
    panels = page.locator('[data-demo-out="modern"] .demo-panel')
    expect(panels.locator("h4 a")).to_have_text(["tanh RNN", "GRU", "minGRU", "minLSTM", "sLSTM"])
    runs = [http.get(f"/api/runs/{p.get_attribute('data-run')}").json() for p in panels.all()]
    assert [r["config"]["cell"] for r in runs] == ["rnn_tanh", "gru", "mingru", "minlstm", "slstm"]
    assert len({r["group"] for r in runs}) == 1  # one POST /api/groups
    findings = page.locator('[data-findings="modern"]')  # every run ran its course (a few minutes)
    expect(findings).to_contain_text("What these runs showed: After 600 steps", timeout=480_000)
    expect(findings).to_contain_text("minGRU (1 − z_t): ")
    expect(findings).to_have_class(re.compile(r"findings-hold"))
    reveal_all(page)
    drawn = '[data-demo-out="modern"] canvas.gs-heatmap:not([hidden])'
    expect(page.locator(drawn)).to_have_count(5)  # a gradient flow per cell, on one colour scale
    expect(page.locator('[data-demo-out="modern"] > .legend')).to_contain_text("shared")
    page.locator("#modern").screenshot(path=str(screenshot_path("learn-modern")))


def test_learn_mingru_gates_demo_titles_its_views_from_the_catalog(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/learn#modern"))
    page.click('[data-demo="mingates"]')
    panel = page.locator('[data-demo-out="mingates"] .demo-panel')
    expect(panel.locator(".status")).to_have_text("completed", timeout=120_000)
    views = http.get("/api/catalog").json()["cells"]
    mingru = next(c for c in views if c["name"] == "mingru")["views"]
    expect(panel.locator(".row-title")).to_have_text(
        [mingru["z"]["title"], mingru["h_tilde"]["title"], "hidden state h"]
    )
    reveal_all(page)
    expect(panel.locator("canvas.gs-heatmap")).to_have_count(3)  # z, h̃ and h, each with its colour bar
    expect(panel.locator(".legend .legend-bar")).to_have_count(3)
    findings = page.locator('[data-findings="mingates"]')
    expect(findings).to_contain_text("hidden state follows the running sum of the marked values")
    expect(findings).to_have_class(re.compile(r"findings-hold"))
    page.locator('section:has([data-demo="mingates"])').screenshot(
        path=str(screenshot_path("learn-mingates"))
    )


SLOW: dict[str, Any] = {**TINY, "steps": 100_000, "probe_every": 1000}


def poll_status(http: httpx.Client, run_id: str, status: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while http.get(f"/api/runs/{run_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} is not {status} after {timeout} s"
        time.sleep(0.1)


def test_a_queued_demo_says_so_then_runs_with_a_colour_bar_on_every_heatmap(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    slots = 4  # the browser tests' server trains GATESCOPE_MAX_RUNS=4 at once
    ahead = [
        http.post("/api/runs", json={**SLOW, "name": f"ahead {i}"}).json()["id"] for i in range(slots + 2)
    ]
    try:
        for run_id in ahead[:slots]:  # every slot taken by these, the other two waiting
            poll_status(http, run_id, "running")
        page.goto(url("/learn#gates"))
        page.click('[data-demo="gates"]')
        panel = page.locator('[data-demo-out="gates"] .demo-panel')
        expect(panel.locator(".status")).to_have_text("queued (2 ahead)")
        expect(panel.locator(".chart-note").first).to_have_text(
            "queued (2 ahead): it starts when a training slot is free"
        )
        expect(panel.locator("canvas.gs-heatmap")).to_have_count(0)  # no empty axes
        page.locator("#gates").screenshot(path=str(screenshot_path("learn-gates-queued")))
    finally:
        for run_id in ahead:
            http.post(f"/api/runs/{run_id}/stop")
    expect(panel.locator(".status")).to_have_text("completed", timeout=90_000)
    reveal_all(page)
    expect(panel.locator("canvas.gs-heatmap")).to_have_count(4)  # f, i, o and c
    expect(panel.locator(".legend .legend-bar")).to_have_count(4)
    findings = page.locator('[data-findings="gates"]')
    expect(findings).to_contain_text("cell state follows the running sum of the marked values")
    expect(findings).to_have_class(re.compile(r"findings-hold"))


def test_a_demo_that_cannot_start_leaves_nothing(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.problems.allowed.append("429")  # type: ignore[attr-defined]  # the refused POST, on purpose
    before = http.get("/api/runs").json()["total"]
    detail = "too many new runs from your address: try again in 12 s (at most 30 a minute, 10 at once)"
    page.route(
        "**/api/groups",
        lambda route: route.fulfill(status=429, json={"detail": detail}, headers={"Retry-After": "12"}),
    )
    page.goto(url("/learn#shapes"))
    page.click('[data-demo="shapes"]')
    expect(page.locator('[data-demo-status="shapes"]')).to_have_text(f"429: {detail}")
    expect(page.locator('[data-demo-out="shapes"] .demo-panel')).to_have_count(0)
    expect(page.locator('[data-demo="shapes"]')).to_be_enabled()
    assert http.get("/api/runs").json()["total"] == before  # no run was started one by one instead
