"""How errors become HTTP answers: always {"detail": "a sentence"}, never a traceback.

What this is: `install(app)` maps the services' exceptions to status codes (RunNotFound 404,
WrongState and NotCharLMError 409, frame_checks.Invalid and estimates.TooCostly 422, QueueFull
429, StorageError and executors.ExecutorUnavailable 503, disk.DiskFull 507; an exception with
`stop = True`, attached.RunEnded, adds "stop": true to the body), answers request validation
errors as FastAPI does but with non-finite inputs (a JSON body may say NaN) written as strings,
and adds `CatchAll`, an ASGI middleware that turns any other exception into a logged 500
{"detail": "internal error"} (Starlette's own handler would re-raise it after answering). What
this is not: validation, which pydantic and app.core do; their 422 bodies name the field and the
limit.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.disk import DiskFull
from app.services.estimates import TooCostly
from app.services.executors import ExecutorUnavailable
from app.services.frame_checks import Invalid
from app.services.inference import NotCharLMError
from app.services.manager import QueueFull, RunNotFound, WrongState
from app.services.storage import StorageError

log = logging.getLogger("app.web")

STATUS: dict[type[Exception], int] = {
    RunNotFound: 404,
    WrongState: 409,
    NotCharLMError: 409,
    Invalid: 422,
    TooCostly: 422,
    QueueFull: 429,
    StorageError: 503,
    ExecutorUnavailable: 503,
    DiskFull: 507,
}


def _sentence(exc: Exception, fallback: str) -> str:
    text = str(exc).strip()
    return text or fallback


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    retry = status == 429 or isinstance(exc, StorageError)  # an unreachable Ray waits for a restart
    if isinstance(exc, StorageError):  # (that one was logged once, at start)
        log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": "5"} if retry else None
    body: dict[str, object] = {"detail": _sentence(exc, type(exc).__name__)}
    if getattr(exc, "stop", False):
        body["stop"] = True  # an ended attached run: its script should stop sending
    return JSONResponse(body, status_code=status, headers=headers)


class CatchAll:
    """Answer any unhandled exception with a plain 500, and log it with its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a status code: the client sees a cut-off response
                return
            response = JSONResponse({"detail": "internal error"}, status_code=500)
            await response(scope, receive, send)


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity written as a string, so that it can be JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


def install(app: FastAPI) -> None:
    for kind in STATUS:
        app.add_exception_handler(kind, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_middleware(CatchAll)
