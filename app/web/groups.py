"""POST /api/groups: several runs started at once, all of them or none (each /learn demo is one).

What this is: one thin route. Every run's config is checked against the server's cost limits
(app.services.estimates.check_cost) before any is queued, then RunManager.submit_group stores
them in one group, all or none (429 when the queue cannot take them all), and starts what the
free slots allow. The run rate limit (security.RATE_LIMITED) counts the request once, however
many runs it holds. Each run is named by the request (GroupRun.name).

What this is not: POST /api/compare (one config over several cells, runs.py), or validation:
the models (GroupCreate) say what a body may hold.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException

from app.services.estimates import TooCostly, check_cost
from app.services.schemas import CompareGroup, GroupCreate
from app.web.deps import DISK_FULL, ManagerDep, SettingsDep, require_token

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


@router.post(
    "/groups",
    status_code=201,
    responses={
        422: {"description": "a run is invalid or beyond the server's cost limits: none was started"},
        429: {"description": "too many new runs, or the queue cannot take them all: none was started"},
        **DISK_FULL,
    },
)
def create_group(body: GroupCreate, manager: ManagerDep, settings: SettingsDep) -> CompareGroup:
    """Queue every run of the body as one group, in its order, each with its name; all or none."""
    for i, run in enumerate(body.runs):
        try:
            check_cost(run.config, settings)
        except TooCostly as exc:
            raise HTTPException(
                422, f"runs[{i}] ({run.name!r}): {exc}. None of the runs was started"
            ) from exc
    group = uuid.uuid4().hex[:12]
    records = manager.submit_group([run.config for run in body.runs], group)
    return CompareGroup(group=group, runs=[manager.public(record) for record in records])
