"""The HTML pages and the plotly.js they load: served, strict CSP, no inline script anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatescope.bundle import plotly_js
from tests.web.conftest import Served

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/runs/abc123", "/compare?runs=a,b,c", "/learn"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_with_a_strict_csp_and_no_inline_script(served: Served, path: str) -> None:
    response = served.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-eval" not in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    body = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", body, re.S)
    assert scripts, "every page loads its module"
    for attrs, content in scripts:
        assert 'src="/static/' in attrs and not content.strip(), f"inline script in {path}"
    assert not re.search(r"\son[a-z]+\s*=", body), f"inline event handler in {path}"
    assert "/static/vendor/plotly.min.js" in body


def test_run_page_carries_the_run_id_as_data(served: Served) -> None:
    body = served.client.get(f"/runs/{served.hello}").text
    assert f'data-run-id="{served.hello}"' in body
    assert '<script type="module" src="/static/js/run.js">' in body


def test_run_page_escapes_the_id(served: Served) -> None:
    body = served.client.get("/runs/%3Cb%3Ex").text
    assert "<b>x" not in body and "&lt;b&gt;x" in body


def test_plotly_is_served_from_the_python_package_with_cache_headers(served: Served) -> None:
    response = served.client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "max-age=" in response.headers["cache-control"]
    assert response.content == plotly_js().read_bytes()
    assert b"plotly.js v" in response.content[:200]


def test_every_module_a_page_loads_is_served(served: Served) -> None:
    """Every script a template names and every module a module imports is served as JavaScript."""
    js = REPO_ROOT / "static" / "js"
    wanted = {
        m
        for t in (REPO_ROOT / "templates").glob("*.html")
        for m in re.findall(r'src="/static/js/([\w-]+\.js)"', t.read_text())
    }
    wanted |= {m for path in js.glob("*.js") for m in re.findall(r'from "\./([\w-]+\.js)"', path.read_text())}
    assert {"dashboard.js", "run.js", "compare.js", "learn.js", "api.js"} <= wanted
    for name in sorted(wanted):
        response = served.client.get(f"/static/js/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.headers["content-type"]


def test_js_modules_stay_small_and_never_eval() -> None:
    for path in sorted((REPO_ROOT / "static" / "js").glob("*.js")):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path.name} is over 400 lines"
        assert "eval(" not in text and "new Function" not in text, path.name


def test_pages_are_not_in_the_api_schema(served: Served) -> None:
    paths = served.client.get("/openapi.json").json()["paths"]
    assert not {"/", "/learn", "/compare", "/runs/{run_id}"} & set(paths)


def _modules(name: str, seen: set[str] | None = None) -> set[str]:
    """`name` and every module it imports, transitively (static/js/*.js)."""
    seen = set() if seen is None else seen
    if name not in seen:
        seen.add(name)
        text = (REPO_ROOT / "static" / "js" / name).read_text()
        for imported in re.findall(r'from "\./([\w-]+\.js)"', text):
            _modules(imported, seen)
    return seen


def test_every_element_a_page_module_looks_up_is_on_its_page() -> None:
    """Each id a page's modules read with $("...") / getElementById is in the page's template, or
    made by one of those modules (`id: "..."`): a view renamed in one place fails here, not as a
    null in a user's console. The attached run's head, notes and explanations are checked too."""
    checked = 0
    for template in sorted((REPO_ROOT / "templates").glob("*.html")):
        html = template.read_text() + (REPO_ROOT / "templates" / "base.html").read_text()
        entry = re.findall(r'src="/static/js/([\w-]+\.js)"', html)
        if not entry:
            continue
        sources = [(REPO_ROOT / "static" / "js" / m).read_text() for m in _modules(entry[0])]
        made = {i for js in sources for i in re.findall(r'\bid: "([\w-]+)"', js)}
        present = set(re.findall(r'\bid="([\w-]+)"', html)) | made
        wanted = {i for js in sources for i in re.findall(r'(?:\$|getElementById)\("([\w-]+)"\)', js)}
        missing = wanted - present
        assert not missing, f"{template.name}: no element with id {sorted(missing)}"
        checked += len(wanted)
    assert checked > 60  # the pages do look their elements up this way


def test_run_page_hides_what_only_an_attached_run_shows(served: Served) -> None:
    """The "attached" badge and the tools' explanation stay hidden until run.js reads the run."""
    body = served.client.get(f"/runs/{served.hello}").text
    for node in ("run-kind", "tools-attached", "frame-info"):
        assert re.search(rf'id="{node}"[^>]*\shidden\b', body), node
