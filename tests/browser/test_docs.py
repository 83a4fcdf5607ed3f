"""/docs in Chromium with every request that leaves the server refused: Swagger UI still draws
every operation of the schema (its files are served from here, app/web/docs.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import screenshot
from tests.live_server import LiveServer


def test_swagger_ui_renders_offline(
    gs_page: Page, server: LiveServer, http: httpx.Client, url: Callable[[str], str]
) -> None:
    refused: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    gs_page.route("**/*", only_this_server)
    gs_page.goto(url("/docs"))
    schema = http.get("/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    expect(gs_page.locator(".opblock")).to_have_count(operations)
    expect(gs_page.locator(".opblock-summary-path", has_text="/api/runs/estimate")).to_be_visible()
    expect(gs_page.locator(".opblock-summary-path", has_text="/api/texts")).to_have_count(2)
    assert refused == []  # nothing even tried to leave
    screenshot(gs_page, "docs-offline")
