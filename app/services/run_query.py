"""Which runs a list asks for: `RunQuery`, the filters of GET /api/runs, and its SQL WHERE clause.

What this is: a frozen dataclass of filters, all of which a run must pass: `statuses` (any of
them), `kind`, `cell`, `task` (a built-in run's task name), `group`, `tags` (every one of them,
compared without regard to ASCII case), and `q`, a search: a run matches when `q` appears,
ASCII case ignored, in its name, its id or one of its tags. `where()` is the clause over the runs
table (storage.py) with its parameters; values are always parameters, never SQL text.

What this is not: validation of the values (the route's Query types) or the query itself
(storage.Storage.list_runs, which pages it newest first and counts it).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.services.schemas import RunKind, RunStatus

_HAS_TAG = "EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ? COLLATE NOCASE)"
_TAG_LIKE = "EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value LIKE ? ESCAPE '\\')"


@dataclass(frozen=True)
class RunQuery:
    """Filters of a run list; None (or empty) filters nothing."""

    statuses: tuple[RunStatus, ...] = ()
    kind: RunKind | None = None
    cell: str | None = None
    task: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    q: str | None = None

    def where(self) -> tuple[str, tuple[str, ...]]:
        """'WHERE ...' (or '') and its parameters, in order."""
        clauses: list[str] = []
        args: list[str] = []
        if self.statuses:
            clauses.append(f"status IN ({', '.join('?' * len(self.statuses))})")
            args.extend(self.statuses)
        for column, value in (
            ("kind", self.kind),
            ("json_extract(brief, '$.cell')", self.cell),
            ("json_extract(brief, '$.task.name')", self.task),
            ("grp", self.group),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        for tag in self.tags:
            clauses.append(_HAS_TAG)
            args.append(tag)
        if self.q:
            pattern = f"%{_escape_like(self.q)}%"
            clauses.append(f"(name LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' OR {_TAG_LIKE})")
            args.extend((pattern, pattern, pattern))
        return ("WHERE " + " AND ".join(clauses) if clauses else "", tuple(args))


def _escape_like(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\' (its % and _ are not wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
