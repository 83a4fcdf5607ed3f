"""GET /api/runs/{id}/diagnosis: what ails a built-in run, read from its stored numbers.

What this is: one thin read-only route. It reads the run's stored numbers (claims.run_numbers:
step metrics, first and last probe frames) and answers diagnosis.diagnose over them: the findings,
each with its evidence, a sentence and a remedy as a merge patch over the run's RunCreate. A
running run is diagnosed on what it has stored so far, against the knobs it trains with now (its
config with its applied interventions: interventions.configured), so a remedy changes those.

What this is not: the checks or their thresholds (app/services/diagnosis.py), or the applying of
a remedy (a fork or an intervention).
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from app.services import claims, diagnosis, interventions
from app.services.schemas import RunStatus
from app.web.deps import NOT_FOUND, RunDep, StorageDep, require_token

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


class Diagnosis(BaseModel):
    run_id: str
    status: RunStatus  # the run's status when it was read
    step: int  # the last training step the metrics hold
    probe_step: int  # the probe frame the frame-based findings read
    findings: list[diagnosis.Symptom]  # empty: nothing found


@router.get(
    "/runs/{run_id}/diagnosis",
    responses={**NOT_FOUND, 409: {"description": "an attached run, or no probe frame yet"}},
)
def run_diagnosis(run: RunDep, storage: StorageDep) -> Diagnosis:
    """The run's findings: vanishing or exploding gradients, divergence, saturated gates, dead ReLU
    units, clipping on most steps, a loss stuck at the baseline, a learning rate far from ~1e-3."""
    if run.kind != "built-in":
        raise HTTPException(
            409, f"run {run.id} is attached: a diagnosis's remedies are changes to a built-in run's config"
        )
    try:
        numbers = claims.run_numbers(storage, run, run.name or run.id)
    except ValueError as exc:
        raise HTTPException(409, f"{exc}: its diagnosis comes with its first probe") from exc
    now = interventions.configured(numbers.config, storage.interventions(run.id))
    numbers = dataclasses.replace(numbers, config=now)
    return Diagnosis(
        run_id=run.id,
        status=numbers.status,
        step=numbers.steps,
        probe_step=numbers.last.step,
        findings=diagnosis.diagnose(numbers),
    )
