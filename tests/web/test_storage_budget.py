"""The storage budget through the API: RunCreate.storage_mb's bounds, RunPublic's budget and bytes,
and a disk below the free-space floor refusing new runs (built-in, attached, imported) with a 507
while finished runs stay readable: their API, page and export."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.services.schemas import LIMITS
from app.services.storage import Storage
from tests.services.test_attached import module, write_runfile
from tests.web.conftest import make_app, seed_run, wait_for

ADDING = {"cell": "gru", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}, "steps": 3}


def test_a_run_says_its_budget_and_bytes_and_the_budget_is_bounded(client: TestClient) -> None:
    for bad in (0, LIMITS.storage_mb + 1):
        answer = client.post("/api/runs", json={**ADDING, "storage_mb": bad})
        assert answer.status_code == 422, answer.text
        assert str(1 if bad == 0 else LIMITS.storage_mb) in answer.text
    run = client.post("/api/runs", json={**ADDING, "storage_mb": 3}).json()
    default = client.post("/api/runs", json=ADDING).json()
    assert (run["storage_mb"], default["storage_mb"]) == (3, 256)  # GATESCOPE_RUN_STORAGE_MB's default
    done = wait_for(client, run["id"])
    assert done["status"] == "completed" and done["storage_bytes"] > 0 and done["notes"] == []
    assert client.get("/api/catalog").json()["limits"]["storage_mb"] == LIMITS.storage_mb


def test_a_full_disk_refuses_new_runs_and_leaves_finished_runs_readable(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        finished = seed_run(storage, {**ADDING, "probe_every": 1})
        storage.add_probe(finished, 3, storage.probe(finished, 3) or b"", None, b"state")  # a fork point
    with TestClient(make_app(tmp_path, min_free_mb=10**12)) as client:  # a floor no disk reaches
        for path, body in (
            ("/api/runs", ADDING),
            ("/api/compare", {"config": ADDING}),
            ("/api/groups", {"runs": [{"name": "a", "config": ADDING}]}),
            (f"/api/runs/{finished}/fork", {"step": 3}),
        ):
            answer = client.post(path, json=body)
            assert answer.status_code == 507, (path, answer.text)
            detail = answer.json()["detail"]
            assert detail.startswith("no new run can start: the disk holding") and "MB free, below" in detail
        assert client.get("/api/runs").json()["total"] == 1  # nothing half-stored
        run = client.get(f"/api/runs/{finished}").json()
        assert run["status"] == "completed" and run["storage_bytes"] > 0
        assert client.get(f"/api/runs/{finished}/probes").json() == [0, 1, 2, 3]
        assert client.get(f"/api/runs/{finished}/probes/3").status_code == 200
        flow = client.get(f"/api/runs/{finished}/gradflow").json()
        assert flow["steps"] == [0, 1, 2, 3]
        assert client.get(f"/runs/{finished}").status_code == 200  # its page
        export = client.get(f"/api/runs/{finished}/export")
        assert export.status_code == 200 and export.content[:2] == b"PK"
        assert client.get(f"/api/runs/{finished}/metrics?format=csv").status_code == 200


def test_a_full_disk_refuses_attach_and_import_with_the_same_sentence(tmp_path: Path) -> None:
    data = write_runfile(tmp_path / "run.gsrun", [module()])
    with TestClient(make_app(tmp_path / "data", min_free_mb=10**12)) as client:
        attach = client.post("/api/attach", json={"name": "mine", "modules": [module()]})
        imported = client.post("/api/import", content=data)
        for answer in (attach, imported):
            assert answer.status_code == 507, answer.text
            detail = answer.json()["detail"]
            assert detail.startswith("no new run can start: the disk holding") and "MB free, below" in detail
        assert client.get("/api/runs").json()["total"] == 0  # nothing stored
