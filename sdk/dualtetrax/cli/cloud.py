"""Cloud commands: ``dtx login/logout/whoami``, ``dtx devices …``, ``dtx stats``, ``dtx report``,
``dtx notifications``. Where the cloud is comes from the environment or the config file
(:mod:`dualtetrax.cloud.config`); the session is cached after ``dtx login``."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from dualtetrax.cli.runtime import json_mode, print_json, run

_T = TypeVar("_T")


def _ok(payload: dict[str, Any]) -> None:
    print_json({"ok": True, **payload})


def _with_cloud(ctx: click.Context, action: Callable[[Any], Awaitable[_T]], *, as_json: bool) -> _T:
    """Run ``action(cloud)`` with a signed-in :class:`DtxCloud`, closing it afterwards."""

    async def main() -> _T:
        from dualtetrax.cloud.config import open_cloud

        cloud = await open_cloud()
        try:
            return await action(cloud)
        finally:
            await cloud.close()

    result: _T = run(ctx, main(), as_json=as_json)
    return result


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model


# --------------------------------------------------------------------------------------------- auth


@click.command()
@click.option("--email", prompt=True, help="Your account's email.")
@click.option("--password", prompt=True, hide_input=True, help="Prompted for when not given.")
@click.option("--sign-up", is_flag=True, help="Create the account first.")
@click.option("--display-name", default=None, help="With --sign-up.")
@click.option("--timezone", default=None, help="With --sign-up: an IANA name (default Asia/Seoul).")
@click.option("--json", "local_json", is_flag=True, hidden=True)
@click.pass_context
def login(ctx: click.Context, email: str, password: str, sign_up: bool, display_name: str | None,
          timezone: str | None, local_json: bool) -> None:
    """Sign in (or --sign-up) and cache the session for later commands."""
    as_json = json_mode(ctx, local_json)

    async def main() -> dict[str, Any]:
        from dualtetrax.cloud.client import DtxCloud
        from dualtetrax.cloud.config import load_config, make_backend, save_session

        config = load_config()
        cloud = DtxCloud(await make_backend(config))
        try:
            if sign_up:
                session = await cloud.sign_up(email, password, display_name=display_name, timezone=timezone)
            else:
                session = await cloud.sign_in(email, password)
            save_session(config, session)
            return {"user_id": session.user_id, "email": session.email, "deployment": config.deployment}
        finally:
            await cloud.close()

    result = run(ctx, main(), as_json=as_json)
    if as_json:
        _ok(result)
    else:
        click.echo(f"Signed in as {result['email']} on {result['deployment']}.")


@click.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Sign out and forget the cached session."""
    as_json = json_mode(ctx)

    async def main() -> None:
        from dualtetrax.cloud.client import DtxCloud
        from dualtetrax.cloud.config import load_config, make_backend, read_cached_session, save_session
        from dualtetrax.cloud.errors import CloudError

        config = load_config()
        cached = read_cached_session(config)
        if cached is not None:
            cloud = DtxCloud(await make_backend(config))
            try:
                await cloud.restore(cached)
                await cloud.sign_out()
            except CloudError:
                pass  # an expired or revoked session: forgetting it locally is all that is left to do
            finally:
                await cloud.close()
        save_session(config, None)

    run(ctx, main(), as_json=as_json)
    if as_json:
        _ok({})
    else:
        click.echo("Signed out.")


@click.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Show the signed-in user's profile."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.profile()

    profile = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"profile": _dump(profile)})
    else:
        click.echo(f"{profile.email} ({profile.display_name or 'no name'}), {profile.role}, "
                   f"time zone {profile.timezone}, locale {profile.locale}")


# --------------------------------------------------------------------------------------------- devices


@click.group()
def devices() -> None:
    """Your registered devices."""


def _print_devices(rows: list[Any], as_json: bool) -> None:
    if as_json:
        _ok({"devices": [_dump(d) for d in rows]})
        return
    if not rows:
        click.echo("No devices.")
    for d in rows:
        state = "" if d.is_active else " (deactivated)"
        click.echo(f"{d.id}  {d.serial_number}  {d.nickname or '-'}  firmware {d.firmware_version or '?'}  "
                   f"{d.total_sessions} sessions{state}")


@devices.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include deactivated devices.")
@click.pass_context
def devices_list(ctx: click.Context, include_inactive: bool) -> None:
    """List your devices."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.devices(include_inactive=include_inactive)

    _print_devices(_with_cloud(ctx, action, as_json=as_json), as_json)


@devices.command("register")
@click.argument("serial_number")
@click.option("--nickname", default=None)
@click.option("--firmware-version", default=None)
@click.option("--hardware-revision", default=None)
@click.option("--ble-address", default=None)
@click.pass_context
def devices_register(ctx: click.Context, serial_number: str, nickname: str | None, firmware_version: str | None,
                     hardware_revision: str | None, ble_address: str | None) -> None:
    """Register a device to your account (again: updates it)."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.register_device(serial_number, nickname=nickname, firmware_version=firmware_version,
                                           hardware_revision=hardware_revision, ble_address=ble_address)

    _print_devices([_with_cloud(ctx, action, as_json=as_json)], as_json)


@devices.command("rename")
@click.argument("device_id", type=click.UUID)
@click.argument("nickname")
@click.pass_context
def devices_rename(ctx: click.Context, device_id: uuid.UUID, nickname: str) -> None:
    """Give a device a nickname."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.rename_device(device_id, nickname)

    _print_devices([_with_cloud(ctx, action, as_json=as_json)], as_json)


@devices.command("deactivate")
@click.argument("device_id", type=click.UUID)
@click.pass_context
def devices_deactivate(ctx: click.Context, device_id: uuid.UUID) -> None:
    """Deactivate a device (its data stays; register it again to reactivate)."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.deactivate_device(device_id)

    _print_devices([_with_cloud(ctx, action, as_json=as_json)], as_json)


@devices.command("transfer")
@click.argument("device_id", type=click.UUID)
@click.argument("to_email")
@click.option("--message", default=None)
@click.pass_context
def devices_transfer(ctx: click.Context, device_id: uuid.UUID, to_email: str, message: str | None) -> None:
    """Offer a device to another account (they accept with `dtx devices accept`)."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.offer_transfer(device_id, to_email, message)

    transfer = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"transfer": _dump(transfer)})
    else:
        click.echo(f"Offered to {transfer.to_email}: transfer {transfer.id} is {transfer.status}. Whoever holds that"
                   " address (now or after signing up) can accept it.")


@devices.command("transfers")
@click.pass_context
def devices_transfers(ctx: click.Context) -> None:
    """Pending transfers you offered or were offered."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.transfers()

    rows = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"transfers": [_dump(t) for t in rows]})
    else:
        for t in rows:
            click.echo(f"{t.id}  device {t.device_id}  to {t.to_email}  {t.status}  {t.message or ''}")
        if not rows:
            click.echo("No pending transfers.")


def _respond(name: str, verb: str) -> click.Command:
    @click.command(name, help=f"{verb.capitalize()} a device transfer.")
    @click.argument("transfer_id", type=click.UUID)
    @click.pass_context
    def command(ctx: click.Context, transfer_id: uuid.UUID) -> None:
        as_json = json_mode(ctx)

        async def action(cloud: Any) -> Any:
            return await getattr(cloud, f"{verb}_transfer")(transfer_id)

        transfer = _with_cloud(ctx, action, as_json=as_json)
        if as_json:
            _ok({"transfer": _dump(transfer)})
        else:
            click.echo(f"Transfer {transfer.id} is {transfer.status}.")

    return command


for _name, _verb in (("accept", "accept"), ("reject", "reject"), ("cancel", "cancel")):
    devices.add_command(_respond(_name, _verb))


# --------------------------------------------------------------------------------------------- stats, reports


@click.command()
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True, help="Up to today.")
@click.option("--group-by", type=click.Choice(["day", "week", "month"]), default="day", show_default=True)
@click.option("--device-id", type=click.UUID, default=None)
@click.pass_context
def stats(ctx: click.Context, days: int, group_by: str, device_id: uuid.UUID | None) -> None:
    """Your usage statistics, streaks and goals."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        today = date.today()
        span = await cloud.stats_range(today - timedelta(days=days - 1), today, group_by=group_by,
                                       device_id=device_id)
        return span, await cloud.streaks(), await cloud.goal_progress()

    span, streaks, goals = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"stats": _dump(span), "streaks": _dump(streaks), "goals": [_dump(g) for g in goals]})
        return
    for period in span.periods:
        click.echo(f"{period.period:>10}  {period.sessions:3d} sessions  {period.working_seconds / 60:6.1f} min")
    click.echo(f"Streak: {streaks.current} day(s) now, longest {streaks.longest}.")
    for goal in goals:
        click.echo(f"Goal ({goal.goal_type}): {goal.achieved_minutes:.1f} of {goal.target_minutes} min "
                   f"({goal.percent:.0f} %){' ✓' if goal.achieved else ''}")


@click.command()
@click.argument("kind", type=click.Choice(["weekly", "monthly", "sessions_csv", "data_export"]))
@click.option("--period-start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of the period (weekly: a Monday; monthly: the 1st).")
@click.option("--locale", default=None, help="Report language (default: your profile's).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the report is rendered.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@click.option("--download", "download_to", type=click.Path(path_type=Path), default=None,
              help="Save the finished report here (file or folder).")
@click.pass_context
def report(ctx: click.Context, kind: str, period_start: Any, locale: str | None, wait: bool, timeout: float,
           download_to: Path | None) -> None:
    """Request a report; wait for it and download it."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        request = await cloud.request_report(kind, period_start=period_start.date() if period_start else None,
                                             locale=locale)
        if wait or download_to:
            request = await cloud.wait_for_report(request.id, timeout_s=timeout)
        saved = None
        if download_to and request.status == "ready":
            saved = await cloud.download_report(request, download_to)
        return request, saved

    request, saved = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"report": _dump(request), "saved_to": str(saved) if saved else None})
        return
    click.echo(f"Report {request.id} ({request.kind} {request.period_start}–{request.period_end}, "
               f"{request.locale}): {request.status}{' — ' + request.error if request.error else ''}")
    if saved:
        click.echo(f"Saved to {saved}")
    if request.status == "failed":
        ctx.exit(11)


@click.command()
@click.option("--unread", is_flag=True, help="Only unread ones.")
@click.pass_context
def notifications(ctx: click.Context, unread: bool) -> None:
    """Your in-app notifications and the current announcements."""
    as_json = json_mode(ctx)

    async def action(cloud: Any) -> Any:
        return await cloud.notifications(unread_only=unread), await cloud.announcements()

    notes, news = _with_cloud(ctx, action, as_json=as_json)
    if as_json:
        _ok({"notifications": [_dump(n) for n in notes], "announcements": [_dump(a) for a in news]})
        return
    for a in news:
        click.echo(f"[{a.kind}] {a.title}: {a.body}")
    for n in notes:
        click.echo(f"{'  ' if n.read_at else '* '}{n.created_at:%Y-%m-%d %H:%M} {n.title}")
    if not notes and not news:
        click.echo("Nothing new.")


COMMANDS = (login, logout, whoami, devices, stats, report, notifications)
