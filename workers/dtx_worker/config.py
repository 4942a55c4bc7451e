"""Worker configuration from the environment, validated at start-up."""

from __future__ import annotations

import os
import socket

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"


class ConfigError(Exception):
    """A bad or missing environment variable; the message names it and says what is expected."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    """Every field is read from `DTX_WORKER_<NAME>`, except `database_url` (`DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="DTX_WORKER_", extra="ignore", populate_by_name=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL",
                              pattern=r"^postgres(ql)?://", description="libpq connection URL")
    worker_id: str = Field(default_factory=default_worker_id, min_length=1, max_length=200)
    poll_interval: float = Field(5.0, gt=0, le=300, description="seconds between polls when no NOTIFY arrives")
    concurrency: int = Field(4, ge=1, le=100, description="jobs run at once by this process")
    batch_size: int = Field(10, ge=1, le=1000, description="jobs claimed per query")
    lease_seconds: int = Field(300, ge=5, le=86400, description="how long a claimed job stays ours")
    retry_base_seconds: float = Field(5.0, gt=0, le=3600, description="first retry delay (doubles per attempt)")
    stats_batch_size: int = Field(500, ge=1, le=100000, description="dirty days recomputed per statement")
    shutdown_grace: float = Field(20.0, ge=0, le=600, description="seconds to let running jobs finish on SIGTERM")
    pool_size: int = Field(5, ge=2, le=100)
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve /healthz and /metrics (0: any port)")
    metrics_host: str = Field("0.0.0.0", min_length=1, description="address the metrics server binds")


def env_name(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"DTX_WORKER_{field.upper()}"


def load_settings() -> WorkerSettings:
    """Read the settings, or raise ConfigError naming the first bad variable."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            raw = err.get("input")
            problems.append(f"{env_name(field)}: {err['msg']} (got {raw!r})")
        raise ConfigError("invalid worker configuration:\n  " + "\n  ".join(problems)) from None
