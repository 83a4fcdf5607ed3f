"""Layering guard: ``app.core`` is pure PyTorch and never reaches into the web stack.

Direction of dependencies: app/core (pure PyTorch) <- app/services <- app/web. The services
never import the web layer, and the web layer does no array work (no numpy, no torch): pooling,
caches and views are the services'.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = REPO_ROOT / "app" / "core"
SERVICES_DIR = REPO_ROOT / "app" / "services"
WEB_DIR = REPO_ROOT / "app" / "web"

FORBIDDEN = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "sqlite3",
    "sqlalchemy",
    "uvicorn",
    "jinja2",
    "app.services",
    "app.web",
)

# Runs in a fresh interpreter: import app.core and every module below it (walked with pkgutil),
# then report which forbidden modules each import pulled into sys.modules.
_PROBE = """
import importlib, json, pkgutil, sys

forbidden = tuple(json.loads(sys.argv[1]))

def loaded_forbidden():
    return sorted(
        f for f in forbidden
        if any(name == f or name.startswith(f + ".") for name in sys.modules)
    )

imported, offenders = [], {}

def visit(name):
    before = set(loaded_forbidden())
    module = importlib.import_module(name)
    imported.append(name)
    new = [m for m in loaded_forbidden() if m not in before]
    if new:
        offenders[name] = new
    if hasattr(module, "__path__"):
        for info in pkgutil.iter_modules(module.__path__, name + "."):
            visit(info.name)

visit("app.core")
print(json.dumps({"imported": imported, "offenders": offenders, "loaded": loaded_forbidden()}))
"""


def _is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_importing_core_loads_no_web_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(FORBIDDEN)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"importing app.core failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "app.core" in report["imported"]
    assert report["offenders"] == {}, f"app.core modules that load the web stack: {report['offenders']}"
    assert report["loaded"] == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of everything ``source`` (the text of ``module``) imports.

    Relative imports are resolved, and ``from a import b`` yields both ``a`` and ``a.b``.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def test_core_sources_do_not_import_web_stack() -> None:
    offenders: dict[str, list[str]] = {}
    for path in sorted(CORE_DIR.rglob("*.py")):
        names = _imported_names(
            path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
        )
        bad = sorted({name for name in names if _is_forbidden(name)})
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = bad
    assert offenders == {}


def test_import_scan_resolves_relative_and_from_imports() -> None:
    """The AST guard itself must see through relative and ``from app import web`` forms."""
    source = (
        "import torch\n"
        "from ..web import routes\n"
        "from app import services\n"
        "from . import sibling\n"
        "from .. import web\n"
    )
    names = set(_imported_names(source, "app.core.example", is_package=False))
    assert {"torch", "app.web", "app.web.routes", "app.services", "app.core.sibling"} <= names
    assert _is_forbidden("app.web.routes")
    assert _is_forbidden("pydantic_settings")
    assert not _is_forbidden("pydanticish")
    package_names = set(_imported_names("from . import x", "app.core.sub", is_package=True))
    assert "app.core.sub.x" in package_names


def _offenders(directory: Path, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*.py")):
        names = _imported_names(
            path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
        )
        bad = sorted({n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)})
        if bad:
            found[str(path.relative_to(REPO_ROOT))] = bad
    return found


def test_services_do_not_import_the_web_layer() -> None:
    assert _offenders(SERVICES_DIR, ("app.web", "fastapi", "starlette")) == {}


def test_the_web_layer_does_no_array_work() -> None:
    assert _offenders(WEB_DIR, ("numpy", "torch")) == {}


# Runs in a fresh interpreter: import gatescope, watch a small LSTM for a few steps into a run
# file (FileSink) and into memory (MemorySink), then report which forbidden modules were loaded.
_WATCH = """
import json, sys
import torch
import gatescope
from gatescope.sink import MemorySink

forbidden = tuple(json.loads(sys.argv[1]))
model = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
for sink in (None, MemorySink()):
    kwargs = {"server": None, "path": sys.argv[2]} if sink is None else {"sink": sink}
    with gatescope.watch(model, every=1, **kwargs) as watch:
        for _ in range(3):
            out, _ = model(torch.randn(2, 5, 3))
            out.pow(2).mean().backward()
            watch.step(loss=1.0)
    frames = len(sink.frames) if sink is not None else None
loaded = sorted(f for f in forbidden if any(n == f or n.startswith(f + ".") for n in sys.modules))
print(json.dumps({"loaded": loaded, "frames": frames}))
"""


def test_gatescope_watches_without_the_server_stack(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WATCH, json.dumps(FORBIDDEN), str(tmp_path / "run.gsrun")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"watching failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"loaded": [], "frames": 3}
    assert (tmp_path / "run.gsrun").stat().st_size > 0


# Runs in a fresh interpreter: the import statement in argv[2], then which of the forbidden
# modules (argv[1]) it loaded.
_CLIENT = """
import json, sys
exec(sys.argv[2])
forbidden = tuple(json.loads(sys.argv[1]))
print(json.dumps(sorted(f for f in forbidden if any(n == f or n.startswith(f + ".") for n in sys.modules))))
"""


def test_the_client_loads_neither_torch_nor_the_server() -> None:
    """`import gatescope` and `gatescope.Client` (frames included) are for scripts that only talk
    to a server: no torch, no web stack, no server code."""
    forbidden = json.dumps([*FORBIDDEN, "torch"])
    statements = (
        "import gatescope",
        "from gatescope import Client",
        "import gatescope; gatescope.Client; gatescope.GatescopeError",
        "from gatescope.client import Client; from app.core.frames import Frame; Frame.from_bytes",
    )
    for statement in statements:
        result = subprocess.run(
            [sys.executable, "-c", _CLIENT, forbidden, statement],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{statement!r} failed:\n{result.stderr}"
        assert json.loads(result.stdout.strip().splitlines()[-1]) == [], statement


def test_gatescope_watch_stays_the_function_whoever_imports_the_submodule() -> None:
    """The submodule gatescope.watch and the function share a name; importing the submodule first
    (which makes the import system bind it on the package) must not shadow the function."""
    script = (
        "from gatescope.watch import Watch, watch\n"
        "import gatescope\n"
        "assert gatescope.watch is watch and gatescope.Watch is Watch, gatescope.watch\n"
        "import gatescope.watch\n"
        "assert gatescope.watch is watch, gatescope.watch\n"
        "try:\n"
        "    gatescope.nothing\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "module 'gatescope' has no attribute 'nothing'"
