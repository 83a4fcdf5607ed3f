"""Exports: the metrics CSV and the zip archive of a run."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from app.core.frames import Frame
from app.core.probes import ProbeFrame
from app.services.export import metrics_csv, write_export
from app.services.records import RunRecord
from app.services.storage import Storage
from tests.services.test_inference import ADDING, trained


def test_metrics_csv_has_a_column_per_field_and_parameter() -> None:
    rows = [
        {"step": 1, "loss": 0.5, "metric": 0.1, "grad_norm": 2.0, "grad_norm_clipped": 1.0, "clipped": True,
         "update_ratio": 0.01, "lr": 0.003, "seconds": 0.002, "param_grad_norms": {"a": 1.5, "b": 0.5}},
        {"step": 2, "loss": 0.4, "metric": 0.2, "grad_norm": 0.5, "grad_norm_clipped": 0.5, "clipped": False,
         "update_ratio": 0.01, "lr": 0.003, "seconds": 0.002, "param_grad_norms": {"a": 0.25, "b": 0.75}},
    ]  # fmt: skip
    lines = metrics_csv(rows).splitlines()
    assert lines[0] == (
        "step,loss,metric,grad_norm,grad_norm_clipped,clipped,update_ratio,lr,seconds,grad_norm.a,grad_norm.b"
    )
    assert lines[1] == "1,0.5,0.1,2.0,1.0,1,0.01,0.003,0.002,1.5,0.5"
    assert lines[2].startswith("2,0.4,0.2,0.5,0.5,0,")
    assert metrics_csv([]).splitlines() == [lines[0].rsplit(",grad_norm.a", 1)[0]]


def test_write_export_holds_config_metrics_every_frame_and_the_checkpoint(tmp_path: Path) -> None:
    run, trainer, checkpoint = trained(ADDING, steps=1)
    frames: list[ProbeFrame] = [trainer.probe()]
    with Storage(tmp_path) as storage:
        record = RunRecord.new("r1", run)
        storage.create_run(record)
        fields = ("loss", "metric", "grad_norm", "grad_norm_clipped", "update_ratio", "lr", "seconds")
        row = dict.fromkeys(fields, 1.0)
        storage.add_steps("r1", [{**row, "step": 1, "clipped": False, "param_grad_norms": {"w": 1.0}}])
        for step, frame in ((0, frames[0]), (1, frames[0])):
            full = Frame.from_probe("r1", frame)
            storage.add_probe("r1", step, full.to_bytes(), full.pooled(max_t=2).to_bytes())
        path = tmp_path / "run.zip"
        write_export(storage, "r1", record.config, checkpoint, path)
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json")) == record.config
        assert archive.read("metrics.csv").decode().splitlines()[1].startswith("1,1.0,")
        npz = np.load(io.BytesIO(archive.read("probes.npz")))
        assert {"0/h", "1/h", "0/grad_h_last", "1/connectivity"} <= set(npz.files)
        # at full resolution, though storage has display frames pooled to 2 timesteps
        assert npz["0/h"].dtype == np.float32 and npz["0/h"].shape == frames[0].h.shape
        np.testing.assert_array_equal(npz["1/grad_h_last"], frames[0].grad_h_last)
        assert frames[0].h.shape[1] > 2  # so the display frames differ
        assert archive.read("checkpoint.pt") == checkpoint
