"""Weight surgery on a RecurrentNet between two steps: the lab bench's changes to the weights.

What this is: `set_forget_bias(net, value)` (the forget gate's total bias: LSTM's b_if + b_hf,
minLSTM's, sLSTM's) and
`rescale_recurrent(net, layer, radius)` (each gate's (H, H) block of W_hh of one layer, every
direction, scaled so that its spectral radius is `radius`) and `reinit_layer(net, layer, scheme,
gain, seed)` (every weight and bias of one layer drawn afresh as model.initialize draws them).
All check first (ValueError naming the bound) and change nothing on a bad value.

What this is not: initialisation (app.core.model.initialize) or the optimizer's state
(app.core.engine.Trainer.apply resets or keeps it).
"""

from __future__ import annotations

import torch

from app.core.cells import CHUNKS, WITHOUT_W_HH
from app.core.model import InitScheme, RecurrentNet, initialize, write_forget_bias


def set_forget_bias(net: RecurrentNet, value: float) -> None:
    """The forget gate's total bias = value in every layer and direction (model.write_forget_bias)."""
    write_forget_bias(net, value)


def rescale_recurrent(net: RecurrentNet, layer: int, radius: float) -> None:
    """Scale each gate block of W_hh in `layer` (all directions) to spectral radius `radius`."""
    _check_layer(net, layer)
    H, G = net.spec.hidden_size, CHUNKS[net.spec.cell]
    if net.spec.cell in WITHOUT_W_HH:
        raise ValueError(
            f"{net.spec.cell} has no recurrent weights W_hh to rescale: its gates read x_t alone"
        )
    names = (f"weight_hh_l{layer}", f"weight_hh_l{layer}_reverse")
    weights = [p for n, p in net.rnn.named_parameters() if n in names]
    blocks = torch.cat([w.detach().view(G, H, H) for w in weights])
    radii = torch.linalg.eigvals(blocks).abs().amax(dim=-1)
    if bool((radii == 0).any()):
        raise ValueError(f"a W_hh block of layer {layer} is zero: it has no spectral radius to rescale")
    with torch.no_grad():
        for i, w in enumerate(weights):
            w.view(G, H, H).mul_((radius / radii[i * G : (i + 1) * G]).view(G, 1, 1))


def reinit_layer(net: RecurrentNet, layer: int, scheme: InitScheme, gain: float, seed: int) -> None:
    """Draw the layer's weights and biases (all directions) afresh by `scheme` and `gain`, seeded."""
    _check_layer(net, layer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = RecurrentNet(net.spec)
        initialize(fresh, scheme, gain)
    drawn = dict(fresh.rnn.named_parameters())
    with torch.no_grad():
        for name, p in net.rnn.named_parameters():
            if name.endswith((f"_l{layer}", f"_l{layer}_reverse")):
                p.copy_(drawn[name])


def _check_layer(net: RecurrentNet, layer: int) -> None:
    if not 0 <= layer < net.spec.num_layers:
        raise ValueError(f"layer must be from 0 to {net.spec.num_layers - 1}")
