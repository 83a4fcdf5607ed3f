"""The REST API under /api: the health check, the catalog, what a run recorded, and using its weights.

What this is: thin typed routes. Storage reads and RunManager calls are blocking, so those routes
are plain `def` (FastAPI runs them in its thread pool); inspect and sample run PyTorch in a worker
thread, at most INFERENCE_THREADS at once. Every error answers {"detail": "a sentence"} (see
errors.py); large JSON bodies (metrics, probe frames) are encoded with orjson directly. Probe
frames answer their bytes (frames.Frame.to_bytes, as the websocket sends them) unless the request
asks for ?format=json, at ?resolution=full (the frame as probed) or display (pooled to at most
frames.MAX_T x MAX_UNITS, as viewers get it).

What this is not: the runs themselves (creating, listing, renaming, stopping, deleting: runs.py),
the websocket (ws.py), or any logic of its own beyond shaping requests and responses: validation
is in the pydantic models, work in app/services.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app import __version__
from app.core.frames import MAX_T, MAX_UNITS, Frame
from app.services import export, inference
from app.services.catalog import Catalog, catalog
from app.services.executors import ExecutorUnavailable
from app.services.manager import RunManager
from app.services.storage import Resolution
from app.web.deps import (
    NOT_FOUND,
    BuiltInRunDep,
    LimiterDep,
    ManagerDep,
    RunDep,
    StorageDep,
    require_token,
)
from app.web.models import (
    Health,
    InspectCreate,
    ProbePublic,
    SampleCreate,
    SampleResult,
    StepMetricsPublic,
)

INFERENCE_THREADS = 2  # inspect and sample requests computed at once; more wait their turn

health_router = APIRouter(prefix="/api", tags=["health"])
router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

JSON = "application/json"


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type=JSON)


@health_router.get("/health")
def health(request: Request) -> Health:
    """Liveness probe (needs no token); says where runs train, and why they cannot start if so."""
    manager: RunManager | None = getattr(request.app.state, "manager", None)  # None before the lifespan
    if manager is None:
        return Health(status="ok", version=__version__)
    try:
        manager.executor.check()
    except ExecutorUnavailable as exc:
        return Health(
            status="ok", version=__version__, executor=manager.executor.name, executor_error=str(exc)
        )
    return Health(status="ok", version=__version__, executor=manager.executor.name)


@router.get("/catalog", tags=["catalog"])
def get_catalog() -> Catalog:
    """Cells, tasks with their parameters and baselines, optimizers, init schemes, clip modes,
    the API's limits and the presets."""
    return catalog()


# -- what a run recorded --------------------------------------------------------------------


@router.get(
    "/runs/{run_id}/metrics",
    tags=["data"],
    response_model=list[StepMetricsPublic],
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}}},
)
def get_metrics(
    run: RunDep,
    storage: StorageDep,
    format: Literal["json", "csv"] = "json",
    since: Annotated[int, Query(ge=0, le=2**62, description="only steps after this one")] = 0,
) -> Response:
    """Every step's metrics, in step order (JSON list, or CSV with ?format=csv)."""
    rows = storage.metrics(run.id, since=since)
    if format == "csv":
        return Response(
            export.metrics_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{run.id}-metrics.csv"'},
        )
    return _json(rows)


@router.get("/runs/{run_id}/probes", tags=["data"], responses=NOT_FOUND)
def list_probes(run: RunDep, storage: StorageDep) -> list[int]:
    """The steps that have a probe frame, in order."""
    return storage.probe_steps(run.id)


ProbeStep = Annotated[
    str,
    Path(pattern=r"^(latest|[0-9]{1,12})$", description="a step number, or 'latest'", examples=["latest"]),
]
FrameFormat = Annotated[
    Literal["binary", "json"],
    Query(description="binary: the frame's bytes (docs/protocol.md); json: nested lists (docs/api.md)"),
]
FrameResolution = Annotated[
    Resolution,
    Query(description=f"full: as probed; display: pooled to at most {MAX_T} timesteps x {MAX_UNITS} units"),
]
BINARY = "application/octet-stream"
FRAME_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a probe frame: its bytes (default), or JSON with ?format=json",
        "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _stored_frame(data: bytes, format: str) -> Response:
    """Stored frame bytes as the request asked: as they are, or as JSON."""
    if format == "binary":
        return Response(data, media_type=BINARY)
    return _json(Frame.from_bytes(data).to_json())


def _made_frame(frame: Frame, format: str, resolution: Resolution) -> Response:
    """A frame made on request, at the resolution asked for, as bytes or JSON."""
    shown = frame.pooled() if resolution == "display" else frame
    return Response(shown.to_bytes(), media_type=BINARY) if format == "binary" else _json(shown.to_json())


@router.get(
    "/runs/{run_id}/probes/{step}",
    tags=["data"],
    response_model=ProbePublic,
    responses={404: {"description": "no such run, or no frame at that step"}, **FRAME_RESPONSES},
)
def get_probe(
    run: RunDep,
    step: ProbeStep,
    storage: StorageDep,
    format: FrameFormat = "binary",
    resolution: FrameResolution = "full",
) -> Response:
    """One probe frame: its bytes as the websocket sends them, or (?format=json) as JSON."""
    data = storage.probe(run.id, None if step == "latest" else int(step), resolution)
    if data is None:
        where = "yet" if step == "latest" else f"at step {int(step)}"
        raise HTTPException(404, f"run {run.id} has no probe frame {where}")
    return _stored_frame(data, format)


def _checkpoint(run_id: str, manager: ManagerDep) -> bytes:
    data = manager.checkpoint(run_id)
    if data is None:
        raise HTTPException(409, f"run {run_id} has no weights yet: they come with its first probe frame")
    return data


ATTACHED_409: dict[int | str, dict[str, Any]] = {409: {"description": "an attached run, or no weights yet"}}


@router.get(
    "/runs/{run_id}/checkpoint",
    tags=["data"],
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}, "description": "torch.save bytes"},
        **ATTACHED_409,
    },
)
def get_checkpoint(run: BuiltInRunDep, manager: ManagerDep) -> Response:
    """The latest weights: torch.save of {"config", "step", "state_dict" (loads into torch.nn.LSTM /
    GRU / RNN with batch_first=True), "readout", "vocab"}; torch.load(..., weights_only=True)."""
    return Response(
        _checkpoint(run.id, manager),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run.id}.pt"'},
    )


@router.get(
    "/runs/{run_id}/export",
    tags=["data"],
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/zip": {}}}},
)
def export_run(run: RunDep, storage: StorageDep, manager: ManagerDep) -> FileResponse:
    """A zip: config.json, metrics.csv, probes.npz (arrays "<step>/<name>") and checkpoint.pt (not
    for an attached run: its weights live in its script)."""
    fd, name = tempfile.mkstemp(prefix=f"gatescope-{run.id}-", suffix=".zip")
    os.close(fd)
    path = FilePath(name)
    try:
        export.write_export(storage, run.id, run.config, manager.checkpoint(run.id), path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"gatescope-{run.id}.zip",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# -- using the weights ----------------------------------------------------------------------


@router.post(
    "/runs/{run_id}/inspect",
    tags=["inference"],
    response_model=ProbePublic,
    responses={**NOT_FOUND, **ATTACHED_409, **FRAME_RESPONSES},
)
async def inspect_run(
    run: BuiltInRunDep,
    body: InspectCreate,
    manager: ManagerDep,
    limiter: LimiterDep,
    format: FrameFormat = "binary",
    resolution: FrameResolution = "full",
) -> Response:
    """Probe the run's latest weights on your own input, or on its own probe sample: a probe frame,
    as GET .../probes/{step} answers one (bytes by default, ?format=json, ?resolution=display).
    Its `outputs` are the model's: the prediction (adding), or logits (softmax: the next-character
    or class probabilities).

    With `inputs` there are no targets: the frame has no loss and null targets, and its gradients
    are those of placeholder targets (class 0, or 0.0), so read their shape; loss terms sit at the
    last step for many-to-one tasks, else at every step."""
    checkpoint = await anyio.to_thread.run_sync(_checkpoint, run.id, manager)
    config = run.config

    def compute() -> Response:
        frame = inference.inspect(
            run.id, config, checkpoint, text=body.text, inputs=body.inputs, probe=body.probe
        )
        return _made_frame(frame, format, resolution)

    try:
        return await anyio.to_thread.run_sync(compute, limiter=limiter)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post(
    "/runs/{run_id}/sample",
    tags=["inference"],
    responses={**NOT_FOUND, 409: {"description": "not a char_lm run (or attached), or no weights yet"}},
)
async def sample_run(
    run: BuiltInRunDep, body: SampleCreate, manager: ManagerDep, limiter: LimiterDep
) -> SampleResult:
    """Write text with a char_lm run's latest weights, one character at a time."""
    config = run.config
    if config.task.name != "char_lm":
        raise HTTPException(
            409, f"only char_lm runs can write text; run {run.id} trains on {config.task.name}"
        )
    checkpoint = await anyio.to_thread.run_sync(_checkpoint, run.id, manager)
    try:
        text = await anyio.to_thread.run_sync(
            lambda: inference.sample(
                config, checkpoint, body.prime, body.length, body.temperature, body.seed
            ),
            limiter=limiter,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return SampleResult(text=text)
