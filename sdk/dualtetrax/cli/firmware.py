"""``dtx firmware``: publish firmware images to the registry, list and (de)publish versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dualtetrax.cli.admin_backend import BackendOptions, backend_options, json_flag, run_admin
from dualtetrax.cli.runtime import json_mode, print_json


@click.group()
def firmware() -> None:
    """The firmware registry (admin): publish images, list versions."""


@firmware.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "version", required=True, help="The image's version (must match its app description).")
@click.option("--channel", type=click.Choice(["stable", "beta"]), default="stable", show_default=True)
@click.option("--changelog", default="", help="Release notes shown to users.")
@click.option("--model", default="DualTetraX", show_default=True)
@click.option("--version-code", type=click.IntRange(1, 2_000_000_000), default=None,
              help="Monotonic code; default major*10000 + minor*100 + patch.")
@click.option("--min-version-code", type=click.IntRange(1, 2_000_000_000), default=None,
              help="Devices below this code cannot take this version directly.")
@click.option("--hardware-revision", "hardware_revisions", multiple=True,
              help="Only for these hardware revisions (repeatable; default all).")
@click.option("--required", is_flag=True, help="Mark the update as required.")
@click.option("--publish", "publish_now", is_flag=True, help="Also set the status to published.")
@backend_options
@json_flag
@click.pass_context
def publish(ctx: click.Context, file: Path, version: str, channel: str, changelog: str, model: str,
            version_code: int | None, min_version_code: int | None, hardware_revisions: tuple[str, ...],
            required: bool, publish_now: bool, backend: BackendOptions, as_json: bool) -> None:
    """Check FILE as an ESP32-S3 application image, upload it and register it — all or nothing."""
    as_json = json_mode(ctx, as_json)
    data = file.read_bytes()

    async def operation(target: Any) -> dict[str, Any]:
        from dualtetrax.admin.firmware import publish_firmware

        result = await publish_firmware(
            target, data, version=version, model=model, channel=channel, changelog=changelog,
            version_code=version_code, min_version_code=min_version_code, required=required,
            hardware_revisions=list(hardware_revisions), publish=publish_now)
        return result.summary()

    summary = run_admin(ctx, backend, operation, as_json=as_json)
    if as_json:
        print_json({"ok": True, "firmware": summary})
        return
    click.echo(f"{summary['model']} {summary['version']} (code {summary['version_code']}, {summary['channel']}) "
               f"registered as {summary['status']}: {summary['id']}\n"
               f"  {summary['size_bytes']:,} bytes, SHA-256 {summary['sha256']}\n"
               f"  stored at {summary['bucket']}/{summary['storage_path']} ({backend.target})")
    if summary["status"] == "draft":
        click.echo(f"  publish it with: dtx firmware set-status {summary['id']} published")


@firmware.command("list")
@click.option("--model", default=None, help="Only this model.")
@backend_options
@json_flag
@click.pass_context
def list_versions(ctx: click.Context, model: str | None, backend: BackendOptions, as_json: bool) -> None:
    """Registered versions, newest first."""
    as_json = json_mode(ctx, as_json)

    async def operation(target: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await target.list_rows("firmware_versions", order="version_code")
        return [r for r in rows if model is None or r.get("model") == model]

    rows = run_admin(ctx, backend, operation, as_json=as_json)
    if as_json:
        print_json({"ok": True, "firmware": rows})
        return
    if not rows:
        click.echo("No firmware versions registered.")
        return
    for r in rows:
        flags = " required" if r.get("is_required") else ""
        click.echo(f"{r['id']}  {r['model']:<12} {r['version']:<12} {r['version_code']:>8}  {r['channel']:<6} "
                   f"{r['status']:<10} {r['size_bytes']:>9,} B{flags}")


@firmware.command("set-status")
@click.argument("firmware_id")
@click.argument("status", type=click.Choice(["published", "deprecated"]))
@backend_options
@json_flag
@click.pass_context
def set_status(ctx: click.Context, firmware_id: str, status: str, backend: BackendOptions, as_json: bool) -> None:
    """Publish a draft version, or deprecate a published one."""
    as_json = json_mode(ctx, as_json)

    async def operation(target: Any) -> dict[str, Any]:
        from dualtetrax.admin.firmware import set_firmware_status

        return await set_firmware_status(target, firmware_id, status)

    row = run_admin(ctx, backend, operation, as_json=as_json)
    if as_json:
        print_json({"ok": True, "firmware": row})
        return
    click.echo(f"{row['model']} {row['version']} is now {row['status']}.")
