"""The run page's Why section in Chromium (static/js/why.js), held to numbers recomputed here from
the frame the page shows: the drawn bound is ||dl_T/dh_T|| * prod ||J_k|| of the frame's own
jacobian_norm, the measured line is its grad_h_last, the factors are jacobian_norm and the LSTM's
cell path, the caption quotes them, and W_hh's spectra are the endpoint's. A display frame pooled
in t draws a bound at least every exact one of its bins. docs/screenshots/why.png is taken here."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from playwright.sync_api import Page

from tests.browser.conftest import TIMEOUT_MS, poll, wait_for_run
from tests.live_server import REPO_ROOT

RNN: dict[str, Any] = {
    "cell": "rnn_tanh",
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 50},
    "batch_size": 32,
    "steps": 300,
    "probe_every": 20,
}
LSTM2: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "num_layers": 2,
    "task": {"name": "adding", "seq_len": 12},
    "batch_size": 8,
    "steps": 40,
    "probe_every": 20,
}
POOLED: dict[str, Any] = {  # T = 601 > 500: the display frame pools 2 timesteps a column
    "cell": "rnn_tanh",
    "hidden_size": 4,
    "init": {"scheme": "normal", "gain": 1.5},  # step norms above 1: a bin's own factor counts
    "task": {"name": "adding", "seq_len": 601},
    "batch_size": 2,
    "steps": 2,
    "probe_every": 1,
}
NO_NORMS: dict[str, Any] = {  # L*D*T*n^3 = 200 * 256^3 > 2^31: the frame leaves the norms out
    "cell": "lstm",
    "hidden_size": 128,
    "task": {"name": "adding", "seq_len": 200},
    "batch_size": 2,
    "steps": 1,
    "probe_every": 1,
}

LIVE: dict[str, Any] = {  # trains until stopped, slowly enough (plain SGD, tiny lr) to keep W_hh's spectra
    "cell": "rnn_tanh",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 10},
    "batch_size": 4,
    "optimizer": {"name": "sgd", "lr": 1e-5},
    "steps": 100_000,
    "probe_every": 10,
}

TRACES = """([root, which]) => {
  const node = document.querySelector(`${root} [data-why="${which}"]`);
  const trace = (t) => ({ name: t.name, x: t.x, y: t.y, dash: t.line.dash });
  return node && node.data ? node.data.map(trace) : null;
}"""


def _open(
    page: Page, url: Callable[[str], str], http: httpx.Client, config: dict[str, Any], query: str = ""
) -> str:
    run = http.post("/api/runs", json=config).json()
    assert wait_for_run(http, run["id"])["status"] == "completed"
    page.goto(url(f"/runs/{run['id']}?view=why{query}"))
    page.locator("#view-why").scroll_into_view_if_needed()
    run_id: str = run["id"]
    return run_id


def _shown(page: Page, http: httpx.Client, run_id: str, resolution: str = "full") -> dict[str, Any]:
    """The frame the page shows, as the REST JSON."""
    step = (
        poll(page, "() => window.__gatescopeRun.state.frame && window.__gatescopeRun.state.frame.step + 1")
        - 1
    )
    frame: dict[str, Any] = http.get(
        f"/api/runs/{run_id}/probes/{step}?format=json&resolution={resolution}"
    ).json()
    return frame


def _traces(
    page: Page, which: str, root: str = "#why", until: Callable[[list[Any]], bool] = bool
) -> list[dict[str, Any]]:
    """The Plotly traces of one Why chart (bound, factors, spectra) once it has drawn (and `until`)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        traces = page.evaluate(TRACES, [root, which])
        if traces and until(traces):  # a large whole number comes back as a Python int: floats, all
            return [{**t, "y": [math.nan if v is None else float(v) for v in t["y"]]} for t in traces]
        assert time.monotonic() < deadline, f"the {which} chart under {root} never drew"
        time.sleep(0.05)


def _wait(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """`check()` once it is truthy (polled every 50 ms), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "still waiting"
        time.sleep(0.05)
    return value


def _lowest(http: httpx.Client) -> float:
    """The smallest norm the pages draw: 10^floor (the catalog's), below it a line sits at the floor."""
    return 10.0 ** int(http.get("/api/catalog").json()["display"]["floor"])


def _exact_bound(frame: dict[str, Any], layer: int) -> np.ndarray:
    """||dl_T/dh_T|| * prod_{k=t+1..T} ||J_k|| for t = 0..T, from the frame's own arrays."""
    T = frame["last_step"]
    g = np.array(frame["grad_h_last"][layer], np.float64)
    norms = np.array(frame["jacobian_norm"][layer][0], np.float64)
    return np.array([g[T] * np.prod(norms[t + 1 : T + 1]) for t in range(T + 1)])


def test_the_drawn_bound_is_the_product_of_the_frames_jacobian_norms(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = _open(gs_page, url, http, RNN)
    measured, bound = _traces(gs_page, "bound")
    frame = _shown(gs_page, http, run_id)
    T, lowest = frame["last_step"], _lowest(http)
    exact = _exact_bound(frame, 0)
    assert bound["x"] == list(range(T + 1)) and bound["dash"] == "dash" and bound["name"].startswith("bound")
    drawn = np.array(bound["y"])
    np.testing.assert_allclose(drawn, np.maximum(exact, lowest), rtol=1e-6)
    g = np.array(frame["grad_h_last"][0])
    np.testing.assert_allclose(measured["y"], np.maximum(g[: T + 1], lowest), rtol=1e-6)
    assert np.all(g[: T + 1] <= exact * (1 + 1e-5))  # the top layer: the bound holds
    factors = _traces(gs_page, "factors")
    np.testing.assert_allclose(factors[0]["y"], frame["jacobian_norm"][0][0], rtol=1e-6)

    caption = gs_page.locator("#why [data-why=caption]").inner_text()
    first = " → ".join(_fmt(g[t], 2) for t in (T, T - 1, T - 2, T - 3))
    assert caption.startswith(f"Back from t = {T} the gradient ‖∂ℓ_T/∂h_t‖ of layer 0 falls {first} → …")
    norms = np.array(frame["jacobian_norm"][0][0][1 : T + 1])
    assert (
        f"whose norm is at most {_fmt(norms.max(), 3)} here (median {_fmt(float(np.median(norms)), 3)})"
        in caption
    )
    ratio = g[0] / g[T]
    assert f"After {T} steps, at t = 0, it is {_sci(ratio)} of its size at t = {T}" in caption
    gap = math.log10(exact[0]) - math.log10(g[0])
    assert f"the product of the norms allows {_sci(exact[0] / g[T])}" in caption
    assert f"loose by {round(gap)} orders of magnitude" in caption if gap >= 1 else "tight" in caption

    spectra = http.get(f"/api/runs/{run_id}/spectra").json()
    drawn_spectra = _traces(gs_page, "spectra")
    assert drawn_spectra[0]["name"] == "radius W_hh" and drawn_spectra[0]["x"] == spectra["steps"]
    np.testing.assert_allclose(drawn_spectra[0]["y"], [row[0][0][0] for row in spectra["radius"]], rtol=1e-6)
    np.testing.assert_allclose(
        drawn_spectra[1]["y"], [row[0][0][0][0] for row in spectra["singular"]], rtol=1e-6
    )
    assert len(drawn_spectra) == 1 + len(spectra["singular"][0][0][0][0])  # a vanilla RNN: every sigma_k
    gs_page.wait_for_timeout(300)  # the spectra chart's layout settles
    (REPO_ROOT / "docs" / "screenshots").mkdir(exist_ok=True)
    gs_page.locator("#view-why").screenshot(path=str(REPO_ROOT / "docs" / "screenshots" / "why.png"))


def test_a_lower_layer_is_no_bound_and_an_lstm_shows_its_cell_path(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = _open(gs_page, url, http, LSTM2, "&layer=1")
    _, top = _traces(gs_page, "bound")
    frame = _shown(gs_page, http, run_id)
    np.testing.assert_allclose(top["y"], np.maximum(_exact_bound(frame, 1), _lowest(http)), rtol=1e-6)
    assert top["dash"] == "dash"
    gs_page.locator("#layer").select_option("0")
    lower = _traces(gs_page, "bound", until=lambda t: bool(t[1]["dash"] == "dot"))
    np.testing.assert_allclose(lower[1]["y"], np.maximum(_exact_bound(frame, 0), _lowest(http)), rtol=1e-6)
    assert lower[1]["name"] == "product of layer 0's ‖J_k‖ (no bound below the top layer)"
    caption = gs_page.locator("#why [data-why=caption]").inner_text()
    assert "Layer 0 is not the top layer" in caption and "the product of the norms allows" not in caption
    T = frame["last_step"]
    f_mean = np.array(frame["cell_path_mean"][0][0])
    assert f"the factor is f_t: {_fmt(float(f_mean[1 : T + 1].mean()), 2)} on average" in caption
    factors = {t["name"]: t["y"] for t in _traces(gs_page, "factors")}
    np.testing.assert_allclose(factors["f_t mean"], f_mean, rtol=1e-6)
    np.testing.assert_allclose(factors["f_t max"], frame["cell_path_max"][0][0], rtol=1e-6)
    np.testing.assert_allclose(factors["‖∂(h,c)_t/∂(h,c)_{t−1}‖"], frame["jacobian_norm"][0][0], rtol=1e-6)


def test_a_pooled_frame_bounds_every_step_of_each_bin(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = _open(gs_page, url, http, POOLED)
    measured, bound = _traces(gs_page, "bound")
    full = _shown(gs_page, http, run_id)
    display = _shown(gs_page, http, run_id, "display")
    w, T = display["pool"]["t_width"], full["last_step"]
    assert w == 2 and bound["x"] == list(range(0, T + 1, w))
    exact = _exact_bound(full, 0)
    drawn = np.array(bound["y"])
    for i, t0 in enumerate(bound["x"]):  # every exact bound and measured value of the bin lies below
        assert drawn[i] >= exact[t0 : t0 + w].max() * (1 - 1e-5) or drawn[i] <= _lowest(http), (t0, drawn[i])
        assert drawn[i] >= measured["y"][i] * (1 - 1e-5)
    # and it is the bin rule: each step counted at its column's largest norm
    norms, g = np.array(display["jacobian_norm"][0][0], np.float64), np.array(display["grad_h_last"][0])
    c = T // w
    counts = [w] * c + [T - c * w + 1]
    rule = [
        g[c]
        * np.prod([norms[j] ** counts[j] for j in range(i + 1, c + 1)])
        * max(1, norms[i]) ** ((T - c * w) if i == c else w - 1)
        for i in range(c + 1)
    ]
    np.testing.assert_allclose(drawn, np.maximum(rule, _lowest(http)), rtol=1e-5)
    assert norms.max() > 1  # so a column's own steps after t count too (at most w - 1 of them)
    assert (
        "Pooled for display: each point is the largest of 2 timesteps"
        in gs_page.locator("#why [data-why=caption]").inner_text()
    )


def test_a_frame_without_the_norms_says_why(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run_id = _open(gs_page, url, http, NO_NORMS)
    frame = _shown(gs_page, http, run_id)
    (note,) = [n for n in frame["notes"] if "Jacobian" in n]
    assert frame["jacobian_norm"] is None and note.startswith(
        "The step Jacobian norms are left out of this frame"
    )
    shown = poll(
        gs_page,
        "() => { const t = document.querySelector('#why [data-why=bound]').textContent;"
        " return t.includes('Jacobian') && t; }",
    )
    assert shown == note and gs_page.locator("#why [data-why=caption]").inner_text() == ""
    factors = gs_page.locator("#why [data-why=factors]").inner_text()  # the LSTM's cell path is still there
    assert factors != note


def test_a_rescale_of_w_hh_is_marked_and_shows_in_the_spectra(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    """The bench's weight surgery, seen where it acts: W_hh rescaled to spectral radius 0.5 while
    the run trains (plain SGD at 1e-5: the next probes still read 0.5), marked on the chart."""
    run_id = http.post("/api/runs", json=LIVE).json()["id"]
    try:
        _wait(lambda: http.get(f"/api/runs/{run_id}").json()["step"] >= 30)
        assert (
            http.post(
                f"/api/runs/{run_id}/interventions", json={"rescale": {"layer": 0, "radius": 0.5}}
            ).status_code
            == 202
        )
        (applied,) = _wait(lambda: http.get(f"/api/runs/{run_id}/interventions").json())
        after = applied["step"]
        _wait(lambda: any(s > after for s in http.get(f"/api/runs/{run_id}/spectra").json()["steps"]))
        gs_page.goto(url(f"/runs/{run_id}?view=why"))
        gs_page.locator("#why [data-why=spectra]").scroll_into_view_if_needed()
        radius, *_ = _traces(gs_page, "spectra", until=lambda t: any(x > after for x in t[0]["x"]))
        later = [y for x, y in zip(radius["x"], radius["y"], strict=True) if x > after]
        earlier = [y for x, y in zip(radius["x"], radius["y"], strict=True) if x <= after]
        np.testing.assert_allclose(later[0], 0.5, rtol=1e-3)
        assert all(abs(y - 0.5) > 0.05 for y in earlier)
        marks = gs_page.evaluate(
            "() => document.querySelector('#why [data-why=spectra]').layout.shapes"
            ".filter((s) => s.name === 'intervention').map((s) => s.x0)"
        )
        assert marks == [after + 0.5]
    finally:
        http.post(f"/api/runs/{run_id}/stop")


def test_the_bptt_lesson_shows_the_why_view(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    gs_page.goto(url("/learn#bptt"))
    gs_page.locator("[data-demo=bptt]:not([disabled])").click()
    poll(gs_page, "() => document.querySelector('[data-findings=bptt]')?.textContent", timeout=180)
    caption = gs_page.locator("[data-demo-out=bptt] [data-why=caption]").inner_text()
    run_id = gs_page.locator("[data-demo-out=bptt] .demo-panel").get_attribute("data-run")
    frame = http.get(f"/api/runs/{run_id}/probes/latest?format=json").json()
    T = frame["last_step"]
    g = frame["grad_h_last"][0]
    assert caption.startswith(f"Back from t = {T} the gradient ‖∂ℓ_T/∂h_t‖ of layer 0 ")
    assert " → ".join(_fmt(g[t], 2) for t in (T, T - 1, T - 2, T - 3)) in caption
    gs_page.locator("[data-demo-out=bptt] [data-why=bound]").scroll_into_view_if_needed()
    _, bound = _traces(gs_page, "bound", root="[data-demo-out=bptt]")
    np.testing.assert_allclose(bound["y"], np.maximum(_exact_bound(frame, 0), _lowest(http)), rtol=1e-6)


# -- the page's number formats (static/js/api.js fmt, why.js sci) -----------------------------------


def _fmt(x: float, digits: int) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    text = repr(float(f"{x:.{digits}g}"))
    return text[:-2] if text.endswith(".0") else text


def _sci(x: float) -> str:
    if x == 0:
        return "0"
    if 1e-3 <= x < 1e3:
        return _fmt(x, 2)
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"
