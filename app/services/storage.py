"""Durable state of every run: one SQLite file, data_dir/"gatescope.db".

What this is: `Storage`, the only code that speaks SQL. Four tables: runs (one row per run: its
kind, "built-in" or "attached", its config as JSON and, for the run list, its config brief, its
current name and tags), metrics (one row per training step),
probes (per probe step the frame bytes of app.core.frames at full resolution, `data`, and the
display frame, `display`, NULL when it equals the full frame) and checkpoints (the latest
weights of each run), the last three deleted with their run (ON DELETE CASCADE); and texts
(custom texts by content hash, which the dashboard's links name: app/web/texts.py).
`RunRecord` (app.services.records) is a run's row in Python. An older database is migrated when
opened (app.services.migrations). Runs are listed a page at a time, newest first, filtered by a
RunQuery (app.services.run_query), with the total that matches.

Disk: the file uses incremental auto-vacuum; `reclaim()` (the API calls it after deleting runs)
gives the pages of deleted runs back to the disk (PRAGMA incremental_vacuum, then a checkpoint
that truncates the write-ahead log).

Concurrency: the database is in WAL mode, so readers never wait for the writer. Storage holds two
connections, one for writes and one for reads, each behind its own lock, so any thread may call
any method (web requests and the manager's reader threads do at once). Every write is one
transaction. Times are stored as ISO 8601 UTC text with microseconds (so text order is time order)
and come back as timezone-aware datetimes. Every sqlite3 error surfaces as `StorageError` with a
sentence saying what went wrong (a full disk, a locked or unreadable file) and where.

What this is not: a cache or a queue. It does not know about processes or the event loop, and it
keeps nothing in memory beyond the two connections.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from app.core.engine import StepMetrics
from app.services import migrations
from app.services.interventions import Intervention
from app.services.migrations import SCHEMA, SCHEMA_VERSION
from app.services.records import RunRecord, brief, utcnow
from app.services.run_query import RunQuery
from app.services.schemas import RunKind, RunStatus, RunSummary

DB_NAME = "gatescope.db"
BUSY_TIMEOUT = 5.0  # seconds a statement waits for another connection's lock
INTERRUPTED_ERROR = "server restarted during the run"
TEXTS_KEPT_CHARS = 64 * 2**20  # stored custom texts beyond this, least recently saved first, are dropped
Resolution = Literal["full", "display"]
RESOLUTIONS: tuple[Resolution, ...] = ("full", "display")

METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepMetrics))
_RUN_COLUMNS = (
    "id, status, config, created_at, started_at, finished_at, step, steps, error, grp, kind, name, tags"
)
_BRIEF_COLUMNS = _RUN_COLUMNS.replace("config", "brief")  # the run list reads the brief, not the config
# RunRecord field -> runs column, for update_run
_UPDATABLE = {
    "status": "status",
    "config": "config",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "step": "step",
    "steps": "steps",
    "error": "error",
    "group": "grp",
    "name": "name",
    "tags": "tags",
}


class StorageError(Exception):
    """The database could not do what was asked; the message is a sentence for a person."""


class Storage:
    """Runs, their metrics, probe frames and checkpoints in one SQLite file (thread-safe)."""

    def __init__(self, data_dir: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        """Open (creating if need be) data_dir/gatescope.db; `busy_timeout` seconds to wait for a lock."""
        self.path = Path(data_dir) / DB_NAME
        self.busy_timeout = busy_timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {self.path.parent}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        with self._errors("opening the database"):
            self._writer = self._connect()
            try:
                migrations.use_incremental_vacuum(self._writer)  # before WAL: a new file takes it then
                self._writer.execute("PRAGMA journal_mode=WAL")
                with self._transaction():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self._writer.execute(statement)
                    migrations.migrate(self._writer)
                    self._writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._reader = self._connect()
            except BaseException:
                self._writer.close()
                raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(_sentence(exc, action, self.path)) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error)."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._errors(action):
            self._check_open()
            with self._transaction() as conn:
                yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._read_lock, self._errors(action):
            self._check_open()
            yield self._reader

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the storage at {self.path} is closed")

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        """Insert a new run; StorageError if its id is taken."""
        try:
            with self._write("creating a run") as conn:
                conn.execute(
                    f"INSERT INTO runs ({_RUN_COLUMNS}, brief) VALUES ({', '.join('?' * 14)})",
                    (
                        record.id,
                        record.status,
                        _column_value("config", record.config),
                        _iso(record.created_at),
                        _iso(record.started_at),
                        _iso(record.finished_at),
                        record.step,
                        record.steps,
                        record.error,
                        record.group,
                        record.kind,
                        record.name,
                        _column_value("tags", record.tags),
                        _column_value("brief", record.config),
                    ),
                )
        except StorageError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StorageError(f"a run with id {record.id} already exists") from exc.__cause__
            raise

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read("reading a run") as conn:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _record(row) if row is not None else None

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
                    f"SELECT {_BRIEF_COLUMNS} FROM runs {where} ORDER BY created_at DESC, rowid DESC "
                    "LIMIT ? OFFSET ?",
                    (*args, limit, offset),
                ).fetchall()
                (total,) = conn.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()
            finally:
                conn.execute("COMMIT")
        return [_record(r).to_summary() for r in rows], int(total)

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
        unknown = set(fields) - set(_UPDATABLE)
        if unknown:
            raise TypeError(f"update_run() cannot set {', '.join(sorted(unknown))}")
        if not fields:
            return self.get_run(run_id)
        if "config" in fields:
            fields["brief"] = fields["config"]
        values = [_column_value(name, value) for name, value in fields.items()]
        assignments = ", ".join(f"{_UPDATABLE.get(name, name)} = ?" for name in fields)
        with self._write("updating a run") as conn:
            if conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id)).rowcount == 0:
                return None
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _record(row)

    def delete_run(self, run_id: str) -> bool:
        """Delete a run and (by cascade) its metrics, probes and checkpoint; False if there was none.
        Their pages stay free inside the file until `reclaim()`."""
        with self._write("deleting a run") as conn:
            return conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def reclaim(self) -> None:
        """Give the free pages (of deleted runs) back to the disk: incremental vacuum moves them
        to the file's end and cuts them off (executescript steps it to the end), then a checkpoint
        writes them into the file and truncates the write-ahead log. Takes a moment per 100 MB."""
        with self._write_lock, self._errors("giving the space of deleted runs back to the disk"):
            self._check_open()
            self._writer.executescript("PRAGMA incremental_vacuum;")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def recover(self) -> list[str]:
        """At startup: runs left 'running' or 'paused' become 'interrupted'; 'queued' ids, oldest first."""
        with self._write("recovering runs") as conn:
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE status IN ('running', 'paused')",
                (_iso(utcnow()), INTERRUPTED_ERROR),
            )
            rows = conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at, rowid"
            ).fetchall()
        return [r[0] for r in rows]

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

    def add_probe(self, run_id: str, step: int, data: bytes, display: bytes | None = None) -> None:
        """Store a frame's bytes at full resolution and its display frame (None: the same bytes)."""
        with self._write("storing a probe frame") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO probes (run_id, step, data, display) VALUES (?, ?, ?, ?)",
                (run_id, step, data, display),
            )

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
        row = (run_id, item.id, item.step, orjson.dumps(item.changes).decode(), _iso(item.applied_at))
        with self._write("storing an intervention") as conn:
            conn.execute("INSERT INTO interventions VALUES (?, ?, ?, ?, ?)", row)

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
                (text_id, text, _iso(utcnow())),
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

    def close(self) -> None:
        """Close both connections (idempotent); any later call raises StorageError."""
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._writer.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- conversions ----------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds always present (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _column_value(name: str, value: Any) -> Any:
    if name in ("started_at", "finished_at"):
        return _iso(value)
    if name in ("config", "tags"):
        return orjson.dumps(value).decode()
    if name == "brief":  # `value` is the whole config
        return orjson.dumps(brief(value)).decode()
    return value


def _record(row: tuple[Any, ...]) -> RunRecord:
    (
        run_id,
        status,
        config,
        created_at,
        started_at,
        finished_at,
        step,
        steps,
        error,
        group,
        kind,
        name,
        tags,
    ) = row
    created = _datetime(created_at)
    assert created is not None
    return RunRecord(
        id=run_id,
        status=cast(RunStatus, status),
        config=orjson.loads(config),
        created_at=created,
        started_at=_datetime(started_at),
        finished_at=_datetime(finished_at),
        step=step,
        steps=steps,
        error=error,
        group=group,
        kind=cast(RunKind, kind),
        name=name,
        tags=orjson.loads(tags),
    )


def _sentence(exc: sqlite3.Error, action: str, path: Path) -> str:
    """A sentence for a person about a sqlite3 error met while `action`."""
    name = getattr(exc, "sqlite_errorname", "") or ""  # e.g. "SQLITE_FULL" (Python 3.11+)
    text = str(exc)
    where = f"{path} (while {action})"
    for codes, words, sentence in _ERRORS:
        if name.startswith(codes) or any(w in text for w in words):
            return f"{sentence}: {where}"
    if isinstance(exc, sqlite3.IntegrityError):
        return f"the database refused a change that conflicts with what is stored ({text}): {where}"
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return f"the storage at {path} is closed"
    return f"the database failed while {action}: {text} ({path})"


# (sqlite error name prefixes, words of the message, the sentence), first match wins
_ERRORS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("SQLITE_FULL",), ("disk is full",), "the disk is full"),
    (("SQLITE_BUSY", "SQLITE_LOCKED"), ("locked",), "the database is locked by another connection"),
    (("SQLITE_READONLY",), ("readonly",), "the database is read-only"),
    (("SQLITE_CANTOPEN",), ("unable to open",), "cannot open the database file"),
    (("SQLITE_CORRUPT", "SQLITE_NOTADB"), ("malformed", "not a database"), "the database file is damaged"),
    (("SQLITE_IOERR",), ("disk I/O",), "a disk I/O error occurred on the database"),
)
