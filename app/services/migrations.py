"""The database's tables (SCHEMA, version SCHEMA_VERSION) and how an older file comes to have them.

What this is: SCHEMA, the CREATE ... IF NOT EXISTS statements Storage runs on every open;
`use_incremental_vacuum(conn)`, run before them; and `migrate(conn)`, run after them in the same
transaction. Each migration step looks at what the file has and adds only what it lacks, so a
current file is left as it is:

- version 1 -> 2: probes gain `display` and the display frames of their large frames;
- version 2 -> 3: runs gain `kind`, every run so far "built-in";
- version 3 -> 4: runs gain `name` and `tags` (from their config: an attached run's name is its
  watch's) and `brief`, the config as the run list shows it (records.brief);
- version 4 -> 5: the texts table (custom texts by content hash), made by its CREATE in SCHEMA;
- version 5 -> 6: the interventions table (a run's applied interventions), made so too;
- version 6 -> 7: the snapshots table (Trainer.state() at each probe step, what a fork starts
  from), made so too, and runs gain `parent`, `fork_step` and `fork_changes` (NULL: not a fork)
  with an index on `parent` (a run's forks);
- version 7 -> 8: runs gain `storage_mb` (the run's storage budget; NULL: none, as for every run
  so far) and `notes` (sentences about the run that are not errors, '[]'), and the history table
  (per probe step the arrays the gradient-flow and spectra views read: thinning.history_row),
  filled from the stored display frames.
- version 8 -> 9: the sweeps table (a sweep's name, base config and grid) and sweep_runs (each
  run of a sweep: its place in the grid's product, its params, and its final figures once
  known, app.services.sweep_store), made by their CREATE in SCHEMA; and runs gain `executor`
  ("local" or "ray": what trained the run; "local" for every built-in run started so far) and
  `node` (the machine or Ray node that trained it; NULL: not known).

Files made before version 4 have no auto-vacuum: the first open switches it to incremental and
rewrites the file once with VACUUM (it needs free disk space about the file's size), so that
deleting runs gives their pages back to the disk from then on (Storage.delete_run).

What this is not: any query of the running server (storage.py).
"""

from __future__ import annotations

import logging
import sqlite3

import orjson

from app.core.frames import MAX_T, MAX_UNITS, Frame
from app.services.records import brief
from app.services.thinning import history_row

SCHEMA_VERSION = 9
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL,
    error TEXT,
    grp TEXT,
    kind TEXT NOT NULL DEFAULT 'built-in',
    name TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    brief TEXT NOT NULL DEFAULT '{}',
    parent TEXT,
    fork_step INTEGER,
    fork_changes TEXT,
    storage_mb INTEGER,
    notes TEXT NOT NULL DEFAULT '[]',
    executor TEXT,
    node TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    loss REAL,
    metric REAL,
    grad_norm REAL,
    grad_norm_clipped REAL,
    clipped INTEGER NOT NULL,
    update_ratio REAL,
    lr REAL,
    seconds REAL,
    param_grad_norms TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS probes (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    data BLOB NOT NULL,
    display BLOB,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS interventions (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    step INTEGER NOT NULL,
    changes TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS texts (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    base TEXT NOT NULL,
    grid TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    run_id TEXT NOT NULL UNIQUE REFERENCES runs (id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    loss REAL,
    loss_final INTEGER NOT NULL DEFAULT 0,
    ratio REAL,
    ratio_known INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, position)
);
"""


log = logging.getLogger(__name__)


def use_incremental_vacuum(conn: sqlite3.Connection) -> None:
    """Turn on incremental auto-vacuum: at once for a new file, with one VACUUM for an older one.

    A VACUUM that fails (a full disk) is logged and the file is used as it is: deleting runs then
    leaves their pages free inside the file until the next open tries again."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0:
        return  # a new file: the setting holds from its first table on
    try:
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning(
            "could not switch the database to incremental vacuum (%s): deleted runs keep their space", exc
        )


def migrate(conn: sqlite3.Connection) -> None:
    """Bring an older database to the current version (a new one already is)."""
    _add_display_frames(conn)
    if "kind" not in _columns(conn, "runs"):  # version 2 -> 3: every run so far was trained here
        conn.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'built-in'")
    _add_names_and_tags(conn)
    if "parent" not in _columns(conn, "runs"):  # version 6 -> 7: no run so far is a fork
        for column in ("parent TEXT", "fork_step INTEGER", "fork_changes TEXT"):
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent)")
    _add_budgets_and_history(conn)
    if "executor" not in _columns(conn, "runs"):  # version 8 -> 9: every run so far trained here
        conn.execute("ALTER TABLE runs ADD COLUMN executor TEXT")
        conn.execute("ALTER TABLE runs ADD COLUMN node TEXT")
        conn.execute("UPDATE runs SET executor = 'local' WHERE kind = 'built-in' AND started_at IS NOT NULL")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _add_display_frames(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: add probes.display and make the display frames of large frames."""
    if "display" in _columns(conn, "probes"):
        return
    conn.execute("ALTER TABLE probes ADD COLUMN display BLOB")
    keys = conn.execute("SELECT run_id, step FROM probes").fetchall()
    for run_id, step in keys:
        (data,) = conn.execute(
            "SELECT data FROM probes WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
        try:
            T, units = Frame.from_bytes(data, names=("mask", "h")).sizes()  # reads two arrays
            if T <= MAX_T and units <= MAX_UNITS:
                continue  # small: its display frame is the frame
            display = Frame.from_bytes(data).pooled().to_bytes()
        except ValueError:
            continue  # unreadable as stored: it stays as it is (and reads fail as before)
        conn.execute("UPDATE probes SET display = ? WHERE run_id = ? AND step = ?", (display, run_id, step))


def _add_names_and_tags(conn: sqlite3.Connection) -> None:
    """Version 3 -> 4: runs.name and runs.tags from each config, and runs.brief."""
    if "name" in _columns(conn, "runs"):
        return
    conn.execute("ALTER TABLE runs ADD COLUMN name TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
    conn.execute("ALTER TABLE runs ADD COLUMN brief TEXT NOT NULL DEFAULT '{}'")
    ids = [row[0] for row in conn.execute("SELECT id FROM runs").fetchall()]
    for run_id in ids:  # one config at a time: a custom text may be 1 MB
        (config_json,) = conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
        config = orjson.loads(config_json)
        name = config.get("name")
        tags = config.get("tags")
        conn.execute(
            "UPDATE runs SET name = ?, tags = ?, brief = ? WHERE id = ?",
            (
                name if isinstance(name, str) else None,
                orjson.dumps(tags if isinstance(tags, list) else []).decode(),
                orjson.dumps(brief(config)).decode(),
                run_id,
            ),
        )


def _add_budgets_and_history(conn: sqlite3.Connection) -> None:
    """Version 7 -> 8: runs.storage_mb and runs.notes, and a history row of every stored frame."""
    if "notes" in _columns(conn, "runs"):
        return
    conn.execute("ALTER TABLE runs ADD COLUMN storage_mb INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '[]'")
    keys = conn.execute("SELECT run_id, step FROM probes").fetchall()
    for run_id, step in keys:  # one frame at a time: a frame may be several MB
        (data,) = conn.execute(
            "SELECT coalesce(display, data) FROM probes WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
        row = history_row(data)
        if row is not None:  # else unreadable as stored: the views had no row of it before either
            conn.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", (run_id, step, row))
