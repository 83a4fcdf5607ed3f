"""Load test: a real server on loopback under training, viewers and API fuzzing, all at once.

    python -m scripts.load                 # 60 s
    python -m scripts.load --seconds 20 --runs 2 --viewers 8

Starts `python -m app` on a free loopback port (tests/live_server.py, GATESCOPE_MAX_RUNS=--runs),
then for --seconds, together:
  runs      --runs small LSTM/GRU adding-problem runs (probe_every 5), long enough to outlast the
            test; stopped at the end (POST /stop), so each ends "stopped".
  viewers   --viewers websocket viewers (gatescope.Client.stream), spread round-robin over the runs,
            joining over the first sixth of the test, each following its run to the end message.
  fuzzing   schemathesis (`python -m schemathesis.cli` of this interpreter, fuzzing phase,
            not_a_server_error, bounded examples, FUZZ_GRACE s past the end to finish; no DELETE or
            /stop, as it reuses run ids it sees) against the live
            /openapi.json, plus a bounded random request loop of our own (mutated run configs, junk
            bodies, odd run ids and steps, path traversal attempts, DELETE and stop of its own ids).
It reports, and exits 1 unless errors are 0 and no step was lost:
  errors        5xx answers, transport errors, viewer failures, schemathesis failures (and a
                schemathesis that is missing, never ran a test case, or did not finish), path
                traversal that served a file, ERROR/Traceback lines in the server log;
  lost steps    each run's stored metrics must be steps 1..N without a gap, and each viewer must
                have seen every step 1..N exactly once and in order (snapshot + step batches:
                batches coalesce steps but drop none);
  memory        peak VmRSS of the server process and of each child (workers), sampled every 0.5 s
                from /proc (plus the server's own VmHWM at the end) and the peak of their sum;
  throughput    steps/s of each run: over its steps' own worker-measured seconds, and over its
                wall time from start to stop.
Every loop is bounded in count and time; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from gatescope import Client
from tests.live_server import LiveServer, serve

FUZZ_REQUESTS = 3000  # the random loop's ceiling, whatever the duration
FUZZ_PAUSE = 0.05  # seconds between one fuzz thread's requests: pressure, not a denial of service
SCHEMATHESIS_EXAMPLES = 8  # per operation
FUZZ_GRACE = 120.0  # seconds schemathesis may run past the load's end to finish its examples
SAMPLE_EVERY = 0.5  # seconds between memory samples


def run_config(index: int) -> dict[str, Any]:
    return {
        "cell": ("lstm", "gru")[index % 2],
        "hidden_size": 32,
        "task": {"name": "adding", "seq_len": 20},
        "batch_size": 16,
        "steps": 100_000,  # the API's most: outlasts the test; stopped at the end
        "probe_every": 5,
        "seed": index,
    }


@dataclass
class Errors:
    items: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, text: str) -> None:
        with self.lock:
            self.items.append(text)


# -- memory -----------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _kb(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _label(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker"
    return cmd[:40]


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, stop
        self.server_peak_kb = 0
        self.child_peaks: dict[int, tuple[str, int]] = {}
        self.total_peak_kb = 0
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        server = _kb(_status(self.pid).get("VmRSS"))
        total = server
        self.server_peak_kb = max(self.server_peak_kb, server)
        for child in _children(self.pid):
            rss = _kb(_status(child).get("VmRSS"))
            label, peak = self.child_peaks.get(child, (_label(child), 0))
            self.child_peaks[child] = (label, max(peak, rss))
            total += rss
        self.total_peak_kb = max(self.total_peak_kb, total)
        self.samples += 1


# -- viewers ----------------------------------------------------------------------------------


class Viewer(threading.Thread):
    def __init__(self, url: str, run_id: str, delay: float, errors: Errors) -> None:
        super().__init__(daemon=True)
        self.url, self.run_id, self.delay, self.errors = url, run_id, delay, errors
        self.steps: list[int] = []
        self.messages = 0
        self.probes = 0
        self.ended = False

    def run(self) -> None:
        time.sleep(self.delay)
        try:
            with Client(self.url) as gs:
                for message in gs.stream(self.run_id, open_timeout=30):
                    self.messages += 1
                    kind = message["type"]
                    if kind == "snapshot":
                        self.steps += [int(row["step"]) for row in message["metrics"]]
                    elif kind == "step":
                        self.steps += [int(row["step"]) for row in message["steps"]]
                    elif kind == "probe":
                        self.probes += 1
                    elif kind == "end":
                        self.ended = True
        except Exception as exc:
            self.errors.add(f"viewer of {self.run_id}: {type(exc).__name__}: {exc}")


# -- fuzzing ----------------------------------------------------------------------------------

ODD_IDS = [
    "0" * 12,
    "deadbeef0000",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "a" * 64,
    "a" * 65,
    "' OR 1=1 --",
    "ünïcødé",
    "~",
    "con",
]
ODD_VALUES: list[Any] = [None, -1, 0, 1, 2**63, 1e308, -1e-308, "", "x" * 300, [], {}, True, "lstm", [1, "a"]]
TRAVERSAL = [
    "/static/../app/main.py",
    "/static/%2e%2e/pyproject.toml",
    "/static/..%2fpyproject.toml",
    "/static/vendor/../../pyproject.toml",
    "/static//etc/passwd",
]


def _mutate(config: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(config))
    for _ in range(rng.randint(1, 3)):
        target = data
        if rng.random() < 0.3:
            target = data.setdefault("task", {}) if isinstance(data.get("task"), dict) else data
        key = rng.choice([*list(target), "extra", "optimizer", "init", "clip"])
        target[key] = copy.deepcopy(rng.choice(ODD_VALUES))  # never share (or grow) the pool's own
    return data


class Fuzzer(threading.Thread):
    """A bounded random request loop; owns the runs it creates (deletes them), never ours."""

    def __init__(
        self, url: str, ours: list[str], deadline: float, budget: int, seed: int, errors: Errors
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.ours, self.deadline, self.budget = url, ours, deadline, budget
        self.rng = random.Random(seed)
        self.errors = errors
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.mine: list[str] = []

    def run(self) -> None:
        try:
            self.loop()
        except Exception as exc:  # a bug of the loop itself: counted, not swallowed
            self.errors.add(f"the fuzz loop failed: {type(exc).__name__}: {exc}")

    def loop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as http:
            while self.sent < self.budget and time.monotonic() < self.deadline:
                time.sleep(FUZZ_PAUSE)
                method, path, kwargs = self.request()
                try:
                    answer = http.request(method, path, **kwargs)
                except httpx.HTTPError as exc:
                    self.errors.add(f"fuzz {method} {path}: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    self.sent += 1
                self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                if answer.status_code >= 500:
                    self.errors.add(f"fuzz {method} {path}: {answer.status_code} {answer.text[:200]}")
                if path in TRAVERSAL and answer.status_code == 200:
                    self.errors.add(f"fuzz {method} {path}: served a file outside static/")
                if method == "POST" and path == "/api/runs" and answer.status_code == 201:
                    self.mine.append(answer.json()["id"])
                if answer.headers.get("x-content-type-options") != "nosniff":
                    self.errors.add(f"fuzz {method} {path}: no security headers")
            for run_id in self.mine:  # tidy up what we created
                http.delete(f"/api/runs/{run_id}")

    def run_id(self, mutating: bool) -> str:
        pool = ODD_IDS + self.mine + ([] if mutating else self.ours)
        return self.rng.choice(pool)

    def request(self) -> tuple[str, str, dict[str, Any]]:
        rng = self.rng
        kind = rng.randrange(12)
        if kind == 0:
            body = run_config(rng.randrange(2)) | {"steps": 10, "hidden_size": 4}
            if rng.random() < 0.7:
                body = _mutate(body, rng)
            return "POST", "/api/runs", {"json": body}
        if kind == 1:
            junk = rng.choice([b"{", b"[]", b"null", b"\xff\xfe", b'{"cell": ' * 50, os.urandom(64)])
            return (
                "POST",
                rng.choice(["/api/runs", "/api/compare"]),
                {
                    "content": junk,
                    "headers": {"Content-Type": "application/json"},
                },
            )
        if kind == 2:
            body = {"config": _mutate(run_config(0), rng), "cells": rng.choice([["rnn"], [], ["x"], None])}
            return "POST", "/api/compare", {"json": body}
        if kind == 3:
            return "DELETE", f"/api/runs/{self.run_id(True)}", {}
        if kind == 4:
            return "POST", f"/api/runs/{self.run_id(True)}/stop", {}
        if kind == 5:
            step = rng.choice(["latest", "0", "5", "-1", "abc", "9" * 20, "1e3"])
            fmt = rng.choice(["json", "binary", "xml"])
            return "GET", f"/api/runs/{self.run_id(False)}/probes/{step}", {"params": {"format": fmt}}
        if kind == 6:
            sub = rng.choice(["", "/metrics", "/probes", "/checkpoint", "/gradflow", "/task", "/export"])
            params = {rng.choice(["since", "format", "kind", "limit"]): rng.choice([*ODD_VALUES[:9], "csv"])}
            return "GET", f"/api/runs/{self.run_id(False)}{sub}", {"params": params}
        if kind == 7:
            params = {
                "limit": rng.choice([1, 0, 501, -5, "x"]),
                "offset": rng.choice([0, -1, 2**70]),
                "status": rng.choice(["running", "nope", ""]),
            }
            return "GET", "/api/runs", {"params": params}
        if kind == 8:
            body = rng.choice(
                [
                    {"text": "".join(rng.choice("ab01 ") for _ in range(rng.randrange(0, 50)))},
                    {"inputs": [[rng.random(), 1.0]] * rng.randrange(0, 30)},
                    {"inputs": [[rng.choice(ODD_VALUES)]]},
                    {"text": "x" * 5000},
                    {},
                ]
            )
            return "POST", f"/api/runs/{self.run_id(False)}/inspect", {"json": body}
        if kind == 9:
            body = {
                "prime": "h",
                "length": rng.choice([1, 10, -1, 10**9]),
                "temperature": rng.choice([0, 1.0, -1]),
            }
            return "POST", f"/api/runs/{self.run_id(False)}/sample", {"json": body}
        if kind == 10:
            return "GET", rng.choice(TRAVERSAL), {}
        return (
            "GET",
            rng.choice(["/api/catalog", "/api/sparklines", "/api/health", "/", "/login", "/openapi.json"]),
            {},
        )


@dataclass
class Fuzzing:
    """How schemathesis ran: its exit code (None: killed, unfinished), the last line of its
    summary, and `problem`, the sentence that fails the load test (None: it ran and passed)."""

    code: int | None
    summary: str
    problem: str | None


def schemathesis_command(url: str, python: Sequence[str]) -> list[str]:
    """schemathesis run through `python` (`-m schemathesis.cli`: the interpreter's own install,
    whatever PATH says), fuzzing phase, bounded examples."""
    return [
        *python,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "fuzzing",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--seed",
        "1",
        # it reuses ids it saw in responses: keep it from stopping or deleting the measured runs
        # (the random loop stops and deletes, with ids of its own)
        "--exclude-method",
        "DELETE",
        "--exclude-path-regex",
        "/stop$",
    ]


def schemathesis_run(url: str, seconds: float, log: Path, python: Sequence[str] | None = None) -> Fuzzing:
    """schemathesis against `url` through `python` (default: this interpreter), given `seconds` +
    FUZZ_GRACE to finish (then killed)."""
    python = python or (sys.executable,)
    command = schemathesis_command(url, python)
    limit = seconds + FUZZ_GRACE
    with log.open("wb") as out:
        try:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            return Fuzzing(None, "did not start", f"schemathesis could not start ({command[0]}): {exc}")
        try:
            code: int | None = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            code = None
    text = log.read_text(errors="replace")
    lines = [line.strip(" =") for line in text.splitlines() if line.strip(" =")]
    summary = [line for line in lines if " passed" in line or " failed" in line or "error" in line.lower()]
    last = (summary or lines or ["no output"])[-1]
    return Fuzzing(code, last, fuzzing_problem(code, text, last, python[0], limit))


def not_installed(python: str) -> str:
    return (
        f"schemathesis is not installed for {python}: install the dev extras into the interpreter "
        "that runs this script (pip install -e '.[dev]'), or run it with .venv/bin/python"
    )


def fuzzer_missing(python: Sequence[str] | None = None) -> str | None:
    """The sentence saying schemathesis cannot run through `python` (default: this interpreter);
    None when it can."""
    python = python or (sys.executable,)
    try:
        done = subprocess.run([*python, "-c", "import schemathesis.cli"], capture_output=True, check=False)
    except OSError:
        return not_installed(python[0])
    return not_installed(python[0]) if done.returncode != 0 else None


def fuzzing_problem(code: int | None, text: str, summary: str, python: str, limit: float) -> str | None:
    """Why a schemathesis run does not pass, as a sentence; None when it finished, exit 0, having
    run test cases. A fuzzer that never ran, or did not finish, fails the load test."""
    if "No module named 'schemathesis" in text:
        return not_installed(python)
    if code is None:
        return f"schemathesis did not finish within {limit:.0f} s, so its verdict is unknown: {summary}"
    if code != 0:
        return f"schemathesis exited with {code}: {summary}"
    cases = re.search(r"(\d+) generated, (\d+) passed", text)
    if cases is None or int(cases[1]) == 0:
        return f"schemathesis exited 0 but reported no test case it ran: {summary}"
    return None


# -- the test ---------------------------------------------------------------------------------


def _seconds(run: dict[str, Any]) -> float:
    started, finished = run["started_at"], run["finished_at"]
    if not started or not finished:
        return float("nan")
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def load(
    server: LiveServer, seconds: float, runs: int, viewers: int, workdir: Path
) -> tuple[list[str], bool]:
    errors = Errors()
    stop_sampling = threading.Event()
    sampler = MemorySampler(server.process.pid, stop_sampling)
    sampler.start()
    lines: list[str] = []
    with Client(server.url) as gs:
        ids = [gs.create_run(run_config(i))["id"] for i in range(runs)]
        began = time.monotonic()
        deadline = began + seconds
        spread = seconds / 6
        watchers = [
            Viewer(server.url, ids[i % runs], spread * i / max(1, viewers), errors) for i in range(viewers)
        ]
        for v in watchers:
            v.start()
        fuzzers = [Fuzzer(server.url, ids, deadline, FUZZ_REQUESTS // 2, seed, errors) for seed in (1, 2)]
        for f in fuzzers:
            f.start()
        st_log = workdir / "schemathesis.log"
        st_result: list[Fuzzing] = []
        st_thread = threading.Thread(
            target=lambda: st_result.append(schemathesis_run(server.url, seconds, st_log)), daemon=True
        )
        st_thread.start()

        time.sleep(max(0.0, deadline - time.monotonic()))
        for f in fuzzers:
            f.join(60)
        st_thread.join(FUZZ_GRACE + 30)
        for run_id in ids:
            try:
                gs.stop(run_id)
            except Exception as exc:
                errors.add(f"stopping {run_id}: {exc}")
        finals: dict[str, dict[str, Any]] = {}
        for run_id in ids:
            try:
                finals[run_id] = gs.wait(run_id, timeout=60)
            except Exception as exc:
                errors.add(f"waiting for {run_id} to stop: {exc}")
                finals[run_id] = {"status": "?", "started_at": None, "finished_at": None}
        for v in watchers:
            v.join(60)
            if v.is_alive() or not v.ended:
                errors.add(f"a viewer of {v.run_id} did not get the end message")
        elapsed = time.monotonic() - began

        lost = 0
        stored: dict[str, list[dict[str, Any]]] = {}
        for run_id in ids:
            try:
                rows = gs.metrics(run_id)
            except Exception as exc:
                errors.add(f"metrics of {run_id}: {exc}")
                rows = []
            stored[run_id] = rows
            steps = [int(r["step"]) for r in rows]
            if not steps:
                errors.add(f"run {run_id} trained no step")
            if steps != list(range(1, len(steps) + 1)):
                missing = len(set(range(1, max(steps, default=0) + 1)) - set(steps))
                lost += max(missing, 1)
                errors.add(f"run {run_id}: stored steps are not 1..N ({missing} missing)")
        viewer_lost = 0
        for v in watchers:
            n = len(stored[v.run_id])
            if v.steps != list(range(1, n + 1)):
                missing = len(set(range(1, n + 1)) - set(v.steps))
                extra = len(v.steps) - len(set(v.steps))
                viewer_lost += missing
                errors.add(
                    f"a viewer of {v.run_id} saw {len(v.steps)} steps, {missing} missing, "
                    f"{extra} repeated, in order: {v.steps == sorted(v.steps)}"
                )
    stop_sampling.set()
    sampler.join(5)
    server_hwm = _kb(_status(server.process.pid).get("VmHWM"))

    log_text = server.log()
    bad_lines = [
        line
        for line in log_text.splitlines()
        if "Traceback" in line or line.startswith("ERROR") or " ERROR " in line
    ]
    for line in bad_lines[:20]:
        errors.add(f"server log: {line.strip()[:200]}")

    sent = sum(f.sent for f in fuzzers)
    statuses: dict[int, int] = {}
    for f in fuzzers:
        for code, count in f.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
    fuzzing = st_result[0] if st_result else Fuzzing(None, "no result", "schemathesis never reported back")
    if fuzzing.problem is not None:
        errors.add(f"{fuzzing.problem} (see {st_log})")

    lines.append(
        f"duration            {elapsed:.1f} s of load ({seconds:.0f} s requested), {os.cpu_count()} CPUs"
    )
    cells = ", ".join(f"{run_id} {run_config(k)['cell']}" for k, run_id in enumerate(ids))
    lines.append(f"runs                {runs} ({cells})")
    lines.append(
        f"viewers             {viewers}: {sum(v.messages for v in watchers)} messages, "
        f"{sum(len(v.steps) for v in watchers)} steps, "
        f"{sum(v.probes for v in watchers)} probe frames received"
    )
    lines.append(
        f"fuzz loop           {sent} requests, statuses "
        + ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    )
    st_state = "killed, unfinished" if fuzzing.code is None else f"exit {fuzzing.code}"
    lines.append(f"schemathesis        {st_state}; {fuzzing.summary}")
    lines.append(f"errors              {len(errors.items)}")
    for item in errors.items[:30]:
        lines.append(f"  - {item}")
    lines.append(f"lost steps          {lost} in storage, {viewer_lost} across viewers")
    lines.append(
        f"server RSS          peak {sampler.server_peak_kb / 1024:.0f} MiB sampled, "
        f"VmHWM {server_hwm / 1024:.0f} MiB "
        f"({sampler.samples} samples every {SAMPLE_EVERY} s)"
    )
    for pid, (label, peak) in sorted(sampler.child_peaks.items()):
        lines.append(f"  child {pid:<7}     {label}: peak {peak / 1024:.0f} MiB")
    lines.append(f"  server + children peak {sampler.total_peak_kb / 1024:.0f} MiB")
    lines.append(
        "throughput          run           cell  steps  steps/s (worker time)  steps/s (wall)  status"
    )
    for k, run_id in enumerate(ids):
        rows = stored[run_id]
        busy = sum(float(r["seconds"]) for r in rows) or float("nan")
        wall = _seconds(finals[run_id])
        lines.append(
            f"                    {run_id}  {run_config(k)['cell']:<4}  {len(rows):>5}  "
            f"{len(rows) / busy:>21.1f}  {len(rows) / wall:>14.1f}  {finals[run_id]['status']}"
        )
    return lines, not errors.items and lost == 0 and viewer_lost == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=30)
    args = parser.parse_args()
    missing = fuzzer_missing()
    if missing is not None:  # before a minute of load that could not pass
        print(f"{missing}\nFAIL")
        sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="gatescope-load-") as tmp:
        workdir = Path(tmp)
        with serve(
            workdir / "data", log_path=workdir / "server.log", GATESCOPE_MAX_RUNS=str(args.runs)
        ) as server:
            lines, ok = load(server, args.seconds, args.runs, args.viewers, workdir)
        print("\n".join(lines))
        print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
