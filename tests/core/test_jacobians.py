"""app.core.jacobians held to autograd: torch.func.jacrev of the reference step (app.core.cells.step)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from app.core.cells import TORCH_CELLS, TorchCell, Weights, layer_weights, step
from app.core.jacobians import (
    TOP_SINGULAR,
    spectra_every,
    step_grams,
    step_jacobians,
    step_norms,
    theory,
    w_hh_spectra,
)
from app.core.probes import forward_traces

T, H, N_IN = 6, 5, 3


def _stack(cell: TorchCell, layers: int = 2, bidirectional: bool = True) -> dict[str, Tensor]:
    modules = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    net = modules[cell]
    kwargs = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    module = net(N_IN, H, num_layers=layers, bidirectional=bidirectional, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3.0)  # large weights: saturated and unsaturated units both, far from the identity
    return {k: v.detach().double() for k, v in module.named_parameters()}


def _autograd_jacobian(cell: TorchCell, w: Weights, x_t: Tensor, h: Tensor, c: Tensor | None) -> Tensor:
    """d(h_t, c_t)/d(h_{t-1}, c_{t-1}) of the reference step, by torch.func.jacrev."""
    xw = torch.addmm(w.b_ih, x_t[None], w.w_ih.T)
    if cell != "lstm":
        J: Tensor = torch.func.jacrev(lambda h_: step(cell, xw, h_[None], None, w).h[0])(h)
        return J
    assert c is not None

    def state(s: Tensor) -> Tensor:
        out = step(cell, xw, s[None, :H], s[None, H:], w)
        assert out.c is not None
        return torch.cat([out.h[0], out.c[0]])

    J_state: Tensor = torch.func.jacrev(state)(torch.cat([h, c]))
    return J_state


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_every_step_jacobian_matches_jacrev(cell: TorchCell) -> None:
    torch.manual_seed(0)
    params = _stack(cell)
    x = torch.randn(T, N_IN, dtype=torch.float64)
    h0, c0 = torch.randn(4, H, dtype=torch.float64), torch.randn(4, H, dtype=torch.float64)
    seqs = forward_traces(cell, params, x, 2, True, h0, c0 if cell == "lstm" else None)
    for layer in range(2):
        inp = x if layer == 0 else torch.cat([s["h"] for s in seqs[0]], dim=-1)
        for d, seq in enumerate(seqs[layer]):
            w = layer_weights(params, layer, reverse=d == 1)
            ours = step_jacobians(cell, w, seq, reverse=d == 1)
            for t in range(T):
                p = t - 1 if d == 0 else t + 1  # the step before t in the direction's own time
                h = seq["h"][p] if 0 <= p < T else seq["h0"]
                c = (seq["c"][p] if 0 <= p < T else seq["c0"]) if cell == "lstm" else None
                expected = _autograd_jacobian(cell, w, inp[t], h, c)
                torch.testing.assert_close(ours[t], expected, rtol=1e-9, atol=1e-10)
            grams = step_grams(cell, w, seq, reverse=d == 1)
            torch.testing.assert_close(grams, ours @ ours.mT, rtol=1e-9, atol=1e-10)
            norms = step_norms(cell, w, seq, reverse=d == 1)
            torch.testing.assert_close(norms, torch.linalg.matrix_norm(ours, ord=2), rtol=1e-7, atol=1e-9)


def test_a_large_step_is_formed_in_chunks_with_the_same_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    params = _stack("lstm", layers=1, bidirectional=False)
    seqs = forward_traces("lstm", params, torch.randn(T, N_IN, dtype=torch.float64), 1, False)
    w = layer_weights(params, 0, reverse=False)
    whole = step_norms("lstm", w, seqs[0][0], reverse=False)
    monkeypatch.setattr("app.core.jacobians.CHUNK_FLOATS", (2 * H) ** 2 * 4)  # 4 steps a chunk
    torch.testing.assert_close(step_norms("lstm", w, seqs[0][0], reverse=False), whole)


def test_relu_norms_from_the_active_units_alone_dead_steps_included() -> None:
    torch.manual_seed(3)
    params = _stack("rnn_relu", layers=1, bidirectional=False)
    params["weight_ih_l0"][:, 0] = 3.0  # the first input drives every unit alike
    x = torch.randn(T, N_IN, dtype=torch.float64)
    x[2:4, 0] = -1e3  # steps 2-3: every unit off
    seq = forward_traces("rnn_relu", params, x, 1, False)[0][0]
    active = (seq["h"] > 0).sum(-1)
    assert active[2:4].eq(0).all() and active.max() > active[active > 0].min()  # dead, and padded
    J = step_jacobians("rnn_relu", layer_weights(params, 0, reverse=False), seq, reverse=False)
    norms = step_norms("rnn_relu", layer_weights(params, 0, reverse=False), seq, reverse=False)
    torch.testing.assert_close(norms, torch.linalg.matrix_norm(J, ord=2), rtol=1e-7, atol=1e-9)
    assert norms[2:4].eq(0).all()


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_theory_arrays_have_the_frame_shapes(cell: TorchCell) -> None:
    torch.manual_seed(2)
    params = _stack(cell)
    seqs = forward_traces(cell, params, torch.randn(T, N_IN, dtype=torch.float64), 2, True)
    th = theory(cell, params, seqs)
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cell]
    assert th.jacobian_norm is not None and th.jacobian_norm.shape == (2, 2, T) and th.notes == ()
    assert th.w_hh_radius is not None and th.w_hh_radius.shape == (2, 2, G)
    assert th.w_hh_singular is not None and th.w_hh_singular.shape == (2, 2, G, min(TOP_SINGULAR, H))
    assert (th.jacobian_norm >= 0).all()
    if cell == "lstm":
        assert th.cell_path_mean is not None and th.cell_path_max is not None
        f = seqs[1][1]["f"]  # layer 1, reverse
        torch.testing.assert_close(torch.from_numpy(th.cell_path_mean[1, 1]), f.mean(-1).float())
        torch.testing.assert_close(torch.from_numpy(th.cell_path_max[1, 1]), f.amax(-1).float())
        assert (th.cell_path_max >= th.cell_path_mean).all()
    else:
        assert th.cell_path_mean is None and th.cell_path_max is None


def test_w_hh_spectra_of_known_matrices() -> None:
    rotation = torch.tensor([[0.0, -2.0], [2.0, 0.0]])  # eigenvalues +-2i: radius 2, singular 2, 2
    nilpotent = torch.tensor([[0.0, 3.0], [0.0, 0.0]])  # radius 0, singular values 3, 0
    radius, singular = w_hh_spectra("gru", torch.cat([rotation, nilpotent, torch.eye(2) * 0.5]))
    torch.testing.assert_close(radius, torch.tensor([2.0, 0.0, 0.5]))
    torch.testing.assert_close(singular, torch.tensor([[2.0, 2.0], [3.0, 0.0], [0.5, 0.5]]))


def test_w_hh_top_singular_values_match_an_svd() -> None:
    torch.manual_seed(4)
    w_hh = torch.randn(4 * 20, 20)
    _, singular = w_hh_spectra("lstm", w_hh)
    expected = torch.linalg.svdvals(torch.stack(w_hh.chunk(4)).double())[:, :TOP_SINGULAR].float()
    torch.testing.assert_close(singular, expected, rtol=1e-6, atol=1e-6)


def test_spectra_every_spaces_out_costly_spectra_and_the_frame_says_when_they_come() -> None:
    assert spectra_every("lstm", 1, 1, 101) == 1  # 4 x 101^3 < 2^22: every probe
    assert spectra_every("lstm", 1, 1, 128) == 2  # 4 x 128^3 = 2^23
    assert spectra_every("lstm", 2, 1, 256) == 32  # the watch issue's 2-layer LSTM
    assert spectra_every("rnn_tanh", 1, 2, 64) == 1
    torch.manual_seed(3)
    params = _stack("gru")
    seqs = forward_traces("gru", params, torch.randn(T, N_IN, dtype=torch.float64), 2, True)
    without = theory("gru", params, seqs, spectra=False)
    assert without.w_hh_radius is None and without.w_hh_singular is None
    assert without.jacobian_norm is not None  # the rest of the theory stays in every frame
    (note,) = without.notes
    assert (
        note.startswith("The spectra of W_hh come with one probe in 1 of this net") and f"{H} x {H}" in note
    )
