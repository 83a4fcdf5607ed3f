#!/usr/bin/env python3
"""Build the Gatescope image and run it on this machine, for real, then check it from outside.

    python3 scripts/docker_local.py        (or: python3 -m scripts.docker_local)

Standard library only: it runs with any Python 3.11, no venv needed. It must run as root (it installs
the engine with apt-get when missing and runs rootful podman). Steps, each under a header:

 1. engine      podman (+ runc, debootstrap), installed with apt-get if missing
 2. base image  `python:3.11-slim` as a local image. No registry can be pulled from here, so it is a
                Debian bookworm rootfs (python3 3.11, python3-venv, python3-pip, ca-certificates) made
                with debootstrap, cached as .cache/docker/python-3.11-slim-bookworm.tar (gitignored)
                and imported under the official image's name. The Dockerfile works on both.
 3. torch wheel the local CPU torch wheel is linked into docker/wheels/ (download.pytorch.org is not
                reachable from here and PyPI's torch is a CUDA build of several GB)
 4. build       `podman build` with TORCH_INDEX_URL empty and the host CA bundle as the pip_cert secret
 5. image       size, user, ports, volumes, healthcheck, env
 6. run         the container, port 8000 published on 127.0.0.1:$GATESCOPE_DOCKER_PORT (default 18000)
 7. health      GET /api/health from the host, then the image's own HEALTHCHECK (podman healthcheck run)
 8. short run   POST /api/runs (LSTM, adding problem, 20 steps), poll GET /api/runs/{id} to the end
 9. inside      the user the server runs as and what it wrote to the /data volume
Whatever happens, the container and its volume are removed at the end (the image stays, so a rerun
reuses its layers): the script is safe to rerun.

Environment: GATESCOPE_DOCKER_PORT (host port, default 18000), GATESCOPE_DOCKER_NETWORK (bridge, the
default: `-p 127.0.0.1:PORT:8000` into podman's bridge, as `docker run -p` does; or host: the host's
network namespace, the server bound to 127.0.0.1:PORT), GATESCOPE_DOCKER_NO_CACHE=1 (rebuild every
layer), GATESCOPE_DOCKER_REBUILD_BASE=1 (debootstrap the base again), GATESCOPE_TORCH_WHEEL (path of
the CPU torch wheel).

Flags found to work in this sandbox (a VM without systemd, cgroup v1 in hybrid mode, no
CAP_SYS_RESOURCE), podman 4.3 from Debian bookworm:
  --cgroup-manager cgroupfs --events-backend file   no systemd to talk to
  build --isolation chroot   the default OCI isolation runs RUN steps with crun, which refuses hybrid
                             cgroups ("cgroups in hybrid mode not supported"); chroot needs no cgroups
                             and uses the host network, so pip reaches PyPI
  build --format docker      OCI image configs have no HEALTHCHECK; the docker format keeps it
  build --pull=never         use the local base image, never ask a registry
  run --runtime runc         crun fails on the hybrid cgroups at run time too; runc handles them
  run --ulimit nofile=H:H --ulimit nproc=16384:16384
                             podman asks for nofile=1048576, above the hard limit here, and raising a
                             limit needs CAP_SYS_RESOURCE, which this sandbox lacks ("setrlimit: Operation
                             not permitted"); nproc above 32768 fails the same way
  storage driver: the default (overlay) works; vfs is not needed
podman's health-check timers need systemd, so `podman run` logs "unable to get systemd connection to
add healthchecks": harmless, the health check is run by hand in step 7 instead.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "docker"
WHEELS = ROOT / "docker" / "wheels"

BASE_IMAGE = "docker.io/library/python:3.11-slim"
BASE_TAR = CACHE / "python-3.11-slim-bookworm.tar"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

IMAGE = "localhost/gatescope:local"
CONTAINER = "gatescope-local"
VOLUME = "gatescope-local-data"
PORT = int(os.environ.get("GATESCOPE_DOCKER_PORT", "18000"))
NETWORK = os.environ.get("GATESCOPE_DOCKER_NETWORK", "bridge")
CA_BUNDLE = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))

PODMAN = ["podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
ENGINE_TOOLS = ("podman", "runc", "debootstrap")  # system tools (Debian packages of the same names)
SHORT_RUN = {
    "cell": "lstm",
    "task": {"name": "adding", "seq_len": 10},
    "hidden_size": 8,
    "steps": 20,
    "batch_size": 8,
}
FINISHED = {"completed", "stopped", "diverged", "failed", "interrupted"}
HEALTH_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 180.0


class StepError(Exception):
    """A step did not do what it should; the message says what."""


def header(n: int, title: str) -> None:
    print(f"\n=== {n}. {title} ===", flush=True)


def sh(cmd: Sequence[str | os.PathLike[str]], *, check: bool = True, quiet: bool = False) -> str:
    """Run `cmd`; return its stdout. Echoed first unless quiet; stderr passes through."""
    args = [str(c) for c in cmd]
    if not quiet:
        print("$ " + " ".join(args), flush=True)
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise StepError(f"{args[0]} exited with {proc.returncode}: {' '.join(args)}")
    return proc.stdout


def podman(*args: str | os.PathLike[str], check: bool = True, quiet: bool = False) -> str:
    return sh([*PODMAN, *args], check=check, quiet=quiet)


def torch_version() -> str:
    deps: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in deps if d.replace(" ", "").startswith("torch==")]
    if len(pins) != 1:
        raise StepError("pyproject.toml pins no single torch==VERSION")
    return pins[0]


# -- 1. engine ------------------------------------------------------------------------------------


def ensure_engine() -> None:
    header(1, "engine")
    if os.geteuid() != 0:
        raise StepError("run as root: the script uses rootful podman and apt-get")
    missing = [tool for tool in ENGINE_TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"installing {', '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    still = [tool for tool in ENGINE_TOOLS if shutil.which(tool) is None]
    if still:
        raise StepError(f"{', '.join(still)} still not on PATH after apt-get install: install it by hand")
    print(sh(["podman", "--version"], quiet=True).strip())
    print(sh(["runc", "--version"], quiet=True).splitlines()[0])
    info = json.loads(podman("info", "--format", "json", quiet=True))
    host, store = info["host"], info["store"]
    print(
        f"cgroups {host['cgroupVersion']} ({host['cgroupManager']}), events {host['eventLogger']}, "
        f"storage {store['graphDriverName']}, network {host.get('networkBackend', '?')}"
    )


# -- 2. base image --------------------------------------------------------------------------------


def debootstrap_base() -> None:
    """A bookworm rootfs with Python 3.11, packed into BASE_TAR."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        started = time.monotonic()
        log = CACHE / "debootstrap.log"
        print(f"debootstrap bookworm ({BASE_PACKAGES}) from {DEBIAN_MIRROR}; log: {log}", flush=True)
        with log.open("w") as out:
            rc = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    "bookworm",
                    rootfs,
                    DEBIAN_MIRROR,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc != 0:
            print(log.read_text()[-3000:])
            raise StepError(f"debootstrap failed ({rc})")
        # What the image does not need: downloaded .debs, apt lists, docs.
        for pattern in (
            "var/cache/apt/archives/*.deb",
            "var/lib/apt/lists/*",
            "usr/share/doc/*",
            "usr/share/man/*",
            "usr/share/info/*",
        ):
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        partial = BASE_TAR.with_suffix(".tar.partial")
        sh(["tar", "--numeric-owner", "-C", rootfs, "-cf", partial, "."], quiet=True)
        partial.replace(BASE_TAR)  # atomic: an interrupted run leaves no half tarball behind
        print(
            f"rootfs made in {time.monotonic() - started:.0f} s: {BASE_TAR} "
            f"({BASE_TAR.stat().st_size / 1e6:.0f} MB)"
        )


def ensure_base_image() -> None:
    header(2, f"base image {BASE_IMAGE}")
    rebuild = os.environ.get("GATESCOPE_DOCKER_REBUILD_BASE") == "1"
    exists = subprocess.run([*PODMAN, "image", "exists", BASE_IMAGE], check=False).returncode == 0
    if exists and not rebuild:
        print("already in podman's image store")
    else:
        if rebuild or not BASE_TAR.exists():
            debootstrap_base()
        else:
            print(f"from the cached rootfs {BASE_TAR}")
        # The official image's settings that matter here: UTF-8 and python3 as the default command.
        podman(
            "import",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            BASE_TAR,
            BASE_IMAGE,
            quiet=False,
        )
    version = podman(
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--no-healthcheck",
        *ulimits(),
        BASE_IMAGE,
        "python3",
        "--version",
        quiet=True,
    ).strip()
    print(f"{BASE_IMAGE}: {version}")


# -- 3. torch wheel -------------------------------------------------------------------------------


def link_torch_wheel(version: str) -> None:
    header(3, f"local torch {version} CPU wheel -> docker/wheels/")
    default = f"/opt/wheels/torch-{version}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel = Path(os.environ.get("GATESCOPE_TORCH_WHEEL", default))
    if not wheel.is_file():
        raise StepError(f"no torch wheel at {wheel} (set GATESCOPE_TORCH_WHEEL)")
    target = WHEELS / wheel.name
    for stale in WHEELS.glob("torch-*.whl"):
        if stale.name != wheel.name:
            stale.unlink()
    if not (target.exists() and target.stat().st_size == wheel.stat().st_size):
        target.unlink(missing_ok=True)
        try:
            os.link(wheel, target)  # same file system: no copy
        except OSError:
            shutil.copy2(wheel, target)
    print(f"{target.relative_to(ROOT)} ({target.stat().st_size / 1e6:.0f} MB)")


# -- 4. build -------------------------------------------------------------------------------------


def build(version: str) -> None:
    header(4, f"build {IMAGE}")
    args: list[str | os.PathLike[str]] = [
        "build",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--pull=never",
        "--build-arg",
        "TORCH_INDEX_URL=",
        "--build-arg",
        f"TORCH_VERSION={version}",
        "--tag",
        IMAGE,
    ]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=pip_cert,src={CA_BUNDLE}"]
    if os.environ.get("GATESCOPE_DOCKER_NO_CACHE") == "1":
        args.append("--no-cache")
    args.append(ROOT)
    log = CACHE / "build.log"
    CACHE.mkdir(parents=True, exist_ok=True)
    previous = image_id(IMAGE)
    print("$ " + " ".join(str(a) for a in [*PODMAN, *args]))
    print(f"(full log: {log.relative_to(ROOT)})", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.run([*PODMAN, *args], stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    elapsed = time.monotonic() - started
    text = log.read_text()
    if rc != 0:
        print("\n".join(text.splitlines()[-60:]))
        raise StepError(f"podman build failed ({rc}) after {elapsed:.0f} s")
    for line in text.splitlines():
        # the steps, which were cached, where torch came from, and the torch the image has
        if line.startswith(("STEP ", "--> Using cache", "Processing /tmp/", "torch ", "Successfully tagged")):
            print("  " + (line if len(line) <= 110 else line[:107] + "..."))
    cached = text.count("--> Using cache")
    print(f"build time: {elapsed:.1f} s ({cached} cached steps)")
    if previous and previous != image_id(IMAGE):
        # The image this tag named before: untagged now, so remove it (and only it) to keep reruns
        # from piling up old images. It fails harmlessly if something still uses it.
        podman_quiet("rmi", previous)


def image_id(name: str) -> str | None:
    proc = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return proc.stdout.strip()


# -- 5. image -------------------------------------------------------------------------------------


def describe_image() -> None:
    header(5, "image")
    info = json.loads(podman("image", "inspect", IMAGE, quiet=True))[0]
    config = info.get("Config", {})
    print(
        f"id {info['Id'][:12]}, size {info['Size'] / 1e6:.0f} MB "
        f"(base {json.loads(podman('image', 'inspect', BASE_IMAGE, quiet=True))[0]['Size'] / 1e6:.0f} MB)"
    )
    print(
        f"user {config.get('User')}, exposed {sorted(config.get('ExposedPorts', {}))}, "
        f"volumes {sorted(config.get('Volumes', {}))}, cmd {config.get('Cmd')}"
    )
    health = config.get("Healthcheck") or info.get("Healthcheck")
    if not health:
        raise StepError("the image has no HEALTHCHECK (built without --format docker?)")
    print(f"healthcheck {health.get('Test')}")
    print("env " + " ".join(e for e in config.get("Env", []) if e.startswith(("GATESCOPE_", "PATH="))))


# -- 6. run ---------------------------------------------------------------------------------------


def ulimits() -> list[str]:
    """Limits the sandbox lets a container have: at most the hard limits here (see the docstring)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=16384:16384"]


SYSTEMD_NOISE = "unable to get systemd connection"


def podman_quiet(*args: str) -> subprocess.CompletedProcess[str]:
    """Run podman; print its stderr, less the lines about the missing systemd (see the docstring)."""
    proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False)
    for line in proc.stderr.splitlines():
        if SYSTEMD_NOISE not in line:
            print(line, file=sys.stderr)
    return proc


def remove_container() -> None:
    podman_quiet("rm", "--force", "--ignore", "--volumes", "--time", "10", CONTAINER)
    podman_quiet("volume", "rm", "--force", VOLUME)


def start_container() -> str:
    header(6, f"run {CONTAINER}")
    remove_container()  # a container or volume a previous run left behind
    podman("volume", "create", VOLUME, quiet=True)
    args = [
        "run",
        "--detach",
        "--name",
        CONTAINER,
        "--runtime",
        "runc",
        *ulimits(),
        "--volume",
        f"{VOLUME}:/data",
    ]
    if NETWORK == "host":
        # The host's network namespace: bind the server to loopback only.
        args += ["--network", "host", "--env", "GATESCOPE_HOST=127.0.0.1", "--env", f"GATESCOPE_PORT={PORT}"]
    elif NETWORK == "bridge":
        args += ["--publish", f"127.0.0.1:{PORT}:8000"]  # published on loopback only
    else:
        raise StepError(f"GATESCOPE_DOCKER_NETWORK must be bridge or host, not {NETWORK!r}")
    print("$ " + " ".join([*PODMAN, *args, IMAGE]), flush=True)
    proc = podman_quiet(*args, IMAGE)
    if SYSTEMD_NOISE in proc.stderr:
        print("(podman could not schedule its health-check timer without systemd: expected here)")
    if proc.returncode != 0:
        raise StepError(f"podman run failed ({proc.returncode})")
    print(f"container {proc.stdout.strip()[:12]} on http://127.0.0.1:{PORT}")
    return f"http://127.0.0.1:{PORT}"


# -- 7. health, 8. short run ----------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, str, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def check_health(base: str) -> None:
    header(7, "health, from outside the container")
    started = time.monotonic()
    last_error = ""
    while time.monotonic() - started < HEALTH_TIMEOUT_S:
        state = podman("inspect", "--format", "{{.State.Status}}", CONTAINER, quiet=True).strip()
        if state not in {"running", "created", "configured"}:
            raise StepError(f"the container stopped ({state})")
        try:
            status, _, body = http("GET", f"{base}/api/health", timeout=3.0)
        except OSError as exc:
            last_error = str(exc)
            time.sleep(0.5)
            continue
        print(f"GET /api/health -> {status} {body.decode()} (up after {time.monotonic() - started:.1f} s)")
        if status != 200 or json.loads(body).get("status") != "ok":
            raise StepError("unhealthy answer")
        break
    else:
        raise StepError(f"no answer on {base}/api/health within {HEALTH_TIMEOUT_S:.0f} s ({last_error})")
    status, ctype, page = http("GET", f"{base}/")
    print(f"GET / -> {status} {ctype}, {len(page)} bytes")
    if status != 200 or not ctype.startswith("text/html"):
        raise StepError("the dashboard page is not served")
    rc = subprocess.run(
        [*PODMAN, "healthcheck", "run", CONTAINER], capture_output=True, text=True, check=False
    ).returncode
    verdict = "healthy" if rc == 0 else f"unhealthy ({rc})"
    print(f"podman healthcheck run (the image's HEALTHCHECK) -> {verdict}")
    if rc != 0:
        raise StepError("the image's HEALTHCHECK fails")


def short_run(base: str) -> None:
    header(8, "short run, from outside the container")
    status, _, spec = http("GET", f"{base}/openapi.json")
    if status != 200 or "/api/runs" not in json.loads(spec).get("paths", {}):
        print("the runs API (POST /api/runs) is not in this build yet: checked health only")
        return
    print(f"POST /api/runs {json.dumps(SHORT_RUN)}")
    started = time.monotonic()
    status, _, body = http("POST", f"{base}/api/runs", SHORT_RUN)
    if status != 201:
        raise StepError(f"POST /api/runs -> {status} {body.decode()[:500]}")
    run = json.loads(body)
    print(f"  -> {status}, id {run['id']}, status {run['status']}")
    seen = run["status"]
    while run["status"] not in FINISHED:
        if time.monotonic() - started > RUN_TIMEOUT_S:
            raise StepError(f"run {run['id']} not finished after {RUN_TIMEOUT_S:.0f} s: {run['status']}")
        time.sleep(0.5)
        status, _, body = http("GET", f"{base}/api/runs/{run['id']}")
        if status != 200:
            raise StepError(f"GET /api/runs/{run['id']} -> {status}")
        run = json.loads(body)
        if run["status"] != seen:
            seen = run["status"]
            print(f"  GET /api/runs/{run['id']} -> {seen} (step {run['step']}/{run['steps']})")
    elapsed = time.monotonic() - started
    print(
        f"run {run['id']}: {run['status']}, step {run['step']}/{run['steps']}, {elapsed:.1f} s"
        + (f", error: {run['error']}" if run.get("error") else "")
    )
    status, _, body = http("GET", f"{base}/api/runs/{run['id']}/metrics")
    rows = json.loads(body) if status == 200 else []
    if rows:
        first, last = rows[0], rows[-1]
        print(
            f"metrics: {len(rows)} steps; loss {first['loss']:.4f} (step {first['step']}) -> "
            f"{last['loss']:.4f} (step {last['step']}); metric (MSE) -> {last['metric']:.4f}"
        )
    if run["status"] != "completed":
        raise StepError(f"the short run ended {run['status']}")


# -- 9. inside ------------------------------------------------------------------------------------


def inside() -> None:
    header(9, "inside the container")
    print("id: " + podman("exec", CONTAINER, "id", quiet=True).strip())
    print(
        "python: "
        + podman("exec", CONTAINER, "sh", "-c", "command -v python3 && python3 --version", quiet=True)
        .replace("\n", " ")
        .strip()
    )
    print("/data (the volume):")
    print(podman("exec", CONTAINER, "ls", "-ln", "/data", quiet=True).rstrip())


def main() -> int:
    ok = False
    try:
        version = torch_version()
        ensure_engine()
        ensure_base_image()
        link_torch_wheel(version)
        build(version)
        describe_image()
        base = start_container()
        check_health(base)
        short_run(base)
        inside()
        ok = True
    except (StepError, subprocess.CalledProcessError, OSError) as exc:  # OSError: a tool that is missing
        print(f"\nFAILED: {exc}", file=sys.stderr)
    finally:
        print("\n=== cleanup ===")
        if not ok and shutil.which("podman") is not None:
            logs = subprocess.run(
                [*PODMAN, "logs", "--tail", "40", CONTAINER], capture_output=True, text=True, check=False
            )
            if logs.returncode == 0:
                print("container log (last 40 lines):\n" + logs.stdout + logs.stderr)
        if shutil.which("podman") is not None:
            remove_container()
            print(f"container {CONTAINER} and volume {VOLUME} removed; image {IMAGE} kept")
    print("\nRESULT: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
