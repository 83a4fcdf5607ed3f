"""Fixtures for the web tests: an app on a temporary data directory, served in-process.

`served` (session scope) is a TestClient of an app that has already trained two tiny runs to the
end, so the read-only tests share them: `hello` (char_lm "hello", LSTM) and `adding` (GRU).
`seed_run` writes a finished run straight into storage, trained in this process, with the frames
the worker would have sent (full and display bytes): for runs too large to train in a test.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from app.core.engine import StepMetrics, Trainer
from app.core.probes import ProbeFrame
from app.main import create_app
from app.services.records import RunRecord, utcnow
from app.services.schemas import FINISHED, RunCreate, to_train_config
from app.services.storage import Storage
from app.services.worker import checkpoint_bytes, frame_bytes
from app.settings import Settings

HELLO: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "char_lm", "corpus": "hello"},
    "batch_size": 4,
    "optimizer": {"name": "adam", "lr": 0.02},
    "steps": 40,
    "probe_every": 10,
}
ADDING: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 4,
    "task": {"name": "adding", "seq_len": 6},
    "batch_size": 8,
    "steps": 20,
    "probe_every": 5,
}
# a run that takes a while: for queue, stop and late-join tests
SLOW: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 10},
    "batch_size": 4,
    "steps": 100_000,
    "probe_every": 50,
}


# a run whose frames are larger than a display frame: 510 timesteps, 260 units
LONG: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 260,
    "task": {"name": "adding", "seq_len": 510},
    "batch_size": 2,
    "steps": 1,
    "probe_every": 0,
}


def seed_run(storage: Storage, config: dict[str, Any]) -> str:
    """A finished run with metrics, probe frames and a checkpoint, trained here in-process."""
    run = RunCreate.model_validate(config)
    record = RunRecord.new(f"seed{zlib.crc32(repr(config).encode()):08x}", run)
    storage.create_run(record)
    trainer = Trainer(to_train_config(run, threads=1))
    rows = []
    for event in trainer.events():
        if isinstance(event, StepMetrics):
            rows.append(dataclasses.asdict(event))
        elif isinstance(event, ProbeFrame):
            storage.add_probe(record.id, event.step, *frame_bytes(record.id, event))
    storage.add_steps(record.id, rows)
    storage.save_checkpoint(record.id, trainer.step, checkpoint_bytes(run, trainer))
    storage.update_run(record.id, status="completed", started_at=utcnow(), finished_at=utcnow())
    return record.id


def make_app(data_dir: Path, **settings: Any) -> FastAPI:
    return create_app(Settings(data_dir=data_dir, **{"max_runs": 2, **settings}))


def wait_for(
    client: TestClient, run_id: str, timeout: float = 60.0, statuses: frozenset[str] = FINISHED
) -> Any:
    """Poll GET /api/runs/{id} until its status is one of `statuses`; the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout} s"
        time.sleep(0.05)


@dataclass
class Served:
    client: TestClient
    hello: str
    adding: str


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A fresh app with its lifespan running (no runs yet)."""
    with TestClient(make_app(tmp_path)) as http:
        yield http


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with TestClient(make_app(tmp_path_factory.mktemp("served"))) as http:
        hello = http.post("/api/runs", json=HELLO).json()["id"]
        adding = http.post("/api/runs", json=ADDING).json()["id"]
        for run_id in (hello, adding):
            assert wait_for(http, run_id)["status"] == "completed"
        yield Served(http, hello, adding)
