"""What every ``dtx`` command shares: output mode, running a coroutine, reporting failures."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from dualtetrax.cli.exit_codes import ExitCode, exit_code_for


@dataclass
class CliState:
    """Stored in ``click.Context.obj`` by the root group."""

    json: bool = False
    verbose: bool = False


def state(ctx: click.Context) -> CliState:
    found = ctx.find_object(CliState)
    return found if found is not None else CliState()


def json_mode(ctx: click.Context, local_flag: bool = False) -> bool:
    return local_flag or state(ctx).json


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def fail(ctx: click.Context, error: BaseException, *, as_json: bool, code: ExitCode | None = None) -> NoReturn:
    """Report ``error`` (JSON on stdout, or text on stderr) and exit with its code."""
    exit_code = code if code is not None else exit_code_for(error)
    detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error) or type(error).__name__
    hint = getattr(error, "hint", "") or ""
    if as_json:
        print_json(
            {
                "ok": False,
                "error": {
                    "type": type(error).__name__,
                    "message": detail,
                    "hint": hint or None,
                    "field": getattr(error, "field", None),
                    "exit_code": int(exit_code),
                },
            }
        )
    else:
        click.secho(f"Error: {detail}", fg="red", err=True)
        if hint:
            click.echo(f"  → {hint}", err=True)
    ctx.exit(int(exit_code))
    raise AssertionError("unreachable")  # pragma: no cover


def run(ctx: click.Context, coroutine: Coroutine[Any, Any, Any], *, as_json: bool) -> Any:
    """Run a command's coroutine; map SDK errors and Ctrl-C to messages and exit codes."""
    from dualtetrax.ble.errors import DualTetraXBleError
    from dualtetrax.cloud.errors import CloudError
    from dualtetrax.firmware.errors import FirmwareImageError

    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        interrupted = KeyboardInterrupt("Interrupted.")
        fail(ctx, interrupted, as_json=as_json, code=ExitCode.CANCELLED)
    except (DualTetraXBleError, FirmwareImageError, CloudError) as error:
        if state(ctx).verbose:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        fail(ctx, error, as_json=as_json)
