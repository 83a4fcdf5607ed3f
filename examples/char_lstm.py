"""A character-level LSTM language model on Hamlet, watched live by Gatescope.

    python examples/char_lstm.py --server http://127.0.0.1:8000 --steps 200
    python examples/char_lstm.py --server none --steps 200      # a run file, for `python -m app import`

What this is: the kind of script a person writes on their own, with two Gatescope lines added
(`gatescope.watch(...)` and `watch.step(...)`). The model is an embedding, a 2-layer nn.LSTM and
a linear readout over the vocabulary; it reads the bundled corpus (app/core/data/shakespeare.txt)
as `--batch` parallel streams and trains with truncated backpropagation through time: windows of
`--bptt` characters, the LSTM's state carried from one window to the next (detached), Adam and
gradient clipping. `labels=` decodes a sample's character ids, so the dashboard's heatmaps show
the characters on their time axis. Stop on the dashboard ends the loop (`watch.should_stop`).

What this is not: part of Gatescope. It imports torch and gatescope only, as your script would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn

import gatescope

CORPUS = Path(__file__).resolve().parent.parent / "app" / "core" / "data" / "shakespeare.txt"
State = tuple[Tensor, Tensor]


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, vocab)

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out, state = self.lstm(self.embed(ids), state)
        return self.readout(out), state


def streams(text: str, batch: int) -> tuple[Tensor, list[str]]:
    """The corpus as `batch` contiguous streams of character ids (batch, N), and the vocabulary."""
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    n = (len(ids) - 1) // batch
    return ids[: n * batch + 1], vocab


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000", help='a Gatescope server, or "none"')
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="a probe frame every this many steps")
    parser.add_argument("--out", type=Path, default=None, help="the run file (with --server none)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64, help="characters per window")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ids, vocab = streams(CORPUS.read_text(encoding="utf-8"), args.batch)
    columns = (len(ids) - 1) // args.batch
    inputs = ids[:-1].view(args.batch, columns)  # row b is a contiguous stretch of the play
    targets = ids[1:].view(args.batch, columns)
    windows = columns // args.bptt
    model = CharLSTM(len(vocab), embed=32, hidden=args.hidden, layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.CrossEntropyLoss()

    def decode(sample: Tensor) -> list[str]:
        return [vocab[i] for i in sample.tolist()]

    server = None if args.server.lower() == "none" else args.server
    state: State | None = None
    with gatescope.watch(
        model, server=server, every=args.every, name="char-lstm", labels=decode, path=args.out
    ) as watch:
        for step in range(args.steps):
            a = (step % windows) * args.bptt
            if a == 0:
                state = None  # at the start of the streams: a fresh state
            x, y = inputs[:, a : a + args.bptt], targets[:, a : a + args.bptt]
            logits, state = model(x, state)
            loss = criterion(logits.reshape(-1, len(vocab)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state = (state[0].detach(), state[1].detach())  # truncated BPTT: carry the state, not its graph
            watch.step(loss=loss)
            if step % 50 == 0:
                print(f"step {step + 1}: loss {loss.item():.3f}", flush=True)
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
