"""sLSTM: the training path against the unrolled reference, the stabilizer, the hand-written backward
and step norms against autograd, and the cell's equations written out by hand."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.slstm import FORGETS, GATES, SLSTM, STATES, Forget, backward, step_norms, traces, unroll

shapes = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 3),
        "steps": st.integers(1, 12),
        "inputs": st.integers(1, 4),
        "hidden": st.integers(1, 6),
        "layers": st.integers(1, 3),
        "forget": st.sampled_from(FORGETS),
        "stabilizer": st.booleans(),
        "with_state": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def _state(L: int, B: int, H: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random state of the right kind: n > 0."""
    return torch.randn(L, B, H), torch.randn(L, B, H), 0.5 + torch.rand(L, B, H), torch.randn(L, B, H)


def _params(model: SLSTM) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}


@settings(max_examples=80, deadline=None)
@given(shapes)
def test_the_training_path_agrees_with_the_unrolled_reference(s: dict[str, int | bool | str]) -> None:
    """Outputs, the last h, c, n, m and the gradient of every parameter and of the start state
    within 1e-5, for a loss of the outputs and of the last state's meaning (c/n, n e^m)."""
    torch.manual_seed(int(s["seed"]))
    B, T, H, L = int(s["batch"]), int(s["steps"]), int(s["hidden"]), int(s["layers"])
    forget: Forget = s["forget"]  # type: ignore[assignment]
    stabilizer = bool(s["stabilizer"])
    model = SLSTM(int(s["inputs"]), H, L, forget, stabilizer)
    x = torch.randn(B, T, int(s["inputs"]))
    state = tuple(v.requires_grad_() for v in _state(L, B, H)) if s["with_state"] else None
    weight = torch.randn(B, T, H)  # a random linear loss on the outputs
    w_c, w_n = torch.randn(L, B, H), torch.randn(L, B, H)  # and on the last state

    def loss(out: torch.Tensor, c: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (out * weight).sum() + (c / n * w_c).sum() + (n * m.exp() * w_n).sum()

    def start_grads() -> list[torch.Tensor]:
        grads = [v.grad if v.grad is not None else torch.zeros_like(v) for v in state or ()]
        for v in state or ():
            v.grad = None
        return grads

    out, (h, c, n, m) = model(x, state)
    loss(out, c, n, m).backward()
    ref = {k: p.grad.clone() for k, p in model.named_parameters()}  # type: ignore[union-attr]
    ref_start = start_grads()
    model.zero_grad()
    u = unroll(dict(model.named_parameters()), x, L, state, forget=forget, stabilizer=stabilizer)  # type: ignore[arg-type]
    n_u = torch.stack([lay[0].gates["n"][-1] for lay in u.layers])
    m_u = torch.stack([lay[0].gates["m"][-1] for lay in u.layers])
    loss(u.output, u.c_n, n_u, m_u).backward()  # type: ignore[arg-type]

    close = partial(torch.testing.assert_close, atol=1e-5, rtol=1e-5)
    close(u.output, out)
    close(u.h_n, h)
    close(u.c_n, c)
    close(n_u, n)
    close(m_u, m)
    if not stabilizer:
        assert not m.any()
    # n e^m can reach 1e5 (exp forget): float32 sums of such terms are exact to ~1e-7 of the largest
    for k, p in model.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(p.grad, ref[k], atol=1e-5 * _scale(ref[k]), rtol=1e-4, msg=k)
    for name, got, want in zip(("h0", "c0", "n0", "m0"), ref_start, start_grads(), strict=False):
        torch.testing.assert_close(got, want, atol=1e-5 * _scale(want), rtol=1e-4, msg=name)


def _scale(grad: torch.Tensor) -> float:
    return max(1.0, float(grad.abs().max()))


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_the_stabilised_and_unstabilised_forms_give_the_same_h(s: dict[str, int | bool | str]) -> None:
    torch.manual_seed(int(s["seed"]))
    B, T, H, L = int(s["batch"]), 2 * int(s["steps"]), int(s["hidden"]), int(s["layers"])
    forget: Forget = s["forget"]  # type: ignore[assignment]
    on = SLSTM(int(s["inputs"]), H, L, forget, stabilizer=True)
    off = SLSTM(int(s["inputs"]), H, L, forget, stabilizer=False)
    off.load_state_dict(on.state_dict())
    x = torch.randn(B, T, int(s["inputs"]))
    (out_on, (h_on, c_on, n_on, m_on)), (out_off, (_, c_off, n_off, _)) = on(x), off(x)
    torch.testing.assert_close(out_on, out_off, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_on[-1], out_on[:, -1])
    # the stored states differ by the factor exp(−m): c / n is the same
    torch.testing.assert_close(c_on / n_on, c_off / n_off, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(n_on * m_on.exp(), n_off, atol=1e-5, rtol=1e-4)


def _gate_biases(model: SLSTM, i: float, f: float) -> None:
    H = model.hidden_size
    with torch.no_grad():
        model.get_parameter("bias_l0")[H : 2 * H] = i
        model.get_parameter("bias_l0")[2 * H : 3 * H] = f


def test_without_the_stabilizer_the_state_overflows_and_with_it_h_stays_finite() -> None:
    """Input and forget pre-activations near 30 (exp forget): exp(30 t) leaves float32 by t = 3."""
    torch.manual_seed(3)
    off = SLSTM(2, 4, 1, "exp", stabilizer=False)
    _gate_biases(off, 30.0, 30.0)
    on = SLSTM(2, 4, 1, "exp", stabilizer=True)
    on.load_state_dict(off.state_dict())
    x = torch.randn(1, 50, 2)
    seq_off = traces(_params(off), x[0], 1, forget="exp", stabilizer=False)[0][0]
    assert torch.isfinite(seq_off["h"][0]).all()  # the first steps are still fine
    assert torch.isinf(seq_off["n"][:4]).any()  # the normalizer overflows within a few steps
    assert torch.isnan(seq_off["h"][4:]).all()  # inf / inf: h is NaN from there on
    out_off, _ = off(x)
    assert torch.isnan(out_off[0, 4:]).all()  # the training path shows the same

    out_on, state = on(x)
    assert torch.isfinite(out_on).all() and all(torch.isfinite(s).all() for s in state)
    seq_on = traces(_params(on), x[0], 1, forget="exp", stabilizer=True)[0][0]
    torch.testing.assert_close(seq_on["h"][:1], seq_off["h"][:1], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(step_norms(_params(on), 0, seq_on, forget="exp", stabilizer=True)).all()
    norms_off = step_norms(_params(off), 0, seq_off, forget="exp", stabilizer=False)
    assert (
        norms_off.shape == (50,) and torch.isnan(norms_off[4:]).all()
    )  # no crash: NaN where J is not finite


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(1, 4), st.sampled_from([None, 2]), st.booleans())
def test_backward_matches_autograd_on_the_unrolled_graph(
    s: dict[str, int | bool | str], rows: int, window: int | None, two_layers: bool
) -> None:
    """Random gradients into every h_t of the top layer (of a 1- or 2-layer stack); every dL/dh_t,
    dL/dc_t and dL/dx_t of each row against autograd, one row at a time."""
    torch.manual_seed(int(s["seed"]))
    T, H, L = int(s["steps"]), int(s["hidden"]), 2 if two_layers else 1
    forget: Forget = s["forget"]  # type: ignore[assignment]
    stabilizer = bool(s["stabilizer"])
    params = _params(SLSTM(int(s["inputs"]), H, L, forget, stabilizer))
    x = torch.randn(1, T, int(s["inputs"]), requires_grad=True)
    state = _state(L, 1, H) if s["with_state"] else None
    u = unroll(params, x, L, state, window, forget=forget, stabilizer=stabilizer)
    top = u.layers[-1][0]
    cotangents = torch.randn(rows, T, H)  # one row per loss: L_r = <cotangent_r, output>
    nodes = [*top.h, *top.c, u.layer_inputs[-1]]
    expected = [
        torch.autograd.grad(u.output, nodes, cotangents[r : r + 1], retain_graph=True, allow_unused=True)
        for r in range(rows)
    ]
    one = (state[0][:, 0], state[1][:, 0], state[2][:, 0], state[3][:, 0]) if state is not None else None
    seq = traces(params, x[0].detach(), L, one, forget=forget, stabilizer=stabilizer)[-1][0]
    g = backward(
        params, L - 1, seq, cotangents.permute(1, 0, 2), window, forget=forget, stabilizer=stabilizer
    )

    assert g.c is not None and g.h.shape == g.c.shape == (T, rows, H)
    close = partial(torch.testing.assert_close, atol=1e-6, rtol=2e-4)
    for r in range(rows):
        want = [torch.zeros(1, H) if e is None else e for e in expected[r]]
        for t in range(T):
            close(g.h[t, r], want[t][0])
            close(g.c[t, r], want[T + t][0])
        close(g.x[:, r], want[-1][0])


def _one_step(
    params: dict[str, torch.Tensor], x_t: torch.Tensor, m_prev: torch.Tensor, m_t: torch.Tensor, forget: str
) -> object:
    """(h, c, n) -> (h, c, n) at one step, m_{t-1} and m_t held constant, written from the paper."""

    def f(h: torch.Tensor, c: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pre = params["weight_ih_l0"] @ x_t + params["weight_hh_l0"] @ h + params["bias_l0"]
        pz, pi, pf, po = pre.chunk(4)
        log_f = pf if forget == "exp" else torch.nn.functional.logsigmoid(pf)
        i, fg = torch.exp(pi - m_t), torch.exp(log_f + m_prev - m_t)
        c = fg * c + i * torch.tanh(pz)
        n = fg * n + i
        return torch.sigmoid(po) * c / n, c, n

    return f


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_step_norms_are_the_spectral_norms_of_the_step_jacobians(s: dict[str, int | bool | str]) -> None:
    torch.manual_seed(int(s["seed"]))
    T, H = int(s["steps"]), int(s["hidden"])
    forget: Forget = s["forget"]  # type: ignore[assignment]
    stabilizer = bool(s["stabilizer"])
    params = _params(SLSTM(int(s["inputs"]), H, 1, forget, stabilizer))
    x = torch.randn(T, int(s["inputs"]))
    seq = traces(params, x, 1, forget=forget, stabilizer=stabilizer)[0][0]
    norms = step_norms(params, 0, seq, forget=forget, stabilizer=stabilizer)
    assert norms.shape == (T,)
    for t in range(T):
        prev = [seq[f"{k}0"] if t == 0 else seq[k][t - 1] for k in ("h", "c", "n", "m")]
        f = _one_step(params, x[t], prev[3], seq["m"][t], forget)
        blocks = torch.func.jacrev(f, argnums=(0, 1, 2))(*prev[:3])  # type: ignore[arg-type]
        J = torch.cat([torch.cat(list(row), 1) for row in blocks], 0)  # (3H, 3H)
        want = torch.linalg.matrix_norm(J, ord=2)
        torch.testing.assert_close(norms[t], want, atol=1e-6, rtol=2e-4)


@pytest.mark.parametrize("forget", FORGETS)
@pytest.mark.parametrize("stabilizer", [True, False])
def test_the_cell_is_its_equations(forget: Forget, stabilizer: bool) -> None:
    """T = 3, every quantity from the paper's equations, against the module and the traces."""
    torch.manual_seed(4)
    model = SLSTM(3, 4, 1, forget, stabilizer)
    p = _params(model)
    x = torch.randn(1, 3, 3)
    out, (h_n, c_n, n_n, m_n) = model(x)
    seq = traces(p, x[0], 1, forget=forget, stabilizer=stabilizer)[0][0]
    W, R, b = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_l0"]
    h, c, n, m = torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(4)
    for t in range(3):
        z = torch.tanh(W[:4] @ x[0, t] + R[:4] @ h + b[:4])
        i_pre = W[4:8] @ x[0, t] + R[4:8] @ h + b[4:8]
        f_pre = W[8:12] @ x[0, t] + R[8:12] @ h + b[8:12]
        o = torch.sigmoid(W[12:] @ x[0, t] + R[12:] @ h + b[12:])
        log_f = f_pre if forget == "exp" else torch.log(1 / (1 + torch.exp(-f_pre)))
        m_new = torch.maximum(log_f + m, i_pre) if stabilizer else torch.zeros(4)
        i = torch.exp(i_pre - m_new)
        fg = torch.exp(log_f + m - m_new)
        c = fg * c + i * z
        n = fg * n + i
        m = m_new
        h = o * c / n
        torch.testing.assert_close(out[0, t], h)
        for name, value in zip(
            ("h", "c", "n", "m", "z", "i", "f", "o"), (h, c, n, m, z, i, fg, o), strict=True
        ):
            torch.testing.assert_close(seq[name][t], value, msg=name)
    for got, want in zip((h_n, c_n, n_n, m_n), (h, c, n, m), strict=True):
        torch.testing.assert_close(got[0, 0], want)


def test_traces_name_every_quantity_and_unroll_keeps_them_per_step() -> None:
    torch.manual_seed(5)
    model = SLSTM(2, 3, 2, "sigmoid")
    x = torch.randn(1, 5, 2)
    seqs = traces(_params(model), x[0], 2, forget="sigmoid", stabilizer=True)
    assert len(seqs) == 2 and all(len(layer) == 1 for layer in seqs)
    names = {"h", *STATES, *GATES, "h0", "c0", "n0", "m0"}
    assert set(seqs[1][0]) == names
    assert all(seqs[1][0][k].shape == (5, 3) for k in ("h", *STATES, *GATES))
    u = unroll(_params(model), x, 2, forget="sigmoid", stabilizer=True)
    assert set(u.layers[0][0].gates) == {*GATES, "n", "m"} and len(u.layers[0][0].gates["n"]) == 5
    for layer in range(2):
        tr = u.layers[layer][0]
        for k in ("z", "i", "f", "o", "n", "m"):
            torch.testing.assert_close(torch.stack(tr.gates[k])[:, 0], seqs[layer][0][k], msg=k)
        torch.testing.assert_close(torch.stack(tr.c)[:, 0], seqs[layer][0]["c"])


def test_parameters_are_named_and_initialised_like_torch_lstm() -> None:
    model = SLSTM(5, 8, 3)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        **{f"weight_ih_l{k}": (32, 5 if k == 0 else 8) for k in range(3)},
        **{f"weight_hh_l{k}": (32, 8) for k in range(3)},
        **{f"bias_l{k}": (32,) for k in range(3)},
    }
    values = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert values.abs().max() <= 8**-0.5 and values.std() > 0.1


def test_refusals_are_sentences() -> None:
    with pytest.raises(ValueError, match="forget must be one of exp, sigmoid, not 'tanh'"):
        SLSTM(3, 4, forget="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_layers must be 1 to 3, not 4"):
        SLSTM(3, 4, num_layers=4)
    with pytest.raises(ValueError, match="num_layers must be 1 to 3, not 0"):
        SLSTM(3, 4, num_layers=0)
