"""Gatescope, the library: watch your own PyTorch RNN, LSTM or GRU while it trains (gatescope.watch).

    import gatescope
    watch = gatescope.watch(model, server="http://127.0.0.1:8000", every=10, name="my-lstm")
    for x, y in loader:
        ...  # forward, backward, clipping, optimizer.step()
        watch.step(loss=loss)
    watch.close()

It imports torch, numpy, httpx, orjson and app.core only: no server code.
"""

from app import __version__
from gatescope.watch import Watch, watch

__all__ = ["Watch", "__version__", "watch"]
