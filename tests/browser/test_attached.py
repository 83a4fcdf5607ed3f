"""Attached runs in a real browser: a run that a script streams through the ingest API (docs/api.md)
is on the dashboard with its badge, module, shape and script, and its run page draws every view
from frames that have no targets or outputs, shows the frame's source and notes, explains what
needs a built-in task, and Stop asks the script to stop.

The frames are real probe frames of a real 2-layer bidirectional LSTM (app.core.probes on a
char-LM sample, as an attached frame: no targets, no outputs, the header's notes and source),
posted as a script would post them: POST /api/attach, .../steps, .../frames, .../end.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from playwright.sync_api import Page, expect
from torch import Tensor, nn

import gatescope
from app.core.attach import dropout_note, layout_of
from app.core.frames import Frame
from app.core.model import ModelSpec, RecurrentNet, initialize
from app.core.probes import Source, probe
from app.core.tasks import Batch, Task, make_task
from tests.browser.conftest import heatmap, poll, reveal_all, screenshot
from tests.live_server import LiveServer

HIDDEN = 16
DROPOUT_NOTE = (
    "nn.LSTM dropout=0.2 between layers: this frame is computed without dropout, "
    "so layers above the first differ from training."
)
HEATMAPS = [
    "gradflow",
    "hidden",
    "itemized",
    "connectivity",
    "gate-i",
    "gate-f",
    "gate-g",
    "gate-o",
    "gate-c",
]
LINE_CHARTS = ["loss", "gradnorm", "params", "update", "gradlines", "saturation"]


class Script:
    """What gatescope.watch does over HTTP for one watched nn.LSTM, driven step by step."""

    def __init__(
        self, http: httpx.Client, paths: tuple[str, ...] = ("encoder.rnn",), source: Source = "live"
    ) -> None:
        self.http = http
        self.task: Task = make_task("char_lm", corpus="hello")
        torch.manual_seed(0)
        self.net = RecurrentNet(
            ModelSpec("lstm", self.task.input_size, HIDDEN, self.task.output_size, 2, True)
        )
        initialize(self.net, "normal", gain=1.0)
        self.sample: Batch = self.task.sample(1, torch.Generator().manual_seed(1))
        self.step = 0
        self.source = source
        self.tokens: list[str] = []
        body = {
            "name": "my-lstm",
            "script": "train.py",
            "every": 2,
            "probe": source,
            "modules": [
                {
                    "path": path,
                    "cell": "lstm",
                    "input_size": self.task.input_size,
                    "hidden_size": HIDDEN,
                    "num_layers": 2,
                    "bidirectional": True,
                    "batch_first": True,
                    "bias": True,
                    "dropout": 0.2,
                }
                for path in paths
            ],
            "parameters": {name: list(p.shape) for name, p in self.net.named_parameters()},
            "client": {"gatescope": "test", "torch": torch.__version__, "host": "test-host"},
        }
        group = self.ok(http.post("/api/attach", json=body), 201)
        self.run_ids: list[str] = [run["id"] for run in group["runs"]]
        self.run_id = self.run_ids[0]

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def frame(self, run_id: str, step: int) -> bytes:
        built_in = probe(self.net, self.task, self.sample, step=step)
        # as an attached module's frame: no targets, no outputs, a note and its source
        frame = replace(built_in, targets=None, outputs=None, notes=[DROPOUT_NOTE], source=self.source)
        self.tokens = list(frame.tokens or [])
        return Frame.from_probe(run_id, frame).to_bytes()

    def train(self, steps: int, loss: bool = True) -> None:
        """`steps` more steps (with a loss, or as a script that passes none), then a frame of the
        first and of every second one."""
        first = self.step + 1
        self.step += steps
        rows = [
            {
                "step": k,
                "loss": 2.0 * math.exp(-k / 8) + 0.4 if loss else None,
                "grad_norm": 1.5 / math.sqrt(k),
                "grad_norm_clipped": min(1.0, 1.5 / math.sqrt(k)),
                "clipped": 1.5 / math.sqrt(k) > 1.0,
                "param_grad_norms": {"encoder.rnn.weight_hh_l0": 0.3 / k, "head.weight": 0.1},
                "update_ratio": 1e-3 * (1 + 0.1 * k),
                "lr": 1e-3,
                "seconds": 0.05,
            }
            for k in range(first, self.step + 1)
        ]
        headers = {"Content-Type": "application/octet-stream"}
        for run_id in self.run_ids:
            self.ok(self.http.post(f"/api/runs/{run_id}/steps", json={"steps": rows}))
            for k in range(first, self.step + 1):
                if k == 1 or k % 2 == 0:
                    data = self.frame(run_id, k)
                    self.ok(self.http.post(f"/api/runs/{run_id}/frames", content=data, headers=headers))

    def end(self, status: str = "completed", dropped_frames: int = 0) -> None:
        for run_id in self.run_ids:
            body = {"status": status, "dropped_frames": dropped_frames}
            self.ok(self.http.post(f"/api/runs/{run_id}/end", json=body))


@pytest.fixture
def script(http: httpx.Client) -> Script:
    return Script(http)


def wait_until(value: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Call `value` until it returns something truthy (in this process, not the page); that."""
    deadline = time.monotonic() + timeout
    while not (got := value()):
        assert time.monotonic() < deadline, f"still falsy after {timeout} s"
        time.sleep(0.05)
    return got


def showing(page: Page, step: int) -> None:
    """Wait until the run page is set up and shows the frame of `step`."""
    poll(
        page,
        f"() => window.__gatescopeRun?.state.ready && window.__gatescopeRun.state.frame?.step === {step}",
    )


def run_state(page: Page, expression: str) -> Any:
    return page.evaluate(f"() => {{ const r = window.__gatescopeRun; return {expression}; }}")


def test_an_attached_run_on_the_dashboard_and_its_page(
    gs_page: Page, url: Callable[[str], str], script: Script, http: httpx.Client
) -> None:
    script.train(10)
    page = gs_page
    page.goto(url("/"))
    row = page.locator(f'#runs tr[data-run="{script.run_id}"]')
    expect(row).to_have_attribute("data-kind", "attached")
    expect(row.locator(".badge")).to_have_text("attached")
    expect(row.locator("td.run a")).to_have_text("my-lstm")  # the watch's name is the run's
    what = row.locator("td.task")
    expect(what).to_contain_text(f"encoder.rnn · LSTM 2×{HIDDEN} bi")
    expect(what).to_have_attribute(
        "title", f"attached: my-lstm · encoder.rnn · LSTM 2×{HIDDEN} bidirectional · train.py"
    )
    expect(what).to_contain_text("train.py")
    expect(row).to_contain_text("step 10")
    expect(row.get_by_role("button", name=f"stop {script.run_id}")).to_have_attribute(
        "title", "ask the script to stop (watch.should_stop becomes true)"
    )

    page.set_viewport_size({"width": 1280, "height": 2400})
    page.goto(url(f"/runs/{script.run_id}"))
    showing(page, 10)
    expect(page.locator("#run-kind")).to_be_visible()
    expect(page.locator("#run-status")).to_have_text("running")
    desc = page.locator("#run-desc")
    expect(desc).to_contain_text(f"my-lstm · encoder.rnn · LSTM 2×{HIDDEN} bidirectional · train.py")
    expect(desc).to_contain_text("a probe every 2 steps (live batch, sample 0) · step 10")
    # the frame's source and its notes, with the frame on the scrubber
    expect(page.locator("#scrub-label")).to_have_text("10 · live batch, sample 0")
    info = page.locator("#frame-info")
    expect(info).to_be_visible()
    expect(info).to_contain_text("Step 10, live batch, sample 0")
    expect(info.locator(".frame-notes li")).to_have_text(DROPOUT_NOTE)
    # what needs a built-in task: hidden, and said why
    expect(page.locator("#view-metric")).to_be_hidden()
    expect(page.locator("#view-inspect")).to_be_hidden()
    expect(page.locator("#view-sample")).to_be_hidden()
    expect(page.locator("#tools-attached")).to_contain_text("an attached run's weights live in your script")
    expect(page.locator("#loss-caption")).to_contain_text("No baseline line")
    expect(page.locator("#export")).to_have_attribute("href", f"/api/runs/{script.run_id}/export")

    reveal_all(page)
    for name in HEATMAPS:
        expect(page.locator(heatmap(f"chart-{name}"))).to_be_visible()
    for name in LINE_CHARTS:  # drawn once on screen (charts off screen wait until they scroll in)
        page.locator(f"#chart-{name}").scroll_into_view_if_needed()
        expect(page.locator(f"#chart-{name} .main-svg").first).to_be_attached()
    assert run_state(page, "r.state.frame.tokens") == script.tokens  # the labels reach the time axis
    assert run_state(page, "r.feed.probeSteps") == [1, 2, 4, 6, 8, 10]
    assert run_state(
        page, "r.state.frame.arrays.targets === undefined && r.state.frame.arrays.outputs === undefined"
    )
    path = screenshot(page, "attached-run", full_page=False)
    assert path.stat().st_size > 50_000

    # live: new steps and frames arrive as the script sends them
    script.train(4)
    showing(page, 14)
    expect(page.locator("#scrub-label")).to_have_text("14 · live batch, sample 0")
    expect(desc).to_contain_text("step 14")
    assert run_state(page, "r.feed.metrics.step.at(-1)") == 14

    # Stop asks the script: the run keeps running until the script ends it
    stop = page.locator("#stop")
    expect(stop).to_have_text("■ ask script to stop")
    stop.click()
    expect(stop).to_have_text("stop requested")
    expect(stop).to_be_disabled()
    expect(page.locator("#run-status")).to_have_text("running")
    assert script.ok(http.post(f"/api/runs/{script.run_id}/heartbeat"))["stop"] is True
    assert script.ok(http.get(f"/api/runs/{script.run_id}"))["config"]["stop_requested"] is True
    script.end("stopped", dropped_frames=3)
    expect(page.locator("#run-status")).to_have_text("stopped")
    expect(desc).to_contain_text("3 frames dropped (the server was slow or away)")
    expect(stop).to_have_text("■ ask script to stop")
    expect(stop).to_be_disabled()


def test_a_watch_of_two_modules_on_a_fixed_probe_stops_from_the_dashboard_and_compares(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    script = Script(http, paths=("encoder.rnn", "decoder.rnn"), source="fixed")
    script.train(6, loss=False)
    page = gs_page
    page.goto(url("/"))
    rows = [page.locator(f'#runs tr[data-run="{run_id}"]') for run_id in script.run_ids]
    expect(rows[1].locator("td.task")).to_contain_text(f"decoder.rnn · LSTM 2×{HIDDEN} bi")
    rows[0].get_by_role("button", name=f"stop {script.run_ids[0]}").click()
    expect(rows[0].locator(".stop-requested")).to_have_text("stop requested")
    expect(rows[0].locator(".status")).to_have_text("running")  # until the script ends it
    expect(rows[1].get_by_role("button", name=f"stop {script.run_ids[1]}")).to_be_visible()

    # one watch, one group: its runs side by side, as any comparison
    page.goto(url(f"/runs/{script.run_ids[1]}"))
    expect(page.locator("#group")).to_be_visible()
    expect(page.locator("#chart-loss")).to_have_class(re.compile(r"\bempty\b"))  # no loss was sent
    expect(page.locator("#chart-loss")).to_have_attribute(
        "data-empty", re.compile("watch.step\\(loss=loss\\)")
    )
    page.locator("#chart-gradflow").scroll_into_view_if_needed()  # charts draw once on screen
    expect(page.locator(heatmap("chart-gradflow"))).to_be_visible()
    expect(page.locator("#scrub-label")).to_have_text("6 · fixed probe")  # watch(probe=...)
    expect(page.locator("#run-desc")).to_contain_text("a probe every 2 steps (fixed probe)")
    expect(page.locator("#frame-info")).to_contain_text("the same sample at every probe")
    page.locator("#group").click()
    page.wait_for_url("**/compare?runs=*")
    expect(page.locator(".column")).to_have_count(2)
    for run_id, path in zip(script.run_ids, ("encoder.rnn", "decoder.rnn"), strict=True):
        column = page.locator(f'.column[data-run="{run_id}"]')
        expect(column.locator(".badge")).to_have_text("attached")
        expect(column.locator(".desc")).to_contain_text(f"{path} · LSTM 2×{HIDDEN} bidirectional · step 6")
        expect(column.locator(heatmap(f"chart-gradflow-{run_id}"))).to_be_visible()
        expect(column.locator(heatmap(f"chart-hidden-{run_id}"))).to_be_visible()
    script.end()
    expect(page.locator(f'.column[data-run="{script.run_id}"] .status')).to_have_text("completed")


# -- a real training script: gatescope.watch on a model with an nn.LSTM inside -------------------

VOCAB = "abcdefghij"


class Tagger(nn.Module):
    """An embedding, a 2-layer nn.LSTM with dropout between its layers, a linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), 8)
        self.rnn = nn.LSTM(8, HIDDEN, num_layers=2, batch_first=True, dropout=0.2)
        self.readout = nn.Linear(HIDDEN, len(VOCAB))

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(ids))
        logits: Tensor = self.readout(out)
        return logits


class Loop:
    """The user's own loop: predict the previous character (Adam), watch.step() after each update."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = Tagger()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.generator = torch.Generator().manual_seed(0)

    def labels(self, ids: Tensor) -> list[str]:
        return [VOCAB[int(i)] for i in ids]

    def train(self, watch: gatescope.Watch, steps: int) -> None:
        for _ in range(steps):
            ids = torch.randint(0, len(VOCAB), (8, 12), generator=self.generator)
            logits = self.model(ids)[:, 1:]
            loss = nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), ids[:, :-1].reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            watch.step(loss=loss)


def test_a_watched_script_streams_live_and_stops_from_the_page(
    gs_page: Page, server: LiveServer, url: Callable[[str], str], http: httpx.Client
) -> None:
    loop = Loop()
    watching = gatescope.watch(loop.model, server=server.url, every=2, name="tagger", labels=loop.labels)
    with watching as watch:
        loop.train(watch, 4)
        run_id = wait_until(lambda: watch.run_ids and watch.run_ids[0])  # attached in its thread
        page = gs_page
        page.goto(url(f"/runs/{run_id}"))
        showing(page, 4)
        expect(page.locator("#run-desc")).to_contain_text(f"tagger · rnn · LSTM 2×{HIDDEN} · ")
        note = dropout_note(layout_of(loop.model.rnn))
        expect(page.locator("#frame-info .frame-notes li")).to_have_text(note)
        assert run_state(page, "r.state.frame.tokens.every((s) => /^[a-j]$/.test(s))")  # labels=
        loop.train(watch, 4)
        showing(page, 8)
        reveal_all(page)
        itemized = run_state(page, "'itemized' in r.state.frame.arrays")  # itemize="auto" decides
        for name in HEATMAPS if itemized else [n for n in HEATMAPS if n != "itemized"]:
            expect(page.locator(heatmap(f"chart-{name}"))).to_be_visible()
        if not itemized:
            expect(page.locator("#chart-itemized .chart-note")).to_have_text(re.compile("probe budget"))
        page.locator("#stop").click()
        expect(page.locator("#stop")).to_have_text("stop requested")
        deadline = time.monotonic() + 30
        while not watch.should_stop:  # the script hears it in the reply to its next request
            assert time.monotonic() < deadline, "the script never heard Stop"
            loop.train(watch, 1)
            time.sleep(0.1)
    expect(page.locator("#run-status")).to_have_text("stopped")
    assert http.get(f"/api/runs/{run_id}").json()["status"] == "stopped"


def test_a_run_file_imported_from_the_dashboard(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client, tmp_path: Path
) -> None:
    loop = Loop()
    path = tmp_path / "tagger.gsrun"
    with gatescope.watch(
        loop.model, server=None, every=3, name="offline", path=path, labels=loop.labels
    ) as w:
        loop.train(w, 7)
    page = gs_page
    page.goto(url("/"))
    page.locator("#import-file").set_input_files(str(path))
    page.wait_for_url("**/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    showing(page, 6)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-kind")).to_be_visible()
    expect(page.locator("#run-desc")).to_contain_text("offline · rnn · LSTM")
    assert run_state(page, "r.feed.probeSteps") == [1, 3, 6]
    assert run_state(page, "r.feed.metrics.step.length") == 7
    assert http.get(f"/api/runs/{run_id}").json()["kind"] == "attached"

    # a file that is not a run file: nothing imported, and the server's sentence on the dashboard
    bad = tmp_path / "notes.gsrun"
    bad.write_text("not a run file")
    answer = http.post("/api/import", content=bad.read_bytes())
    assert answer.status_code in (400, 413, 422), answer.text
    page.problems.allowed.append("/api/import")  # type: ignore[attr-defined]  # the refused upload
    live = Script(http)  # a live run: the dashboard refreshes its table every 2 s
    page.goto(url("/"))
    page.locator("#import-file").set_input_files(str(bad))
    error = f"notes.gsrun was not imported ({answer.status_code}): {answer.json()['detail']}"
    expect(page.locator("#import-error")).to_have_text(error)
    page.wait_for_timeout(2500)  # a refresh of the table ...
    expect(page.locator("#import-error")).to_have_text(error)  # ... leaves the sentence
    live.end()
