"""POST /api/texts and GET /api/texts/{id}: content-addressed, idempotent, within the text limit."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from starlette.testclient import TestClient

from app.services.schemas import LIMITS
from app.services.storage import DB_NAME
from tests.web.conftest import make_app


def test_a_text_is_stored_once_under_its_hash_and_read_back(client: TestClient) -> None:
    text = "To be, or not to be: that is the question. ¿Qué? 🙂\n" * 20
    answer = client.post("/api/texts", json={"text": text})
    assert answer.status_code == 201
    stored = answer.json()
    assert stored == {"id": hashlib.sha256(text.encode()).hexdigest()[:32], "chars": len(text)}
    again = client.post("/api/texts", json={"text": text})
    assert again.status_code == 201 and again.json() == stored  # idempotent
    assert client.get(f"/api/texts/{stored['id']}").json() == {**stored, "text": text}
    other = client.post("/api/texts", json={"text": text + "!"}).json()
    assert other["id"] != stored["id"]


def test_the_same_text_is_one_row(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        for _ in range(3):
            client.post("/api/texts", json={"text": "hello hello"})
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("SELECT count(*) FROM texts").fetchone() == (1,)
    db.close()


def test_texts_are_bounded_like_a_runs_text(client: TestClient) -> None:
    assert LIMITS.text_chars == 1_000_000
    biggest = "ab" * (LIMITS.text_chars // 2)
    assert client.post("/api/texts", json={"text": biggest}).json()["chars"] == LIMITS.text_chars
    too_long = client.post("/api/texts", json={"text": biggest + "c"})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "text"]
    assert client.post("/api/texts", json={"text": ""}).status_code == 422
    assert client.post("/api/texts", json={"text": "x", "extra": 1}).status_code == 422


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    missing = client.get("/api/texts/" + "0" * 32)
    assert missing.status_code == 404 and missing.json() == {
        "detail": f"there is no text with id {'0' * 32!r}"
    }
    assert client.get("/api/texts/not-a-hash").status_code == 422
    assert client.get("/api/texts/" + "A" * 32).status_code == 422


def test_texts_survive_a_restart(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        key = client.post("/api/texts", json={"text": "kept across restarts"}).json()["id"]
    with TestClient(make_app(tmp_path)) as client:
        assert client.get(f"/api/texts/{key}").json()["text"] == "kept across restarts"
