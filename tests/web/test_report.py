"""GET /api/runs/{id}/report: one HTML file, within its budget, saying what it thinned."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import gatescope
from app.__main__ import main
from app.services.records import RunRecord
from app.services.schemas import LIMITS, RunCreate
from gatescope.report import MB, share_budget
from tests.web.conftest import HELLO, Served, wait_for

DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def _data(html: str) -> dict:  # type: ignore[type-arg]
    match = DATA.search(html)
    assert match is not None
    return json.loads(match.group(1).replace("<\\/", "</"))  # type: ignore[no-any-return]


def test_report_is_one_attached_file_with_everything_embedded(served: Served) -> None:
    r = served.client.get(f"/api/runs/{served.hello}/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-disposition"] == f'attachment; filename="gatescope-{served.hello}.html"'
    assert len(r.content) <= 15 * MB
    html = r.text
    assert "Plotly" in html and '<script type="importmap">' in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    assert "unsafe-eval" not in csp.group(1) and "unsafe-inline" not in csp.group(1).split("style-src")[0]
    assert "script-src 'sha256-" in csp.group(1)
    assert 'src="http' not in html and "<link" not in html  # nothing fetched
    data = _data(html)
    steps = served.client.get(f"/api/runs/{served.hello}/probes").json()
    assert data["report"] == {"budget_mb": 15.0, "stored_steps": steps, "kept_steps": steps, "left_out": 0}
    stored = served.client.get(f"/api/runs/{served.hello}/probes/{steps[-1]}?resolution=display").content
    assert base64.b64decode(data["frames"][str(steps[-1])]) == stored
    assert len(data["metrics"]) == 40 and data["run"]["id"] == served.hello
    assert set(data["gradflow"]) == {"last|0", "total|0"}


def test_a_small_budget_thins_the_frames_and_says_so(served: Served) -> None:
    full = len(served.client.get(f"/api/runs/{served.hello}/report").content)
    frames = _data(served.client.get(f"/api/runs/{served.hello}/report").text)["frames"]
    one = max(len(f) for f in frames.values())
    budget = (full - 2.5 * one) / MB  # room for all but about two frames
    r = served.client.get(f"/api/runs/{served.hello}/report?budget_mb={budget}")
    assert r.status_code == 200, r.text
    assert len(r.content) <= budget * MB
    report = _data(r.text)["report"]
    stored = report["stored_steps"]
    assert report["left_out"] >= 2 and len(report["kept_steps"]) == len(stored) - report["left_out"]
    assert report["kept_steps"][0] == stored[0] and report["kept_steps"][-1] == stored[-1]


def test_report_refusals_are_sentences(served: Served) -> None:
    r = served.client.get("/api/runs/nope/report")
    assert r.status_code == 404 and "no run with id 'nope'" in r.json()["detail"]
    r = served.client.get(f"/api/runs/{served.hello}/report?budget_mb=1")
    assert r.status_code == 422 and "cannot hold the report itself" in r.json()["detail"]
    assert served.client.get(f"/api/runs/{served.hello}/report?budget_mb=0").status_code == 422
    r = served.client.get("/api/runs/nope/report?format=json")
    assert r.status_code == 404 and "no run with id 'nope'" in r.json()["detail"]
    r = served.client.get(f"/api/runs/{served.hello}/report?format=json&budget_mb=0.001")
    assert r.status_code == 422 and "cannot hold the report itself" in r.json()["detail"]
    r = served.client.get(f"/api/runs/{served.hello}/report?format=xml")
    assert r.status_code == 422 and "'html' or 'json'" in r.text


def test_format_json_answers_the_snapshot_the_file_embeds(served: Served) -> None:
    r = served.client.get(f"/api/runs/{served.hello}/report?format=json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == _data(served.client.get(f"/api/runs/{served.hello}/report").text)


def test_format_json_thins_within_its_budget(served: Served) -> None:
    full = served.client.get(f"/api/runs/{served.hello}/report?format=json")
    one = max(len(f) for f in full.json()["frames"].values())
    budget = (len(full.content) - 2.5 * one) / MB  # room for all but about two frames
    r = served.client.get(f"/api/runs/{served.hello}/report?format=json&budget_mb={budget}")
    assert r.status_code == 200, r.text
    assert len(r.content) <= budget * MB
    snapshot = r.json()
    report = snapshot["report"]
    assert report["budget_mb"] == budget and report["left_out"] >= 2
    assert sorted(snapshot["frames"], key=int) == [str(s) for s in report["kept_steps"]]
    assert report["kept_steps"][0] == report["stored_steps"][0]
    assert report["kept_steps"][-1] == report["stored_steps"][-1]


def test_python_m_app_report_writes_a_run_files_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m app report FILE -o out.html`: the same file, from a run file, with no server."""
    rnn = nn.LSTM(3, 5)
    with gatescope.watch(rnn, server=None, path=tmp_path / "run.gsrun", every=2, name="offline") as w:
        for _ in range(6):
            rnn(torch.randn(7, 2, 3))[0].sum().backward()
            w.step(loss=0.5)
    out = tmp_path / "out.html"
    assert main(["report", str(tmp_path / "run.gsrun"), "-o", str(out)]) == 0
    data = _data(out.read_text())
    assert data["run"]["name"] == "offline" and data["task"] is None and len(data["metrics"]) == 6
    assert data["report"]["left_out"] == 0 and data["report"]["kept_steps"] == [
        1,
        2,
        4,
        6,
    ]  # the first step, then every 2nd
    assert str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing.gsrun"), "-o", str(out)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_report_of_runs_side_by_side_embeds_each_runs_snapshot(served: Served) -> None:
    ids = [served.adding, served.hello]
    r = served.client.get(f"/api/report?runs={','.join(ids)}")
    assert r.status_code == 200, r.text
    disposition = f'attachment; filename="gatescope-compare-{served.adding}-{served.hello}.html"'
    assert r.headers["content-disposition"] == disposition
    assert len(r.content) <= 15 * MB and '"gatescope/comparereport.js"' in r.text
    runs = _data(r.text)["runs"]
    for run_id, snapshot in zip(ids, runs, strict=True):  # in the order asked for, each whole
        assert snapshot == served.client.get(f"/api/runs/{run_id}/report?format=json").json()


def test_a_group_reports_budget_is_shared_over_its_runs(served: Served) -> None:
    ids = f"{served.adding},{served.hello}"
    full = served.client.get(f"/api/report?runs={ids}")
    small, large = (
        sum(len(k) + len(v) + 6 for k, v in s["frames"].items())  # as they sit in the JSON
        for s in _data(full.text)["runs"]
    )
    assert small < large  # the adding run's frames are the smaller
    # room for the smaller run's frames twice: it keeps them all, the larger one has to thin
    budget = (len(full.content) - large + small + 100) / MB
    r = served.client.get(f"/api/report?runs={ids}&budget_mb={budget}")
    assert r.status_code == 200, r.text
    assert len(r.content) <= budget * MB
    kept_small, kept_large = (s["report"] for s in _data(r.text)["runs"])
    assert kept_small["left_out"] == 0
    assert kept_large["left_out"] >= 1 and kept_large["kept_steps"][-1] == kept_large["stored_steps"][-1]


def test_share_budget_gives_what_a_small_part_leaves_to_the_larger() -> None:
    small = {0: 10, 5: 10}
    large = {s: 10 for s in range(0, 100, 10)}
    # kept_steps' rule (power-of-two windows of steps): 4 frames in the 40 the small part leaves,
    # not the 3 an even 30 would hold
    assert share_budget([large, small], 60) == [[0, 40, 70, 90], [0, 5]]
    assert share_budget([large, small], 20) == [[0, 90], [0, 5]]  # the ends always stay
    assert share_budget([large, large], 80) == [[0, 40, 70, 90]] * 2


def test_group_report_is_the_runs_one_comparison_made(client: TestClient) -> None:
    config = {**HELLO, "steps": 4, "probe_every": 2, "hidden_size": 4}
    made = client.post("/api/compare", json={"config": config, "cells": ["gru", "lstm"]}).json()
    for run in made["runs"]:
        wait_for(client, run["id"])
    r = client.get(f"/api/groups/{made['group']}/report")
    assert r.status_code == 200, r.text
    assert [s["run"]["config"]["cell"] for s in _data(r.text)["runs"]] == ["gru", "lstm"]
    r = client.get("/api/groups/nope/report")
    assert r.status_code == 404 and "there is no comparison group 'nope'" in r.json()["detail"]


def test_group_report_refusals_are_sentences(served: Served) -> None:
    get = served.client.get
    r = get(f"/api/report?runs={served.hello}")
    assert r.status_code == 422
    one = f"one run's report is GET /api/runs/{served.hello}/report"
    assert r.json()["detail"] == f"a report side by side holds 2 to 8 runs, not 1: {one}"
    r = get(f"/api/report?runs={','.join([served.hello] * 2)}")
    assert r.status_code == 422 and "names a run twice" in r.json()["detail"]
    r = get(f"/api/report?runs={','.join(str(i) for i in range(9))}")
    assert r.status_code == 422 and "holds 2 to 8 runs, not 9" in r.json()["detail"]
    r = get(f"/api/report?runs={served.hello},nope")
    assert r.status_code == 404 and "no run with id 'nope'" in r.json()["detail"]
    r = get(f"/api/report?runs={served.hello},{served.adding}&budget_mb=1")
    assert r.status_code == 422 and "cannot hold the report itself" in r.json()["detail"]
    assert get("/api/report").status_code == 422  # ?runs= is required


def test_a_group_larger_than_a_comparison_is_refused_with_a_way_out(client: TestClient) -> None:
    storage = client.app.state.storage  # type: ignore[attr-defined]
    config = RunCreate.model_validate(HELLO)
    for i in range(LIMITS.compare_runs + 1):  # as a sweep's group
        storage.create_run(RunRecord.new(f"big{i}", config, "sweep1"))
    r = client.get("/api/groups/sweep1/report")
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "group 'sweep1' has 9 runs (a sweep?); a group report holds at most 8: "
        "pick some with GET /api/report?runs=a,b,c"
    )
