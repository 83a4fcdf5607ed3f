"""docs/api.md, "Checkpoint layout of the modern cells": its tables and its plain PyTorch module
hold for the checkpoints the server writes.

The module's code block is taken from the document as written and executed; it loads the
checkpoint bytes `app.services.worker.checkpoint_bytes` makes of a trained run (the very bytes
`GET /api/runs/{id}/checkpoint` answers) and must give `net(x)` within 1e-5, for minGRU and
minLSTM at 1 and 2 layers and sLSTM at 1 and 2 layers with either forget gate, stabilised or not.
The tables must name every key of those checkpoints with its shape and the cell's GATES order.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from app.core.cells import GATES, CellName
from app.core.engine import Trainer
from app.services.schemas import RunCreate, SLSTMSpec, TaskSpec
from app.services.train_config import to_train_config
from app.services.worker import checkpoint_bytes

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
TITLE = "## Checkpoint layout of the modern cells"
H = 6  # hidden size of the runs here: distinct from every input and output size below


def section() -> str:
    text = DOC.read_text()
    start = text.index(f"\n{TITLE}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def loader() -> type[nn.Module]:
    """The ModernRNN class of the section's python block that defines it, executed as written."""
    blocks = re.findall(r"```python\n(.*?)```", section(), flags=re.DOTALL)
    (code,) = [b for b in blocks if "class ModernRNN(nn.Module)" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the documented code itself
    loaded: type[nn.Module] = namespace["ModernRNN"]
    return loaded


def tables() -> dict[str, dict[str, tuple[str, list[str]]]]:
    """Per subsection's name in backticks ("mingru", ..., "readout"): key -> (shape, row blocks)."""
    out: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for part in section().split("\n### ")[1:]:
        heading = part.splitlines()[0]
        named = re.search(r'`"(\w+)"`', heading)
        name = named.group(1) if named else heading.strip().lower().removeprefix("the ")
        rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \| ([^|]+?) \|$", part, flags=re.MULTILINE)
        if rows:
            out[name] = {key: (shape, [b.strip() for b in blocks.split(",")]) for key, shape, blocks in rows}
    return out


def trained(
    cell: CellName, layers: int, task: str, slstm: SLSTMSpec | None
) -> tuple[Trainer, dict[str, Any]]:
    """A run of `cell` after a few steps of training (no weight as it was drawn), and its
    checkpoint as the server writes it and a client loads it."""
    params = {"seq_len": 12} if task == "adding" else {"seq_len": 8, "n_symbols": 3}
    spec = TaskSpec(name=task, **params)  # type: ignore[arg-type]
    run = RunCreate(cell=cell, task=spec, hidden_size=H, num_layers=layers, slstm=slstm)
    tr = Trainer(to_train_config(run))
    for _ in range(5):
        assert tr.train_step() is not None
    checkpoint: dict[str, Any] = torch.load(io.BytesIO(checkpoint_bytes(run, tr)), weights_only=True)
    return tr, checkpoint


CASES = [
    ("mingru", 1, "adding", None),
    ("mingru", 2, "copy", None),
    ("minlstm", 1, "copy", None),
    ("minlstm", 2, "adding", None),
    *[
        ("slstm", layers, task, SLSTMSpec(forget=forget, stabilizer=stabilizer))
        for layers, task in ((1, "adding"), (2, "copy"))
        for forget in ("exp", "sigmoid")
        for stabilizer in (True, False)
    ],
    ("slstm", 1, "copy", None),  # the config's slstm left null: exp forget, stabilised
]


def _id(case: tuple[str, int, str, SLSTMSpec | None]) -> str:
    cell, layers, task, opts = case
    extra = "" if opts is None else f"-{opts.forget}-{'stab' if opts.stabilizer else 'nostab'}"
    return f"{cell}-L{layers}-{task}{extra}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_the_documented_module_gives_the_nets_outputs(
    case: tuple[CellName, int, str, SLSTMSpec | None],
) -> None:
    tr, checkpoint = trained(*case)
    net = loader()(checkpoint)
    x = tr.task.sample(4, torch.Generator().manual_seed(1)).inputs  # (B, T, I)
    with torch.no_grad():
        expected, _ = tr.net(x)  # (B, T, O): the training path (MinRNN's scan, SLSTM's fast path)
        got = net(x)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_comparison_tells_a_wrong_block_order() -> None:
    """Swap mingru's z and h̃ blocks in the checkpoint: the documented module no longer agrees."""
    tr, checkpoint = trained("mingru", 1, "adding", None)
    for key in ("weight_l0", "bias_l0"):
        z, h_tilde = checkpoint["state_dict"][key].chunk(2, dim=0)
        checkpoint["state_dict"][key] = torch.cat([h_tilde, z])
    x = tr.task.sample(4, torch.Generator().manual_seed(1)).inputs
    with torch.no_grad():
        assert (loader()(checkpoint)(x) - tr.net(x)[0]).abs().max() > 1e-3


def symbolic(size: int, layer: int, inputs: int, outputs: int) -> str:
    """A dimension as the tables write it: kH, H, I_l (layer 0: the task's input size) or O."""
    if layer == 0 and size == inputs:
        return "I_l"
    if size == outputs:
        return "O"
    assert size % H == 0, size
    return "H" if size == H else f"{size // H}H"


def shape_text(shape: torch.Size, layer: int, inputs: int, outputs: int) -> str:
    dims = [symbolic(s, layer, inputs, outputs) for s in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "slstm"])
def test_the_tables_name_every_key_its_shape_and_the_gates_order(cell: CellName) -> None:
    tr, checkpoint = trained(cell, 2, "copy", None)  # I = O = 10, H = 6
    documented = tables()
    inputs, outputs = tr.task.input_size, tr.task.output_size
    rows = documented[cell]
    expected_keys = {k.replace("{l}", str(layer)) for k in rows for layer in range(2)}
    assert set(checkpoint["state_dict"]) == expected_keys
    letters = {"z": "z", "i": "i", "f": "f", "o": "o", "h̃": "h_tilde"}
    for key, (shape, blocks) in rows.items():
        actual = checkpoint["state_dict"][key.replace("{l}", "0")].shape
        assert shape == shape_text(actual, 0, inputs, outputs), key
        assert [letters[b] for b in blocks] == list(GATES[cell]), key
        assert actual[0] == len(blocks) * H, key
    readout = documented["readout"]
    assert set(readout) == set(checkpoint["readout"])
    for key, (shape, _) in readout.items():
        assert shape == shape_text(checkpoint["readout"][key].shape, 1, inputs, outputs), key
