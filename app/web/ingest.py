"""The ingest endpoints: how `gatescope.watch` (or an import) puts an attached run on this server.

What this is: thin typed routes over `app.services.attached.AttachedRuns` (app.state.attached),
all under /api and the token (docs/api.md, "Attached runs"):

- POST /api/attach                 AttachCreate -> 201 AttachedGroup (one running run per module)
- POST /api/runs/{id}/steps        {"steps": [StepIn, ...]} -> IngestReply
- POST /api/runs/{id}/frames       one frame's bytes (at most 32 MiB) -> IngestReply
- POST /api/runs/{id}/heartbeat    no body -> IngestReply
- POST /api/runs/{id}/end          EndCreate -> RunPublic
- POST /api/import                 a run file's bytes (at most 512 MiB) -> 201 AttachedGroup

Binary bodies are read here and handed, with everything else, to the service in a worker thread
(checks and SQLite writes block). Errors are the services' exceptions, mapped by errors.py: 404
unknown run, 409 a built-in or ended run (ended: the body also says "stop": true) or a step or
frame already stored, 422 a bad body (naming the field or array and the bound), 413 too large
(security.BodyLimit), 507 an attach or import below the free-space floor (disk.DiskFull: nothing
stored).

What this is not: validation or storage (the service's), or the stop button (api.py's /stop).
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from app.core.frames import MAX_FRAME_BYTES
from app.services.attached import MAX_IMPORT_BYTES
from app.services.schemas import AttachCreate, AttachedGroup, EndCreate, IngestReply, RunPublic, StepsIn
from app.web.deps import DISK_FULL, AttachedDep, RunId, require_token

router = APIRouter(prefix="/api", tags=["ingest"], dependencies=[Depends(require_token)])

INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no run with this id"},
    409: {"description": 'a built-in or ended run (then also "stop": true), or already stored'},
}


def _binary(description: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads raw bytes."""
    content = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


@router.post("/attach", status_code=201, responses={429: {"description": "too many new runs"}, **DISK_FULL})
def attach(body: AttachCreate, attached: AttachedDep) -> AttachedGroup:
    """Attach a script's watch: one running run per watched module, in module order, one group."""
    return attached.attach(body)


@router.post("/runs/{run_id}/steps", responses=INGEST_ERRORS)
def add_steps(run_id: RunId, body: StepsIn, attached: AttachedDep) -> IngestReply:
    """Store a batch of step metrics, strictly increasing and after the run's last stored step."""
    return attached.add_steps(run_id, body)


@router.post(
    "/runs/{run_id}/frames",
    responses={**INGEST_ERRORS, 413: {"description": f"over {MAX_FRAME_BYTES // 2**20} MiB"}},
    openapi_extra=_binary("one probe frame's bytes (docs/protocol.md)"),
)
async def add_frame(run_id: RunId, request: Request, attached: AttachedDep) -> IngestReply:
    """Store one probe frame, checked whole against the run's module first."""
    data = await request.body()
    return await anyio.to_thread.run_sync(attached.add_frame, run_id, data)


@router.post("/runs/{run_id}/heartbeat", responses=INGEST_ERRORS)
def heartbeat(run_id: RunId, attached: AttachedDep) -> IngestReply:
    """Nothing to send, but the script is alive (any ingest request counts as one)."""
    return attached.heartbeat(run_id)


@router.post("/runs/{run_id}/end", responses=INGEST_ERRORS)
def end(run_id: RunId, body: EndCreate, attached: AttachedDep) -> RunPublic:
    """The script ends its run: completed, stopped (after a Stop) or failed (with its error)."""
    return attached.end(run_id, body).to_public()


@router.post(
    "/import",
    status_code=201,
    responses={
        413: {"description": f"over {MAX_IMPORT_BYTES // 2**20} MiB"},
        429: {"description": "too many new runs"},
        **DISK_FULL,
    },
    openapi_extra=_binary("a run file's bytes (gatescope.runfile, docs/protocol.md)"),
)
async def import_runfile(request: Request, attached: AttachedDep) -> AttachedGroup:
    """Bring in a run file that `gatescope.watch(server=None)` wrote: new runs, every step and frame
    (or, if anything in it is invalid, nothing)."""
    data = await request.body()
    return await anyio.to_thread.run_sync(attached.import_file, data)
