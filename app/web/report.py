"""The one-file report route: GET /api/runs/{id}/report?budget_mb= -> one self-contained HTML file.

What this is: a thin route that gathers what a run's report embeds (app.services.report) and
hands it to gatescope.report.build_report, as `python -m app report FILE` does too. Sent as an
attachment, gatescope-<name>-<id>.html. `?format=json` answers the snapshot the file embeds
instead (the same data, frames base64, thinned so that the JSON answer is within the budget):
what gatescope.show reads from a server.
What this is not: the HTML building (gatescope/report.py) or any array work (the services').
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from app.services.report import report_parts
from app.web.deps import NOT_FOUND, ManagerDep, RunDep, StorageDep, ViewsDep, require_token
from app.web.pages import plotly_js
from gatescope.report import DEFAULT_BUDGET_MB, build_report, fit

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"

router = APIRouter(prefix="/api", tags=["data"], dependencies=[Depends(require_token)])


def _filename(name: str | None, run_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or "").strip("-.")[:60]
    return f"gatescope-{slug}-{run_id}.html" if slug else f"gatescope-{run_id}.html"


@router.get(
    "/runs/{run_id}/report",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {"content": {"text/html": {}, "application/json": {}}},
        422: {"description": "a budget too small"},
    },
)
def run_report(
    run: RunDep,
    storage: StorageDep,
    manager: ManagerDep,
    views: ViewsDep,
    budget_mb: Annotated[
        float, Query(gt=0, le=500, description="the file's size budget in MB")
    ] = DEFAULT_BUDGET_MB,
    format: Annotated[
        Literal["html", "json"], Query(description="html: the file; json: the snapshot it embeds")
    ] = "html",
) -> Response:
    """One HTML file that draws the run's views from disk with no server and no network (its
    probe frames thinned evenly to fit `budget_mb`; the file says what was left out), or with
    `format=json` the snapshot it embeds, within the same budget."""
    public = manager.public(run)
    data, frames = report_parts(storage, views, run, public)
    try:
        if format == "json":
            text = fit([(data, frames)], budget_mb, lambda snaps: json.dumps(snaps[0], separators=(",", ":")))
            return Response(text, media_type="application/json")
        body = build_report(data, frames, STATIC_DIR, plotly_js(), budget_mb)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    name = _filename(public.name, run.id)
    return Response(
        body, media_type="text/html", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
