"""gatescope.watch on a script's own model, end to end (MemorySink: no transport).

- the frame of step k is sample 0 of the k-th step's own batch, under the real batch loss: every
  quantity equals autograd on the explicit unrolled graph (tests/core/test_attach.reference) of
  that batch, with the weights the step's forward used and the state it started from;
- the every-step row matches its definitions (before / after clipping, update ratio, lr);
- watching never changes training: bit-identical weights with and without it.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import gatescope
from app.core.attach import layout_of, packed_rows
from app.core.cells import TORCH_CELLS, TorchCell
from app.services.schemas import AttachCreate
from gatescope.sink import MemorySink
from tests.core.test_attach import Case, check, make_module, reference

V, I, H = 7, 3, 4  # vocabulary (also the classes), module input size, hidden size  # noqa: E741
State = Tensor | tuple[Tensor, Tensor] | None


@dataclass(frozen=True)
class Spec:
    cell: TorchCell = "lstm"
    layers: int = 1
    bidi: bool = False
    batch_first: bool = True
    bias: bool = True
    embed: bool = False  # token ids through an nn.Embedding, else float inputs
    packed: bool = False  # PackedSequence inputs of random lengths
    readout: str = "output"  # the loss reads: "output" (every step), "h_n" (a classifier), "both"
    carry: bool = False  # the final state starts the next batch (detached), as in TBPTT
    dropout: float = 0.0
    B: int = 3
    T: int = 5


class Net(nn.Module):
    """A script's own model: (embedding) -> nn.RNN/LSTM/GRU -> a per-step head and/or an h_n head."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec
        D = 2 if spec.bidi else 1
        self.embed = nn.Embedding(V, I) if spec.embed else None
        self.rnn = make_module(spec.cell, I, H, spec.layers, spec.bidi, spec.batch_first, spec.bias)
        self.rnn.dropout = spec.dropout
        self.head = nn.Linear(D * H, V)
        self.final = nn.Linear(D * H, V)

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor | PackedSequence:
        """The module's input: x (B, T) ids or (B, T, I) values, in the module's layout."""
        inp = self.embed(x) if self.embed is not None else x  # (B, T, I)
        bf = self.spec.batch_first
        if self.spec.packed:
            return pack_padded_sequence(inp if bf else inp.transpose(0, 1), lengths, bf, enforce_sorted=False)
        return inp if bf else inp.transpose(0, 1)

    def decode(self, out: Tensor | PackedSequence, h_n: Tensor, y: Tensor, lengths: Tensor) -> Tensor:
        """The batch loss from the module's output and h_n (mean over the steps each sample has)."""
        bf, D = self.spec.batch_first, 2 if self.spec.bidi else 1
        if isinstance(out, PackedSequence):
            out, _ = pad_packed_sequence(out, bf, total_length=self.spec.T)
        o = out if bf else out.transpose(0, 1)  # (B, T, D*H)
        loss = o.new_zeros(())
        if self.spec.readout in ("output", "both"):
            steps = torch.arange(self.spec.T)[None] < lengths[:, None]  # (B, T)
            terms = nn.functional.cross_entropy(self.head(o).transpose(1, 2), y, reduction="none")
            loss = loss + (terms * steps).sum() / steps.sum()
        if self.spec.readout in ("h_n", "both"):
            last = torch.cat(list(h_n[-D:]), dim=-1)  # (B, D*H): the top layer, both directions
            loss = loss + nn.functional.cross_entropy(self.final(last), y[:, 0])
        return loss

    def forward(self, x: Tensor, y: Tensor, lengths: Tensor, state: State = None) -> tuple[Tensor, Any]:
        out, final = self.rnn(self.encode(x, lengths), state)
        h_n = final[0] if isinstance(final, tuple) else final
        return self.decode(out, h_n, y, lengths), final


Batch = tuple[Tensor, Tensor, Tensor]  # x, y (B, T), lengths (B,)


def batches(spec: Spec, n: int, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        shape = (spec.B, spec.T) if spec.embed else (spec.B, spec.T, I)
        x = torch.randint(V, shape, generator=g) if spec.embed else torch.randn(shape, generator=g)
        lengths = torch.full((spec.B,), spec.T)
        if spec.packed:
            lengths = torch.randint(1, spec.T + 1, (spec.B,), generator=g)
            lengths[-1] = spec.T  # the padded length is T
        out.append((x, torch.randint(V, (spec.B, spec.T), generator=g), lengths))
    return out


@dataclass
class Step:
    """What the test kept of one training step, to recompute its frame."""

    weights: dict[str, Tensor]  # the model's, when the step's forward ran
    batch: Batch
    state: State
    loss: float


def detached(final: Any) -> State:
    if isinstance(final, tuple):
        return final[0].detach(), final[1].detach()
    assert isinstance(final, Tensor)
    return final.detach()


def train(
    spec: Spec,
    n: int,
    seed: int = 0,
    watch: dict[str, Any] | None = None,
    update: str = "adam",
) -> tuple[Net, list[Step], MemorySink]:
    """The script's loop: n steps (Adam + clip_grad_norm_, or a hand-written SGD update), watched
    with every=1 (and `watch`'s kwargs) unless `watch` is None."""
    torch.manual_seed(seed)
    net = Net(spec)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    sink = MemorySink()
    w = (
        gatescope.watch(net, sink=sink, optimizer=opt, **({"every": 1} | watch))
        if watch is not None
        else None
    )
    steps, state = [], None
    for batch in batches(spec, n, seed):
        weights = {k: v.clone() for k, v in net.state_dict().items()}
        loss, final = net(*batch, state)
        opt.zero_grad()
        loss.backward()
        if update == "adam":
            nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            opt.step()
        else:
            for p in net.parameters():
                p.data.add_(p.grad, alpha=-0.1)  # type: ignore[arg-type]
        if w is not None:
            w.step(loss=loss)
        steps.append(Step(weights, batch, state, float(loss.detach())))
        state = detached(final) if spec.carry else None
    if w is not None:
        w.close()
    return net, steps, sink


def expected(spec: Spec, step: Step) -> dict[str, np.ndarray]:
    """Sample 0's frame by autograd on the unrolled graph: sample 0 runs through the explicit
    cells (from its own initial state, at its own length), spliced into the batch's other
    samples (which do not depend on it), and the real batch loss is differentiated."""
    net = Net(spec)
    net.load_state_dict(step.weights)
    x, y, lengths = step.batch
    with torch.no_grad():
        inp = net.encode(x, lengths)
        out_f, final_f = net.rnn(inp, step.state)
    h_f = final_f[0] if isinstance(final_f, tuple) else final_f
    h0, c0 = step.state if isinstance(step.state, tuple) else (step.state, None)
    if isinstance(inp, PackedSequence):
        assert isinstance(out_f, PackedSequence)
        rows = packed_rows(inp.batch_sizes, inp.unsorted_indices)
        x0 = inp.data[rows]
    else:
        x0 = inp[0] if spec.batch_first else inp[:, 0]

    def splice(out0: Tensor, hn0: Tensor, cn0: Tensor | None) -> Tensor:  # out0 (1, T0, D*H)
        if isinstance(out_f, PackedSequence):
            data = out_f.data.clone()
            data[rows] = out0[0]
            out: Tensor | PackedSequence = out_f._replace(data=data)
        elif spec.batch_first:
            out = torch.cat([out0, out_f[1:]])
        else:
            out = torch.cat([out0.transpose(0, 1), out_f[:, 1:]], dim=1)
        return net.decode(out, torch.cat([hn0, h_f[:, 1:]], dim=1), y, lengths)

    alone = make_module(spec.cell, I, H, spec.layers, spec.bidi, True, spec.bias)
    alone.load_state_dict(net.rnn.state_dict())
    state: State = None
    if h0 is not None:
        state = (h0[:, :1], c0[:, :1]) if c0 is not None else h0[:, :1]
    return reference(Case(alone, layout_of(alone), x0[None], state, splice))


SPECS = st.builds(
    Spec,
    cell=st.sampled_from(TORCH_CELLS),
    layers=st.integers(1, 3),
    bidi=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
    embed=st.booleans(),
    packed=st.booleans(),
    readout=st.sampled_from(["output", "h_n", "both"]),
    carry=st.booleans(),
    B=st.integers(1, 3),
    T=st.integers(1, 5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SPECS, seed=st.integers(0, 1000))
def test_every_frame_is_the_steps_own_batch_under_the_real_loss(spec: Spec, seed: int) -> None:
    _, steps, sink = train(spec, 3, seed, watch={"itemize": True})
    assert [f.step for _, f in sink.frames] == [1, 2, 3]
    for (module, frame), step in zip(sink.frames, steps, strict=True):
        assert module == 0 and frame.source == "live" and frame.notes == []
        assert frame.loss == pytest.approx(step.loss)
        check(frame, expected(spec, step))


@pytest.mark.parametrize(
    "spec",
    [
        Spec("lstm", layers=2, embed=True, carry=True),
        Spec("gru", layers=3, bidi=True, batch_first=False, readout="h_n", carry=True),
        Spec("rnn_tanh", bias=False, readout="both", carry=True, T=8),
        Spec("rnn_relu", layers=2, bidi=True),
        Spec("lstm", bidi=True, packed=True, readout="both", carry=True),
        Spec("gru", layers=2, packed=True, batch_first=False, readout="h_n", embed=True),
    ],
    ids=[
        "lstm-embed-carry",
        "gru-3-bidi-seqfirst-hn",
        "tanh-nobias-both",
        "relu-bidi",
        "lstm-packed",
        "gru-packed",
    ],
)
def test_the_issues_layouts(spec: Spec) -> None:
    _, steps, sink = train(spec, 3, 1, watch={"itemize": True})
    for (_, frame), step in zip(sink.frames, steps, strict=True):
        check(frame, expected(spec, step))
    if spec.packed:  # sample 0 at its own length
        assert sink.frames[0][1].h.shape[1] == int(steps[0].batch[2][0])


# -- watching never changes training ----------------------------------------------------------


def _weights(net: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("update", ["adam", "sgd"])
@pytest.mark.parametrize("fixed", [False, True])
def test_a_watched_run_ends_with_bit_identical_weights(update: str, fixed: bool) -> None:
    """Dropout between layers draws random numbers every step: any draw by the watch would show."""
    spec = Spec("lstm", layers=2, embed=True, dropout=0.3, carry=True, readout="both")
    kwargs: dict[str, Any] = {"itemize": True}
    if fixed:
        x, y, lengths = batches(spec, 1, 99)[0]
        kwargs |= {"probe": (x[:1], y[:1], lengths[:1]), "probe_loss": lambda out: out[0]}
    plain, _, _ = train(spec, 6, 3, update=update)
    watched, _, sink = train(spec, 6, 3, watch=kwargs, update=update)
    assert len(sink.frames) == 6  # every step probed
    for name, value in _weights(plain).items():
        assert torch.equal(value, _weights(watched)[name]), name
    assert watched.training and all(m.training for m in watched.modules())  # modes restored


def test_step_writes_no_grad_and_draws_no_random_number() -> None:
    spec = Spec("gru", layers=2, bidi=True)
    torch.manual_seed(0)
    net = Net(spec)
    x, y, lengths = batches(spec, 1, 0)[0]
    probe = (x[:1], y[:1], lengths[:1])
    for kwargs in ({}, {"probe": probe, "probe_loss": lambda out: out[0]}):
        w = gatescope.watch(net, sink=MemorySink(), every=1, **kwargs)  # type: ignore[arg-type]
        net.zero_grad()
        net(x, y, lengths)[0].backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        rng = torch.get_rng_state()
        w.step()
        assert torch.equal(torch.get_rng_state(), rng)
        assert {n for n, p in net.named_parameters() if p.grad is not None} == set(grads)
        for n, p in net.named_parameters():
            assert p.grad is None or torch.equal(p.grad, grads[n]), n
        w.close()


# -- the every-step row -----------------------------------------------------------------------


def test_the_row_of_every_step_matches_its_definitions() -> None:
    torch.manual_seed(0)
    spec = Spec("lstm", layers=2, readout="both")
    net = Net(spec)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.5)
    sink = MemorySink()
    w = gatescope.watch(net, sink=sink, every=100, optimizer=opt)
    names = [n for n, _ in net.named_parameters()]
    for k, batch in enumerate(batches(spec, 4, 0), start=1):
        before = [p.detach().clone() for p in net.parameters()]
        opt.zero_grad()
        net(*(b[:1] for b in batch))[0].backward()  # gradient accumulation: two backward passes
        net(*(b[1:] for b in batch))[0].backward()
        norms = [float(g.norm()) for g in _grads(net)]
        clip = nn.utils.clip_grad_norm_(net.parameters(), 0.2 if k % 2 else 100.0)
        after = _total(_grads(net))
        opt.step()
        delta = _total([p.detach() - b for p, b in zip(net.parameters(), before, strict=True)])
        size = _total(before)
        w.step(loss=torch.tensor(0.25 * k))
        row = sink.steps[-1]
        assert row["step"] == k and row["loss"] == 0.25 * k and row["metric"] is None
        assert row["grad_norm"] == pytest.approx(float(clip), rel=1e-5)
        assert row["grad_norm_clipped"] == pytest.approx(after, rel=1e-5)
        assert row["clipped"] is bool(k % 2)
        assert list(row["param_grad_norms"]) == names
        assert list(row["param_grad_norms"].values()) == pytest.approx(norms, rel=1e-5)
        assert row["update_ratio"] == pytest.approx(delta / size, rel=1e-4)
        assert row["lr"] == 0.3 and row["seconds"] >= 0
    w.step(loss=float("nan"))  # no backward this time: the gradients as they stand
    row = sink.steps[-1]
    assert row["loss"] is None and row["update_ratio"] == 0.0
    assert row["grad_norm"] == pytest.approx(row["grad_norm_clipped"])
    w.close()
    assert sink.ended == ("completed", None)


def _grads(net: nn.Module) -> list[Tensor]:
    return [p.grad for p in net.parameters() if p.grad is not None]


def _total(tensors: list[Tensor]) -> float:
    return math.sqrt(sum(float(t.norm()) ** 2 for t in tensors))


def test_a_parameter_without_gradient_is_null_and_no_optimizer_means_no_lr() -> None:
    torch.manual_seed(0)
    net = Net(Spec("gru"))
    sink = MemorySink()
    with gatescope.watch(net, sink=sink) as w:
        net(*batches(Spec("gru"), 1, 0)[0])[0].backward()  # readout "output": final is unused
        w.step()
    row = sink.steps[0]
    assert row["param_grad_norms"]["final.weight"] is None and row["param_grad_norms"]["head.weight"] > 0
    assert row["lr"] is None and row["loss"] is None
    with pytest.raises(ValueError, match="loss must be one number"):
        gatescope.watch(net, sink=MemorySink()).step(loss=torch.ones(2))


# -- the probe schedule, the fixed probe, labels ----------------------------------------------


def test_probes_at_the_first_step_and_every_kth() -> None:
    spec = Spec("rnn_tanh")
    _, _, sink = train(spec, 10, watch={"every": 3, "itemize": "auto"})
    assert [f.step for _, f in sink.frames] == [1, 3, 6, 9]
    assert sink.frames[0][1].itemized is not None  # "auto": the first probe is itemized
    _, _, plain = train(spec, 4, watch={"every": 2, "itemize": False})
    assert [f.step for _, f in plain.frames] == [1, 2, 4]
    assert all(f.itemized is None and f.connectivity_itemized is None for _, f in plain.frames)


def test_a_fixed_probe_shows_its_input_with_the_weights_after_the_update() -> None:
    spec = Spec("lstm", layers=2, bidi=True, embed=True, readout="both")
    x, y, lengths = batches(spec, 1, 7)[0]
    probe = (x[:2], y[:2], lengths[:2])
    torch.manual_seed(0)
    net = Net(spec)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    sink = MemorySink()
    w = gatescope.watch(
        net, sink=sink, every=2, probe=probe, probe_loss=lambda out: 2 * out[0], labels=_decode, itemize=True
    )
    after: list[dict[str, Tensor]] = []
    for batch in batches(spec, 4, 0):
        opt.zero_grad()
        net(*batch)[0].backward()
        opt.step()
        w.step()
        after.append(_weights(net))
    w.close()
    assert [f.step for _, f in sink.frames] == [1, 2, 4]
    for _, frame in sink.frames:
        weights = after[frame.step - 1]
        assert frame.source == "fixed" and frame.tokens == _decode(x[0])
        fresh = Net(spec)
        fresh.load_state_dict(weights)
        assert frame.loss == pytest.approx(2 * float(fresh.eval()(*probe)[0].detach()))
        doubled = Step(weights, probe, None, 0.0)
        want = expected(replace(spec, B=2), doubled)
        check(frame, {k: 2 * v if k.startswith(("grad", "conn", "item")) else v for k, v in want.items()})


def _decode(ids: Tensor) -> list[str]:
    return ["abcdefg"[int(i)] for i in ids]


def test_labels_map_the_live_sample_to_tokens() -> None:
    spec = Spec("gru", embed=True)
    _, steps, sink = train(spec, 2, watch={"labels": _decode})
    for (_, frame), step in zip(sink.frames, steps, strict=True):
        assert frame.tokens == _decode(step.batch[0][0])
    _, _, long = train(spec, 1, watch={"labels": lambda ids: ["x" * 100] * len(ids)})
    assert long.frames[0][1].tokens == ["x" * 64] * spec.T  # at most 64 characters each
    _, _, wrong = train(spec, 1, watch={"labels": lambda ids: ["a", "b"]})
    frame = wrong.frames[0][1]
    assert frame.tokens is None and frame.notes == [
        "labels= gave 2 strings for this module's 5 steps: none are shown."
    ]


# -- what a frame says about itself -----------------------------------------------------------


def test_dropout_between_layers_is_said_in_the_frame() -> None:
    spec = Spec("lstm", layers=2, dropout=0.25)
    net, steps, sink = train(spec, 1, watch={})
    frame = sink.frames[0][1]
    assert frame.notes == ["nn.LSTM dropout=0.25 between layers: this frame is computed without dropout, "
                           "so layers above the first differ from training."]  # fmt: skip
    want = expected(replace(spec, dropout=0.0), steps[0])
    np.testing.assert_allclose(frame.h[0], want["h"][0], atol=1e-6)  # the first layer is exact
    net.eval()
    with gatescope.watch(net, sink=(evaluated := MemorySink())) as w:
        net(*batches(spec, 1, 0)[0])[0].backward()
        w.step()
    assert evaluated.frames[0][1].notes == []  # in eval mode the module applies no dropout


def test_a_module_called_twice_shows_its_last_call_and_says_so() -> None:
    torch.manual_seed(0)
    rnn = nn.GRU(I, H)
    sink = MemorySink()
    first, second = torch.randn(4, 2, I), torch.randn(6, 2, I)
    with gatescope.watch(rnn, sink=sink) as w:
        out1, h = rnn(first)
        out2, _ = rnn(second, h)
        with torch.no_grad():
            rnn(torch.randn(3, 2, I))  # a call without gradient replaces nothing
        (out1.sum() + out2.pow(2).sum()).backward()
        w.step()
    frame = sink.frames[0][1]
    np.testing.assert_array_equal(frame.inputs, second[:, 0].numpy())
    assert frame.notes == ["this module ran 2 times in this step: the frame shows its last call."]
    assert (
        frame.mask.tolist() == [1.0] * 6
        and sink.attach is not None
        and sink.attach["modules"][0]["path"] == ""
    )


def test_an_unbatched_call_and_a_step_without_backward() -> None:
    torch.manual_seed(0)
    rnn = nn.LSTM(I, H, num_layers=2)
    sink = MemorySink()
    with gatescope.watch(rnn, sink=sink, every=1) as w:
        x = torch.randn(5, I)  # (T, I): no batch dimension
        out, (h_n, _) = rnn(x)
        (out.sum() + h_n.sum()).backward()
        w.step()
        with torch.no_grad():
            rnn(x)
        w.step()
    graded, forward_only = (f for _, f in sink.frames)
    np.testing.assert_array_equal(graded.inputs, x.numpy())
    assert graded.grad_h.min() > 0 and graded.mask.tolist() == [1.0] * 5
    assert forward_only.mask.tolist() == [0.0] * 5 and "no gradient reached" in forward_only.notes[0]


# -- the watch itself -------------------------------------------------------------------------


def test_attach_json_describes_the_modules_and_parameters() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(2, 3), nn.LSTM(3, 4, batch_first=True))
            self.decoder = nn.GRU(4, 5, num_layers=2, bidirectional=True, dropout=0.1)

    model = Two()
    sink = MemorySink()
    gatescope.watch(model, sink=sink, every=5, name="two", probe_budget=0.05).close()
    attach = sink.attach
    assert attach is not None
    assert [m["path"] for m in attach["modules"]] == ["encoder.1", "decoder"]
    assert attach["modules"][1] == {
        "path": "decoder", "cell": "gru", "input_size": 4, "hidden_size": 5, "num_layers": 2,
        "bidirectional": True, "batch_first": False, "bias": True, "dropout": 0.1,
    }  # fmt: skip
    assert attach["parameters"]["encoder.0.weight"] == [3, 2] and len(attach["parameters"]) == 2 + 4 + 16
    assert attach["name"] == "two" and attach["every"] == 5 and attach["probe"] == "live"
    assert attach["probe_budget"] == 0.05 and attach["client"]["gatescope"] == gatescope.__version__
    assert attach["client"]["torch"] == torch.__version__ and attach["script"]
    only = MemorySink()
    gatescope.watch(model, sink=only, modules=[model.decoder]).close()
    assert only.attach is not None and [m["path"] for m in only.attach["modules"]] == ["decoder"]
    assert "storage_mb" not in attach  # unset: not sent, so a server without the field still attaches
    budgeted = MemorySink()
    gatescope.watch(model, sink=budgeted, storage_mb=64).close()
    assert budgeted.attach is not None and AttachCreate.model_validate(budgeted.attach).storage_mb == 64


def test_what_watch_refuses_it_refuses_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="proj_size=2 is not supported"):
        gatescope.watch(nn.LSTM(3, 4, proj_size=2), sink=MemorySink())
    with pytest.raises(ValueError, match=r"Linear holds no nn\.RNN, nn\.LSTM or nn\.GRU"):
        gatescope.watch(nn.Linear(2, 2), sink=MemorySink())
    with pytest.raises(ValueError, match="every must be a whole number >= 1"):
        gatescope.watch(nn.GRU(2, 2), sink=MemorySink(), every=0)
    with pytest.raises(ValueError, match="probe= needs probe_loss="):
        gatescope.watch(nn.GRU(2, 2), sink=MemorySink(), probe=torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match=r"modules\[0\] \(GRU\) is not part of the model"):
        gatescope.watch(nn.GRU(2, 2), sink=MemorySink(), modules=[nn.GRU(2, 2)])
    with pytest.raises(ValueError, match="probe_budget must be in"):
        gatescope.watch(nn.GRU(2, 2), sink=MemorySink(), probe_budget=0.9)
    with pytest.raises(ValueError, match="path= names a run file"):
        gatescope.watch(nn.GRU(2, 2), sink=MemorySink(), path="x.gsrun")


def test_close_removes_every_hook_and_ends_the_runs() -> None:
    model = Net(Spec("lstm", layers=2))
    sink = MemorySink()
    with pytest.raises(RuntimeError, match="boom"), gatescope.watch(model, sink=sink):
        raise RuntimeError("boom")
    assert sink.ended == ("failed", "RuntimeError: boom")
    assert not model._forward_pre_hooks and not model.rnn._forward_pre_hooks and not model.rnn._forward_hooks
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    w = gatescope.watch(model, sink=(stopped := MemorySink()))
    stopped.stop_requested = True
    assert w.should_stop and w.run_ids == [] and w.dropped_frames == 0
    w.close()
    w.close()  # a second close does nothing
    assert stopped.ended == ("stopped", None)
    with pytest.raises(RuntimeError, match=r"after watch\.close"):
        w.step()


def test_hooks_are_idle_off_probe_steps() -> None:
    """Between probe steps the hooks copy nothing (the capture stays empty)."""
    spec = Spec("gru")
    torch.manual_seed(0)
    net = Net(spec)
    w = gatescope.watch(net, sink=MemorySink(), every=5)
    data: Iterator[Batch] = iter(batches(spec, 3, 0))
    net(*next(data))[0].backward()
    assert w.captures[0].call is not None  # step 1 is probed
    w.step()
    net(*next(data))[0].backward()
    assert w.captures[0].call is None and w.captures[0].mode is None  # step 2 is not
    w.close()
    assert copy.copy(w.captures[0].call) is None


def test_the_sink_follows_server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatescope.runfile import FileSink, read_runfile
    from gatescope.transport import HttpSink
    from gatescope.watch import DEFAULT_SERVER, _sink, default_path

    monkeypatch.delenv("GATESCOPE_SERVER", raising=False)
    monkeypatch.setenv("GATESCOPE_TOKEN", "t0ken")
    http = _sink(DEFAULT_SERVER, None, None, None)
    assert isinstance(http, HttpSink) and http.server == DEFAULT_SERVER
    assert http._headers == {"Authorization": "Bearer t0ken"}
    monkeypatch.setenv("GATESCOPE_SERVER", "http://elsewhere:9000")
    assert isinstance(http := _sink(DEFAULT_SERVER, "mine", None, None), HttpSink)
    assert http.server == "http://elsewhere:9000" and http._headers == {"Authorization": "Bearer mine"}
    assert (
        isinstance(explicit := _sink("http://here:1", None, None, None), HttpSink)
        and explicit.server == "http://here:1"
    )
    with pytest.raises(ValueError, match="pass server=None with it"):
        _sink("http://here:1", None, "x.gsrun", None)
    name = default_path("my lstm/v2").name
    assert (
        name.startswith("gatescope-my-lstm-v2-")
        and name.endswith(".gsrun")
        and len(name) == len("gatescope-my-lstm-v2-20260101-120000.gsrun")
    )

    rnn = nn.GRU(I, H)
    with gatescope.watch(rnn, server=None, path=tmp_path / "run.gsrun", every=1) as w:
        assert isinstance(w.sink, FileSink) and w.path == tmp_path / "run.gsrun"
        out, _ = rnn(torch.randn(4, 2, I))
        out.sum().backward()
        w.step(loss=0.5)
    run = read_runfile(tmp_path / "run.gsrun")
    assert [s["step"] for s in run.steps] == [1] and len(run.frames) == 1 and run.end is not None
    assert run.attach["modules"][0]["cell"] == "gru" and run.problems == []


def test_a_call_longer_than_a_frame_has_no_frame_and_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.import_module("gatescope.watch"), "MAX_FRAME_T", 4)
    rnn = nn.RNN(I, H)
    sink = MemorySink()
    with gatescope.watch(rnn, sink=sink, every=1) as w:
        for T in (4, 5, 6):
            rnn(torch.randn(T, 2, I))[0].sum().backward()
            if T == 5:
                with pytest.warns(UserWarning, match=r"ran 5 steps, more than a frame holds \(4\)"):
                    w.step()
            else:
                w.step()  # warned once only
    assert [f.step for _, f in sink.frames] == [1] and len(sink.steps) == 3
