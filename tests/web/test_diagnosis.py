"""GET /api/runs/{id}/diagnosis through the app: a sick run's findings as JSON, a healthy run's
none, and the sentences for a run that is not there, has no probe frame yet or is attached."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.testclient import TestClient

from app.services.diagnosis import patched
from app.services.interventions import Intervention
from app.services.lessons import Lesson
from app.services.records import RunRecord
from app.services.schemas import RunCreate
from app.services.storage import Storage
from tests.services.test_attached import module
from tests.services.test_diagnosis import CONFIGS
from tests.services.test_lessons import train
from tests.web.test_ingest import attach


def _trained(storage: Storage, name: str) -> RunRecord:
    lesson = Lesson.model_validate(
        {"name": name.split(",")[0], "views": ["loss"], "runs": [{"title": name, "config": CONFIGS[name]}]}
    )
    return train(storage, lesson, 0)


def test_a_diverged_run_s_findings_and_a_healthy_run_s_none(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    sick, healthy = _trained(storage, "exploding, not clipped"), _trained(storage, "hello")
    answer = client.get(f"/api/runs/{sick.id}/diagnosis")
    assert answer.status_code == 200
    body = answer.json()
    metrics = storage.metrics(sick.id)
    assert (body["run_id"], body["status"], body["step"]) == (sick.id, "diverged", metrics[-1]["step"])
    assert body["probe_step"] == storage.probe_steps(sick.id)[-1]
    assert [f["kind"] for f in body["findings"]] == ["diverged", "exploding"]
    exploding = body["findings"][1]
    assert exploding["evidence"]["values"]["grad_norm"] == max(m["grad_norm"] for m in metrics)
    assert exploding["explanation"].startswith("The gradient norm reached ")
    remedy = exploding["remedy"]
    assert {k: remedy[k] for k in ("description", "patch", "changes")} == {
        "description": "clip the gradient norm at 1",
        "patch": {"clip": {"mode": "norm", "threshold": 1.0}},
        "changes": {"clip": {"mode": "norm", "threshold": 1.0}},  # as an intervention, the same
    }
    config = patched(RunCreate.model_validate(sick.config), remedy["patch"])
    assert config.clip.mode == "norm" and RunCreate.model_validate(remedy["config"]) == config
    answer = client.get(f"/api/runs/{healthy.id}/diagnosis")
    assert answer.status_code == 200 and answer.json()["findings"] == []


def test_remedies_change_the_knobs_the_run_trains_with_now(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    sick = _trained(storage, "exploding, not clipped")
    clipped = Intervention(
        id="i1", step=10, changes={"clip": {"mode": "norm", "threshold": 5.0}}, applied_at=datetime.now(UTC)
    )
    storage.add_intervention(sick.id, clipped)
    diverged = client.get(f"/api/runs/{sick.id}/diagnosis").json()["findings"][0]
    assert diverged["kind"] == "diverged"
    lr = float(f"{0.1 * sick.config['optimizer']['lr']:.1g}")  # clipped now: the remedy is a tenth the lr
    assert diverged["remedy"]["changes"] == {"lr": lr}
    config = diverged["remedy"]["config"]
    assert config["clip"] == {"mode": "norm", "threshold": 5.0} and config["optimizer"]["lr"] == lr


def test_no_diagnosis_without_a_run_a_frame_or_a_config(client: TestClient) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    waiting = RunRecord.new("waiting", RunCreate.model_validate(CONFIGS["hello"]))
    storage.create_run(waiting)
    answer = client.get("/api/runs/ghost/diagnosis")
    assert (answer.status_code, answer.json()["detail"]) == (404, "there is no run with id 'ghost'")
    answer = client.get("/api/runs/waiting/diagnosis")
    assert (answer.status_code, answer.json()["detail"]) == (
        409,
        "run waiting has no probe frame: its diagnosis comes with its first probe",
    )
    (run,) = attach(client, module())
    answer = client.get(f"/api/runs/{run}/diagnosis")
    assert (answer.status_code, answer.json()["detail"]) == (
        409,
        f"run {run} is attached: a diagnosis's remedies are changes to a built-in run's config",
    )
