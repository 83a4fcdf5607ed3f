"""The run page's tools in a real browser: inspect your own text, sample a char_lm run, replay
a finished run's recorded probes with play, and every page free of console errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, reveal_all, screenshot, wait_for_run

HELLO: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "char_lm", "corpus": "hello"},
    "batch_size": 1,
    "optimizer": {"name": "adam", "lr": 0.02},
    "steps": 200,
    "probe_every": 10,
}


@pytest.fixture(scope="module")
def hello_run(http: httpx.Client) -> str:
    run = http.post("/api/runs", json=HELLO).json()
    assert wait_for_run(http, run["id"])["status"] == "completed"
    run_id: str = run["id"]
    return run_id


def test_inspect_and_sample_a_char_lm_run(gs_page: Page, url: Callable[[str], str], hello_run: str) -> None:
    page = gs_page
    page.goto(url(f"/runs/{hello_run}"))
    expect(page.locator("#view-sample")).to_be_visible()
    page.fill("#inspect-text", "hellohello")
    page.click("#inspect-form button[type=submit]")
    for chart in ("chart-inspect-hidden", "chart-inspect-gate"):
        page.locator(f"#{chart}").scroll_into_view_if_needed()  # charts draw when on screen
        expect(page.locator(heatmap(chart))).to_have_count(1)
    ticks = [t.text_content() for t in page.locator("#chart-inspect-hidden .xtick text").all()]
    assert "".join(t or "" for t in ticks) == "hellohello"
    page.fill("#sample-prime", "he")
    page.fill("#sample-length", "12")
    page.fill("#sample-temp", "0.1")
    page.fill("#sample-seed", "1")
    page.click("#sample-form button[type=submit]")
    expect(page.locator("#sample-out")).to_have_text(re.compile(r"^he[helo]{12}$"))
    reveal_all(page)
    screenshot(page, "run-hello", full_page=True)


def test_inspect_reports_a_bad_character(gs_page: Page, url: Callable[[str], str], hello_run: str) -> None:
    gs_page.problems.allowed.append("422")  # type: ignore[attr-defined]
    gs_page.goto(url(f"/runs/{hello_run}"))
    expect(gs_page.locator("#view-sample")).to_be_visible()
    gs_page.fill("#inspect-text", "hex")
    gs_page.click("#inspect-form button[type=submit]")
    expect(gs_page.locator("#inspect-error")).to_contain_text("not in the vocabulary")


def test_play_replays_a_finished_runs_probes(
    gs_page: Page, url: Callable[[str], str], hello_run: str
) -> None:
    page = gs_page
    page.goto(url(f"/runs/{hello_run}?step=0"))
    expect(page.locator("#scrub-label")).to_have_text("0")
    page.click("#play")
    page.wait_for_function("() => window.__gatescopeRun.state.frame.step >= 30")
    page.click("#pause")
    step = page.evaluate("() => window.__gatescopeRun.state.frame.step")
    page.wait_for_timeout(700)
    assert page.evaluate("() => window.__gatescopeRun.state.frame.step") == step
    assert f"step={step}" in page.url


@pytest.mark.parametrize(
    "path", ["/", "/learn", "/compare", "/compare?runs=RUN", "/runs/RUN", "/runs/RUN?view=gate-f"]
)
def test_no_console_errors_on_any_page(
    gs_page: Page, url: Callable[[str], str], hello_run: str, path: str
) -> None:
    gs_page.goto(url(path.replace("RUN", hello_run)))
    gs_page.wait_for_load_state("networkidle")
    reveal_all(gs_page)
    problems = gs_page.problems.items  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)  # gs_page checks again at teardown


def test_an_unknown_run_says_so(gs_page: Page, url: Callable[[str], str]) -> None:
    gs_page.problems.allowed.append("404")  # type: ignore[attr-defined]
    gs_page.goto(url("/runs/doesnotexist"))
    expect(gs_page.locator("#run-error")).to_contain_text("no run")
