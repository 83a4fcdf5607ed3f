"""The run file: FileSink writes what read_runfile reads back; a script that dies (killed, or
forgetting to close, or by an uncaught exception) leaves a readable file; damage is reported in
`problems` and garbage is a ValueError with a sentence, never another exception."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.core.frames import Frame
from app.main import create_app
from app.settings import Settings
from gatescope import runfile
from gatescope.runfile import MAGIC, FileSink, RunFile, read_runfile
from tests.gatescope.test_transport import MODULE, probe, row

REPO_ROOT = Path(__file__).resolve().parents[2]
ATTACH: dict[str, Any] = {
    "name": "t",
    "script": "t.py",
    "every": 2,
    "modules": [MODULE, {**MODULE, "path": "b"}],
}


def record(path: Path, steps: int = 3, end: tuple[str, str | None] | None = ("completed", None)) -> bytes:
    sink = FileSink(path)
    sink.open(ATTACH)
    for k in range(1, steps + 1):
        sink.step(row(k))
    sink.frame(0, probe(1))
    sink.frame(1, probe(2))
    if end is not None:
        sink.close(*end)
    return path.read_bytes()


def test_a_file_reads_back_as_written(tmp_path: Path) -> None:
    data = record(tmp_path / "a.gsrun", end=("failed", "ValueError: boom"))
    result = read_runfile(tmp_path / "a.gsrun")
    assert result == read_runfile(data) == read_runfile(memoryview(data))
    assert result.attach == ATTACH
    assert result.steps == [row(1), row(2), row(3)]
    assert result.end == {"status": "failed", "error": "ValueError: boom", "dropped_frames": 0}
    assert result.problems == []
    assert [module for module, _ in result.frames] == [0, 1]
    for (_, data), step in zip(result.frames, (1, 2), strict=True):
        frame, expected = Frame.from_bytes(data), Frame.from_probe("", probe(step))
        assert frame.header == {**expected.header, "run_id": ""}
        assert frame.arrays.keys() == expected.arrays.keys()
        assert all(np.array_equal(frame.arrays[k], expected.arrays[k]) for k in expected.arrays)


def test_the_file_starts_with_the_magic_and_records(tmp_path: Path) -> None:
    data = record(tmp_path / "a.gsrun")
    assert data.startswith(MAGIC + b"A")
    assert int.from_bytes(data[len(MAGIC) + 1 : len(MAGIC) + 5], "little") == len(orjson.dumps(ATTACH))


def test_a_file_without_its_end_record_reads_with_end_none(tmp_path: Path) -> None:
    record(tmp_path / "a.gsrun", end=None)  # every record is flushed as it is written
    result = read_runfile(tmp_path / "a.gsrun")
    assert (len(result.steps), len(result.frames), result.end, result.problems) == (3, 2, None, [])


def test_a_last_record_cut_short_is_a_problem_and_the_rest_reads(tmp_path: Path) -> None:
    data = record(tmp_path / "a.gsrun", end=None)
    result = read_runfile(data[:-100])  # into the second frame
    assert (len(result.steps), len(result.frames), result.end) == (3, 1, None)
    [problem] = result.problems
    assert problem.startswith("the last record (frame, at byte ")
    assert "is cut short" in problem


def test_a_file_cut_inside_a_record_header_is_a_problem(tmp_path: Path) -> None:
    data = record(tmp_path / "a.gsrun")
    end = len(orjson.dumps({"status": "completed", "error": None, "dropped_frames": 0}))
    result = read_runfile(data[: -end - 2])
    assert result.end is None
    assert result.problems == [
        f"the file ends 3 bytes into the header of a record at byte {len(data) - end - 5}"
    ]


def test_garbage_is_a_value_error_with_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("step,loss\n1,0.5\n")
    attach = runfile._HEAD.pack(b"A", 2) + b"[]"
    steps = runfile._HEAD.pack(b"S", 2) + b"{}"
    cases = {
        b"": "it does not start with",
        b"PK\x03\x04 a zip": "it does not start with",
        MAGIC: "its first record is not a complete attach record",
        MAGIC + steps: "its first record is not a complete attach record",
        MAGIC + attach: "its attach record is not a JSON object with a list of modules",
        MAGIC + runfile._HEAD.pack(b"A", 99) + b"{}": "its first record is not a complete attach record",
    }
    for data, sentence in cases.items():
        with pytest.raises(ValueError, match=r"^not a Gatescope run file: ") as info:
            read_runfile(data)
        assert sentence in str(info.value)
    with pytest.raises(ValueError, match="does not start with"):
        read_runfile(tmp_path / "x.csv")


def test_damage_after_the_attach_record_is_a_problem_and_reading_goes_on_where_it_can(tmp_path: Path) -> None:
    good = record(tmp_path / "a.gsrun", steps=1, end=None)

    def rec(kind: bytes, payload: bytes) -> bytes:
        return runfile._HEAD.pack(kind, len(payload)) + payload

    at = len(good)
    cases = {
        rec(b"S", b"not json") + rec(b"S", b'{"steps": [{"step": 9}]}'): (
            f"record 5 (steps, at byte {at}) is not the JSON object such a record holds: it is not read"
        ),
        rec(b"S", b'{"steps": [1, 2]}'): f"record 5 (steps, at byte {at}) is not the JSON object",
        rec(b"A", orjson.dumps(ATTACH)): f"record 5 (attach, at byte {at}) repeats the attach record",
        rec(
            b"F", b"\x07\x00" + b"x" * 10
        ): f"record 5 (frame, at byte {at}) is of module 7, which the attach record lacks",
        rec(b"F", b"\x01"): f"record 5 (frame, at byte {at}) is too short to name its module",
        rec(b"Z", b"{}") + rec(b"S", b'{"steps": [{"step": 9}]}'): (
            f"record 5 at byte {at} has an unknown kind b'Z': the file is damaged there, "
            "and its last 36 bytes are not read"
        ),
        rec(b"E", b"{}") + rec(b"S", b"{}"): f"the file goes on after its end record (from byte {at + 7})",
    }
    for tail, problem in cases.items():
        result = read_runfile(good + tail)
        assert result.problems[0].startswith(problem), (result.problems, problem)
        assert len(result.problems) == 1
        assert len(result.frames) == 2
    assert read_runfile(good + rec(b"S", b"x") + rec(b"S", b'{"steps": [{"step": 9}]}')).steps[-1] == {
        "step": 9
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_after_an_attach_record_read_or_raise_value_error(tail: bytes) -> None:
    head = MAGIC + runfile._HEAD.pack(b"A", len(orjson.dumps(ATTACH))) + orjson.dumps(ATTACH)
    for data in (head + tail, MAGIC + tail):
        try:
            result: RunFile | str = read_runfile(data)
        except ValueError as exc:
            result = str(exc)
        assert isinstance(result, RunFile) or result.startswith("not a Gatescope run file: ")


def test_the_sink_refuses_misuse_with_sentences(tmp_path: Path) -> None:
    path = tmp_path / "a.gsrun"
    record(path)
    with pytest.raises(FileExistsError):
        FileSink(path).open(ATTACH)
    sink = FileSink(tmp_path / "b.gsrun")
    with pytest.raises(RuntimeError, match="is not open"):
        sink.step(row(1))
    sink.open(ATTACH)
    with pytest.raises(ValueError, match="module 2 is not one of the 2 watched modules"):
        sink.frame(2, probe(1))
    with pytest.raises(ValueError, match="a watch ends with one of completed, stopped, failed, not 'done'"):
        sink.close("done")
    sink.close("stopped")
    sink.close("completed")  # a second close does nothing
    with pytest.raises(RuntimeError, match="is closed"):
        sink.step(row(1))
    assert read_runfile(tmp_path / "b.gsrun").end == {"status": "stopped", "error": None, "dropped_frames": 0}
    assert not sink.stop_requested


def test_a_frame_no_server_takes_is_refused_with_a_warning_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runfile, "MAX_FRAME_BYTES", 1000)
    sink = FileSink(tmp_path / "a.gsrun")
    sink.open(ATTACH)
    with pytest.warns(UserWarning, match=r"the frame of step 1 \(module 0\) is 0\.0 MiB, above the 0 MiB"):
        sink.frame(0, probe(1))
    sink.close()
    result = read_runfile(tmp_path / "a.gsrun")
    assert (result.frames, result.end) == ([], {"status": "completed", "error": None, "dropped_frames": 1})
    assert sink.dropped_frames == 1


SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from gatescope.runfile import FileSink
sink = FileSink({path!r})
sink.open({{"modules": [{{"path": "rnn"}}]}})
sink.step({{"step": 1}})
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "end"),
    [
        ("pass  # forgets close()", {"status": "completed", "error": None, "dropped_frames": 0}),
        ("1 / 0", {"status": "failed", "error": "ZeroDivisionError: division by zero", "dropped_frames": 0}),
        ("raise KeyboardInterrupt", {"status": "stopped", "error": "KeyboardInterrupt", "dropped_frames": 0}),
        ("os.kill(os.getpid(), signal.SIGKILL)", None),
    ],
)
def test_a_script_that_ends_without_closing_leaves_a_readable_file(
    tmp_path: Path, ending: str, end: dict[str, Any] | None
) -> None:
    path = tmp_path / "a.gsrun"
    script = textwrap.dedent(SCRIPT).format(root=str(REPO_ROOT), path=str(path), ending=ending)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode == 0) == ending.startswith("pass"), done.stderr
    if "1 / 0" in ending:
        assert "ZeroDivisionError" in done.stderr  # the script's own excepthook still ran
    result = read_runfile(path)
    assert (result.steps, result.end, result.problems) == ([{"step": 1}], end, [])


def test_the_real_server_imports_a_run_file_with_every_step_and_frame(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "a.gsrun")
    sink.open(ATTACH)
    for k in range(1, 21):
        sink.step(row(k))
    for k in (1, 10, 20):
        sink.frame(0, dataclasses.replace(probe(k), targets=None, outputs=None, source="live"))
    data = (tmp_path / "a.gsrun").read_bytes()  # not closed: the script died
    with TestClient(create_app(Settings(data_dir=tmp_path / "server"))) as http:
        answer = http.post("/api/import", content=data[:-50])  # and its last frame was cut short
        assert answer.status_code == 201, answer.text
        assert answer.json()["warnings"][0].startswith("the last record (frame, at byte ")
        first, second = answer.json()["runs"]
        assert (first["status"], second["config"]["module"]) == ("interrupted", "b")
        assert [m["step"] for m in http.get(f"/api/runs/{first['id']}/metrics").json()] == list(range(1, 21))
        assert http.get(f"/api/runs/{first['id']}/probes").json() == [1, 10]
        assert http.get(f"/api/runs/{second['id']}/probes").json() == []
