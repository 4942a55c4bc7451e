"""``dtx rollout``: create and steer staged firmware rollouts (thin wrappers over the admin RPCs)."""

from __future__ import annotations

from typing import Any

import click

from dualtetrax.cli.admin_backend import BackendOptions, backend_options, json_flag, run_admin
from dualtetrax.cli.runtime import json_mode, print_json


def parse_stages(text: str) -> list[dict[str, int]]:
    """``"10:60,50:120,100:0"`` -> percent:soak_minutes pairs."""
    stages = []
    for part in text.split(","):
        percent, _, soak = part.strip().partition(":")
        try:
            stages.append({"percent": int(percent), "soak_minutes": int(soak or 0)})
        except ValueError:
            raise click.BadParameter(f"{part!r} is not PERCENT:SOAK_MINUTES", param_hint="--stages") from None
    return stages


@click.group()
def rollout() -> None:
    """Staged firmware rollouts (admin)."""


def _print_rollout(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"ok": True, "rollout": row})
        return
    stages = row.get("stages") or []
    stage = int(row.get("current_stage") or 0)
    percent = stages[stage]["percent"] if stage < len(stages) else "?"
    reason = f" ({row['status_reason']})" if row.get("status_reason") else ""
    click.echo(f"{row['id']}  {row['name']}: {row['status']}, stage {stage + 1}/{len(stages)} at {percent}%{reason}")


@rollout.command()
@click.argument("firmware_id")
@click.option("--name", required=True)
@click.option("--strategy", type=click.Choice(["staged", "all_at_once", "manual", "beta"]), default="staged",
              show_default=True)
@click.option("--stages", default="1:1440,10:1440,50:1440,100:0", show_default=True,
              help="PERCENT:SOAK_MINUTES,… ending at 100 (staged only).")
@click.option("--device-id", "device_ids", multiple=True, help="Devices of a manual rollout (repeatable).")
@click.option("--beta-tag", "beta_tags", multiple=True, help="Device tags that count as beta (repeatable).")
@click.option("--hardware-revision", "hardware_revisions", multiple=True, help="Only these hardware revisions.")
@click.option("--min-current-version-code", type=int, default=None)
@click.option("--success-threshold", type=click.FloatRange(0, 100), default=95.0, show_default=True)
@click.option("--failure-threshold", type=click.FloatRange(0, 100), default=5.0, show_default=True)
@click.option("--min-sample-size", type=click.IntRange(1), default=10, show_default=True)
@click.option("--timeout-minutes", type=click.IntRange(5, 10080), default=120, show_default=True,
              help="An update in progress longer than this counts as failed.")
@click.option("--downgrade", is_flag=True, help="Roll devices back to this (older) version.")
@click.option("--start", "start_now", is_flag=True, help="Start it right away.")
@backend_options
@json_flag
@click.pass_context
def create(ctx: click.Context, firmware_id: str, name: str, strategy: str, stages: str, device_ids: tuple[str, ...],
           beta_tags: tuple[str, ...], hardware_revisions: tuple[str, ...], min_current_version_code: int | None,
           success_threshold: float, failure_threshold: float, min_sample_size: int, timeout_minutes: int,
           downgrade: bool, start_now: bool, backend: BackendOptions, as_json: bool) -> None:
    """Create a rollout of a published FIRMWARE_ID (as a draft unless --start)."""
    as_json = json_mode(ctx, as_json)
    stage_list = parse_stages(stages) if strategy == "staged" else [{"percent": 100, "soak_minutes": 0}]

    async def operation(target: Any) -> dict[str, Any]:
        row: dict[str, Any] = await target.rpc("admin_create_rollout", {
            "firmware_id": firmware_id, "name": name, "strategy": strategy, "stages": stage_list,
            "device_ids": list(device_ids), "beta_tags": list(beta_tags),
            "target_hardware_revisions": [h.lower() for h in hardware_revisions],
            "min_current_version_code": min_current_version_code, "success_threshold": success_threshold,
            "failure_threshold": failure_threshold, "min_sample_size": min_sample_size,
            "in_progress_timeout_minutes": timeout_minutes, "is_downgrade": downgrade})
        if start_now:
            row = await target.rpc("admin_start_rollout", {"rollout_id": row["id"]})
        return row

    _print_rollout(run_admin(ctx, backend, operation, as_json=as_json), as_json)


def _transition(action: str, help_text: str) -> click.Command:
    @click.argument("rollout_id")
    @click.option("--reason", default=None, help="Recorded in the rollout and the audit log.")
    @backend_options
    @json_flag
    @click.pass_context
    def command(ctx: click.Context, rollout_id: str, reason: str | None, backend: BackendOptions,
                as_json: bool) -> None:
        as_json = json_mode(ctx, as_json)

        async def operation(target: Any) -> dict[str, Any]:
            row: dict[str, Any] = await target.rpc(f"admin_{action}_rollout",
                                                   {"rollout_id": rollout_id, "reason": reason})
            return row

        _print_rollout(run_admin(ctx, backend, operation, as_json=as_json), as_json)

    command.__doc__ = help_text
    return rollout.command(action)(command)


_transition("start", "Start a draft rollout.")
_transition("pause", "Pause an active rollout (devices stop being offered the update).")
_transition("resume", "Resume a paused rollout (its current stage soaks again).")
_transition("abort", "Abort a rollout for good.")
_transition("advance", "Move to the next stage now (or complete at the last stage).")


@rollout.command()
@backend_options
@json_flag
@click.pass_context
def overview(ctx: click.Context, backend: BackendOptions, as_json: bool) -> None:
    """Devices per firmware version; every current rollout with its devices per phase."""
    as_json = json_mode(ctx, as_json)

    async def operation(target: Any) -> dict[str, Any]:
        result: dict[str, Any] = await target.rpc("admin_fleet_overview", {})
        return result

    data = run_admin(ctx, backend, operation, as_json=as_json)
    if as_json:
        print_json({"ok": True, **data})
        return
    versions = ", ".join(f"{v}: {n}" for v, n in sorted(data.get("devices_by_version", {}).items()))
    click.echo(f"Devices by version: {versions or 'none'}")
    for r in data.get("rollouts", []):
        phases = ", ".join(f"{p} {n}" for p, n in sorted((r.get("phases") or {}).items()))
        click.echo(f"{r['id']}  {r['name']} → {r['version']}: {r['status']}, stage {r['current_stage'] + 1} "
                   f"at {r['percent']}%  [{phases or 'no devices yet'}]")
