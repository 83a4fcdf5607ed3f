"""The run websocket, in-process: snapshot, live steps and probes, end; finished and unknown runs; joiners."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.core.frames import Frame
from tests.web.conftest import HELLO, LONG, SLOW, Served, make_app, wait_for


class Stream:
    """What a websocket delivered: text messages decoded, probe frames as Frames, and the close."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None

    def read(self, ws: Any, until_end: bool = True, limit: int = 10_000) -> Stream:
        for _ in range(limit):
            try:
                message = ws.receive()
            except WebSocketDisconnect as exc:
                self.close_code = exc.code
                return self
            if message["type"] == "websocket.close":
                self.close_code = message.get("code", 1000)
                return self
            if message.get("bytes") is not None:
                self.messages.append({"type": "probe", "frame": Frame.from_bytes(message["bytes"])})
            else:
                self.messages.append(json.loads(message["text"]))
            if not until_end:
                return self
        raise AssertionError("the stream did not end")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def steps(self) -> list[int]:
        snapshot = [int(r["step"]) for m in self.of("snapshot") for r in m["metrics"]]
        return snapshot + [int(s["step"]) for m in self.of("step") for s in m["steps"]]


def test_a_live_run_streams_snapshot_steps_probes_and_end(client: TestClient) -> None:
    run_id = client.post("/api/runs", json=HELLO).json()["id"]
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        stream = Stream().read(ws)
    kinds = [m["type"] for m in stream.messages]
    assert kinds[0] == "snapshot" and kinds[-1] == "end"
    snapshot = stream.messages[0]
    assert snapshot["run"]["id"] == run_id and snapshot["run"]["status"] in ("queued", "running")
    assert stream.steps() == list(range(1, 41))  # every step exactly once, in order
    assert stream.of("step"), "live steps come as step messages"
    assert all(isinstance(s["time"], float) for m in stream.of("step") for s in m["steps"])
    probes = [m["frame"] for m in stream.of("probe")]
    assert probes and probes[-1].step == 40
    steps_seen = [p.step for p in probes]
    assert steps_seen == sorted(set(steps_seen))
    assert probes[-1].arrays["h"].shape == (1, 4, 8) and probes[-1].header["pool"] is None
    assert stream.messages[-1]["run"]["status"] == "completed"
    assert stream.close_code == 1000


def test_a_finished_run_gets_snapshot_latest_probe_and_end(served: Served) -> None:
    with served.client.websocket_connect(f"/ws/runs/{served.hello}") as ws:
        stream = Stream().read(ws)
    assert [m["type"] for m in stream.messages] == ["snapshot", "probe", "end"]
    snapshot = stream.messages[0]
    assert [r["step"] for r in snapshot["metrics"]] == list(range(1, 41))
    assert snapshot["probe_steps"] == [0, 10, 20, 30, 40]
    assert stream.messages[1]["frame"].step == 40
    assert stream.messages[2]["run"]["status"] == "completed"
    assert stream.close_code == 1000


def test_viewers_get_display_frames_live_and_in_the_snapshot(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**LONG, "steps": 2, "probe_every": 1}).json()["id"]
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        live = Stream().read(ws)
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        finished = Stream().read(ws)
    pool = {"T": 510, "units": 260, "t_width": 2, "unit_width": 2}
    frames = [m["frame"] for m in live.of("probe") + finished.of("probe")]
    assert frames and frames[-1].step == 2 and live.messages[-1]["run"]["status"] == "completed"
    for frame in frames:
        assert frame.header["pool"] == pool and frame.sizes() == (255, 130)
        stored = client.get(f"/api/runs/{run_id}/probes/{frame.step}", params={"resolution": "display"})
        assert frame.to_bytes() == stored.content  # the stored display frame, byte for byte


def test_an_unknown_run_closes_with_4404(served: Served) -> None:
    with (
        served.client.websocket_connect("/ws/runs/nosuchrun") as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_text()
    assert info.value.code == 4404
    assert "nosuchrun" in info.value.reason


def test_a_late_joiner_gets_the_snapshot_then_live_without_gaps(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        wait_for(http, run_id, statuses=frozenset({"running"}))
        while http.get(f"/api/runs/{run_id}").json()["step"] < 60:
            time.sleep(0.05)
        with http.websocket_connect(f"/ws/runs/{run_id}") as ws:
            stream = Stream().read(ws, until_end=False)
            snapshot = stream.messages[0]
            assert snapshot["type"] == "snapshot" and len(snapshot["metrics"]) >= 60
            assert snapshot["probe_steps"][:2] == [0, 50]
            while len(stream.of("step")) < 3:
                stream.read(ws, until_end=False)
            http.post(f"/api/runs/{run_id}/stop")
            stream.read(ws)
        steps = stream.steps()
        assert steps == list(range(1, steps[-1] + 1))  # snapshot + live: contiguous, no repeats
        assert stream.messages[-1]["type"] == "end"
        assert stream.messages[-1]["run"]["status"] == "stopped"
        assert stream.close_code == 1000


def test_interventions_come_live_and_in_a_later_joiner_s_snapshot(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        wait_for(http, run_id, statuses=frozenset({"running"}))
        with http.websocket_connect(f"/ws/runs/{run_id}") as ws:
            stream = Stream().read(ws, until_end=False)
            assert stream.messages[0]["interventions"] == []
            while len(stream.steps()) < 5:  # a few steps before the intervention
                stream.read(ws, until_end=False)
            item_id = http.post(f"/api/runs/{run_id}/interventions", json={"lr": 0.01}).json()["id"]
            while not stream.of("intervention"):
                stream.read(ws, until_end=False)
            (live,) = stream.of("intervention")
            with http.websocket_connect(f"/ws/runs/{run_id}") as joiner:
                snapshot = Stream().read(joiner, until_end=False).messages[0]
            http.post(f"/api/runs/{run_id}/stop")
            stream.read(ws)
        (listed,) = http.get(f"/api/runs/{run_id}/interventions").json()
        assert listed["id"] == item_id and {**listed, "type": "intervention"} == live
        assert snapshot["interventions"] == [listed]
        assert len(stream.of("intervention")) == 1  # sent once
        # every step up to the one it followed came before it
        before = Stream()
        before.messages = stream.messages[: stream.messages.index(live)]
        assert before.steps()[-1] >= listed["step"]


def test_a_viewer_leaving_mid_run_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), TestClient(make_app(tmp_path)) as http:
        run_id = http.post("/api/runs", json=SLOW).json()["id"]
        for _ in range(3):
            with http.websocket_connect(f"/ws/runs/{run_id}") as ws:
                Stream().read(ws, until_end=False)
                ws.close()
        wait_for(http, run_id, statuses=frozenset({"running"}))
        with http.websocket_connect(f"/ws/runs/{run_id}") as ws:
            stream = Stream().read(ws, until_end=False)
            while not stream.of("step"):
                stream.read(ws, until_end=False)
        http.delete(f"/api/runs/{run_id}")
        hub = http.app.state.hub  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while any(c.viewers for c in hub.channels.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(c.viewers for c in hub.channels.values())  # every viewer detached
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_websocket_needs_the_token_when_the_server_has_one(tmp_path: Path) -> None:
    attempts = [
        ("/ws/runs/any", {}, 4401),
        ("/ws/runs/any?token=wrong", {}, 4401),
        ("/ws/runs/any?token=s3cret", {}, 4404),
        ("/ws/runs/any", {"Authorization": "Bearer s3cret"}, 4404),
    ]
    with TestClient(make_app(tmp_path, token="s3cret")) as http:
        for url, headers, code in attempts:
            with (
                http.websocket_connect(url, headers=headers) as ws,
                pytest.raises(WebSocketDisconnect) as info,
            ):
                ws.receive_text()
            assert info.value.code == code
