"""``dtx ota``: check firmware images and flash them over BLE."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dualtetrax.cli.ble import device_option
from dualtetrax.cli.emulation import EmulationOptions, device_environment, emulation_options
from dualtetrax.cli.runtime import json_mode, print_json, run

if TYPE_CHECKING:
    from dualtetrax.ble.progress import OtaProgress, OtaResult
    from dualtetrax.firmware.image import FirmwareImage

json_flag = click.option("--json", "as_json", is_flag=True, help="JSON output (same as dtx --json).")

_PHASE_LABELS = {
    "checking_image": "Checking image",
    "connecting": "Connecting",
    "preparing": "Preparing",
    "starting": "Starting",
    "transferring": "Sending",
    "validating": "Validating",
    "applying": "Applying",
    "rebooting": "Rebooting",
    "verifying": "Verifying",
    "done": "Done",
}


@click.group()
def ota() -> None:
    """Firmware updates over Bluetooth LE."""


def _image_summary(image: FirmwareImage) -> dict[str, Any]:
    return {
        "version": image.version,
        "project": image.project_name,
        "chip": image.chip,
        "size": image.size,
        "sha256": image.sha256,
        "idf_version": image.app.idf_version,
        "segments": len(image.segments),
        "digest_appended": image.digest_appended,
    }


@ota.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sha256", "expected_sha256", metavar="HEX", help="Refuse the file unless its SHA-256 matches.")
@json_flag
@click.pass_context
def inspect(ctx: click.Context, file: Path, expected_sha256: str | None, as_json: bool) -> None:
    """Check a firmware image (no device needed): chip, version, size, checksums."""
    as_json = json_mode(ctx, as_json)

    async def command() -> dict[str, Any]:
        from dualtetrax.firmware.image import load_image

        return _image_summary(load_image(file, expected_sha256=expected_sha256))

    summary = run(ctx, command(), as_json=as_json)
    if as_json:
        print_json({"ok": True, "image": summary})
        return
    click.echo(
        f"{file.name}: valid {summary['chip']} application image, {summary['project']} version "
        f"{summary['version']}, {summary['size']:,} bytes\n  SHA-256 {summary['sha256']}"
    )


class _ProgressView:
    """A rich progress bar fed by the engine's progress events: percent, KB/s, ETA."""

    def __init__(self, total: int, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>10}"),
            TextColumn("ETA {task.fields[eta]:>5}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=total, rate="", eta="--:--")

    def __enter__(self) -> _ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def update(self, event: OtaProgress) -> None:
        rate = f"{event.rate_bps / 1000:.1f} KB/s" if event.rate_bps else ""
        eta = "--:--"
        if event.eta_s is not None:
            minutes, seconds = divmod(int(event.eta_s + 0.5), 60)
            eta = f"{minutes:02d}:{seconds:02d}"
        elif event.phase.value not in ("transferring", "connecting", "preparing", "starting"):
            eta = "00:00"
        self.progress.update(
            self.task,
            completed=event.bytes_sent,
            description=_PHASE_LABELS.get(event.phase.value, event.phase.value),
            rate=rate,
            eta=eta,
        )


@ota.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@device_option
@click.option("--sha256", "expected_sha256", metavar="HEX", help="Refuse the file unless its SHA-256 matches.")
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="Restart the transfer this many times if the link drops while sending.",
)
@click.option("--no-verify", is_flag=True, help="Do not wait for the reboot to confirm the new version.")
@json_flag
@emulation_options
@click.pass_context
def flash(
    ctx: click.Context,
    file: Path,
    device: str | None,
    scan_timeout_s: float,
    expected_sha256: str | None,
    retries: int,
    no_verify: bool,
    as_json: bool,
    emulation: EmulationOptions,
) -> None:
    """Flash FILE (an ESP32-S3 application image) to a DualTetraX.

    The image is checked before anything is sent. Success is reported only once the device
    has restarted and reports the image's version.
    """
    as_json = json_mode(ctx, as_json)
    from dualtetrax.firmware.image import load_image

    async def check() -> FirmwareImage:
        return load_image(file, expected_sha256=expected_sha256)

    image = run(ctx, check(), as_json=as_json)
    if not as_json:
        click.echo(f"Image {file.name}: version {image.version}, {image.size:,} bytes, SHA-256 {image.sha256[:16]}…")

    async def command() -> tuple[OtaResult, str | None]:
        from dualtetrax.ble.ota import update_firmware

        async with device_environment(emulation) as environment:
            if as_json:
                result = await update_firmware(
                    device,
                    image,
                    backends=environment.backends,
                    attempts=retries + 1,
                    verify_reboot=not no_verify,
                    scan_timeout=scan_timeout_s,
                )
            else:
                with _ProgressView(image.size, "Connecting") as view:
                    result = await update_firmware(
                        device,
                        image,
                        backends=environment.backends,
                        attempts=retries + 1,
                        verify_reboot=not no_verify,
                        scan_timeout=scan_timeout_s,
                        on_progress=view.update,
                    )
            name = environment.device.name if environment.device is not None else None
            return result, name

    try:
        result, name = run(ctx, command(), as_json=as_json)
    except asyncio.CancelledError:  # pragma: no cover - asyncio.run turns Ctrl-C into KeyboardInterrupt
        raise
    if as_json:
        print_json({"ok": True, "image": _image_summary(image), "result": result.to_dict()})
        return
    who = f"{name} ({result.address})" if name else result.address
    rate = result.rate_bps / 1000
    if result.verified:
        click.secho(
            f"✓ Updated {who} from {result.previous_version} to {result.new_version} (verified after restart).",
            fg="green",
        )
    else:
        click.secho(f"✓ Sent {image.version} to {who}; the device reported success (not verified).", fg="green")
    click.echo(
        f"  {result.image_size:,} bytes in {result.transfer_s:.1f} s ({rate:.1f} KB/s), "
        f"{result.chunk_count} chunks of {result.chunk_size} bytes at MTU {result.mtu}"
        + (f", {result.attempts} attempts" if result.attempts > 1 else "")
    )
