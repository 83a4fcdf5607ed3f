"""The run page's data path and tools in a real browser: the scrubber fetches display frames as
bytes, inspect draws your own input (twice: the second input's gradients replace the first's),
sample a char_lm run, replay a finished run with play, a refused websocket (4404, 4403) stops and
says why, and every page is free of console errors."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, WebSocket, expect

from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, scrub, wait_for_run

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


def inspect(page: Page, text: str) -> None:
    page.fill("#inspect-text", text)
    page.click("#inspect-form button[type=submit]")


def input_row(page: Page, chart: str) -> str:
    """The characters a chart's input row shows (static/js/heatmap.js), in t order."""
    text: str = page.evaluate(
        f"""() => [...document.querySelectorAll('#{chart} .gs-input-text span')]
             .sort((a, b) => a.dataset.t - b.dataset.t).map((s) => s.textContent).join('')"""
    )
    return text


def x_ticks(page: Page, chart: str) -> list[str]:
    return [t.text_content() or "" for t in page.locator(f"#{chart} .xtick text").all()]


def grad_curve(page: Page) -> list[float]:
    """The x values of the inspect gradient chart's first curve, as Plotly holds them."""
    xs: list[float] = page.evaluate(
        "() => Array.from(document.getElementById('chart-inspect-grad').data?.[0]?.x ?? [])"
    )
    return xs


def test_inspect_and_sample_a_char_lm_run(gs_page: Page, url: Callable[[str], str], hello_run: str) -> None:
    page = gs_page
    page.goto(url(f"/runs/{hello_run}"))
    expect(page.locator("#view-sample")).to_be_visible()
    expect(page.locator("#run-desc")).to_contain_text(
        f"· seed 0 · on {socket.gethostname()}"
    )  # where it trained
    expect(page.locator("#inspect-text")).to_have_value("hell")  # the run's probe line, from /task
    inspect(page, "hellohello")
    for chart in ("chart-inspect-hidden", "chart-inspect-gate"):
        page.locator(f"#{chart}").scroll_into_view_if_needed()  # charts draw when on screen
        expect(page.locator(heatmap(chart))).to_have_count(1)
    assert input_row(page, "chart-inspect-hidden") == "hellohello"  # the input under its t
    assert x_ticks(page, "chart-inspect-hidden") == [str(t) for t in range(10)]
    page.fill("#sample-prime", "he")
    page.fill("#sample-length", "12")
    page.fill("#sample-temp", "0.1")
    page.fill("#sample-seed", "1")
    page.click("#sample-form button[type=submit]")
    expect(page.locator("#sample-out")).to_have_text(re.compile(r"^he[helo]{12}$"))
    reveal_all(page)
    screenshot(page, "run-hello", full_page=True)


def test_inspect_twice_draws_the_second_inputs_gradients(
    gs_page: Page, url: Callable[[str], str], hello_run: str
) -> None:
    page = gs_page
    answers: list[Response] = []
    page.on("response", lambda r: answers.append(r) if "/inspect" in r.url else None)
    page.goto(url(f"/runs/{hello_run}"))
    expect(page.locator("#view-sample")).to_be_visible()
    inspect(page, "hel")
    page.locator("#chart-inspect-grad").scroll_into_view_if_needed()
    assert poll(page, "() => document.getElementById('chart-inspect-grad').data?.[0]?.x.length === 3")
    first = grad_curve(page)
    inspect(page, "hellohelloh")
    assert poll(page, "() => document.getElementById('chart-inspect-grad').data?.[0]?.x.length === 11")
    assert grad_curve(page) != first
    assert input_row(page, "chart-inspect-hidden") == "hellohelloh"  # the hidden state follows too
    assert [a.url.endswith("/inspect?resolution=display") for a in answers] == [True, True]
    assert {a.headers["content-type"] for a in answers} == {"application/octet-stream"}


def test_inspect_reports_a_bad_character(gs_page: Page, url: Callable[[str], str], hello_run: str) -> None:
    gs_page.problems.allowed.append("422")  # type: ignore[attr-defined]
    gs_page.goto(url(f"/runs/{hello_run}"))
    expect(gs_page.locator("#view-sample")).to_be_visible()
    inspect(gs_page, "hex")
    expect(gs_page.locator("#inspect-error")).to_contain_text("not in the vocabulary")


def test_the_scrubber_fetches_display_frames_as_bytes(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client, hello_run: str
) -> None:
    page = gs_page
    frames: list[Response] = []
    page.on("response", lambda r: frames.append(r) if "/probes/" in r.url or "/display/" in r.url else None)
    steps = http.get(f"/api/runs/{hello_run}/probes").json()
    page.goto(url(f"/runs/{hello_run}"))
    poll(page, "() => window.__gatescopeRun?.state.frame")
    ids = []
    for i in (3, 7, 0):
        scrub(page, i)
        expect(page.locator("#scrub-label")).to_have_text(str(steps[i]))
        ids.append(page.evaluate("() => window.__gatescopeRun.state.frame.id"))
    assert len(set(ids)) == 3  # every decoded frame its own id
    shown = {f"/probes/{steps[i]}?resolution=display" for i in (3, 7, 0)}
    fetched = {re.sub(r"^.*(/probes/.*)$", r"\1", r.url) for r in frames}
    assert shown <= fetched, fetched  # the shown steps, and (prefetched) their neighbours
    assert all(r.url.endswith("?resolution=display") for r in frames), [r.url for r in frames]
    assert {r.headers["content-type"] for r in frames} == {"application/octet-stream"}
    # going back to a step already seen is served from the page's cache: no new request
    before = len(frames)
    scrub(page, 3)
    expect(page.locator("#scrub-label")).to_have_text(str(steps[3]))
    assert page.evaluate("() => window.__gatescopeRun.state.frame.id") == ids[0]
    assert len([r for r in frames[before:] if r.url.endswith(f"/probes/{steps[3]}?resolution=display")]) == 0


FEED = """async ({ runId, maxRows }) => {
  const { Feed } = await import("/static/js/feed.js");
  const seen = { requests: [], resets: new Set() };
  const feed = new Feed(runId, () => seen.resets.add(feed.gradflow.reset), { maxRows });
  window.__feed = { feed, seen };
}"""


def test_the_feed_appends_gradflow_rows_and_rethins_a_long_history(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    """A Feed asking for at most 20 rows of a run that streams 141 probe frames: rows arrive by
    ?since= appends, and whenever it holds more than 25 the server's evenly thinned history replaces
    them, so it ends with at most 25 rows, the first and the last step among them."""
    page = gs_page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/gradflow" in r.url else None)
    page.problems.allowed.append("favicon.ico")  # type: ignore[attr-defined]  # a JSON page has none
    page.goto(url("/api/health"))  # the server's origin, no page script of its own: only this Feed
    config = {**HELLO, "task": {"name": "adding", "seq_len": 12}, "steps": 1400, "probe_every": 10}
    run_id = http.post("/api/runs", json=config).json()["id"]
    page.evaluate(FEED, {"runId": run_id, "maxRows": 20})
    poll(page, "() => window.__feed.feed.ended", timeout=120)
    wait_for_run(http, run_id)
    steps = http.get(f"/api/runs/{run_id}/probes").json()
    poll(page, f"() => window.__feed.feed.gradflow.steps.at(-1) === {steps[-1]}")
    flow = page.evaluate(
        "() => ({ steps: window.__feed.feed.gradflow.steps, reset: window.__feed.feed.gradflow.reset })"
    )
    assert len(steps) == 141
    assert flow["steps"][0] == 0 and len(flow["steps"]) <= 25
    assert flow["steps"] == sorted(set(flow["steps"]))
    assert any("since=" in r for r in requests)  # appended live
    assert flow["reset"] > 2  # replaced more than once as the history grew
    assert page.evaluate("() => window.__feed.feed.probeSteps.length") == len(steps)


def test_play_replays_a_finished_runs_probes(
    gs_page: Page, url: Callable[[str], str], hello_run: str
) -> None:
    page = gs_page
    page.goto(url(f"/runs/{hello_run}?step=0"))
    expect(page.locator("#scrub-label")).to_have_text("0")
    page.click("#play")
    poll(page, "() => window.__gatescopeRun?.state.frame?.step >= 30")
    page.click("#freeze")
    step = page.evaluate("() => window.__gatescopeRun.state.frame.step")
    page.wait_for_timeout(700)
    assert page.evaluate("() => window.__gatescopeRun.state.frame.step") == step
    poll(page, f"() => location.search.includes('step={step}')")


def sockets(page: Page) -> list[WebSocket]:
    opened: list[WebSocket] = []
    page.on("websocket", lambda ws: opened.append(ws))
    return opened


def test_an_unknown_run_says_so_and_stops(gs_page: Page, url: Callable[[str], str]) -> None:
    gs_page.problems.allowed.append("404")  # type: ignore[attr-defined]
    opened = sockets(gs_page)
    gs_page.goto(url("/runs/doesnotexist"))
    expect(gs_page.locator("#run-error")).to_contain_text("(4404): there is no run with id 'doesnotexist'")
    expect(gs_page.locator("#run-status")).to_have_text("refused")
    gs_page.wait_for_timeout(2500)  # a reconnect would come after 1 s
    assert len(opened) == 1


def test_a_socket_refused_for_its_origin_says_so_and_stops(
    gs_page: Page, foreign_origin: str, hello_run: str
) -> None:
    opened = sockets(gs_page)
    gs_page.goto(f"{foreign_origin}/runs/{hello_run}")
    expect(gs_page.locator("#run-error")).to_contain_text("(4403): origin")
    expect(gs_page.locator("#run-error")).to_contain_text("may not watch runs here")
    expect(gs_page.locator("#run-status")).to_have_text("refused")
    gs_page.wait_for_timeout(2500)
    assert len(opened) == 1


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


# a vanilla RNN whose hidden state overflows float32 at once (W_hh ~ N(0, 100/H), ReLU, T = 100):
# its loss is not finite at step 1, so the run diverges there with no step recorded
DIVERGES: dict[str, Any] = {
    "cell": "rnn_relu",
    "hidden_size": 32,
    "init": {"scheme": "normal", "gain": 10},
    "task": {"name": "adding", "seq_len": 100},
    "batch_size": 8,
    "steps": 50,
}


def chart_note(page: Page, chart: str, start: str) -> str:
    """The sentence an empty chart shows instead of its axes, once it starts with `start`."""
    page.locator(f"#{chart}").scroll_into_view_if_needed()
    note: str = poll(
        page,
        f"""() => {{ const n = document.getElementById('{chart}');
              const note = n.classList.contains('empty') && !n.querySelector('.main-svg')
                && n.querySelector('.chart-note').textContent;
              return note && note.startsWith({start!r}) && note; }}""",
    )
    return note


def test_empty_views_of_a_run_diverged_at_step_1_and_of_a_vanilla_rnn_say_why(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    diverged = http.post("/api/runs", json=DIVERGES).json()["id"]
    run = wait_for_run(http, diverged)
    assert run["status"] == "diverged" and run["error"].endswith("at step 1"), run
    page.goto(url(f"/runs/{diverged}"))
    poll(page, "() => window.__gatescopeRun?.state.frame")
    for chart, what in [
        ("chart-loss", "loss"),
        ("chart-metric", "mse"),
        ("chart-gradnorm", "gradient norm"),
        ("chart-params", "per-parameter gradient norm"),
        ("chart-update", "update ratio"),
    ]:
        note = chart_note(page, chart, "The run diverged")
        assert note == (
            "The run diverged at step 1: its loss or gradient was not finite (NaN or ∞) there, "
            f"so there is no {what} to draw. A smaller learning rate or init gain keeps it finite."
        ), (chart, note)
    for chart in (
        "chart-gradflow",
        "chart-gradlines",
        "chart-connectivity",
    ):  # zeros: not a vanished gradient
        chart_note(page, chart, "No gradient to draw at this step: the probe's loss was not finite")
    chart_note(page, "chart-saturation", "A vanilla RNN has no gates:")
    expect(page.locator(heatmap("chart-hidden"))).to_have_count(1)  # the hidden state it did record

    vanilla = http.post("/api/runs", json={**HELLO, "cell": "rnn_tanh", "steps": 20}).json()["id"]
    assert wait_for_run(http, vanilla)["status"] == "completed"
    page.goto(url(f"/runs/{vanilla}"))
    poll(page, "() => window.__gatescopeRun?.state.frame")
    chart_note(page, "chart-saturation", "A vanilla RNN has no gates:")
    expect(page.locator("#gates")).to_contain_text("This cell has no gates")
    page.locator("#chart-loss").scroll_into_view_if_needed()
    expect(page.locator("#chart-loss .main-svg").first).to_be_visible()  # a run that trained: its curve
    screenshot(page, "run-diverged-empty-views", full_page=True)
