"""The server-wide free-space floor: below it no new run starts and running runs stop recording frames.

What this is: `DiskGuard(path, min_free_mb, free)`, whose `shortage()` is None while the disk
holding `path` (the data directory) has at least `min_free_mb` MB free, and otherwise a sentence
saying how much is free and what the floor is. `free` is the probe (`free_bytes`:
shutil.disk_usage, one statvfs call), injectable so tests can fill the disk. `DiskFull`: the
refusal of a new run below the floor (HTTP 507); `frames_stopped`: the note of a running run
below it. The defaults of the settings GATESCOPE_RUN_STORAGE_MB and GATESCOPE_MIN_FREE_MB live here.

What this is not: the per-run budget's thinning (app.core.thinning.kept_steps, storage) or a quota.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.services.thinning import MB

RUN_STORAGE_MB = 256  # a run's storage budget unless it asks for another (RunCreate.storage_mb)
MIN_FREE_MB = 512  # the free-space floor


class DiskFull(Exception):  # noqa: N818  (the HTTP status's name: 507 Insufficient Storage)
    """The disk is below the free-space floor: no new run starts (HTTP 507)."""


def free_bytes(path: Path) -> int:
    """The bytes free on the disk holding `path`."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class DiskGuard:
    path: Path
    min_free_mb: int = MIN_FREE_MB
    free: Callable[[Path], int] = free_bytes

    def shortage(self) -> str | None:
        """None while the disk has at least min_free_mb free; else a sentence saying so."""
        free = self.free(self.path)
        if free >= self.min_free_mb * MB:
            return None
        return (
            f"the disk holding {self.path} has {free / MB:.0f} MB free, below the server's floor of "
            f"{self.min_free_mb} MB (GATESCOPE_MIN_FREE_MB)"
        )

    def check(self) -> None:
        """DiskFull, with a sentence, when the disk is below the floor."""
        shortage = self.shortage()
        if shortage is not None:
            raise DiskFull(f"no new run can start: {shortage}; delete runs to free space")


def frames_stopped(step: int, shortage: str, what: str = "Frames and snapshots") -> str:
    """The note of a run that stops recording `what` at `step` because of `shortage`."""
    return f"{what} stopped being recorded at step {step}: {shortage}. Metrics still are."
