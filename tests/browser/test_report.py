"""The one-file report opened from disk: file://, every other request routed and counted (zero),
the views drawn from the embedded data (heatmap cells painted, the loss curve), the scrubber
changing the frame shown. Screenshot: test-artifacts/report.png."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.browser.conftest import only_the_file, painted, poll, reveal_all, screenshot, wait_for_run

RUN = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 8},
    "batch_size": 4,
    "steps": 60,
    "probe_every": 10,
}


def test_report_draws_from_disk_with_no_request(page: Page, http: httpx.Client, tmp_path: Path) -> None:
    run_id = http.post("/api/runs", json=RUN).json()["id"]
    assert wait_for_run(http, run_id)["status"] == "completed"
    r = http.get(f"/api/runs/{run_id}/report", timeout=60)
    assert r.status_code == 200, r.text
    path = tmp_path / f"gatescope-{run_id}.html"
    path.write_bytes(r.content)

    requests = only_the_file(page, path)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    poll(page, "() => window.__gatescopeReport && window.__gatescopeReport.state.frame")
    reveal_all(page)  # charts draw once on screen
    assert painted(page, '[data-chart="hidden"]') == 1
    assert painted(page, '[data-chart="gradflow"]') > 0.5
    lines = """() => document.querySelectorAll('[data-chart="loss"] .scatterlayer path.js-line').length"""
    points = poll(page, lines)
    assert points >= 1
    steps = page.evaluate("() => window.__gatescopeReport.source.probeSteps")
    assert steps == http.get(f"/api/runs/{run_id}/probes").json()
    last = page.evaluate("() => window.__gatescopeReport.state.frame.step")
    assert last == steps[-1]
    shown = """() => document.querySelector('[data-chart="hidden"] canvas.gs-heatmap').toDataURL()"""
    before = page.evaluate(shown)
    to_first = "(el) => { el.value = 0; el.dispatchEvent(new Event('input')); }"
    page.locator('[data-part="scrub"]').evaluate(to_first)
    reveal_all(page)
    poll(page, f"() => window.__gatescopeReport.state.frame.step === {steps[0]}")
    assert page.locator('[data-part="scrub-label"]').text_content() == str(steps[0])
    assert page.evaluate(shown) != before  # the hidden state of step 0, drawn
    legend = """() => document.querySelector('[data-legend="gradflow"]').textContent"""
    assert "‖∂ℓ_T/∂h_t‖" in page.evaluate(legend)
    page.select_option('[data-part="kind"]', "total")  # the other embedded flow (the same values on this
    assert poll(page, f"() => ({legend})().includes('‖∂L/∂h_t‖')")  # many-to-one task)
    assert "stored probe frames are in it" in (page.locator('[data-part="note"]').text_content() or "")
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "report", full_page=True)
    assert requests == []
    assert errors == []
