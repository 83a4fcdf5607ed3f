"""Using a run's weights after training: rebuilding the net from a checkpoint, inspecting, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from app.core.engine import Trainer
from app.core.frames import Frame
from app.services.inference import OWN_INPUTS_NOTE, NotCharLMError, inspect, load_model, sample
from app.services.schemas import RunCreate, to_train_config
from app.services.worker import checkpoint_bytes


def trained(config: dict[str, object], steps: int = 30) -> tuple[RunCreate, Trainer, bytes]:
    run = RunCreate.model_validate({**config, "steps": steps})
    trainer = Trainer(to_train_config(run, threads=1))
    trainer.run()
    return run, trainer, checkpoint_bytes(run, trainer)


HELLO = {"cell": "lstm", "hidden_size": 8, "task": {"name": "char_lm"}, "optimizer": {"lr": 0.05}}
ADDING = {"cell": "rnn_tanh", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}}


def test_load_model_restores_the_trained_weights() -> None:
    run, trainer, checkpoint = trained(HELLO)
    loaded = load_model(run, checkpoint)
    assert loaded.step == 30
    x = trainer.probe_sample.inputs
    with torch.no_grad():
        assert torch.equal(loaded.trainer.net(x)[0], trainer.net(x)[0])


def test_a_checkpoint_of_another_network_is_a_value_error() -> None:
    _, _, checkpoint = trained(HELLO, steps=1)
    other = RunCreate.model_validate({**HELLO, "hidden_size": 16})
    with pytest.raises(ValueError, match="does not fit"):
        load_model(other, checkpoint)
    with pytest.raises(ValueError, match="does not fit"):
        load_model(other, b"not a checkpoint")


def test_inspect_text_matches_the_trainers_own_probe() -> None:
    run, trainer, checkpoint = trained(HELLO)
    frame = inspect("r1", run, checkpoint, text="hell")
    own = trainer.probe(trainer.task.encode_text("hell"))
    assert frame.step == 30 and frame.header["tokens"] == ["h", "e", "l", "l"]
    assert frame.header["run_id"] == "r1" and frame.header["pool"] is None
    np.testing.assert_allclose(frame.arrays["grad_h_last"], own.grad_h_last, rtol=1e-5)
    assert set(frame.arrays) == set(Frame.from_probe("r1", own).arrays)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        inspect("r1", run, checkpoint, text="hex")
    with pytest.raises(ValueError, match="at least 2 characters"):
        inspect("r1", run, checkpoint, text="h")
    for wrong in ({}, {"text": "he", "probe": True}, {"inputs": [[1.0]], "text": "he"}):
        with pytest.raises(ValueError, match="exactly one of text, inputs or probe"):
            inspect("r1", run, checkpoint, **wrong)


def readout(trainer: Trainer, x: torch.Tensor) -> NDArray[np.float32]:
    """The net's outputs on x (1, T, I) as a frame stores them: (T, O), float16-rounded."""
    with torch.no_grad():
        y = trainer.net(x)[0][0]
    return np.asarray(y.numpy().astype(np.float16), np.float32)


def test_inspect_text_carries_the_next_character_distribution() -> None:
    run, trainer, checkpoint = trained(HELLO, steps=60)
    frame = inspect("r1", run, checkpoint, text="hell")
    logits = frame.arrays["outputs"]
    np.testing.assert_allclose(logits, readout(trainer, trainer.task.encode_text("hell").inputs), atol=1e-3)
    assert logits.shape == (4, 4)  # a logit per vocabulary character ("ehlo") at every step
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    vocab = trainer.task.vocab  # type: ignore[attr-defined]
    assert [vocab[i] for i in probs.argmax(axis=-1)[:3]] == ["e", "l", "l"]  # trained on "hello"
    assert frame.arrays["targets"].tolist()[:3] == [vocab.index(c) for c in "ell"]
    assert frame.header["loss"] is not None and frame.header["notes"] == []


def test_inspect_the_probe_sample_is_the_runs_own_frame() -> None:
    """probe=True: the run's own probe input with its targets, so the prediction has its target
    and the loss is the run's (as the trainer's own probe of the same weights)."""
    run, trainer, checkpoint = trained({**ADDING, "task": {"name": "adding", "seq_len": 8}}, steps=40)
    frame = inspect("r1", run, checkpoint, probe=True)
    own = Frame.from_probe("r1", trainer.probe())
    assert frame.step == 40 and frame.header["loss"] == pytest.approx(own.header["loss"], rel=1e-5)
    for name in ("inputs", "targets", "mask", "outputs"):
        np.testing.assert_allclose(frame.arrays[name], own.arrays[name], atol=1e-3)
    values, markers = trainer.probe_sample.inputs[0].T
    assert frame.arrays["targets"][-1, 0] == pytest.approx(float((values * markers).sum()), abs=1e-3)
    prediction = readout(trainer, trainer.probe_sample.inputs)[-1, 0]
    assert frame.arrays["outputs"][-1, 0] == pytest.approx(prediction, abs=1e-3)


def test_inspect_raw_inputs_has_outputs_but_no_targets_or_loss() -> None:
    run, trainer, checkpoint = trained(ADDING, steps=3)
    inputs = [[0.1, 1.0], [0.5, 0.0], [0.3, 1.0]]
    frame = inspect("r1", run, checkpoint, inputs=inputs)
    assert frame.arrays["mask"].tolist() == [0.0, 0.0, 1.0] and frame.header["tokens"] is None
    assert frame.arrays["connectivity"].shape == (3,) and frame.header["marks"] == []
    np.testing.assert_allclose(frame.arrays["outputs"], readout(trainer, torch.tensor([inputs])), atol=1e-3)
    assert "targets" not in frame.arrays and frame.header["loss"] is None
    assert frame.header["notes"] == [OWN_INPUTS_NOTE]
    with pytest.raises(ValueError, match="2 values per step"):
        inspect("r1", run, checkpoint, inputs=[[0.1]])


def test_sample_is_reproducible_with_a_seed_and_only_for_char_lm() -> None:
    run, _, checkpoint = trained(HELLO, steps=60)
    text = sample(run, checkpoint, prime="h", length=12, temperature=0.5, seed=4)
    assert text.startswith("h") and len(text) == 13 and set(text) <= set("helo")
    assert sample(run, checkpoint, prime="h", length=12, temperature=0.5, seed=4) == text
    adding, _, adding_checkpoint = trained(ADDING, steps=1)
    with pytest.raises(NotCharLMError, match="char_lm"):
        sample(adding, adding_checkpoint, prime="h", length=3, temperature=1.0)
