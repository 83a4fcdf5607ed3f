"""Gatescope, the library: watch your own PyTorch RNN, LSTM or GRU while it trains (gatescope.watch),
and talk to a Gatescope server from a script (gatescope.Client).

    import gatescope
    watch = gatescope.watch(model, server="http://127.0.0.1:8000", every=10, name="my-lstm")
    for x, y in loader:
        ...  # forward, backward, clipping, optimizer.step()
        watch.step(loss=loss)
    watch.close()

    with gatescope.Client("http://127.0.0.1:8000") as gs:
        print(gs.list_runs()["total"])

Its names load on first use (module __getattr__): `import gatescope` and `from gatescope import
Client` load no torch (the client needs httpx, orjson, websockets and numpy); `watch` / `Watch`
bring in torch and app.core. No name here loads server code (app.services, app.web).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from app import __version__

if TYPE_CHECKING:
    from gatescope.client import Client, GatescopeError
    from gatescope.watch import Watch, watch

__all__ = ["Client", "GatescopeError", "Watch", "__version__", "watch"]

_LAZY = {
    "Client": "gatescope.client",
    "GatescopeError": "gatescope.client",
    "Watch": "gatescope.watch",
    "watch": "gatescope.watch",
}


def __getattr__(name: str) -> Any:
    """The lazy names: import their module on first use, then keep the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gatescope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(ModuleType):
    """gatescope's module type: `gatescope.watch` stays the function. Importing the submodule
    gatescope.watch (by anyone, at any time) makes the import system set the package's `watch`
    attribute to that submodule; this keeps the submodule's function there instead."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "watch" and isinstance(value, ModuleType):
            value = value.watch
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
