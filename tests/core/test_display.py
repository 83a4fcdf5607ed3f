"""app.core.display.view_catalog: the views' constants, one source for GET /api/catalog and the widget."""

from __future__ import annotations

import json

from app.core.cells import CELLS, GATES, STATES
from app.core.display import view_catalog
from app.core.frames import MAX_T, MAX_UNITS
from app.services.catalog import catalog


def test_the_api_catalog_carries_the_view_catalog() -> None:
    view = view_catalog()
    served = catalog().model_dump(mode="json")
    assert served["display"] == view["display"]
    for shown, own in zip(served["cells"], view["cells"], strict=True):  # the API adds form choices
        assert {k: shown[k] for k in own} == own


def test_every_gate_and_state_of_every_cell_has_a_view() -> None:
    view = view_catalog()
    assert view["display"]["max_t"] == MAX_T and view["display"]["max_units"] == MAX_UNITS
    assert [c["name"] for c in view["cells"]] == list(CELLS)
    for cell in view["cells"]:
        assert cell["gates"] == list(GATES[cell["name"]]) and cell["states"] == list(
            STATES.get(cell["name"], ())
        )
        assert set(cell["views"]) == {*cell["gates"], *cell["states"]}
        assert {v["kind"] for v in cell["views"].values()} <= {"sigmoid", "tanh", "value"}
    by_name = {c["name"]: c["views"] for c in view["cells"]}
    # one gate name, three meanings: GRU's z keeps, minGRU's z writes, sLSTM's z is the tanh cell input
    assert by_name["gru"]["z"]["caption"] != by_name["mingru"]["z"]["caption"]
    assert by_name["slstm"]["z"]["kind"] == "tanh" and by_name["gru"]["z"]["kind"] == "sigmoid"
    assert by_name["mingru"]["h_tilde"]["kind"] == "value" and by_name["slstm"]["m"]["kind"] == "value"


def test_it_is_plain_json_and_a_fresh_copy() -> None:
    view = view_catalog()
    assert json.loads(json.dumps(view)) == view
    view["display"].clear()
    view["cells"].clear()
    assert view_catalog()["display"] and view_catalog()["cells"]
