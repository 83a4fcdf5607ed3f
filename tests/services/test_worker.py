"""The worker's protocol, run in-process (worker.run in a thread): messages, checkpoints, stop, errors.

The manager tests run the same code as real spawned processes.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import pytest
import torch

from app.core.engine import StepMetrics, Trainer
from app.core.frames import MAX_T, Frame
from app.services import worker
from app.services.schemas import RunCreate, to_train_config

LSTM = RunCreate.model_validate(
    {
        "cell": "lstm",
        "hidden_size": 8,
        "task": {"name": "adding", "seq_len": 6},
        "batch_size": 8,
        "steps": 12,
        "probe_every": 5,
    }
)


@dataclass
class Result:
    code: int | None
    messages: list[tuple[Any, ...]]

    @property
    def kinds(self) -> list[str]:
        """e.g. ["probe0", "step1", ..., "end"]"""
        labels = {"step": lambda m: str(m[1]["step"]), "probe": lambda m: str(m[1])}
        return [m[0] + labels.get(m[0], lambda m: "")(m) for m in self.messages]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.messages)


def _run(
    config: RunCreate | str,
    stop: threading.Event | None = None,
    stop_after: int | None = None,
    close_at_once: bool = False,
    start: worker.Start | None = None,
) -> Result:
    """worker.run in a thread, read here until "end" or "error" (setting `stop` at step `stop_after`)."""
    stop = stop or threading.Event()
    parent, child = multiprocessing.Pipe(duplex=False)
    text = config if isinstance(config, str) else config.model_dump_json()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run("rid", text, child, stop, None, start)))
    messages: list[tuple[Any, ...]] = []
    try:
        if close_at_once:
            parent.close()
        thread.start()
        while not close_at_once:
            message = parent.recv()
            messages.append(message)
            if message[0] in ("end", "error"):
                break
            if message[0] == "step" and message[1]["step"] == stop_after:
                stop.set()
        thread.join(30)
    finally:
        parent.close()
        child.close()
    return Result(codes[0] if codes else None, messages)


def _load(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return loaded


def _replay(config: RunCreate, steps: int) -> Trainer:
    """The run's net, trained again in this process (training is bit for bit reproducible)."""
    trainer = Trainer(to_train_config(config))
    for _ in range(steps):
        assert trainer.train_step() is not None
    return trainer


def test_a_run_sends_its_events_in_order() -> None:
    result = _run(LSTM)
    assert result.code == 0
    steps = [f"step{i}" for i in range(1, 13)]
    assert result.kinds == [
        "probe0",
        *steps[:5],
        "probe5",
        *steps[5:10],
        "probe10",
        *steps[10:],
        "probe12",
        "end",
    ]
    assert result.messages[-1] == ("end", "completed", 12, "")
    step = result.messages[1][1]
    assert set(step) == {f.name for f in fields(StepMetrics)} | {"time"}  # time: for latency
    assert step["step"] == 1 and isinstance(step["param_grad_norms"], dict)
    for message in result:
        if message[0] == "probe":
            _, at, full, display, ckpt, snapshot = message
            frame = Frame.from_bytes(full)
            assert (
                frame.header["run_id"] == "rid" and frame.step == at and frame.arrays["h"].shape == (1, 6, 8)
            )
            assert display is None  # a small frame is its own display frame
            assert _load(ckpt)["step"] == at  # a small net's weights come with every probe
            assert _load(snapshot)["step"] == at  # and every net's training state


def test_the_checkpoint_loads_into_plain_torch_modules() -> None:
    result = _run(LSTM)
    ckpt = _load(result.messages[-2][4])  # with the last probe
    assert set(ckpt) == {"config", "step", "state_dict", "readout", "vocab"}
    assert ckpt["config"] == LSTM.model_dump(mode="json") and ckpt["step"] == 12 and ckpt["vocab"] is None
    lstm = torch.nn.LSTM(input_size=2, hidden_size=8, batch_first=True)
    lstm.load_state_dict(ckpt["state_dict"])
    readout = torch.nn.Linear(8, 1)
    readout.load_state_dict(ckpt["readout"])

    trainer = _replay(LSTM, 12)
    for name, value in trainer.net.rnn.state_dict().items():
        assert torch.equal(ckpt["state_dict"][name], value), name
    x = trainer.probe_sample.inputs
    with torch.no_grad():
        expected, _ = trainer.net(x)
        got = readout(lstm(x)[0])
    assert torch.equal(got, expected)


def test_a_char_model_checkpoint_has_its_vocabulary() -> None:
    config = RunCreate.model_validate(
        {
            "cell": "gru",
            "hidden_size": 4,
            "num_layers": 2,
            "bidirectional": True,
            "task": {"name": "char_lm", "corpus": "hello", "seq_len": 5},
            "batch_size": 4,
            "steps": 2,
            "probe_every": 0,
        }
    )
    result = _run(config)
    assert result.kinds == ["probe0", "step1", "step2", "probe2", "end"]
    ckpt = _load(result.messages[-2][4])
    vocab = ckpt["vocab"]
    assert isinstance(vocab, list) and vocab and all(isinstance(ch, str) for ch in vocab)
    gru = torch.nn.GRU(len(vocab), 4, num_layers=2, bidirectional=True, batch_first=True)
    gru.load_state_dict(ckpt["state_dict"])
    tokens = Frame.from_bytes(result.messages[-2][2]).header["tokens"]
    assert tokens and all(isinstance(t, str) for t in tokens)


def test_a_long_frame_is_pooled_in_the_worker_once() -> None:
    long_task = {"task": {"name": "adding", "seq_len": MAX_T + 10}, "steps": 1}
    config = RunCreate.model_validate({**LSTM.model_dump(mode="json"), **long_task})
    result = _run(config)
    assert result.kinds == ["probe0", "step1", "probe1", "end"]
    for _, at, full, display, *_ in (m for m in result if m[0] == "probe"):
        frame, shown = Frame.from_bytes(full), Frame.from_bytes(display)
        assert frame.header["pool"] is None and frame.sizes() == (MAX_T + 10, 8)
        assert shown.header["pool"] == {"T": MAX_T + 10, "units": 8, "t_width": 2, "unit_width": 1}
        assert shown.step == at and shown.sizes() == ((MAX_T + 10) // 2, 8)
        assert display == frame.pooled().to_bytes()  # exactly the display frame of the full one


def test_a_stop_before_the_first_step_ends_at_step_zero() -> None:
    stop = threading.Event()
    stop.set()
    result = _run(LSTM, stop=stop)
    assert result.code == 0 and result.kinds == ["probe0", "end"]
    assert result.messages[-1] == ("end", "stopped", 0, "stopped on request")


def test_a_stop_mid_run_sends_the_final_weights_first() -> None:
    config = LSTM.model_copy(update={"steps": 1000, "probe_every": 0})
    result = _run(config, stop_after=3)
    assert result.code == 0
    _, status, step, _ = result.messages[-1]
    assert status == "stopped" and 3 <= step < 1000
    kind, at, data = result.messages[-2]
    assert (kind, at) == ("checkpoint", step) and _load(data)["step"] == step


def test_large_nets_send_weights_at_most_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "SMALL_CHECKPOINT_BYTES", 0)  # every net is "large"
    monkeypatch.setattr(worker, "CHECKPOINT_SECONDS", 3600.0)
    result = _run(LSTM)
    probes = [m for m in result if m[0] == "probe"]
    assert probes[0][4] is not None and all(p[4] is None for p in probes[1:])
    assert result.messages[-2][:2] == ("checkpoint", 12)  # the final weights, before the end
    assert result.messages[-1][:2] == ("end", "completed")


def test_a_bad_config_is_an_error_message() -> None:
    result = _run('{"cell": "lstm"}')
    assert result.code == 1
    assert result.kinds == ["error"]
    assert result.messages[0][1].startswith("ValidationError: ") and "task" in result.messages[0][1]


def test_a_training_exception_is_an_error_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Trainer) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "train_step", boom)
    result = _run(LSTM)
    assert result.code == 1 and result.kinds == ["probe0", "error"]
    assert result.messages[-1] == ("error", "RuntimeError: boom")


def test_the_worker_quits_when_its_parent_has_gone() -> None:
    result = _run(LSTM.model_copy(update={"steps": 100_000}), close_at_once=True)
    assert result.code == 1  # at its first send, not after 100000 steps


def test_a_paused_worker_waits_between_two_steps_and_resumes_where_it_was() -> None:
    """A pause sent at step 3 pauses after a step p >= 3 (the worker does not wait for it): nothing
    while paused, then the rest on resume, trained bit for bit as without the pause."""
    config = LSTM.model_copy(update={"probe_every": 0})
    parent, child = multiprocessing.Pipe(duplex=False)
    worker_end, control = multiprocessing.Pipe(duplex=False)
    stop = threading.Event()
    args = ("rid", config.model_dump_json(), child, stop, worker_end)
    thread = threading.Thread(target=worker.run, args=args)
    messages: list[tuple[Any, ...]] = []
    thread.start()
    try:
        while not messages or messages[-1][0] not in ("end", "error"):
            messages.append(parent.recv())
            if messages[-1][0] == "step" and messages[-1][1]["step"] == 3:
                control.send(("pause",))
            if messages[-1][0] == "paused":
                assert not parent.poll(0.5)  # paused: not a step more
                control.send(("pause",))  # a second pause changes nothing
                control.send(("resume",))
        thread.join(30)
    finally:
        for end in (parent, child, worker_end, control):
            end.close()
    kinds = [m[0] + (str(m[1]["step"]) if m[0] == "step" else "") for m in messages]
    p = kinds.index("paused") - 1
    assert p >= 3 and kinds[: p + 3] == ["probe", *(f"step{i}" for i in range(1, p + 1)), "paused", "resumed"]
    assert messages[p + 1] == ("paused", p) and messages[p + 2] == ("resumed", p)
    assert [m[1]["step"] for m in messages if m[0] == "step"] == list(range(1, 13))
    final = _load(next(m[4] for m in reversed(messages) if m[0] == "probe"))  # the last step's weights
    expected = _replay(config, 12).net.rnn.state_dict()
    assert all(torch.equal(final["state_dict"][k], v) for k, v in expected.items())


def test_a_paused_worker_still_stops() -> None:
    parent, child = multiprocessing.Pipe(duplex=False)
    worker_end, control = multiprocessing.Pipe(duplex=False)
    stop = threading.Event()
    control.send(("pause",))
    args = ("rid", LSTM.model_dump_json(), child, stop, worker_end)
    thread = threading.Thread(target=worker.run, args=args)
    thread.start()
    try:
        assert parent.recv()[0] == "probe" and parent.recv() == ("paused", 0)
        stop.set()
        end = parent.recv()
        thread.join(30)
    finally:
        for pipe in (parent, child, worker_end, control):
            pipe.close()
    assert end == ("end", "stopped", 0, "stopped on request")  # step 0's weights came with its probe


def test_an_intervention_is_applied_between_two_steps_whole() -> None:
    """lr and clip changed while paused: "intervened" at the paused step, and the run trains on as a
    replay that makes the same change after that step; a bad change is refused, nothing changed."""
    config = LSTM.model_copy(update={"probe_every": 0})
    parent, child = multiprocessing.Pipe(duplex=False)
    worker_end, control = multiprocessing.Pipe(duplex=False)
    changes = {"lr": 0.05, "clip": {"mode": "value", "threshold": 0.01}}
    control.send(("pause",))
    control.send(("intervene", "bad", {"lr": 0.1, "momentum": 0.5}))
    control.send(("intervene", "i1", changes))
    control.send(("resume",))
    args = ("rid", config.model_dump_json(), child, threading.Event(), worker_end)
    thread = threading.Thread(target=worker.run, args=args)
    thread.start()
    try:
        messages = [parent.recv()]
        while messages[-1][0] not in ("end", "error"):
            messages.append(parent.recv())
        thread.join(30)
    finally:
        for pipe in (parent, child, worker_end, control):
            pipe.close()
    assert messages[1:5] == [
        ("paused", 0),
        ("refused", "bad", "no such knob: momentum"),
        ("intervened", "i1", 0, changes),
        ("resumed", 0),
    ]
    steps = [m[1] for m in messages if m[0] == "step"]
    assert all(s["lr"] == 0.05 for s in steps) and any(s["clipped"] for s in steps)
    replay = Trainer(to_train_config(config))
    replay.apply(changes)
    for _ in range(12):
        assert replay.train_step() is not None
    final = _load(next(m[4] for m in reversed(messages) if m[0] == "probe"))
    assert all(torch.equal(final["state_dict"][k], v) for k, v in replay.net.rnn.state_dict().items())


def _untimed(result: Result) -> list[tuple[Any, ...]]:
    """The messages without their wall-clock fields (a step's seconds and time)."""
    out: list[tuple[Any, ...]] = []
    for m in result:
        if m[0] == "step":
            out.append(("step", {k: v for k, v in m[1].items() if k not in ("seconds", "time")}))
        elif m[0] == "probe":
            out.append(m[:3])  # the frame's bytes (the snapshot and the weights are checked below)
        else:
            out.append(m)
    return out


def test_a_fork_started_from_a_snapshot_sends_what_its_parent_sent_after_it() -> None:
    parent = _run(LSTM)
    snapshot = next(m[5] for m in parent if m[0] == "probe" and m[1] == 5)
    fork = _run(LSTM, start=(snapshot, {}))
    assert fork.code == 0 and fork.kinds == [
        "probe5",
        *(f"step{i}" for i in range(6, 11)),
        "probe10",
        "step11",
        "step12",
        "probe12",
        "end",
    ]
    after = _untimed(parent)[parent.kinds.index("probe5") :]
    assert _untimed(fork) == after  # every step's numbers and every frame's bytes, bit for bit
    assert _load(fork.messages[-2][5])["net"].keys() == _load(parent.messages[-2][5])["net"].keys()
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            _load(fork.messages[-2][4])["state_dict"].values(),
            _load(parent.messages[-2][4])["state_dict"].values(),
            strict=True,
        )
    )


def test_a_forks_changes_are_applied_before_its_first_step() -> None:
    parent = _run(LSTM)
    snapshot = next(m[5] for m in parent if m[0] == "probe" and m[1] == 5)
    changes = {"lr": 0.05, "forget_bias": 2.0}
    fork = _run(LSTM, start=(snapshot, changes))
    steps = [m[1] for m in fork if m[0] == "step"]
    assert [s["step"] for s in steps] == list(range(6, 13)) and {s["lr"] for s in steps} == {0.05}
    replay = _replay(LSTM, 5)
    replay.apply(changes)
    for _ in range(7):
        assert replay.train_step() is not None
    final = _load(fork.messages[-2][4])["state_dict"]
    assert all(torch.equal(final[k], v) for k, v in replay.net.rnn.state_dict().items())
