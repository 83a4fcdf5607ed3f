"""gatescope.bundle: the widget's modules packed into one ES module string, and its scoped styles.
(That the packed module loads and draws in Chromium: tests/browser/test_widget.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gatescope.bundle import (
    ENTRY,
    GLOBAL_PLOTLY,
    IMPORT,
    module_table,
    plotly_js,
    root_class,
    scoped_css,
    static_dir,
    widget_css,
    widget_esm,
)

JS = static_dir() / "js"


def test_every_module_comes_after_the_modules_it_imports() -> None:
    table = module_table(JS)
    names = [name for name, _ in table]
    assert names[-1] == ENTRY
    assert len(set(names)) == len(names)
    for i, (name, parts) in enumerate(table):
        for dep in parts[1::2]:
            assert dep == "plotly" or names.index(dep) < i, f"{name} imports {dep} before it exists"


def test_the_parts_are_the_module_itself_split_at_its_relative_imports() -> None:
    for name, parts in module_table(JS):
        source = (JS / name).read_text(encoding="utf-8")
        prefix = 'import Plotly from "plotly"; ' if GLOBAL_PLOTLY in source else ""
        joined = "".join(p if i % 2 == 0 else (p if p == "plotly" else f"./{p}") for i, p in enumerate(parts))
        assert joined == prefix + source
        imported = [m.group(2) for m in IMPORT.finditer(source)]
        assert parts[1::2] == (["plotly"] if prefix else []) + imported


def test_only_the_modules_that_read_the_global_plotly_import_it() -> None:
    readers = {name for name, parts in module_table(JS) if "plotly" in parts[1::2]}
    assert readers == {"plots.js"}


def test_an_import_cycle_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "widget.js").write_text('import { a } from "./a.js";\n')
    (tmp_path / "a.js").write_text('import { b } from "./b.js";\nexport const a = 1;\n')
    (tmp_path / "b.js").write_text('import { a } from "./a.js";\nexport const b = 2;\n')
    with pytest.raises(ValueError, match=r"cycle \(a\.js -> b\.js -> a\.js\)"):
        module_table(tmp_path)


def test_the_esm_holds_plotly_and_every_module_once() -> None:
    esm = widget_esm()
    tables = re.search(r"^const MODULES = (.*);$", esm, re.MULTILINE)
    assert tables is not None
    table = json.loads(tables.group(1))
    assert [name for name, _ in table] == ["plotly", *(n for n, _ in module_table(JS))]
    assert plotly_js().read_text(encoding="utf-8") in table[0][1][0]
    assert "export default" in esm.rsplit("const MODULES", 1)[1].split("\n", 1)[1]


def test_the_styles_apply_under_the_widget_root_only() -> None:
    css = scoped_css(":root {\n  --fg: #000;\n}\nbody {\n  margin: 0;\n}\nh1 { font-size: 2rem; }\n", "root")
    inner = "& {\n  --fg: #000;\n}\n& {\n  margin: 0;\n}\nh1 { font-size: 2rem; }\n"
    assert css == f".root {{\n{inner}\n}}\n"
    whole = widget_css()
    assert root_class(JS) == "gatescope-widget"  # widget.js's ROOT_CLASS, read from it
    assert whole.startswith(".gatescope-widget {") and whole.count("{") == whole.count("}")
    assert not re.search(r"^(:root|body)\s*\{", whole, re.MULTILINE)


def test_a_wheel_carries_every_file_the_bundle_reads() -> None:
    """gatescope/_static links to the repository's static/, and pyproject's package data for
    `gatescope` names every file of the bundle there (`pip wheel .` then carries them)."""
    import fnmatch
    import tomllib

    import gatescope

    package = Path(gatescope.__file__).resolve().parent
    assert (package / "_static").resolve() == static_dir().resolve()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["gatescope"]
    needed = [f"_static/js/{name}" for name, _ in module_table(JS)] + ["_static/style.css"]
    for path in needed:
        assert any(fnmatch.fnmatch(path, g) for g in globs), f"{path} would be left out of a wheel"
