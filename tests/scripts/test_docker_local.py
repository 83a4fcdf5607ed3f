"""scripts/docker_local.py: an engine tool that is still missing after apt-get fails the step with
a sentence (not a traceback later on, and never a pass)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from scripts import docker_local


def test_an_engine_tool_missing_after_apt_get_fails_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    installs: list[list[str]] = []

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        installs.append(args)  # apt-get "succeeds" but installs nothing
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    present = {"runc": "/usr/bin/runc"}
    monkeypatch.setattr(shutil, "which", present.get)
    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(docker_local.StepError) as failed:
        docker_local.ensure_engine()
    assert str(failed.value) == (
        "podman, debootstrap still not on PATH after apt-get install: install it by hand"
    )
    assert installs[-1] == ["apt-get", "install", "-y", "-qq", "podman", "debootstrap"]
