"""POST /api/runs/estimate: what a run would cost here, and whether this server would take it.

What this is: one thin route over app.services.estimates. The body is a RunCreate, checked as
POST /api/runs checks it (a 422 names the field); the answer is the estimate (seconds per
training step with the probes' share, one step and one probe alone, the worker's peak memory,
the whole run's ETA), the server's limits, and a sentence per limit the run is beyond (the
same sentences POST /api/runs answers its 422 with). The dashboard's form calls it as the
person edits.

What this is not: the cost model (app/core/cost.py) or the check at creation (runs.py, groups.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.core.cost import FACTOR
from app.services.estimates import estimate, problems
from app.services.schemas import RunCreate
from app.web.deps import SettingsDep, require_token

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(require_token)])


class CostLimitsPublic(BaseModel):
    seconds_per_step: float  # GATESCOPE_MAX_STEP_SECONDS
    memory_bytes: int  # GATESCOPE_MAX_RUN_MEMORY_MB, in bytes


class RunEstimate(BaseModel):
    """A run's estimated cost on this server, from app.core.cost's model (within `factor` of
    what scripts/bench_cost.py measures), and what stands in its way."""

    seconds_per_step: float  # a training step with its share of the probes: the wall time per step
    train_seconds: float  # one training step alone
    probe_seconds: float  # one probe (with the itemized matrix, when the run has it)
    memory_bytes: int  # the worker process's peak resident size
    eta_seconds: float  # from start to end: startup, every step and every probe
    factor: float  # the model is held to within this factor of measurement
    limits: CostLimitsPublic
    problems: list[str]  # one sentence per limit the run is beyond; empty: POST /api/runs takes it


@router.post("/runs/estimate")
def estimate_run(body: RunCreate, settings: SettingsDep) -> RunEstimate:
    """Estimate a run's time per step, memory and ETA, against this server's limits."""
    est = estimate(body)
    return RunEstimate(
        seconds_per_step=est.seconds_per_step,
        train_seconds=est.train_seconds,
        probe_seconds=est.probe_seconds,
        memory_bytes=est.memory_bytes,
        eta_seconds=est.eta_seconds,
        factor=FACTOR,
        limits=CostLimitsPublic(
            seconds_per_step=settings.max_step_seconds, memory_bytes=settings.max_run_memory_mb * 2**20
        ),
        problems=problems(body, est, settings),
    )
