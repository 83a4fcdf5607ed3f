"""The fork's request, checks and config (app.services.forks), without a worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from app.services.forks import ForkCreate, fork_config, no_snapshot
from app.services.interventions import Intervention, Refused
from app.services.schemas import LIMITS, RunCreate

PARENT = RunCreate.model_validate(
    {"name": "base", "cell": "lstm", "hidden_size": 8, "task": {"name": "adding", "seq_len": 6}, "steps": 50}
)
T = datetime(2026, 12, 1, tzinfo=UTC)


def _applied(step: int, changes: dict[str, Any]) -> Intervention:
    return Intervention(id=f"i{step}", step=step, changes=changes, applied_at=T)


def test_the_forks_config_has_the_knobs_of_its_step_then_the_changes() -> None:
    history = [_applied(5, {"lr": 0.1}), _applied(20, {"tbptt": 3}), _applied(30, {"lr": 0.5})]
    config = fork_config(PARENT, "base", history, 20, {"clip": {"mode": "off", "threshold": 1.0}})
    assert config.optimizer.lr == 0.1  # applied after step 5: in the snapshot of step 20
    assert config.tbptt is None  # applied after step 20: not in its snapshot (taken with the probe)
    assert config.clip.mode == "off" and config.name == "base · fork @20"
    assert config.model_dump(exclude={"optimizer", "clip", "name"}) == PARENT.model_dump(
        exclude={"optimizer", "clip", "name"}
    )
    assert fork_config(PARENT, "base", [], 0, {}, name="mine") == PARENT.model_copy(update={"name": "mine"})
    long = fork_config(PARENT, "x" * LIMITS.name_chars, [], 1000, {})
    assert (
        long.name is not None and len(long.name) == LIMITS.name_chars and long.name.endswith(" · fork @1000")
    )


def test_changes_the_parent_cannot_take_are_refused_with_a_sentence() -> None:
    gru = PARENT.model_copy(update={"cell": "gru"})
    cases: list[tuple[RunCreate, dict[str, Any], str]] = [
        (
            gru,
            {"forget_bias": 1.0},
            "a forget gate .lstm, minlstm, slstm., and this run is gru",
        ),
        (PARENT, {"reinit": {"layer": 1, "scheme": "normal", "gain": 1.0}}, "reinit.layer must be at most 0"),
        (PARENT, {"optimizer": {"name": "sgd", "reset_state": False}}, "switch from adam to sgd"),
    ]
    for parent, changes, words in cases:
        with pytest.raises(Refused, match=words):
            fork_config(parent, "base", [], 10, changes)
    switched = [_applied(3, {"optimizer": {"name": "sgd", "reset_state": True}})]
    with pytest.raises(Refused, match="switch from sgd to adam"):  # the optimizer as it was at that step
        fork_config(PARENT, "base", switched, 10, {"optimizer": {"name": "adam", "reset_state": False}})


def test_the_request_takes_no_changes_or_an_interventions_and_nothing_else() -> None:
    assert ForkCreate.model_validate({"step": 3}).changes.changes() == {}
    assert ForkCreate.model_validate({"step": 3, "changes": {"lr": 0.1}}).changes.changes() == {"lr": 0.1}
    for body in ({"step": -1}, {"step": 1, "changes": {"lr": 0}}, {"step": 1, "changes": {"momentum": 1}}):
        with pytest.raises(ValidationError):
            ForkCreate.model_validate(body)


def test_a_step_with_no_snapshot_names_the_nearest() -> None:
    assert str(no_snapshot("r", 15, [0, 10, 20])) == (
        "run r has no stored state at step 15: the nearest stored steps are 10 and 20"
    )
    assert str(no_snapshot("r", 99, [0, 10, 20])).endswith("the nearest stored step is 20")
    assert str(no_snapshot("r", 3, [10, 20])).endswith("the nearest stored step is 10")
    assert str(no_snapshot("r", 3, [])) == "run r has no stored state yet: a fork starts from a probe step"
