"""``dtx ota``: check firmware images, flash them over BLE, and run the full cloud update (``dtx ota update``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from dualtetrax.cli.ble import device_option
from dualtetrax.cli.emulation import EmulationOptions, device_environment, emulation_options
from dualtetrax.cli.exit_codes import ExitCode
from dualtetrax.cli.runtime import json_mode, print_json, run, state

if TYPE_CHECKING:
    from dualtetrax.ble.progress import OtaProgress, OtaResult
    from dualtetrax.firmware.image import FirmwareImage
    from dualtetrax.update.flow import UpdateProgress, UpdateResult

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


# --------------------------------------------------------------------------------------------- dtx ota update

_STEP_LABELS = {
    "device": "Device",
    "checking": "Checking",
    "downloading": "Downloading",
    "checking_image": "Checking image",
    "transferring": "Sending",
    "installing": "Installing",
    "confirming": "Confirming",
    "done": "Done",
}


class _UpdateView:
    """One progress bar that follows the update: bytes downloaded, then bytes sent, then the install."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(bar_width=None),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("Connecting", total=None, note="")
        self.step = ""

    def __enter__(self) -> _UpdateView:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def update(self, event: UpdateProgress) -> None:
        if event.step != self.step and event.step in ("downloading", "transferring"):
            self.progress.reset(self.task, total=None)  # a fresh rate and byte count per stage
        self.step = event.step
        label = _STEP_LABELS.get(event.step, event.step)
        if event.download is not None:
            self.progress.update(self.task, description=label, total=event.download.total_bytes,
                                 completed=event.download.bytes_have, note=event.message)
        elif event.ota is not None:
            note = event.ota.message if event.step == "installing" else ""
            if event.step == "installing":
                label = _PHASE_LABELS.get(event.ota.phase.value, label)
            self.progress.update(self.task, description=label, total=event.ota.total_bytes,
                                 completed=event.ota.bytes_sent, note=note)
        else:
            self.progress.update(self.task, description=label, note=event.message)


def _update_exit_code(error: BaseException) -> ExitCode:
    from dualtetrax.cli.exit_codes import exit_code_for
    from dualtetrax.update.errors import (
        DeviceNotRegisteredError,
        DownloadError,
        ImageVersionMismatchError,
        UpdateErrorCode,
        UpdateFailedError,
    )

    cause = error.cause if isinstance(error, UpdateFailedError) else error
    if isinstance(cause, DownloadError) and cause.code != UpdateErrorCode.CACHE_ERROR:
        return ExitCode.INVALID_IMAGE  # hash or size mismatch: refused before anything was sent
    if isinstance(cause, ImageVersionMismatchError):
        return ExitCode.INVALID_IMAGE
    if isinstance(cause, DeviceNotRegisteredError):
        return ExitCode.CLOUD_REFUSED
    return exit_code_for(cause)


def _update_failure(ctx: click.Context, error: BaseException, *, as_json: bool) -> NoReturn:
    from dualtetrax.update.errors import UpdateFailedError

    code = _update_exit_code(error)
    detail = getattr(error, "detail", None) or str(error)
    hint = getattr(error, "hint", "") or None
    if as_json:
        payload: dict[str, Any] = {"type": type(error).__name__, "message": detail, "hint": hint,
                                   "exit_code": int(code)}
        if isinstance(error, UpdateFailedError):
            payload.update(cause=type(error.cause).__name__, phase=error.phase, error_code=error.code,
                           error_code_name=error.code_name, reported=error.reported)
        print_json({"ok": False, "error": payload})
    else:
        click.secho(f"Error: {detail}", fg="red", err=True)
        if isinstance(error, UpdateFailedError) and error.code is not None:
            told = "reported to the server" if error.reported else "NOT reported: the server could not be reached"
            click.echo(f"  error code {error.code} ({error.code_name}), {told}", err=True)
        if hint:
            click.echo(f"  → {hint}", err=True)
    ctx.exit(int(code))
    raise AssertionError("unreachable")  # pragma: no cover


@ota.command()
@device_option
@click.option("--device-id", metavar="UUID", help="The device's id in the cloud (default: looked up by its serial).")
@click.option("--register", is_flag=True, help="Register the device to you if its serial number is not yet.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where downloads are kept and resumed "
              "(default: $DTX_FIRMWARE_CACHE or ~/.cache/dualtetrax/firmware).")
@click.option("--retries", type=click.IntRange(0, 10), default=1, show_default=True,
              help="Restart the BLE transfer this many times if the link drops while sending.")
@click.option("--download-retries", type=click.IntRange(0, 20), default=5, show_default=True,
              help="Retry (and resume) the download this many times on network errors.")
@json_flag
@emulation_options
@click.pass_context
def update(
    ctx: click.Context,
    device: str | None,
    scan_timeout_s: float,
    device_id: str | None,
    register: bool,
    cache_dir: Path | None,
    retries: int,
    download_retries: int,
    as_json: bool,
    emulation: EmulationOptions,
) -> None:
    """Update a DualTetraX to the firmware the cloud offers it, reporting every phase.

    Checks for an update, downloads the binary (resumable, SHA-256 verified), checks the image, sends it over
    BLE and confirms the new version after the device restarts. Safe to interrupt and run again: the download
    resumes, and a device that already installed the update is confirmed, not flashed again. Needs a signed-in
    cloud session (`dtx login`, or DTX_EMAIL/DTX_PASSWORD). See docs/update.md.
    """
    as_json = json_mode(ctx, as_json)

    async def command() -> tuple[UpdateResult, str | None]:
        from dualtetrax.ble.client import DualTetraXClient
        from dualtetrax.cloud.config import open_cloud
        from dualtetrax.update.flow import update_device

        cloud = await open_cloud()
        try:
            async with device_environment(emulation) as environment:
                client = DualTetraXClient(device, scan_timeout=scan_timeout_s, backends=environment.backends)
                options: dict[str, Any] = {"device_id": device_id, "cache_dir": cache_dir, "register": register,
                                           "transfer_attempts": retries + 1, "download_retries": download_retries}
                if as_json:
                    result = await update_device(cloud, client, **options)
                else:
                    with _UpdateView() as view:
                        result = await update_device(cloud, client, progress=view.update, **options)
                name = environment.device.name if environment.device is not None else client.name
                return result, name
        finally:
            await cloud.close()

    from dualtetrax.cloud.errors import CloudError
    from dualtetrax.update.errors import UpdateError

    try:
        result, name = run(ctx, command(), as_json=as_json)
    except UpdateError as error:
        if state(ctx).verbose:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        _update_failure(ctx, error, as_json=as_json)
    except CloudError as error:  # pragma: no cover - run() maps these itself
        _update_failure(ctx, error, as_json=as_json)
    if as_json:
        print_json({"ok": True, "result": result.to_dict()})
        return
    who = f"{name} " if name else ""
    if result.outcome == "up_to_date":
        click.secho(f"✓ {who}runs {result.version}: no update is offered for it.", fg="green")
    elif result.outcome == "confirmed":
        click.secho(f"✓ {who}already runs {result.version} (installed by an earlier run); confirmed to the server.",
                    fg="green")
    else:
        click.secho(f"✓ Updated {who}from {result.previous_version} to {result.version} (verified after restart; "
                    "reported to the server).", fg="green")
        if result.download is not None and result.ota is not None:
            fetched = ("from the cache" if result.download.cached
                       else f"{result.download.bytes_fetched:,} bytes downloaded"
                       + (f", resumed at {result.download.resumed_from:,}" if result.download.resumed_from else ""))
            click.echo(f"  {result.ota.image_size:,} bytes ({fetched}), sent in {result.ota.transfer_s:.1f} s "
                       f"({result.ota.rate_bps / 1000:.1f} KB/s)")
