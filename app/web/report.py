"""The one-file report route: GET /api/runs/{id}/report?budget_mb= -> one self-contained HTML file.

What this is: a thin route that gathers what a run's report embeds (app.services.report) and
hands it to gatescope.report.build_report, as `python -m app report FILE` does too. Sent as an
attachment, gatescope-<name>-<id>.html. `?format=json` answers the snapshot the file embeds
instead (the same data, frames base64, thinned so that the JSON answer is within the budget):
what gatescope.show reads from a server. The group report (GET /api/report?runs=a,b,c, or
GET /api/groups/{group}/report for the runs one comparison made) is one file of 2 to
limits.compare_runs runs side by side (comparereport.js), the budget shared over them
(gatescope.report.share_budget).
What this is not: the HTML building (gatescope/report.py) or any array work (the services').
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi import Path as PathParam

from app.services.manager import RunManager
from app.services.report import report_parts
from app.services.run_query import RunQuery
from app.services.schemas import LIMITS
from app.services.storage import Storage
from app.services.views import Views
from app.web.deps import NOT_FOUND, ManagerDep, RunDep, StorageDep, ViewsDep, require_token
from gatescope.bundle import plotly_js, static_dir
from gatescope.report import DEFAULT_BUDGET_MB, build_group_report, build_report, fit

router = APIRouter(prefix="/api", tags=["data"], dependencies=[Depends(require_token)])
Budget = Annotated[float, Query(gt=0, le=500, description="the file's size budget in MB")]
HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}},
    422: {"description": "a budget too small, or too many runs"},
}


def _attachment(body: str, *parts: str) -> Response:
    """`body` as the attachment gatescope-<parts, each made file-name safe>.html."""
    slugs = [re.sub(r"[^A-Za-z0-9_.-]+", "-", p).strip("-.")[:60] for p in parts]
    name = "-".join(["gatescope", *(s for s in slugs if s)]) + ".html"
    return Response(
        body, media_type="text/html", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


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
    budget_mb: Budget = DEFAULT_BUDGET_MB,
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
        body = build_report(data, frames, static_dir(), plotly_js(), budget_mb)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return _attachment(body, public.name or "", run.id)


@router.get("/report", response_class=Response, responses={**NOT_FOUND, **HTML})
def runs_report(
    storage: StorageDep,
    manager: ManagerDep,
    views: ViewsDep,
    runs: Annotated[str, Query(max_length=1000, description="the runs' ids, comma-separated")],
    budget_mb: Budget = DEFAULT_BUDGET_MB,
) -> Response:
    """One HTML file of 2 to limits.compare_runs runs side by side, in the order given (the compare
    page's columns), on shared scales, opened from disk with no server."""
    ids = [i.strip() for i in runs.split(",") if i.strip()]
    if len(set(ids)) != len(ids):
        raise HTTPException(422, f"?runs= names a run twice ({runs}): name each run once")
    return _group_file(ids, "-".join(ids), storage, manager, views, budget_mb)


@router.get(
    "/groups/{group}/report",
    response_class=Response,
    responses={404: {"description": "no run in this group"}, **HTML},
)
def group_report(
    group: Annotated[str, PathParam(min_length=1, max_length=64, description="the group's id")],
    storage: StorageDep,
    manager: ManagerDep,
    views: ViewsDep,
    budget_mb: Budget = DEFAULT_BUDGET_MB,
) -> Response:
    """The runs one comparison (POST /api/compare, POST /api/groups, one watch) made together, in
    the order they were made, as one file side by side (like GET /api/report?runs=)."""
    summaries, total = storage.list_runs(RunQuery(group=group), limit=LIMITS.compare_runs + 1)
    if not total:
        raise HTTPException(404, f"there is no comparison group {group!r}: no run has it as its group")
    if total > LIMITS.compare_runs:
        raise HTTPException(
            422,
            f"group {group!r} has {total} runs (a sweep?); a group report holds at most "
            f"{LIMITS.compare_runs}: pick some with GET /api/report?runs=a,b,c",
        )
    ids = [s.id for s in reversed(summaries)]  # listed newest first
    return _group_file(ids, group, storage, manager, views, budget_mb)


def _group_file(
    ids: list[str], stem: str, storage: Storage, manager: RunManager, views: Views, budget_mb: float
) -> Response:
    """The group report of the runs `ids` as an attachment gatescope-compare-<stem>.html; 422 for
    a count outside 2..limits.compare_runs or a budget too small, 404 for an id no run has."""
    if not 2 <= len(ids) <= LIMITS.compare_runs:
        one = f": one run's report is GET /api/runs/{ids[0]}/report" if len(ids) == 1 else ""
        raise HTTPException(
            422, f"a report side by side holds 2 to {LIMITS.compare_runs} runs, not {len(ids)}{one}"
        )
    found = [storage.get_run(i) for i in ids]
    records = [r for r in found if r is not None]
    if len(records) < len(ids):
        raise HTTPException(404, f"there is no run with id {ids[found.index(None)]!r}")
    publics = [manager.public(r) for r in records]
    parts = [report_parts(storage, views, r, p) for r, p in zip(records, publics, strict=True)]
    title = " | ".join(p.name or p.id for p in publics)
    try:
        body = build_group_report(parts, title, static_dir(), plotly_js(), budget_mb)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return _attachment(body, "compare", stem)
