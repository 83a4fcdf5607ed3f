"""What a run's one-file report embeds, read from storage: `report_parts(storage, views, record)`.

What this is: the run's public record, its task (a built-in run's; None for an attached one), the
view catalog (app.core.display: what the views read, as the notebook's snapshots carry it), every
step's metrics, its applied interventions, the gradient flow of every layer in both kinds (as GET
.../gradflow answers them, up to FLOW_ROWS rows) and its display frames by step, for
gatescope.report.build_report. Used by GET /api/runs/{id}/report and `python -m app report
FILE` (a run file imported into a temporary storage), so both make the same file.
What this is not: the HTML (gatescope/report.py) or a route (app/web/report.py).
"""

from __future__ import annotations

import json
from typing import Any

from app.core.display import view_catalog
from app.services.records import RunRecord
from app.services.schemas import RunCreate, RunPublic
from app.services.storage import Storage
from app.services.views import Views

FLOW_ROWS = 2000  # gradient-flow rows embedded per layer and kind, as a page asks for


def report_parts(
    storage: Storage, views: Views, record: RunRecord, public: RunPublic | None = None
) -> tuple[dict[str, Any], dict[int, bytes]]:
    """The report's data (JSON) and its display frames by step (see the module docstring)."""
    public = public or record.to_public()
    config = public.config
    layers = getattr(config, "num_layers", 1)
    gradflow = {
        f"{kind}|{layer}": json.loads(views.gradflow(record.id, kind, layer, FLOW_ROWS).to_json())
        for kind in ("last", "total")
        for layer in range(layers)
    }
    task = views.run_task(record.id, config) if isinstance(config, RunCreate) else None
    data: dict[str, Any] = {
        "run": public.model_dump(mode="json"),
        "task": task.model_dump(mode="json") if task is not None else None,
        "catalog": view_catalog(),
        "metrics": storage.metrics(record.id),
        "interventions": [i.model_dump(mode="json") for i in storage.interventions(record.id)],
        "gradflow": gradflow,
    }
    frames = {}
    for step in storage.probe_steps(record.id):
        display = storage.probe(record.id, step, "display")
        if display is not None:
            frames[step] = display
    return data, frames
