"""What applied interventions add up to (app/services/interventions.py): `configured` puts each
knob change where RunCreate keeps it, in the order applied, and leaves weight surgery out of the
config; `current_knobs` reads the values back with the step that last set each."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.services.interventions import Intervention, configured, current_knobs
from app.services.schemas import RunCreate

LSTM = RunCreate.model_validate(
    {
        "cell": "lstm",
        "task": {"name": "adding", "seq_len": 10},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    }
)


def _applied(*items: tuple[int, dict[str, Any]]) -> list[Intervention]:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        Intervention(id=f"i{n}", step=step, changes=changes, applied_at=at)
        for n, (step, changes) in enumerate(items)
    ]


def test_no_intervention_leaves_the_config_as_it_is() -> None:
    assert configured(LSTM, []) == LSTM
    knobs = current_knobs(LSTM, [])
    assert knobs.optimizer == LSTM.optimizer and knobs.clip == LSTM.clip
    assert (knobs.tbptt, knobs.forget_bias, knobs.set_at, knobs.interventions) == (None, None, {}, 0)


def test_each_knob_lands_in_the_config_and_the_last_change_wins() -> None:
    applied = _applied(
        (10, {"lr": 0.01, "tbptt": 5}),
        (
            20,
            {"optimizer": {"name": "adam", "reset_state": True}, "clip": {"mode": "value", "threshold": 0.5}},
        ),
        (30, {"lr": 0.002, "forget_bias": 2.0, "rescale": {"layer": 0, "radius": 0.9}}),
        (40, {"tbptt": None, "reinit": {"layer": 0, "scheme": "orthogonal", "gain": 1.0}}),
    )
    now = configured(LSTM, applied)
    assert (now.optimizer.name, now.optimizer.lr, now.optimizer.momentum) == ("adam", 0.002, 0.9)
    assert (now.clip.mode, now.clip.threshold) == ("value", 0.5)
    assert (now.tbptt, now.init.forget_bias) == (None, 2.0)
    assert (now.init.scheme, now.init.gain) == (LSTM.init.scheme, LSTM.init.gain)  # surgery: weights only
    assert now.model_dump(exclude={"optimizer", "clip", "tbptt", "init"}) == LSTM.model_dump(
        exclude={"optimizer", "clip", "tbptt", "init"}
    )
    knobs = current_knobs(LSTM, applied)
    assert knobs.optimizer == now.optimizer and knobs.clip == now.clip
    assert (knobs.tbptt, knobs.forget_bias, knobs.interventions) == (None, 2.0, 4)
    assert knobs.set_at == {"lr": 30, "tbptt": 40, "optimizer": 20, "clip": 20, "forget_bias": 30}
    assert configured(LSTM, applied[:2]).optimizer.lr == 0.01  # the knobs as they were after step 20
