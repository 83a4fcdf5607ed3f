"""Exporting a run: its metrics as CSV, and everything as one zip archive.

What this is: `metrics_csv(rows)` writes the per-step metrics (one column per StepMetrics field,
each parameter's gradient norm as its own `grad_norm.<parameter>` column); `write_export` writes
a zip of config.json, metrics.csv, interventions.json (the applied interventions, each with
its step: Storage.interventions), fork.json (a fork's link to its parent: {"parent", "step",
"changes"}, null for a run that is no fork), probes.npz (every stored probe frame at full resolution,
arrays named "<step>/<name>", float32) and checkpoint.pt (the torch.save bytes, when there are
weights: never for an attached run, whose weights live in its script), to a file, streaming
probe by probe so a long run never sits in memory whole. Built-in and attached runs export alike.

What this is not: a web route (the web layer streams the file) or storage (it reads through
`Storage`'s methods).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app.core.frames import Frame
from app.services.storage import Storage

BASE_COLUMNS = (
    "step",
    "loss",
    "metric",
    "grad_norm",
    "grad_norm_clipped",
    "clipped",
    "update_ratio",
    "lr",
    "seconds",
)


def metrics_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text with a header row; the parameter columns are those of the first row."""
    rows = list(rows)
    params: list[str] = []
    extra: list[str] = []
    if rows:
        params = list((rows[0].get("param_grad_norms") or {}).keys())
        known = {*BASE_COLUMNS, "param_grad_norms", "run_id"}
        extra = [k for k in rows[0] if k not in known]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*BASE_COLUMNS, *extra, *(f"grad_norm.{p}" for p in params)])
    for row in rows:
        norms = row.get("param_grad_norms") or {}
        writer.writerow(
            [
                *(_cell(row.get(c)) for c in BASE_COLUMNS),
                *(_cell(row.get(c)) for c in extra),
                *(_cell(norms.get(p)) for p in params),
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return "" if value is None else value


def write_export(
    storage: Storage, run_id: str, config: Mapping[str, Any], checkpoint: bytes | None, path: Path
) -> None:
    """Write the zip archive of run `run_id` to `path`."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config, indent=2))
        archive.writestr("metrics.csv", metrics_csv(storage.metrics(run_id)))
        interventions = [item.model_dump(mode="json") for item in storage.interventions(run_id)]
        archive.writestr("interventions.json", json.dumps(interventions, indent=2))
        record = storage.get_run(run_id)
        fork = record.fork.model_dump(mode="json") if record is not None and record.fork else None
        archive.writestr("fork.json", json.dumps(fork, indent=2))
        with tempfile.TemporaryFile() as npz:
            _write_probes(storage, run_id, npz)
            npz.seek(0)
            with archive.open(zipfile.ZipInfo("probes.npz"), "w", force_zip64=True) as member:
                while chunk := npz.read(1 << 20):
                    member.write(chunk)
        if checkpoint is not None:
            archive.writestr(zipfile.ZipInfo("checkpoint.pt"), checkpoint, compress_type=zipfile.ZIP_STORED)


def _write_probes(storage: Storage, run_id: str, out: Any) -> None:
    """An .npz (a zip of .npy files, as numpy.savez writes) of every stored frame of the run."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as npz:
        for step in storage.probe_steps(run_id):
            data = storage.probe(run_id, step)
            if data is None:  # deleted meanwhile
                continue
            for name, array in Frame.from_bytes(data).arrays.items():
                with npz.open(f"{step}/{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
