"""Frame sizes on the wire: what a viewer of a large run downloads, measured on a real server.

    python -m scripts.bench_frames                           # LSTM, T = 2000, H = 512
    python -m scripts.bench_frames --seq-len 1000 --hidden 256 --layers 2

It starts `python -m app` on loopback, trains one step of an LSTM on the adding task (probes at
steps 0 and 1) with a websocket viewer connected from the start, and reports, per probe frame:
the bytes of each binary websocket message the viewer received (display frames), the bytes of
the full frame (GET .../probes/{step}), of the display frame by REST (?resolution=display), and
of the JSON of each (?format=json), plus how long the worker's probe and pooling took in this
process for the same shape (`Frame.from_probe`, `pooled`, `to_bytes`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from app.core.engine import TrainConfig, Trainer
from app.core.frames import Frame
from gatescope import Client
from tests.live_server import serve


def config(seq_len: int, hidden: int, layers: int) -> dict[str, Any]:
    return {
        "cell": "lstm",
        "hidden_size": hidden,
        "num_layers": layers,
        "task": {"name": "adding", "seq_len": seq_len},
        "batch_size": 1,
        "steps": 1,
        "probe_every": 0,
    }


def received(url: str, started: threading.Event) -> list[int]:
    """The sizes of the binary messages of one websocket, to its end."""
    sizes: list[int] = []

    async def main() -> None:
        async with connect(url, compression=None, max_size=None, proxy=None) as ws:
            started.set()
            async for message in ws:
                if isinstance(message, bytes):
                    sizes.append(len(message))

    asyncio.run(main())
    return sizes


def on_the_wire(url: str, run_config: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with Client(url, timeout=300) as gs:
        run = gs.create_run(run_config)
        started, sizes = threading.Event(), []
        viewer = threading.Thread(target=lambda: sizes.extend(received(gs.ws_url(run["id"]), started)))
        viewer.start()
        started.wait(30)
        gs.wait(run["id"], timeout=600)
        viewer.join(60)
        path = f"/api/runs/{run['id']}/probes"
        for step in gs.probes(run["id"]):
            size = {
                (fmt, res): len(
                    gs.http.get(f"{path}/{step}", params={"format": fmt, "resolution": res}).content
                )
                for fmt in ("binary", "json")
                for res in ("full", "display")
            }
            pool = gs.probe(run["id"], step, resolution="display").header["pool"]
            rows += [
                (f"step {step}: full frame (binary)", f"{size['binary', 'full']:,} bytes"),
                (f"step {step}: display frame (binary)", f"{size['binary', 'display']:,} bytes, pool {pool}"),
                (f"step {step}: full frame as JSON", f"{size['json', 'full']:,} bytes"),
                (f"step {step}: display frame as JSON", f"{size['json', 'display']:,} bytes"),
            ]
        rows.append(("websocket binary messages to the viewer", ", ".join(f"{n:,} bytes" for n in sizes)))
    return rows


def in_process(run_config: dict[str, Any]) -> list[tuple[str, str]]:
    """How long the worker's part takes for one frame of this shape."""
    trainer = Trainer(
        TrainConfig(
            cell="lstm",
            task="adding",
            task_params={"seq_len": run_config["task"]["seq_len"]},
            hidden_size=run_config["hidden_size"],
            num_layers=run_config["num_layers"],
            batch_size=1,
            steps=1,
        )
    )
    times: dict[str, float] = {}
    t = time.perf_counter()
    probe = trainer.probe()
    times["probe (core)"], t = time.perf_counter() - t, time.perf_counter()
    frame = Frame.from_probe("r", probe)
    times["Frame.from_probe"], t = time.perf_counter() - t, time.perf_counter()
    full = frame.to_bytes()
    times["to_bytes (full)"], t = time.perf_counter() - t, time.perf_counter()
    shown = frame.pooled()
    times["pooled"], t = time.perf_counter() - t, time.perf_counter()
    shown.to_bytes()
    times["to_bytes (display)"], t = time.perf_counter() - t, time.perf_counter()
    Frame.from_bytes(full)
    times["Frame.from_bytes (full)"] = time.perf_counter() - t
    return [(f"in process: {name}", f"{1000 * s:.0f} ms") for name, s in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seq-len", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args()
    run_config = config(args.seq_len, args.hidden, args.layers)
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp)) as server:
        rows = on_the_wire(server.url, run_config)
    rows += in_process(run_config)
    print(f"LSTM, T = {args.seq_len}, H = {args.hidden}, {args.layers} layer(s)")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
