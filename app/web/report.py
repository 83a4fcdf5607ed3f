"""The one-file report route: GET /api/runs/{id}/report?budget_mb= -> one self-contained HTML file.

What this is: a thin route that gathers what a run's report embeds (its public record, task,
the catalog, every stored step's metrics, applied interventions, the gradient flows of every
layer, both kinds, and its display frames) and hands them to gatescope.report.build_report, the
builder `gatescope report FILE` uses too. Sent as an attachment, gatescope-<name>-<id>.html.
What this is not: the HTML building (gatescope/report.py) or any array work (the services').
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from app.services.catalog import catalog
from app.services.schemas import RunCreate
from app.web.deps import NOT_FOUND, ManagerDep, RunDep, StorageDep, ViewsDep, require_token
from app.web.pages import plotly_js
from gatescope.report import DEFAULT_BUDGET_MB, build_report

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"
FLOW_ROWS = 2000  # gradient-flow rows embedded per layer and kind, as a page asks for

router = APIRouter(prefix="/api", tags=["data"], dependencies=[Depends(require_token)])


def _filename(name: str | None, run_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or "").strip("-.")[:60]
    return f"gatescope-{slug}-{run_id}.html" if slug else f"gatescope-{run_id}.html"


@router.get(
    "/runs/{run_id}/report",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"text/html": {}}}, 422: {"description": "a budget too small"}},
)
def run_report(
    run: RunDep,
    storage: StorageDep,
    manager: ManagerDep,
    views: ViewsDep,
    budget_mb: Annotated[
        float, Query(gt=0, le=500, description="the file's size budget in MB")
    ] = DEFAULT_BUDGET_MB,
) -> Response:
    """One HTML file that draws the run's views from disk with no server and no network (its
    probe frames thinned evenly to fit `budget_mb`; the file says what was left out)."""
    public = manager.public(run)
    config = public.config
    layers = getattr(config, "num_layers", 1)
    gradflow: dict[str, Any] = {}
    for kind in ("last", "total"):
        for layer in range(layers):
            gradflow[f"{kind}|{layer}"] = json.loads(views.gradflow(run.id, kind, layer, FLOW_ROWS).to_json())
    data: dict[str, Any] = {
        "run": public.model_dump(mode="json"),
        "task": views.run_task(run.id, config).model_dump(mode="json")
        if isinstance(config, RunCreate)
        else None,
        "catalog": catalog().model_dump(mode="json"),
        "metrics": storage.metrics(run.id),
        "interventions": [i.model_dump(mode="json") for i in storage.interventions(run.id)],
        "gradflow": gradflow,
    }
    frames = {
        s: b for s in storage.probe_steps(run.id) if (b := storage.probe(run.id, s, "display")) is not None
    }
    try:
        body = build_report(data, frames, STATIC_DIR, plotly_js(), budget_mb)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    name = _filename(public.name, run.id)
    return Response(
        body, media_type="text/html", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
