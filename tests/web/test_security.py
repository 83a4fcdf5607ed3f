"""Security and faults: token (header, query, login cookie), websocket Origin, CORS, body and rate
limits, response headers, the exposure warning, no tracebacks, and storage faults as sentences.

Read-only GET /api routes keep needing the token too when one is set (as before this module): the
issue asks at least for mutating routes and websockets, and runs' data is not public either. Only
/api/health, the pages, /login and /static are open.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from app.services.storage import DB_NAME, Storage, StorageError
from app.settings import Settings
from app.web import security

TOKEN = "s3cret-token"
BAD_RUN: dict[str, Any] = {"cell": "nope"}  # 422 once past the token: no worker is started
GOOD_RUN: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 4,
    "task": {"name": "adding", "seq_len": 6},
    "batch_size": 4,
    "steps": 5,
    "probe_every": 5,
}


def make(tmp_path: Path, **settings: Any) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path / "data", max_runs=1, **settings))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make(tmp_path, token=TOKEN)) as client:
        yield client


def ws_close_code(client: TestClient, url: str, **kwargs: Any) -> int:
    with client.websocket_connect(url, **kwargs) as websocket, pytest.raises(WebSocketDisconnect) as info:
        websocket.receive_text()
    return info.value.code


# -- the token --------------------------------------------------------------------------------


def test_mutating_routes_need_the_token(secured: TestClient) -> None:
    assert secured.post("/api/runs", json=BAD_RUN).status_code == 401
    assert secured.post("/api/compare", json={}).status_code == 401
    assert secured.delete("/api/runs/abc123").status_code == 401
    assert secured.post("/api/runs/abc123/stop").status_code == 401
    answer = secured.post("/api/runs", json=BAD_RUN, headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("this server needs a token")
    assert secured.get("/api/runs").status_code == 401  # reads need it too (see the module doc)
    assert secured.get("/api/health").status_code == 200
    assert secured.get("/login").status_code == 200


def test_the_token_by_header_query_or_login_cookie(secured: TestClient) -> None:
    header = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.post("/api/runs", json=BAD_RUN, headers=header).status_code == 422
    assert secured.post(f"/api/runs?token={TOKEN}", json=BAD_RUN).status_code == 422
    assert secured.delete("/api/runs/abc123", headers=header).status_code == 404

    wrong = secured.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert "not this server&#39;s token" in wrong.text or "not this server's token" in wrong.text
    assert "gatescope_token" not in secured.cookies

    right = secured.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    cookie = right.headers["set-cookie"].lower()
    assert "gatescope_token=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert secured.post("/api/runs", json=BAD_RUN).status_code == 422  # the cookie now goes along
    assert secured.delete("/api/runs/abc123").status_code == 404
    assert ws_close_code(secured, "/ws/runs/abc123") == 4404  # past the token check


def test_the_login_page_is_a_form_without_inline_script(secured: TestClient) -> None:
    page = secured.get("/login")
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login">' in page.text and 'name="token"' in page.text
    assert "<script" not in page.text


def test_the_websocket_needs_the_token(secured: TestClient) -> None:
    assert ws_close_code(secured, "/ws/runs/abc123") == 4401
    assert ws_close_code(secured, f"/ws/runs/abc123?token={TOKEN}") == 4404
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert ws_close_code(secured, "/ws/runs/abc123", headers=headers) == 4404


def test_an_empty_token_means_no_token(tmp_path: Path) -> None:
    assert Settings(token="").token is None
    assert Settings(token="  ").token is None
    with TestClient(make(tmp_path, token="")) as client:
        assert client.post("/api/runs", json=BAD_RUN).status_code == 422


# -- origins and CORS -------------------------------------------------------------------------


def test_the_websocket_refuses_foreign_origins(tmp_path: Path) -> None:
    with TestClient(
        make(tmp_path, allowed_origins="https://ok.example, http://also.example:8080/")
    ) as client:
        url = "/ws/runs/abc123"
        assert ws_close_code(client, url, headers={"Origin": "http://evil.example"}) == 4403
        assert ws_close_code(client, url, headers={"Origin": "http://testserver.evil"}) == 4403
        assert ws_close_code(client, url, headers={"Origin": "http://testserver"}) == 4404
        assert ws_close_code(client, url, headers={"Origin": "https://ok.example"}) == 4404
        assert ws_close_code(client, url, headers={"Origin": "http://also.example:8080"}) == 4404
        assert ws_close_code(client, url) == 4404  # no Origin: not a browser


def test_cors_is_off_unless_origins_are_configured(tmp_path: Path) -> None:
    origin = {"Origin": "https://ok.example"}
    with TestClient(make(tmp_path)) as client:
        answer = client.get("/api/health", headers=origin)
        assert "access-control-allow-origin" not in answer.headers
        preflight = client.options("/api/runs", headers={**origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
    with TestClient(make(tmp_path, allowed_origins="https://ok.example")) as client:
        answer = client.get("/api/health", headers=origin)
        assert answer.headers["access-control-allow-origin"] == "https://ok.example"
        other = client.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# -- limits -----------------------------------------------------------------------------------


def test_bodies_over_2_mb_get_413(tmp_path: Path) -> None:
    body = b'{"cell": "lstm", "task": {"name": "char_lm", "text": "' + b"a" * (3 * 1024 * 1024) + b'"}}'
    with TestClient(make(tmp_path)) as client:
        answer = client.post("/api/runs", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 413
        assert answer.json()["detail"] == "the request body is larger than 2 MB, the most this server accepts"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
            for start in range(0, len(body), 64 * 1024):
                yield body[start : start + 64 * 1024]

        streamed = client.post("/api/runs", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert "larger than 2 MB" in streamed.json()["detail"]
        # just under the limit is read (and refused by validation, not by size)
        small = client.post(
            "/api/runs", content=b"x" * (1024 * 1024), headers={"Content-Type": "application/json"}
        )
        assert small.status_code == 422


def test_run_creation_is_rate_limited_per_client(tmp_path: Path) -> None:
    with TestClient(make(tmp_path, run_rate=30, run_burst=10)) as client:
        for _ in range(10):
            assert client.post("/api/runs", json=BAD_RUN).status_code == 422
        limited = client.post("/api/compare", json={})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["detail"].startswith("too many new runs from your address: try again in")
        assert client.get("/api/runs").status_code == 200  # reads are not limited
    with TestClient(make(tmp_path, run_rate=0)) as client:  # 0: off
        for _ in range(15):
            assert client.post("/api/runs", json=BAD_RUN).status_code == 422


def test_the_token_bucket_refills() -> None:
    bucket = security.TokenBucket(rate_per_minute=30, burst=2)
    assert bucket.take("a", now=0.0) == 0.0
    assert bucket.take("a", now=0.0) == 0.0
    assert bucket.take("a", now=0.0) == pytest.approx(2.0)  # 0.5 a second
    assert bucket.take("b", now=0.0) == 0.0  # per client
    assert bucket.take("a", now=2.0) == 0.0


# -- headers, warnings, errors ----------------------------------------------------------------


def test_every_response_has_the_one_csp_and_the_security_headers(tmp_path: Path) -> None:
    paths = ["/api/health", "/api/runs", "/api/runs/nope", "/login", "/static/style.css"]
    paths += ["/", "/runs/abc", "/compare", "/learn", "/static/vendor/plotly.min.js"]
    with TestClient(make(tmp_path)) as client:
        for path in paths:
            headers = client.get(path).headers
            assert headers.get_list("content-security-policy") == [security.CSP], path
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"
            assert headers["x-frame-options"] == "DENY"
        assert client.get("/docs").headers["content-security-policy"] == security.CSP  # no inline script


def test_the_csp_allows_what_the_pages_draw_with_and_nothing_inline() -> None:
    policy = dict(part.split(" ", 1) for part in security.CSP.split("; "))
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["img-src"] == "'self' data: blob:"  # heatmaps: canvases drawn into images
    assert policy["connect-src"] == "'self' ws: wss:"  # the API and the run websocket
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["default-src"] == "'self'" and policy["form-action"] == "'self'"


@pytest.mark.anyio
async def test_a_route_cannot_send_a_second_csp() -> None:
    """The middleware replaces a response's own security headers: there is only one CSP."""
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        own = [(b"content-security-policy", b"default-src *"), (b"X-Frame-Options", b"ALLOW"), (b"x-a", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": own})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(message)

    await security.SecurityHeaders(app)({"type": "http", "path": "/x"}, None, send)  # type: ignore[arg-type]
    headers = [(k.decode().lower(), v.decode()) for k, v in sent[0]["headers"]]
    assert [v for k, v in headers if k == "content-security-policy"] == [security.CSP]
    assert [v for k, v in headers if k == "x-frame-options"] == ["DENY"]
    assert ("x-a", "1") in headers


def test_a_non_loopback_host_without_token_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app")
    with TestClient(make(tmp_path, host="0.0.0.0")):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("0.0.0.0" in m and "GATESCOPE_TOKEN" in m for m in warnings), warnings
    caplog.clear()
    for settings in (
        {"host": "127.0.0.1"},
        {"host": "::1"},
        {"host": "localhost"},
        {"host": "0.0.0.0", "token": "t"},
    ):
        with TestClient(make(tmp_path, **settings)):
            pass
    assert not [r for r in caplog.records if "GATESCOPE_TOKEN" in r.getMessage()]


def test_errors_never_leak_a_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = make(tmp_path)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail in /some/path")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error"}
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)  # but the log has it


# -- storage faults ---------------------------------------------------------------------------


def test_a_full_disk_is_a_503_with_a_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sentence = "the disk is full: /data/gatescope.db (while creating a run)"

    def full(self: Storage, *args: object, **kwargs: object) -> None:
        raise StorageError(sentence)

    monkeypatch.setattr(Storage, "create_run", full)
    with TestClient(make(tmp_path)) as client:
        answer = client.post("/api/runs", json=GOOD_RUN)
    assert answer.status_code == 503
    assert answer.json() == {"detail": sentence}
    assert answer.headers["retry-after"] == "5"
    assert any(sentence in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_a_locked_database_is_a_503_with_a_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("app.main.Storage", lambda data_dir: Storage(data_dir, busy_timeout=0.2))
    with TestClient(make(tmp_path)) as client:
        other = sqlite3.connect(tmp_path / "data" / DB_NAME, isolation_level=None, timeout=0.1)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            answer = client.post("/api/runs", json=GOOD_RUN)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert detail.startswith("the database is locked by another connection: ")
        assert DB_NAME in detail
        assert any(detail in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        assert client.post("/api/runs", json=GOOD_RUN).status_code == 201  # and it recovers
