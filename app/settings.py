"""Runtime configuration, read from ``GATESCOPE_*`` environment variables."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.services.disk import MIN_FREE_MB, RUN_STORAGE_MB
from app.services.schemas import LIMITS


def _default_max_runs() -> int:
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Gatescope settings; every field can be set as ``GATESCOPE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GATESCOPE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    max_runs: int = Field(default_factory=_default_max_runs, ge=1)
    token: str | None = None
    # comma-separated origins (scheme://host[:port]) allowed besides the server's own: enables CORS
    # for them and lets their pages open the websocket. Empty: same origin only, no CORS.
    allowed_origins: str = ""
    # run creation (POST /api/runs, /api/compare) per client IP: this many per minute, bursts of
    # run_burst; 0 turns the limit off
    run_rate: float = Field(default=30.0, ge=0)
    run_burst: int = Field(default=10, ge=1)
    # the largest run this server queues, by its estimated cost (app.core.cost): seconds per
    # training step (probes included) and the worker's peak memory; beyond either, a 422
    max_step_seconds: float = Field(default=10.0, gt=0)
    max_run_memory_mb: int = Field(default=4096, ge=1)
    # a run's storage budget unless it asks for another, in MB (docs/api.md "Storage budget"), and
    # the free space below which no new run starts and running runs stop recording frames
    run_storage_mb: int = Field(default=RUN_STORAGE_MB, ge=1, le=LIMITS.storage_mb)
    min_free_mb: int = Field(default=MIN_FREE_MB, ge=0)
    # train runs on a Ray cluster instead of local processes: "auto", "ray://host:port" or the
    # cluster's "host:port" (README "Run on a Ray cluster"); max_runs, unless set, is then its CPUs
    ray_address: str | None = None

    @field_validator("token")
    @classmethod
    def _empty_token_is_none(cls, value: str | None) -> str | None:
        """An empty (or blank) GATESCOPE_TOKEN means no token, not a token anyone can send."""
        return value if value and value.strip() else None

    @property
    def origins(self) -> list[str]:
        """The allowed origins as a list, without trailing slashes."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
