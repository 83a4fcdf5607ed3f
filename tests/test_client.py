"""gatescope.Client: requests and errors against a mock transport, then every method against a real server."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from app.core.frames import Frame
from gatescope import Client, GatescopeError
from tests.core.test_frames import probe_frame
from tests.live_server import LiveServer, serve

ADDING: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 4,
    "task": {"name": "adding", "seq_len": 5},
    "batch_size": 4,
    "steps": 15,
    "probe_every": 5,
}


def mock_client(handler: Any, token: str | None = None) -> Client:
    return Client("http://gatescope.test/", token=token, transport=httpx.MockTransport(handler))


def test_requests_carry_the_token_and_the_right_paths() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.raw_path == b"/api/runs/a%2Fb":
            return httpx.Response(200, json={"id": "a/b", "status": "running"})
        return httpx.Response(200, json={"text": "hello"})

    with mock_client(handler, token="t0k") as gs:
        assert gs.get_run("a/b")["id"] == "a/b"  # ids are quoted into the path
        assert gs.sample("r1", prime="h", length=4, seed=2) == "hello"
    assert all(r.headers["authorization"] == "Bearer t0k" for r in seen)
    assert json.loads(seen[1].content) == {"prime": "h", "length": 4, "temperature": 1.0, "seed": 2}
    assert seen[1].url.path == "/api/runs/r1/sample"


def test_frames_are_asked_for_as_bytes_and_decoded() -> None:
    data = Frame.from_probe("r1", probe_frame("gru")).to_bytes()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/inspect"):
            return httpx.Response(200, content=data, headers={"content-type": "application/octet-stream"})
        if request.url.params.get("format") == "json":
            return httpx.Response(200, json={"step": 1})
        return httpx.Response(200, content=data, headers={"content-type": "application/octet-stream"})

    with mock_client(handler) as gs:
        frame = gs.probe("r1", 5, resolution="display")
        assert isinstance(frame, Frame) and frame.step == 1 and frame.to_bytes() == data
        assert gs.probe_json("r1")["step"] == 1
        assert gs.inspect("r1", text="he").to_bytes() == data
    assert (seen[0].url.path, dict(seen[0].url.params)) == (
        "/api/runs/r1/probes/5",
        {"resolution": "display"},
    )
    assert dict(seen[1].url.params) == {"format": "json", "resolution": "full"}
    assert seen[1].url.path == "/api/runs/r1/probes/latest"
    assert json.loads(seen[2].content) == {"text": "he"} and seen[2].url.params["resolution"] == "full"


def test_errors_raise_with_the_status_and_the_sentence() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stop"):
            return httpx.Response(409, json={"detail": "run r1 has already ended: it is completed"})
        return httpx.Response(502, text="bad gateway")

    with mock_client(handler) as gs:
        with pytest.raises(GatescopeError) as info:
            gs.stop("r1")
        assert info.value.status_code == 409
        assert info.value.detail == "run r1 has already ended: it is completed"
        with pytest.raises(GatescopeError) as info:
            gs.list_runs()
        assert (info.value.status_code, info.value.detail) == (502, "bad gateway")


def test_wait_polls_until_finished_or_times_out() -> None:
    statuses = iter(["queued", "running", "completed"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "r1", "status": next(statuses, "completed")})

    with mock_client(handler) as gs:
        assert gs.wait("r1", poll=0.0)["status"] == "completed"

    running = mock_client(lambda request: httpx.Response(200, json={"status": "running"}))
    with running as gs, pytest.raises(TimeoutError, match="still running"):
        gs.wait("r1", timeout=0.05, poll=0.01)


def test_websocket_urls() -> None:
    assert Client("http://h:1/").ws_url("r1") == "ws://h:1/ws/runs/r1"
    assert Client("https://h/gs").ws_url("r 1") == "wss://h/gs/ws/runs/r%201"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("client"), GATESCOPE_MAX_RUNS="1") as server:
        yield server


def test_every_method_against_a_real_server(live: LiveServer) -> None:
    with Client(live.url) as gs:
        assert gs.catalog()["limits"]["hidden_size"] == 512
        run = gs.create_run(ADDING)
        assert run["status"] in ("queued", "running")
        final = gs.wait(run["id"], timeout=60)
        assert final["status"] == "completed"
        assert [r["step"] for r in gs.metrics(run["id"], since=10)] == [11, 12, 13, 14, 15]
        assert gs.metrics_csv(run["id"]).startswith("step,loss,metric")
        assert gs.probes(run["id"]) == [0, 5, 10, 15]
        frame = gs.probe(run["id"])
        assert frame.step == 15 and frame.arrays["c"].shape == (1, 5, 4)
        assert gs.probe(run["id"], 5, resolution="display").step == 5
        public = gs.probe_json(run["id"], 5)
        assert public["step"] == 5 and np.shape(public["c"]) == (1, 5, 4)
        np.testing.assert_array_equal(
            np.asarray(public["grad_h"], np.float32), gs.probe(run["id"], 5).arrays["grad_h"]
        )
        inspected = gs.inspect(run["id"], inputs=[[0.1, 1.0], [0.7, 1.0]])
        assert inspected.arrays["grad_h_last"].shape == (1, 2) and inspected.step == 15
        with zipfile.ZipFile(io.BytesIO(gs.export(run["id"]))) as archive:
            assert "probes.npz" in archive.namelist()
        assert gs.checkpoint(run["id"])[:2] == b"PK"  # torch.save writes a zip
        with pytest.raises(GatescopeError) as info:
            gs.sample(run["id"])
        assert info.value.status_code == 409

        group = gs.compare({**ADDING, "steps": 100_000}, cells=["gru", "rnn_relu"])
        ids = [r["id"] for r in group["runs"]]
        assert gs.list_runs(status=["queued", "running"])["total"] == 2
        assert gs.update_run(ids[0], name="slow gru", tags=["slow"])["name"] == "slow gru"
        assert [r["id"] for r in gs.list_runs(q="SLOW", tag="slow")["items"]] == [ids[0]]
        for run_id in ids:
            assert gs.stop(run_id)["id"] == run_id
        for run_id in ids:
            assert gs.wait(run_id, timeout=10)["status"] == "stopped"
        gs.delete(ids[0])
        with pytest.raises(GatescopeError) as info:
            gs.delete_runs([ids[1], ids[0]])  # ids[0] is gone: nothing is deleted
        assert info.value.status_code == 404 and ids[1] in [r["id"] for r in gs.list_runs()["items"]]
        assert gs.delete_runs([ids[1]]) == [ids[1]]
        assert gs.list_runs()["total"] == 1
        with pytest.raises(GatescopeError) as info:
            gs.get_run(ids[0])
        assert info.value.status_code == 404
        with pytest.raises(GatescopeError) as info:
            list(gs.stream("nosuchrun"))
        assert info.value.status_code == 4404
