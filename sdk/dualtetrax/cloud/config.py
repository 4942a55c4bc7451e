"""Where the cloud is and who you are: configuration and the session cache.

Settings come from the environment first, then from a TOML file (``DTX_CONFIG``, default
``~/.config/dualtetrax/config.toml``)::

    # ~/.config/dualtetrax/config.toml
    supabase_url = "https://<project>.supabase.co"
    supabase_anon_key = "<anon or publishable key>"
    # or, for the local stack (make db):
    # database_url = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"

| variable | file key | meaning |
|---|---|---|
| ``DTX_SUPABASE_URL`` (or ``SUPABASE_URL``) | ``supabase_url`` | a Supabase project |
| ``DTX_SUPABASE_ANON_KEY`` (or ``SUPABASE_ANON_KEY``) | ``supabase_anon_key`` | its anon (publishable) key |
| ``DTX_DATABASE_URL`` | ``database_url`` | the local stack instead (no Supabase services) |
| ``DTX_STORAGE_DIR`` | ``storage_dir`` | the local stack's object folder (default ``.local/storage``) |
| ``DTX_TOKEN_CACHE`` | ``token_cache`` | the session cache (default ``~/.cache/dualtetrax/session.json``) |
| ``DTX_EMAIL``, ``DTX_PASSWORD`` | | sign in non-interactively when no cached session exists |

The session cache holds the access and refresh tokens (never the password), is written atomically with mode
0600, and is keyed by the deployment so a local and a hosted session don't mix.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualtetrax.cloud.backend import AuthSession, CloudBackend
from dualtetrax.cloud.client import DtxCloud
from dualtetrax.cloud.errors import AuthError, ValidationError


@dataclass(frozen=True)
class CloudConfig:
    supabase_url: str | None = None
    anon_key: str | None = None
    database_url: str | None = None
    storage_dir: Path = Path(".local/storage")
    token_cache: Path = field(default_factory=lambda: Path("~/.cache/dualtetrax/session.json").expanduser())
    email: str | None = None
    password: str | None = None

    @property
    def deployment(self) -> str:
        """The key sessions are cached under."""
        if self.supabase_url:
            return self.supabase_url.rstrip("/")
        return _redact(self.database_url or "")

    def validate(self) -> None:
        if self.supabase_url:
            if not self.supabase_url.startswith(("https://", "http://")):
                raise ValidationError("DTX_SUPABASE_URL: must be an http(s) URL", field="DTX_SUPABASE_URL")
            if not self.anon_key:
                raise ValidationError("DTX_SUPABASE_ANON_KEY: is required with DTX_SUPABASE_URL",
                                      field="DTX_SUPABASE_ANON_KEY",
                                      hint="Copy the anon key from the project's API settings.")
        elif not self.database_url:
            raise ValidationError("no cloud configured: set DTX_SUPABASE_URL and DTX_SUPABASE_ANON_KEY, or "
                                  "DTX_DATABASE_URL for the local stack", field="DTX_SUPABASE_URL",
                                  hint="See `dtx login --help` or the README's SDK quickstart.")


def load_config(env: Mapping[str, str] | None = None, path: str | Path | None = None) -> CloudConfig:
    """The configuration from ``env`` (default ``os.environ``) over the TOML file."""
    environ = os.environ if env is None else env
    file = Path(path or environ.get("DTX_CONFIG") or "~/.config/dualtetrax/config.toml").expanduser()
    data: dict[str, Any] = {}
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ValidationError(f"DTX_CONFIG: {file} is not valid TOML: {error}", field="DTX_CONFIG") from error

    def pick(*names: str, key: str) -> str | None:
        for name in names:
            if environ.get(name):
                return environ[name]
        value = data.get(key)
        return str(value) if value else None

    config = CloudConfig(
        supabase_url=pick("DTX_SUPABASE_URL", "SUPABASE_URL", key="supabase_url"),
        anon_key=pick("DTX_SUPABASE_ANON_KEY", "SUPABASE_ANON_KEY", key="supabase_anon_key"),
        database_url=pick("DTX_DATABASE_URL", key="database_url"),
        storage_dir=Path(pick("DTX_STORAGE_DIR", key="storage_dir") or ".local/storage"),
        token_cache=Path(pick("DTX_TOKEN_CACHE", key="token_cache") or "~/.cache/dualtetrax/session.json"
                         ).expanduser(),
        email=environ.get("DTX_EMAIL"),
        password=environ.get("DTX_PASSWORD"),
    )
    config.validate()
    return config


async def make_backend(config: CloudConfig) -> CloudBackend:
    """The backend the configuration names (Supabase wins when both are set)."""
    config.validate()
    if config.supabase_url:
        from dualtetrax.cloud.supabase_backend import SupabaseCloudBackend

        assert config.anon_key is not None
        return await SupabaseCloudBackend.connect(config.supabase_url, config.anon_key)
    from dualtetrax.cloud.local_backend import LocalCloudBackend

    assert config.database_url is not None
    return LocalCloudBackend(config.database_url, config.storage_dir)


# --------------------------------------------------------------------------------------------- session cache


def read_cached_session(config: CloudConfig) -> AuthSession | None:
    try:
        data = json.loads(config.token_cache.read_text())
        entry = data.get(config.deployment)
        return AuthSession.from_json(entry) if isinstance(entry, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_session(config: CloudConfig, session: AuthSession | None) -> None:
    """Store (or with None, forget) the deployment's session; atomic, mode 0600, serialised between processes
    with a lock file so two commands refreshing at once do not lose each other's entries."""
    import fcntl

    path = config.token_cache
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        if session is None:
            data.pop(config.deployment, None)
        else:
            data[config.deployment] = session.to_json()
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".session.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    finally:
        os.close(lock_fd)  # releases the lock


async def open_cloud(config: CloudConfig | None = None, *, require_session: bool = True) -> DtxCloud:
    """A :class:`DtxCloud` for the configured deployment, signed in from the session cache (refreshed and
    re-saved as needed) or from ``DTX_EMAIL``/``DTX_PASSWORD``. :class:`AuthError` when nobody is signed in and
    ``require_session``."""
    config = config or load_config()
    settings = config
    cloud = DtxCloud(await make_backend(config), persist_session=lambda s: save_session(settings, s))
    try:
        cached = read_cached_session(config)
        session: AuthSession | None = None
        if cached is not None:
            try:
                session = await cloud.restore(cached)
            except AuthError:
                save_session(config, None)
        if session is None and config.email and config.password:
            session = await cloud.sign_in(config.email, config.password)
        if session is not None:
            if session != cached:
                save_session(config, session)
            cloud.mark_persisted(session)  # what the cache holds now; close() saves any later refresh
        elif require_session:
            raise AuthError("not signed in", hint="Run `dtx login` (or set DTX_EMAIL and DTX_PASSWORD).")
    except BaseException:
        await cloud.close()
        raise
    return cloud


def _redact(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1@", url)
