"""Runtime configuration, read from ``GATESCOPE_*`` environment variables."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
