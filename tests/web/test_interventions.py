"""The lab bench's routes (app/web/interventions.py): pause and resume through the API, and the
409s with a sentence for runs that do not run."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from tests.web.conftest import SLOW, Served, make_app, wait_for


def test_pause_inspect_resume_and_stop(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, max_runs=1)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        queued = http.post("/api/runs", json=SLOW).json()["id"]
        refused = http.post(f"/api/runs/{queued}/pause")
        assert refused.status_code == 409
        assert refused.json()["detail"] == f"only a running or paused run can pause: run {queued} is queued"
        wait_for(http, run_id, statuses=frozenset({"running"}))
        assert http.post(f"/api/runs/{run_id}/pause").status_code == 200
        paused = wait_for(http, run_id, timeout=5, statuses=frozenset({"paused"}))
        time.sleep(0.3)
        assert http.get(f"/api/runs/{run_id}").json()["step"] == paused["step"]  # it waits
        assert http.get(f"/api/runs/{run_id}/metrics").status_code == 200  # and can be inspected
        assert http.get(f"/api/runs/{run_id}/checkpoint").status_code == 200
        assert http.post(f"/api/runs/{run_id}/resume").status_code == 200
        wait_for(http, run_id, timeout=5, statuses=frozenset({"running"}))
        assert http.post(f"/api/runs/{run_id}/stop").status_code == 200
        assert wait_for(http, run_id, timeout=5)["status"] == "stopped"
        http.post(f"/api/runs/{queued}/stop")


def test_a_finished_unknown_or_attached_run_cannot_pause(served: Served) -> None:
    finished = served.client.post(f"/api/runs/{served.hello}/pause")
    assert finished.status_code == 409
    detail = f"only a running or paused run can pause: run {served.hello} is completed"
    assert finished.json()["detail"] == detail
    assert served.client.post("/api/runs/nosuchrun/resume").status_code == 404
