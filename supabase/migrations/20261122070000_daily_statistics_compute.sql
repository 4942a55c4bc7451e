-- Recomputing daily_statistics from usage_sessions: the worker drains stats_dirty_days in batches, and each
-- claimed (user, device, local day) is recomputed from the source rows in one statement, so late, duplicated,
-- edited or deleted sessions always converge to the exact answer. Local days follow profiles.timezone; a
-- timezone change re-marks every day of the user's sessions under the old and the new zone.
--
-- Concurrency: claiming (deleting) marks and recomputing their days are two statements of one transaction.
-- The recomputation's snapshot is taken after the claim holds its row locks, so it sees every upload that
-- marked a claimed day before the claim; an upload that comes later waits for the claim to commit and marks
-- the day again. (In one statement, an upload that re-marked a day between the snapshot and the lock would
-- have had its mark consumed while its sessions stayed invisible: found by the two-worker chaos test.)

-- Claim up to batch_size dirty marks (skipping marks another worker holds), delete them, and recompute
-- those days: upsert the day's row, or delete it when the day has no sessions. Returns the number of days
-- recomputed (0 when there was nothing to do). Breakdowns are {"<device_mode>": {"sessions": n, "seconds": s}}
-- and {"<level>": {...}}, seconds being working seconds. first/last_session_at are the earliest and latest
-- session start of the day.
create function private.refresh_daily_statistics(batch_size integer default 500) returns integer
language plpgsql
set search_path = ''
as $$
declare
  n integer;
  claimed_users uuid[];
  claimed_devices uuid[];
  claimed_dates date[];
begin
  if batch_size is null or batch_size not between 1 and 100000 then
    raise exception 'refresh_daily_statistics: batch_size must be 1-100000' using errcode = '22023';
  end if;
  -- 1. claim: lock and delete up to batch_size marks
  with claimed as (
    delete from public.stats_dirty_days d
     using (select user_id, device_id, local_date from public.stats_dirty_days
             limit batch_size for update skip locked) c
     where d.user_id = c.user_id and d.device_id = c.device_id and d.local_date = c.local_date
    returning d.user_id, d.device_id, d.local_date
  )
  select array_agg(c.user_id), array_agg(c.device_id), array_agg(c.local_date), count(*)
    into claimed_users, claimed_devices, claimed_dates, n
    from claimed c;
  if n = 0 then
    return 0;
  end if;

  -- 2. recompute, in a new statement: its snapshot includes every upload that marked these days before we
  --    locked the marks (an upload that comes later waits for our commit and marks the day again)
  with claimed as (
    select * from unnest(claimed_users, claimed_devices, claimed_dates) as c(user_id, device_id, local_date)
  ), days as (
    select c.user_id, c.device_id, c.local_date,
           c.local_date::timestamp at time zone p.timezone as day_start,
           (c.local_date + 1)::timestamp at time zone p.timezone as day_end
      from claimed c join public.profiles p on p.id = c.user_id
  ), src as (
    select d.user_id, d.device_id, d.local_date, s.shot_type, s.device_mode, s.level, s.start_time,
           s.working_duration, s.pause_duration, s.had_temperature_warning, s.had_battery_warning, s.time_synced
      from days d
      join public.usage_sessions s
        on s.user_id = d.user_id and s.device_id = d.device_id
       and s.start_time >= d.day_start and s.start_time < d.day_end
  ), totals as (
    select user_id, device_id, local_date,
           count(*)::integer as sessions,
           sum(working_duration)::integer as working_seconds,
           sum(pause_duration)::integer as pause_seconds,
           count(*) filter (where shot_type = 0)::integer as ushot_sessions,
           coalesce(sum(working_duration) filter (where shot_type = 0), 0)::integer as ushot_seconds,
           count(*) filter (where shot_type = 1)::integer as eshot_sessions,
           coalesce(sum(working_duration) filter (where shot_type = 1), 0)::integer as eshot_seconds,
           count(*) filter (where shot_type = 2)::integer as led_sessions,
           coalesce(sum(working_duration) filter (where shot_type = 2), 0)::integer as led_seconds,
           count(*) filter (where had_temperature_warning or had_battery_warning)::integer as warning_sessions,
           count(*) filter (where had_temperature_warning)::integer as temperature_warnings,
           count(*) filter (where had_battery_warning)::integer as battery_warnings,
           count(*) filter (where not time_synced)::integer as estimated_sessions,
           min(start_time) as first_session_at,
           max(start_time) as last_session_at
      from src group by user_id, device_id, local_date
  ), modes as (
    select user_id, device_id, local_date,
           jsonb_object_agg(device_mode::text, jsonb_build_object('sessions', cnt, 'seconds', secs)) as breakdown
      from (select user_id, device_id, local_date, device_mode, count(*) as cnt, sum(working_duration) as secs
              from src group by user_id, device_id, local_date, device_mode) m
     group by user_id, device_id, local_date
  ), levels as (
    select user_id, device_id, local_date,
           jsonb_object_agg(level::text, jsonb_build_object('sessions', cnt, 'seconds', secs)) as breakdown
      from (select user_id, device_id, local_date, level, count(*) as cnt, sum(working_duration) as secs
              from src group by user_id, device_id, local_date, level) l
     group by user_id, device_id, local_date
  ), upserted as (
    insert into public.daily_statistics as ds (
      user_id, device_id, stat_date, sessions, working_seconds, pause_seconds, ushot_sessions, ushot_seconds,
      eshot_sessions, eshot_seconds, led_sessions, led_seconds, mode_breakdown, level_breakdown,
      warning_sessions, temperature_warnings, battery_warnings, estimated_sessions, first_session_at,
      last_session_at, computed_at)
    select t.user_id, t.device_id, t.local_date, t.sessions, t.working_seconds, t.pause_seconds,
           t.ushot_sessions, t.ushot_seconds, t.eshot_sessions, t.eshot_seconds, t.led_sessions, t.led_seconds,
           m.breakdown, l.breakdown, t.warning_sessions, t.temperature_warnings, t.battery_warnings,
           t.estimated_sessions, t.first_session_at, t.last_session_at, now()
      from totals t
      join modes m using (user_id, device_id, local_date)
      join levels l using (user_id, device_id, local_date)
    on conflict (user_id, device_id, stat_date) do update
       set sessions = excluded.sessions, working_seconds = excluded.working_seconds,
           pause_seconds = excluded.pause_seconds, ushot_sessions = excluded.ushot_sessions,
           ushot_seconds = excluded.ushot_seconds, eshot_sessions = excluded.eshot_sessions,
           eshot_seconds = excluded.eshot_seconds, led_sessions = excluded.led_sessions,
           led_seconds = excluded.led_seconds, mode_breakdown = excluded.mode_breakdown,
           level_breakdown = excluded.level_breakdown, warning_sessions = excluded.warning_sessions,
           temperature_warnings = excluded.temperature_warnings, battery_warnings = excluded.battery_warnings,
           estimated_sessions = excluded.estimated_sessions, first_session_at = excluded.first_session_at,
           last_session_at = excluded.last_session_at, computed_at = excluded.computed_at
    returning 1
  ), emptied as (
    delete from public.daily_statistics ds
     using claimed c
     where ds.user_id = c.user_id and ds.device_id = c.device_id and ds.stat_date = c.local_date
       and not exists (select 1 from totals t
                        where t.user_id = c.user_id and t.device_id = c.device_id and t.local_date = c.local_date)
    returning 1
  )
  select count(*) into n from claimed;
  return n;
end
$$;
revoke all on function private.refresh_daily_statistics(integer) from public;

-- Wake the worker when days become dirty (same channel as jobs; payload 'stats'). A hint only: the worker
-- also polls. NOTIFY folds repeats within a transaction, so an upload sends one.
create function private.notify_stats_dirty() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_notify('dtx_jobs', 'stats');
  return null;
end
$$;
revoke all on function private.notify_stats_dirty() from public;
create trigger stats_dirty_days_notify after insert on public.stats_dirty_days
  for each statement execute function private.notify_stats_dirty();

-- A timezone change moves sessions between local days: mark every (device, day) of the user's sessions
-- under the old zone (their rows must go or change) and under the new zone (their rows must appear).
create function private.mark_dirty_on_timezone_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stats_dirty_days (user_id, device_id, local_date)
  select distinct s.user_id, s.device_id, (s.start_time at time zone z.tz)::date
    from public.usage_sessions s
    cross join (values (old.timezone), (new.timezone)) as z(tz)
   where s.user_id = new.id
  on conflict (user_id, device_id, local_date) do update set marked_at = excluded.marked_at;
  return null;
end
$$;
revoke all on function private.mark_dirty_on_timezone_change() from public;
create trigger profiles_timezone_marks_dirty after update of timezone on public.profiles
  for each row when (old.timezone is distinct from new.timezone)
  execute function private.mark_dirty_on_timezone_change();
