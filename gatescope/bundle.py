"""The notebook widget's front end as one ES module string: `widget_esm()` and `widget_css()`.

What this is: static/js/widget.js and every module it imports (found by reading their
`import ... from "./x.js"` lines, as the one-file report does), plus plotly.min.js from the plotly
package, packed into ONE ES module string with no build step and no eval, for anywidget's `_esm`
(which anywidget imports as a blob: module; relative imports cannot resolve from there). The
module is a table of the modules' sources, dependencies first, each split at its relative import
specifiers; when first imported it turns each into a blob: URL with its specifiers replaced by the
blob: URLs of its dependencies (one URL per module, so a module imported twice is one module),
then imports widget.js. The modules stay the very files the pages load (one implementation of each
view). plotly.min.js becomes a module exporting Plotly; a module that declares `/* global Plotly */`
(plots.js) gets it as a module binding, and the page's own global Plotly (another plotly the
notebook loaded) is put back as it was, so the widget and the notebook never swap plotly versions.
Bundles are cached on the page by their hash: ten widgets load plotly once.
`widget_css()` is static/style.css nested under `.gatescope-widget` (widget.js's ROOT_CLASS), its
`:root` and `body` rules applying to that root, so the widget never restyles the notebook.

static/ is the repository's (an editable install, as the report reads it) or the copy a wheel
carries as gatescope/_static (see pyproject.toml). What this is not: the widget's Python side
(gatescope/notebook.py) nor a general bundler (relative "./x.js" imports of one folder only).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path

ENTRY = "widget.js"
IMPORT = re.compile(r"""(\bfrom\s*|\bimport\s*)"\./([\w-]+\.js)\"""")
GLOBAL_PLOTLY = "/* global Plotly */"
_PLOTLY = "plotly"  # the table's name of the plotly module (no file of static/js has it)
_PAGE_RULES = re.compile(r"^(:root|body)\s*\{", re.MULTILINE)
_ROOT_CLASS = re.compile(r'^export const ROOT_CLASS = "([\w-]+)";', re.MULTILINE)


def static_dir() -> Path:
    """The folder holding js/ and style.css: the repository's static/, else the wheel's copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "static", here / "_static"):
        if (candidate / "js" / ENTRY).is_file():
            return candidate
    raise RuntimeError(
        f"the widget's front end (static/js/{ENTRY}) is not installed: neither {here.parent / 'static'} "
        f"(a source checkout) nor {here / '_static'} (a wheel) holds it"
    )


@cache
def plotly_js() -> Path:
    """plotly.min.js as the plotly Python package ships it (the pages serve it, the report and
    the widget inline it)."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise RuntimeError(f"plotly.min.js is missing from the plotly package ({path})")
    return path


def _parts(source: str, plotly_module: bool = True) -> list[str]:
    """`source` split at its relative import specifiers: text, module name, text, ..., text
    (the quotes stay in the texts). With `plotly_module`, a module declaring the global Plotly
    imports the plotly module (the report keeps plotly a classic script: the global)."""
    imports_plotly = plotly_module and GLOBAL_PLOTLY in source
    parts: list[str] = ['import Plotly from "', _PLOTLY, '"; '] if imports_plotly else [""]
    at = 0
    for m in IMPORT.finditer(source):
        quote = m.start(2) - 3  # the `"` before ./
        parts[-1] += source[at : quote + 1]
        parts += [m.group(2), ""]
        at = m.end(2)
    parts[-1] += source[at:]
    return parts


def module_table(js_dir: Path, entry: str = ENTRY, plotly_module: bool = True) -> list[tuple[str, list[str]]]:
    """`entry` and every module it imports, transitively, as (name, parts), each after the modules
    it imports. ValueError for an import cycle (a blob: URL must exist before its importer's)."""
    table: dict[str, list[str]] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in table:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ValueError(f"the widget's modules import each other in a cycle ({cycle}): break it")
        visiting.append(name)
        parts = _parts((js_dir / name).read_text(encoding="utf-8"), plotly_module)
        for dep in parts[1::2]:
            if dep != _PLOTLY:
                visit(dep)
        visiting.pop()
        table[name] = parts

    visit(entry)
    return list(table.items())


def _plotly_module(plotly: str) -> list[str]:
    """plotly.min.js as a module exporting Plotly (its UMD fills `module.exports` when given a
    `module`; it also sets window.Plotly, which is put back as the page had it)."""
    head = (
        "const module = { exports: {} };\n"
        "const before = Object.getOwnPropertyDescriptor(globalThis, 'Plotly');\n"
    )
    tail = (
        "\nif (before) Object.defineProperty(globalThis, 'Plotly', before);\nexport default module.exports;\n"
    )
    return [head + plotly + tail]


_LOADER = """
const load = async () => {
  const urls = {};
  for (const [name, parts] of MODULES) {
    const text = parts.map((p, i) => (i % 2 ? urls[p] : p)).join("");
    urls[name] = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
  }
  return (await import(urls[ENTRY])).default;
};
const bundles = (globalThis.__gatescopeBundles ??= {});
const ready = (bundles[HASH] ??= load());
export default {
  async render(context) {
    return (await ready).render(context);
  },
};
"""


def bundle(js_dir: Path, plotly: Path, entry: str = ENTRY) -> str:
    """The ES module string of `entry` and its imports with plotly (see the module docstring)."""
    table = [(_PLOTLY, _plotly_module(plotly.read_text(encoding="utf-8"))), *module_table(js_dir, entry)]
    modules = json.dumps(table, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(modules.encode()).hexdigest()[:16]
    return (
        f"// The Gatescope widget: static/js/{entry}, its modules and plotly.js (gatescope/bundle.py).\n"
        f"const ENTRY = {json.dumps(entry)};\nconst HASH = {json.dumps(digest)};\n"
        f"const MODULES = {modules};\n{_LOADER}"
    )


@cache
def widget_esm() -> str:
    """The widget's ES module (anywidget `_esm`): widget.js, its modules and plotly.js, ~5 MB."""
    return bundle(static_dir() / "js", plotly_js())


def root_class(js_dir: Path) -> str:
    """The class widget.js gives the widget's root (its `ROOT_CLASS`: the one place it is named)."""
    found = _ROOT_CLASS.search((js_dir / ENTRY).read_text(encoding="utf-8"))
    if found is None:
        raise RuntimeError(f"{js_dir / ENTRY} no longer exports ROOT_CLASS, which widget_css() scopes to")
    return found.group(1)


def scoped_css(style: str, root: str) -> str:
    """`style` nested under the class `root`; its `:root` and `body` rules become the root's."""
    return f".{root} {{\n{_PAGE_RULES.sub('& {', style)}\n}}\n"


@cache
def widget_css() -> str:
    """The widget's styles (anywidget `_css`): static/style.css scoped to widget.js's ROOT_CLASS."""
    static = static_dir()
    return scoped_css((static / "style.css").read_text(encoding="utf-8"), root_class(static / "js"))
