"""The one-file report: a run's views as one self-contained HTML file, opened from disk.

What this is: `build_report(data, frames, static_dir, plotly_js, budget)` writes the HTML of one
file that draws a run's views with no server and no network: plotly.min.js inlined as a classic
script; the views' ES modules (static/js: report.js and every module it imports, found by reading
their `import ... from "./x.js"` lines) each as a data: URL in an import map, their relative
imports rewritten to the bare names the map knows ("gatescope/x.js"): the modules stay the very
files the pages load (one implementation of each view), and Chromium resolves a data: module's
bare imports through the document's import map, which also works under file:// (where a module
file next to the HTML would be refused: file:// modules are cross-origin). The page's CSP allows
exactly the inline scripts by hash and data: modules, and never eval. `data` (the run, its task,
the catalog, metrics, gradient flows: JSON) and the probe frames (the one frame format, base64)
are embedded in a JSON script the page reads (embedded.js). Frames are thinned evenly to fit the
budget by the storage budget's rule (app.core.thinning.kept_steps: step 0 and the latest always
stay), and the file says what was kept and what was left out. That embedded object is the "snapshot" (what
gatescope.show and the notebook widget hold of a run too); `fit(parts, budget, render)` makes
any text of snapshots within a budget (GET .../report?format=json renders one as JSON).
`build_group_report(parts, ...)` is the file of several runs side by side (comparereport.js
reads `{"runs": [snapshot, ...]}`), the budget shared over them (share_budget: the smallest
first, each an equal share of what is left).

It lives in the `gatescope` package, which never imports the server (tests/test_architecture.py),
so the server's route (app/web/report.py) and `gatescope report FILE` build the same file.
What this is not: reading storage or a run file (the callers gather `data` and `frames`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.core.thinning import kept_steps
from gatescope.bundle import module_table

MB = 2**20
DEFAULT_BUDGET_MB = 15.0
ENTRY = "report.js"
GROUP_ENTRY = "comparereport.js"


def _modules(js_dir: Path, entry: str) -> dict[str, str]:
    """Every module `entry` imports, transitively (gatescope.bundle's table): name -> its source
    with its relative imports made the bare names of the import map ("gatescope/x.js")."""
    return {
        name: "".join(f"gatescope/{p}" if i % 2 else p for i, p in enumerate(parts))
        for name, parts in module_table(js_dir, entry, plotly_module=False)
    }


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def fit(
    parts: Sequence[tuple[dict[str, Any], Mapping[int, bytes]]],
    budget_mb: float,
    render: Callable[[list[dict[str, Any]]], str],
) -> str:
    """The text `render` makes of one snapshot per part (its data + `frames`, base64 by step, +
    `report`, what was kept), all within `budget_mb`: the frames are thinned evenly, the budget
    shared over the parts (share_budget). ValueError when the budget cannot hold even the text
    without any frame."""
    stored = [sorted(frames) for _, frames in parts]

    def snapshots(kept: list[list[int]]) -> list[dict[str, Any]]:
        return [
            {
                **data,
                "frames": {str(s): base64.b64encode(frames[s]).decode() for s in keep},
                "report": {
                    "budget_mb": budget_mb,
                    "stored_steps": steps,
                    "kept_steps": keep,
                    "left_out": len(steps) - len(keep),
                },
            }
            for (data, frames), steps, keep in zip(parts, stored, kept, strict=True)
        ]

    budget = int(budget_mb * MB)
    empty = render(snapshots([[] for _ in parts]))
    fixed = len(empty.encode()) + sum(len(json.dumps(steps)) for steps in stored)  # kept lists' room
    if fixed > budget:
        raise ValueError(
            f"a budget of {budget_mb:g} MB cannot hold the report itself ({fixed / MB:.1f} MB "
            "without any probe frame): ask for a larger budget_mb"
        )
    sizes = [{s: (len(b) + 2) // 3 * 4 + len(str(s)) + 6 for s, b in frames.items()} for _, frames in parts]
    return render(snapshots(share_budget(sizes, budget - fixed)))


def share_budget(sizes: Sequence[Mapping[int, int]], budget: int) -> list[list[int]]:
    """Each part's kept steps (app.core.thinning.kept_steps) with `budget` shared: the parts in
    the order of their frames' total size, each given an equal share of what is left, so a part
    whose frames all fit keeps them all and leaves the rest of its share to the larger parts."""
    kept: list[list[int]] = [[] for _ in sizes]
    left = budget
    order = sorted(range(len(sizes)), key=lambda i: sum(sizes[i].values()))
    for rank, i in enumerate(order):
        kept[i] = sorted(kept_steps(sizes[i], left // (len(sizes) - rank)))
        left -= sum(sizes[i][s] for s in kept[i])
    return kept


def build_report(
    data: dict[str, Any],
    frames: Mapping[int, bytes],
    static_dir: Path,
    plotly_js: Path,
    budget_mb: float = DEFAULT_BUDGET_MB,
) -> str:
    """One run's report HTML (see the module docstring): `data` and its frames embedded as one
    snapshot (fit), which report.js reads."""
    page = _pager(static_dir, plotly_js, ENTRY)
    return fit([(data, frames)], budget_mb, lambda snaps: page(snaps[0], snaps[0].get("run") or {}))


def build_group_report(
    parts: Sequence[tuple[dict[str, Any], Mapping[int, bytes]]],
    title: str,
    static_dir: Path,
    plotly_js: Path,
    budget_mb: float = DEFAULT_BUDGET_MB,
) -> str:
    """Several runs' report HTML, side by side (comparereport.js): `{"runs": [snapshot, ...]}`
    embedded, the budget shared over the runs (fit)."""
    page = _pager(static_dir, plotly_js, GROUP_ENTRY)
    return fit(parts, budget_mb, lambda snaps: page({"runs": snaps}, {"name": title}))


def _pager(
    static_dir: Path, plotly_js: Path, entry_module: str
) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    """The page maker of `entry_module`: (embedded JSON, run for the title) -> the HTML."""
    modules = _modules(static_dir / "js", entry_module)
    imports = {
        f"gatescope/{name}": "data:text/javascript;base64," + base64.b64encode(src.encode()).decode()
        for name, src in modules.items()
    }
    importmap = json.dumps({"imports": imports})
    entry = f'import "gatescope/{entry_module}";'
    plotly = plotly_js.read_text(encoding="utf-8")
    style = (static_dir / "style.css").read_text(encoding="utf-8")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha(plotly)} {_sha(importmap)} {_sha(entry)} data:",
            "style-src 'unsafe-inline'",
            "img-src data: blob:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )

    def page(embedded: dict[str, Any], run: dict[str, Any]) -> str:
        payload = json.dumps(embedded, separators=(",", ":")).replace("</", "<\\/")
        return _page(run, csp, style, plotly, importmap, entry, payload)

    return page


def _page(
    run: dict[str, Any], csp: str, style: str, plotly: str, importmap: str, entry: str, payload: str
) -> str:
    title = html.escape(f"Gatescope report · {run.get('name') or run.get('id', '')}")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">\n'
        f"<title>{title}</title>\n<style>{style}</style>\n"
        f"<script>{plotly}</script>\n"
        f'<script type="importmap">{importmap}</script>\n'
        f'<script type="application/json" id="report-data">{payload}</script>\n'
        f'<script type="module">{entry}</script>\n'
        '</head><body class="report">\n<main id="report"></main>\n</body></html>\n'
    )
