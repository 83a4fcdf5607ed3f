"""The runs routes (app/web/runs.py): the list's filters, paging and total, its summaries, renaming
and tagging, bulk delete (all or nothing) and the disk that deleting gives back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.core.tasks import MAX_TEXT_CHARS
from app.services.records import RunRecord
from app.services.schemas import LIMITS, AttachCreate, AttachedConfig, RunCreate
from app.services.storage import Storage
from tests.web.conftest import ADDING

T0 = datetime(2024, 5, 1, tzinfo=UTC)
CELLS = ("rnn_tanh", "lstm", "gru")
STATUSES = ("completed", "failed", "stopped")


def _storage(client: TestClient) -> Storage:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    return storage


def _store(client: TestClient, run_id: str, minutes: int, status: str = "completed", **config: Any) -> None:
    """A run written straight into storage (no worker): listing, renaming and deleting need none."""
    record = RunRecord.new(run_id, RunCreate.model_validate({**ADDING, **config}))
    record.created_at = T0 + timedelta(minutes=minutes)
    record.status = status  # type: ignore[assignment]
    _storage(client).create_run(record)


@pytest.fixture
def sixty(client: TestClient) -> TestClient:
    """60 finished runs: run00 (oldest) .. run59, cells, statuses and tags in turn, every 10th named."""
    for i in range(60):
        tags = ["sweep"] + (["odd"] if i % 2 else [])
        name = f"lr sweep {i}" if i % 10 == 0 else None
        _store(client, f"run{i:02d}", i, STATUSES[i % 3], cell=CELLS[i % 3], tags=tags, name=name)
    return client


def _ids(client: TestClient, **params: Any) -> tuple[list[str], int]:
    response = client.get("/api/runs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [r["id"] for r in body["items"]], body["total"]


def test_pages_are_newest_first_and_cover_every_run_once(sixty: TestClient) -> None:
    seen: list[str] = []
    for offset in range(0, 60, 25):
        page, total = _ids(sixty, limit=25, offset=offset)
        assert total == 60
        seen += page
    assert seen == [f"run{i:02d}" for i in reversed(range(60))]
    assert _ids(sixty, offset=60) == ([], 60)
    assert _ids(sixty)[0] == seen[:50]  # 50 by default


def test_filters_combine_and_the_total_counts_what_matches(sixty: TestClient) -> None:
    assert _ids(sixty, status="failed")[1] == 20
    assert _ids(sixty, status=["failed", "stopped"])[1] == 40  # a repeated status: any of them
    assert _ids(sixty, cell="lstm")[1] == 20 and _ids(sixty, task="adding")[1] == 60
    assert _ids(sixty, task="copy") == ([], 0) and _ids(sixty, kind="attached") == ([], 0)
    assert _ids(sixty, tag="odd")[1] == 30
    assert _ids(sixty, tag=["odd", "sweep"])[1] == 30  # a repeated tag: every one of them
    assert _ids(sixty, tag=["odd", "nope"]) == ([], 0)
    assert _ids(sixty, q="LR SWEEP") == ([f"run{i}0" for i in (5, 4, 3, 2, 1, 0)], 6)  # names, any case
    assert _ids(sixty, q="run4") == ([f"run4{i}" for i in reversed(range(10))], 10)  # ids
    page, total = _ids(sixty, q="sweep", status="completed", cell="rnn_tanh", limit=3, offset=1)
    assert total == 20 and page == ["run54", "run51", "run48"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"cell": "transformer"}, "cell"),
        ({"task": "chess"}, "task"),
        ({"kind": "borrowed"}, "kind"),
        ({"limit": 0}, "limit"),
        ({"limit": LIMITS.runs_page + 1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
        ({"tag": ""}, "tag"),
        ({"tag": "x" * (LIMITS.tag_chars + 1)}, "tag"),
        ({"q": "x" * (LIMITS.name_chars + 1)}, "q"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/api/runs", params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"][:2] == ["query", field] and len(error["msg"].split()) >= 3, error  # a sentence


def test_the_list_carries_summaries_not_a_custom_text(client: TestClient) -> None:
    text = ("the quick brown fox jumps over the lazy dog\n" * 23_000)[:MAX_TEXT_CHARS]
    task = {"name": "char_lm", "corpus": "custom", "text": text, "seq_len": 20}
    _store(client, "big", 0, task=task, name="a big text")
    response = client.get("/api/runs")
    assert response.status_code == 200 and len(response.content) < 2000, len(response.content)
    (item,) = response.json()["items"]
    assert item["config"]["task"] == {"name": "char_lm", "corpus": "custom", "seq_len": 20}
    assert item["name"] == "a big text" and item["config"]["cell"] == "gru"
    whole = client.get("/api/runs/big").json()
    assert whole["config"]["task"]["text"] == text  # the run itself has it


def test_a_run_is_named_and_tagged_when_created_and_renamed_later(client: TestClient) -> None:
    blank = client.post("/api/runs", json={**ADDING, "name": "   "})
    assert blank.status_code == 422 and "must not be blank" in blank.text
    assert client.get("/api/runs").json()["total"] == 0  # nothing queued
    bad = client.post("/api/runs", json={**ADDING, "tags": ["fine", "no=good"]})
    assert bad.status_code == 422 and "'no=good'" in bad.text
    _store(client, "r1", 0, name=" first try ", tags=["a", " b ", "a"])
    run = client.get("/api/runs/r1").json()
    assert (run["name"], run["tags"], run["config"]["name"]) == ("first try", ["a", "b"], "first try")

    renamed = client.patch("/api/runs/r1", json={"name": "second try"})
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["tags"]) == ("second try", ["a", "b"])  # tags kept
    tagged = client.patch("/api/runs/r1", json={"tags": ["final"]}).json()
    assert (tagged["name"], tagged["tags"], tagged["config"]["tags"]) == ("second try", ["final"], ["final"])
    listed = client.get("/api/runs", params={"q": "second"}).json()["items"]
    assert [(r["id"], r["name"], r["tags"]) for r in listed] == [("r1", "second try", ["final"])]
    cleared = client.patch("/api/runs/r1", json={"name": None, "tags": []}).json()
    assert (cleared["name"], cleared["tags"]) == (None, [])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "nothing to change"),
        ({"name": ""}, "must not be blank"),
        ({"name": "x" * (LIMITS.name_chars + 1)}, f"at most {LIMITS.name_chars} characters"),
        ({"tags": None}, "tags must be a list"),
        ({"tags": ["ok", "a;b"]}, "'a;b'"),
        ({"tags": [f"t{i}" for i in range(LIMITS.tags + 1)]}, f"at most {LIMITS.tags} items"),
        ({"title": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_patches_are_422_and_change_nothing(client: TestClient, body: dict[str, Any], words: str) -> None:
    _store(client, "r1", 0, name="kept", tags=["kept"])
    response = client.patch("/api/runs/r1", json=body)
    assert response.status_code == 422 and words in response.text, response.text
    run = client.get("/api/runs/r1").json()
    assert (run["name"], run["tags"]) == ("kept", ["kept"])


def test_patching_an_unknown_run_is_404(client: TestClient) -> None:
    response = client.patch("/api/runs/nosuchrun", json={"name": "x"})
    assert response.status_code == 404 and "nosuchrun" in response.json()["detail"]


def test_an_attached_run_is_named_by_its_watch_and_renamed_like_any(client: TestClient) -> None:
    module = {
        "path": "rnn",
        "cell": "lstm",
        "input_size": 2,
        "hidden_size": 3,
        "num_layers": 1,
        "bidirectional": False,
        "batch_first": True,
        "bias": True,
        "dropout": 0.0,
    }
    attach = AttachCreate.model_validate({"name": "my script", "modules": [module]})
    _storage(client).create_run(RunRecord.attached("att", AttachedConfig.of(attach, attach.modules[0]), "w"))
    assert client.get("/api/runs/att").json()["name"] == "my script"
    renamed = client.patch("/api/runs/att", json={"name": "encoder", "tags": ["mine"]}).json()
    assert (renamed["name"], renamed["config"]["name"], renamed["tags"]) == ("encoder", "encoder", ["mine"])
    (item,) = client.get("/api/runs", params={"kind": "attached", "tag": "mine"}).json()["items"]
    assert item["name"] == "encoder" and "parameters" not in item["config"]


def test_compare_names_each_run_by_the_group_name_and_its_cell(client: TestClient) -> None:
    body = {"config": {**ADDING, "name": "vanishing", "steps": 1}, "cells": ["rnn_tanh", "gru"]}
    group = client.post("/api/compare", json=body).json()
    assert [r["name"] for r in group["runs"]] == ["vanishing · rnn_tanh", "vanishing · gru"]
    unnamed = client.post("/api/compare", json={"config": {**ADDING, "steps": 1}}).json()
    assert {r["name"] for r in unnamed["runs"]} == {None}


def test_bulk_delete_is_all_or_nothing(sixty: TestClient) -> None:
    missing = sixty.post("/api/runs/delete", json={"ids": ["run01", "ghost", "run02", "spook"]})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no run has the id 'ghost', 'spook': nothing was deleted"
    assert _ids(sixty)[1] == 60
    done = sixty.post("/api/runs/delete", json={"ids": ["run01", "run02", "run01"]})
    assert done.status_code == 200 and done.json() == {"deleted": ["run01", "run02"]}
    assert _ids(sixty)[1] == 58 and sixty.get("/api/runs/run01").status_code == 404
    assert sixty.post("/api/runs/delete", json={"ids": []}).status_code == 422
    too_many = sixty.post("/api/runs/delete", json={"ids": ["x"] * (LIMITS.runs_page + 1)})
    assert too_many.status_code == 422


def _disk_bytes(storage: Storage) -> int:
    wal = storage.path.with_name(storage.path.name + "-wal")
    return storage.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@pytest.mark.parametrize("how", ["DELETE", "bulk"])
def test_deleting_through_the_api_gives_the_disk_back(client: TestClient, how: str) -> None:
    storage = _storage(client)
    _store(client, "small", 0)
    _store(client, "big", 1)
    for step in range(30):
        storage.add_probe("big", step, bytes([step]) * 400_000)  # 12 MB in all
    storage.reclaim()
    before = _disk_bytes(storage)
    if how == "DELETE":
        assert client.delete("/api/runs/big").status_code == 204
    else:
        assert client.post("/api/runs/delete", json={"ids": ["big"]}).json() == {"deleted": ["big"]}
    after = _disk_bytes(storage)
    assert before > 12_000_000 and after < 1_000_000, (before, after)
    assert client.get("/api/runs/small").status_code == 200
