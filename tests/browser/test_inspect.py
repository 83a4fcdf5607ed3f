"""The run page's inspect tool (static/js/tools.js, readout.js) in a real browser: it starts from
the run's own probe input (char_lm: its probe text; adding: the probe frame's inputs, fetched at
full resolution when the display frame is pooled in time), inspects it unchanged as the probe
sample ({"probe": true}), and shows the model's outputs next to the gradients: the next-character
probabilities of a char_lm run and the predicted sum of an adding run, each with its target."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import ARTIFACTS, heatmap, poll, wait_for_run

HELLO: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "char_lm", "corpus": "hello"},
    "batch_size": 1,
    "optimizer": {"name": "adam", "lr": 0.02},
    "steps": 200,
    "probe_every": 50,
}
ADDING: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 12},
    "steps": 60,
    "probe_every": 20,
}


def finished(http: httpx.Client, config: dict[str, Any]) -> str:
    run = http.post("/api/runs", json=config).json()
    assert wait_for_run(http, run["id"])["status"] == "completed", run
    run_id: str = run["id"]
    return run_id


@pytest.fixture(scope="module")
def hello_run(http: httpx.Client) -> str:
    return finished(http, HELLO)


@pytest.fixture(scope="module")
def adding_run(http: httpx.Client) -> str:
    return finished(http, ADDING)


def inspected(http: httpx.Client, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the API answers for this inspect body, as JSON."""
    answer = http.post(f"/api/runs/{run_id}/inspect", params={"format": "json"}, json=body)
    assert answer.status_code == 200, answer.text
    frame: dict[str, Any] = answer.json()
    return frame


def readout_rows(page: Page) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#inspect-readout tbody tr'),
             (tr) => Array.from(tr.cells, (td) => td.textContent))"""
    )
    return rows


def photograph(page: Page, name: str) -> None:
    """The inspect tool alone, into test-artifacts/<name>.png, once its charts have drawn."""
    for chart in ("chart-inspect-hidden", "chart-inspect-gate"):
        page.locator(f"#{chart}").scroll_into_view_if_needed()  # charts draw when on screen
        expect(page.locator(heatmap(chart))).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 1280, "height": 1600})  # the whole tool on screen: no sticky bar over it
    page.locator("#view-inspect").screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if size is not None:
        page.set_viewport_size(size)


def open_inspect(page: Page, url: str) -> list[Request]:
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.url.split("?")[0].endswith("/inspect") else None)
    page.goto(url)
    page.locator("#view-inspect").scroll_into_view_if_needed()
    return posts


def test_char_lm_shows_the_next_character_probabilities(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client, hello_run: str
) -> None:
    page = gs_page
    posts = open_inspect(page, url(f"/runs/{hello_run}"))
    expect(page.locator("#inspect-text")).to_have_value("hell")  # the run's probe text
    page.click("#inspect-form button[type=submit]")
    expect(page.locator("#inspect-readout table")).to_be_visible()
    assert json.loads(posts[0].post_data or "") == {"probe": True}  # unchanged: the probe sample
    frame = inspected(http, hello_run, {"probe": True})
    vocab = http.get(f"/api/runs/{hello_run}/task").json()["vocab"]
    t = frame["last_step"]
    expect(page.locator("#inspect-t")).to_have_value(str(t))
    expect(page.locator(".readout-title")).to_contain_text(f"the next character at t = {t}")

    def expected(t: int) -> list[tuple[str, str]]:
        logits = frame["outputs"][t]
        z = [math.exp(v - max(logits)) for v in logits]
        p = [v / sum(z) for v in z]
        order = sorted(range(len(p)), key=lambda i: -p[i])
        return [(f"‘{vocab[i]}’", f"{p[i]:.3f}") for i in order]

    assert [(r[1], r[3]) for r in readout_rows(page)] == expected(t)  # all 4 characters of "helo"
    page.fill("#inspect-t", "0")  # after reading 'h'
    expect(page.locator(".readout-title")).to_contain_text("at t = 0 after reading ‘h’")
    rows = readout_rows(page)
    assert [(r[1], r[3]) for r in rows] == expected(0)
    assert rows[0][1] == "‘e’" and rows[0][4] == "← target"  # trained on "hello": 'e' follows 'h'
    photograph(page, "inspect-char_lm")


def test_adding_starts_from_the_probe_input_and_shows_the_predicted_sum(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client, adding_run: str
) -> None:
    page = gs_page
    posts = open_inspect(page, url(f"/runs/{adding_run}"))
    stored = http.get(f"/api/runs/{adding_run}/probes/latest", params={"format": "json"}).json()
    box = page.locator("#inspect-text")
    poll(page, "() => document.getElementById('inspect-text').value !== ''")
    shown = json.loads(box.input_value())
    assert np.shape(shown) == (12, 2)  # to 3 decimals
    np.testing.assert_allclose(shown, stored["inputs"], atol=5.01e-4)
    page.click("#inspect-form button[type=submit]")
    expect(page.locator("#inspect-readout table")).to_be_visible()
    assert json.loads(posts[0].post_data or "") == {"probe": True}
    frame = inspected(http, adding_run, {"probe": True})
    prediction, target = frame["outputs"][-1][0], frame["targets"][-1][0]
    rows = readout_rows(page)
    assert len(rows) == 1 and rows[0][0] == "t = 11"
    assert float(rows[0][1]) == pytest.approx(prediction, abs=5.01e-4)  # to 3 decimals
    assert float(rows[0][2]) == pytest.approx(target, abs=5.01e-4)
    expect(page.locator("#inspect-t")).to_be_hidden()  # no t box: adding has one loss step
    expect(page.locator("#inspect-notes")).to_have_text("")
    photograph(page, "inspect-adding")

    edited = [[0.5, 1.0], [0.25, 1.0], *([[0.0, 0.0]] * 4)]
    box.fill(json.dumps(edited))
    page.click("#inspect-form button[type=submit]")
    expect(page.locator("#inspect-notes")).to_contain_text("no targets")
    assert json.loads(posts[1].post_data or "") == {"inputs": edited}
    own = inspected(http, adding_run, {"inputs": edited})
    poll(page, "() => document.querySelector('#inspect-readout tbody tr td')?.textContent === 't = 5'")
    rows = readout_rows(page)
    assert float(rows[0][1]) == pytest.approx(own["outputs"][-1][0], abs=5.01e-4) and rows[0][2] == "–"


def test_a_pooled_probe_frame_fills_the_box_with_the_full_input(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    """A 600-step adding run: its display frames pool 2 steps to a column, so the box's input
    comes from the full-resolution frame, all 600 steps of it."""
    long = {**ADDING, "task": {"name": "adding", "seq_len": 600}, "steps": 2, "probe_every": 1}
    run_id = finished(http, long)
    page = gs_page
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "resolution=full" in r.url else None)
    open_inspect(page, url(f"/runs/{run_id}"))
    poll(page, "() => window.__gatescopeRun?.state.frame?.pool?.tWidth === 2")
    poll(page, "() => document.getElementById('inspect-text').value !== ''")
    stored = http.get(f"/api/runs/{run_id}/probes/latest", params={"format": "json"}).json()
    shown = json.loads(page.locator("#inspect-text").input_value())
    assert np.shape(shown) == (600, 2)
    np.testing.assert_allclose(shown, stored["inputs"], atol=5.01e-4)
    assert [u.split("/api/")[1] for u in fetched] == [f"runs/{run_id}/probes/2?resolution=full"]
    page.click("#inspect-form button[type=submit]")
    expect(page.locator("#inspect-readout table")).to_be_visible()
    rows = readout_rows(page)  # read from the full frame the tool asked for: t in full steps
    assert rows[0][0] == "t = 599"
    frame = inspected(http, run_id, {"probe": True})
    assert float(rows[0][1]) == pytest.approx(frame["outputs"][-1][0], abs=5.01e-4)
