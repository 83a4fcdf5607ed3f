"""/docs: Swagger UI served from this server (no CDN), under the one Content-Security-Policy.

The real browser check, Chromium with every request that leaves the server refused, is
tests/browser/test_docs.py."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from app.web import security
from app.web.docs import swagger_ui_dir


def test_the_docs_page_names_only_this_servers_files(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == security.CSP
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    for source in sources:
        assert client.get(source).status_code == 200, source


def test_swagger_ui_files_come_from_the_pinned_package(client: TestClient) -> None:
    bundle = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert bundle.content == (swagger_ui_dir() / "swagger-ui-bundle.js").read_bytes()
    assert b"SwaggerUIBundle" in bundle.content
    css = client.get("/static/vendor/swagger-ui/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css") and b".swagger-ui" in css.content
    assert client.get("/static/vendor/swagger-ui/index.html").status_code == 422  # only the files it needs
    assert client.get("/static/vendor/swagger-ui/../../../app/settings.py").status_code == 404


def test_no_page_loads_anything_from_a_cdn(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc would load from a CDN
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")
    for path in ("/", "/learn", "/compare", "/docs"):
        assert not re.search(r'(?:src|href)="(?:https?:)?//', client.get(path).text), path
