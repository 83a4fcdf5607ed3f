"""minGRU / minLSTM: the parallel scan against the sequential reference, the cells' equations, and
the probes (traces, backward, step norms) against autograd and jacrev on the unrolled graph."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from app.core.cells import stack_trace
from app.core.minrnn import (
    GATES,
    MIN_CELLS,
    MinCell,
    MinRNN,
    backward,
    retention,
    scan,
    scan_sequential,
    step,
    step_norms,
    traces,
    unroll,
)

shapes = st.tuples(st.integers(1, 3), st.integers(1, 70), st.integers(1, 4), st.integers(1, 6))


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from(MIN_CELLS), st.integers(1, 3), st.integers(0, 2**16))
def test_the_parallel_scan_agrees_with_the_loop(
    shape: tuple[int, int, int, int], cell: str, layers: int, seed: int
) -> None:
    """Outputs, final states and every parameter's gradient within 1e-5, for any shape."""
    B, T, n_in, H = shape
    torch.manual_seed(seed)
    model = MinRNN(cell, n_in, H, layers)  # type: ignore[arg-type]
    x = torch.randn(B, T, n_in)
    h0 = torch.randn(layers, B, H)
    results = []
    for parallel in (True, False):
        model.zero_grad()
        out, last = model(x, h0, parallel=parallel)
        (out.square().sum() + last.sum()).backward()
        results.append((out, last, [p.grad.clone() for p in model.parameters()]))  # type: ignore[union-attr]
    (out_p, last_p, grads_p), (out_s, last_s, grads_s) = results
    torch.testing.assert_close(out_p, out_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last_p, last_s, atol=1e-5, rtol=1e-5)
    for gp, gs in zip(grads_p, grads_s, strict=True):
        torch.testing.assert_close(gp, gs, atol=1e-5, rtol=1e-4)


def test_the_scan_stays_exact_over_a_thousand_steps_of_strong_forgetting() -> None:
    """a_t near 0.1 for T = 1,000: the products underflow to 0 as the loop's do, no overflow."""
    torch.manual_seed(0)
    a = 0.05 + 0.1 * torch.rand(2, 1000, 8)
    b = torch.randn(2, 1000, 8)
    h0 = torch.randn(2, 8)
    torch.testing.assert_close(scan(a, b, h0), scan_sequential(a, b, h0), atol=1e-5, rtol=1e-5)


def test_mingru_is_its_equation() -> None:
    torch.manual_seed(1)
    model = MinRNN("mingru", 3, 4)
    x = torch.randn(2, 5, 3)
    out, _ = model(x)
    w, bias = model.get_parameter("weight_l0"), model.get_parameter("bias_l0")
    h = torch.zeros(2, 4)
    for t in range(5):
        z = torch.sigmoid(x[:, t] @ w[:4].T + bias[:4])
        h_tilde = x[:, t] @ w[4:].T + bias[4:]
        h = (1 - z) * h + z * h_tilde
        torch.testing.assert_close(out[:, t], h)


def test_minlstm_is_its_equation() -> None:
    torch.manual_seed(2)
    model = MinRNN("minlstm", 3, 4)
    x = torch.randn(2, 5, 3)
    out, _ = model(x)
    w, bias = model.get_parameter("weight_l0"), model.get_parameter("bias_l0")
    h = torch.zeros(2, 4)
    for t in range(5):
        f = torch.sigmoid(x[:, t] @ w[:4].T + bias[:4])
        i = torch.sigmoid(x[:, t] @ w[4:8].T + bias[4:8])
        h_tilde = x[:, t] @ w[8:].T + bias[8:]
        h = f / (f + i) * h + i / (f + i) * h_tilde
        torch.testing.assert_close(out[:, t], h)


def test_refusals_are_sentences() -> None:
    with pytest.raises(ValueError, match="cell must be one of mingru, minlstm"):
        MinRNN("gru", 3, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_layers must be 1 to 3, not 4"):
        MinRNN("mingru", 3, 4, num_layers=4)


# ----------------------------------------------------------------------------------------------
# the probes: unroll, traces, backward, step_norms


def _net(cell: MinCell, n_in: int, H: int, layers: int, seed: int) -> dict[str, Tensor]:
    torch.manual_seed(seed)
    model = MinRNN(cell, n_in, H, layers)
    with torch.no_grad():  # wider than the init, so the gates leave 1/2 and the layers differ
        for p in model.parameters():
            p.mul_(3)
    return {k: v.detach() for k, v in model.named_parameters()}


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(MIN_CELLS),
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 3),
    st.sampled_from([None, 2]),
    st.integers(0, 2**16),
)
def test_backward_is_autograd_on_the_unrolled_graph(
    cell: MinCell, T: int, n_in: int, H: int, layers: int, window: int | None, seed: int
) -> None:
    """Every layer's total dL/dh_t and the input gradient, per row, against autograd: row 0 has
    gradient entering at every step, rows 1.. only at one step each (the itemized rows)."""
    params = _net(cell, n_in, H, layers, seed)
    x = torch.randn(1, T, n_in, requires_grad=True)
    h0 = torch.randn(layers, 1, H)
    u = unroll(cell, params, x, layers, h0, window)
    steps = sorted({0, T - 1, T // 2})
    top = torch.randn(T, H)
    rows = torch.zeros(T, 1 + len(steps), H)  # (T, R, H) the gradient entering the top layer's h
    rows[:, 0] = top
    for r, s in enumerate(steps, start=1):
        rows[s, r] = top[s]
    hs = [h for layer in u.layers for h in layer[0].h]  # [layer * T + t] (1, H)
    expected_h, expected_x = [], []
    for r in range(rows.shape[1]):
        loss = (u.output[0] * rows[:, r]).sum()
        *grads, gx = torch.autograd.grad(loss, [*hs, x], retain_graph=True, allow_unused=True)
        grads = [g if g is not None else torch.zeros(1, H) for g in grads]  # cut off by the window
        by_layer = [torch.cat(grads[k * T : (k + 1) * T]) for k in range(layers)]
        expected_h.append(torch.stack(by_layer))  # (L, T, H)
        expected_x.append(gx[0])  # (T, I)
    want_h = torch.stack(expected_h, dim=2)  # (L, T, R, H)
    want_x = torch.stack(expected_x, dim=1)  # (T, R, I)

    seqs = traces(cell, params, x[0].detach(), layers, h0[:, 0])
    direct = rows
    for layer in reversed(range(layers)):
        got = backward(cell, params, layer, seqs[layer][0], direct, window)
        assert got.c is None
        torch.testing.assert_close(got.h, want_h[layer], rtol=2e-4, atol=1e-6)
        direct = got.x  # (T, R, I_layer): into the layer below
    torch.testing.assert_close(direct, want_x, rtol=2e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(MIN_CELLS),
    st.integers(1, 40),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(0, 2**16),
)
def test_traces_are_the_unrolled_graph(
    cell: MinCell, T: int, n_in: int, H: int, layers: int, seed: int
) -> None:
    """The parallel scan's states and gates are those of the step-by-step graph, within 1e-5."""
    params = _net(cell, n_in, H, layers, seed)
    x = torch.randn(T, n_in)
    h0 = torch.randn(layers, H)
    seqs = traces(cell, params, x, layers, h0)
    u = unroll(cell, params, x[None], layers, h0[:, None])
    assert len(seqs) == layers and all(len(dirs) == 1 for dirs in seqs)
    for layer, (seq,) in enumerate(seqs):
        ref = stack_trace(u.layers[layer][0])
        assert set(seq) == {"h", "a", "h0", *GATES[cell]}
        for name in ("h", "h0", *GATES[cell]):
            torch.testing.assert_close(seq[name], ref[name], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(seq["a"], retention(cell, ref), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(u.h_n[:, 0], torch.stack([s[0]["h"][-1] for s in seqs]), atol=1e-5, rtol=1e-5)
    assert u.c_n is None and u.output.shape == (1, T, H)


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(MIN_CELLS), st.integers(1, 8), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**16)
)
def test_step_norms_are_the_spectral_norm_of_one_step(
    cell: MinCell, T: int, H: int, layers: int, seed: int
) -> None:
    """||dh_t/dh_{t-1}||_2 of `step`, through torch.func.jacrev, at every step of every layer."""
    params = _net(cell, 3, H, layers, seed)
    x = torch.randn(T, 3)
    seqs = traces(cell, params, x, layers)
    inp = x
    for layer, (seq,) in enumerate(seqs):
        projected = torch.nn.functional.linear(inp, params[f"weight_l{layer}"], params[f"bias_l{layer}"])
        prev = torch.cat([seq["h0"][None], seq["h"][:-1]])
        want = torch.stack(
            [
                torch.linalg.matrix_norm(torch.func.jacrev(lambda h, p=p: step(cell, p, h)[0])(hp), ord=2)
                for p, hp in zip(projected, prev, strict=True)
            ]
        )
        torch.testing.assert_close(step_norms(cell, params, layer, seq), want, rtol=2e-4, atol=1e-6)
        inp = seq["h"]


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_two_windows_with_the_carried_state_are_one_pass(cell: MinCell) -> None:
    """Truncated BPTT as the engine runs it: net(x_window, state) with the previous window's h_n
    (detached) gives the outputs and final states of one pass over the whole sequence."""
    torch.manual_seed(3)
    model = MinRNN(cell, 3, 5, num_layers=2)
    x = torch.randn(4, 17, 3)
    h0 = torch.randn(2, 4, 5)
    whole, last = model(x, h0)
    first, state = model(x[:, :9], h0)
    second, state = model(x[:, 9:], state.detach())
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, last, atol=1e-5, rtol=1e-5)
    # and what the second window's loss reaches is only that window's steps: the state is a constant
    x.requires_grad_(True)
    second, _ = model(x[:, 9:], model(x[:, :9], h0)[1].detach())
    (gx,) = torch.autograd.grad(second.sum(), [x])
    assert gx[:, :9].abs().max() == 0 and gx[:, 9:].abs().max() > 0
