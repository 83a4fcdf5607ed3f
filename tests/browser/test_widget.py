"""The notebook widget's front end in Chromium, with no notebook: a blank page imports
gatescope.bundle.widget_esm() as a blob: module (as anywidget does) and calls its render({model, el})
with a small model that answers get/on/off like anywidget's, fed with a snapshot and "add" messages
in the encoding of the shared contract (uint32 LE json length | json | frame bytes). Every request
is routed and counted: zero. Asserted: the views draw (heatmap cells painted, the loss curve), a
live "add" extends them (the scrubber follows the newest frame), an "add" out of sequence waits for
the next snapshot, the scrubber changes the frame. Screenshot: test-artifacts/widget.png."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
from playwright.sync_api import Page, Route

from gatescope.bundle import widget_css, widget_esm
from tests.browser.conftest import poll, reveal_all, screenshot, wait_for_run

RUN = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 8},
    "batch_size": 4,
    "steps": 60,
    "probe_every": 10,
}
SPLIT = 30  # the snapshot holds the steps up to here; one "add" brings the rest

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

PAINTED = """(name) => {
  const c = document.querySelector(`#out [data-chart="${name}"] canvas.gs-heatmap`);
  if (!c || !c.width) return 0;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
  return n / (c.width * c.height);
}"""
DRAWN = "document.getElementById('out').gatescope"
VIEW = "document.getElementById('out').gatescope.views[0]"


def encode(runs: list[dict[str, Any]], seq: int) -> bytes:
    """The `_snapshot` bytes of the shared contract: frames as [offset, length] after the JSON."""
    blobs: list[bytes] = []
    out = []
    at = 0
    for run in runs:
        frames = {}
        for step, blob in run["frames"].items():
            frames[str(step)] = [at, len(blob)]
            blobs.append(blob)
            at += len(blob)
        out.append({**run, "frames": frames})
    text = json.dumps({"runs": out, "seq": seq}).encode()
    return struct.pack("<I", len(text)) + text + b"".join(blobs)


def split_flow(answer: dict[str, Any], keep: Any) -> dict[str, Any]:
    """The rows of a GET .../gradflow answer whose steps `keep` picks."""
    rows = [i for i, s in enumerate(answer["steps"]) if keep(s)]
    saturation = {
        gate: {side: [v[i] for i in rows] for side, v in sides.items()}
        for gate, sides in answer["saturation"].items()
    }
    return {
        **answer,
        "steps": [answer["steps"][i] for i in rows],
        "z": [answer["z"][i] for i in rows],
        "saturation": saturation,
        "total_rows": len(rows),
    }


def parts(data: dict[str, Any], keep: Any) -> dict[str, Any]:
    """The part of a run's snapshot (the report's JSON) whose steps `keep` picks, frames as bytes."""
    return {
        "metrics": [m for m in data["metrics"] if keep(m["step"])],
        "frames": {int(s): base64.b64decode(b) for s, b in data["frames"].items() if keep(int(s))},
        "gradflow": {k: split_flow(a, keep) for k, a in data["gradflow"].items()},
    }


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def test_widget_draws_a_snapshot_and_live_adds(page: Page, http: httpx.Client) -> None:
    run_id = http.post("/api/runs", json=RUN).json()["id"]
    assert wait_for_run(http, run_id)["status"] == "completed"
    r = http.get(f"/api/runs/{run_id}/report", params={"format": "json"}, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()
    early = {**data, **parts(data, lambda s: s <= SPLIT), "report": None}
    late = parts(data, lambda s: s > SPLIT)
    assert early["frames"] and late["frames"], "the run's probes fall on both sides of SPLIT"

    requests: list[str] = []
    errors: list[str] = []

    def count(route: Route) -> None:
        requests.append(route.request.url)
        route.abort()

    page.route("**/*", count)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>")
    page.evaluate(HARNESS, [widget_esm(), widget_css(), b64(encode([early], 0)), "run"])
    poll(page, f"() => {DRAWN} && {VIEW}.state.frame")
    reveal_all(page)
    assert poll(page, "() => (" + PAINTED + ")('hidden')") == 1
    assert poll(page, "() => (" + PAINTED + ")('gradflow')") > 0.5
    lines = """() => document.querySelectorAll('#out [data-chart="loss"] path.js-line').length"""
    assert poll(page, lines) >= 1
    early_steps = sorted(early["frames"])
    assert page.evaluate(f"() => {VIEW}.source.probeSteps") == early_steps
    assert page.evaluate(f"() => {VIEW}.state.frame.step") == early_steps[-1]
    flow_rows = f"() => {VIEW}.source.gradflow.steps.length"
    assert page.evaluate(flow_rows) == len(early["gradflow"]["last|0"]["steps"])
    height = "() => document.querySelector('#out [data-chart=\"gradflow\"] canvas.gs-heatmap').height"
    assert page.evaluate(height) == len(early["gradflow"]["last|0"]["steps"])

    # an "add" out of sequence (seq 2 after 0) waits; the next one in sequence is applied
    frames = sorted(late["frames"])
    add = {"type": "add", "metrics": late["metrics"], "frames": frames, "gradflow": late["gradflow"]}
    buffers = [b64(late["frames"][s]) for s in frames]
    page.evaluate("([m, b]) => window.__widget.send(m, b)", [{**add, "seq": 2}, buffers])
    assert page.evaluate(f"() => {VIEW}.source.probeSteps") == early_steps
    page.evaluate("([m, b]) => window.__widget.send(m, b)", [{**add, "seq": 1}, buffers])
    all_steps = http.get(f"/api/runs/{run_id}/probes").json()
    assert page.evaluate(f"() => {VIEW}.source.probeSteps") == all_steps
    assert poll(page, f"() => {VIEW}.state.frame.step === {all_steps[-1]}")  # it follows the newest
    assert page.evaluate(flow_rows) == len(data["gradflow"]["last|0"]["steps"])
    reveal_all(page)
    assert poll(page, f"() => ({height})() === {len(data['gradflow']['last|0']['steps'])}")
    assert page.evaluate(f"() => {VIEW}.source.metrics.length") == len(data["metrics"])

    # the scrubber changes the frame drawn
    shown = """() => document.querySelector('#out [data-chart="hidden"] canvas.gs-heatmap').toDataURL()"""
    before = page.evaluate(shown)
    to_first = "(el) => { el.value = 0; el.dispatchEvent(new Event('input')); }"
    page.locator('#out [data-part="scrub"]').evaluate(to_first)
    poll(page, f"() => {VIEW}.state.frame.step === {all_steps[0]}")
    reveal_all(page)
    assert poll(page, f"() => ({shown})() !== {json.dumps(before)}")
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "widget", full_page=True)
    assert requests == []
    assert errors == []
