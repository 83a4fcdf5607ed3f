"""GET /api/runs/{id}/report: one HTML file, within its budget, saying what it thinned."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import gatescope
from app.__main__ import main
from gatescope.report import MB, kept_frames
from tests.web.conftest import Served

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


def test_kept_frames_keeps_the_ends_and_spreads_the_rest() -> None:
    sizes = {s: 10 for s in range(0, 100, 10)}
    assert kept_frames(sizes, 100) == sorted(sizes)
    assert kept_frames(sizes, 30) == [0, 40, 90]
    assert kept_frames(sizes, 5) == [0, 90]


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
