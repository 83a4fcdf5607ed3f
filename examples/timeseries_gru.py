"""A GRU forecasting a noisy sum of sines one step ahead, watched live by Gatescope on a fixed probe.

    python examples/timeseries_gru.py --server http://127.0.0.1:8000 --steps 200
    python examples/timeseries_gru.py --server none --steps 200    # a run file, for `python -m app import`

What this is: a time-series script of the usual kind, with two Gatescope lines added. The model is
a 2-layer nn.GRU with `batch_first=False` (inputs are (T, batch, 1), PyTorch's default layout) and
a linear head that predicts x_{t+1} from h_t at every step, trained with MSE and Adam on fresh
random windows of a noisy two-frequency signal. The watch is given a fixed probe (`probe=` one
clean window of the signal, `probe_loss=` its forecast error): every `--every` steps Gatescope
runs that same window through the model in eval mode, so the dashboard shows the same sample over
training, rather than the first sample of each random batch.

What this is not: part of Gatescope. It imports torch and gatescope only, as your script would.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor, nn

import gatescope


class Forecaster(nn.Module):
    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, num_layers=layers)  # batch_first=False: (T, batch, features)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.gru(x)
        forecast: Tensor = self.head(out)  # (T, batch, 1): the next value, forecast at every step
        return forecast


def signal(t: Tensor, noise: float, generator: torch.Generator | None = None) -> Tensor:
    """sin(t) + 0.5 sin(3.1 t), plus Gaussian noise of standard deviation `noise`."""
    clean = torch.sin(t) + 0.5 * torch.sin(3.1 * t)
    return clean + noise * torch.randn(t.shape, generator=generator) if noise else clean


def windows(batch: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`batch` windows of `length` + 1 samples at random phases: inputs (T, B, 1), targets (T, B, 1)."""
    start = 100 * torch.rand(1, batch, generator=generator)
    t = start + 0.1 * torch.arange(length + 1).unsqueeze(1)
    x = signal(t, noise=0.1, generator=generator).unsqueeze(-1)
    return x[:-1], x[1:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000", help='a Gatescope server, or "none"')
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="a probe frame every this many steps")
    parser.add_argument("--out", type=Path, default=None, help="the run file (with --server none)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=120, help="steps per window")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)

    model = Forecaster(args.hidden, layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.MSELoss()
    # the fixed probe: one clean window, the same at every probe step (a batch of one, (T, 1, 1))
    t = 0.1 * torch.arange(args.length + 1, dtype=torch.float32).unsqueeze(1) + math.pi / 4
    probe = signal(t, noise=0.0).unsqueeze(-1)
    probe_x, probe_y = probe[:-1], probe[1:]

    def probe_loss(forecast: Tensor) -> Tensor:
        error: Tensor = criterion(forecast, probe_y)
        return error

    server = None if args.server.lower() == "none" else args.server
    with gatescope.watch(
        model,
        server=server,
        every=args.every,
        name="timeseries-gru",
        probe=(probe_x,),
        probe_loss=probe_loss,
        path=args.out,
    ) as watch:
        for step in range(args.steps):
            x, y = windows(args.batch, args.length, data)
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            watch.step(loss=loss)
            if step % 50 == 0:
                print(f"step {step + 1}: loss {loss.item():.4f}", flush=True)
            if watch.should_stop:
                print("stopped from the dashboard", flush=True)
                break
    if watch.run_ids:
        print(f"runs {', '.join(watch.run_ids)} on {server}", flush=True)
    else:
        path = watch.path  # the run file (server=None)
        print(f"run file {path}: bring it into a server with  python -m app import {path}", flush=True)


if __name__ == "__main__":
    main()
