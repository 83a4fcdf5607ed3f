"""The notebook widget's front end in Chromium, with no notebook: a blank page (CSP: blob: modules
only, no eval) imports gatescope.bundle.widget_esm() as a blob: module, as anywidget does, and
calls its render({model, el}) with a small model that answers get/on/off like anywidget's. What it
receives is what gatescope.notebook.RunWidget produced in this process from a real run's data
(the server's GET .../report?format=json): its first `_snapshot`, its "add" messages (recorded as
RunWidget sends them) and its final `_snapshot`. Every request is routed and counted: zero; the
notebook's own global Plotly stays. Asserted: the views draw (heatmap cells painted, the loss
curve), an "add" extends them and the scrubber follows the newest frame unless the user moved
it, an "add" out of sequence waits, a snapshot newer than what is drawn replaces it (compare mode:
one column per run), a snapshot of just what is drawn thins it to the budget without a redraw, a
second widget of the bundle shares its modules. Screenshots: test-artifacts/widget.png,
widget-compare.png, widget-thinned.png; load figures: widget-load.json."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route

from gatescope import notebook
from gatescope.bundle import widget_css, widget_esm
from gatescope.notebook import ADD_SECONDS, RunWidget
from gatescope.report import MB
from tests.browser.conftest import painted, poll, report, reveal_all, screenshot, wait_for_run
from tests.browser.test_report import RUN  # the run the report tests draw

RNN = {**RUN, "cell": "rnn_tanh"}

# a model as anywidget's (get/on/off of traits and "msg:custom"), and the page's hooks to feed it
HARNESS = """async ([esm, css, snapshot, mode]) => {
  const bytes = (b64) => new DataView(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
  const handlers = {};
  const state = { _snapshot: bytes(snapshot), _mode: mode };
  const model = {
    get: (k) => state[k],
    on: (ev, f) => (handlers[ev] ??= []).push(f),
    off: (ev, f) => { handlers[ev] = (handlers[ev] ?? []).filter((g) => g !== f); },
  };
  window.__widget = {
    set: (k, b64) => { state[k] = bytes(b64); (handlers[`change:${k}`] ?? []).forEach((f) => f()); },
    send: (msg, buffers) => (handlers["msg:custom"] ?? []).forEach((f) => f(msg, buffers.map(bytes))),
  };
  window.Plotly = { theNotebooksOwn: true }; // another plotly the notebook loaded: left as it is
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const el = document.createElement("div");
  el.id = "out";
  document.body.append(el);
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  await widget.render({ model, el });
  return true;
}"""

# a second widget of the same bundle (its own model: no hooks), in #out2; the bundles loaded so far
ANOTHER = """async ([esm, snapshot, mode]) => {
  const bytes = Uint8Array.from(atob(snapshot), (c) => c.charCodeAt(0));
  const state = { _snapshot: new DataView(bytes.buffer), _mode: mode };
  const model = { get: (k) => state[k], on: () => {}, off: () => {} };
  const el = Object.assign(document.createElement("div"), { id: "out2" });
  document.body.append(el);
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  await (await import(url)).default.render({ model, el });
  return Object.keys(globalThis.__gatescopeBundles);
}"""

# blob: modules only, never eval (as a notebook's page may have it), and nothing fetched
CSP = "default-src 'none'; script-src blob:; style-src 'unsafe-inline'; img-src data: blob:"
PAGE = f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}"></head><body></body></html>"""

DRAWN = "document.getElementById('out').gatescope"  # what widget.js drew: {seq, sources, views | view}
VIEW = f"{DRAWN}.views[0]"


class Recorded(RunWidget):
    """A RunWidget whose "add" messages are kept here (content, buffers) for the page to receive,
    with the first `_snapshot` it had (the one a front end loaded at once would read)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        super().__init__(*args, **kwargs)
        self.snapshot_sent: bytes = self._snapshot

    def send(self, content: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append((content, list(buffers or [])))


def part(data: dict[str, Any], lo: float, hi: float) -> dict[str, Any]:
    """The metrics rows and frames (bytes) of a run's report JSON with lo < step <= hi."""
    return {
        "metrics": [m for m in data["metrics"] if lo < m["step"] <= hi],
        "frames": {int(s): base64.b64decode(b) for s, b in data["frames"].items() if lo < int(s) <= hi},
    }


def report_json(http: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    """A finished run's snapshot as the server's report embeds it (GET .../report?format=json)."""
    run_id = http.post("/api/runs", json=run).json()["id"]
    assert wait_for_run(http, run_id)["status"] == "completed"
    r = http.get(f"/api/runs/{run_id}/report", params={"format": "json"}, timeout=60)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def start(data: dict[str, Any], upto: float) -> dict[str, Any]:
    """The snapshot a watch would have at step `upto` (its flows made by RunWidget from the frames)."""
    return {"run": data["run"], "task": data["task"], "catalog": data["catalog"], **part(data, -1, upto)}


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


@pytest.fixture(scope="module")
def lstm(http: httpx.Client) -> dict[str, Any]:
    return report_json(http, RUN)


class Harness:
    """The blank page with the widget rendered in #out; every request routed, counted, refused."""

    def __init__(self, page: Page, widget: RunWidget) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.route("**/*", self.refuse)
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.set_content(PAGE)
        args = [widget_esm(), widget_css(), b64(widget.snapshot_sent), widget._mode]
        start = time.perf_counter()
        page.evaluate(HARNESS, args)  # the bundle imported (plotly's 4.8 MB parsed) and rendered
        self.load_s = time.perf_counter() - start

    def another(self, widget: RunWidget) -> list[str]:
        """Render a second widget in #out2 from a second import of the same bundle."""
        args = [widget_esm(), b64(widget._snapshot), widget._mode]
        keys: list[str] = self.page.evaluate(ANOTHER, args)
        return keys

    def refuse(self, route: Route) -> None:
        self.requests.append(route.request.url)
        route.abort()

    def send(self, message: tuple[dict[str, Any], list[bytes]]) -> None:
        content, buffers = message
        self.page.evaluate("([m, b]) => window.__widget.send(m, b)", [content, [b64(b) for b in buffers]])

    def snapshot(self, blob: bytes) -> None:
        self.page.evaluate("([b]) => window.__widget.set('_snapshot', b)", [b64(blob)])

    def painted(self, selector: str) -> float:
        reveal_all(self.page)
        return painted(self.page, selector)

    def value(self, expression: str) -> Any:
        return self.page.evaluate(f"() => {expression}")

    def done(self, name: str) -> None:
        reveal_all(self.page)  # charts off screen draw their last input once seen
        screenshot(self.page, name, full_page=True)
        assert self.value("window.Plotly.theNotebooksOwn") is True  # the notebook's plotly is left alone
        assert self.requests == []
        assert self.errors == []


def test_widget_draws_a_snapshot_and_live_adds(page: Page, lstm: dict[str, Any]) -> None:
    widget = Recorded("run", [start(lstm, 30)])
    for lo, hi in [(30, 45), (45, 60)]:
        time.sleep(ADD_SECONDS)  # each add its own message
        widget.add(0, **part(lstm, lo, hi))
    widget.add(0, run={**lstm["run"], "name": "renamed"})
    widget.finish()
    assert [(m["seq"], m["frames"]) for m, _ in widget.sent] == [(1, [40]), (2, [50, 60]), (3, [])]
    all_steps = sorted(int(s) for s in lstm["frames"])
    flow = lstm["gradflow"]["last|0"]["steps"]
    assert flow == all_steps  # the server's flow has a row per frame, as RunWidget's

    w = Harness(page, widget)
    poll(page, f"() => {DRAWN} && {VIEW}.state.frame")
    figures = {"esm_bytes": len(widget_esm().encode()), "import_and_render_s": round(w.load_s, 3)}
    report("widget-load", figures)
    assert w.painted('#out [data-chart="hidden"]') == 1
    assert w.painted('#out [data-chart="gradflow"]') > 0.5
    assert poll(page, """() => document.querySelectorAll('#out [data-chart="loss"] path.js-line').length""")
    assert w.value(f"{VIEW}.source.probeSteps") == [0, 10, 20, 30]
    assert w.value(f"{VIEW}.state.frame.step") == 30
    rows = f"{VIEW}.source.gradflow.steps"
    height = """document.querySelector('#out [data-chart="gradflow"]').__chart.layer.drawn"""  # rows painted
    assert w.value(rows) == [0, 10, 20, 30] and w.value(height) == 4

    w.send(widget.sent[1])  # seq 2 after 0: out of sequence, waits
    assert w.value(f"{VIEW}.source.probeSteps") == [0, 10, 20, 30]
    w.send(widget.sent[0])
    assert w.value(f"{VIEW}.source.probeSteps") == [0, 10, 20, 30, 40]
    assert poll(page, f"() => {VIEW}.state.frame.step === 40")  # the scrubber follows the newest
    assert w.value(rows) == [0, 10, 20, 30, 40] and w.value(f"{VIEW}.source.metrics.length") == 45
    reveal_all(page)
    assert poll(page, f"() => {height} === 5")  # the new flow row drawn

    # the scrubber changes the frame drawn, and a user's step stays while more comes
    shown = """document.querySelector('#out [data-chart="hidden"] canvas.gs-heatmap').toDataURL()"""
    before = w.value(shown)
    page.locator('#out [data-part="scrub"]').evaluate(
        "(el) => { el.value = 0; el.dispatchEvent(new Event('input')); }"
    )
    poll(page, f"() => {VIEW}.state.frame.step === 0")
    reveal_all(page)
    assert poll(page, f"() => {shown} !== {json.dumps(before)}")
    w.send(widget.sent[1])
    assert w.value(f"{VIEW}.source.probeSteps") == all_steps
    assert w.value(rows) == all_steps and w.value(f"{VIEW}.source.metrics.length") == len(lstm["metrics"])
    assert w.value(f"{VIEW}.state.frame.step") == 0
    assert w.value("document.querySelector('#out [data-part=\"scrub\"]').max") == str(len(all_steps) - 1)

    # the run as it is now comes with an add; a snapshot of no more than is drawn changes nothing
    w.send(widget.sent[2])
    assert "renamed" in w.value("document.querySelector('#out [data-part=\"run-id\"]').textContent")
    w.value(f"({VIEW}.seen = true)")
    w.snapshot(widget._snapshot)
    assert w.value(f"{VIEW}.seen") is True and w.value(f"{VIEW}.state.frame.step") == 0
    note = w.value("document.querySelector('#out [data-part=\"note\"]').textContent")
    assert f"all {len(all_steps)} stored probe frames are in it" in note

    # a second widget of the same bundle on the page: its modules (and plotly) load once
    assert len(w.another(widget)) == 1
    poll(page, "() => document.getElementById('out2').gatescope.views[0].state.frame")
    assert w.painted('#out2 [data-chart="hidden"]') == 1
    assert w.value("document.getElementById('out2').gatescope.views[0].source.probeSteps") == all_steps
    w.done("widget")


def test_compare_widget_catches_up_from_a_snapshot(
    page: Page, http: httpx.Client, lstm: dict[str, Any]
) -> None:
    rnn = report_json(http, RNN)
    widget = Recorded("compare", [start(lstm, 30), start(rnn, 30)])
    widget.add(1, **part(rnn, 30, 60))
    time.sleep(ADD_SECONDS)
    widget.add(0, **part(lstm, 30, 60))
    widget.finish()
    assert [(m["seq"], m["index"]) for m, _ in widget.sent] == [(1, 1), (2, 0)]

    w = Harness(page, widget)
    columns = f"{DRAWN}.view.columns"
    poll(page, f"() => {DRAWN} && {columns}.length === 2")
    ids = [lstm["run"]["id"], rnn["run"]["id"]]
    for run_id in ids:
        assert w.painted(f'#out [data-run="{run_id}"] [data-chart="gradflow"]') > 0.5
        assert w.painted(f'#out [data-run="{run_id}"] [data-chart="hidden"]') == 1
    steps = f"{columns}.map((c) => c.feed.probeSteps)"
    assert w.value(steps) == [[0, 10, 20, 30]] * 2
    w.send(widget.sent[0])  # the rnn's frames; the lstm's (seq 2) is lost
    assert w.value(steps) == [[0, 10, 20, 30], [0, 10, 20, 30, 40, 50, 60]]
    w.snapshot(widget._snapshot)  # seq 2: newer than what is drawn, it replaces all
    assert poll(page, f"() => {columns}[0].feed.probeSteps.length === 7")
    assert w.value(steps) == [[0, 10, 20, 30, 40, 50, 60]] * 2
    for run_id in ids:
        assert w.painted(f'#out [data-run="{run_id}"] [data-chart="gradflow"]') > 0.5
    w.done("widget-compare")


def test_a_snapshot_of_what_is_drawn_thins_it_to_the_budget(page: Page, lstm: dict[str, Any]) -> None:
    frame = max(len(base64.b64decode(b)) for b in lstm["frames"].values())
    roomy = Recorded("run", [start(lstm, 60)])
    head = len(roomy._snapshot) - sum(len(base64.b64decode(b)) for b in lstm["frames"].values())
    budget_mb = (head + 3.5 * frame) / MB  # the page and about three frames
    widget = Recorded("run", [start(lstm, 30)], budget_mb=budget_mb)
    widget.add(0, **part(lstm, 30, 60))
    widget.finish()
    snapshots = (widget.snapshot_sent, widget._snapshot)
    first, last = (notebook.decode(b)[0]["runs"][0]["report"] for b in snapshots)
    assert last["left_out"] >= 3  # the budget thinned the last (the first may fit: less JSON)

    w = Harness(page, widget)
    poll(page, f"() => {DRAWN} && {VIEW}.state.frame")
    assert w.value(f"{VIEW}.source.probeSteps") == first["kept_steps"]
    w.send(widget.sent[0])  # every new frame comes live
    assert w.value(f"{VIEW}.source.probeSteps") == sorted({*first["kept_steps"], 40, 50, 60})
    w.value(f"({VIEW}.seen = true)")
    w.snapshot(widget._snapshot)  # the same seq: not redrawn, but thinned as the kernel thinned it
    assert w.value(f"{VIEW}.seen") is True
    assert w.value(f"{VIEW}.source.probeSteps") == last["kept_steps"]
    assert w.value(f"{VIEW}.state.frame.step") == 60
    note = w.value("""document.querySelector('#out [data-part="note"]').textContent""")
    assert f"{last['left_out']} of the 7 stored probe frames were left out" in note
    assert w.painted('#out [data-chart="hidden"]') == 1
    w.done("widget-thinned")
