"""RunCreate.probe_budget: its bounds, and that it reaches the engine (app.core.budget decides)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.engine import Trainer
from app.services.catalog import run_defaults
from app.services.schemas import RunCreate, to_train_config

BASE = {"cell": "gru", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}, "steps": 3}


def test_probe_budget_reaches_the_engine() -> None:
    config = to_train_config(RunCreate.model_validate({**BASE, "probe_budget": 0.05}))
    assert config.probe_budget == 0.05
    trainer = Trainer(config)
    assert trainer.budget.fraction == 0.05 and trainer.budget.itemize == "auto"
    assert to_train_config(RunCreate.model_validate(BASE)).probe_budget is None
    assert run_defaults()["probe_budget"] is None  # the form's default: off


@pytest.mark.parametrize("bad", [0, -0.1, 0.51, "lots"])
def test_a_probe_budget_out_of_bounds_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValidationError, match="probe_budget"):
        RunCreate.model_validate({**BASE, "probe_budget": bad})
