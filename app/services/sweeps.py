"""Sweeps: one base RunCreate over a grid of values, queued as one group of runs, and their figures.

What this is: `expand(base, grid)`, the grid's runs, and `Sweeps`, the service the routes call
(create, get, list, stop, delete) over the manager and the sweep store; the shapes it takes and
answers (SweepCreate, SweepPublic, ...) are in sweep_schemas.py.

A grid maps dotted paths of RunCreate ("cell", "init.gain", "task.seq_len", "seed",
"optimizer.lr", ...) to lists of values. Its runs are the product of the lists in the order the
grid gives its paths, the last path varying fastest (itertools.product), at most MAX_SWEEP_RUNS.
Every run is the base with its point's values set, named from them ("lstm · gain 0.5 · T 50 ·
seed 1"), validated as a RunCreate and checked against the server's cost limits; any path that
is no field of a run, value that makes an invalid run, or run beyond the limits refuses the
whole sweep (BadSweep, naming the path and value), and nothing is stored. The runs are queued
with RunManager.submit_group, all or none, their group being the sweep's id.

A run's figures: `loss`, the mean loss over the last tenth of its steps so far (claims.FINAL_SHARE;
final once it has ended; None for a diverged run: its last finite losses do not say where it
went); `relative`, that
over its task's baseline loss at the run's parameters; `ratio`, ‖∂ℓ_T/∂h_1‖ / ‖∂ℓ_T/∂h_T‖ of the
top layer at step 0 (claims.reach_ratio of its step-0 history row), None until known.

What this is not: SQL (sweep_store.py), the routes (app/web/sweeps.py) or the page.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import uuid
from collections import Counter
from functools import lru_cache
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core.frames import Frame
from app.core.tasks import make_task
from app.services.claims import reach_ratio
from app.services.estimates import CostLimits, TooCostly, check_cost
from app.services.manager import RunManager, RunNotFound, WrongState
from app.services.records import utcnow
from app.services.schemas import FINISHED, LIMITS, RunCreate, TaskSpec
from app.services.storage import StorageError
from app.services.sweep_schemas import MAX_SWEEP_RUNS, SweepBrief, SweepCreate, SweepPublic, SweepRun
from app.services.sweep_store import SweepRow, SweepRunRow, SweepStore

LABELS = {"cell": "", "init.gain": "gain", "task.seq_len": "T", "seed": "seed"}  # run names' words


class BadSweep(ValueError):  # noqa: N818  (reads as the answer: the sweep is bad)
    """The sweep cannot be made (HTTP 422); the message says which path and value, and why."""


class Point(BaseModel):
    params: dict[str, Any]
    config: RunCreate


# -- the grid -------------------------------------------------------------------------------


def check_path(path: str) -> None:
    """BadSweep unless `path` names a field of RunCreate (a task's parameters: its task checks them)."""
    if path == "name":
        raise BadSweep("the grid may not set name: a sweep names each run from its grid values")
    model: type[BaseModel] = RunCreate
    parts = path.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "a run's config"
        if model is TaskSpec and part != "name":
            return  # a task parameter: make_task names the task's parameters if it has no such one
        field = model.model_fields.get(part)
        if field is None:
            known = ", ".join(model.model_fields)
            raise BadSweep(f"grid path {path!r}: {where} has no field {part!r} (its fields: {known})")
        nested = _model_of(field.annotation)
        if nested is None and i < len(parts) - 1:
            raise BadSweep(f"grid path {path!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
        if nested is not None:
            model = nested


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is Annotated:
        return _model_of(get_args(annotation)[0])
    return None


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    *sections, last = path.split(".")
    for part in sections:
        config = config.setdefault(part, {})
    config[last] = value


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def run_name(params: dict[str, Any]) -> str:
    """'lstm · gain 0.5 · T 50 · seed 1': a run's name from its grid values (LABELS, else the
    path's last part), at most LIMITS.name_chars characters."""
    words = []
    for path, value in params.items():
        label = LABELS.get(path, path.rsplit(".", 1)[-1].replace("_", " "))
        words.append(f"{label} {_value(value)}".strip())
    name = " · ".join(words)
    return name if len(name) <= LIMITS.name_chars else name[: LIMITS.name_chars - 1] + "…"


def _point(params: dict[str, Any]) -> str:
    return ", ".join(f"{path} = {json.dumps(value)}" for path, value in params.items())


def _invalid(params: dict[str, Any], exc: ValidationError) -> BadSweep:
    """The first error of a point's RunCreate, naming the grid path and value it comes from."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    msg = error["msg"].removeprefix("Value error, ")
    culprit = next(
        (p for p in params if loc == p or loc.startswith(p + ".") or p.startswith(loc + ".")), None
    )
    what = f"{culprit} = {json.dumps(params[culprit])}" if culprit is not None and loc else _point(params)
    where = f"{loc}: " if loc else ""
    return BadSweep(f"grid value {what} makes an invalid run ({where}{msg}); no run of the sweep was started")


def expand(base: RunCreate, grid: dict[str, list[Any]]) -> list[Point]:
    """The grid's runs in product order (the module docstring); BadSweep for a bad path, value or size."""
    total = math.prod(len(values) for values in grid.values())
    if total > MAX_SWEEP_RUNS:
        sizes = " × ".join(f"{len(v)} {p}" for p, v in grid.items())
        raise BadSweep(
            f"the grid makes {total:,} runs ({sizes}); a sweep may have at most {MAX_SWEEP_RUNS:,}"
        )
    for path in grid:
        check_path(path)
        inner = next((p for p in grid if p.startswith(path + ".")), None)
        if inner is not None:
            raise BadSweep(
                f"grid paths {path!r} and {inner!r} overlap: set {path} in the base or in one path"
            )
    start = base.model_dump(mode="json", exclude={"name"})
    points = []
    validated: dict[str, RunCreate] = {}  # by config without seed and name: validated once
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        config = json.loads(json.dumps(start))
        for path, value in params.items():
            _set(config, path, value)
        name, seed = run_name(params), config.pop("seed", 0)
        key = json.dumps(config, sort_keys=True)
        try:
            if key not in validated:
                validated[key] = RunCreate.model_validate({**config, "name": name, "seed": seed})
            seed = SEED.validate_python(seed)
        except ValidationError as exc:
            raise _invalid({"seed": seed} if key in validated else params, exc) from exc
        run = validated[key].model_copy(update={"name": name, "seed": seed})
        points.append(Point(params=params, config=run))
    return points


# a seed checked as RunCreate checks it (a char_lm config takes ~16 ms to validate: its corpus)
SEED: TypeAdapter[int] = TypeAdapter(Annotated[int, RunCreate.model_fields["seed"]])


@lru_cache(maxsize=256)
def baseline_of(task_json: str) -> float:
    """The baseline loss of a task spec (its JSON) at its parameters."""
    task = TaskSpec.model_validate_json(task_json)
    return float(make_task(task.name, **task.params).baseline_loss)


# -- the service ----------------------------------------------------------------------------


class Sweeps:
    """Sweeps over the run manager (the module docstring); every method is quick but `create`
    (which validates and estimates every run) and `delete` (which deletes every run)."""

    def __init__(self, store: SweepStore, manager: RunManager) -> None:
        self.store = store
        self.manager = manager

    def create(self, body: SweepCreate, limits: CostLimits) -> SweepPublic:
        """Validate, cost-check and queue every run of the grid, all or none (BadSweep, QueueFull,
        DiskFull, StorageError: then nothing is stored)."""
        points = expand(body.base, body.grid)
        checked: set[str] = set()  # the cost of a run does not depend on its seed or name
        for point in points:
            key = point.config.model_dump_json(exclude={"seed", "name"})
            if key in checked:
                continue
            try:
                check_cost(point.config, limits)
                checked.add(key)
            except TooCostly as exc:
                raise BadSweep(
                    f"the run {_point(point.params)}: {exc}; no run of the sweep was started"
                ) from exc
        sweep = SweepRow(
            id=uuid.uuid4().hex[:12],
            name=body.name or " × ".join(body.grid),  # the page says "Sweep <name>"
            created_at=utcnow(),
            base=body.base.model_dump(mode="json"),
            grid=body.grid,
        )
        self.store.add_sweep(sweep)
        try:
            records = self.manager.submit_group([p.config for p in points], sweep.id)
        except Exception:
            self.store.delete_sweep(sweep.id)
            raise
        try:
            self.store.add_runs(sweep.id, [(r.id, p.params) for r, p in zip(records, points, strict=True)])
        except StorageError:
            for record in records:
                self.manager.delete(record.id)
            self.store.delete_sweep(sweep.id)
            raise
        public = self.get(sweep.id)
        assert public is not None
        return public

    def get(self, sweep_id: str) -> SweepPublic | None:
        """The sweep with every run's status and figures, or None."""
        sweep = self.store.get(sweep_id)
        if sweep is None:
            return None
        runs = [self._figures(row) for row in self.store.runs(sweep_id)]
        counts: Counter[str] = Counter(run.status for run in runs)
        return SweepPublic(
            **sweep.brief(len(runs), sum(counts[s] for s in FINISHED), dict(counts)),
            base=RunCreate.model_validate(sweep.base),
            runs=runs,
        )

    def list(self, run_id: str | None = None) -> list[SweepBrief]:
        """Every sweep, newest first (with `run_id`: the one that holds that run, if any)."""
        return [
            SweepBrief(**row.brief(total, done, counts))
            for row, total, done, counts in self.store.briefs(run_id)
        ]

    def stop(self, sweep_id: str) -> SweepPublic | None:
        """Stop its queued runs (last first, so no other moves up the queue) then its running ones."""
        rows = self.store.runs(sweep_id)
        if self.store.get(sweep_id) is None:
            return None
        queued = [r.run_id for r in rows if r.status == "queued"]
        live = [r.run_id for r in rows if r.status in ("running", "paused")]
        for run_id in [*reversed(queued), *live]:
            with contextlib.suppress(RunNotFound, WrongState):  # ended or deleted meanwhile
                self.manager.stop(run_id)
        return self.get(sweep_id)

    def delete(self, sweep_id: str) -> bool:
        """Delete its runs (stopping those that have not ended) and the sweep; False if there is none."""
        if self.store.get(sweep_id) is None:
            return False
        for row in reversed(self.store.runs(sweep_id)):
            with contextlib.suppress(RunNotFound):  # deleted meanwhile
                self.manager.delete(row.run_id)
        return self.store.delete_sweep(sweep_id)

    def _figures(self, row: SweepRunRow) -> SweepRun:
        """The run's figures, from the store's cache once final (the module docstring)."""
        loss, ratio = row.loss, row.ratio
        if not row.loss_final and row.status != "queued":
            loss = self.store.final_loss(row.run_id)
            if row.status in FINISHED:
                self.store.set_loss(row.run_id, loss)
        if not row.ratio_known and row.status != "queued":
            data = self.store.storage.history(row.run_id, 0)
            if data is not None:
                value = reach_ratio(Frame.from_bytes(data))
                ratio = value if math.isfinite(value) else None
                self.store.set_ratio(row.run_id, ratio)
        if row.status == "diverged":
            loss = None
        baseline = baseline_of(json.dumps(row.task, sort_keys=True))
        return SweepRun(
            id=row.run_id,
            position=row.position,
            name=row.name,
            params=row.params,
            status=row.status,
            step=row.step,
            steps=row.steps,
            error=row.error,
            loss=loss,
            baseline=baseline,
            relative=loss / baseline if loss is not None and baseline > 0 else None,
            ratio=ratio,
        )
