"""`reports.render`: turn one `report_requests` row into a file in storage, exactly once.

1. `private.start_report` marks the request `rendering` (nothing to do when it is already `ready`).
2. The figures are read (`daily_statistics`, devices, goals, the profile), the PDF is rendered (or the CSV /
   archive built) and stored atomically at `<bucket>/<object_path>` (`reports/<user id>/2026-10-ko.pdf`).
3. `private.finish_report` marks it `ready` and creates the in-app notification (dedupe key per kind, period
   and locale) in one transaction.

A worker killed anywhere leaves either no object or a complete one; the retry renders again, overwrites the
same name and finishes, so there is one object and one notification. A failure puts the request back to
`queued` with the error, or `failed` on the job's last attempt.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from dtx_worker.exports import data_archive, sessions_csv
from dtx_worker.jobs import Job, JobContext, describe_error
from dtx_worker.reports import (
    Device,
    Goal,
    Period,
    PeriodKind,
    PreviousPeriod,
    ReportData,
    render_report,
    resolve_locale,
)
from dtx_worker.reports.aggregate import previous_period, streaks, summarize_days, totals_of
from dtx_worker.reports.i18n import CATALOGS, Formatter
from dtx_worker.reports.model import whole_minutes
from dtx_worker.storage import ObjectStore, object_store_from_env

log = logging.getLogger("dtx_worker.reports")

STREAK_HISTORY_DAYS = 400  # how far back active days are read for the longest streak
CONTENT_TYPES = {"weekly": "application/pdf", "monthly": "application/pdf", "sessions_csv": "text/csv",
                 "data_export": "application/zip"}
Row = dict[str, Any]


class RenderPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: uuid.UUID


# ---------------------------------------------------------------------------------------- reading


async def _fetch(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def _profile(conn: AsyncConnection[Any], user_id: uuid.UUID) -> Row:
    rows = await _fetch(conn, "select id, email, display_name, gender, birth_date, timezone, locale, role, is_active,"
                              " created_at, updated_at from public.profiles where id = %s", (user_id,))
    if not rows:
        raise LookupError(f"profile {user_id} not found")
    return rows[0]


def display_name(profile: Row) -> str:
    return str(profile.get("display_name") or str(profile.get("email") or "").split("@", 1)[0])


async def report_data(conn: AsyncConnection[Any], request: Row, now: datetime | None = None) -> ReportData:
    """Everything a weekly or monthly report draws, from the database."""
    user_id = request["user_id"]
    profile = await _profile(conn, user_id)
    period = Period(kind=PeriodKind(request["kind"]), start=request["period_start"], end=request["period_end"])
    prev_start, prev_end = previous_period(period)
    since = min(prev_start, period.end - timedelta(days=STREAK_HISTORY_DAYS))
    rows = await _fetch(conn, """
        select stat_date, sessions, working_seconds, pause_seconds, warning_sessions, ushot_sessions, ushot_seconds,
               eshot_sessions, eshot_seconds, led_sessions, led_seconds, mode_breakdown, level_breakdown
          from public.daily_statistics
         where user_id = %s and stat_date between %s and %s""", (user_id, since, period.end))
    devices = await _fetch(conn, """
        select d.nickname, d.serial_number, d.model, d.firmware_version
          from public.devices d
         where d.owner_id = %s
            or d.id in (select s.device_id from public.daily_statistics s
                         where s.user_id = %s and s.stat_date between %s and %s)
         order by d.registered_at, d.serial_number""", (user_id, user_id, period.start, period.end))
    goals = await _fetch(conn, """
        select goal_type, target_minutes from public.goals
         where user_id = %s and is_active and start_date <= %s and (end_date is null or end_date >= %s)
         order by created_at, id""", (user_id, period.end, period.start))
    days, totals, breakdown = summarize_days(rows, period)

    def minutes_between(start: date, end: date) -> int:
        return whole_minutes(sum(int(r["working_seconds"]) for r in rows if start <= r["stat_date"] <= end))

    goal_list = []
    for g in goals:
        kind = PeriodKind(g["goal_type"])
        if kind is period.kind:
            achieved = totals.minutes
        elif kind is PeriodKind.WEEKLY:  # a weekly goal in a monthly report: the period's last 7 days
            achieved = minutes_between(period.end - timedelta(days=6), period.end)
        else:  # a monthly goal in a weekly report: the month up to the week's end
            achieved = minutes_between(period.end.replace(day=1), period.end)
        goal_list.append(Goal(goal_type=kind, target_minutes=g["target_minutes"], achieved_minutes=achieved))
    return ReportData(
        user_display_name=display_name(profile),
        locale=resolve_locale(request["locale"], profile["locale"]),
        timezone=profile["timezone"],
        period=period,
        generated_at=now or datetime.now(UTC),
        devices=[Device(name=d["nickname"] or d["model"], serial=d["serial_number"], model=d["model"],
                        firmware_version=d["firmware_version"]) for d in devices],
        days=days,
        totals=totals,
        breakdown=breakdown,
        previous=PreviousPeriod(start=prev_start, end=prev_end, totals=totals_of(rows, prev_start, prev_end)),
        goals=goal_list,
        streaks=streaks((r["stat_date"] for r in rows if r["sessions"]), period.end),
    )


SESSIONS_SQL = """
select s.id, s.device_id, coalesce(d.nickname, d.model) as device_name, d.serial_number, s.shot_type, s.device_mode,
       s.level, s.led_pattern, s.start_time, s.end_time, s.working_duration, s.pause_duration, s.pause_count,
       s.termination_reason, s.completion_percent, s.had_temperature_warning, s.had_battery_warning,
       s.battery_start_mv, s.battery_end_mv, s.time_synced, s.sync_status, s.uploaded_at{extra}
  from public.usage_sessions s
  left join public.devices d on d.id = s.device_id{join}
 where s.user_id = %s{where}
 order by s.start_time, s.id"""


async def sessions_file(conn: AsyncConnection[Any], request: Row) -> bytes:
    """The sessions whose local start date lies in the request's period, as CSV."""
    profile = await _profile(conn, request["user_id"])
    tz = profile["timezone"]
    rows = await _fetch(conn, SESSIONS_SQL.format(
        extra="", join="",
        where=" and s.start_time >= (%s::date)::timestamp at time zone %s"
              " and s.start_time < ((%s::date + 1)::timestamp at time zone %s)"),
        (request["user_id"], request["period_start"], tz, request["period_end"], tz))
    return sessions_csv(rows, tz)


async def export_file(conn: AsyncConnection[Any], request: Row, now: datetime | None = None) -> bytes:
    """The complete personal-data archive."""
    uid = request["user_id"]
    profile = await _profile(conn, uid)
    devices = await _fetch(conn, "select id, serial_number, model, hardware_revision, firmware_version, ble_address,"
                                 " nickname, is_active, total_sessions, last_synced_at, last_session_at,"
                                 " registered_at from public.devices where owner_id = %s order by registered_at",
                           (uid,))
    sessions = await _fetch(conn, SESSIONS_SQL.format(
        extra=", coalesce(b.samples, '[]'::jsonb) as battery_samples",
        join=" left join lateral (select jsonb_agg(jsonb_build_object('elapsed_seconds', e, 'voltage_mv', v)"
             " order by e) as samples from public.battery_samples bs, unnest(bs.elapsed_seconds, bs.voltage_mv)"
             " as u(e, v) where bs.session_id = s.id) b on true",
        where=""), (uid,))
    stats = await _fetch(conn, "select * from public.daily_statistics where user_id = %s"
                               " order by stat_date, device_id", (uid,))
    goals = await _fetch(conn, "select id, goal_type, target_minutes, start_date, end_date, is_active, created_at,"
                               " updated_at from public.goals where user_id = %s order by created_at", (uid,))
    notif = await _fetch(conn, "select * from public.notification_settings where user_id = %s", (uid,))
    skin = await _fetch(conn, "select skin_type, concerns, memo, created_at, updated_at from public.skin_profiles"
                              " where user_id = %s", (uid,))
    requests = await _fetch(conn, "select id, kind, period_start, period_end, locale, status, bucket, object_path,"
                                  " requested_at, completed_at from public.report_requests where user_id = %s"
                                  " order by requested_at", (uid,))
    for r in notif:
        r.pop("user_id", None)
    settings = {"notifications": notif[0] if notif else None, "skin_profile": skin[0] if skin else None}
    return data_archive(profile=profile, devices=devices, sessions=sessions, statistics=stats, goals=goals,
                        settings=settings,
                        requests=requests, generated_at=now or datetime.now(UTC))


# ---------------------------------------------------------------------------------------- the job


async def build_file(conn: AsyncConnection[Any], request: Row,
                     render: Callable[[ReportData], bytes] = render_report) -> bytes:
    kind = request["kind"]
    if kind in ("weekly", "monthly"):
        data = await report_data(conn, request)
        return await asyncio.to_thread(render, data)
    if kind == "sessions_csv":
        return await sessions_file(conn, request)
    if kind == "data_export":
        return await export_file(conn, request)
    raise ValueError(f"kind: unknown report kind {kind!r}")


def notification_text(request: Row, tz: str = "UTC") -> tuple[str, str]:
    """The in-app notification's title and body, in the request's language: a report's own title and period; an
    export's title and its period (sessions) or day (data)."""
    start, end = request["period_start"], request["period_end"]
    locale = resolve_locale(request["locale"])
    catalog, fmt = CATALOGS[locale], Formatter(locale, ZoneInfo(tz))
    if request["kind"] == "monthly":
        return catalog.title_monthly, fmt.month(start)
    if request["kind"] == "weekly":
        return catalog.title_weekly, fmt.date_range(start, end)
    if request["kind"] == "data_export":
        return catalog.export_data_ready, catalog.exported_on.format(date=fmt.date_range(start, start))
    return catalog.export_sessions_ready, fmt.date_range(start, end)


class StatisticsNotReadyError(RuntimeError):
    """The user's daily statistics still have days waiting to be recomputed; the job is retried later."""


async def wait_for_clean_statistics(pool: AsyncConnectionPool, user_id: uuid.UUID, deadline_s: float = 60.0) -> None:
    """A report is rendered from daily_statistics, so none of the user's days may be waiting for recomputation
    (right after the worker starts, or after a large upload, the drain may still be behind). Help drain —
    the same batch recompute the statistics loop runs — until the user's days are clean; marks another worker
    holds disappear when it commits. After `deadline_s`, raise so the job is retried with backoff."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    async with pool.connection() as conn:
        while True:
            cur = await conn.execute("select exists (select 1 from public.stats_dirty_days where user_id = %s)",
                                     (user_id,))
            row = await cur.fetchone()
            if row is None or not row[0]:
                return
            if loop.time() > give_up:
                raise StatisticsNotReadyError(f"statistics of user {user_id} are still being recomputed")
            cur = await conn.execute("select private.refresh_daily_statistics(500)")
            done = await cur.fetchone()
            if done is not None and done[0] == 0:
                await asyncio.sleep(0.05)  # only marks another worker holds remain: wait for its commit


async def process_request(pool: AsyncConnectionPool, store: ObjectStore, request_id: uuid.UUID, *,
                          final_attempt: bool = False) -> bool:
    """Render, store and complete one request. Returns False when there was nothing to do (ready or gone)."""
    async with pool.connection() as conn:
        started = await _fetch(conn, "select * from private.start_report(%s)", (request_id,))
    if not started:
        log.info("report request already ready or gone; nothing to do", extra={"request_id": str(request_id)})
        return False
    request = started[0]
    try:
        await wait_for_clean_statistics(pool, request["user_id"])
        async with pool.connection() as conn:
            data = await build_file(conn, request)
        await store.put(request["bucket"], request["object_path"], data, CONTENT_TYPES[request["kind"]])
        async with pool.connection() as conn:
            await conn.execute("select private.finish_report(%s, %s, %s)", (request_id, *notification_text(request)))
    except Exception as exc:
        try:
            async with pool.connection() as conn:
                await conn.execute("select private.fail_report(%s, %s, %s)",
                                   (request_id, describe_error(exc), final_attempt))
        except Exception:
            log.exception("could not record the report's failure", extra={"request_id": str(request_id)})
        raise
    log.info("report stored", extra={"request_id": str(request_id), "kind": request["kind"],
                                     "object": f"{request['bucket']}/{request['object_path']}", "bytes": len(data)})
    return True


async def render_report_job(job: Job, ctx: JobContext) -> None:
    payload = RenderPayload.model_validate(job.payload)
    await process_request(ctx.pool, object_store_from_env(ctx.pool), payload.request_id,
                          final_attempt=job.attempts >= job.max_attempts)


class SchedulePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def enqueue_due_reports_job(job: Job, ctx: JobContext) -> None:
    """`reports.schedule` (enqueued hourly by the schedule table): create the monthly and weekly report requests
    that are due now, each with its `reports.render` job (`private.enqueue_due_reports`, idempotent)."""
    SchedulePayload.model_validate(job.payload)
    async with ctx.pool.connection() as conn:
        cur = await conn.execute("select private.enqueue_due_reports(now())")
        row = await cur.fetchone()
    created = int(row[0]) if row else 0
    if created:
        log.info("scheduled reports requested", extra={"requests": created})
