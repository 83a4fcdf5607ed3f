"""The FastAPI application: ``uvicorn app.main:app``, or ``create_app(settings)`` for tests.

What this is: the app factory. Its lifespan opens Storage(settings.data_dir), makes the Hub on the
running event loop, the view service (Views: the gradient-flow, sparkline and task caches), the
executor runs train on (app.services.executors.make_executor: local processes, or Ray when
GATESCOPE_RAY_ADDRESS is set; an unreachable Ray is logged once and the server serves stored
runs, refusing new ones with a 503), a RunManager and the attached-run service (AttachedRuns),
both publishing to the hub and then handing each display frame to the views; starts the manager
(which requeues the runs the last session left queued, reattaches those still training on Ray and
interrupts the others it left running) and then the attached runs' reaper;
and on exit stops the reaper (interrupting the attached runs still running) and the workers,
closes the hub, the views and the database. Creating the app starts nothing: only the lifespan
does. Routes live in app/web; static files and JSON are gzipped where it pays (compression.py).

What this is not: the routes (app/web/api.py, app/web/ws.py) or the services (app/services).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.services.attached import AttachedRuns
from app.services.disk import DiskGuard
from app.services.executors import ExecutorUnavailable, make_executor
from app.services.hub import Hub
from app.services.manager import RunManager
from app.services.messages import Message, ProbeMessage
from app.services.storage import Storage
from app.services.views import Views
from app.settings import Settings, get_settings
from app.web import (
    api,
    compression,
    diagnosis,
    docs,
    errors,
    estimate,
    forks,
    groups,
    ingest,
    interventions,
    lessons,
    pages,
    report,
    runs,
    security,
    sweeps,
    texts,
    ws,
)
from app.web import views as view_routes

# templates/ and static/ sit at the repository root, beside the app package.
# The package is installed editable, so this resolves to the source checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = PROJECT_ROOT / "static"

log = logging.getLogger("app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    security.warn_if_exposed(settings)
    storage = await anyio.to_thread.run_sync(Storage, settings.data_dir)
    hub = Hub(asyncio.get_running_loop())
    views = Views(storage)

    def publish(run_id: str, message: Message) -> None:
        hub.publish(run_id, message)  # viewers first; the rows of the gradient-flow view after
        if isinstance(message, ProbeMessage):
            views.remember(run_id, message.step, message.display)

    disk = DiskGuard(settings.data_dir, settings.min_free_mb)
    executor = await anyio.to_thread.run_sync(make_executor, settings)
    try:
        executor.check()
    except ExecutorUnavailable as exc:
        log.error("%s; stored runs are still served", exc)
    max_runs = await anyio.to_thread.run_sync(executor.capacity)
    manager = RunManager(storage, max_runs, publish, settings.run_storage_mb, disk, executor)
    attached = AttachedRuns(storage, publish, storage_mb=settings.run_storage_mb, disk=disk)
    app.state.storage, app.state.hub, app.state.views, app.state.manager = storage, hub, views, manager
    app.state.attached = attached
    app.state.inference_limiter = anyio.CapacityLimiter(api.INFERENCE_THREADS)
    try:
        await anyio.to_thread.run_sync(manager.start)
        attached.start()
        # gzip plotly.min.js now, off the loop, so the first page load does not wait ~0.5 s for it
        threading.Thread(target=pages.plotly_js_gzipped, name="gatescope-gzip-plotly", daemon=True).start()
        yield
    finally:
        with anyio.CancelScope(shield=True):
            try:
                try:
                    await anyio.to_thread.run_sync(attached.close)
                finally:
                    await anyio.to_thread.run_sync(manager.shutdown)
            finally:
                hub.close()
                views.close()
                storage.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Gatescope app for `settings` (default: from the GATESCOPE_* environment)."""
    app = FastAPI(
        title="Gatescope",
        version=__version__,
        description="Train small RNNs and watch their hidden states, gates and gradients live.",
        lifespan=lifespan,
        docs_url=None,  # app/web/docs.py serves /docs with Swagger UI's files from here, not a CDN
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings if settings is not None else get_settings()
    app.include_router(pages.router)  # first: its /static/vendor/plotly.min.js precedes the mount
    app.include_router(docs.router)  # and its /static/vendor/swagger-ui/ files
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api.health_router)
    app.include_router(api.router)
    app.include_router(estimate.router)  # before runs: POST /api/runs/estimate is no run id
    app.include_router(runs.router)
    app.include_router(report.router)
    app.include_router(interventions.router)
    app.include_router(forks.router)
    app.include_router(texts.router)
    app.include_router(groups.router)
    app.include_router(sweeps.router)
    app.include_router(lessons.router)
    app.include_router(diagnosis.router)
    app.include_router(ingest.router)
    app.include_router(view_routes.router)
    app.include_router(ws.router)
    errors.install(app)
    compression.install(app)
    security.install(app, app.state.settings)  # after errors: its middlewares wrap everything

    return app


app = create_app()
