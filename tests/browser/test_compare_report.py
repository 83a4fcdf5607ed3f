"""The group report opened from disk: the three-cell comparison's file (the compare page's
"report" button; the same file as GET /api/groups/{group}/report) in Chromium from file://, every
other request routed and counted (zero); every column's views drawn from the embedded runs, the
gradient-flow and hidden-state colour scales shared across the columns, the gradient kind
switched. Screenshot: test-artifacts/compare-report.png."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import PAINTED, only_the_file, painted, poll, reveal_all, screenshot, wait_for_run

RUN: dict[str, Any] = {
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 8},
    "batch_size": 4,
    "steps": 40,
    "probe_every": 10,
}
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)

# [min, max] of each column's heatmap colour scale in one chart row (gradflow | hidden)
SCALES = """(row) => window.__gatescopeReport.view.columns.map((c) => {
  const spec = document.getElementById(`chart-${row}-${c.runId}`).__chart.layer.spec;
  return [spec.min, spec.max];
})"""
PICTURE = "document.querySelector('#chart-hidden-{}' + ' canvas.gs-heatmap').toDataURL()"
LINES = """(id) => document.querySelectorAll(`#${id} .scatterlayer path.js-line`).length"""


def test_the_three_cell_comparison_as_one_file(
    gs_page: Page, url: Any, http: httpx.Client, tmp_path: Path
) -> None:
    cells = ["rnn_tanh", "lstm", "gru"]  # the three classic cells, named (the default adds minGRU)
    made = http.post("/api/compare", json={"config": {"cell": "lstm", **RUN}, "cells": cells}).json()
    ids = [r["id"] for r in made["runs"]]
    for run_id in ids:
        assert wait_for_run(http, run_id)["status"] == "completed"
    page = gs_page
    page.goto(url(f"/compare?runs={','.join(ids)}"))
    button = page.locator("#report")
    expect(button).to_be_visible()
    href = button.get_attribute("href")
    assert href == f"/api/report?runs={','.join(ids)}"
    r = http.get(href, timeout=60)
    assert r.status_code == 200, r.text
    assert http.get(f"/api/groups/{made['group']}/report", timeout=60).text == r.text  # the group's file
    match = DATA.search(r.text)
    assert match is not None
    embedded = json.loads(match.group(1).replace("<\\/", "</"))
    assert [s["run"]["config"]["cell"] for s in embedded["runs"]] == ["rnn_tanh", "lstm", "gru"]
    path = tmp_path / "compare.html"
    path.write_bytes(r.content)

    page.goto("about:blank")  # the live compare page gone, with its pending requests (seen in CI)
    requests = only_the_file(page, path)
    page.goto(path.as_uri())
    poll(page, "() => window.__gatescopeReport && window.__gatescopeReport.view")
    expect(page.locator(".column")).to_have_count(3)
    reveal_all(page)  # charts draw once on screen
    for run_id in ids:
        assert painted(page, f"#chart-gradflow-{run_id}") > 0.5
        assert poll(page, f"() => ({PAINTED})('#chart-hidden-{run_id}') === 1")
        assert poll(page, f"() => ({LINES})('chart-loss-{run_id}')") >= 1
        assert poll(page, f"() => ({LINES})('chart-lines-{run_id}')") >= 1
    flow = page.evaluate(f"() => ({SCALES})('gradflow')")
    hidden = page.evaluate(f"() => ({SCALES})('hidden')")
    assert len({tuple(s) for s in flow}) == 1, flow  # one shared colour scale across the columns
    assert len({tuple(s) for s in hidden}) == 1 and hidden[0] == [-1, 1], hidden  # tanh-bounded h
    expect(page.locator("#legend-flow")).to_contain_text("shared: ‖∂ℓ_T/∂h_t‖")
    note = page.locator("#report-note")
    expect(note).to_contain_text("within a budget of 15 MB shared by its 3 runs")
    expect(note).to_contain_text("all 5 probe frames")
    # the shared scrubber: every column shows its frame of step 0, then the newest again
    shown = f"() => [{', '.join(PICTURE.format(i) for i in ids)}]"
    newest = page.evaluate(shown)
    to = "(i) => (el) => { el.value = i; el.dispatchEvent(new Event('input')); }"
    page.locator(".compare-scrub").evaluate(f"({to})(0)")
    poll(page, "() => window.__gatescopeReport.view.columns.every((c) => c.shown && c.shown.step === 0)")
    reveal_all(page)
    expect(page.locator(".compare-step")).to_have_text("0")
    expect(page.locator(f'.column[data-run="{ids[0]}"] h3').nth(2)).to_have_text("Hidden state at step 0")
    first = poll(
        page,
        f"() => {{ const s = ({shown})(); return s.every((x, i) => x !== {json.dumps(newest)}[i]) && s; }}",
    )
    assert len(first) == 3  # each column's hidden state drew anew
    page.locator(".compare-scrub").evaluate(f"({to})(4)")
    expect(page.locator(".compare-step")).to_have_text("40 (latest)")
    expect(page.locator(f'.column[data-run="{ids[0]}"] h3').nth(2)).to_have_text(
        "Hidden state at the latest step (40)"
    )
    page.select_option(".compare-kind", "total")
    expect(page.locator("#legend-flow")).to_contain_text("shared: ‖∂L/∂h_t‖")
    reveal_all(page)
    flow = poll(
        page,
        f"""() => {{ const s = ({SCALES})('gradflow');
              return s.every((x) => x[0] === s[0][0] && x[1] === s[0][1]) && s; }}""",
    )
    assert len(flow) == 3
    screenshot(page, "compare-report", full_page=True)
    assert requests == []
