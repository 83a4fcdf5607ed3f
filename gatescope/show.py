"""`gatescope.show(run)` and `gatescope.compare([run, ...])`: stored runs in the notebook widget.

What this is: the snapshot of a run (gatescope/notebook.py: {run, task, catalog, metrics,
interventions, gradflow, frames}) from where it is stored, and a RunWidget of it:

- a local run file (gatescope.watch(server=None), gatescope.runfile): read here, no server; one
  snapshot per watched module (`module=`, default the first: with several, a warning says how to
  pick), its frames pooled to display frames, its gradient flow made from them (app.core.flow);
- a run on a Gatescope server (`server=` a URL, else $GATESCOPE_SERVER, else the default of
  gatescope.watch): GET /api/runs/{id}/report?format=json, the snapshot the run's one-file report
  embeds (frames base64, thinned to `budget_mb` there), decoded to bytes.

A `run` that names an existing file, is a path (os.PathLike), or looks like one (a "/" or the
.gsrun suffix) is a run file; anything else is a server run id. Bad input is a sentence: no such
file, not a run file, a module it lacks, a server that is away or has no such run.
The widget is returned: a cell whose last expression it is shows it. What this is not: the
widget (gatescope/notebook.py) or the server's report (app/services/report.py).
"""

from __future__ import annotations

import base64
import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app.core.display import view_catalog
from app.core.frames import Frame
from gatescope.notebook import MAX_COMPARE, RunWidget, attached_run, display_frame
from gatescope.report import DEFAULT_BUDGET_MB
from gatescope.runfile import read_runfile
from gatescope.watch import DEFAULT_SERVER

RunRef = str | os.PathLike[str]
TIMEOUT = 60.0  # seconds a server may take to answer a report
NO_END = "the run file has no end record: the script stopped without closing its watch"


def show(
    run: RunRef,
    server: str | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    *,
    module: int | None = None,
    token: str | None = None,
) -> RunWidget:
    """A widget of one stored run: a local run file's path, or a server run id (see the module
    docstring). `module` picks a watched module of a run file (default 0); `token` is the
    server's ($GATESCOPE_TOKEN if None)."""
    return RunWidget("run", [snapshot(run, server, budget_mb, module=module, token=token)], budget_mb)


def compare(
    runs: Sequence[RunRef],
    server: str | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    *,
    token: str | None = None,
) -> RunWidget:
    """A widget of 2 to 8 stored runs side by side (each a run file's path or a server run id;
    a run file's first module), the budget shared over them."""
    if isinstance(runs, str | os.PathLike) or not 2 <= len(runs) <= MAX_COMPARE:
        count = "one" if isinstance(runs, str | os.PathLike) else str(len(runs))
        raise ValueError(f"compare takes a list of 2 to {MAX_COMPARE} runs, not {count}")
    share = budget_mb / len(runs)
    snapshots = [snapshot(run, server, share, module=None, token=token) for run in runs]
    return RunWidget("compare", snapshots, budget_mb)


def snapshot(
    run: RunRef,
    server: str | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    *,
    module: int | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The snapshot of `run` (see the module docstring), frames as bytes by step."""
    if server is None and _is_file(run):
        return file_snapshot(Path(run), module)
    if module is not None:
        raise ValueError("module= picks a watched module of a run file; a server run is one module")
    if server is None:
        server = os.environ.get("GATESCOPE_SERVER") or DEFAULT_SERVER
    return server_snapshot(str(run), server, budget_mb, token)


def _is_file(run: RunRef) -> bool:
    if isinstance(run, os.PathLike):
        return True
    if not isinstance(run, str) or not run:
        raise ValueError(f"a run is a run file's path or a server run id, not {run!r}")
    return Path(run).exists() or "/" in run or os.sep in run or run.endswith(".gsrun")


def file_snapshot(path: Path, module: int | None = None) -> dict[str, Any]:
    """The snapshot of watched module `module` (default 0) of the run file at `path`."""
    if not path.is_file():
        raise FileNotFoundError(f"there is no run file at {path}" + (" (a folder)" if path.is_dir() else ""))
    runfile = read_runfile(path)  # ValueError with a sentence if it is not a run file
    modules = runfile.attach["modules"]
    paths = [str(m.get("path") or "the model") for m in modules]
    if module is None:
        module = 0
        if len(modules) > 1:
            warnings.warn(
                f"{path.name} watched {len(modules)} modules ({', '.join(paths)}): this shows module 0 "
                f"({paths[0]}); pick another with module=1..{len(modules) - 1}",
                stacklevel=3,
            )
    if not isinstance(module, int) or not 0 <= module < len(modules):
        raise ValueError(f"{path.name} watched {len(modules)} module(s): module= is 0..{len(modules) - 1}")
    end = runfile.end or {"status": "interrupted", "error": NO_END}
    run = attached_run(runfile.attach, module, uuid.uuid4().hex[:12], None, end)
    run.update(step=max((int(s["step"]) for s in runfile.steps), default=0), notes=runfile.problems)
    run["steps"] = run["step"]
    frames: dict[int, bytes] = {}
    for number, (index, data) in enumerate(runfile.frames, 1):
        if index != module:
            continue
        try:
            frame = Frame.from_bytes(data)
        except ValueError as exc:
            raise ValueError(f"frame {number} of {path.name} cannot be read: {exc}") from exc
        if frame.step in frames:
            raise ValueError(f"{path.name} has two frames of module {module} at step {frame.step}")
        frame.header["run_id"] = run["id"]
        frames[frame.step] = display_frame(frame)
    for problem in runfile.problems:
        warnings.warn(f"{path.name}: {problem}", stacklevel=3)
    return {
        "run": run,
        "task": None,
        "catalog": view_catalog(),
        "metrics": runfile.steps,
        "interventions": [],
        "gradflow": {},  # made from the frames (gatescope.notebook.RunState)
        "frames": frames,
    }


def server_snapshot(run_id: str, server: str, budget_mb: float, token: str | None = None) -> dict[str, Any]:
    """The snapshot of run `run_id` on the server at `server` (its report's JSON, frames decoded)."""
    token = token if token is not None else os.environ.get("GATESCOPE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{server.rstrip('/')}/api/runs/{run_id}/report"
    try:
        answer = httpx.get(
            url, params={"format": "json", "budget_mb": budget_mb}, headers=headers, timeout=TIMEOUT
        )
    except httpx.HTTPError as exc:
        raise ConnectionError(
            f"could not reach the Gatescope server at {server} ({type(exc).__name__}: {exc}): is it "
            "running? For a local run file, pass its path"
        ) from exc
    if answer.status_code != 200:
        raise ValueError(
            f"the server at {server} answered {answer.status_code} for run {run_id!r}: {_detail(answer)}"
        )
    data: dict[str, Any] = answer.json()
    data["frames"] = {int(step): base64.b64decode(text) for step, text in data.get("frames", {}).items()}
    return data


def _detail(answer: httpx.Response) -> str:
    """The server's sentence (its JSON `detail`), else the start of its body."""
    try:
        detail = answer.json().get("detail")
    except ValueError:
        detail = None
    return str(detail) if detail else answer.text[:200]
