"""Step Jacobians of a recurrent stack: the theory of why a gradient vanishes or explodes.

What this is: `theory(cell, params, seqs)` reads what `app.core.probes.forward_traces` computed
for one sample and returns a `Theory`, per layer and direction:

- `jacobian_norm` (L, D, T): the spectral norm ||J_t||_2, exact (the largest singular value), of
  each step's Jacobian J_t = d s_t / d s_{t-1} of the direction's recurrent state s, where t-1 is
  the step before t in the direction's own time (t+1 in natural time for the reverse direction)
  and s_{-1} is the initial state. The state s is
    - vanilla RNN: h, so J_t = diag(phi'(a_t)) W_hh (H x H);
    - GRU: h, J_t = dh_t/dh_{t-1} through z, r and n (H x H);
    - LSTM: the pair (h, c), so J_t is the full 2H x 2H step Jacobian
      [[dh_t/dh_{t-1}, dh_t/dc_{t-1}], [dc_t/dh_{t-1}, dc_t/dc_{t-1}]];
    - minGRU, minLSTM: h, and J_t = diag(a_t) (a_t = 1 - z_t, or f'_t), its norm max_j a_t,j
      (app.core.minrnn.step_norms): no W_hh, so no spectra, and a note says so;
    - sLSTM: (h, c, n) with the stabiliser m held constant (h does not depend on it), 3H x 3H
      (app.core.slstm.step_norms); its W_hh is the recurrent R, blocks z, i, f, o.
  Backprop through time multiplies these: ||d s_T / d s_t|| <= prod_{k=t+1..T} ||J_k||.
- `cell_path_mean`, `cell_path_max` (L, D, T), LSTM: the cell path dc_t/dc_{t-1} = diag(f_t),
  the forget gate's mean and max over the direction's units;
- `w_hh_radius` (L, D, G) and `w_hh_singular` (L, D, G, K): each H x H gate block of W_hh
  (torch.nn's order: i, f, g, o; r, z, n; one block for a vanilla RNN): its spectral radius
  (largest |eigenvalue|) and its K = min(TOP_SINGULAR, H) largest singular values, descending.

`step_jacobians` forms the Jacobians themselves (tests hold them to torch.func.jacrev on
`app.core.cells.step`). Norms come from the largest eigenvalue of J J^T (symmetric, so
eigvalsh: about half the time of an SVD), formed from the Jacobian's factors (`step_grams`) a
chunk of timesteps at a time; eigvalsh is most of the time left. That costs about T n^3 per
layer and direction (n the state size): when the stack's L D T n^3 exceeds MAX_JACOBIAN_WORK
the norms are left out (None) and `Theory.notes` says so, rather than a probe taking minutes or
reporting an inexact number; so are the W_hh spectra (float64: all eigenvalues of each block,
about 10 H^3, most of it, and the top singular values from the eigenvalues of W W^T) when the
stack's L D G H^3 exceeds MAX_SPECTRA_WORK. Below that bound the spectra still cost more than the
rest of a probe for a large net (a 2-layer LSTM of H=256: 0.22 s against 0.02 s), and they only
change as the weights do, so `spectra_every(...)` spaces them out: a frame carries them in every
k-th probe, k = ceil(L D G H^3 / SPECTRA_WORK_PER_PROBE) (1 up to one LSTM layer of H=101, 32 for
that 2-layer LSTM of H=256), and `theory(..., spectra=False)` leaves them out of the others with
a note saying how often they come.

What this is not: part of training or of the gradient norms (app.core.probes); it reads the
weights and the traces and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.core import minrnn, slstm
from app.core.cells import (
    CHUNKS,
    DEFAULT_OPTIONS,
    CellName,
    CellOptions,
    TorchCell,
    Weights,
    is_torch_cell,
    layer_weights,
)

TOP_SINGULAR = 8  # singular values of each W_hh block in a frame
CHUNK_FLOATS = 2**23  # Jacobian entries formed at once (32 MB of float32)
MAX_JACOBIAN_WORK = 2**31  # L * D * T * n^3 at most (about 0.3 s on one core; LSTM H=128: T <= 128)
MAX_SPECTRA_WORK = 2**28  # L * D * G * H^3 at most (about 0.25 s on one core; one LSTM layer: H <= 406)
SPECTRA_WORK_PER_PROBE = 2**22  # L * D * G * H^3 spent per probe on average (about 7 ms on one core)

Array = NDArray[np.float32]
Seqs = list[list[dict[str, Tensor]]]  # as app.core.probes: [layer][direction] name -> (T, H)


@dataclass(frozen=True)
class Theory:
    """The theory arrays of one frame (names as in the frame, docs/protocol.md)."""

    jacobian_norm: Array | None  # (L, D, T); None above MAX_JACOBIAN_WORK
    cell_path_mean: Array | None  # (L, D, T), LSTM
    cell_path_max: Array | None  # (L, D, T), LSTM
    w_hh_radius: Array | None  # (L, D, G); None above MAX_SPECTRA_WORK
    w_hh_singular: Array | None  # (L, D, G, K); None above MAX_SPECTRA_WORK
    notes: tuple[str, ...] = ()  # the sentences a frame carries for what is left out


def spectra_every(cell: CellName, num_layers: int, directions: int, hidden_size: int) -> int:
    """In every how many probes a frame of this stack carries the W_hh spectra (1: all)."""
    return _spectra_every(num_layers * directions * CHUNKS[cell] * hidden_size**3)


def _spectra_every(work: int) -> int:
    """`spectra_every` of a stack whose spectra cost `work` (L D G H^3)."""
    return max(1, -(-work // SPECTRA_WORK_PER_PROBE))


STATE_WIDTH: dict[CellName, int] = {"lstm": 2, "slstm": 3}  # the recurrent state s in units of H
NO_W_HH = (
    "{cell} has no recurrent weights W_hh: its gates read x_t alone, so there is no W_hh spectrum, and "
    "its step Jacobian is diag(a_t), the share a_t of h_(t-1) each unit keeps (the cell path)."
)


@torch.no_grad()
def theory(
    cell: CellName,
    params: Mapping[str, Tensor],
    seqs: Seqs,
    spectra: bool = True,
    options: CellOptions = DEFAULT_OPTIONS,
) -> Theory:
    """The `Theory` of one sample from its traces (`seqs`) and the stack's weights (`params`);
    `spectra` False: without the W_hh spectra (a probe between two that carry them).

    The modern cells (one way): minGRU and minLSTM have J_t = diag(a_t) (`minrnn.step_norms`)
    and no W_hh; their cell path is a_t. sLSTM's state is s = (h, c, n) with the stabiliser m
    held constant, J_t 3H x 3H (`slstm.step_norms`), its cell path the stabilised forget gate f'_t
    and its W_hh the recurrent weights R (blocks z, i, f, o)."""
    if not is_torch_cell(cell):
        return _modern_theory(cell, params, seqs, spectra, options)
    T, H = seqs[0][0]["h"].shape
    n = 2 * H if cell == "lstm" else H
    work = len(seqs) * len(seqs[0]) * T * n**3
    exact = work <= MAX_JACOBIAN_WORK
    spectra_work = len(seqs) * len(seqs[0]) * CHUNKS[cell] * H**3
    spectral = spectra and spectra_work <= MAX_SPECTRA_WORK
    norms, radius, singular, f_mean, f_max = [], [], [], [], []
    for layer, dirs in enumerate(seqs):
        ws = [layer_weights(params, layer, reverse=d == 1) for d in range(len(dirs))]
        if exact:
            norms.append([step_norms(cell, ws[d], seq, d == 1) for d, seq in enumerate(dirs)])
        if spectral:
            blocks = [w_hh_spectra(cell, w.w_hh) for w in ws]
            radius.append([r for r, _ in blocks])
            singular.append([s for _, s in blocks])
        if cell == "lstm":
            f_mean.append([seq["f"].mean(dim=-1) for seq in dirs])
            f_max.append([seq["f"].amax(dim=-1) for seq in dirs])
    lstm = cell == "lstm"
    return Theory(
        jacobian_norm=_stacked(norms) if exact else None,
        cell_path_mean=_stacked(f_mean) if lstm else None,
        cell_path_max=_stacked(f_max) if lstm else None,
        w_hh_radius=_stacked(radius) if spectral else None,
        w_hh_singular=_stacked(singular) if spectral else None,
        notes=(
            *([] if exact else [_norms_left_out(T, n, work)]),
            *([] if spectral else [_spectra_left_out(H, spectra_work, spectra)]),
        ),
    )


def _modern_theory(
    cell: CellName, params: Mapping[str, Tensor], seqs: Seqs, spectra: bool, options: CellOptions
) -> Theory:
    T, H = seqs[0][0]["h"].shape
    n = STATE_WIDTH.get(cell, 1) * H
    work = len(seqs) * T * n**3
    exact = cell != "slstm" or work <= MAX_JACOBIAN_WORK  # diag(a_t): no eigenvalues to find
    path = "f" if cell == "slstm" else "a"
    norms, radius, singular = [], [], []
    for layer, dirs in enumerate(seqs):
        seq = dirs[0]
        if cell == "slstm":
            if exact:
                o = options
                norms.append([slstm.step_norms(params, layer, seq, forget=o.forget, stabilizer=o.stabilizer)])
        else:
            assert cell in ("mingru", "minlstm")
            norms.append([minrnn.step_norms(cell, params, layer, seq)])
    spectra_work = len(seqs) * CHUNKS[cell] * H**3
    spectral = cell == "slstm" and spectra and spectra_work <= MAX_SPECTRA_WORK
    if spectral:
        for layer in range(len(seqs)):
            r, sv = w_hh_spectra(cell, params[f"weight_hh_l{layer}"])
            radius.append([r])
            singular.append([sv])
    notes: list[str] = []
    if not exact:
        notes.append(_norms_left_out(T, n, work))
    if cell != "slstm":
        notes.append(NO_W_HH.format(cell={"mingru": "minGRU", "minlstm": "minLSTM"}[cell]))
    elif not spectral:
        notes.append(_spectra_left_out(H, spectra_work, spectra))
    return Theory(
        jacobian_norm=_stacked(norms) if exact else None,
        cell_path_mean=_stacked([[dirs[0][path].mean(dim=-1)] for dirs in seqs]),
        cell_path_max=_stacked([[dirs[0][path].amax(dim=-1)] for dirs in seqs]),
        w_hh_radius=_stacked(radius) if spectral else None,
        w_hh_singular=_stacked(singular) if spectral else None,
        notes=tuple(notes),
    )


def _norms_left_out(T: int, n: int, work: int) -> str:
    return (
        f"The step Jacobian norms are left out of this frame: {T} steps of a {n}-unit state in every "
        f"layer and direction cost {work:.2g} (L x D x T x n^3), more than the "
        f"{MAX_JACOBIAN_WORK:.2g} a probe spends on them."
    )


def _spectra_left_out(H: int, work: int, asked: bool) -> str:
    if not asked:
        k = _spectra_every(work)
        return (
            f"The spectra of W_hh come with one probe in {k} of this net, not this one: its {H} x {H} "
            f"blocks cost {work:.2g} (L x D x G x H^3), and a probe spends {SPECTRA_WORK_PER_PROBE:.2g} "
            "on them on average."
        )
    return (
        f"The spectra of W_hh are left out of this frame: its {H} x {H} blocks cost {work:.2g} "
        f"(L x D x G x H^3), more than the {MAX_SPECTRA_WORK:.2g} a probe spends on them."
    )


def step_norms(cell: TorchCell, w: Weights, seq: Mapping[str, Tensor], reverse: bool) -> Tensor:
    """||J_t||_2 of every step of one direction (T,), natural time, computed in chunks of t: the
    square root of J_t J_t^T's largest eigenvalue. A ReLU step's J J^T is zero off its active
    units (h_t > 0), so only that block goes to eigvalsh (about an eighth of the work at half
    the units active)."""
    T, H = seq["h"].shape
    n = 2 * H if cell == "lstm" else H
    size = max(1, CHUNK_FLOATS // (n * n))
    out = []
    for start in range(0, T, size):
        steps = slice(start, min(T, start + size))
        gram = step_grams(cell, w, seq, reverse, steps)
        if cell == "rnn_relu":
            gram = _active_block(gram, seq["h"][steps] > 0)
        top = torch.linalg.eigvalsh(gram)[:, -1] if gram.shape[-1] else gram.new_zeros(len(gram))
        out.append(top.clamp(min=0).sqrt())
    return torch.cat(out)


def _active_block(gram: Tensor, active: Tensor) -> Tensor:
    """Each step's J J^T (t, H, H) cut to its active rows and columns, those first, then as many
    inactive ones (zero rows and columns) as the most active step of the chunk has more: (t, k, k),
    the same largest eigenvalue."""
    k = int(active.sum(dim=-1).max())
    order = torch.argsort((~active).to(torch.uint8), dim=-1, stable=True)[:, :k]  # active first
    rows = torch.gather(gram, 1, order[..., None].expand(-1, -1, gram.shape[-1]))
    return torch.gather(rows, 2, order[:, None, :].expand(-1, k, -1))


def step_grams(
    cell: TorchCell, w: Weights, seq: Mapping[str, Tensor], reverse: bool, steps: slice | None = None
) -> Tensor:
    """J_t J_t^T (t, n, n) of `step_jacobians`, formed from its factors where that is cheaper: a
    vanilla J = diag(d_t) W gives diag(d_t) W W^T diag(d_t) (W W^T once, no multiply a step); an
    LSTM's J = [C, E], C (2H x H) dense and E two stacked diagonals, gives C C^T + E E^T (half
    J J^T's multiply, and no 2H x 2H Jacobian assembled)."""
    if cell in ("rnn_tanh", "rnn_relu"):  # J = diag(d) W: J J^T = diag(d) W W^T diag(d)
        d = _rnn_slope(cell, seq["h"][steps if steps is not None else slice(None)])
        return d[:, :, None] * (w.w_hh @ w.w_hh.T) * d[:, None, :]
    if cell == "gru":
        J = step_jacobians(cell, w, seq, reverse, steps)
        return J @ J.mT
    C, qf, f = _lstm_factors(w, seq, reverse, steps if steps is not None else slice(None))
    H = f.shape[-1]
    gram = C @ C.mT
    gram.diagonal(dim1=-2, dim2=-1).add_(torch.cat([qf * qf, f * f], dim=-1))
    gram[:, :H, H:].diagonal(dim1=-2, dim2=-1).add_(qf * f)
    gram[:, H:, :H].diagonal(dim1=-2, dim2=-1).add_(qf * f)
    return gram


def step_jacobians(
    cell: TorchCell, w: Weights, seq: Mapping[str, Tensor], reverse: bool, steps: slice | None = None
) -> Tensor:
    """J_t = d s_t / d s_{t-1} of one direction for the timesteps `steps` (natural time; all if
    None): (t, n, n), n = H (vanilla, GRU) or 2H (LSTM: s = (h, c), h first)."""
    sl = steps if steps is not None else slice(None)
    h = seq["h"]
    blocks = w.w_hh.chunk(CHUNKS[cell], dim=0)  # G x (H, H)
    if cell in ("rnn_tanh", "rnn_relu"):
        return _rows(_rnn_slope(cell, h[sl]), blocks[0])
    if cell == "gru":
        prev = _previous(h, seq["h0"], reverse)[sl]  # (t, H) the state each step read
        r, z, n, hn = seq["r"][sl], seq["z"][sl], seq["n"][sl], seq["hn"][sl]
        w_r, w_z, w_n = blocks
        dn = (1 - z) * (1 - n**2)  # dh/dn times dn/da_n
        J = _rows((prev - n) * z * (1 - z), w_z)
        J.addcmul_((dn * r)[..., None], w_n).addcmul_((dn * hn * r * (1 - r))[..., None], w_r)
        J.diagonal(dim1=-2, dim2=-1).add_(z)
        return J
    C, qf, f = _lstm_factors(w, seq, reverse, sl)
    return torch.cat([C, torch.cat([torch.diag_embed(qf), torch.diag_embed(f)], dim=-2)], dim=-1)


def _lstm_factors(
    w: Weights, seq: Mapping[str, Tensor], reverse: bool, sl: slice
) -> tuple[Tensor, Tensor, Tensor]:
    """An LSTM's step Jacobian J = [C, [diag(q f); diag(f)]]: C = [dh_t/dh_{t-1}; dc_t/dh_{t-1}]
    (t, 2H, H), q f = dh_t/dc_{t-1} and f = dc_t/dc_{t-1} (t, H), q = dh_t/dc_t."""
    i, f, g, o, c = seq["i"][sl], seq["f"][sl], seq["g"][sl], seq["o"][sl], seq["c"][sl]
    c_prev = _previous(seq["c"], seq["c0"], reverse)[sl]
    w_i, w_f, w_g, w_o = w.w_hh.chunk(4, dim=0)
    tc = torch.tanh(c)
    q = o * (1 - tc**2)  # dh_t/dc_t
    t, H = f.shape
    C = f.new_empty((t, 2 * H, H))
    dh_dh, dc_dh = C[:, :H], C[:, H:]
    torch.mul((c_prev * f * (1 - f))[..., None], w_f, out=dc_dh)
    dc_dh.addcmul_((g * i * (1 - i))[..., None], w_i).addcmul_((i * (1 - g**2))[..., None], w_g)
    torch.mul((tc * o * (1 - o))[..., None], w_o, out=dh_dh)
    dh_dh.addcmul_(q[..., None], dc_dh)
    return C, q * f, f


def w_hh_spectra(cell: CellName, w_hh: Tensor) -> tuple[Tensor, Tensor]:
    """Each gate block of W_hh: its spectral radius (G,) and its top singular values (G, K)."""
    blocks = torch.stack(w_hh.chunk(CHUNKS[cell], dim=0)).double()  # (G, H, H)
    radius = torch.linalg.eigvals(blocks).abs().amax(dim=-1)
    k = min(TOP_SINGULAR, blocks.shape[-1])  # the top k of W W^T's eigenvalues are sigma^2
    squared = torch.linalg.eigvalsh(blocks @ blocks.mT)[:, -k:].flip(-1)
    return radius.float(), squared.clamp(min=0).sqrt().float()


def _rnn_slope(cell: TorchCell, h: Tensor) -> Tensor:
    """phi'(a_t) of a vanilla step from its output h_t = phi(a_t): 1 - h^2 (tanh), h > 0 (ReLU)."""
    return 1 - h**2 if cell == "rnn_tanh" else (h > 0).to(h)


def _previous(x: Tensor, x0: Tensor, reverse: bool) -> Tensor:
    """The state each step read, (T, H) in natural time: x_{t-1} (x_{t+1} reversed), x0 first."""
    return torch.cat([x[1:], x0[None]]) if reverse else torch.cat([x0[None], x[:-1]])


def _rows(scale: Tensor, block: Tensor) -> Tensor:
    """diag(scale_t) @ block for every t: (t, H) and (H, H) -> (t, H, H)."""
    return scale[..., None] * block


def _stacked(values: list[list[Tensor]]) -> Array:
    """[layer][direction] tensors of one shape -> (L, D, ...) finite float32."""
    a = torch.stack([torch.stack(dirs) for dirs in values]).float()
    return np.asarray(torch.nan_to_num(a, nan=0.0).numpy(), dtype=np.float32)
