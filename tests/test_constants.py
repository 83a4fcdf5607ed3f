"""One source for shared constants: static/js restates nothing that GET /api/catalog serves.

The catalog (app/services/catalog.py) carries the display frame's sizes, the log floor, each
gate's kind, the run statuses, a RunCreate's defaults, the presets, the lessons and the gate
captions. A page that writes one of them down again drifts the day the Python changes, so this
test reads every module under static/js, with its comments stripped, and fails on the literal
forms a restatement takes:

- a list or Set of two or more run statuses, or of three or more gate names, or of two or more
  cells; an object mapping gates to "sigmoid" / "tanh";
- the display thresholds as such: a constant named like MAX_T / maxUnits / maxCols set to a
  number, 500 or 256 compared with T, U, units or timesteps, max_t= / max_units= in a URL;
- the log floor: FLOOR = -30, floor: -30, ?? -30;
- a RunCreate default as a value of its own field (`hidden_size: 64`, `lr ?? 0.003`), for the
  defaults that are not 0, 1, true, false or null (those are everyone's numbers);
- a literal run or task config (`task: { name: "`, `seq_len:`, `n_symbols:`, `n_classes:`, `corpus:`,
  `hidden_size: <number>`);
- any preset, lesson or gate-caption text.

`restatements(js)` is the checker; the tests below prove it finds each form (and passes code
that only reads the catalog), so a green run means something.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from app.core.cells import CELLS, GATES
from app.services.catalog import Catalog, catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_DIR = REPO_ROOT / "static" / "js"
CAPTION_F = next(c for c in catalog().cells if c.name == "lstm").views["f"].caption

# -- reading JavaScript -------------------------------------------------------------------------

_REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}


def strip_comments(js: str) -> str:
    """`js` with its // and /* */ comments blanked (newlines kept, so line numbers hold).

    Strings ('', "", ``) and regular expression literals are skipped whole, so a "//" or "/*"
    inside them is not a comment.
    """
    out: list[str] = []
    i, n = 0, len(js)
    while i < n:
        c = js[i]
        if c in "'\"`":
            j = _string_end(js, i)
            out.append(js[i:j])
            i = j
        elif js.startswith("//", i):
            j = js.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif js.startswith("/*", i):
            j = js.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", js[i:j]))
            i = j
        elif c == "/" and _starts_regex(js, i):
            j = _regex_end(js, i)
            out.append(js[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _string_end(js: str, i: int) -> int:
    quote, j = js[i], i + 1
    while j < len(js) and js[j] != quote:
        j += 2 if js[j] == "\\" else 1
    return j + 1


def _starts_regex(js: str, i: int) -> bool:
    before = js[:i].rstrip()
    return before[-1:] in _REGEX_BEFORE or before.endswith(("return", "typeof"))


def _regex_end(js: str, i: int) -> int:
    j, in_class = i + 1, False
    while j < len(js) and js[j] != "\n":
        if js[j] == "\\":
            j += 2
            continue
        if js[j] == "[":
            in_class = True
        elif js[j] == "]":
            in_class = False
        elif js[j] == "/" and not in_class:
            return j + 1
        j += 1
    return j


_STRING = r"""(?:"[^"\n]*"|'[^'\n]*')"""
_LIST = re.compile(rf"\[\s*{_STRING}(?:\s*,\s*{_STRING})+\s*,?\s*\]")


def string_lists(js: str) -> Iterator[tuple[int, list[str]]]:
    """(offset, items) of every array literal made only of two or more string literals."""
    for match in _LIST.finditer(js):
        yield match.start(), [s[1:-1] for s in re.findall(_STRING, match.group())]


# -- what the catalog has -----------------------------------------------------------------------


def _number_forms(value: float) -> str:
    """A regex for the ways JS writes `value`: 64, 64.0; 0.003, .003, 3e-3."""
    if float(value).is_integer():
        return rf"{int(value)}(?:\.0+)?(?![\d.eE])"
    mantissa, exponent = f"{value:e}".split("e")
    short = mantissa.rstrip("0").rstrip(".")
    text = repr(float(value))
    return rf"(?:0?{re.escape(text.lstrip('0'))}|{re.escape(short)}e-?0*{abs(int(exponent))})(?![\d.eE])"


@cache
def _catalog() -> Catalog:
    return catalog()


def distinctive_defaults() -> dict[str, float]:
    """RunCreate defaults, flattened to the field's own name, that are not 0, 1 or a flag."""
    flat: dict[str, object] = {}
    for name, value in _catalog().defaults.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[name] = value
    return {
        k: float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and float(v) not in (0.0, 1.0)
    }


def catalog_texts() -> set[str]:
    """The sentences and titles the catalog serves (presets, lessons, the cells' view captions)."""
    cat = _catalog()
    texts = {view.caption for cell in cat.cells for view in cell.views.values()}
    for preset in cat.presets:
        texts |= {preset.title, preset.look_for}
    for lesson in cat.lessons:
        texts |= {run.title for run in lesson.runs}
    return {t for t in texts if len(t) >= 12}


# -- the checker --------------------------------------------------------------------------------

_DISPLAY_SIZES = r"(?:500|256)(?![\d.])"
_DIMENSION = r"\b(?:T|U|fullT|fullU|units|nUnits|timesteps|steps?T)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "a display threshold (catalog display.max_t / max_units)",
        re.compile(
            rf"\b(?:MAX_(?:T|UNITS|COLS)|max_?(?:t|T|cols|Cols|units|Units|U))\b\s*[:=]\s*\d"
            rf"|{_DIMENSION}\s*[<>]=?\s*{_DISPLAY_SIZES}|{_DISPLAY_SIZES}\s*[<>]=?\s*{_DIMENSION}\b"
            rf"|max_(?:t|units|cols)=\d"
        ),
    ),
    (
        "the log floor (catalog display.floor)",
        re.compile(r"\b[Ff][Ll][Oo][Oo][Rr]\w*\s*[:=]\s*-\s*\d|\?\?\s*-\s*30\b|\|\|\s*-\s*30\b"),
    ),
    (
        "gate kinds (catalog cells[].views[].kind)",
        re.compile(
            r"\b[ifgorzn]\s*:\s*[\"'](?:sigmoid|tanh)[\"'][^}]*\b[ifgorzn]\s*:\s*[\"'](?:sigmoid|tanh)[\"']"
        ),
    ),
    (
        "a literal run or task config (catalog presets / lessons / defaults)",
        re.compile(
            r"\btask\s*:\s*\{\s*name\s*:\s*[\"'`]|\b(?:seq_len|n_symbols|n_classes|corpus)\s*:|\bhidden_size\s*:\s*\d"
        ),
    ),
]


def restatements(js: str) -> list[tuple[int, str]]:
    """(line, what) for every catalog value `js` restates; comments do not count."""
    code = strip_comments(js)
    cat = _catalog()
    found: list[tuple[int, str]] = []

    def at(offset: int, what: str) -> None:
        found.append((code.count("\n", 0, offset) + 1, what))

    statuses, gates = set(cat.statuses.all), {g for c in CELLS for g in GATES[c]}
    for offset, items in string_lists(code):
        if len(set(items) & statuses) >= 2:
            at(offset, f"a list of run statuses {items} (catalog statuses)")
        elif len(items) >= 3 and set(items) <= gates:
            at(offset, f"a list of gates {items} (catalog cells[].gates / cells[].views)")
        elif len(set(items) & set(CELLS)) >= 2:
            at(offset, f"a list of cells {items} (catalog presets; POST /api/compare has the default)")
    for what, pattern in _PATTERNS:
        for match in pattern.finditer(code):
            at(match.start(), f"{what}: {match.group()!r}")
    for name, value in distinctive_defaults().items():
        pattern = re.compile(rf"\b{name}\b[^,;\n]{{0,30}}?(?::|\?\?|\|\|)\s*{_number_forms(value)}")
        for match in pattern.finditer(code):
            at(
                match.start(),
                f"the RunCreate default {name} = {value:g} (catalog defaults): {match.group()!r}",
            )
    for text in catalog_texts():
        for match in re.finditer(re.escape(text), code):
            at(match.start(), f"catalog text {text[:50]!r}")
    return sorted(found)


# -- the real tree ------------------------------------------------------------------------------


def test_static_js_restates_no_catalog_value() -> None:
    problems = [
        f"static/js/{path.name}:{line}: {what}"
        for path in sorted(JS_DIR.glob("*.js"))
        for line, what in restatements(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "read these from GET /api/catalog instead:\n" + "\n".join(problems)


# -- the checker can fail -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        (
            'export const FINISHED = new Set(["completed", "stopped", "diverged", "failed", "interrupted"]);',
            "statuses",
        ),
        ("const done = ['completed', 'failed'];", "statuses"),
        ('export const SIGMOID = new Set(["i", "f", "o", "r", "z"]);', "list of gates"),
        ('const order = ["i", "f", "g", "o"];', "list of gates"),
        ('const KINDS = { i: "sigmoid", f: "sigmoid", g: "tanh" };', "gate kinds"),
        ('post("/api/compare", { config, cells: ["rnn_tanh", "lstm", "gru"] });', "list of cells"),
        ("const MAX_T = 500;", "display threshold"),
        ("constructor(id, { maxCols = 500 } = {}) {}", "display threshold"),
        ("if (frame.T > 500 || frame.U > 256) refetch();", "display threshold"),
        ("const large = 256 < units;", "display threshold"),
        ("api(`/api/runs/${id}/display/latest?max_t=500`);", "display threshold"),
        ("export const FLOOR = -30;", "log floor"),
        ("const floor = Number(query.get('floor') ?? -30);", "log floor"),
        (
            "const d = { hidden_size: 64, num_layers: 1, steps: 2000, batch_size: 64, probe_every: 10 };",
            "default",
        ),
        ('input("optimizer.lr").value = opt.lr ?? 0.003;', "default lr"),
        ("const lr = cfg.lr || 3e-3;", "default lr"),
        ('const adding = { task: { name: "adding", seq_len: 50 }, steps: 400 };', "run or task config"),
        ("const params = { seq_len: 20 };", "run or task config"),
        ("const small = { hidden_size: 16 };", "run or task config"),
        (f"button.title = {CAPTION_F!r};", "catalog text"),
        ("const TITLE = 'one-to-one: recall, T = 1';", "catalog text"),
    ],
)
def test_the_checker_finds_a_restated_value(snippet: str, what: str) -> None:
    found = restatements(snippet)
    assert found, f"not found: {snippet}"
    assert any(what.split()[-1] in message for _, message in found), found


@pytest.mark.parametrize(
    "snippet",
    [
        "const finished = new Set(cat.statuses.finished);",
        'if (run.status === "diverged") mark(run);',
        "const kind = cell.views[gate].kind;",
        'const fill = kind === "sigmoid" ? VIRIDIS : RDBU;',
        "for (let i = 0; i < 256; i++) lut[i] = colour(i / 255);",
        "const LEVELS = 256;",
        'const all = await api("/api/runs?limit=500");',
        "if (mine.length > 500) mine.splice(0, 250);",
        "const j = Math.floor(lastStep / cols.width) + 1;",
        "const cfg = withDefaults(catalog.defaults, config);",
        'cfg.hidden_size = value("hidden_size");',
        "const lines = thin(xs, ys, 2000);",
        "const floors = [...new Set([floor, -20, -12, -6])];",
        "const { steps } = flow; const probeEvery = run.config.probe_every;",
        'const cfg = { task: { name: input("task.name").value, ...readTaskParams(task) } };',
        'const url = "http://example.org/a"; // task: { name: "adding", seq_len: 5 }',
        "/* FINISHED = new Set(['completed', 'failed']) */ const x = 1;",
    ],
)
def test_the_checker_passes_code_that_reads_the_catalog(snippet: str) -> None:
    assert restatements(snippet) == []


def test_comments_are_stripped_but_strings_regexes_and_lines_kept() -> None:
    js = 'const a = "x // y"; // gone\n/* gone\n too */ const b = /\\/\\//g; const c = `/* ${a} */`;\n'
    stripped = strip_comments(js)
    assert "gone" not in stripped and stripped.count("\n") == js.count("\n")
    assert '"x // y"' in stripped and "/\\/\\//g" in stripped and "`/* ${a} */`" in stripped
    assert restatements("\n\nconst MAX_T = 500;")[0][0] == 3  # the line it is on
