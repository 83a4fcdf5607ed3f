"""/docs: Swagger UI over this server's OpenAPI schema, with every asset served from here.

What this is: the page (its HTML names only this server's files, so it works offline and under
the one Content-Security-Policy) and its assets, GET /static/vendor/swagger-ui/{file}: Swagger
UI's bundle and stylesheet as the pinned `swagger-ui-py` package ships them (no CDN; the page's
own start-up script is static/js/docs.js). FastAPI's own /docs and /redoc, which load Swagger UI
and ReDoc from a CDN, are turned off in app.main.

What this is not: the schema (FastAPI makes /openapi.json) or any API route.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

Asset = Literal["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"]
MEDIA_TYPES: dict[str, str] = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Gatescope API</title>
  <link rel="icon" href="/static/vendor/swagger-ui/favicon-32x32.png">
  <link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/js/docs.js"></script>
</body>
</html>
"""


def swagger_ui_dir() -> Path:
    """The swagger-ui-py package's static folder (found without importing the package)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - not installed
        raise RuntimeError("the swagger-ui-py package is not installed: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs", response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/static/vendor/swagger-ui/{name}")
def swagger_asset(name: Annotated[Asset, PathParam()]) -> FileResponse:
    """One of Swagger UI's files, as the pinned package ships it (cached by the browser a day)."""
    path = swagger_ui_dir() / name
    return FileResponse(
        path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=86400"}
    )
