"""app.core.display.view_catalog: the views' constants, one source for GET /api/catalog and the widget."""

from __future__ import annotations

import json

from app.core.cells import CELLS, GATES
from app.core.display import view_catalog
from app.core.frames import MAX_T, MAX_UNITS
from app.services.catalog import catalog


def test_the_api_catalog_carries_the_view_catalog() -> None:
    view = view_catalog()
    served = catalog().model_dump(mode="json")
    for key in ("display", "cells", "gate_captions"):
        assert served[key] == view[key]


def test_every_gate_has_a_kind_and_a_caption() -> None:
    view = view_catalog()
    assert view["display"]["max_t"] == MAX_T and view["display"]["max_units"] == MAX_UNITS
    gates = {g for cell in CELLS for g in GATES[cell]}
    assert set(view["display"]["gate_kinds"]) == gates
    assert view["display"]["gate_kinds"]["f"] == "sigmoid" and view["display"]["gate_kinds"]["g"] == "tanh"
    assert set(view["gate_captions"]) == gates | {"c"}
    assert [c["name"] for c in view["cells"]] == list(CELLS)


def test_it_is_plain_json_and_a_fresh_copy() -> None:
    view = view_catalog()
    assert json.loads(json.dumps(view)) == view
    view["display"]["gate_kinds"].clear()
    view["cells"].clear()
    assert view_catalog()["display"]["gate_kinds"] and view_catalog()["cells"]
