"""End to end against a real server (`python -m app` in a subprocess) through gatescope.Client.

One server trains a char_lm "hello" run that a client streams, reads, samples and downloads; a
longer run is watched by a late joiner and by 20 viewers at once; then the server restarts on
the same data directory and the finished run is still there to view.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from gatescope import Client
from tests.live_server import serve, stop
from tests.web.conftest import HELLO

LONGER: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 8,
    "task": {"name": "adding", "seq_len": 8},
    "batch_size": 4,
    "steps": 800,
    "probe_every": 25,
}
VIEWERS = 20


def contiguous_steps(messages: list[dict[str, Any]]) -> list[int]:
    steps = [int(r["step"]) for m in messages if m["type"] == "snapshot" for r in m["metrics"]]
    steps += [int(s["step"]) for m in messages if m["type"] == "step" for s in m["steps"]]
    return steps


def test_a_real_server_end_to_end_and_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(data, GATESCOPE_MAX_RUNS="2") as server, Client(server.url) as gs:
        assert gs.health()["status"] == "ok"
        hello = gs.create_run(HELLO)["id"]
        messages = list(gs.stream(hello))
        assert messages[0]["type"] == "snapshot" and messages[-1]["type"] == "end"
        assert messages[-1]["run"]["status"] == "completed"
        assert contiguous_steps(messages) == list(range(1, 41))
        probes = [m["frame"] for m in messages if m["type"] == "probe"]
        assert probes[-1].step == 40 and probes[-1].header["run_id"] == hello
        assert probes[-1].arrays["gates.f"].shape == (1, 4, 8)
        assert len(gs.metrics(hello)) == 40
        text = gs.sample(hello, prime="he", length=10, seed=0)
        assert text.startswith("he") and len(text) == 12
        state = torch.load(io.BytesIO(gs.checkpoint(hello)), weights_only=True)
        torch.nn.LSTM(4, 8, batch_first=True).load_state_dict(state["state_dict"])

        # a longer run: a late joiner, and 20 viewers at once
        longer = gs.create_run(LONGER)["id"]
        deadline = time.monotonic() + 60
        while gs.get_run(longer)["step"] < 100:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with ThreadPoolExecutor(VIEWERS) as pool:
            streams = list(pool.map(lambda _: list(gs.stream(longer)), range(VIEWERS)))
        for stream in streams:
            assert stream[0]["type"] == "snapshot"
            assert stream[-1]["type"] == "end" and stream[-1]["run"]["status"] == "completed"
            assert contiguous_steps(stream) == list(range(1, 801))
        late = streams[0]
        assert len(late[0]["metrics"]) >= 100  # it joined late: the snapshot held what came before
        assert any(m["type"] == "step" for m in late)  # and then it was live
        assert "Traceback" not in server.log()
        assert stop(server) in (0, -15)

    with serve(data, GATESCOPE_MAX_RUNS="2") as server, Client(server.url) as gs:
        run = gs.get_run(hello)
        assert run["status"] == "completed" and run["step"] == 40
        replay = list(gs.stream(hello))
        assert [m["type"] for m in replay] == ["snapshot", "probe", "end"]
        assert contiguous_steps(replay) == list(range(1, 41))
        assert gs.probe(hello).step == 40
        assert gs.list_runs()["total"] == 2
