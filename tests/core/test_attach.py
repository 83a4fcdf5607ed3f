"""A frame of a person's own nn.RNN / LSTM / GRU, checked against autograd on the explicit unrolled graph.

The reference shares nothing with the probe but the parameters: `cells.unroll` builds the whole
batch's graph one named step at a time, from the same initial state; the loss is the script's
real batch loss on that graph; every quantity is an autograd gradient of it (or of l_s, the part
of it that enters at step s) with respect to the first sample's nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from app.core.attach import Layout, dropout_note, layout_of, loss_steps, packed_rows, probe_call
from app.core.cells import CHUNKS, GATES, TORCH_CELLS, DirectionTrace, TorchCell, Unrolled, unroll
from app.core.frames import Frame
from app.core.probes import Entering, ProbeFrame

LossFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (output, h_n, c_n) -> L, module layout
LOSSES = ("output", "output_last", "h_n", "both")


def make_module(
    cell: TorchCell, inputs: int, hidden: int, layers: int, bidi: bool, batch_first: bool, bias: bool
) -> nn.RNNBase:
    kwargs = {
        "input_size": inputs,
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": bidi,
        "batch_first": batch_first,
        "bias": bias,
    }
    if cell == "lstm":
        return nn.LSTM(**kwargs)
    if cell == "gru":
        return nn.GRU(**kwargs)
    return nn.RNN(nonlinearity="tanh" if cell == "rnn_tanh" else "relu", **kwargs)


def full_params(module: nn.RNNBase, cell: TorchCell) -> dict[str, Tensor]:
    """The module's parameters for `cells.unroll`, with zero biases if it has none."""
    params = {n: p.detach() for n, p in module.named_parameters()}
    for name in list(params):
        if name.startswith("weight_ih") and not module.bias:
            suffix = name[len("weight_ih") :]
            params[f"bias_ih{suffix}"] = torch.zeros(CHUNKS[cell] * module.hidden_size)
            params[f"bias_hh{suffix}"] = torch.zeros(CHUNKS[cell] * module.hidden_size)
    return params


def make_loss(kind: str, T: int, B: int, DH: int, LD: int, H: int, batch_first: bool, seed: int) -> LossFn:
    """A nonlinear batch loss through the output (on some steps), through h_n/c_n, or both."""
    g = torch.Generator().manual_seed(seed)
    w_out = torch.randn(B, T, DH, generator=g)
    steps = torch.rand(T, generator=g) < 0.6
    steps[-1] = True
    w_n = torch.randn(LD, B, H, generator=g)

    def loss(out: Tensor, h_n: Tensor, c_n: Tensor | None) -> Tensor:
        o = out if batch_first else out.transpose(0, 1)  # (B, T, D*H)
        total = out.new_zeros(())
        if kind == "output":
            total = total + (torch.tanh(o[:, steps]) * w_out[:, steps]).sum() / B
        if kind == "output_last":
            total = total + (o[:, -1] * w_out[:, -1]).pow(2).mean()
        if kind in ("h_n", "both"):
            total = total + (torch.sigmoid(h_n) * w_n).sum()
            if c_n is not None:
                total = total + (c_n * w_n).pow(2).sum() / 3
        if kind == "both":
            total = total + (o * w_out).sum().tanh()
        return total

    return loss


@dataclass
class Case:
    module: nn.RNNBase
    layout: Layout
    x: Tensor  # in the module's layout
    state: Tensor | tuple[Tensor, Tensor] | None
    loss: LossFn


def make_case(
    cell: TorchCell,
    layers: int,
    bidi: bool,
    batch_first: bool,
    bias: bool,
    with_state: bool,
    kind: str,
    B: int,
    T: int,
    seed: int,
) -> Case:
    torch.manual_seed(seed)
    inputs, H = 3, 4
    D = 2 if bidi else 1
    module = make_module(cell, inputs, H, layers, bidi, batch_first, bias)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)  # larger weights: gradients that vary over t
    x = torch.randn(B, T, inputs) if batch_first else torch.randn(T, B, inputs)
    state: Tensor | tuple[Tensor, Tensor] | None = None
    if with_state:
        h0 = torch.randn(layers * D, B, H)
        state = (h0, torch.randn(layers * D, B, H)) if cell == "lstm" else h0
    loss = make_loss(kind, T, B, D * H, layers * D, H, batch_first, seed)
    return Case(module, layout_of(module), x, state, loss)


def sample0(t: Tensor, batch_first: bool) -> Tensor:
    return t[0] if batch_first else t[:, 0]


def split_state(state: Tensor | tuple[Tensor, Tensor] | None) -> tuple[Tensor | None, Tensor | None]:
    if isinstance(state, tuple):
        return state
    return state, None


def probe_case(case: Case, itemize: bool = True) -> tuple[ProbeFrame, float]:
    """What gatescope.watch does: the fused module, its gradients by autograd, one sample's frame."""
    m, bf = case.module, case.layout.batch_first
    out, final = m(case.x, case.state)
    h_n, c_n = split_state(final)
    assert h_n is not None
    loss = case.loss(out, h_n, c_n)
    wrt = [out, h_n] + ([c_n] if c_n is not None else [])
    grads = torch.autograd.grad(loss, wrt, allow_unused=True, materialize_grads=False)
    g_out, g_hn = grads[0], grads[1]
    g_cn = grads[2] if c_n is not None else None
    h0, c0 = split_state(case.state)
    frame = probe_call(
        case.layout,
        {n: p.detach().clone() for n, p in m.named_parameters()},
        sample0(case.x, bf),
        h0[:, 0] if h0 is not None else None,
        c0[:, 0] if c0 is not None else None,
        sample0(g_out, bf) if g_out is not None else None,
        g_hn[:, 0] if g_hn is not None else None,
        g_cn[:, 0] if g_cn is not None else None,
        step=7,
        tokens=None,
        itemize=itemize,
        notes=[],
        source="live",
        loss=float(loss.detach()),
    )
    return frame, float(loss.detach())


def reference(case: Case) -> dict[str, np.ndarray]:
    """Every frame quantity by autograd on the unrolled graph of the whole batch."""
    lay, bf = case.layout, case.layout.batch_first
    L, D, H = lay.num_layers, lay.directions, lay.hidden_size
    x = (case.x if bf else case.x.transpose(0, 1)).clone().requires_grad_(True)  # (B, T, I)
    T = x.shape[1]
    u = unroll(lay.cell, full_params(case.module, lay.cell), x, L, lay.bidirectional, case.state)
    out = u.output if bf else u.output.transpose(0, 1)
    loss = case.loss(out, u.h_n, u.c_n)
    hs = [tr.h[t] for dirs in u.layers for tr in dirs for t in range(T)]
    cs = [tr.c[t] for dirs in u.layers for tr in dirs for t in range(T)] if lay.cell == "lstm" else []

    def norms(scalar: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """||d scalar/dh_t||, ||d scalar/dc_t|| (L, T) and ||d scalar/dx_t|| (T,) of sample 0."""
        gs = torch.autograd.grad(scalar, [*hs, *cs, x], retain_graph=True, allow_unused=True)
        row = [torch.zeros(H) if g is None else g[0] for g in gs[:-1]]
        h = torch.stack(row[: len(hs)]).reshape(L, D, T, H).permute(0, 2, 1, 3).reshape(L, T, D * H)
        c = (
            torch.stack(row[len(hs) :]).reshape(L, D, T, H).permute(0, 2, 1, 3)
            if cs
            else torch.zeros(L, T, D, H)
        )
        xg = gs[-1]
        assert xg is not None
        return (
            h.norm(dim=-1).numpy(),
            c.reshape(L, T, D * H).norm(dim=-1).numpy(),
            xg[0].norm(dim=-1).numpy(),
        )

    # the entering gradient of sample 0, and l_s: its part at step s, as a scalar with that gradient
    g_out, g_hn, *g_cn = torch.autograd.grad(
        loss,
        [u.output, u.h_n, *([u.c_n] if u.c_n is not None else [])],
        retain_graph=True,
        allow_unused=True,
        materialize_grads=True,
    )
    ends = [T - 1 if k % D == 0 else 0 for k in range(L * D)]  # where each layer-direction ended

    def part(s: int) -> Tensor:
        total = (g_out[0, s] * u.output[0, s]).sum()
        for k, end in enumerate(ends):
            if end == s:
                total = total + (g_hn[k, 0] * u.h_n[k, 0]).sum()
                if g_cn and u.c_n is not None:
                    total = total + (g_cn[0][k, 0] * u.c_n[k, 0]).sum()
        return total

    enters = (g_out[0] != 0).any(dim=1).clone()
    for k, end in enumerate(ends):
        enters[end] |= bool((g_hn[k, 0] != 0).any()) or bool(g_cn and (g_cn[0][k, 0] != 0).any())
    steps = [int(s) for s in torch.nonzero(enters).flatten()]
    grad_h, grad_c, conn_total = norms(loss)
    last = steps[-1] if steps else T - 1
    h_last, _, conn_last = norms(part(last))
    ref = {
        "grad_h": grad_h,
        "grad_h_last": h_last,
        "connectivity": conn_last,
        "connectivity_total": conn_total,
        "mask": enters.float().numpy(),
        "h": states(u, "h"),
    }
    if steps:  # no loss step, nothing to itemize: the frame has no matrix (checked in `check`)
        ref["itemized"], ref["connectivity_itemized"] = np.zeros((L, T, T)), np.zeros((T, T))
    for s in steps:
        ref["itemized"][:, s], _, ref["connectivity_itemized"][s] = norms(part(s))
    if lay.cell == "lstm":
        ref["grad_c"], ref["c"] = grad_c, states(u, "c")
    for gate in GATES[lay.cell]:
        ref[f"gates.{gate}"] = states(u, gate)
    ref["last_step"] = np.array(last)
    return ref


def states(u: Unrolled, name: str) -> np.ndarray:
    """One quantity of sample 0, every layer, both directions side by side: (L, T, D*H)."""

    def of(tr: DirectionTrace) -> Tensor:
        values = tr.h if name == "h" else tr.c if name == "c" else tr.gates[name]
        return torch.stack(values)[:, 0]

    return torch.stack([torch.cat([of(tr) for tr in dirs], -1) for dirs in u.layers]).detach().numpy()


def check(frame: ProbeFrame, ref: dict[str, np.ndarray]) -> None:
    if "itemized" not in ref:
        assert frame.itemized is None and frame.connectivity_itemized is None
    for key, want in ref.items():
        got = frame.gates[key[len("gates.") :]] if key.startswith("gates.") else getattr(frame, key)
        assert got is not None, key
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6, err_msg=key)


@settings(max_examples=200, deadline=None)
@given(
    cell=st.sampled_from(TORCH_CELLS),
    layers=st.integers(1, 3),
    bidi=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
    with_state=st.booleans(),
    kind=st.sampled_from(LOSSES),
    B=st.integers(1, 3),
    T=st.integers(1, 6),
    seed=st.integers(0, 10_000),
)
def test_every_quantity_matches_autograd_on_the_unrolled_graph(
    cell: TorchCell,
    layers: int,
    bidi: bool,
    batch_first: bool,
    bias: bool,
    with_state: bool,
    kind: str,
    B: int,
    T: int,
    seed: int,
) -> None:
    case = make_case(cell, layers, bidi, batch_first, bias, with_state, kind, B, T, seed)
    frame, _ = probe_case(case)
    check(frame, reference(case))


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_a_classifier_on_h_n_gets_its_gradient_at_the_ends_of_both_directions(cell: TorchCell) -> None:
    case = make_case(cell, 2, True, False, True, True, "h_n", 3, 5, 1)
    frame, loss = probe_case(case)
    assert frame.mask.tolist() == [1, 0, 0, 0, 1]  # backward direction ends at 0, forward at T-1
    assert frame.last_step == 4 and frame.loss == pytest.approx(loss)
    assert frame.grad_h[0].min() > 0  # the gradient reaches every step of the lower layer too
    check(frame, reference(case))


def test_the_built_in_and_the_attached_probe_are_one_computation() -> None:
    """A module with a per-step readout: the built-in probe and probe_call give the same frame."""
    from app.core.model import ModelSpec, RecurrentNet
    from app.core.probes import probe
    from app.core.tasks import make_task

    task = make_task("tagging", seq_len=5)
    torch.manual_seed(0)
    net = RecurrentNet(ModelSpec("gru", task.input_size, 6, task.output_size, 2, True))
    sample = task.sample(1, torch.Generator().manual_seed(0))
    built_in = probe(net, task, sample)
    out, _ = net.rnn(sample.inputs)
    terms = task.step_losses(net.readout(out), sample)[0] / sample.mask.sum()
    (g_out,) = torch.autograd.grad(terms.sum(), out)
    attached = probe_call(
        layout_of(net.rnn),
        {n: p.detach() for n, p in net.rnn.named_parameters()},
        sample.inputs[0],
        None,
        None,
        g_out[0],
        None,
        None,
        step=0,
        tokens=None,
        itemize=True,
        notes=[],
        source="live",
    )
    for name in ("h", "grad_h", "grad_h_last", "itemized", "connectivity", "connectivity_total", "mask"):
        np.testing.assert_allclose(getattr(attached, name), getattr(built_in, name), rtol=1e-5, atol=1e-7)
    assert attached.targets is None and attached.outputs is None and attached.source == "live"
    assert attached.theory is not None and built_in.theory is not None  # the theory too, one computation
    for name in ("jacobian_norm", "w_hh_radius", "w_hh_singular"):
        np.testing.assert_allclose(getattr(attached.theory, name), getattr(built_in.theory, name), rtol=1e-5)


def test_without_itemize_the_matrix_is_absent_and_the_rest_unchanged() -> None:
    case = make_case("lstm", 2, False, True, True, True, "both", 2, 6, 3)
    full, _ = probe_case(case)
    plain, _ = probe_case(case, itemize=False)
    assert plain.itemized is None and plain.connectivity_itemized is None
    np.testing.assert_allclose(plain.grad_h, full.grad_h, rtol=1e-6)  # fewer rows: float rounding only
    np.testing.assert_allclose(plain.grad_h_last, full.grad_h_last, rtol=1e-6)


def test_no_entering_gradient_gives_a_frame_of_states_and_a_note() -> None:
    case = make_case("gru", 1, False, True, True, False, "output", 2, 4, 0)
    params = {n: p.detach() for n, p in case.module.named_parameters()}
    frame = probe_call(
        case.layout, params, case.x[0], None, None, None, None, None,
        step=1, tokens=None, itemize=True, notes=["kept"], source="live",
    )  # fmt: skip
    assert frame.mask.tolist() == [0, 0, 0, 0] and frame.last_step == 3
    assert not frame.grad_h.any() and frame.itemized is None
    assert frame.notes[0] == "kept" and "no gradient reached" in frame.notes[1]
    assert np.isnan(frame.loss)
    out, _ = case.module(case.x)
    np.testing.assert_allclose(frame.h[0], out[0].detach().numpy(), atol=1e-6)


def test_loss_steps_read_where_gradient_enters() -> None:
    top = torch.zeros(5, 4)
    top[2, 1] = 1.0
    assert loss_steps(Entering(top=top), 5, 2) == [2]
    h_last = torch.zeros(4, 2)  # 2 layers x 2 directions
    h_last[3] = 1.0  # layer 1, backward direction: ended at t = 0
    assert loss_steps(Entering(top=top, h_last=h_last), 5, 2) == [0, 2]
    c_last = torch.zeros(2, 2)
    c_last[1] = -1.0  # one-way, layer 1
    assert loss_steps(Entering(c_last=c_last), 5, 1) == [4]
    assert loss_steps(Entering(), 5, 1) == []


def test_probe_call_checks_shapes_with_a_sentence() -> None:
    case = make_case("lstm", 2, True, True, True, False, "output", 2, 4, 0)
    params = {n: p.detach() for n, p in case.module.named_parameters()}
    with pytest.raises(ValueError, match=r"x must be \(T, 3\)"):
        probe_call(case.layout, params, torch.zeros(4, 5), None, None, None, None, None,
                   step=1, tokens=None, itemize=False, notes=[], source="live")  # fmt: skip
    with pytest.raises(ValueError, match=r"h0 must be \(4, 4\), got \(2, 4\)"):
        probe_call(case.layout, params, torch.zeros(4, 3), torch.zeros(2, 4), None, None, None, None,
                   step=1, tokens=None, itemize=False, notes=[], source="live")  # fmt: skip


def test_layout_of_reads_the_module_and_refuses_what_it_cannot_show() -> None:
    rnn = nn.RNN(5, 7, num_layers=3, nonlinearity="relu", bias=False, dropout=0.25)
    assert layout_of(rnn) == Layout("rnn_relu", 5, 7, 3, False, False, False, 0.25)
    assert layout_of(nn.GRU(2, 3, bidirectional=True, batch_first=True)).to_json() == {
        "cell": "gru",
        "input_size": 2,
        "hidden_size": 3,
        "num_layers": 1,
        "bidirectional": True,
        "batch_first": True,
        "bias": True,
        "dropout": 0.0,
    }
    with pytest.raises(ValueError, match="proj_size=2 is not supported"):
        layout_of(nn.LSTM(4, 8, proj_size=2))
    with pytest.raises(ValueError, match=r"is not an nn\.RNN, nn\.LSTM or nn\.GRU"):
        layout_of(nn.LSTMCell(4, 8))
    note = dropout_note(layout_of(nn.LSTM(4, 8, num_layers=2, dropout=0.2)))
    assert note.startswith("nn.LSTM dropout=0.2 between layers: this frame is computed without dropout")


def test_packed_rows_find_one_sample_in_packed_data() -> None:
    lengths = torch.tensor([3, 5, 1, 4])
    padded = torch.arange(4 * 5, dtype=torch.float32).reshape(4, 5, 1)
    packed = nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    for b in range(4):
        rows = packed_rows(packed.batch_sizes, packed.unsorted_indices, b)
        assert packed.data[rows, 0].tolist() == padded[b, : lengths[b], 0].tolist()
    sorted_packed = nn.utils.rnn.pack_padded_sequence(padded[[1, 3]], torch.tensor([5, 4]), batch_first=True)
    assert sorted_packed.data[packed_rows(sorted_packed.batch_sizes, None, 1), 0].tolist() == [15, 16, 17, 18]


def test_notes_and_source_travel_in_the_frame_header() -> None:
    case = make_case("gru", 1, False, True, True, False, "output", 2, 4, 0)
    frame, _ = probe_case(case)
    frame.notes = [dropout_note(case.layout)]
    made = Frame.from_probe("r", frame)
    back = Frame.from_bytes(made.to_bytes())
    assert back.header["notes"] == frame.notes and back.header["source"] == "live"
    assert "targets" not in back.arrays and "outputs" not in back.arrays
    public = back.to_json()
    assert public["notes"] == frame.notes and public["targets"] is None and public["outputs"] is None
    old = Frame({k: v for k, v in made.header.items() if k not in ("notes", "source")}, made.arrays)
    assert Frame.from_bytes(old.to_bytes()).header["source"] == "built-in"  # frames stored before
