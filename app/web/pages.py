"""The HTML pages (dashboard, one run, one sweep, comparison, guided tour) and the plotly.js they draw with.

What this is: page routes that render Jinja2 templates from templates/. A page carries no data
and no inline script: its module under static/js/ reads data-* attributes and the URL, then
fetches what it needs from /api. Every page is sent with the strict Content-Security-Policy that
security.py sets on every response (scripts only from this origin: no inline scripts or
handlers, no eval). plotly.js is served from the plotly Python package (gzipped once), so the
pages work offline.

What this is not: the API (app/web/api.py, views.py) or the static files themselves
(static/ is mounted by app/main.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from app import __version__
from app.web.compression import accepts_gzip, gzipped
from gatescope.bundle import plotly_js

PROJECT_ROOT = Path(__file__).resolve().parents[2]
templates = Jinja2Templates(directory=PROJECT_ROOT / "templates")

VENDOR_MAX_AGE = 7 * 24 * 3600

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, page: str, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"version": __version__, "page": page, **context})


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    """Runs, the new-run form and the presets."""
    return _page(request, "index.html", "dashboard")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: Annotated[str, PathParam(max_length=64)]) -> HTMLResponse:
    """One run, live."""
    return _page(request, "run.html", "run", run_id=run_id)


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: Annotated[str, PathParam(max_length=64)]) -> HTMLResponse:
    """One sweep: its progress and the trainability phase diagram."""
    return _page(request, "sweep.html", "sweep", sweep_id=sweep_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    """Runs side by side on shared scales (?runs=a,b,c)."""
    return _page(request, "compare.html", "compare")


@router.get("/learn", response_class=HTMLResponse)
def learn_page(request: Request) -> HTMLResponse:
    """A guided tour of RNNs and LSTMs, with one-click live demos."""
    return _page(request, "learn.html", "learn")


@cache
def plotly_js_gzipped() -> bytes:
    """plotly.min.js gzipped, once per process (4.8 MB -> 1.4 MB)."""
    return gzipped(plotly_js().read_bytes())


@router.get("/static/vendor/plotly.min.js", response_model=None)
def vendor_plotly(accept_encoding: Annotated[str, Header()] = "") -> Response:
    """plotly.js from the installed plotly package (no CDN), gzipped when the client takes it,
    cached for a week."""
    headers = {"Cache-Control": f"public, max-age={VENDOR_MAX_AGE}", "Vary": "Accept-Encoding"}
    if accepts_gzip(accept_encoding):
        headers["Content-Encoding"] = "gzip"
        return Response(plotly_js_gzipped(), media_type="text/javascript", headers=headers)
    return FileResponse(plotly_js(), media_type="text/javascript", headers=headers)
