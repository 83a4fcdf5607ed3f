"""Weight surgery (app/core/surgery.py) and Trainer.apply: exact results, and refusals that change nothing."""

from __future__ import annotations

import pytest
import torch

from app.core.cells import CellName, is_torch_cell
from app.core.engine import TrainConfig, Trainer


def _trainer(cell: CellName = "lstm") -> Trainer:
    two_way = is_torch_cell(cell)  # the modern cells run one way only
    config = TrainConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=two_way, batch_size=4, steps=5)
    return Trainer(config)


def _param(trainer: Trainer, name: str) -> torch.Tensor:
    return dict(trainer.net.rnn.named_parameters())[name]


def test_rescale_sets_the_spectral_radius_of_each_gate_block_of_one_layer() -> None:
    trainer = _trainer("gru")
    before = _param(trainer, "weight_hh_l0").detach().clone()
    trainer.apply({"rescale": {"layer": 1, "radius": 0.9}})
    for name in ("weight_hh_l1", "weight_hh_l1_reverse"):
        blocks = _param(trainer, name).detach().view(3, 6, 6)
        radii = torch.linalg.eigvals(blocks).abs().amax(dim=-1)
        torch.testing.assert_close(radii, torch.full((3,), 0.9))
    assert torch.equal(_param(trainer, "weight_hh_l0"), before)  # the other layer is untouched


def test_forget_bias_and_a_fresh_optimizer() -> None:
    trainer = _trainer()
    assert trainer.train_step() is not None
    trainer.apply({"forget_bias": 2.0, "optimizer": {"name": "sgd", "reset_state": True}, "lr": 0.1})
    total = _param(trainer, "bias_ih_l1") + _param(trainer, "bias_hh_l1")
    assert torch.equal(total[6:12], torch.full((6,), 2.0))
    assert isinstance(trainer.optimizer, torch.optim.SGD) and trainer.optimizer.param_groups[0]["lr"] == 0.1
    kept = trainer.optimizer
    trainer.apply({"optimizer": {"name": "sgd", "reset_state": False}})
    assert trainer.optimizer is kept


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0.5, "optimizer": {"name": "sgd", "reset_state": False}}, "reset_state must be true"),
        ({"lr": 0.5, "rescale": {"layer": 2, "radius": 1.0}}, "layer must be from 0 to 1"),
        ({"lr": 0.5, "momentum": 0.9}, "no such knob: momentum"),
    ],
)
def test_a_refused_change_changes_nothing(changes: dict[str, object], message: str) -> None:
    trainer = _trainer()
    weights = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    config, optimizer = trainer.config, trainer.optimizer
    with pytest.raises(ValueError, match=message):
        trainer.apply(changes)
    assert trainer.config is config and trainer.optimizer is optimizer
    assert optimizer.param_groups[0]["lr"] == config.lr
    assert all(torch.equal(v, weights[k]) for k, v in trainer.net.state_dict().items())


def test_forget_bias_needs_a_forget_gate() -> None:
    with pytest.raises(ValueError, match=r"forget gate \(lstm, minlstm, slstm\), not gru"):
        _trainer("gru").apply({"forget_bias": 1.0})


@pytest.mark.parametrize(("cell", "rows"), [("minlstm", slice(0, 6)), ("slstm", slice(12, 18))])
def test_forget_bias_sets_the_f_rows_of_a_modern_cell(cell: CellName, rows: slice) -> None:
    trainer = _trainer(cell)
    before = trainer.net.rnn.get_parameter("bias_l0").detach().clone()
    trainer.apply({"forget_bias": 2.5})
    after = trainer.net.rnn.get_parameter("bias_l0").detach()
    assert torch.all(after[rows] == 2.5)
    mask = torch.ones_like(after, dtype=torch.bool)
    mask[rows] = False
    assert torch.equal(after[mask], before[mask])  # only the forget gate's rows


def test_a_mingru_has_no_w_hh_to_rescale() -> None:
    with pytest.raises(ValueError, match="no recurrent weights W_hh to rescale"):
        _trainer("mingru").apply({"rescale": {"layer": 0, "radius": 0.9}})


def test_reinit_draws_one_layer_afresh_as_initialize_does() -> None:
    trainer = _trainer("rnn_tanh")
    before = {k: v.detach().clone() for k, v in trainer.net.rnn.named_parameters()}
    trainer.apply({"reinit": {"layer": 0, "scheme": "identity", "gain": 0.5}})
    for name, p in trainer.net.rnn.named_parameters():
        if name.endswith(("_l0", "_l0_reverse")):
            if name.startswith("weight_hh"):
                assert torch.equal(p, 0.5 * torch.eye(6))
            if name.startswith("bias"):
                assert torch.equal(p, torch.zeros(6))  # identity zeroes the recurrent biases
        else:
            assert torch.equal(p, before[name])
    with pytest.raises(ValueError, match=r"reinit\.layer must be from 0 to 1"):
        trainer.apply({"reinit": {"layer": 2, "scheme": "normal", "gain": 1.0}})
