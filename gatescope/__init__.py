"""Gatescope, the library: watch your own PyTorch RNN, LSTM or GRU while it trains (gatescope.watch),
see stored runs in a notebook (gatescope.show, gatescope.compare), and talk to a Gatescope server
from a script (gatescope.Client).

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
bring in torch and app.core; `show` / `compare` those and anywidget (the `notebook` extra). No
name here loads server code (app.services, app.web).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from app import __version__

if TYPE_CHECKING:
    from gatescope.client import Client, GatescopeError
    from gatescope.show import compare, show
    from gatescope.watch import Watch, watch

__all__ = ["Client", "GatescopeError", "Watch", "__version__", "compare", "show", "watch"]

_LAZY = {
    "Client": "gatescope.client",
    "GatescopeError": "gatescope.client",
    "Watch": "gatescope.watch",
    "watch": "gatescope.watch",
    "show": "gatescope.show",
    "compare": "gatescope.show",
}
_FUNCTIONS = ("watch", "show")  # submodules named like the function they hold


def __getattr__(name: str) -> Any:
    """The lazy names: import their module on first use, then keep the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gatescope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(ModuleType):
    """gatescope's module type: `gatescope.watch` and `gatescope.show` stay the functions.
    Importing the submodule gatescope.watch (by anyone, at any time) makes the import system set
    the package's `watch` attribute to that submodule; this keeps the submodule's function there
    instead (and the same for show)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _FUNCTIONS and isinstance(value, ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
