"""The dashboard in a real browser: it loads, the form round-trips through the URL, and a run
started from the form streams onto its run page, where the heatmaps appear and update."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, scrub, wait_for_run

# slow enough to watch stream (a probe every 5 steps), small enough to finish in seconds
STREAMED: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 16,
    "task": {"name": "adding", "seq_len": 20},
    "batch_size": 16,
    "steps": 700,
    "probe_every": 5,
    "seed": 3,
}


def form_value(page: Page, name: str) -> str:
    value: str = page.locator(f'#run-form [name="{name}"]').input_value()
    return value


def test_dashboard_loads_with_catalog_form_and_presets(gs_page: Page, url: Callable[[str], str]) -> None:
    gs_page.goto(url("/"))
    expect(gs_page.locator("#start-run")).to_be_visible()
    cells = gs_page.locator('#run-form [name="cell"] option').all_inner_texts()
    assert cells == ["rnn_tanh", "rnn_relu", "lstm", "gru"]
    for knob in (
        "hidden_size",
        "num_layers",
        "bidirectional",
        "init.scheme",
        "init.gain",
        "task.name",
        "optimizer.name",
        "optimizer.lr",
        "clip.mode",
        "clip.threshold",
        "tbptt",
        "steps",
        "seed",
        "probe_every",
        "batch_size",
    ):
        assert gs_page.locator(f'#run-form [name="{knob}"]').count() == 1, knob
    presets = gs_page.locator("#presets button").all_inner_texts()
    assert {"vanishing", "exploding", "hello", "adding", "copy", "shakespeare", "bidirectional"} <= set(
        presets
    )
    gs_page.click('#presets [data-preset="vanishing"]')
    expect(gs_page.locator("#preset-note")).to_contain_text("tanh RNN vs LSTM vs GRU")
    assert form_value(gs_page, "param.seq_len") == "100"
    expect(gs_page).to_have_url(re.compile(r"preset=vanishing"))
    screenshot(gs_page, "dashboard")


def test_form_state_lives_in_the_url(gs_page: Page, url: Callable[[str], str]) -> None:
    config = {**STREAMED, "init": {"scheme": "orthogonal", "gain": 0.9}, "tbptt": 7}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#start-run")).to_be_visible()
    assert form_value(gs_page, "cell") == "gru"
    assert form_value(gs_page, "hidden_size") == "16"
    assert form_value(gs_page, "param.seq_len") == "20"
    assert form_value(gs_page, "init.scheme") == "orthogonal"
    assert form_value(gs_page, "tbptt") == "7"
    # an edit goes back into the URL, so the link shares it
    gs_page.fill('#run-form [name="hidden_size"]', "24")
    poll(gs_page, "() => new URL(location.href).searchParams.get('config')?.includes('\"hidden_size\":24')")
    shared = json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(gs_page.url).query)["config"][0])
    assert shared["hidden_size"] == 24 and shared["tbptt"] == 7 and shared["task"]["seq_len"] == 20


def test_what_a_config_lacks_comes_from_the_catalogs_defaults(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    defaults = http.get("/api/catalog").json()["defaults"]
    config = {"cell": "gru", "task": {"name": "copy"}}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#start-run")).to_be_visible()
    for name in ("hidden_size", "num_layers", "steps", "batch_size", "seed", "probe_every"):
        assert form_value(gs_page, name) == str(defaults[name]), name
    assert float(form_value(gs_page, "optimizer.lr")) == defaults["optimizer"]["lr"]
    assert form_value(gs_page, "clip.mode") == defaults["clip"]["mode"]
    assert form_value(gs_page, "task.name") == "copy"


def test_a_link_with_an_unknown_task_says_so(gs_page: Page, url: Callable[[str], str]) -> None:
    config = {"cell": "gru", "task": {"name": "sorting"}}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#form-error")).to_contain_text('task "sorting" is none of')
    assert form_value(gs_page, "task.name") == "adding"  # the starting preset instead


def test_a_run_started_from_the_form_streams_and_its_heatmaps_update(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/?config=" + urllib.parse.quote(json.dumps(STREAMED))))
    page.click("#start-run")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    for chart in ("chart-gradflow", "chart-hidden", "chart-gate-z", "chart-connectivity"):
        page.locator(f"#{chart}").scroll_into_view_if_needed()
        expect(page.locator(heatmap(chart))).to_have_count(1)
    page.locator("#chart-gradflow").scroll_into_view_if_needed()
    rows = "() => window.__gatescopeRun.feed.gradflow.steps.length"
    renders = "() => (window.__gatescope.byChart.gradflow || []).length"
    before_rows, before_renders = page.evaluate(rows), page.evaluate(renders)
    poll(page, f"() => ({rows})() > {before_rows} && ({renders})() > {before_renders}")

    # pause: live updates keep arriving (and are kept) but are not drawn
    if http.get(f"/api/runs/{run_id}").json()["status"] == "running":
        page.click("#pause")
        page.wait_for_timeout(400)  # a frame already being drawn may finish
        paused_renders = page.evaluate(renders)
        metrics = page.evaluate("() => window.__gatescopeRun.feed.metrics.length")
        poll(page, f"() => window.__gatescopeRun.feed.metrics.length > {metrics} + 20")
        assert page.evaluate(renders) == paused_renders
        page.click("#play")
        poll(page, f"() => ({renders})() > {paused_renders}")

    assert wait_for_run(http, run_id)["status"] == "completed"
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#stop")).to_be_disabled()
    steps = http.get(f"/api/runs/{run_id}/probes").json()
    poll(page, f"() => window.__gatescopeRun.feed.gradflow.steps.length === {len(steps)}")
    poll(page, f"() => window.__gatescopeRun.feed.probeSteps.length === {len(steps)}")
    assert page.evaluate("() => window.__gatescopeRun.feed.gradflow.steps[0]") == 0
    reveal_all(page)
    screenshot(page, "run-streamed", full_page=True)

    # the scrubber replays a recorded step; a click on a timestep highlights it everywhere
    scrub(page, 3)
    expect(page.locator("#scrub-label")).to_have_text(str(steps[3]))
    box = page.locator("#chart-gradflow .nsewdrag").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    poll(page, "() => window.__gatescopeRun.state.t !== null")
    t = page.evaluate("() => window.__gatescopeRun.state.t")
    page.locator("#chart-hidden").scroll_into_view_if_needed()
    poll(page, "() => document.querySelector('#chart-hidden .gs-marker-x:not([hidden])') !== null")
    page.wait_for_url(re.compile(rf"t={t}"))
    shown = page.evaluate("() => window.__gatescopeRun.state.frame.step")
    page.wait_for_url(re.compile(rf"step={shown}"))

    # the link restores scrubber, highlight and view
    page.goto(url(f"/runs/{run_id}?step={steps[2]}&t=4&view=hidden"))
    expect(page.locator("#scrub-label")).to_have_text(str(steps[2]))
    assert page.evaluate("() => window.__gatescopeRun.state.t") == 4
    expect(page.locator("#view-hidden")).to_have_class(re.compile("focus"))
    poll(page, "() => document.querySelector('#chart-hidden .gs-marker-x:not([hidden])') !== null")


def test_stop_button_stops_a_running_run(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run = http.post("/api/runs", json={**STREAMED, "steps": 100_000, "probe_every": 50}).json()
    gs_page.goto(url(f"/runs/{run['id']}"))
    expect(gs_page.locator("#run-status")).to_have_text(re.compile("queued|running"))
    expect(gs_page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    gs_page.click("#stop")
    expect(gs_page.locator("#run-status")).to_have_text("stopped", timeout=15_000)
    assert wait_for_run(http, run["id"])["status"] == "stopped"
