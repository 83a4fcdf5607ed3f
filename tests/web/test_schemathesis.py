"""Schemathesis over every operation of the OpenAPI schema: whatever the input, never a 5xx.

The app runs with its lifespan (real Storage and RunManager) in a TestClient; schemathesis calls
it in-process. Three finished runs are seeded straight into storage (trained a few steps here, in
this process; one with frames larger than a display frame) with one running attached run (steps
and a frame sent through the attached-run service), and about two thirds of the
generated run ids are swapped for theirs, so the per-run operations (probes, inspect, sample,
export, ...) see real data, not only 404s. The manager is given no slots, so the runs
schemathesis creates stay queued instead of training.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from starlette.testclient import TestClient

from app.main import create_app
from app.services.schemas import AttachCreate
from app.services.storage import Storage
from tests.services.test_attached import attached_frame, module, steps
from tests.web.conftest import LONG, make_app, seed_run

MAX_EXAMPLES = 12  # per operation: about 20 operations, well under a minute in all

schema = schemathesis.openapi.from_dict(create_app().openapi())  # the document only: nothing starts


@dataclasses.dataclass
class Target:
    session: ASGIClient
    run_ids: list[str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    app = make_app(tmp_path_factory.mktemp("schemathesis"), max_runs=1)
    with TestClient(app):  # runs the lifespan; schemathesis's own client then shares app.state
        manager = app.state.manager
        manager.max_runs = 0  # nothing schemathesis queues ever starts training
        storage: Storage = app.state.storage
        hello = {"cell": "lstm", "hidden_size": 4, "task": {"name": "char_lm"}, "steps": 5, "probe_every": 2}
        adding = {"cell": "gru", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}, "steps": 3}
        ids = [
            seed_run(storage, hello),
            seed_run(storage, adding),
            seed_run(storage, LONG),
            attached_run(app),
        ]
        # not entered: entering would start a second lifespan in schemathesis's own event loop
        session = ASGIClient(cast(Any, app))
        try:
            yield Target(session, ids)
        finally:
            session.close()
        assert app.state.manager is manager and manager.running() == []  # one lifespan, no training


def attached_run(app: Any) -> str:
    """A running attached run with two steps and a frame (its script 'sends' while schemathesis runs)."""
    m = module()
    (run,) = app.state.attached.attach(AttachCreate.model_validate({"modules": [m]})).runs
    app.state.attached.add_steps(run.id, steps(1, 2))
    app.state.attached.add_frame(run.id, attached_frame(run.id, m, 2).to_bytes())
    return str(run.id)


def aim(case: Any, run_ids: list[str]) -> None:
    """Point most cases at a seeded run (deterministically, so hypothesis can replay them)."""
    if "run_id" not in (case.path_parameters or {}) or case.method.upper() == "DELETE":
        return
    key = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    if key % 3:
        case.path_parameters["run_id"] = run_ids[key % len(run_ids)]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,
)
def test_no_operation_answers_a_server_error(case: Any, target: Target) -> None:
    aim(case, target.run_ids)
    response = case.call(session=target.session)
    case.validate_response(response, checks=[not_a_server_error])


def test_the_schema_covers_every_route() -> None:
    paths = set(create_app().openapi()["paths"])
    assert paths >= {
        "/api/health",
        "/api/catalog",
        "/api/runs",
        "/api/compare",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/stop",
        "/api/runs/{run_id}/metrics",
        "/api/runs/{run_id}/probes",
        "/api/runs/{run_id}/probes/{step}",
        "/api/runs/{run_id}/inspect",
        "/api/runs/{run_id}/sample",
        "/api/runs/{run_id}/checkpoint",
        "/api/runs/{run_id}/export",
        "/api/attach",
        "/api/runs/{run_id}/steps",
        "/api/runs/{run_id}/frames",
        "/api/runs/{run_id}/heartbeat",
        "/api/runs/{run_id}/end",
        "/api/import",
    }


def test_seeding_makes_complete_runs(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        config = {"cell": "rnn_tanh", "hidden_size": 4, "task": {"name": "adding"}, "steps": 2}
        run_id = seed_run(storage, config)
        record = storage.get_run(run_id)
        assert record is not None and record.status == "completed" and record.step == 2
        assert storage.probe_steps(run_id) == [0, 2] and storage.checkpoint(run_id) is not None
