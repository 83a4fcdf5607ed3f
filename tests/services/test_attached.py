"""The attached-run service: attach, steps, frames (every check, nothing half-stored), heartbeat and
reaper, stop, end, delete, shutdown and import of a run file.

Frames are real: the built-in probe of a small net (tests.core.test_frames.probe_frame) without the
task's targets and outputs, which is what an attached frame of the same module holds.
"""

from __future__ import annotations

import dataclasses
import struct
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch

from app.core import frames as frames_module
from app.core.attach import MAX_FRAME_T, layout_of, probe_call
from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.services.attached import (
    NO_END_ERROR,
    STALE_ERROR,
    STALE_SECONDS,
    AttachedRuns,
    RunEnded,
)
from app.services.frame_checks import Invalid, check_frame
from app.services.handles import SHUTDOWN_ERROR
from app.services.manager import DELETED_ERROR, RunNotFound, WrongState
from app.services.messages import EndMessage, Message, ProbeMessage, StatusMessage, StepMessage
from app.services.records import RunRecord
from app.services.schemas import AttachCreate, AttachedConfig, EndCreate, RunCreate, StepsIn
from app.services.storage import METRIC_FIELDS, Storage
from gatescope.runfile import FileSink
from tests.core.test_frames import probe_frame


def module(
    cell: str = "lstm", layers: int = 2, bidi: bool = True, hidden: int = 4, path: str = "rnn"
) -> dict[str, Any]:
    """An attached module whose frames `attached_probe` makes (the adding task: input_size 2)."""
    return {
        "path": path,
        "cell": cell,
        "input_size": 2,
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": bidi,
        "batch_first": True,
        "bias": True,
        "dropout": 0.0,
    }


@cache
def _probe(cell: str, layers: int, bidi: bool, hidden: int, T: int) -> ProbeFrame:
    return probe_frame(cell, layers=layers, bidi=bidi, seq_len=T, hidden=hidden)  # type: ignore[arg-type]


def attached_probe(m: dict[str, Any], step: int, T: int = 6) -> ProbeFrame:
    """The probe frame of module `m` at `step`: a built-in probe without targets and outputs."""
    pf = _probe(m["cell"], m["num_layers"], m["bidirectional"], m["hidden_size"], T)
    return dataclasses.replace(pf, targets=None, outputs=None, step=step, source="live")


def attached_frame(run_id: str, m: dict[str, Any], step: int, T: int = 6) -> Frame:
    return Frame.from_probe(run_id, attached_probe(m, step, T))


def steps(*numbers: int, loss: float | None = 1.0) -> StepsIn:
    return StepsIn.model_validate(
        {
            "steps": [
                {
                    "step": n,
                    "loss": loss,
                    "grad_norm": 2.0,
                    "grad_norm_clipped": 1.0,
                    "clipped": True,
                    "param_grad_norms": {"rnn.weight_hh_l0": 0.5},
                    "update_ratio": 1e-3,
                    "lr": 0.01,
                    "seconds": 0.1,
                }
                for n in numbers
            ]
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Service:
    runs: AttachedRuns
    storage: Storage
    messages: list[tuple[str, Message]]
    clock: Clock

    def attach(self, *modules: dict[str, Any]) -> list[str]:
        group = self.runs.attach(
            AttachCreate.model_validate({"name": "mine", "modules": list(modules or [module()])})
        )
        return [run.id for run in group.runs]

    def kinds(self, run_id: str) -> list[str]:
        return [type(m).__name__ for rid, m in self.messages if rid == run_id]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    messages: list[tuple[str, Message]] = []
    clock = Clock()
    with Storage(tmp_path) as storage:
        runs = AttachedRuns(storage, lambda run_id, message: messages.append((run_id, message)), clock=clock)
        yield Service(runs, storage, messages, clock)


# -- attach, steps, frames ------------------------------------------------------------------


def test_attach_makes_one_running_run_per_module_in_one_group(service: Service) -> None:
    body = AttachCreate.model_validate(
        {
            "name": "mine",
            "script": "train.py",
            "every": 5,
            "modules": [module(path="enc"), module("gru", path="dec")],
        }
    )
    group = service.runs.attach(body)
    assert [r.config.model_dump()["module"] for r in group.runs] == ["enc", "dec"]
    for run in group.runs:
        assert (run.kind, run.status, run.group, run.step, run.steps) == (
            "attached",
            "running",
            group.group,
            0,
            0,
        )
        stored = service.storage.get_run(run.id)
        assert stored is not None and stored.to_public() == run
        assert service.kinds(run.id) == ["StatusMessage"]
    assert group.runs[1].config.model_dump()["cell"] == "gru"


def test_steps_are_stored_as_built_in_rows_and_published(service: Service) -> None:
    (run_id,) = service.attach()
    reply = service.runs.add_steps(run_id, steps(1, 2, 3))
    assert (reply.step, reply.frames, reply.stop) == (3, 0, False)
    rows = service.storage.metrics(run_id)
    assert [r["step"] for r in rows] == [1, 2, 3] and set(rows[0]) == set(METRIC_FIELDS)
    assert rows[0] == steps(1).steps[0].model_dump()
    published = [m.metrics for rid, m in service.messages if isinstance(m, StepMessage)]
    assert [m["step"] for m in published] == [1, 2, 3] and published[0] == rows[0]
    record = service.storage.get_run(run_id)
    assert record is not None and record.step == 3 and record.to_public().steps == 3


def test_a_step_batch_that_repeats_a_step_stores_nothing(service: Service) -> None:
    (run_id,) = service.attach()
    service.runs.add_steps(run_id, steps(1, 2))
    before = (service.storage.metrics(run_id), len(service.messages))
    with pytest.raises(WrongState, match=f"step 2 of run {run_id} is already stored: its last step is 2"):
        service.runs.add_steps(run_id, steps(2, 3))
    assert (service.storage.metrics(run_id), len(service.messages)) == before
    with pytest.raises(ValueError, match="strictly increasing: step 4 follows step 5"):
        steps(5, 4)


def test_frames_are_stored_with_their_display_frame_and_published(service: Service) -> None:
    small_module, wide_module = module(), module("gru", layers=1, bidi=False, hidden=300)
    small_id, wide_id = service.attach(small_module, wide_module)
    small = attached_frame(small_id, small_module, 1)
    reply = service.runs.add_frame(small_id, small.to_bytes())
    assert (reply.frames, reply.step) == (1, 0)
    assert service.storage.probe(small_id, 1) == small.to_bytes()
    assert service.storage.probe(small_id, 1, "display") == small.to_bytes()  # small: its own display frame
    wide = attached_frame(wide_id, wide_module, 10, T=520)  # 520 x 300: pooled for display
    service.runs.add_frame(wide_id, wide.to_bytes())
    display = service.storage.probe(wide_id, 10, "display")
    assert display is not None and service.storage.probe(wide_id, 10) == wide.to_bytes()
    assert Frame.from_bytes(display).header["pool"] == {"T": 520, "units": 300, "t_width": 2, "unit_width": 2}
    assert display == wide.pooled().to_bytes()
    probes = [(rid, m.step, m.display) for rid, m in service.messages if isinstance(m, ProbeMessage)]
    assert probes == [(small_id, 1, small.to_bytes()), (wide_id, 10, display)]
    with pytest.raises(WrongState, match="already has a probe frame at step 10"):
        service.runs.add_frame(wide_id, wide.to_bytes())


def _mutated(frame: Frame, header: dict[str, Any] | None = None, /, **arrays: Any) -> bytes:
    new = dict(frame.arrays)
    for name, value in arrays.items():
        if value is None:
            del new[name]
        else:
            new[name] = value
    return Frame({**frame.header, **(header or {})}, new).to_bytes()


def _edited(frame: Frame, old: str, new: str) -> bytes:
    """The frame's bytes with `old` in its header JSON replaced by `new` (what to_bytes cannot
    write, e.g. Infinity). The header keeps its length (its tokens make room, spaces pad it), so
    the array table's offsets still hold."""
    data = frame.to_bytes()
    n = int(struct.unpack_from("<I", data)[0])
    text = data[4 : 4 + n].decode()
    assert old in text
    body = text.replace(old, new, 1).replace(
        '"tokens":[' + ",".join(f'"{t}"' for t in frame.header["tokens"]) + "]", '"tokens":null'
    )
    assert len(body) <= n, (len(body), n)
    return data[:4] + (body + " " * (n - len(body))).encode() + data[4 + n :]


def _nan(a: np.ndarray[Any, Any], value: float = np.nan) -> np.ndarray[Any, Any]:
    out = a.copy()
    out.flat[0] = value
    return out


# (what to change in a good LSTM frame of run "r", T=6, 2 layers, bidirectional, H=4) -> the sentence
BAD_FRAMES: list[tuple[str, Callable[[Frame], bytes], str]] = [
    ("garbage", lambda f: b"\x05\x00\x00\x00{nope", "not a probe frame"),
    ("empty", lambda f: b"", "not a probe frame: shorter than its 4-byte header length"),
    ("other run", lambda f: _mutated(f, {"run_id": "other"}), "names run 'other', not 'r'"),
    ("pooled", lambda f: _mutated(f, {"pool": {"T": 6}}), "pool: Input should be None"),
    (
        "negative step",
        lambda f: _mutated(f, {"step": -1}),
        "step: Input should be greater than or equal to 0",
    ),
    ("extra heade", lambda f: _mutated(f, {"secret": 1}), "secret: Extra inputs are not permitted"),
    (
        "built-in source",
        lambda f: _mutated(f, {"source": "built-in"}),
        "source: Input should be 'live' or 'fixed'",
    ),
    (
        "eleven notes",
        lambda f: _mutated(f, {"notes": ["n"] * 11}),
        "notes: List should have at most 10 items",
    ),
    ("long note", lambda f: _mutated(f, {"notes": ["n" * 301]}), "notes.0: String should have at most 300"),
    (
        "long token",
        lambda f: _mutated(f, {"tokens": ["x" * 65] * 6}),
        "tokens.0: String should have at most 64",
    ),
    (
        "token count",
        lambda f: _mutated(f, {"tokens": ["a"] * 5}),
        "has 5 tokens: it must have one per timestep, 6",
    ),
    ("last_step", lambda f: _mutated(f, {"last_step": 6}), "last_step is 6: it must be below T=6"),
    ("mark", lambda f: _mutated(f, {"marks": [9]}), "marks must be timesteps below T=6"),
    (
        "inf loss",
        lambda f: _edited(f, '"loss":', '"loss":Infinity,"x":'),
        "loss: Input should be a finite numbe",
    ),
    ("NaN loss", lambda f: _edited(f, '"loss":', '"loss":NaN,"x":'), "loss: Input should be a finite numbe"),
    ("gru gates", lambda f: _mutated(f, {"saturation": {"": {}}}), "exactly the gates ['f', 'g', 'i', 'o']"),
    (
        "saturation layers",
        lambda f: _mutated(f, {"saturation": {g: {"low": [0.1], "high": [0.2]} for g in "ifgo"}}),
        "saturation.i.low must have one value per layer, 2",
    ),
    ("no mask", lambda f: _mutated(f, mask=None), "no mask array of shape (T,)"),
    (
        "too long",
        lambda f: _mutated(f, mask=np.zeros(MAX_FRAME_T + 1, np.float32)),
        "2001 timesteps: it must have 1 to 2000",
    ),
    ("no h", lambda f: _mutated(f, h=None), "lacks the array h of shape [2, 6, 8]"),
    ("no c", lambda f: _mutated(f, c=None), "lacks the array c of shape [2, 6, 8]"),
    ("no gate", lambda f: _mutated(f, **{"gates.f": None}), "lacks the array gates.f"),
    (
        "h shape",
        lambda f: _mutated(f, h=f.arrays["h"][:, :, :4]),
        "array h has shape [2, 6, 4]: this module's must be [2, 6, 8]",
    ),
    (
        "inputs",
        lambda f: _mutated(f, inputs=np.zeros((6, 3), np.float32)),
        "array inputs has shape [6, 3]",
    ),
    (
        "targets",
        lambda f: _mutated(f, targets=np.zeros(6, np.float32)),
        "array targets is not part of a frame of an attached lstm",
    ),
    ("gru gate", lambda f: _mutated(f, **{"gates.r": f.arrays["gates.i"]}), "array gates.r is not part of"),
    (
        "nan grad",
        lambda f: _mutated(f, grad_h=_nan(f.arrays["grad_h"])),
        "array grad_h has values that are not finite",
    ),
    ("inf h", lambda f: _mutated(f, h=_nan(f.arrays["h"], np.inf)), "array h has values that are not finite"),
    (
        "theory shape",
        lambda f: _mutated(f, jacobian_norm=f.arrays["jacobian_norm"][:, :1]),
        "array jacobian_norm has shape [2, 1, 6]: this module's must be [2, 2, 6]",
    ),
]


@pytest.mark.parametrize(
    ("change", "sentence"), [(c, s) for _, c, s in BAD_FRAMES], ids=[n for n, _, _ in BAD_FRAMES]
)
def test_a_bad_frame_is_refused_with_a_sentence_and_stores_nothing(
    service: Service, change: Callable[[Frame], bytes], sentence: str
) -> None:
    m = module()
    service.storage.create_run(RunRecord.attached("r", _config(m), group="g"))
    good = attached_frame("r", m, 3)
    service.runs.add_frame("r", attached_frame("r", m, 1).to_bytes())
    before = (service.storage.probe_steps("r"), len(service.messages))
    with pytest.raises(Invalid) as refused:
        service.runs.add_frame("r", change(good))
    assert sentence in str(refused.value)
    assert (service.storage.probe_steps("r"), len(service.messages)) == before
    assert service.runs.add_frame("r", good.to_bytes()).frames == 2  # the run still takes good frames


def _config(m: dict[str, Any]) -> AttachedConfig:
    body = AttachCreate.model_validate({"modules": [m]})
    return AttachedConfig.of(body, body.modules[0])


def test_itemized_matrices_come_only_with_short_frames(service: Service) -> None:
    m = module("rnn_tanh", layers=1, bidi=False)
    (run_id,) = service.attach(m)
    long = attached_frame(run_id, m, 1, T=201)
    assert "itemized" not in long.arrays  # the probe leaves them out past 200 steps
    service.runs.add_frame(run_id, long.to_bytes())
    faked = _mutated(long, {"step": 2}, itemized=np.zeros((1, 201, 201), np.float32))
    with pytest.raises(
        Invalid, match="array itemized comes only with frames of up to 200 timesteps, not 201"
    ):
        service.runs.add_frame(run_id, faked)
    short = attached_frame(run_id, m, 3)
    service.runs.add_frame(run_id, _mutated(short, itemized=None, connectivity_itemized=None))  # optional
    theory_free = _mutated(
        attached_frame(run_id, m, 4), jacobian_norm=None, w_hh_radius=None, w_hh_singular=None
    )
    service.runs.add_frame(run_id, theory_free)  # the theory arrays are optional too


def test_arrays_in_the_wrong_dtype_are_refused(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    m = module("gru", layers=1, bidi=False)
    (run_id,) = service.attach(m)
    frame = attached_frame(run_id, m, 1)
    monkeypatch.setattr(frames_module, "_dtype_of", lambda name: "float32")
    with pytest.raises(Invalid, match="array inputs is float32: it must be float16"):
        service.runs.add_frame(run_id, frame.to_bytes())


# -- who may send ---------------------------------------------------------------------------


def test_unknown_and_built_in_runs_take_no_ingest(service: Service) -> None:
    with pytest.raises(RunNotFound, match="no run with id 'nope'"):
        service.runs.heartbeat("nope")
    service.storage.create_run(
        RunRecord.new("b", RunCreate.model_validate({"cell": "gru", "task": {"name": "adding"}}))
    )
    with pytest.raises(WrongState, match="run b is built-in: it trains on this server"):
        service.runs.add_steps("b", steps(1))
    assert service.storage.metrics("b") == []


def test_a_running_run_made_by_another_storage_user_is_taken_up(service: Service) -> None:
    service.storage.create_run(RunRecord.attached("x", _config(module()), group="g"))
    service.storage.add_steps("x", [steps(4).steps[0].model_dump()])
    assert service.runs.heartbeat("x").step == 4
    with pytest.raises(WrongState, match="already stored: its last step is 4"):
        service.runs.add_steps("x", steps(4))


# -- heartbeat, stop, end, delete, shutdown -------------------------------------------------


def test_a_silent_script_leaves_its_run_interrupted(service: Service) -> None:
    a, b = service.attach(module(path="a"), module(path="b"))
    service.clock.now += STALE_SECONDS - 1
    service.runs.heartbeat(b)
    assert service.runs.reap() == []
    service.clock.now += 2  # a: STALE_SECONDS + 1 without a word; b: 2 s
    assert service.runs.reap() == [a]
    record = service.storage.get_run(a)
    assert record is not None and (record.status, record.error) == ("interrupted", STALE_ERROR)
    assert record.finished_at is not None
    assert service.kinds(a) == ["StatusMessage", "StatusMessage", "EndMessage"]
    with pytest.raises(RunEnded, match=f"run {a} has ended: it is interrupted") as ended:
        service.runs.add_steps(a, steps(1))
    assert ended.value.stop is True
    assert service.storage.get_run(b).status == "running"  # type: ignore[union-attr]
    assert STALE_ERROR == "the script stopped sending (nothing for 30 s)"


def test_stop_asks_the_script_and_the_script_ends_its_run(service: Service) -> None:
    (run_id,) = service.attach()
    service.runs.add_steps(run_id, steps(1))
    record = service.runs.stop(run_id)
    assert record.status == "running" and record.to_public().config.model_dump()["stop_requested"] is True
    status = [m for rid, m in service.messages if isinstance(m, StatusMessage)][-1]
    assert status.run.config.model_dump()["stop_requested"] is True
    assert service.runs.add_steps(run_id, steps(2)).stop is True
    ended = service.runs.end(run_id, EndCreate(status="stopped", dropped_frames=2))
    public = ended.to_public()
    assert (public.status, public.step, public.error) == ("stopped", 2, None)
    assert public.config.model_dump()["dropped_frames"] == 2 and public.finished_at is not None
    assert isinstance(service.messages[-1][1], EndMessage)
    with pytest.raises(RunEnded, match="has ended: it is stopped"):
        service.runs.stop(run_id)
    with pytest.raises(RunEnded):
        service.runs.end(run_id, EndCreate(status="completed"))


def test_a_failed_script_keeps_its_error(service: Service) -> None:
    (run_id,) = service.attach()
    record = service.runs.end(run_id, EndCreate(status="failed", error="KeyError: 'x'"))
    assert (record.status, record.error) == ("failed", "KeyError: 'x'")


def test_delete_ends_the_viewers_and_the_script_gets_not_found(service: Service) -> None:
    (run_id,) = service.attach()
    service.runs.add_frame(run_id, attached_frame(run_id, module(), 1).to_bytes())
    service.runs.delete(run_id)
    end = service.messages[-1][1]
    assert isinstance(end, EndMessage) and (end.run.status, end.run.error) == ("stopped", DELETED_ERROR)
    assert service.storage.get_run(run_id) is None and service.storage.probe_steps(run_id) == []
    with pytest.raises(RunNotFound):
        service.runs.heartbeat(run_id)
    with pytest.raises(RunNotFound):
        service.runs.delete(run_id)


def test_close_interrupts_the_runs_still_running(service: Service) -> None:
    a, b = service.attach(module(path="a"), module(path="b"))
    service.runs.end(a, EndCreate(status="completed"))
    service.runs.start()
    service.runs.close()
    assert service.storage.get_run(a).status == "completed"  # type: ignore[union-attr]
    record = service.storage.get_run(b)
    assert record is not None and (record.status, record.error) == ("interrupted", SHUTDOWN_ERROR)


def test_a_restart_leaves_attached_runs_interrupted(service: Service) -> None:
    (run_id,) = service.attach()
    service.storage.recover()  # what the next start does, before the service takes requests
    fresh = AttachedRuns(service.storage)
    with pytest.raises(RunEnded, match=f"run {run_id} has ended: it is interrupted"):
        fresh.heartbeat(run_id)


def test_concurrent_requests_for_one_run_never_interleave(service: Service) -> None:
    m = module("gru", layers=1, bidi=False)
    (run_id,) = service.attach(m)
    frames = [attached_frame(run_id, m, k).to_bytes() for k in range(1, 17)]
    barrier = threading.Barrier(32)
    stored: list[int] = []
    errors: list[BaseException] = []

    def send(k: int) -> None:  # two threads send each frame at once: exactly one stores it
        barrier.wait()
        try:
            service.runs.add_frame(run_id, frames[k])
            stored.append(k)
        except WrongState:
            pass
        except BaseException as exc:  # pragma: no cover - what the test is for
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(k % 16,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(stored) == list(range(16))
    assert service.storage.probe_steps(run_id) == list(range(1, 17))
    assert service.runs.heartbeat(run_id).frames == 16
    assert len([m for _, m in service.messages if isinstance(m, ProbeMessage)]) == 16


def test_a_request_that_waited_for_a_deleted_run_gets_not_found(service: Service) -> None:
    (run_id,) = service.attach()
    held = service.runs._ingest(run_id)
    with held:  # a request under way: delete waits for it
        deleting = threading.Thread(target=service.runs.delete, args=(run_id,))
        deleting.start()
        deleting.join(0.2)
        assert deleting.is_alive() and service.storage.get_run(run_id) is not None
    deleting.join()
    with pytest.raises(RunNotFound), held:  # the next request that had found the run
        pass
    with pytest.raises(RunNotFound):
        service.runs.heartbeat(run_id)


# -- import ---------------------------------------------------------------------------------


def write_runfile(path: Path, modules: list[dict[str, Any]], n_steps: int = 5, end: bool = True) -> bytes:
    """A run file as `gatescope.watch(server=None)` writes it: steps 1..n_steps, a frame of every
    module at step 1 and at every 2nd step, then (unless `end` is False: the script died) its end."""
    sink = FileSink(path)
    sink.open({"name": "offline", "script": "train.py", "every": 2, "probe": "live", "modules": modules})
    for k in range(1, n_steps + 1):
        sink.step(steps(k).steps[0].model_dump())
        if k == 1 or k % 2 == 0:
            for i, m in enumerate(modules):
                sink.frame(i, attached_probe(m, k))
    sink.close("completed")
    data = path.read_bytes()
    payload = orjson.dumps({"status": "completed", "error": None, "dropped_frames": 0})
    end_record = b"E" + struct.pack("<I", len(payload)) + payload
    assert data.endswith(end_record)
    return data if end else data[: -len(end_record)]


def test_import_brings_in_every_step_and_frame(service: Service, tmp_path: Path) -> None:
    modules = [module(path="enc"), module("gru", layers=1, bidi=False, path="dec")]
    data = write_runfile(tmp_path / "run.gsrun", modules)
    group = service.runs.import_file(data)
    assert group.warnings == [] and len(group.runs) == 2
    for run, m in zip(group.runs, modules, strict=True):
        assert (run.kind, run.status, run.step, run.group) == ("attached", "completed", 5, group.group)
        assert run.config.model_dump()["module"] == m["path"]
        assert [r["step"] for r in service.storage.metrics(run.id)] == [1, 2, 3, 4, 5]
        assert service.storage.probe_steps(run.id) == [1, 2, 4]
        stored = service.storage.probe(run.id, 2)
        assert stored is not None and Frame.from_bytes(stored).header["run_id"] == run.id
    again = service.runs.import_file(data)  # new ids every time
    assert {r.id for r in again.runs}.isdisjoint(r.id for r in group.runs)


def test_a_file_without_an_end_imports_interrupted_and_a_cut_record_is_reported(
    service: Service, tmp_path: Path
) -> None:
    data = write_runfile(tmp_path / "died.gsrun", [module()], n_steps=4, end=False)
    group = service.runs.import_file(data[:-7])  # the last record, the frame of step 4, cut short
    (run,) = group.runs
    assert (run.status, run.error, run.step) == ("interrupted", NO_END_ERROR, 4)
    assert service.storage.probe_steps(run.id) == [1, 2]
    assert len(group.warnings) == 1 and "cut short" in group.warnings[0]


def test_an_invalid_run_file_stores_nothing(service: Service, tmp_path: Path) -> None:
    data = write_runfile(tmp_path / "ok.gsrun", [module()], n_steps=2)
    with pytest.raises(Invalid, match="not a Gatescope run file"):
        service.runs.import_file(b"PK\x03\x04 a zip")
    wrong_module = data.replace(b'"hidden_size":4', b'"hidden_size":5')  # the frames have H=4
    with pytest.raises(Invalid, match=r"frame 1 of the run file \(module 0\): array h has shape"):
        service.runs.import_file(wrong_module)
    bad_attach = data.replace(b'"every":2', b'"every":0')
    with pytest.raises(
        Invalid, match="the run file's attach record is not valid: every: Input should be greater"
    ):
        service.runs.import_file(bad_attach)
    assert service.storage.list_runs() == ([], 0)
    assert len(service.runs.import_file(data).runs) == 1


# -- frames as gatescope.watch makes them -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "layers", "bidi", "bias", "T", "itemize", "through"),
    [
        ("LSTM", 2, True, True, 7, True, "output"),
        ("GRU", 1, False, True, 5, True, "h_n"),
        ("RNN-relu", 3, False, False, 250, True, "output"),  # T > 200: no itemized matrices
        ("LSTM", 1, False, True, 4, False, "nothing"),  # no gradient reached the module
    ],
)
def test_frames_of_the_core_attach_probe_pass_the_checks(
    kind: str, layers: int, bidi: bool, bias: bool, T: int, itemize: bool, through: str
) -> None:
    """The frames app.core.attach makes for real torch modules are what the server takes."""
    torch.manual_seed(0)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN-relu": torch.nn.RNN}[kind]
    extra = {"nonlinearity": "relu"} if kind == "RNN-relu" else {}
    net = cls(3, 5, num_layers=layers, bidirectional=bidi, bias=bias, batch_first=True, **extra)
    x = torch.randn(2, T, 3)
    out, state = net(x)
    h_n = state[0] if isinstance(state, tuple) else state
    loss = out.pow(2).sum() if through == "output" else h_n.pow(2).sum()
    grad_out, grad_hn = (
        torch.autograd.grad(loss, [out, h_n], allow_unused=True) if through != "nothing" else (None, None)
    )
    layout = layout_of(net)
    params = {name: p.detach() for name, p in net.named_parameters()}
    pf = probe_call(
        layout,
        params,
        x[0],
        None,
        None,
        grad_out[0] if grad_out is not None else None,
        grad_hn[:, 0] if grad_hn is not None else None,
        None,
        step=3,
        tokens=[str(t) for t in range(T)],
        itemize=itemize,
        notes=[],
        source="live",
    )
    body = AttachCreate.model_validate({"modules": [{"path": "rnn", **layout.to_json()}]})
    config = _config(body.modules[0].model_dump())
    frame = check_frame(Frame.from_probe("r", pf).to_bytes(), "r", config)
    assert frame.step == 3 and ("itemized" in frame.arrays) == (itemize and T <= 200 and through != "nothing")
