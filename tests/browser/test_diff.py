"""The diff view in Chromium (/compare?runs=a,b&diff=1): two runs of one task and T aligned by
training step, the log-ratio of their gradient flows checked cell by cell against numbers
recomputed here from the API, the hidden-state difference against the two stored frames, both
loss curves on one axis; a sentence for runs of different tasks or a wrong count of runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, wait_for_run
from tests.browser.test_compare_learn import FRAMES, TINY

BASE = TINY  # each run names its own cell


def _runs(http: httpx.Client, *configs: dict[str, Any]) -> list[str]:
    ids = [str(http.post("/api/runs", json=c).json()["id"]) for c in configs]
    for run_id in ids:
        wait_for_run(http, run_id)
    return ids


DRAWN = "(id) => document.getElementById(id).__chart.layer?.drawn"


def _ratio(http: httpx.Client, a: str, b: str, kind: str) -> list[list[float]]:
    """log10(b/a) of the two runs' gradient-flow rows from the API, each norm at least the floor."""
    low = 10.0 ** http.get("/api/catalog").json()["display"]["floor"]
    fa, fb = (http.get(f"/api/runs/{r}/gradflow", params={"kind": kind}).json() for r in (a, b))
    assert fa["steps"] == fb["steps"] == [0, 10, 20, 30, 40, 50, 60]
    return [
        [math.log10(max(y, low)) - math.log10(max(x, low)) for x, y in zip(ra, rb, strict=True)]
        for ra, rb in zip(fa["z"], fb["z"], strict=True)
    ]


def _drawn_ratio(page: Page) -> dict[str, Any]:
    spec: dict[str, Any] = page.evaluate(
        """() => {
             const s = document.getElementById('chart-diff-ratio').__chart.layer.spec;
             return { min: s.min, max: s.max, colors: s.colors,
                      rows: Array.from({ length: s.rows }, (_, i) => Array.from(s.row(i))) };
           }"""
    )
    return spec


def _ended(page: Page) -> None:
    poll(
        page,
        "() => window.__gatescopeCompare?.diff?.sides.every("
        f"(x) => x.feed.ended && x.feed.gradflow.steps.length === {FRAMES})"
        " && window.__gatescopeCompare.diff.state.frames",
    )


def test_the_diff_of_two_runs_is_their_log_ratio_and_difference(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    tagging = {**BASE, "task": {"name": "tagging", "seq_len": 30}}  # a loss at every t: total != last
    a, b = _runs(http, {**tagging, "cell": "rnn_tanh"}, {**tagging, "cell": "gru", "name": "the gru"})
    page.goto(url(f"/compare?runs={a},{b}&diff=1"))
    _ended(page)
    for chart in ("chart-diff-flow-a", "chart-diff-flow-b", "chart-diff-ratio", "chart-diff-h"):
        expect(page.locator(heatmap(chart))).to_have_count(1)
    poll(page, f"() => ({DRAWN})('chart-diff-ratio') === {FRAMES}")

    # the drawn log-ratio, cell by cell, against the two runs' gradient flows from the API
    want = _ratio(http, a, b, "last")
    spec = _drawn_ratio(page)
    assert len(spec["rows"]) == FRAMES
    for got_row, want_row in zip(spec["rows"], want, strict=True):
        assert got_row == pytest.approx(want_row, abs=1e-4), "the drawn log10(b/a) of the API's norms"
    biggest = max(abs(v) for row in want for v in row)
    assert spec["colors"] == "rdbu" and spec["min"] == -spec["max"] and spec["max"] >= biggest - 1e-4
    assert any(abs(v) > 0.1 for row in want for v in row), "a tanh RNN and a GRU differ"

    # the hidden-state difference at the latest common step: b - a of the two display frames
    diff = page.evaluate(
        """() => {
             const s = document.getElementById('chart-diff-h').__chart.layer.spec;
             return { step: window.__gatescopeCompare.diff.state.frames[0].step,
                      row0: Array.from(s.row(0)), min: s.min, max: s.max };
           }"""
    )
    assert diff["step"] == 60 and diff["min"] == -diff["max"]
    ha, hb = (http.get(f"/api/runs/{r}/probes/60", params={"format": "json"}).json() for r in (a, b))
    want_row0 = [tb[0] - ta[0] for ta, tb in zip(ha["h"][0], hb["h"][0], strict=True)]  # unit 0 over t
    assert diff["row0"] == pytest.approx(want_row0, abs=2e-3)  # float16 frames

    # both loss curves on one axis, no fork point for two independent runs
    traces = page.evaluate("() => document.getElementById('chart-diff-loss').data.map((d) => d.name)")
    assert traces == ["a: rnn_tanh H=16 · tagging (T=30)", "b: the gru"]
    expect(page.locator("#chart-diff-loss")).not_to_contain_text("fork @")
    expect(page.locator("#diff-head-b")).to_contain_text("the gru")
    reveal_all(page)
    screenshot(page, "diff-two-runs", full_page=True)

    # the total gradient's ratio once the switch says total
    page.check('input[name="kind"][value="total"]')
    total = _ratio(http, a, b, "total")
    assert total != want
    poll(
        page,
        f"() => window.__gatescopeCompare.diff.state.diff?.steps.length === {FRAMES}"
        " && window.__gatescopeCompare.diff.state.diff.a.kind === 'total'",
    )
    poll(page, f"() => ({DRAWN})('chart-diff-ratio') === {FRAMES}")
    for got_row, want_row in zip(_drawn_ratio(page)["rows"], total, strict=True):
        assert got_row == pytest.approx(want_row, abs=1e-4)


def test_a_diff_of_different_tasks_or_counts_says_why(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    a, b = _runs(
        http,
        {**BASE, "cell": "rnn_tanh", "steps": 10},
        {**BASE, "cell": "rnn_tanh", "steps": 10, "task": {"name": "adding", "seq_len": 20}},
    )
    page.goto(url(f"/compare?runs={a},{b}"))  # side by side, with the diff one click away
    page.click("#to-diff")
    page.wait_for_url(url(f"/compare?runs={a},{b}&diff=1"))
    expect(page.locator("#diff-problem")).to_contain_text("same task and sequence length")
    expect(page.locator("#diff-problem")).to_contain_text("T=20")
    expect(page.locator("#diff-body")).to_be_hidden()
    page.goto(url(f"/compare?runs={a},nosuchrun&diff=1"))
    expect(page.locator("#diff-problem")).to_have_text(
        "nosuchrun: the server refused to stream this run (4404): there is no run with id 'nosuchrun'"
    )
    page.goto(url(f"/compare?runs={a}&diff=1"))
    expect(page.locator("#compare .error")).to_have_text(
        "A diff is of exactly two runs (?runs=a,b&diff=1); this address names 1."
    )


def test_a_fork_from_the_run_page_and_its_diff_with_the_parent(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    (parent,) = _runs(http, {**BASE, "cell": "rnn_tanh", "name": "parent"})
    page.goto(url(f"/runs/{parent}?step=30"))
    button = page.locator("#fork-here")
    expect(button).to_have_text("Fork from step 30")
    button.click()
    page.wait_for_url(lambda u: "/runs/" in u and parent not in u)
    fork = http.get(f"/api/runs/{page.url.rsplit('/', 1)[1].split('?')[0]}").json()
    assert fork["fork"] == {"parent": parent, "step": 30, "changes": {}}
    expect(page.locator("#lineage-parent")).to_contain_text("Fork of parent at step 30 with no changes")
    screenshot(page, "lineage-fork")
    wait_for_run(http, fork["id"])

    # no changes: the fork's later steps are its parent's, so the diff is 0 at every common step
    page.locator("#lineage-parent").get_by_role("link", name="diff with parent").click()
    page.wait_for_url(lambda u: f"runs={parent},{fork['id']}&diff=1" in u)
    common = [s for s in range(0, 61, 10) if s >= 30]
    poll(
        page,
        "() => window.__gatescopeCompare?.diff?.state.diff?.steps.length === "
        f"{len(common)} && window.__gatescopeCompare.diff.state.frames",
    )
    assert page.evaluate("() => window.__gatescopeCompare.diff.state.diff.steps") == common
    expect(page.locator("#diff-same")).to_contain_text(f"At every probe step both have ({len(common)})")
    expect(page.locator("#chart-diff-loss")).to_contain_text("fork @30")
    reveal_all(page)
    screenshot(page, "diff-fork-no-changes", full_page=True)

    # two forks of one run: each one's fork point
    other = http.post(f"/api/runs/{parent}/fork", json={"step": 40, "changes": {"lr": 0.01}}).json()
    wait_for_run(http, other["id"])
    page.goto(url(f"/compare?runs={fork['id']},{other['id']}&diff=1"))
    expect(page.locator("#chart-diff-loss")).to_contain_text("a: fork @30")
    expect(page.locator("#chart-diff-loss")).to_contain_text("b: fork @40")

    # the parent lists its forks, each with a diff
    page.goto(url(f"/runs/{parent}"))
    expect(page.locator("#lineage-forks")).to_contain_text(f"{fork['id']} @30")
    expect(page.locator("#lineage-forks")).to_contain_text(f"{other['id']} @40")
    screenshot(page, "lineage-parent")
