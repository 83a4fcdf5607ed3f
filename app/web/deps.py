"""FastAPI dependencies: the services the lifespan put on app.state, the run a path names, the token.

What this is: `Annotated[..., Depends(...)]` aliases (StorageDep, ManagerDep, AttachedDep, HubDep, ViewsDep,
SettingsDep, RunDep, BuiltInRunDep: a run this server trains, else 409) that routes take as typed
parameters, and `require_token`, which every /api route but the health check and the websocket
depend on. What this is not: where the services are created
(app/main.py's lifespan does that).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, cast

import anyio
from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from app.services.attached import AttachedRuns
from app.services.hub import Hub
from app.services.manager import RunManager
from app.services.records import RunRecord
from app.services.schemas import RunCreate
from app.services.storage import Storage
from app.services.views import Views
from app.settings import Settings
from app.web.security import presented_token


def get_storage(conn: HTTPConnection) -> Storage:
    return cast(Storage, conn.app.state.storage)


def get_manager(conn: HTTPConnection) -> RunManager:
    return cast(RunManager, conn.app.state.manager)


def get_attached(conn: HTTPConnection) -> AttachedRuns:
    return cast(AttachedRuns, conn.app.state.attached)


def get_hub(conn: HTTPConnection) -> Hub:
    return cast(Hub, conn.app.state.hub)


def get_views(conn: HTTPConnection) -> Views:
    return cast(Views, conn.app.state.views)


def get_settings(conn: HTTPConnection) -> Settings:
    return cast(Settings, conn.app.state.settings)


def get_inference_limiter(conn: HTTPConnection) -> anyio.CapacityLimiter:
    """How many inspect/sample computations may run at once (one limiter per app, on its loop)."""
    return cast(anyio.CapacityLimiter, conn.app.state.inference_limiter)


StorageDep = Annotated[Storage, Depends(get_storage)]
ManagerDep = Annotated[RunManager, Depends(get_manager)]
AttachedDep = Annotated[AttachedRuns, Depends(get_attached)]
HubDep = Annotated[Hub, Depends(get_hub)]
ViewsDep = Annotated[Views, Depends(get_views)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_inference_limiter)]
RunId = Annotated[str, Path(min_length=1, max_length=64, description="the run's id")]


def get_run(run_id: RunId, storage: StorageDep) -> RunRecord:
    """The run the path names; 404 with a sentence if there is none."""
    record = storage.get_run(run_id)
    if record is None:
        raise HTTPException(404, f"there is no run with id {run_id!r}")
    return record


RunDep = Annotated[RunRecord, Depends(get_run)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no run with this id"}}
DISK_FULL: dict[int | str, dict[str, Any]] = {
    503: {"description": "storage failed, or the Ray cluster (GATESCOPE_RAY_ADDRESS) is unreachable"},
    507: {"description": "the disk is below the server's free-space floor (GATESCOPE_MIN_FREE_MB)"},
}


@dataclass(frozen=True)
class BuiltInRun:
    """A run this server trains: its id and its RunCreate."""

    id: str
    config: RunCreate


def get_built_in_run(run: RunDep) -> BuiltInRun:
    """The run the path names, if it is built-in; 409 for an attached run (its weights are not here)."""
    config = run.to_public().config
    if not isinstance(config, RunCreate):
        raise HTTPException(
            409, f"run {run.id} is attached: its weights live in your script, not on this server"
        )
    return BuiltInRun(run.id, config)


BuiltInRunDep = Annotated[BuiltInRun, Depends(get_built_in_run)]

_bearer = HTTPBearer(auto_error=False, description="the server's GATESCOPE_TOKEN, when it has one")


def token_ok(settings: Settings, presented: str | None) -> bool:
    """True if the server has no token, or `presented` is it (compared in constant time)."""
    if settings.token is None:
        return True
    return presented is not None and hmac.compare_digest(presented.encode(), settings.token.encode())


def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> None:
    """401 unless the request carries the server's token (Authorization: Bearer, ?token= or the
    cookie POST /login sets; `credentials` and `token` are parameters for the OpenAPI schema)."""
    if not token_ok(settings, presented_token(request)):
        raise HTTPException(
            401,
            "this server needs a token: send Authorization: Bearer <token>, or log in at /login",
            headers={"WWW-Authenticate": "Bearer"},
        )
