"""View routes: what the pages draw beyond a frame, answered from the view service.

What this is: thin read-only routes over `app.services.views.Views` (app.state.views):

- GET /api/runs/{id}/gradflow?kind=last|total&layer=&max_rows=&since= — the gradient-flow
  heatmap at display width: one row per probe frame, thinned evenly to `max_rows` (always the
  first frame and the last); with `since`, only the rows of steps after it, for a page to append.
- GET /api/runs/{id}/spectra?max_rows=&since= — W_hh's spectral radius and top singular values
  of every layer, direction and gate block at each probe step (the run page's "Why" section).
- GET /api/runs/{id}/task — the run's task with the baseline loss at the run's own parameters
  and, for char_lm, the text its probe sample reads.
- GET /api/sparklines?ids=a,b&points= — each run's loss, bucketed to `points` means.

What this is not: the REST API of record (app/web/api.py), the frames (GET .../probes/{step}
there, ?resolution=display for a display frame) or any numpy: that is the service's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.core.flow import FlowKind
from app.services.spectra import Spectra
from app.services.views import GradFlow, RunTask, Sparkline
from app.web.deps import BuiltInRunDep, RunDep, StorageDep, ViewsDep, require_token

MAX_ROWS = 2000  # gradient-flow rows a page gets by default
SPARKLINE_RUNS = 100  # runs one sparkline request may name

router = APIRouter(prefix="/api", tags=["views"], dependencies=[Depends(require_token)])


@router.get(
    "/runs/{run_id}/gradflow",
    response_model=GradFlow,
    responses={404: {"description": "no run with this id"}},
)
def gradflow(
    run: RunDep,
    views: ViewsDep,
    kind: FlowKind = "last",
    layer: Annotated[int, Query(ge=0, le=8, description="the layer (the top one if larger)")] = 0,
    max_rows: Annotated[int, Query(ge=2, le=10_000, description="rows at most, thinned evenly")] = MAX_ROWS,
    since: Annotated[int | None, Query(ge=0, description="only the rows of steps after this one")] = None,
) -> Response:
    """The gradient-flow heatmap: ||dl_T/dh_t|| (kind=last) or ||dL/dh_t|| (kind=total) of the
    run's probe frames at display width (columns pooled by max; `t` names each column's first t)."""
    flow = views.gradflow(run.id, kind, layer, max_rows, since)
    return Response(flow.to_json(), media_type="application/json")


@router.get(
    "/runs/{run_id}/spectra",
    responses={404: {"description": "no run with this id"}},
)
def spectra(
    run: RunDep,
    views: ViewsDep,
    max_rows: Annotated[int, Query(ge=2, le=10_000, description="rows at most, thinned evenly")] = MAX_ROWS,
    since: Annotated[int | None, Query(ge=0, description="only the rows of steps after this one")] = None,
) -> Spectra:
    """W_hh's spectral radius and its top singular values at each probe step, per layer,
    direction and gate block, read from the stored frames (built-in and attached runs); frames
    without them are counted in `left_out` and `notes` says why."""
    return views.spectra(run.id, max_rows, since)


@router.get(
    "/runs/{run_id}/task",
    responses={404: {"description": "no run with this id"}, 409: {"description": "an attached run"}},
)
def run_task(run: BuiltInRunDep, views: ViewsDep) -> RunTask:
    """The run's task, with its baseline loss at the run's parameters (the catalog has it only at
    the defaults) and, for char_lm, `probe_text`: what the run's probe sample reads. An attached
    run's task is its script's own: 409."""
    return views.run_task(run.id, run.config)


@router.get("/sparklines")
def sparklines(
    storage: StorageDep,
    views: ViewsDep,
    ids: Annotated[str, Query(max_length=2000, description="run ids, comma separated")] = "",
    points: Annotated[int, Query(ge=2, le=1000)] = 60,
) -> dict[str, Sparkline]:
    """Each named run's loss as at most `points` bucket means (unknown ids are left out)."""
    out: dict[str, Sparkline] = {}
    for run_id in list(dict.fromkeys(i for i in ids.split(",") if i))[:SPARKLINE_RUNS]:
        if len(run_id) <= 64 and storage.get_run(run_id) is not None:
            out[run_id] = views.sparkline(run_id, points)
    return out
