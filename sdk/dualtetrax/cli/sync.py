"""``dtx sync``: move a device's stored sessions to the cloud, offline-safe (docs/sync.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dualtetrax.cli.ble import device_option, json_flag
from dualtetrax.cli.emulation import EmulationOptions, device_environment, emulation_options
from dualtetrax.cli.runtime import json_mode, print_json, run

if TYPE_CHECKING:
    from dualtetrax.sync import SyncReport


def default_outbox() -> Path:
    """``$DTX_OUTBOX``, else ``$XDG_DATA_HOME/dualtetrax/outbox.sqlite`` (``~/.local/share/…``)."""
    if os.environ.get("DTX_OUTBOX"):
        return Path(os.environ["DTX_OUTBOX"]).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser()
    return data_home / "dualtetrax" / "outbox.sqlite"


class _ProgressLine:
    """One updating line on a terminal; a line every few seconds otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, report: SyncReport) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = report.phase == "done"
        if not final and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = report.confirmed / report.elapsed_s if report.elapsed_s else 0.0
        text = (f"{report.phase:<9} read {report.pulled}, uploaded {report.uploaded}, confirmed {report.confirmed}"
                f" ({rate:,.0f}/s)")
        if self.tty:
            click.echo(f"\r{text:<78}", err=True, nl=final)
        else:
            click.echo(text, err=True)


@click.command()
@device_option
@click.option("--outbox", "outbox_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The local outbox file (default: $DTX_OUTBOX or ~/.local/share/dualtetrax/outbox.sqlite).")
@click.option("--device-id", default=None, help="The cloud device id (default: found or registered by serial).")
@click.option("--window", type=click.IntRange(1, 64), default=1, show_default=True,
              help="BLE requests in flight. 1 (one at a time) is what the device protocol specifies; more only "
                   "for firmware known to queue commands.")
@click.option("--retry-rejected", is_flag=True, help="Upload sessions the server rejected before once more.")
@json_flag
@emulation_options
@click.pass_context
def sync(ctx: click.Context, device: str | None, scan_timeout_s: float, outbox_path: Path | None,
         device_id: str | None, window: int, retry_rejected: bool, as_json: bool,
         emulation: EmulationOptions) -> None:
    """Move the sessions stored on a device to the cloud.

    Sessions are kept in a local outbox until the server has them, and only then confirmed to the device.
    Interrupted at any point, running it again finishes the job: nothing is lost or uploaded twice.
    """
    as_json = json_mode(ctx, as_json)
    path = outbox_path or default_outbox()

    async def command() -> dict[str, Any]:
        from dualtetrax.ble.client import DualTetraXClient
        from dualtetrax.cloud.config import open_cloud
        from dualtetrax.sync import Outbox, sync_device

        with Outbox(path) as outbox:
            if retry_rejected:
                outbox.requeue_rejected()
            cloud = await open_cloud()
            try:
                async with (
                    device_environment(emulation) as environment,
                    DualTetraXClient(device, scan_timeout=scan_timeout_s, backends=environment.backends) as client,
                ):
                    report = await sync_device(client, cloud, outbox, device_id=device_id, window=window,
                                               progress=_ProgressLine(quiet=as_json))
            finally:
                await cloud.close()
            return {"ok": True, "sync": report.to_dict(), "outbox": {"path": str(path), **outbox.counts()}}

    result = run(ctx, command(), as_json=as_json)
    if as_json:
        print_json(result)
        return
    report = result["sync"]
    click.echo(f"{report['serial']}: {report['stored']} stored, {report['duplicates']} already on the server, "
               f"{report['skipped']} too short (not kept), {len(report['rejected'])} rejected, "
               f"{report['confirmed']} confirmed on the device in {report['elapsed_s']:.1f} s.")
    for item in report["rejected"]:
        click.secho(f"  rejected {item['id']}: {item['reason']}", fg="yellow", err=True)
    if report["rejected"]:
        click.echo(f"  Rejected sessions stay in {path}; `dtx sync --retry-rejected` sends them again.", err=True)
