"""Gatescope: see inside recurrent neural networks while they learn."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gatescope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
