"""``dtx ble``: find devices, read their status and stored sessions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click

from dualtetrax.cli.emulation import EmulationOptions, device_environment, emulation_options
from dualtetrax.cli.runtime import json_mode, print_json, run

json_flag = click.option("--json", "as_json", is_flag=True, help="JSON output (same as dtx --json).")
_device_option = click.option(
    "-d",
    "--device",
    metavar="ADDRESS|NAME",
    help="Which device: a Bluetooth address or an advertised name (default: the first DualTetraX-… seen).",
)
_scan_timeout_option = click.option(
    "--scan-timeout",
    "scan_timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to look for the device before giving up.",
)


def device_option(function: Any) -> Any:
    """``--device`` and ``--scan-timeout``: which device, and how long to look for it."""
    return _device_option(_scan_timeout_option(function))


@click.group()
def ble() -> None:
    """Talk to DualTetraX devices over Bluetooth LE."""


@ble.command()
@click.option("-t", "--timeout", "timeout_s", type=float, default=5.0, show_default=True, help="Seconds to scan.")
@click.option("--all", "show_all", is_flag=True, help="List every BLE device, not only DualTetraX-….")
@json_flag
@emulation_options
@click.pass_context
def scan(ctx: click.Context, timeout_s: float, show_all: bool, as_json: bool, emulation: EmulationOptions) -> None:
    """List DualTetraX devices in range."""
    as_json = json_mode(ctx, as_json)

    async def command() -> list[dict[str, Any]]:
        from dualtetrax.ble.scanner import scan as scan_devices

        async with device_environment(emulation) as environment:
            found = await scan_devices(
                timeout_s, name_prefix=None if show_all else "DualTetraX-", backends=environment.backends
            )
        return [device.to_dict() for device in found]

    devices = run(ctx, command(), as_json=as_json)
    if as_json:
        print_json(devices)
        return
    if not devices:
        click.echo(f"No DualTetraX found within {timeout_s:g} s.", err=True)
        return
    from rich.table import Table

    table = Table("Address", "Name", "RSSI")
    for device in devices:
        table.add_row(
            device["address"], device["name"] or "", "" if device["rssi"] is None else f"{device['rssi']} dBm"
        )
    console().print(table)


@ble.command()
@device_option
@click.option("-w", "--watch", is_flag=True, help="Keep printing status changes until Ctrl-C.")
@click.option("--for", "watch_s", type=float, default=None, help="With --watch: stop after this many seconds.")
@json_flag
@emulation_options
@click.pass_context
def status(
    ctx: click.Context,
    device: str | None,
    scan_timeout_s: float,
    watch: bool,
    watch_s: float | None,
    as_json: bool,
    emulation: EmulationOptions,
) -> None:
    """Show a device's firmware, protocol and live status."""
    as_json = json_mode(ctx, as_json)

    async def command() -> None:
        from dualtetrax.ble.client import DualTetraXClient

        async with device_environment(emulation) as environment:
            if watch and environment.device is not None:
                environment.device.start_demo_activity()
            async with DualTetraXClient(device, scan_timeout=scan_timeout_s, backends=environment.backends) as client:
                info = await client.read_device_info()
                current = await client.read_status()
                if as_json:
                    print_json({"ok": True, "device": info.to_dict(), "status": current.to_dict()})
                else:
                    _print_status(info.to_dict(), current.to_dict())
                if not watch:
                    return
                updates = client.status_updates()
                try:
                    async with asyncio.timeout(watch_s):
                        await anext(updates)  # the snapshot printed above
                        async for change in updates:
                            if as_json:
                                click.echo(_json_line({"status": change.to_dict()}))
                            else:
                                click.echo(_status_line(change.to_dict()))
                except TimeoutError:
                    pass
                finally:
                    await updates.aclose()

    run(ctx, command(), as_json=as_json)


@ble.command()
@device_option
@click.option("--all", "include_synced", is_flag=True, help="Also list sessions already confirmed.")
@click.option(
    "--confirm",
    is_flag=True,
    help="Confirm each session after reading it (the device then stops offering it). Without it, nothing "
    "changes on the device.",
)
@click.option("--no-time-sync", is_flag=True, help="Do not send this computer's clock to the device first.")
@json_flag
@emulation_options
@click.pass_context
def sessions(
    ctx: click.Context,
    device: str | None,
    scan_timeout_s: float,
    include_synced: bool,
    confirm: bool,
    no_time_sync: bool,
    as_json: bool,
    emulation: EmulationOptions,
) -> None:
    """Read the treatment sessions stored on a device (generation-2 firmware)."""
    as_json = json_mode(ctx, as_json)

    async def command() -> list[dict[str, Any]]:
        from dualtetrax.ble.client import DualTetraXClient

        async with (
            device_environment(emulation) as environment,
            DualTetraXClient(device, scan_timeout=scan_timeout_s, backends=environment.backends) as client,
        ):
            if not no_time_sync:
                await client.sync_time()
            if confirm:
                records = await client.pull_sessions(confirm=True)
            else:
                listing = await client.list_sessions(unsynced_only=not include_synced)
                records = [await client.get_session(summary.session_id) for summary in listing.sessions]
            return [record.to_dict() | {"confirmed": confirm} for record in records]

    records = run(ctx, command(), as_json=as_json)
    if as_json:
        print_json(records)
        return
    if not records:
        click.echo("No stored sessions.", err=True)
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("Session", "Start", "Mode", "Working", "Pause", "Ended by", "Battery mV"):
        table.add_column(header, no_wrap=True)
    for record in records:
        start = datetime.fromisoformat(record["start_time"]).astimezone().strftime("%m-%d %H:%M")
        working, pause = divmod(record["working_duration_s"], 60), divmod(record["pause_duration_s"], 60)
        end_mv = record["end_battery_mv"] or "?"
        table.add_row(
            record["id"][:8],
            start,
            f"{record['mode_name']} L{record['level']}",
            f"{working[0]}:{working[1]:02d}",
            f"{pause[0]}:{pause[1]:02d}",
            record["termination_reason"].replace("_", " "),
            f"{record['start_battery_mv']}→{end_mv}",
        )
    console().print(table)
    if confirm:
        click.echo(f"Confirmed {len(records)} session(s) on the device.")


def console() -> Any:
    """A rich console; when output is not a terminal, wide enough for the tables."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def _json_line(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload, default=str)


def _status_line(status: dict[str, Any]) -> str:
    battery = f"{status['battery_percent']} %" if status["battery_percent"] is not None else "?"
    warnings = f", warnings: {', '.join(status['warnings'])}" if status["warnings"] else ""
    return (
        f"{datetime.now():%H:%M:%S}  {status['working_state']:<8} {status['shot']:<9} {status['mode']:<9} "
        f"level {status['level']}  {status['elapsed_s']:>3} s  battery {battery}{warnings}"
    )


def _print_status(info: dict[str, Any], status: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_row("Device", f"{info['name'] or '?'} ({info['address']})")
    table.add_row("Firmware", info["firmware_revision"] or "?")
    if info["serial_number"]:
        table.add_row("Serial", info["serial_number"])
    table.add_row("Protocol", f"{info['status_protocol']}, MTU {info['mtu']}")
    table.add_row("State", status["working_state"])
    table.add_row("Treatment", f"{status['shot']} / {status['mode']} / level {status['level']}")
    battery = f"{status['battery_percent']} %" if status["battery_percent"] is not None else "?"
    if status["battery_mv"]:
        battery += f" ({status['battery_mv']} mV)"
    table.add_row("Battery", f"{battery}, {status['battery_state']}" + (", charging" if status["is_charging"] else ""))
    table.add_row("Warnings", ", ".join(status["warnings"]) or "none")
    console().print(table)
