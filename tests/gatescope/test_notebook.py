"""The notebook widget's kernel side (gatescope/notebook.py) and gatescope.show / compare.

What the widget sends is observed on its comm (comm.create_comm replaced by one that records
every message ipywidgets publishes: the opening state, "update" messages of _snapshot with its
bytes as a buffer, and the custom "add" messages with their buffers), never from the widget's own
account. Time is a fake monotonic clock, so batching is tested exactly.
"""

from __future__ import annotations

import base64
import importlib
from pathlib import Path
from typing import Any

import comm
import httpx
import numpy as np
import orjson
import pytest
import torch
from comm.base_comm import BaseComm
from torch import nn

import gatescope
from app.core.attach import Layout, layout_of
from app.core.flow import FlowRows, flow_view
from app.core.frames import Frame
from app.services.schemas import AttachedConfig, RunPublic
from gatescope import notebook
from gatescope.notebook import NotebookSink, RunWidget, TeeSink, attached_run, decode, encode
from gatescope.runfile import read_runfile
from gatescope.sink import MemorySink
from gatescope.watch import _attach
from tests.core.test_frames import probe_frame
from tests.live_server import REPO_ROOT, serve


class Recorder(BaseComm):
    """A comm that keeps what it would publish: (msg_type, data, buffers as bytes)."""

    log: list[tuple[str, dict[str, Any], list[bytes]]]

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        self.log.append((msg_type, data or {}, [bytes(b) for b in buffers or []]))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], list[bytes]]]:
    log: list[tuple[str, dict[str, Any], list[bytes]]] = []

    class Bound(Recorder):
        pass

    Bound.log = log  # before BaseComm.__init__ publishes the comm_open

    def create(*args: Any, **kwargs: Any) -> BaseComm:
        return Bound(*args, **kwargs)

    monkeypatch.setattr(comm, "create_comm", create)
    return log


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("gatescope.notebook.time.monotonic", fake)
    return fake


def adds(log: list[tuple[str, dict[str, Any], list[bytes]]]) -> list[tuple[dict[str, Any], list[bytes]]]:
    return [(d["content"], b) for t, d, b in log if t == "comm_msg" and d.get("method") == "custom"]


def snapshots(log: list[tuple[str, dict[str, Any], list[bytes]]]) -> list[bytes]:
    """Every _snapshot the wire carried (opening state, then updates), as bytes."""
    out = []
    for _, data, buffers in log:
        state = data.get("state", {})
        paths = data.get("buffer_paths", [])
        if "_snapshot" in state or ["_snapshot"] in paths:
            out.append(buffers[paths.index(["_snapshot"])] if ["_snapshot"] in paths else state["_snapshot"])
    return out


class Net(nn.Module):
    def __init__(self, cell: type[nn.Module] = nn.LSTM, hidden: int = 6) -> None:
        super().__init__()
        self.rnn = cell(3, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.rnn(x)[0])
        return out


def train(model: nn.Module, watch: gatescope.Watch, steps: int = 21) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        x = torch.randn(4, 7, 3)
        loss = (model(x) - x[..., :1].cumsum(1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        watch.step(loss=loss)


def layout() -> Layout:
    return layout_of(nn.LSTM(3, 6))


# -- the snapshot --------------------------------------------------------------------------------


def test_a_watch_into_the_widget_makes_the_snapshot_of_its_run(wire: list[Any]) -> None:
    memory, sink = MemorySink(), NotebookSink()
    model = Net()
    with gatescope.watch(model, every=10, sink=TeeSink(memory, sink)) as watch:
        train(model, watch)
    assert watch.widget is sink.widget is not None
    sent = snapshots(wire)
    assert sent[-1] == sink.widget._snapshot  # the last snapshot on the wire is the final state
    head, frames = decode(sent[-1])
    assert head["seq"] == sink.widget.seq == adds(wire)[-1][0]["seq"]
    (run,) = head["runs"]
    public = RunPublic.model_validate(run["run"])  # the server's own run record shape
    assert public.kind == "attached" and public.status == "completed" and public.step == 21
    assert run["metrics"] == orjson.loads(orjson.dumps(memory.steps))  # every row, as sent
    assert sorted(frames[0]) == [1, 10, 20] == [pf.step for _, pf in memory.frames]
    for _, pf in memory.frames:
        assert frames[0][pf.step] == Frame.from_probe(public.id, pf).pooled().to_bytes()
    rows = [(s, FlowRows.of(Frame.from_bytes(b))) for s, b in sorted(frames[0].items())]
    for kind in ("last", "total"):
        expected = orjson.loads(flow_view(rows, kind, 0, 3).to_json())
        assert run["gradflow"][f"{kind}|0"] == expected
    assert run["catalog"]["cells"][2]["views"]["f"]["kind"] == "sigmoid"  # lstm
    assert run["report"] == {
        "budget_mb": 15.0,
        "stored_steps": [1, 10, 20],
        "kept_steps": [1, 10, 20],
        "left_out": 0,
    }


def test_frames_are_thinned_evenly_to_the_budget_keeping_the_first_and_the_latest() -> None:
    data = Frame.from_probe("r", probe_frame("lstm", layers=2, seq_len=40, hidden=16)).pooled().to_bytes()
    state = notebook.RunState({"run": {"id": "r"}, "frames": {10 * k: data for k in range(21)}})
    bare = len(encode([state], 0, 15))  # all fit
    assert len(decode(encode([state], 0, 15))[1][0]) == 21
    budget_mb = (bare - 15 * len(data)) / 2**20  # room for about 6 of the 21
    encoded = encode([state], 0, budget_mb)
    head, frames = decode(encoded)
    kept = sorted(frames[0])
    assert len(encoded) <= budget_mb * 2**20 and 2 < len(kept) < 21
    assert kept[0] == 0 and kept[-1] == 200 and len(set(np.diff(kept))) <= 2  # an even stride
    report = head["runs"][0]["report"]
    assert report["kept_steps"] == kept and report["left_out"] == 21 - len(kept)
    assert all(frames[0][s] == data for s in kept)
    tiny = decode(encode([state], 0, 0.001))[1][0]
    assert sorted(tiny) == [0, 200]  # even over budget, the first and the latest stay


# -- live: "add" messages ------------------------------------------------------------------------


def test_adds_are_batched_in_sequence_with_their_frames_and_the_new_flow_rows(
    wire: list[Any], clock: Clock
) -> None:
    frame_bytes = {
        s: Frame.from_probe("r", probe_frame("gru", seq_len=6)).pooled().to_bytes() for s in (1, 2)
    }
    widget = RunWidget("run", [{"run": {"id": "r", "step": 0}}])
    row = {"step": 1, "loss": 1.0}
    widget.add(
        0, run={"id": "r", "step": 1}, metrics=[row], frames={1: frame_bytes[1]}
    )  # the first goes at once
    clock.now += 0.05
    widget.add(0, metrics=[{"step": 2, "loss": 0.9}])
    clock.now += 0.05
    widget.add(0, metrics=[{"step": 3, "loss": 0.8}], frames={2: frame_bytes[2]})
    assert len(adds(wire)) == 1  # within 0.2 s: batched
    clock.now += 0.2
    widget.add(0, metrics=[{"step": 4, "loss": 0.7}])
    sent = adds(wire)
    assert [m["seq"] for m, _ in sent] == [1, 2] and all(
        m["type"] == "add" and m["index"] == 0 for m, _ in sent
    )
    first, second = sent[0][0], sent[1][0]
    assert first["run"] == {"id": "r", "step": 1} and first["metrics"] == [row] and first["frames"] == [1]
    assert sent[0][1] == [frame_bytes[1]] and sent[1][1] == [frame_bytes[2]]
    assert [m["step"] for m in second["metrics"]] == [2, 3, 4] and second["frames"] == [2]
    assert "run" not in second  # unchanged since the last add
    assert second["gradflow"]["last|0"]["steps"] == [2]  # only the rows since the last add
    assert second["gradflow"]["last|0"]["total_rows"] == 2
    assert len(snapshots(wire)) == 1  # the opening state only: a small one waits 0.5 s
    clock.now += 5
    widget.add(0, metrics=[{"step": 5, "loss": 0.6}])
    head, frames = decode(snapshots(wire)[-1])
    assert head["seq"] == 3 == adds(wire)[-1][0]["seq"]  # the snapshot holds every add up to its seq
    assert [m["step"] for m in head["runs"][0]["metrics"]] == [1, 2, 3, 4, 5] and sorted(frames[0]) == [1, 2]
    assert head["runs"][0]["gradflow"]["last|0"]["steps"] == [1, 2]
    clock.now += 0.01
    widget.add(0, metrics=[{"step": 6, "loss": 0.5}])
    widget.finish()  # the rest, then the final snapshot
    assert adds(wire)[-1][0]["seq"] == 4 and [m["step"] for m in adds(wire)[-1][0]["metrics"]] == [6]
    assert decode(snapshots(wire)[-1])[0]["seq"] == 4


def test_a_watch_of_two_modules_is_a_compare_widget_whose_adds_name_their_run(wire: list[Any]) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.GRU(3, 4, batch_first=True), nn.RNN(4, 5, batch_first=True)
            self.head = nn.Linear(5, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.b(self.a(x)[0])[0])
            return out

    sink = NotebookSink()
    model = Two()
    with gatescope.watch(model, every=5, sink=sink) as watch:
        train(model, watch, steps=6)
    assert sink.widget is not None and sink.widget._mode == "compare"
    head, frames = decode(sink.widget._snapshot)
    assert [r["run"]["config"]["module"] for r in head["runs"]] == ["a", "b"]
    assert [r["run"]["config"]["cell"] for r in head["runs"]] == ["gru", "rnn_tanh"]
    assert sorted(frames[0]) == sorted(frames[1]) == [1, 5]
    framed = [m for m, _ in adds(wire) if m["frames"]]
    assert {m["index"] for m in framed} == {0, 1}


def test_refusals_are_sentences() -> None:
    run = {"run": {"id": "r"}}
    with pytest.raises(ValueError, match="mode is 'run' or 'compare'"):
        RunWidget("grid", [run])
    with pytest.raises(ValueError, match="compare shows 2 to 8 runs"):
        RunWidget("compare", [run])
    with pytest.raises(ValueError, match="at least one run"):
        RunWidget("run", [])
    with pytest.raises(ValueError, match="budget_mb must be a positive"):
        RunWidget("run", [run], budget_mb=0)
    widget = RunWidget("run", [run])
    with pytest.raises(ValueError, match="run 1 is not one of the widget's 1 runs"):
        widget.add(1, metrics=[])
    data = Frame.from_probe("r", probe_frame("gru")).pooled().to_bytes()
    widget.add(0, frames={3: data})
    with pytest.raises(ValueError, match="already has a frame at step 3"):
        widget.add(0, frames={3: data})
    with pytest.raises(ValueError, match="frame"):
        widget.add(0, metrics=[{"step": 4}], frames={4: data, 5: b"not a frame"})
    assert sorted(widget.states[0].frames) == [3] and widget.states[0].metrics == []  # nothing half-kept
    with pytest.raises(ValueError, match="this is not running in a Jupyter kernel"):
        gatescope.watch(Net(), notebook=True)
    with pytest.raises(ValueError, match="with sink= the sink decides"):
        gatescope.watch(Net(), notebook=True, sink=MemorySink())
    attach = _attach(Net(), [("rnn", nn.LSTM(3, 6))], [layout()], None, 1, False, None)
    with pytest.raises(ValueError, match="at most 8 watched modules side by side, not 9"):
        NotebookSink().open({**attach, "modules": attach["modules"] * 9})


# -- gatescope.show / compare ----------------------------------------------------------------------


def record(path: Path, model: nn.Module, steps: int = 21) -> Path:
    with gatescope.watch(model, server=None, path=path, every=10) as watch:
        train(model, watch, steps)
    return path


def test_show_a_run_file(tmp_path: Path) -> None:
    path = record(tmp_path / "lstm.gsrun", Net())
    widget = gatescope.show(path)
    head, frames = decode(widget._snapshot)
    (run,) = head["runs"]
    public = RunPublic.model_validate(run["run"])
    assert public.status == "completed" and public.step == 21 and public.config.cell == "lstm"
    runfile = read_runfile(path)
    assert run["metrics"] == runfile.steps and sorted(frames[0]) == [1, 10, 20]
    for _, data in runfile.frames:
        full = Frame.from_bytes(data)
        assert Frame.from_bytes(frames[0][full.step]).arrays["h"].shape == full.pooled().arrays["h"].shape
    assert run["gradflow"]["total|0"]["steps"] == [1, 10, 20]
    assert gatescope.show(str(path))._mode == "run"  # a path as text too
    both = gatescope.compare([path, record(tmp_path / "rnn.gsrun", Net(nn.RNN))])
    head, frames = decode(both._snapshot)
    assert both._mode == "compare" and [r["run"]["config"]["cell"] for r in head["runs"]] == [
        "lstm",
        "rnn_tanh",
    ]


def test_show_refuses_with_sentences(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="there is no run file at"):
        gatescope.show(tmp_path / "missing.gsrun")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a Gatescope run file"):
        gatescope.show(tmp_path / "notes.txt")
    path = record(tmp_path / "one.gsrun", Net(), steps=2)
    with pytest.raises(ValueError, match=r"watched 1 module\(s\): module= is 0..0"):
        gatescope.show(path, module=1)
    with pytest.raises(ValueError, match="compare takes a list of 2 to 8 runs, not one"):
        gatescope.compare(path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not 1"):
        gatescope.compare([path])
    with pytest.raises(
        ConnectionError, match=r"could not reach the Gatescope server at http://127\.0\.0\.1:9"
    ):
        gatescope.show("abc123", server="http://127.0.0.1:9")


def test_show_a_file_of_several_modules_says_how_to_pick(tmp_path: Path) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = nn.LSTM(3, 4, batch_first=True), nn.GRU(4, 6, batch_first=True)
            self.head = nn.Linear(6, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.dec(self.enc(x)[0])[0])
            return out

    path = record(tmp_path / "two.gsrun", Two(), steps=2)
    with pytest.warns(UserWarning, match=r"watched 2 modules \(enc, dec\): this shows module 0 \(enc\)"):
        first = gatescope.show(path)
    assert decode(first._snapshot)[0]["runs"][0]["run"]["config"]["cell"] == "lstm"
    second = decode(gatescope.show(path, module=1)._snapshot)[0]["runs"][0]
    assert second["run"]["config"]["module"] == "dec" and second["run"]["config"]["hidden_size"] == 6


def test_show_a_run_on_a_live_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = record(tmp_path / "lstm.gsrun", Net())
    monkeypatch.setattr(importlib.import_module("gatescope.watch"), "_in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda widget: None)
    with serve(tmp_path / "server") as server, httpx.Client(base_url=server.url, timeout=30) as http:
        model = Net()  # notebook=True with a server's URL: to the server and to the widget
        with gatescope.watch(model, server=server.url, notebook=True, every=10) as watch:
            train(model, watch)
        (teed,) = watch.run_ids
        assert watch.path is None and len(decode(watch.widget._snapshot)[1][0]) == 3
        assert http.get(f"/api/runs/{teed}/probes").json() == [1, 10, 20]
        assert len(http.get(f"/api/runs/{teed}/metrics").json()) == 21
        imported = http.post("/api/import", content=path.read_bytes())
        assert imported.status_code == 201, imported.text
        run_id = imported.json()["runs"][0]["id"]
        widget = gatescope.show(run_id, server=server.url)
        report = http.get(f"/api/runs/{run_id}/report", params={"format": "json"}).json()
        with pytest.raises(ValueError, match="answered 404 for run 'nope': there is no run with id 'nope'"):
            gatescope.show("nope", server=server.url)
    head, frames = decode(widget._snapshot)
    (run,) = head["runs"]
    assert run["run"] == report["run"] and run["metrics"] == report["metrics"]
    assert run["gradflow"] == report["gradflow"]  # the server's answers, as it gave them
    assert {int(s): base64.b64decode(t) for s, t in report["frames"].items()} == frames[0]
    assert sorted(frames[0]) == [1, 10, 20]


def test_the_run_record_is_the_servers_shape() -> None:
    attach = _attach(Net(), [("rnn", nn.LSTM(3, 6))], [layout()], "n", 10, False, None)
    run = attached_run(attach, 0, "abc", "g")
    assert RunPublic.model_validate(run).model_dump(mode="json")["config"]["module"] == "rnn"
    ended = attached_run(attach, 0, "abc", None, {"status": "failed", "error": "E: x", "dropped_frames": 2})
    public = RunPublic.model_validate(ended)
    assert public.status == "failed" and public.error == "E: x"
    assert isinstance(public.config, AttachedConfig) and public.config.dropped_frames == 2


# -- the example notebook, executed in a real kernel --------------------------------------------


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    """The saved widget state (nbclient store_widget_state) by model id, buffers decoded into it."""
    saved = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    out = {}
    for model_id, model in saved.items():
        state = dict(model["state"])
        for buffer in model.get("buffers", []):
            assert buffer["encoding"] == "base64"
            state[buffer["path"][0]] = base64.b64decode(buffer["data"])
        out[model_id] = state
    return out


def shown(cell: Any) -> list[str]:
    """The model ids of the widgets a cell's outputs show."""
    views = [o.get("data", {}).get("application/vnd.jupyter.widget-view+json") for o in cell.outputs]
    return [v["model_id"] for v in views if v]


def test_the_example_notebook_trains_live_into_its_widgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the kernel imports this work tree's gatescope
    nb = nbformat.read(REPO_ROOT / "examples" / "notebook.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.store_widget_state = True
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    states = widget_states(nb)
    watched, again, both = (shown(c) for c in code[1:])
    (live,) = watched
    head, frames = decode(states[live]["_snapshot"])
    (run,) = head["runs"]
    assert states[live]["_mode"] == "run" and run["run"]["status"] == "completed"
    assert len(run["metrics"]) == 100 and sorted(frames[0]) == [1, *range(10, 101, 10)]
    assert run["gradflow"]["last|0"]["steps"] == sorted(frames[0])
    printed = "".join(o.get("text", "") for o in code[1].outputs if o.output_type == "stream")
    assert f"{head['seq']} live updates sent to the widget" in printed and head["seq"] >= 1
    (path,) = tmp_path.glob("gatescope-hello-lstm-*.gsrun")
    (stored,) = again
    again_frames = decode(states[stored]["_snapshot"])[1][0]  # show(path): the same frames
    assert sorted(again_frames) == sorted(frames[0])
    for step, data in frames[0].items():
        kept, live_frame = Frame.from_bytes(again_frames[step]), Frame.from_bytes(data)
        assert (
            kept.header["tokens"] == live_frame.header["tokens"]
            and kept.arrays.keys() == live_frame.arrays.keys()
        )
        assert all(np.array_equal(kept.arrays[k], live_frame.arrays[k]) for k in kept.arrays)
    assert read_runfile(path).end == {"status": "completed", "error": None, "dropped_frames": 0}
    (side,) = both
    head, frames = decode(states[side]["_snapshot"])
    assert states[side]["_mode"] == "compare" and len(frames) == 2
    assert [r["run"]["config"]["cell"] for r in head["runs"]] == ["lstm", "rnn_tanh"]


def test_in_a_kernel_which_sinks_a_watch_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """server=None in a kernel: the widget (shown) and the run file; notebook=True with the default
    server: the same, no server; notebook=False: the run file alone."""
    from gatescope.runfile import FileSink

    module = importlib.import_module("gatescope.watch")
    monkeypatch.setattr(module, "_in_notebook", lambda: True)
    monkeypatch.delenv("GATESCOPE_SERVER", raising=False)
    displayed: list[Any] = []
    monkeypatch.setattr("IPython.display.display", displayed.append)
    choices: list[dict[str, Any]] = [{"server": None}, {"notebook": True}]
    for i, kwargs in enumerate(choices):
        model = Net()
        with gatescope.watch(model, every=10, path=tmp_path / f"{i}.gsrun", **kwargs) as watch:
            train(model, watch, steps=2)
        assert isinstance(watch.sink, TeeSink)
        assert [type(s) for s in watch.sink.sinks] == [FileSink, NotebookSink]
        assert displayed[-1] is watch.widget and len(displayed) == i + 1
        assert watch.path == tmp_path / f"{i}.gsrun" and len(read_runfile(watch.path).steps) == 2
        assert len(decode(watch.widget._snapshot)[0]["runs"][0]["metrics"]) == 2
    plain = gatescope.watch(Net(), server=None, notebook=False, path=tmp_path / "plain.gsrun")
    plain.close()
    assert isinstance(plain.sink, FileSink) and plain.widget is None and len(displayed) == 2


def test_the_kernel_holds_no_more_frames_than_the_budget(wire: list[Any], clock: Clock) -> None:
    """A long live watch: the kernel keeps the frames a snapshot could show (kept_steps' rule, the
    first and the latest always), not every frame; every add still sends its new frame."""
    data = Frame.from_probe("r", probe_frame("gru", seq_len=12, hidden=8)).pooled().to_bytes()
    budget_mb = 8 * len(data) / 2**20  # room for 8 frames
    widget = RunWidget("run", [{"run": {"id": "r", "step": 0}}], budget_mb=budget_mb)
    for step in range(0, 400, 10):
        clock.now += 1  # each add goes at once
        widget.add(0, metrics=[{"step": step, "loss": 1.0}], frames={step: data})
    held = sorted(widget.states[0].frames)
    assert len(held) <= 8 and held[0] == 0 and held[-1] == 390
    assert [m["frames"] for m, _ in adds(wire)] == [[s] for s in range(0, 400, 10)]
    assert len(widget.states[0].flows) == 40  # the gradient flow keeps every row


def test_snapshots_come_often_while_small_and_every_5_s_when_large() -> None:
    """A front end that loaded late (the adds before it were lost) catches up at the next
    snapshot: within 0.5 s while the run is small, at most 5 s for a snapshot of 10 MB."""
    assert notebook.snapshot_interval(10_000) == 0.5
    assert notebook.snapshot_interval(4 * 2**20) == 2.0
    assert notebook.snapshot_interval(15 * 2**20) == 5.0
