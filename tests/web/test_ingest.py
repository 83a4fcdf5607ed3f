"""The ingest endpoints from a real client: an attached run is, to every read of the API, the same
thing as a built-in run; bad input is a 4xx with a sentence and leaves nothing stored; stop, end,
import (HTTP and `python -m app import` against a live server), limits and the token.

The central test mirrors a built-in run: it trains one in-process (seed_run), then sends its very
steps and frames as an attached run of the same module (frames without the task's targets and
outputs, source "live"; steps without the task's metric) and compares every read of the two.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from app.core.frames import MAX_FRAME_BYTES, Frame
from app.services.handles import SHUTDOWN_ERROR
from app.services.storage import Storage
from app.web.security import MAX_BODY_BYTES, body_limit
from tests.live_server import REPO_ROOT, serve
from tests.services.test_attached import attached_frame, module, write_runfile
from tests.web.conftest import ADDING, LONG, make_app, seed_run
from tests.web.test_ws import Stream

STEP = {"step": 1, "loss": 0.5, "grad_norm": 1.0, "grad_norm_clipped": 1.0, "clipped": False, "lr": 0.01}


def attach(client: TestClient, *modules: dict[str, Any], **fields: Any) -> list[str]:
    answer = client.post(
        "/api/attach", json={"name": "mine", "script": "train.py", **fields, "modules": list(modules)}
    )
    assert answer.status_code == 201, answer.text
    return [run["id"] for run in answer.json()["runs"]]


def as_attached(data: bytes, run_id: str) -> bytes:
    """A built-in run's stored frame as the attached run of the same module sends it."""
    frame = Frame.from_bytes(data)
    arrays = {k: v for k, v in frame.arrays.items() if k not in ("targets", "outputs")}
    return Frame({**frame.header, "run_id": run_id, "source": "live"}, arrays).to_bytes()


def _without(frame_json: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in frame_json.items() if k not in keys}


# -- the same thing as a built-in run ------------------------------------------------------------


@pytest.mark.parametrize("config", [ADDING, LONG], ids=["adding", "long"])
def test_an_attached_run_reads_back_like_the_built_in_run_it_mirrors(
    client: TestClient, config: dict[str, Any]
) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    built = seed_run(storage, config)
    m = {**module(config["cell"], 1, False, config["hidden_size"]), "path": "encoder.rnn"}
    (run,) = attach(client, m)
    rows = client.get(f"/api/runs/{built}/metrics").json()
    sent = [{**row, "metric": None} for row in rows]
    for start in range(0, len(sent), 7):  # in batches, as the client sends them
        reply = client.post(f"/api/runs/{run}/steps", json={"steps": sent[start : start + 7]})
        assert (
            reply.status_code == 200 and reply.json()["step"] == sent[min(start + 6, len(sent) - 1)]["step"]
        )
    steps = client.get(f"/api/runs/{built}/probes").json()
    for step in steps:
        full = client.get(f"/api/runs/{built}/probes/{step}").content
        reply = client.post(f"/api/runs/{run}/frames", content=as_attached(full, run))
        assert reply.status_code == 200, reply.text
    assert reply.json() == {"run_id": run, "step": rows[-1]["step"], "frames": len(steps), "stop": False}

    public = client.get(f"/api/runs/{run}").json()
    assert (public["kind"], public["status"], public["step"], public["steps"]) == (
        "attached",
        "running",
        rows[-1]["step"],
        rows[-1]["step"],
    )
    assert public["config"]["module"] == "encoder.rnn" and public["config"]["script"] == "train.py"
    listed = {r["id"]: r for r in client.get("/api/runs").json()["items"]}
    brief = {k: v for k, v in public["config"].items() if k != "parameters"}  # a summary: no shapes
    # a summary names the parent, not the lineage, storage or where the run trained
    only_public = ("fork", "forks", "storage_mb", "storage_bytes", "notes", "executor", "node")
    summary = {k: v for k, v in public.items() if k not in only_public}
    summary |= {"config": brief, "parent": None}
    assert listed[run] == summary and listed[built]["kind"] == "built-in"

    assert client.get(f"/api/runs/{run}/metrics").json() == sent
    csv_built = client.get(f"/api/runs/{built}/metrics?format=csv").text.splitlines()
    csv_run = client.get(f"/api/runs/{run}/metrics?format=csv").text.splitlines()
    assert csv_run[0] == csv_built[0] and len(csv_run) == len(csv_built)
    assert client.get(f"/api/runs/{run}/probes").json() == steps

    for resolution in ("full", "display"):
        for step in steps:
            url = f"/probes/{step}?format=json&resolution={resolution}"
            mine, theirs = (
                client.get(f"/api/runs/{run}{url}").json(),
                client.get(f"/api/runs/{built}{url}").json(),
            )
            assert (mine["targets"], mine["outputs"], mine["source"]) == (None, None, "live")
            assert _without(mine, "targets", "outputs", "source") == _without(
                theirs, "targets", "outputs", "source"
            )
    latest = Frame.from_bytes(client.get(f"/api/runs/{run}/probes/latest?resolution=display").content)
    assert latest.header["run_id"] == run and latest.step == steps[-1]
    if config is LONG:
        assert latest.header["pool"] == {"T": 510, "units": 260, "t_width": 2, "unit_width": 2}

    for kind in ("last", "total"):
        mine, theirs = (client.get(f"/api/runs/{r}/gradflow?kind={kind}").json() for r in (run, built))
        assert mine == theirs and mine["steps"] == steps
    assert (
        client.get(f"/api/sparklines?ids={run},{built}").json()[run]
        == client.get(f"/api/sparklines?ids={built}").json()[built]
    )

    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run}/export").content)) as archive:
        names = {"config.json", "metrics.csv", "interventions.json", "fork.json", "probes.npz"}  # no weights
        assert set(archive.namelist()) == names
        assert json.loads(archive.read("config.json"))["module"] == "encoder.rnn"
        npz = np.load(io.BytesIO(archive.read("probes.npz")))
        assert {f"{steps[-1]}/h", f"{steps[-1]}/grad_h_last"} <= set(npz.files)
        assert not any(name.endswith(("/targets", "/outputs")) for name in npz.files)

    with client.websocket_connect(f"/ws/runs/{run}") as ws:
        snapshot = json.loads(ws.receive_text())
        probe = Frame.from_bytes(ws.receive_bytes())
    assert snapshot["type"] == "snapshot" and snapshot["metrics"] == sent and snapshot["probe_steps"] == steps
    assert (
        probe.step == steps[-1]
        and probe.to_bytes() == client.get(f"/api/runs/{run}/probes/latest?resolution=display").content
    )


def test_a_live_attached_run_streams_like_a_built_in_one(client: TestClient) -> None:
    m = module("gru", layers=1, bidi=False)
    (run,) = attach(client, m)
    with client.websocket_connect(f"/ws/runs/{run}") as ws:
        snapshot = json.loads(ws.receive_text())
        assert snapshot["run"]["status"] == "running" and snapshot["metrics"] == []
        client.post(f"/api/runs/{run}/steps", json={"steps": [STEP, {**STEP, "step": 2}]})
        client.post(f"/api/runs/{run}/frames", content=attached_frame(run, m, 2).to_bytes())
        ended = client.post(
            f"/api/runs/{run}/end", json={"status": "completed", "error": None, "dropped_frames": 0}
        )
        assert ended.status_code == 200 and ended.json()["status"] == "completed"
        stream = Stream().read(ws)
    assert [s["step"] for m in stream.of("step") for s in m["steps"]] == [1, 2]
    assert [m["frame"].step for m in stream.of("probe")] == [2]
    assert stream.messages[-1]["type"] == "end" and stream.messages[-1]["run"]["status"] == "completed"
    assert stream.close_code == 1000


def test_built_in_only_tools_explain_themselves_on_an_attached_run(client: TestClient) -> None:
    (run,) = attach(client, module())
    sentence = f"run {run} is attached: its weights live in your script, not on this server"
    for method, path, body in [
        ("GET", "checkpoint", None),
        ("POST", "inspect", {"text": "hello"}),
        ("POST", "sample", {"prime": "h", "length": 5}),
        ("GET", "task", None),
    ]:
        answer = client.request(method, f"/api/runs/{run}/{path}", json=body)
        assert (answer.status_code, answer.json()["detail"]) == (409, sentence), path


# -- stop, end, delete -----------------------------------------------------------------------------


def test_stop_on_the_dashboard_asks_the_script_which_ends_its_run(client: TestClient) -> None:
    (run,) = attach(client, module())
    stopped = client.post(f"/api/runs/{run}/stop").json()
    assert stopped["status"] == "running" and stopped["config"]["stop_requested"] is True
    assert client.post(f"/api/runs/{run}/heartbeat").json()["stop"] is True
    assert client.post(f"/api/runs/{run}/steps", json={"steps": [STEP]}).json()["stop"] is True
    ended = client.post(f"/api/runs/{run}/end", json={"status": "stopped", "dropped_frames": 4}).json()
    assert (ended["status"], ended["config"]["dropped_frames"], ended["step"]) == ("stopped", 4, 1)
    for path in ("stop", "heartbeat", "end"):
        answer = client.post(f"/api/runs/{run}/{path}", json={"status": "completed"})
        assert answer.status_code == 409 and answer.json() == {
            "detail": f"run {run} has ended: it is stopped",
            "stop": True,
        }


def test_deleting_an_attached_run_leaves_its_script_a_404(client: TestClient) -> None:
    (run,) = attach(client, module())
    assert client.delete(f"/api/runs/{run}").status_code == 204
    answer = client.post(f"/api/runs/{run}/steps", json={"steps": [STEP]})
    assert answer.status_code == 404 and answer.json()["detail"] == f"there is no run with id {run!r}"
    assert client.delete(f"/api/runs/{run}").status_code == 404


def test_a_server_that_shuts_down_interrupts_its_attached_runs(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        (run,) = attach(client, module())
        reaper = client.app.state.attached._reaper  # type: ignore[attr-defined]
        assert reaper is not None and reaper.is_alive()
    assert not reaper.is_alive()
    with Storage(tmp_path) as storage:
        record = storage.get_run(run)
        assert record is not None and (record.status, record.error) == ("interrupted", SHUTDOWN_ERROR)


# -- bad input -------------------------------------------------------------------------------------


def test_bad_steps_are_a_422_naming_the_field_and_store_nothing(client: TestClient) -> None:
    (run,) = attach(client, module())
    client.post(f"/api/runs/{run}/steps", json={"steps": [STEP]})
    for body, where in [
        ({"steps": []}, "steps"),
        ({"steps": [{**STEP, "step": 2}, {**STEP, "step": 2}]}, "strictly increasing: step 2 follows step 2"),
        ({"steps": [{**STEP, "step": 0}]}, "greater than or equal to 1"),
        ({"steps": [{**STEP, "step": 2, "metric": 0.5}]}, "metric"),
        ({"steps": [{**STEP, "step": 2, "lr": "fast"}]}, "lr"),
        ({"steps": [{**STEP, "step": 2, "seconds": -1}]}, "seconds"),
        ({"steps": [{**STEP, "step": 2, "learning_rate": 1}]}, "learning_rate"),
        ({"steps": [{**STEP, "step": n} for n in range(2, 1003)]}, "at most 1000"),
    ]:
        answer = client.post(f"/api/runs/{run}/steps", json=body)
        assert answer.status_code == 422 and where in answer.text, (
            body if len(str(body)) < 200 else where,
            answer.text,
        )
    nan = client.post(
        f"/api/runs/{run}/steps",
        content=b'{"steps": [{"step": 2, "loss": NaN}]}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and "finite number" in nan.text
    again = client.post(f"/api/runs/{run}/steps", json={"steps": [STEP, {**STEP, "step": 2}]})
    assert again.status_code == 409 and again.json()["detail"].startswith(
        f"step 1 of run {run} is already stored"
    )
    assert [r["step"] for r in client.get(f"/api/runs/{run}/metrics").json()] == [1]


def test_a_bad_frame_is_a_422_and_leaves_the_run_as_it_was(client: TestClient) -> None:
    m = module()
    (run,) = attach(client, m)
    client.post(f"/api/runs/{run}/frames", content=attached_frame(run, m, 1).to_bytes())
    before = [client.get(f"/api/runs/{run}/{p}").content for p in ("probes", "probes/latest", "gradflow")]
    wrong = attached_frame(run, module(hidden=5), 2).to_bytes()
    answer = client.post(f"/api/runs/{run}/frames", content=wrong)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "array h has shape [2, 6, 10]: this module's must be [2, 6, 8]"
    garbage = client.post(f"/api/runs/{run}/frames", content=b"\x00" * 100)
    assert garbage.status_code == 422 and garbage.json()["detail"].startswith("not a probe frame")
    other = client.post(f"/api/runs/{run}/frames", content=attached_frame("someone", m, 3).to_bytes())
    assert (
        other.status_code == 422
        and other.json()["detail"] == f"the frame's header names run 'someone', not {run!r}"
    )
    assert [
        client.get(f"/api/runs/{run}/{p}").content for p in ("probes", "probes/latest", "gradflow")
    ] == before
    again = client.post(f"/api/runs/{run}/frames", content=attached_frame(run, m, 1).to_bytes())
    assert (
        again.status_code == 409
        and again.json()["detail"] == f"run {run} already has a probe frame at step 1"
    )


def test_built_in_and_unknown_runs_take_no_ingest(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    built = seed_run(
        storage, {"cell": "gru", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}, "steps": 2}
    )
    answer = client.post(f"/api/runs/{built}/steps", json={"steps": [{**STEP, "step": 3}]})
    assert answer.status_code == 409 and "is built-in: it trains on this server" in answer.json()["detail"]
    assert "stop" not in answer.json()
    assert client.post("/api/runs/nope/heartbeat").status_code == 404
    assert client.post("/api/attach", json={"modules": []}).status_code == 422
    bad_module = client.post("/api/attach", json={"modules": [{**module(), "cell": "transformer"}]})
    assert bad_module.status_code == 422 and "cell" in bad_module.text


def test_frames_may_be_32_mib_and_other_bodies_2_mb(client: TestClient) -> None:
    (run,) = attach(client, module())
    big = client.post(f"/api/runs/{run}/frames", content=b"\x00" * (3 * MAX_BODY_BYTES))  # past 2 MB: read
    assert big.status_code == 422
    too_big = client.post(f"/api/runs/{run}/frames", content=b"\x00" * (MAX_FRAME_BYTES + 1))
    assert (
        too_big.status_code == 413
        and too_big.json()["detail"] == "the request body is larger than 32 MB, the most this server accepts"
    )
    steps = client.post(f"/api/runs/{run}/steps", content=b" " * (MAX_BODY_BYTES + 1))
    assert steps.status_code == 413 and "larger than 2 MB" in steps.json()["detail"]
    assert body_limit("/api/import") == 512 * 2**20 and body_limit("/api/runs/x/frames") == MAX_FRAME_BYTES
    assert body_limit("/api/runs/x/frames/y") == body_limit("/api/attach") == MAX_BODY_BYTES


def test_ingest_needs_the_token(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, token="s3cret")) as client:
        refused = client.post("/api/attach", json={"modules": [module()]})
        assert refused.status_code == 401
        answer = client.post(
            "/api/attach", json={"modules": [module()]}, headers={"Authorization": "Bearer s3cret"}
        )
        run = answer.json()["runs"][0]["id"]
        assert client.post(f"/api/runs/{run}/heartbeat").status_code == 401
        assert (
            client.post(f"/api/runs/{run}/heartbeat", headers={"Authorization": "Bearer s3cret"}).status_code
            == 200
        )


# -- import ----------------------------------------------------------------------------------------


def test_import_over_http_brings_in_a_run_file(client: TestClient, tmp_path: Path) -> None:
    data = write_runfile(tmp_path / "run.gsrun", [module(path="enc"), module("gru", 1, False, path="dec")])
    answer = client.post("/api/import", content=data)
    assert answer.status_code == 201
    group = answer.json()
    assert group["warnings"] == [] and [r["config"]["module"] for r in group["runs"]] == ["enc", "dec"]
    for run in group["runs"]:
        assert run["status"] == "completed" and run["group"] == group["group"]
        assert [r["step"] for r in client.get(f"/api/runs/{run['id']}/metrics").json()] == [1, 2, 3, 4, 5]
        assert client.get(f"/api/runs/{run['id']}/probes").json() == [1, 2, 4]
    total = client.get("/api/runs").json()["total"]
    refused = client.post("/api/import", content=data[:20])
    assert refused.status_code == 422 and "attach record" in refused.json()["detail"]
    assert client.get("/api/runs").json()["total"] == total


def test_python_m_app_import_posts_a_file_to_a_live_server(tmp_path: Path) -> None:
    data = write_runfile(tmp_path / "run.gsrun", [module()], n_steps=3)
    (tmp_path / "cut.gsrun").write_bytes(data[:-3])
    (tmp_path / "bad.gsrun").write_bytes(b"nothing")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "import", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    with serve(tmp_path / "server", GATESCOPE_TOKEN="tok") as server:
        done = run(str(tmp_path / "run.gsrun"), "--server", server.url, "--token", "tok")
        assert done.returncode == 0, done.stderr
        run_id, status, path, *_ = done.stdout.split()
        assert (status, path) == ("completed", "rnn") and f"{server.url}/runs/{run_id}" in done.stdout
        cut = run(str(tmp_path / "cut.gsrun"), "--server", server.url, "--token", "tok")
        assert (
            cut.returncode == 0 and "interrupted" in cut.stdout and "warning: the last record" in cut.stderr
        )
        bad = run(str(tmp_path / "bad.gsrun"), "--server", server.url, "--token", "tok")
        assert (
            bad.returncode == 1
            and "the server refused" in bad.stderr
            and "not a Gatescope run file" in bad.stderr
        )
        unauthorized = run(str(tmp_path / "run.gsrun"), "--server", server.url)
        assert unauthorized.returncode == 1 and "(401)" in unauthorized.stderr
    missing = run(str(tmp_path / "missing.gsrun"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
