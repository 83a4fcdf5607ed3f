"""The instrumented cells reproduce torch.nn, and the hand-written backward reproduces autograd."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cells import TORCH_CELLS, TorchCell, backward_direction, layer_weights, stack_trace, unroll
from app.core.model import ModelSpec, fused_module

shapes = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(TORCH_CELLS),
        "layers": st.integers(1, 3),
        "bidirectional": st.booleans(),
        "batch": st.integers(1, 3),
        "steps": st.integers(1, 7),
        "inputs": st.integers(1, 4),
        "hidden": st.integers(1, 6),
        "seed": st.integers(0, 2**16),
        "with_state": st.booleans(),
    }
)


def _module(s: dict[str, int | bool | str]) -> torch.nn.RNNBase:
    cell: TorchCell = s["cell"]  # type: ignore[assignment]
    spec = ModelSpec(cell, int(s["inputs"]), int(s["hidden"]), 1, int(s["layers"]), bool(s["bidirectional"]))
    return fused_module(spec)


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_unrolled_matches_torch_nn_outputs_and_parameter_gradients(s: dict[str, int | bool | str]) -> None:
    torch.manual_seed(int(s["seed"]))
    m = _module(s)
    D = 2 if s["bidirectional"] else 1
    L, B, T, H = int(s["layers"]), int(s["batch"]), int(s["steps"]), int(s["hidden"])
    x = torch.randn(B, T, int(s["inputs"]))
    state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None
    if s["with_state"]:
        h0 = torch.randn(L * D, B, H)
        state = (h0, torch.randn(L * D, B, H)) if s["cell"] == "lstm" else h0
    weight = torch.randn(B, T, D * H)  # a random linear loss on the outputs

    out, final = m(x, state)
    (out * weight).sum().backward()
    ref = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()

    u = unroll(s["cell"], dict(m.named_parameters()), x, L, bool(s["bidirectional"]), state)  # type: ignore[arg-type]
    (u.output * weight).sum().backward()

    torch.testing.assert_close(u.output, out, atol=1e-5, rtol=1e-5)
    h_n = final[0] if isinstance(final, tuple) else final
    torch.testing.assert_close(u.h_n, h_n, atol=1e-5, rtol=1e-5)
    if isinstance(final, tuple):
        torch.testing.assert_close(u.c_n, final[1], atol=1e-5, rtol=1e-5)
    for name, p in m.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(p.grad, ref[name], atol=1e-5, rtol=1e-5, msg=name)


@settings(max_examples=100, deadline=None)
@given(shapes, st.integers(1, 4), st.sampled_from([None, 1, 2, 3]))
def test_backward_direction_matches_autograd_on_the_unrolled_graph(
    s: dict[str, int | bool | str], rows: int, window: int | None
) -> None:
    """Feed random gradients into every h_t of the top layer; compare every h_t, c_t, x_t gradient."""
    torch.manual_seed(int(s["seed"]))
    cell: TorchCell = s["cell"]  # type: ignore[assignment]
    m = _module(s)
    params = {n: p.detach() for n, p in m.named_parameters()}
    L, T, H = int(s["layers"]), int(s["steps"]), int(s["hidden"])
    bidi = bool(s["bidirectional"])
    D = 2 if bidi else 1
    x = torch.randn(1, T, int(s["inputs"]), requires_grad=True)
    u = unroll(cell, params, x, L, bidi, window=window)
    cotangents = torch.randn(rows, T, D * H)  # one row per "loss": L_r = <cotangent_r, output>

    nodes = [v for layer in u.layers for tr in layer for v in [*tr.h, *tr.c]]
    expected = [
        torch.autograd.grad(
            u.output, [*nodes, x], cotangents[r : r + 1], retain_graph=True, allow_unused=True
        )
        for r in range(rows)
    ]

    direct = cotangents.permute(1, 0, 2)  # (T, R, D*H)
    for layer in reversed(range(L)):
        grads = [
            backward_direction(
                cell,
                layer_weights(params, layer, d == 1),
                stack_trace(u.layers[layer][d]),
                direct[..., d * H : (d + 1) * H],
                reverse=d == 1,
                window=window,
            )
            for d in range(D)
        ]
        for d, g in enumerate(grads):
            tr = u.layers[layer][d]
            base = sum(len(t.h) + len(t.c) for lay in u.layers[:layer] for t in lay)
            base += sum(len(t.h) + len(t.c) for t in u.layers[layer][:d])
            for r in range(rows):
                for t in range(T):
                    want_h = expected[r][base + t]
                    want_h = torch.zeros(1, H) if want_h is None else want_h
                    torch.testing.assert_close(g.h[t, r], want_h[0], atol=1e-5, rtol=1e-4)
                    if g.c is not None:
                        want_c = expected[r][base + len(tr.h) + t]
                        want_c = torch.zeros(1, H) if want_c is None else want_c
                        torch.testing.assert_close(g.c[t, r], want_c[0], atol=1e-5, rtol=1e-4)
        direct = sum(g.x for g in grads)  # type: ignore[assignment]
    for r in range(rows):
        want_x = expected[r][-1]
        assert want_x is not None
        torch.testing.assert_close(direct[:, r], want_x[0], atol=1e-5, rtol=1e-4)
