"""minGRU / minLSTM: the parallel scan against the sequential reference, and the cells' equations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.minrnn import MIN_CELLS, MinRNN, scan, scan_sequential

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
