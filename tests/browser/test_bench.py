"""The run page's lab bench in Chromium: pause a running run (the page says paused and shows the
knobs it trains with now), a value out of range is refused in the form's words, an intervention
on the learning rate is listed and marked at its step on every chart over training, resume; a
finished or attached run's bench is disabled with a sentence. Its screenshot test-artifacts/bench.png is the
one in docs/screenshots/bench.png."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import VIEWPORT, poll, screenshot
from tests.browser.test_attached import Script

SLOW: dict[str, Any] = {
    "name": "bench",
    "cell": "lstm",
    "hidden_size": 16,
    "task": {"name": "adding", "seq_len": 30},
    "batch_size": 16,
    "optimizer": {"name": "adam", "lr": 0.003},
    "steps": 100_000,
    "probe_every": 10,
}
CHARTS_OVER_TRAINING = ("loss", "metric", "gradnorm", "params", "update", "saturation", "gradflow")

# the marks on a chart: its layout's intervention shapes and their labels' hover text
MARKS = """(id) => {
  const layout = document.getElementById(id).layout || {};
  const shapes = (layout.shapes || []).filter((s) => s.name === "intervention");
  const labels = (layout.annotations || []).filter((a) => a.name === "intervention");
  const hover = labels.map((a) => a.hovertext);
  return { shapes: shapes.map((s) => [s.xref, s.x0, s.yref, s.y0, s.line.dash]), hover };
}"""


def _status(page: Page) -> Any:
    return page.evaluate("() => document.getElementById('run-status').textContent")


def test_pause_read_the_knobs_intervene_see_the_marks_and_resume(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    run_id = http.post("/api/runs", json=SLOW).json()["id"]
    page.goto(url(f"/runs/{run_id}"))
    poll(page, "() => !document.getElementById('pause-run').disabled")  # it trains
    poll(page, "() => window.__gatescopeRun.feed.probeSteps.length >= 3")
    page.click("#pause-run")
    poll(page, "() => document.getElementById('run-status').textContent === 'paused'")
    expect(page.locator("#run-status")).to_have_class("status status-paused")
    paused = http.get(f"/api/runs/{run_id}").json()
    assert paused["status"] == "paused"
    expect(page.locator("#bench-note")).to_contain_text(f"Paused after step {paused['step']}")
    expect(page.locator("#resume-run")).to_be_visible()
    expect(page.locator("#pause-run")).to_be_hidden()
    knobs = page.locator("#bench-knobs")
    expect(knobs).to_contain_text("Knobs now (paused)")
    expect(knobs.locator('[data-knob="lr"]')).to_have_text("learning rate 0.003")
    expect(knobs.locator('[data-knob="clip"]')).to_have_text("clipping by norm at 1")
    expect(knobs.locator('[data-knob="tbptt"]')).to_have_text("backprop through time full")
    assert page.locator('#bench-form [name="lr"]').input_value() == "0.003"  # the form starts from them

    # out of range: refused by the server, said in the form's words, nothing applied
    page.problems.allowed.append("422")  # type: ignore[attr-defined]  # the refused intervention, on purpose
    page.fill('#bench-form [name="lr"]', "20")
    page.click("#bench-apply")
    expect(page.locator("#form-error")).to_have_text("learning rate must be at most 10")
    expect(page.locator('#bench-form [name="lr"]')).to_have_attribute("aria-invalid", "true")
    assert http.get(f"/api/runs/{run_id}/interventions").json() == []

    page.fill('#bench-form [name="lr"]', "0.01")
    page.click("#bench-apply")
    poll(page, "() => document.querySelectorAll('#bench-list li').length === 1")
    (item,) = http.get(f"/api/runs/{run_id}/interventions").json()
    assert (item["step"], item["changes"]) == (paused["step"], {"lr": 0.01})
    expect(page.locator("#bench-list li")).to_contain_text(f"after step {paused['step']}: learning rate 0.01")
    expect(page.locator("#bench-sent")).to_have_text(
        f"Applied after step {paused['step']}: learning rate 0.01."
    )
    expect(knobs.locator('[data-knob="lr"]')).to_have_text(f"learning rate 0.01 since step {paused['step']}")
    expect(page.locator("#form-error")).to_be_hidden()

    at = paused["step"] + 0.5
    hover = f"after step {paused['step']}: learning rate 0.01"
    for name in CHARTS_OVER_TRAINING:
        page.locator(f"#chart-{name}").scroll_into_view_if_needed()  # a chart draws only on screen
        marks = poll(page, f"() => ({MARKS})('chart-{name}').shapes.length && ({MARKS})('chart-{name}')")
        assert marks["hover"] == [hover], name
        if name == "gradflow":  # training steps run up its rows: across it, above the newest row
            ((xref, _, yref, y, dash),) = marks["shapes"]
            rows = page.evaluate("() => window.__gatescopeRun.feed.gradflow.steps")
            assert (xref, yref, dash) == ("paper", "y", "dot")
            assert rows[-1] <= paused["step"] and y == len(rows) - 0.5
        else:
            assert marks["shapes"] == [["x", at, "paper", 0, "dot"]], name

    page.click("#resume-run")
    poll(page, "() => document.getElementById('run-status').textContent === 'running'")
    expect(page.locator("#pause-run")).to_be_enabled()
    steps = f"() => window.__gatescopeRun.feed.metrics.step.at(-1) > {paused['step'] + 20}"
    poll(page, steps)  # it trains on, with the new rate
    lrs = {m["lr"] for m in http.get(f"/api/runs/{run_id}/metrics").json() if m["step"] > paused["step"]}
    assert lrs == {0.01}
    # once a probe row lies after it, the gradient flow's mark sits between the rows around it
    poll(page, f"() => window.__gatescopeRun.feed.gradflow.steps.at(-1) > {paused['step']}")
    flow = poll(page, f"() => ({MARKS})('chart-gradflow').shapes.length && ({MARKS})('chart-gradflow')")
    rows = page.evaluate("() => window.__gatescopeRun.feed.gradflow.steps")
    below = max(i for i, s in enumerate(rows) if s <= paused["step"])
    assert below < flow["shapes"][0][3] < below + 1

    # the mark's label names the change on hover
    page.locator("#chart-loss").scroll_into_view_if_needed()
    page.locator("#chart-loss .annotation", has_text="lr").hover()
    shown = "() => document.querySelector('#chart-loss .hoverlayer')?.textContent"
    assert poll(page, shown) == hover

    # paused again later: the knobs say since when; the bench and the marked curves photographed
    page.click("#pause-run")
    poll(page, "() => document.getElementById('run-status').textContent === 'paused'")
    expect(knobs.locator('[data-knob="lr"]')).to_have_text(f"learning rate 0.01 since step {paused['step']}")
    page.locator("#chart-gradflow").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    screenshot(page, "bench-gradflow")
    page.set_viewport_size({"width": 1280, "height": 1560})  # the head, the bench and the curves
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(800)
    screenshot(page, "bench")  # docs/screenshots/bench.png is a copy of one
    page.set_viewport_size(VIEWPORT)

    # the dashboard says paused too, and its status filter finds the run by it
    dashboard = page.context.new_page()
    dashboard.goto(url("/"))
    dashboard.select_option("#runs-status", "paused")
    listed = dashboard.locator(f'#runs tr[data-run="{run_id}"] .status')
    expect(listed).to_have_text("paused")
    expect(listed).to_have_class("status status-paused")
    expect(dashboard.locator("#runs tbody tr .status:not(.status-paused)")).to_have_count(0)  # only paused
    dashboard.close()

    # a clip threshold changed: the gradient norm's dashed threshold follows it from that step on
    again = http.get(f"/api/runs/{run_id}").json()["step"]
    page.select_option('#bench-form [name="optimizer.name"]', "sgd")  # a switch starts afresh
    expect(page.locator('#bench-form [name="optimizer.reset_state"]')).to_be_checked()
    page.select_option('#bench-form [name="optimizer.name"]', "adam")
    page.uncheck('#bench-form [name="optimizer.reset_state"]')
    page.fill('#bench-form [name="clip.threshold"]', "0.5")
    page.click("#bench-apply")
    expect(page.locator("#bench-sent")).to_have_text(f"Applied after step {again}: clip by norm at 0.5.")
    page.click("#resume-run")
    poll(page, f"() => window.__gatescopeRun.feed.metrics.step.at(-1) > {again + 5}")
    page.locator("#chart-gradnorm").scroll_into_view_if_needed()
    dashed = f"""() => {{
      const shapes = document.getElementById('chart-gradnorm').layout.shapes || [];
      const lines = shapes.filter((s) => s.line.dash === 'dash').map((s) => [s.x0, s.x1, s.y0]);
      return lines.length === 2 && lines[1][1] > {again + 5} && lines;
    }}"""
    (before, after) = poll(page, dashed)
    assert (before[0], before[1:]) == (1, [again + 0.5, 1]) and (after[0], after[2]) == (again + 0.5, 0.5)

    http.post(f"/api/runs/{run_id}/stop")
    poll(page, "() => document.getElementById('run-status').textContent === 'stopped'")
    expect(page.locator("#bench-note")).to_contain_text("This run has ended (stopped)")
    assert page.evaluate("() => document.getElementById('bench-fields').disabled")
    expect(page.locator("#pause-run")).to_be_disabled()
    expect(page.locator("#bench-list li")).to_have_count(2)  # still listed


def test_an_attached_run_s_bench_says_why_it_has_no_controls(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    script = Script(http)  # a watched script's run: its weights live in the script
    script.train(4)
    page = gs_page
    page.goto(url(f"/runs/{script.run_id}"))
    expect(page.locator("#bench-note")).to_contain_text("An attached run trains in your script")
    assert page.evaluate("() => document.getElementById('bench-fields').disabled")
    expect(page.locator("#pause-run")).to_be_disabled()
    expect(page.locator("#bench-knobs")).to_be_hidden()  # GET .../knobs is a 409 for it: not asked
    script.end()
