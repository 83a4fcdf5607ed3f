"""GET /api/lessons/{name}/findings: a demo's runs read back against its lesson's claim, and the
sentences for runs that are not the demo's, not finished or not there."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app.services.records import RunRecord
from app.services.schemas import RunCreate
from app.services.storage import Storage
from tests.services.test_lessons import LESSON, train
from tests.web.conftest import ADDING, seed_run


def findings(client: TestClient, name: str, runs: str) -> tuple[int, dict[str, Any]]:
    answer = client.get(f"/api/lessons/{name}/findings", params={"runs": runs})
    return answer.status_code, answer.json()


def test_the_findings_of_a_demo(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    run = train(storage, LESSON["hello"], 0)
    code, body = findings(client, "hello", run.id)
    assert code == 200 and body["holds"] is True and body["failed"] == []
    assert body["sentence"].startswith("After 300 steps the loss is ") and "'l'" in body["sentence"]


def test_findings_only_for_a_demo_s_own_finished_runs(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    other = seed_run(storage, ADDING)
    waiting = RunRecord.new("waiting", LESSON["hello"].runs[0].config)
    storage.create_run(waiting)
    lessons = "shapes, hello, bptt, vanishing, exploding, remedies, gates, modern, mingates"
    assert findings(client, "nope", other) == (
        404,
        {"detail": f"there is no lesson 'nope'; the lessons are {lessons}"},
    )
    code, body = findings(client, "hello", f"{other},{other}")
    assert code == 422 and body["detail"] == "lesson 'hello' has 1 runs: give their ids in panel order, not 2"
    assert findings(client, "hello", "ghost") == (404, {"detail": "there is no run with id 'ghost'"})
    code, body = findings(client, "hello", other)
    assert (
        code == 422
        and body["detail"]
        == f"run {other} is not the panel 'LSTM on \"hello\"' of this lesson: its config differs"
    )
    code, body = findings(client, "hello", "waiting")
    assert code == 409 and body["detail"].startswith("run waiting is queued: the findings come when")
    assert findings(client, "hello", "a,,b")[0] == 422
    assert RunCreate.model_validate(waiting.config) == LESSON["hello"].runs[0].config
