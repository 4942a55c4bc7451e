"""What the admin commands (``dtx firmware``, ``dtx rollout``) share: where to send them, and how they fail.

Against the local stack (the default): ``--database-url`` and ``--storage-dir``. Against a Supabase project:
``--supabase-url`` and ``--service-role-key`` (or ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dualtetrax.cli.exit_codes import ExitCode
from dualtetrax.cli.runtime import fail, run

if TYPE_CHECKING:
    from dualtetrax.admin.backends import LocalStackBackend, SupabaseBackend

LOCAL_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
LOCAL_STORAGE_DIR = ".local/storage"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

json_flag = click.option("--json", "as_json", is_flag=True, help="JSON output (same as dtx --json).")


@dataclass(frozen=True)
class BackendOptions:
    database_url: str
    storage_dir: Path
    supabase_url: str | None
    service_role_key: str | None

    @property
    def target(self) -> str:
        return self.supabase_url or self.database_url

    async def open(self) -> LocalStackBackend | SupabaseBackend:
        if self.supabase_url or self.service_role_key:
            if not (self.supabase_url and self.service_role_key):
                raise click.UsageError("--supabase-url and --service-role-key go together.")
            from dualtetrax.admin.backends import SupabaseBackend

            return await SupabaseBackend.connect(self.supabase_url, self.service_role_key)
        from dualtetrax.admin.backends import LocalStackBackend

        return LocalStackBackend(self.database_url, self.storage_dir)


def backend_options(function: F) -> F:
    """Adds the backend options; the command receives ``backend: BackendOptions``."""

    @click.option("--database-url", default=LOCAL_DATABASE_URL, show_default=True, envvar="DTX_DATABASE_URL",
                  help="Local stack database (env DTX_DATABASE_URL).")
    @click.option("--storage-dir", type=click.Path(file_okay=False, path_type=Path), default=LOCAL_STORAGE_DIR,
                  envvar="DTX_STORAGE_DIR",
                  show_default=True, help="Local stack object folder (<dir>/<bucket>/<path>).")
    @click.option("--supabase-url", envvar="SUPABASE_URL", default=None,
                  help="A Supabase project instead of the local stack (env SUPABASE_URL).")
    @click.option("--service-role-key", envvar="SUPABASE_SERVICE_ROLE_KEY", default=None,
                  help="The project's service role key (env SUPABASE_SERVICE_ROLE_KEY).")
    @functools.wraps(function)
    def wrapper(*args: Any, database_url: str, storage_dir: Path, supabase_url: str | None,
                service_role_key: str | None, **kwargs: Any) -> Any:
        options = BackendOptions(database_url, storage_dir, supabase_url, service_role_key)
        return function(*args, backend=options, **kwargs)

    return wrapper  # type: ignore[return-value]


def run_admin(ctx: click.Context, options: BackendOptions,
              operation: Callable[[Any], Awaitable[T]], *, as_json: bool) -> T:
    """Open the backend, run ``operation(backend)``, close it; admin failures become messages and exit codes."""
    from dualtetrax.admin.errors import AdminError, VersionMismatchError

    async def command() -> T:
        backend = await options.open()
        try:
            return await operation(backend)
        finally:
            close = getattr(backend, "close", None)
            if close is not None:
                await close()

    try:
        result: T = run(ctx, command(), as_json=as_json)
    except VersionMismatchError as error:
        fail(ctx, error, as_json=as_json, code=ExitCode.INVALID_IMAGE)
    except (AdminError, ValueError) as error:
        fail(ctx, error, as_json=as_json, code=ExitCode.ERROR)
    return result
