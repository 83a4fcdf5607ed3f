"""scripts/load.py's fuzzing verdict: schemathesis runs through this interpreter (not PATH), and a
fuzzer that is missing, ran no test case or did not finish fails the load test with a sentence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts import load
from tests.live_server import free_port

PASSED_LOG = "Fuzzing (in 3.74s)\n  26 passed\nTest cases:\n  51 generated, 51 passed\n"


def python_without_schemathesis(tmp_path: Path) -> str:
    """An interpreter that cannot import schemathesis: this one, without site-packages (-S)."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    script.chmod(0o755)
    return str(script)


def test_the_fuzzer_runs_through_this_interpreter_whatever_path_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no schemathesis (and no python) on PATH
    assert load.fuzzer_missing() is None
    # a closed port: schemathesis starts, cannot load the schema and says so (exit 1)
    result = load.schemathesis_run(f"http://127.0.0.1:{free_port()}", 5, tmp_path / "st.log")
    assert result.code not in (0, None)
    assert result.problem is not None and result.problem.startswith(f"schemathesis exited with {result.code}")


def test_a_missing_fuzzer_fails_the_run_with_a_sentence(tmp_path: Path) -> None:
    python = python_without_schemathesis(tmp_path)
    assert load.fuzzer_missing([python]) == load.not_installed(python)
    result = load.schemathesis_run("http://127.0.0.1:9", 5, tmp_path / "st.log", python=[python])
    assert result.problem == load.not_installed(python)
    assert "schemathesis is not installed for" in result.problem and "pip install" in result.problem
    assert load.fuzzer_missing(["/nonexistent/python"]) == load.not_installed("/nonexistent/python")


def test_the_load_test_fails_before_loading_when_its_interpreter_lacks_the_fuzzer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "executable", python_without_schemathesis(tmp_path))
    monkeypatch.setattr(sys, "argv", ["load", "--seconds", "1"])
    with pytest.raises(SystemExit) as exited:
        load.main()
    assert exited.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [load.not_installed(sys.executable), "FAIL"]


def test_only_a_finished_run_with_test_cases_passes() -> None:
    def problem(code: int | None, text: str) -> str | None:
        return load.fuzzing_problem(code, text, "the summary", "py", 180)

    assert problem(0, PASSED_LOG) is None
    assert problem(None, PASSED_LOG) == (
        "schemathesis did not finish within 180 s, so its verdict is unknown: the summary"
    )
    assert problem(0, "Loaded specification\n") == (
        "schemathesis exited 0 but reported no test case it ran: the summary"
    )
    assert problem(0, "Test cases:\n  0 generated, 0 passed\n") is not None
    assert problem(1, PASSED_LOG) == "schemathesis exited with 1: the summary"
    assert problem(1, "No module named 'schemathesis'") == load.not_installed("py")
