"""The sweep page in Chromium: a tiny real sweep's progress updates while it runs, the phase
diagram draws a loss and a gradient-ratio heatmap per cell whose hover numbers are the API's,
a click opens the cell's run (whose page links back to the sweep), and the dashboard lists it
beside the ready-made sweeps' buttons."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import heatmap, poll, screenshot

TINY: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 4,
    "init": {"scheme": "normal"},
    "task": {"name": "recall", "seq_len": 5, "n_classes": 3},
    "batch_size": 4,
    "steps": 30,
    "probe_every": 10,
    "itemize": False,
}
GRID: dict[str, list[Any]] = {
    "cell": ["rnn_tanh", "gru"],
    "init.gain": [0.5, 1.5],
    "task.seq_len": [5, 8, 12],
}


def fmt(x: float) -> str:
    """api.js's fmt(x): 3 significant digits, exponent form outside 1e-3..1e5."""
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        mantissa, exponent = f"{x:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent):+d}"
    return f"{float(f'{x:.3g}'):g}"


def cell_point(page: Page, chart_id: str, x: float, y: float) -> tuple[float, float]:
    """Where data point (x, y) of a chart is on the page, as Plotly laid out its axes."""
    point: list[float] = page.evaluate(
        """([id, x, y]) => {
        const node = document.getElementById(id);
        const f = node._fullLayout;
        const { l, t, w, h } = f._size;
        const [x0, x1] = f.xaxis.range;
        const [y0, y1] = f.yaxis.range;
        const box = node.getBoundingClientRect();
        return [box.left + l + ((x - x0) / (x1 - x0)) * w, box.top + t + ((y1 - y) / (y1 - y0)) * h];
    }""",
        [chart_id, x, y],
    )
    return point[0], point[1]


def pixels(page: Page, chart_id: str) -> list[list[list[int]]]:
    """The RGBA of every cell of a chart's heatmap canvas, row by row (row 0: the first y value)."""
    rgba: list[list[list[int]]] = page.locator(heatmap(chart_id)).evaluate(
        """(c) => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const at = (i, j) => Array.from(d.slice((i * c.width + j) * 4, (i * c.width + j) * 4 + 4));
        const row = (i) => Array.from({ length: c.width }, (_, j) => at(i, j));
        return Array.from({ length: c.height }, (_, i) => row(i));
    }"""
    )
    return rgba


def hover(page: Page, chart_id: str, x: float, y: float) -> str:
    page.mouse.move(*cell_point(page, chart_id, x, y))
    tip = page.locator(f"#{chart_id} .gs-tip")
    expect(tip).to_be_visible()
    return tip.inner_text()


def test_the_sweep_page_draws_the_phase_diagram_of_a_real_sweep(
    gs_page: Page, http: httpx.Client, url: Callable[[str], str]
) -> None:
    page = gs_page
    made = http.post("/api/sweeps", json={"name": "tiny chaos", "base": TINY, "grid": GRID})
    assert made.status_code == 201, made.text
    sweep_id = made.json()["id"]
    page.goto(url(f"/sweeps/{sweep_id}"))
    expect(page.locator("#sweep-name")).to_have_text("tiny chaos")
    progress = page.locator("#sweep-progress-text")
    expect(progress).to_contain_text("of 12 done")
    first = int(progress.inner_text().split(" of ")[0])
    poll(page, f"() => parseInt(document.getElementById('sweep-progress-text').textContent) > {first}", 180)
    deadline = time.monotonic() + 240
    while (sweep := http.get(f"/api/sweeps/{sweep_id}").json())["done"] < 12:
        assert time.monotonic() < deadline, sweep["counts"]
        time.sleep(0.5)
    expect(progress).to_contain_text("12 of 12 done", timeout=10_000)  # the page polled until the end
    polls: list[str] = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if f"/api/sweeps/{sweep_id}" in request.url else None,
    )
    page.wait_for_timeout(5000)  # 2.5 polling intervals
    assert polls == []  # and then stopped
    assert page.locator("#sweep-progress").evaluate("(p) => [p.value, p.max]") == [12, 12]
    assert page.locator("#axis-x").input_value() == "task.seq_len"  # 3 values: the axis with the most
    assert page.locator("#axis-y").input_value() == "init.gain"
    for cell in GRID["cell"]:
        for kind in ("loss", "ratio"):
            expect(page.locator(heatmap(f"map-{kind}-{cell}"))).to_be_visible()

    runs = {
        (r["params"]["cell"], r["params"]["init.gain"], r["params"]["task.seq_len"]): r for r in sweep["runs"]
    }
    for (cell, gain, T), run in runs.items():
        x, y = GRID["task.seq_len"].index(T), GRID["init.gain"].index(gain)
        said = hover(page, f"map-loss-{cell}", x, y)
        assert f"final loss / baseline {fmt(run['relative'])}" in said, (said, run)
        assert f"loss {fmt(run['loss'])} vs baseline {fmt(run['baseline'])}" in said
        assert run["relative"] == run["loss"] / math.log(3)
        said = hover(page, f"map-ratio-{cell}", x, y)
        assert f"at step 0: {fmt(run['ratio'])}" in said and f"run {run['id']}" in said, (said, run)
    for cell in GRID["cell"]:  # every cell painted; the best and the worst run in different colours
        for kind, value in (("loss", "relative"), ("ratio", "ratio")):
            drawn = pixels(page, f"map-{kind}-{cell}")
            assert all(p[3] == 255 for row in drawn for p in row), (cell, kind, drawn)
            mine = [r for key, r in runs.items() if key[0] == cell]
            lo, hi = min(mine, key=lambda r: r[value]), max(mine, key=lambda r: r[value])
            at = [
                (
                    GRID["init.gain"].index(r["params"]["init.gain"]),
                    GRID["task.seq_len"].index(r["params"]["task.seq_len"]),
                )
                for r in (lo, hi)
            ]
            if hi[value] > 1.2 * lo[value]:
                assert drawn[at[0][0]][at[0][1]] != drawn[at[1][0]][at[1][1]], (cell, kind, lo, hi)
    screenshot(page, "sweep-tiny", full_page=True)
    page.select_option("#axis-x", "init.gain")  # the other axis's path: the two swap
    assert page.locator("#axis-y").input_value() == "task.seq_len"
    poll(
        page,
        "() => document.getElementById('map-loss-rnn_tanh')._fullLayout.xaxis.title.text === 'init gain'",
    )
    run = runs[("rnn_tanh", 1.5, 12)]
    said = hover(page, "map-loss-rnn_tanh", GRID["init.gain"].index(1.5), GRID["task.seq_len"].index(12))
    assert f"final loss / baseline {fmt(run['relative'])}" in said, said

    run = runs[("gru", 1.5, 8)]
    page.mouse.click(*cell_point(page, "map-loss-gru", 1, 1))
    page.wait_for_url(re.compile(f"/runs/{run['id']}$"))
    link = page.locator("#group")
    expect(link).to_have_text("sweep: tiny chaos")
    assert link.get_attribute("href") == f"/sweeps/{sweep_id}"

    page.goto(url("/"))
    listed = page.locator(f"#sweep-list a[href='/sweeps/{sweep_id}']")
    expect(listed).to_have_text("tiny chaos")
    expect(page.locator("#sweep-list")).to_contain_text("12 of 12 done")
    preset = http.get("/api/catalog").json()["sweeps"][0]
    start = page.locator(f"[data-sweep='{preset['name']}']")
    expect(start).to_have_text(f"Start {preset['sweep']['name']} (63 runs)")
    expect(page.locator(f"[data-sweep-full='{preset['name']}']")).to_have_text("the full grid (120 runs)")


def test_stop_and_delete_from_the_sweep_page(
    gs_page: Page, http: httpx.Client, url: Callable[[str], str]
) -> None:
    page = gs_page
    slow = {**TINY, "steps": 100_000, "probe_every": 1000}
    sweep_id = http.post("/api/sweeps", json={"base": slow, "grid": {"seed": list(range(6))}}).json()["id"]
    page.goto(url(f"/sweeps/{sweep_id}"))
    expect(page.locator("#sweep-progress-text")).to_contain_text("0 of 6 done")
    page.locator("#stop-sweep").click()
    expect(page.locator("#sweep-progress-text")).to_contain_text("6 of 6 done · 6 stopped")
    expect(page.locator("#stop-sweep")).to_be_disabled()
    runs = [r["id"] for r in http.get(f"/api/sweeps/{sweep_id}").json()["runs"]]
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-sweep").click()
    page.wait_for_url(url("/"))
    assert http.get(f"/api/sweeps/{sweep_id}").status_code == 404
    assert all(http.get(f"/api/runs/{run_id}").status_code == 404 for run_id in runs)
