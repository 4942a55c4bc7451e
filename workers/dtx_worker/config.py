"""Worker configuration from the environment, validated at start-up."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
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
    supabase_url: str | None = Field(None, validation_alias="SUPABASE_URL", description="https://<ref>.supabase.co")
    supabase_service_role_key: SecretStr | None = Field(None, validation_alias="SUPABASE_SERVICE_ROLE_KEY")
    wakeups: str = Field("auto", pattern=r"^(auto|listen|realtime)$",
                         description="auto: Supabase Realtime when SUPABASE_URL is set, else LISTEN/NOTIFY")
    realtime_max_retries: int = Field(5, ge=1, le=100, description="reconnects the realtime client tries itself")
    realtime_initial_backoff: float = Field(1.0, gt=0, le=60, description="the client's first reconnect delay")
    realtime_timeout: int = Field(10, ge=1, le=120, description="connect and join timeout (seconds)")
    realtime_max_backoff: float = Field(60.0, gt=0, le=3600, description="cap of the supervisor's rebuild delay")

    @field_validator("supabase_url", "supabase_service_role_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def use_realtime(self) -> bool:
        return self.wakeups == "realtime" or (self.wakeups == "auto" and self.supabase_url is not None)


ALIASES = {"database_url": "DATABASE_URL", "supabase_url": "SUPABASE_URL",
           "supabase_service_role_key": "SUPABASE_SERVICE_ROLE_KEY"}


def env_name(field: str) -> str:
    return ALIASES.get(field, f"DTX_WORKER_{field.upper()}")


def supabase_problems(settings: WorkerSettings) -> list[str]:
    """What is wrong with the Supabase settings (they come as a pair; the URL is the project's http(s) URL)."""
    problems = []
    url, key = settings.supabase_url, settings.supabase_service_role_key
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"SUPABASE_URL: must be the project's http(s) URL, e.g. https://<ref>.supabase.co"
                            f" (got {url!r})")
        if key is None or not key.get_secret_value().strip():
            problems.append("SUPABASE_SERVICE_ROLE_KEY: required when SUPABASE_URL is set (the project's service"
                            " role key)")
    elif key is not None:
        problems.append("SUPABASE_URL: required when SUPABASE_SERVICE_ROLE_KEY is set")
    if settings.wakeups == "realtime" and url is None:
        problems.append("DTX_WORKER_WAKEUPS: 'realtime' needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
    return problems


def load_settings() -> WorkerSettings:
    """Read the settings, or raise ConfigError naming the first bad variable."""
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            raw = "<secret>" if field == "supabase_service_role_key" else err.get("input")
            problems.append(f"{env_name(field)}: {err['msg']} (got {raw!r})")
        raise ConfigError("invalid worker configuration:\n  " + "\n  ".join(problems)) from None
    problems = supabase_problems(settings)
    if problems:
        raise ConfigError("invalid worker configuration:\n  " + "\n  ".join(problems))
    return settings
