"""Durable state of every run: one SQLite file, data_dir/"gatescope.db".

What this is: `Storage`, the only code that speaks SQL (over app.services.database's two
connections: any thread may call any method, every write is one transaction, every sqlite3 error a
StorageError with a sentence). Tables: runs (one row per run: its kind, "built-in" or "attached",
its config as JSON and, for the run list, its config brief, its current name and tags, and for a
fork its parent, step and changes), metrics (one row per training step), probes (per probe step
the frame bytes of app.core.frames at full resolution, `data`, and the display frame, `display`,
NULL when it equals the full frame), snapshots (per probe step the torch.save bytes of
Trainer.state(): what a fork starts from), history (per probe step the arrays the gradient-flow
and spectra views read, app.services.thinning.history_row: never thinned), checkpoints (the latest
weights of each run) and interventions, all deleted with their run (ON DELETE CASCADE); and texts
(custom texts by content hash, which the dashboard's links name: app/web/texts.py); a run's row
is read and written as app.services.run_rows says. `run_bytes` is
what a run's frames, snapshots, history rows and checkpoint take. `RunRecord`
(app.services.records) is a run's row in Python. An older database is migrated when opened
(app.services.migrations). Runs are listed a page at a time, newest first, filtered by a RunQuery
(app.services.run_query), with the total that matches.

Storage budget: a run with a `storage_mb` keeps its frames and snapshots within it; `add_probe`,
in the transaction that stores a frame, thins the run's older frames and snapshots together
(app.core.thinning.kept_steps: the first, the latest and every fork point stay). Metrics and
history rows are never thinned. `add_note` appends a sentence to a run's notes.

Disk: the file uses incremental auto-vacuum; `reclaim()` (the API calls it after deleting runs)
gives the pages of deleted runs back to the disk (PRAGMA incremental_vacuum, then a checkpoint
that truncates the write-ahead log).

What this is not: a cache or a queue. It does not know about processes or the event loop, and it
keeps nothing in memory beyond the two connections.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import fields
from typing import Any, Literal

import orjson

from app.core.engine import StepMetrics
from app.core.thinning import kept_steps
from app.services.database import DB_NAME as DB_NAME
from app.services.database import Database, iso
from app.services.database import StorageError as StorageError
from app.services.interventions import Intervention
from app.services.lineage import ForkRef
from app.services.records import RunRecord, utcnow
from app.services.run_query import RunQuery
from app.services.run_rows import BRIEF_COLUMNS, RUN_COLUMNS, UPDATABLE, column_value
from app.services.run_rows import record as record_of
from app.services.schemas import RunSummary
from app.services.thinning import MB, history_row

INTERRUPTED_ERROR = "server restarted during the run"
TEXTS_KEPT_CHARS = 64 * 2**20  # stored custom texts beyond this, least recently saved first, are dropped
Resolution = Literal["full", "display"]
RESOLUTIONS: tuple[Resolution, ...] = ("full", "display")

METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepMetrics))


class Storage(Database):
    """Runs, their metrics, probe frames, snapshots and checkpoints in one SQLite file (thread-safe)."""

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        """Insert a new run; StorageError if its id is taken. A fork (record.fork) gets its own copy
        of the parent's snapshot at the fork's step, in the same transaction (StorageError if the
        parent has none: then nothing is stored)."""
        fork = record.fork
        try:
            with self._write("creating a run") as conn:
                conn.execute(
                    f"INSERT INTO runs ({RUN_COLUMNS}, brief) VALUES ({', '.join('?' * 21)})",
                    (
                        record.id,
                        record.status,
                        column_value("config", record.config),
                        iso(record.created_at),
                        iso(record.started_at),
                        iso(record.finished_at),
                        record.step,
                        record.steps,
                        record.error,
                        record.group,
                        record.kind,
                        record.name,
                        column_value("tags", record.tags),
                        fork.parent if fork is not None else None,
                        fork.step if fork is not None else None,
                        orjson.dumps(fork.changes).decode() if fork is not None else None,
                        record.storage_mb,
                        column_value("notes", record.notes),
                        record.executor,
                        record.node,
                        column_value("brief", record.config),
                    ),
                )
                if fork is not None and not _copy_snapshot(conn, fork.parent, fork.step, record.id):
                    raise StorageError(f"run {fork.parent} has no stored state at step {fork.step}")
        except StorageError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StorageError(f"a run with id {record.id} already exists") from exc.__cause__
            raise

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with its forks, or None."""
        with self._read("reading a run") as conn:
            return _run(conn, run_id)

    def list_runs(
        self, query: RunQuery | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[RunSummary], int]:
        """One page of the runs `query` matches, newest first, and how many it matches in all.

        The order is total (creation time, then insertion order), so pages neither repeat nor skip
        a run while no run is added or deleted."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, args = (query or RunQuery()).where()
        with self._read("listing runs") as conn:
            conn.execute("BEGIN")  # one snapshot for the page and the count
            try:
                rows = conn.execute(
                    f"SELECT {BRIEF_COLUMNS} FROM runs {where} ORDER BY created_at DESC, rowid DESC "
                    "LIMIT ? OFFSET ?",
                    (*args, limit, offset),
                ).fetchall()
                (total,) = conn.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()
            finally:
                conn.execute("COMMIT")
        return [record_of(r).to_summary() for r in rows], int(total)

    def missing(self, run_ids: list[str]) -> list[str]:
        """Those of `run_ids` that no run has, in the order given."""
        with self._read("looking runs up") as conn:
            found = {
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM runs WHERE id IN ({', '.join('?' * len(run_ids))})", run_ids
                )
            }
        return [run_id for run_id in run_ids if run_id not in found]

    def update_run(self, run_id: str, **fields: Any) -> RunRecord | None:
        """Set some of a run's fields (RunRecord names: status, started_at, error, group, ...).

        Returns the run as updated, or None if there is no such run. TypeError on an unknown field.
        """
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise TypeError(f"update_run() cannot set {', '.join(sorted(unknown))}")
        if not fields:
            return self.get_run(run_id)
        if "config" in fields:
            fields["brief"] = fields["config"]
        values = [column_value(name, value) for name, value in fields.items()]
        assignments = ", ".join(f"{UPDATABLE.get(name, name)} = ?" for name in fields)
        with self._write("updating a run") as conn:
            if conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id)).rowcount == 0:
                return None
            return _run(conn, run_id)

    def delete_run(self, run_id: str) -> bool:
        """Delete a run and (by cascade) its metrics, probes, snapshots, checkpoint and interventions;
        False if there was none (its forks keep their link and their own snapshots).
        Their pages stay free inside the file until `reclaim()`."""
        with self._write("deleting a run") as conn:
            return conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def recover(self, keep: Collection[str] = ()) -> list[str]:
        """At startup: runs left 'running' or 'paused' become 'interrupted', but those in `keep`
        (reattached to workers still training); 'queued' ids, oldest first."""
        with self._write("recovering runs") as conn:
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
                f" WHERE status IN ('running', 'paused') AND id NOT IN ({', '.join('?' * len(keep))})",
                (iso(utcnow()), INTERRUPTED_ERROR, *keep),
            )
            rows = conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at, rowid"
            ).fetchall()
        return [r[0] for r in rows]

    def unfinished(self) -> list[tuple[str, str | None]]:
        """(id, executor) of the runs left 'running' or 'paused', oldest first (before `recover`)."""
        with self._read("looking for unfinished runs") as conn:
            rows = conn.execute(
                "SELECT id, executor FROM runs WHERE status IN ('running', 'paused')"
                " ORDER BY created_at, rowid"
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- metrics ---------------------------------------------------------------------------

    def add_steps(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Store step metrics (dicts of StepMetrics fields) in one transaction; runs.step follows."""
        if not rows:
            return
        params = [
            (
                run_id,
                int(r["step"]),
                r["loss"],
                r["metric"],
                r["grad_norm"],
                r["grad_norm_clipped"],
                int(bool(r["clipped"])),
                r["update_ratio"],
                r["lr"],
                r["seconds"],
                orjson.dumps(r["param_grad_norms"]).decode(),
            )
            for r in rows
        ]
        with self._write("storing step metrics") as conn:
            conn.executemany(f"INSERT OR REPLACE INTO metrics VALUES ({', '.join('?' * 11)})", params)
            conn.execute(
                "UPDATE runs SET step = max(step, ?) WHERE id = ?", (max(p[1] for p in params), run_id)
            )

    def metrics(self, run_id: str, since: int = 0) -> list[dict[str, Any]]:
        """The run's step metrics with step > `since`, in step order (keys: StepMetrics fields)."""
        with self._read("reading metrics") as conn:
            rows = conn.execute(
                f"SELECT {', '.join(METRIC_FIELDS)} FROM metrics WHERE run_id = ? AND step > ? ORDER BY step",
                (run_id, since),
            ).fetchall()
        out = []
        for row in rows:
            m = dict(zip(METRIC_FIELDS, row, strict=True))
            m["clipped"] = bool(m["clipped"])
            m["param_grad_norms"] = orjson.loads(m["param_grad_norms"])
            out.append(m)
        return out

    # -- probes and checkpoints ------------------------------------------------------------

    def add_probe(
        self, run_id: str, step: int, data: bytes, display: bytes | None = None, snapshot: bytes | None = None
    ) -> None:
        """Store a frame's bytes at full resolution, its display frame (None: the same bytes), its
        history row and the snapshot taken with it, if any; then, in the same transaction, thin the
        run's frames and snapshots to its storage budget (the module docstring)."""
        row = history_row(display if display is not None else data)
        with self._write("storing a probe frame") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO probes (run_id, step, data, display) VALUES (?, ?, ?, ?)",
                (run_id, step, data, display),
            )
            if row is not None:
                conn.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", (run_id, step, row))
            if snapshot is not None:
                conn.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (run_id, step, snapshot))
            _thin(conn, run_id)

    def history_steps(self, run_id: str) -> list[int]:
        """The steps of the run's history rows (every probe step, thinned or not), in order."""
        with self._read("listing history rows") as conn:
            rows = conn.execute("SELECT step FROM history WHERE run_id = ? ORDER BY step", (run_id,))
            return [r[0] for r in rows.fetchall()]

    def history(self, run_id: str, step: int) -> bytes | None:
        """The history row at `step` (thinning.history_row), or None."""
        with self._read("reading a history row") as conn:
            query = "SELECT data FROM history WHERE run_id = ? AND step = ?"
            row = conn.execute(query, (run_id, step)).fetchone()
        return bytes(row[0]) if row is not None else None

    def add_note(self, run_id: str, note: str) -> RunRecord | None:
        """Append a sentence to the run's notes; the run as updated, or None if there is none."""
        with self._write("adding a note to a run") as conn:
            query = "UPDATE runs SET notes = json_insert(notes, '$[#]', ?) WHERE id = ?"
            if conn.execute(query, (note, run_id)).rowcount == 0:
                return None
            return _run(conn, run_id)

    def probe_steps(self, run_id: str) -> list[int]:
        with self._read("listing probe frames") as conn:
            rows = conn.execute(
                "SELECT step FROM probes WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def probe(self, run_id: str, step: int | None = None, resolution: Resolution = "full") -> bytes | None:
        """The frame bytes at `step` (None: the latest), or None if there is none.

        `resolution` "full" is the frame as probed, "display" its display frame (the same bytes
        when the frame is small). ValueError for another resolution.
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be 'full' or 'display', not {resolution!r}")
        column = "data" if resolution == "full" else "coalesce(display, data)"
        with self._read("reading a probe frame") as conn:
            if step is None:
                row = conn.execute(
                    f"SELECT {column} FROM probes WHERE run_id = ? ORDER BY step DESC LIMIT 1", (run_id,)
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {column} FROM probes WHERE run_id = ? AND step = ?", (run_id, step)
                ).fetchone()
        return bytes(row[0]) if row is not None else None

    def snapshot_steps(self, run_id: str) -> list[int]:
        """The steps a fork of the run can start from, in order."""
        with self._read("listing snapshots") as conn:
            rows = conn.execute("SELECT step FROM snapshots WHERE run_id = ? ORDER BY step", (run_id,))
            return [r[0] for r in rows.fetchall()]

    def snapshot(self, run_id: str, step: int) -> bytes | None:
        with self._read("reading a snapshot") as conn:
            query = "SELECT data FROM snapshots WHERE run_id = ? AND step = ?"
            row = conn.execute(query, (run_id, step)).fetchone()
        return bytes(row[0]) if row is not None else None

    def run_bytes(self, run_id: str) -> int:
        """The bytes the run's probe frames (full and display), snapshots, history rows and
        checkpoint take."""
        with self._read("measuring a run's storage") as conn:
            return _run_bytes(conn, run_id)

    def save_checkpoint(self, run_id: str, step: int, data: bytes) -> None:
        """Keep `data` as the run's checkpoint (replacing the one before)."""
        with self._write("storing a checkpoint") as conn:
            conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", (run_id, step, data))

    def checkpoint(self, run_id: str) -> bytes | None:
        with self._read("reading a checkpoint") as conn:
            row = conn.execute("SELECT data FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
        return bytes(row[0]) if row is not None else None

    # -- texts (the dashboard form links a custom text by its id: POST /api/texts) ------------

    def add_intervention(self, run_id: str, item: Intervention) -> None:
        row = (run_id, item.id, item.step, orjson.dumps(item.changes).decode(), iso(item.applied_at))
        with self._write("storing an intervention") as conn:
            conn.execute("INSERT OR REPLACE INTO interventions VALUES (?, ?, ?, ?, ?)", row)

    def interventions(self, run_id: str) -> list[Intervention]:
        """The run's applied interventions, in the order applied."""
        query = "SELECT id, step, changes, applied_at FROM interventions WHERE run_id = ? ORDER BY rowid"
        with self._read("reading interventions") as conn:
            rows = conn.execute(query, (run_id,)).fetchall()
        return [Intervention(id=i, step=s, changes=orjson.loads(c), applied_at=a) for i, s, c, a in rows]

    def save_text(self, text_id: str, text: str) -> None:
        """Keep `text` under `text_id` (its content hash: saving it again only marks it as recent).

        Drafts pile up as a person types, so the texts kept are bounded: beyond TEXTS_KEPT_CHARS in
        all, the least recently saved go (a link to one then gets 404, with a sentence)."""
        with self._write("storing a text") as conn:
            conn.execute(
                "INSERT INTO texts (id, text, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at",
                (text_id, text, iso(utcnow())),
            )
            conn.execute(
                "DELETE FROM texts WHERE id IN (SELECT id FROM (SELECT id, sum(length(text)) OVER "
                "(ORDER BY created_at DESC, rowid DESC) AS kept FROM texts) WHERE kept > ?)",
                (TEXTS_KEPT_CHARS,),
            )

    def text(self, text_id: str) -> str | None:
        with self._read("reading a text") as conn:
            row = conn.execute("SELECT text FROM texts WHERE id = ?", (text_id,)).fetchone()
        return str(row[0]) if row is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- conversions ----------------------------------------------------------------------------


def _copy_snapshot(conn: sqlite3.Connection, run_id: str, step: int, to: str) -> bool:
    """Copy run_id's snapshot at `step` to run `to`; False if there is none."""
    query = "INSERT INTO snapshots SELECT ?, step, data FROM snapshots WHERE run_id = ? AND step = ?"
    return conn.execute(query, (to, run_id, step)).rowcount > 0


_BYTES = (
    "SELECT (SELECT coalesce(sum(length(data) + coalesce(length(display), 0)), 0) FROM probes WHERE run_id"
    " = :id) + (SELECT coalesce(sum(length(data)), 0) FROM snapshots WHERE run_id = :id) + (SELECT"
    " coalesce(sum(length(data)), 0) FROM history WHERE run_id = :id) + (SELECT coalesce(sum(length(data)),"
    " 0) FROM checkpoints WHERE run_id = :id)"
)
# per step, what thinning can drop: its frame (full and display) and its snapshot
_STEP_BYTES = (
    "SELECT step, sum(n) FROM (SELECT step, length(data) + coalesce(length(display), 0) AS n FROM probes"
    " WHERE run_id = :id UNION ALL SELECT step, length(data) FROM snapshots WHERE run_id = :id) GROUP BY step"
)
_FIXED_BYTES = (
    "SELECT (SELECT coalesce(sum(length(data)), 0) FROM history WHERE run_id = :id) + (SELECT"
    " coalesce(sum(length(data)), 0) FROM checkpoints WHERE run_id = :id)"
)


def _run_bytes(conn: sqlite3.Connection, run_id: str) -> int:
    (total,) = conn.execute(_BYTES, {"id": run_id}).fetchone()
    return int(total)


def _thin(conn: sqlite3.Connection, run_id: str) -> None:
    """Drop the run's frames and snapshots that kept_steps leaves out of its budget."""
    row = conn.execute("SELECT storage_mb, fork_step FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None or row[0] is None:
        return  # no budget (or the run is gone: its rows go with it)
    (fixed,) = conn.execute(_FIXED_BYTES, {"id": run_id}).fetchone()
    sizes = dict(conn.execute(_STEP_BYTES, {"id": run_id}).fetchall())
    pinned = {s for (s,) in conn.execute("SELECT fork_step FROM runs WHERE parent = ?", (run_id,))}
    if row[1] is not None:
        pinned.add(row[1])  # a fork's own start
    dropped = sorted(set(sizes) - kept_steps(sizes, row[0] * MB - int(fixed), pinned))
    for table in ("probes", "snapshots") if dropped else ():
        conn.executemany(f"DELETE FROM {table} WHERE run_id = ? AND step = ?", [(run_id, s) for s in dropped])


def _run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    """The run's record with its forks (oldest first) and the bytes it takes, or None."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    query = "SELECT id, fork_step FROM runs WHERE parent = ? ORDER BY created_at, rowid"
    record = record_of(row)
    record.forks = [ForkRef(id=i, step=s) for i, s in conn.execute(query, (run_id,)).fetchall()]
    record.storage_bytes = _run_bytes(conn, run_id)
    return record
