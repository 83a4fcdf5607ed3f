"""What storage keeps of sweeps: the sweeps and sweep_runs tables (migrations.py, version 9).

What this is: `SweepStore(storage)`, the queries of sweeps over the Storage's own connections (one
SQLite file, the same locks and StorageError sentences). A sweep's row (SweepRow) holds its name,
base config and grid; each of its runs has a sweep_runs row: its place in the grid's product,
its grid values (params) and its figures once known (`loss` once the run has ended, `ratio` once
its step-0 history row is stored; app.services.sweeps computes both). A sweep's runs are also
its group (runs.grp = the sweep's id). Deleting a run deletes its sweep_runs row (ON DELETE
CASCADE), deleting a sweep its sweep_runs rows, not its runs (app.services.sweeps deletes those
through the manager first).

What this is not: the figures' arithmetic or the grid (app.services.sweeps), or run storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson

from app.services.claims import FINAL_SHARE
from app.services.database import as_datetime, iso
from app.services.schemas import FINISHED, RunStatus
from app.services.storage import Storage


@dataclass(frozen=True)
class SweepRow:
    id: str
    name: str
    created_at: datetime
    base: dict[str, Any]  # a RunCreate's JSON
    grid: dict[str, list[Any]]

    def brief(self, total: int, done: int, counts: dict[str, int]) -> dict[str, Any]:
        """The fields of a SweepBrief."""
        fields = {"id": self.id, "name": self.name, "created_at": self.created_at, "grid": self.grid}
        return {**fields, "total": total, "done": done, "counts": counts}


@dataclass(frozen=True)
class SweepRunRow:
    """A sweep's run as stored: its place, grid values, cached figures and the run's own columns."""

    run_id: str
    position: int
    params: dict[str, Any]
    loss: float | None
    loss_final: bool
    ratio: float | None
    ratio_known: bool
    status: RunStatus
    name: str | None
    step: int
    steps: int
    error: str | None
    task: dict[str, Any]  # the run's task spec


_RUNS = (
    "SELECT s.run_id, s.position, s.params, s.loss, s.loss_final, s.ratio, s.ratio_known, r.status, r.name,"
    " r.step, r.steps, r.error, json_extract(r.brief, '$.task') FROM sweep_runs s JOIN runs r ON r.id ="
    " s.run_id WHERE s.sweep_id = ? ORDER BY s.position"
)
# the mean loss over the last FINAL_SHARE of a run's steps (at least one)
_FINAL_LOSS = (
    "SELECT avg(loss) FROM (SELECT loss FROM metrics WHERE run_id = :id ORDER BY step DESC LIMIT max(1,"
    " CAST(round((SELECT count(*) FROM metrics WHERE run_id = :id) * :share) AS INTEGER)))"
)
_COUNTS = (
    "SELECT s.sweep_id, r.status, count(*) FROM sweep_runs s JOIN runs r ON r.id = s.run_id"
    " GROUP BY s.sweep_id, r.status"
)


class SweepStore:
    """Sweeps in the Storage's database (thread-safe as Storage is)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def add_sweep(self, sweep: SweepRow) -> None:
        base, grid = orjson.dumps(sweep.base).decode(), orjson.dumps(sweep.grid).decode()
        with self.storage._write("storing a sweep") as conn:
            conn.execute(
                "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?)",
                (sweep.id, sweep.name, iso(sweep.created_at), base, grid),
            )

    def add_runs(self, sweep_id: str, runs: list[tuple[str, dict[str, Any]]]) -> None:
        """The sweep's runs (run id, grid values), in the grid's product order."""
        rows = [
            (sweep_id, i, run_id, orjson.dumps(params).decode()) for i, (run_id, params) in enumerate(runs)
        ]
        with self.storage._write("storing a sweep's runs") as conn:
            conn.executemany(
                "INSERT INTO sweep_runs (sweep_id, position, run_id, params) VALUES (?, ?, ?, ?)", rows
            )

    def delete_sweep(self, sweep_id: str) -> bool:
        """Delete the sweep and its sweep_runs rows (not its runs); False if there was none."""
        with self.storage._write("deleting a sweep") as conn:
            return conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,)).rowcount > 0

    def get(self, sweep_id: str) -> SweepRow | None:
        with self.storage._read("reading a sweep") as conn:
            row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return _sweep(row) if row is not None else None

    def briefs(self, run_id: str | None = None) -> list[tuple[SweepRow, int, int, dict[str, int]]]:
        """Every sweep newest first (or the one holding `run_id`), with its runs' total, ended and
        counts by status."""
        where, args = (
            ("WHERE id = (SELECT sweep_id FROM sweep_runs WHERE run_id = ?)", (run_id,))
            if run_id
            else ("", ())
        )
        with self.storage._read("listing sweeps") as conn:
            conn.execute("BEGIN")  # one snapshot for the sweeps and their counts
            try:
                rows = conn.execute(f"SELECT * FROM sweeps {where} ORDER BY created_at DESC", args).fetchall()
                counts: dict[str, dict[str, int]] = {}
                for sweep_id, status, n in conn.execute(_COUNTS).fetchall():
                    counts.setdefault(sweep_id, {})[status] = n
            finally:
                conn.execute("COMMIT")
        out = []
        for row in rows:
            mine = counts.get(row[0], {})
            out.append(
                (_sweep(row), sum(mine.values()), sum(n for s, n in mine.items() if s in FINISHED), mine)
            )
        return out

    def runs(self, sweep_id: str) -> list[SweepRunRow]:
        """The sweep's runs in the grid's product order."""
        with self.storage._read("reading a sweep's runs") as conn:
            rows = conn.execute(_RUNS, (sweep_id,)).fetchall()
        return [
            SweepRunRow(
                run_id=r[0],
                position=r[1],
                params=orjson.loads(r[2]),
                loss=r[3],
                loss_final=bool(r[4]),
                ratio=r[5],
                ratio_known=bool(r[6]),
                status=cast(RunStatus, r[7]),
                name=r[8],
                step=r[9],
                steps=r[10],
                error=r[11],
                task=orjson.loads(r[12]),
            )
            for r in rows
        ]

    def final_loss(self, run_id: str) -> float | None:
        """The mean loss over the last FINAL_SHARE of the run's stored steps; None without steps."""
        with self.storage._read("reading a run's final loss") as conn:
            (loss,) = conn.execute(_FINAL_LOSS, {"id": run_id, "share": FINAL_SHARE}).fetchone()
        return float(loss) if loss is not None else None

    def set_loss(self, run_id: str, loss: float | None) -> None:
        """Keep the final loss of an ended run."""
        with self.storage._write("storing a sweep run's loss") as conn:
            conn.execute("UPDATE sweep_runs SET loss = ?, loss_final = 1 WHERE run_id = ?", (loss, run_id))

    def set_ratio(self, run_id: str, ratio: float | None) -> None:
        """Keep the run's step-0 gradient ratio (None: it has none, e.g. no gradient at h_T)."""
        with self.storage._write("storing a sweep run's gradient ratio") as conn:
            conn.execute("UPDATE sweep_runs SET ratio = ?, ratio_known = 1 WHERE run_id = ?", (ratio, run_id))


def _sweep(row: tuple[Any, ...]) -> SweepRow:
    sweep_id, name, created_at, base, grid = row
    created = as_datetime(created_at)
    assert created is not None
    return SweepRow(
        id=sweep_id, name=name, created_at=created, base=orjson.loads(base), grid=orjson.loads(grid)
    )
