"""Every gradient a probe reports, checked against autograd on the explicit unrolled graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cells import (
    CELLS,
    CHUNKS,
    TORCH_CELLS,
    CellName,
    CellOptions,
    TorchCell,
    Weights,
    layer_weights,
    step,
)
from app.core.model import ModelSpec, RecurrentNet, initialize
from app.core.probes import ProbeFrame, probe
from app.core.tasks import Batch, Task, make_task

TASKS: list[tuple[str, dict[str, object]]] = [
    ("adding", {"seq_len": 6}),
    ("copy", {"seq_len": 3, "n_symbols": 2}),
    ("char_lm", {"corpus": "hello"}),
    ("tagging", {"seq_len": 5}),
    ("counting", {"seq_len": 5}),
]


def _setup(
    cell: CellName, task_index: int, layers: int, bidi: bool, seed: int
) -> tuple[RecurrentNet, Task, Batch]:
    name, params = TASKS[task_index]
    task = make_task(name, **params)
    torch.manual_seed(seed)
    bidi = bidi and cell in TORCH_CELLS  # the modern cells run one way only
    net = RecurrentNet(ModelSpec(cell, task.input_size, 5, task.output_size, layers, bidi))
    if cell not in ("mingru", "minlstm"):  # no W_hh to draw
        initialize(net, "normal", gain=1.3)
    return net, task, task.sample(1, torch.Generator().manual_seed(seed))


def _reference(net: RecurrentNet, task: Task, sample: Batch, window: int | None) -> dict[str, np.ndarray]:
    """Autograd on the unrolled graph: one backward pass per quantity, nothing shared with probes."""
    x = sample.inputs.clone().requires_grad_(True)
    y, u = net.unrolled(x, window=window)
    terms = task.step_losses(y, sample)[0] / sample.mask.sum()
    L, T = net.spec.num_layers, x.shape[1]
    steps = [int(s) for s in torch.nonzero(sample.mask[0]).flatten()]

    def per_layer(loss: torch.Tensor, want: str) -> np.ndarray:
        out = np.zeros((L, T))
        for layer, dirs in enumerate(u.layers):
            for t in range(T):
                nodes = [getattr(tr, want)[t] for tr in dirs]
                gs = torch.autograd.grad(loss, nodes, retain_graph=True, allow_unused=True)
                out[layer, t] = np.sqrt(sum(0.0 if g is None else float(g.norm()) ** 2 for g in gs))
        return out

    def at_input(loss: torch.Tensor) -> np.ndarray:
        (g,) = torch.autograd.grad(loss, x, retain_graph=True)
        return np.asarray(g[0].norm(dim=-1).numpy())

    ref = {
        "grad_h": per_layer(terms.sum(), "h"),
        "grad_h_last": per_layer(terms[steps[-1]], "h"),
        "connectivity": at_input(terms[steps[-1]]),
        "connectivity_total": at_input(terms.sum()),
        "itemized": np.zeros((L, T, T)),
        "connectivity_itemized": np.zeros((T, T)),
    }
    for s in steps:
        ref["itemized"][:, s] = per_layer(terms[s], "h")
        ref["connectivity_itemized"][s] = at_input(terms[s])
    if net.spec.cell in ("lstm", "slstm"):
        ref["grad_c"] = per_layer(terms.sum(), "c")
    return ref


def _check(frame: ProbeFrame, ref: dict[str, np.ndarray]) -> None:
    for key, want in ref.items():
        got = getattr(frame, key)
        assert got is not None, key
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6, err_msg=key)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(CELLS),
    st.integers(0, len(TASKS) - 1),
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from([None, 2]),
    st.integers(0, 1000),
)
def test_probe_gradients_match_autograd(
    cell: CellName, task_index: int, layers: int, bidi: bool, window: int | None, seed: int
) -> None:
    net, task, sample = _setup(cell, task_index, layers, bidi, seed)
    frame = probe(net, task, sample, window=window)
    _check(frame, _reference(net, task, sample, window))


def test_probe_states_and_gates_match_the_fused_kernel() -> None:
    net, task, sample = _setup("lstm", 0, 2, True, 3)
    frame = probe(net, task, sample)
    out, _ = net.rnn(sample.inputs)
    np.testing.assert_allclose(frame.h[-1], out[0].detach().numpy(), atol=1e-5)
    assert set(frame.gates) == {"i", "f", "g", "o"}
    assert frame.c is not None and frame.c.shape == frame.h.shape == (2, 6, 10)
    # c_t = f_t * c_{t-1} + i_t * g_t, forward direction of layer 0
    g = frame.gates
    c_prev = np.concatenate([np.zeros((1, 5)), frame.c[0, :-1, :5]])
    np.testing.assert_allclose(
        frame.c[0, :, :5], g["f"][0, :, :5] * c_prev + g["i"][0, :, :5] * g["g"][0, :, :5], atol=1e-6
    )
    gru_net, gru_task, gru_sample = _setup("gru", 0, 1, False, 3)
    assert set(probe(gru_net, gru_task, gru_sample).gates) == {"r", "z", "n"}


def test_total_gradient_includes_the_recurrent_path_not_just_the_readout() -> None:
    """For many-to-one the readout only touches h_T; the total gradient reaches every h_t."""
    net, task, sample = _setup("lstm", 0, 1, False, 0)
    frame = probe(net, task, sample)
    out = net.rnn(sample.inputs)[0].detach().requires_grad_(True)
    loss = task.loss(net.readout(out), sample)
    (readout_only,) = torch.autograd.grad(loss, out)
    assert float(readout_only[0, 0].norm()) == 0.0
    assert frame.grad_h[0, 0] > 0


def test_itemized_last_row_is_grad_h_last_and_respects_causality() -> None:
    net, task, sample = _setup("gru", 2, 1, False, 0)  # char_lm: a loss at every step
    frame = probe(net, task, sample)
    assert frame.itemized is not None
    np.testing.assert_allclose(frame.itemized[:, frame.last_step], frame.grad_h_last, rtol=1e-6)
    # causality: l_s does not depend on h_t for t > s in a one-way network
    assert np.all(np.triu(frame.itemized[0], k=1) == 0)
    assert np.all(frame.itemized[0][np.tril_indices(frame.itemized.shape[1])] > 0)


def test_underflow_gives_zero_never_nan() -> None:
    task = make_task("adding", seq_len=300)
    torch.manual_seed(0)
    net = RecurrentNet(ModelSpec("rnn_tanh", task.input_size, 16, task.output_size))
    initialize(net, "normal", gain=0.05)
    frame = probe(net, task, task.sample(1, torch.Generator().manual_seed(0)))
    for arr in (frame.grad_h, frame.grad_h_last, frame.connectivity):
        assert np.isfinite(arr).all()
    assert frame.grad_h_last[0, 0] == 0.0  # vanished below float32's smallest number
    assert frame.grad_h_last[0, -1] > 0
    assert frame.itemized is None  # longer than 200 steps: not itemized


def test_saturation_counts_fractions() -> None:
    net, task, sample = _setup("lstm", 0, 1, False, 0)
    with torch.no_grad():
        net.recurrent_params()["bias_ih_l0"][5:10] = 50.0  # forget gate pinned open
    frame = probe(net, task, sample)
    assert frame.saturation["f"]["high"] == [1.0]
    assert frame.saturation["f"]["low"] == [0.0]
    assert frame.unit_means["f"].shape == (1, 5)
    np.testing.assert_allclose(frame.unit_means["f"], 1.0)


def test_a_probe_carries_the_marks_of_its_sample() -> None:
    net, task, sample = _setup("gru", 0, 1, False, 4)  # adding: two marked positions
    frame = probe(net, task, sample)
    assert sample.marks is not None and frame.marks == sample.marks[0] and len(frame.marks) == 2
    assert frame.mark_label == "marked"
    assert frame.inputs[frame.marks, 1].tolist() == [1.0, 1.0]  # the marker input is 1 exactly there
    copy_net, copy_task, copy_sample = _setup("gru", 1, 1, False, 4)
    copy_frame = probe(copy_net, copy_task, copy_sample)
    assert copy_frame.mark_label == "delimiter" and copy_frame.marks == [2 + 3 - 1]
    plain = probe(*_setup("gru", 3, 1, False, 4))  # tagging marks nothing
    assert plain.marks == [] and plain.mark_label is None


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_a_probe_s_step_jacobian_norms_match_jacrev_on_the_unrolled_net(cell: TorchCell) -> None:
    net, task, sample = _setup(cell, 0, 2, True, 5)
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.jacobian_norm is not None
    assert frame.theory.w_hh_radius is not None and frame.notes == []
    params = {k: v.detach() for k, v in net.recurrent_params().items()}
    _, u = net.unrolled(sample.inputs)
    T = sample.inputs.shape[1]
    for layer, dirs in enumerate(u.layers):
        for d, trace in enumerate(dirs):
            w = layer_weights(params, layer, reverse=d == 1)
            x = u.layer_inputs[layer][0].detach()
            for t in range(T):
                p = t - 1 if d == 0 else t + 1
                h = trace.h[p][0] if 0 <= p < T else torch.zeros(5)
                c = (trace.c[p][0] if 0 <= p < T else torch.zeros(5)) if cell == "lstm" else None
                state = (torch.cat([h, c]) if c is not None else h).detach()
                xw = torch.addmm(w.b_ih, x[t][None], w.w_ih.T)
                J = torch.func.jacrev(lambda s, xw=xw, w=w: _next_state(cell, xw, s, w))(state)
                want = float(torch.linalg.matrix_norm(J, ord=2))
                got = frame.theory.jacobian_norm[layer, d, t]
                assert got == pytest.approx(want, rel=1e-4, abs=1e-6), (layer, d, t)
            radius = torch.linalg.eigvals(w.w_hh.chunk(CHUNKS[cell])[0].double()).abs().max()
            assert frame.theory.w_hh_radius[layer, d, 0] == pytest.approx(float(radius), rel=1e-5)
    if cell == "lstm":
        assert frame.theory.cell_path_max is not None
        np.testing.assert_allclose(
            frame.theory.cell_path_max[0, 0], frame.gates["f"][0, :, :5].max(-1), rtol=1e-6
        )


def _next_state(cell: TorchCell, xw: torch.Tensor, s: torch.Tensor, w: Weights) -> torch.Tensor:
    """The reference step as a function of the state s = h, or (h, c) for LSTM."""
    H = w.w_hh.shape[1]
    out = step(cell, xw, s[None, :H], s[None, H:] if cell == "lstm" else None, w)
    return torch.cat([out.h[0], out.c[0]]) if out.c is not None else out.h[0]


def test_too_large_a_state_leaves_the_norms_out_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    net, task, sample = _setup("lstm", 0, 1, False, 0)
    monkeypatch.setattr("app.core.jacobians.MAX_JACOBIAN_WORK", 6 * 10**3 - 1)  # T=6, n=10: 6000
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.jacobian_norm is None
    assert frame.theory.w_hh_radius is not None and frame.theory.w_hh_radius.shape == (1, 1, 4)
    assert frame.theory.cell_path_mean is not None
    assert frame.notes == list(frame.theory.notes) and len(frame.notes) == 1
    assert "6 steps of a 10-unit state" in frame.notes[0]


def test_too_large_a_w_hh_leaves_its_spectra_out_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    net, task, sample = _setup("gru", 0, 1, False, 0)
    monkeypatch.setattr("app.core.jacobians.MAX_SPECTRA_WORK", 3 * 5**3 - 1)  # G=3, H=5: 375
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.jacobian_norm is not None
    assert frame.theory.w_hh_radius is None and frame.theory.w_hh_singular is None
    assert len(frame.notes) == 1 and "spectra of W_hh are left out" in frame.notes[0]


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "gru", "mingru", "minlstm", "slstm"])
def test_the_running_product_of_step_norms_bounds_the_last_loss_gradient(cell: CellName) -> None:
    """||dl_T/dh_t|| <= ||dl_T/dh_T|| * prod_{k=t+1..T} ||J_k||: the bound a page draws over grad_h_last
    (one layer, one direction, adding: the loss enters at h_T alone)."""
    net, task, sample = _setup(cell, 0, 1, False, 7)
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.jacobian_norm is not None
    T, norms, grad = (
        frame.last_step,
        frame.theory.jacobian_norm[0, 0].astype(np.float64),
        frame.grad_h_last[0],
    )
    assert sample.inputs.shape[1] - 1 == T and grad[T] > 0
    for t in range(T):
        bound = grad[T] * np.prod(norms[t + 1 : T + 1])
        assert grad[t] <= bound * (1 + 1e-5) + 1e-12, (t, grad[t], bound)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, len(TASKS) - 1), st.integers(1, 2), st.booleans(), st.sampled_from(["exp", "sigmoid"]))
def test_slstm_probe_gradients_match_autograd_with_every_option(
    task_index: int, layers: int, stabilizer: bool, forget: str
) -> None:
    """sLSTM with and without its stabiliser, either forget gate, against the unrolled graph."""
    name, params = TASKS[task_index]
    task = make_task(name, **params)
    torch.manual_seed(task_index)
    options = CellOptions(forget=forget, stabilizer=stabilizer)  # type: ignore[arg-type]
    net = RecurrentNet(ModelSpec("slstm", task.input_size, 4, task.output_size, layers, options=options))
    sample = task.sample(1, torch.Generator().manual_seed(task_index))
    _check(probe(net, task, sample), _reference(net, task, sample, None))


def test_modern_cells_have_their_own_theory() -> None:
    """minGRU: no W_hh (a note says so), cell path a_t; sLSTM: R's spectra and f' as its cell path."""
    net, task, sample = _setup("mingru", 0, 1, False, 2)
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.w_hh_radius is None
    assert frame.theory.cell_path_max is not None and frame.theory.jacobian_norm is not None
    np.testing.assert_allclose(frame.theory.jacobian_norm[0, 0], frame.theory.cell_path_max[0, 0], rtol=1e-6)
    assert any("no recurrent weights W_hh" in n for n in frame.notes)
    np.testing.assert_allclose(
        frame.theory.cell_path_max[0, 0], (1 - frame.gates["z"][0]).max(-1), rtol=1e-5, atol=1e-6
    )
    net, task, sample = _setup("slstm", 0, 2, False, 2)
    frame = probe(net, task, sample)
    assert frame.theory is not None and frame.theory.w_hh_radius is not None
    assert frame.theory.w_hh_radius.shape == (2, 1, 4) and frame.notes == []
    assert frame.c is not None and set(frame.gates) == {"z", "i", "f", "o", "n", "m"}
    assert set(frame.saturation) == {"z", "i", "f", "o"}  # n and m are values, not gates


def test_an_slstm_without_its_stabiliser_overflows_and_the_frame_says_where() -> None:
    task = make_task("adding", seq_len=40)
    net = RecurrentNet(
        ModelSpec("slstm", task.input_size, 4, task.output_size, options=CellOptions(stabilizer=False))
    )
    with torch.no_grad():
        net.rnn.get_parameter("bias_l0")[4:8] = 30.0  # i~ = 30 a step: exp(30) * 40 steps, then the forget
        net.rnn.get_parameter("bias_l0")[8:12] = 5.0  # exp forget gate e^5 a step: past 3.4e38 by t ~ 12
    sample = task.sample(1, torch.Generator().manual_seed(0))
    frame = probe(net, task, sample)
    assert any("overflowed at t = " in n for n in frame.notes), frame.notes
    assert np.isfinite(frame.grad_h).all()  # norms: NaN -> 0, never NaN
    stable = RecurrentNet(ModelSpec("slstm", task.input_size, 4, task.output_size))
    stable.load_state_dict(net.state_dict())
    steady = probe(stable, task, sample)
    assert not any("overflowed" in n for n in steady.notes) and np.isfinite(steady.h).all()
