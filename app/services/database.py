"""The SQLite plumbing under Storage: two connections, transactions, errors as sentences.

What this is: `Database(data_dir)`, which opens (creating and migrating if need be)
data_dir/"gatescope.db" in WAL mode with incremental auto-vacuum, and gives its subclass
(app.services.storage.Storage) `_write(action)` (the write connection inside one BEGIN IMMEDIATE
... COMMIT transaction) and `_read(action)` (the read connection), each behind its own lock so
any thread may use them; `reclaim()` and `close()`. Every sqlite3 error surfaces as
`StorageError` with a sentence saying what went wrong (a full disk, a locked or unreadable file)
and where. `iso` / `as_datetime`: how times are stored (ISO 8601 UTC text with microseconds, so
text order is time order) and read back (timezone-aware).

What this is not: any table's queries (storage.py) or the schema (migrations.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from app.services import migrations
from app.services.migrations import SCHEMA, SCHEMA_VERSION

DB_NAME = "gatescope.db"
BUSY_TIMEOUT = 5.0  # seconds a statement waits for another connection's lock


class StorageError(Exception):
    """The database could not do what was asked; the message is a sentence for a person."""


class Database:
    """One SQLite file behind a write and a read connection (thread-safe)."""

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

    def reclaim(self) -> None:
        """Give the free pages (of deleted runs) back to the disk: incremental vacuum moves them
        to the file's end and cuts them off (executescript steps it to the end), then a checkpoint
        writes them into the file and truncates the write-ahead log. Takes a moment per 100 MB."""
        with self._write_lock, self._errors("giving the space of deleted runs back to the disk"):
            self._check_open()
            self._writer.executescript("PRAGMA incremental_vacuum;")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        """Close both connections (idempotent); any later call raises StorageError."""
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._writer.close()


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds always present (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def as_datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


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
