"""A run's row: `RunRecord`, what storage keeps of a run and how the API shows it (`to_public`).

What this is: the dataclass every layer passes around for a run (storage writes and reads it,
the manager and the attached-run service make and update it, the web layer shows it), the
cached validation of its stored config (a RunCreate, or an AttachedConfig for an attached run),
and `brief(config)`, the config as the run list shows it (RunSummary: without its bulky fields).
A run's `name` and `tags` are its current ones: they start as the config's (an attached run's
name is its watch's) and PATCH changes them; the run is always shown with them, in its config too.
A fork's `fork` says where it came from (RunSummary shows its parent alone); `forks` are a run's
own (storage reads them).
What this is not: SQL (app.services.storage) or scheduling (app.services.manager).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from app.services.executors import ExecutorName
from app.services.lineage import ForkOf, ForkRef
from app.services.schemas import AttachedConfig, RunCreate, RunKind, RunPublic, RunStatus, RunSummary


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class RunRecord:
    """A run as stored. `config` is the model_dump(mode="json") of a RunCreate (kind "built-in")
    or an AttachedConfig (kind "attached"); datetimes are UTC."""

    id: str
    status: RunStatus
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int = 0  # steps trained so far
    steps: int = 0  # steps asked for
    error: str | None = None
    group: str | None = None
    kind: RunKind = "built-in"
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    fork: ForkOf | None = None  # where this run was forked from
    forks: list[ForkRef] = field(default_factory=list)  # its own forks, oldest first
    storage_mb: int | None = None  # its storage budget (Storage.add_probe thins to it); None: none
    storage_bytes: int = 0  # what it takes (Storage.run_bytes), as storage last read it
    notes: list[str] = field(default_factory=list)  # sentences about it that are not errors
    executor: ExecutorName | None = None  # "local" or "ray": what trained it (None: not started, or attached)
    node: str | None = None  # the machine or Ray node that trained it, once known

    @classmethod
    def new(cls, run_id: str, config: RunCreate, group: str | None = None) -> RunRecord:
        """A fresh 'queued' record of `config`, created now."""
        return cls(
            id=run_id,
            status="queued",
            config=config.model_dump(mode="json"),
            created_at=utcnow(),
            steps=config.steps,
            group=group,
            name=config.name,
            tags=list(config.tags),
        )

    @classmethod
    def attached(cls, run_id: str, config: AttachedConfig, group: str) -> RunRecord:
        """A fresh 'running' attached run of `config`, created and started now."""
        now = utcnow()
        return cls(
            id=run_id,
            status="running",
            config=config.model_dump(mode="json"),
            created_at=now,
            started_at=now,
            group=group,
            kind="attached",
            name=config.name,
        )

    def to_public(self, queue_position: int | None = None) -> RunPublic:
        """The run as the API shows it; an attached run's `steps` is its step (no target known).
        `queue_position`: the manager's (RunManager.public), for a queued run."""
        config_json = orjson.dumps(self.config, option=orjson.OPT_SORT_KEYS).decode()
        config: RunCreate | AttachedConfig
        if self.kind == "attached":
            config = _attached_config(config_json).model_copy(update={"name": self.name})
        else:
            config = _run_create(config_json).model_copy(update={"name": self.name, "tags": self.tags})
        return RunPublic(
            config=config,
            queue_position=queue_position,
            fork=self.fork,
            forks=self.forks,
            storage_mb=self.storage_mb,
            storage_bytes=self.storage_bytes,
            notes=self.notes,
            executor=self.executor,
            node=self.node,
            **self._shown(),
        )

    def _shown(self) -> dict[str, Any]:
        """The fields a run's public form and its list summary share, as they are shown."""
        return {
            "id": self.id,
            "status": self.status,
            "kind": self.kind,
            "name": self.name,
            "tags": self.tags,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "step": self.step,
            "steps": self.step if self.kind == "attached" else self.steps,  # an attached run asks for none
            "error": self.error,
            "group": self.group,
        }

    def to_summary(self) -> RunSummary:
        """The run as the list shows it (its config brief); storage lists records with brief configs."""
        config = {**brief(self.config), "name": self.name}
        if self.kind == "built-in":
            config["tags"] = self.tags
        return RunSummary(config=config, parent=self.fork.parent if self.fork else None, **self._shown())


def brief(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config without its bulky fields: a char_lm run's custom text (task.text, up to 1 MB)
    and an attached run's parameter shapes (up to 10,000). Idempotent."""
    out = {k: v for k, v in config.items() if k != "parameters"}
    if isinstance(out.get("task"), dict):
        out["task"] = {k: v for k, v in out["task"].items() if k != "text"}
    return out


CACHED_CONFIG_CHARS = 64_000  # configs up to this size (all but custom char_lm texts) are cached


def _run_create(config_json: str) -> RunCreate:
    """A stored config as a RunCreate. Validating a char_lm config indexes its corpus (~40 ms for
    Hamlet), so small configs are cached (shared instances: treat them as read-only)."""
    if len(config_json) <= CACHED_CONFIG_CHARS:
        return _cached_run_create(config_json)
    return RunCreate.model_validate_json(config_json)


@lru_cache(maxsize=256)
def _cached_run_create(config_json: str) -> RunCreate:
    return RunCreate.model_validate_json(config_json)


@lru_cache(maxsize=256)
def _attached_config(config_json: str) -> AttachedConfig:
    """A stored attached config (cached: up to 10,000 parameter shapes; shared, read-only)."""
    return AttachedConfig.model_validate_json(config_json)
