-- Client-facing statistics RPCs (stats_range, stats_streaks, goal_progress), the nightly reconciliation that
-- checks recent days against usage_sessions, and enqueueing for scheduled jobs.
--
-- Every RPC reads only the caller's own rows (auth.uid()), whatever their role; local days are the caller's
-- profiles.timezone days, the same days daily_statistics is keyed by. "Today" is private.clock() in that zone.
-- Breakdowns ({"<key>": {"sessions": n, "seconds": s}}) are merged across devices and days key by key.

-- ---------------------------------------------------------------------------------------- helpers

-- Merge breakdown objects: per key, the sum of sessions and seconds. Used as an aggregate below.
create function private.breakdown_add(acc jsonb, b jsonb) returns jsonb
language sql immutable parallel safe
as $$
  select coalesce(jsonb_object_agg(k, jsonb_build_object(
           'sessions', coalesce((acc -> k ->> 'sessions')::bigint, 0) + coalesce((b -> k ->> 'sessions')::bigint, 0),
           'seconds', coalesce((acc -> k ->> 'seconds')::bigint, 0) + coalesce((b -> k ->> 'seconds')::bigint, 0))),
         '{}'::jsonb)
    from (select jsonb_object_keys(coalesce(acc, '{}'::jsonb)) as k
          union
          select jsonb_object_keys(coalesce(b, '{}'::jsonb))) keys
$$;
revoke all on function private.breakdown_add(jsonb, jsonb) from public;

create aggregate private.merge_breakdowns(jsonb) (sfunc = private.breakdown_add, stype = jsonb, initcond = '{}');
revoke all on function private.merge_breakdowns(jsonb) from public;

-- The user's local "today".
create function private.local_today(user_id uuid) returns date
language sql stable
as $$
  select (private.clock() at time zone p.timezone)::date from public.profiles p where p.id = local_today.user_id
$$;
revoke all on function private.local_today(uuid) from public;

-- ---------------------------------------------------------------------------------------- stats_range

-- Statistics of one user for [start_date, end_date], grouped by day, ISO week (Monday start) or calendar
-- month; every period of the range is listed (zeros when empty); the first and last week or month are
-- clipped to the range. Not an API function: stats_range checks the caller and calls this; the worker (reports)
-- may call it for any user.
create function private.stats_range_for(user_id uuid, start_date date, end_date date, group_by text default 'day',
                                        device_id uuid default null)
returns jsonb
language plpgsql stable
as $$
declare
  result jsonb;
begin
  if start_date is null then
    perform private.invalid('start_date', 'is required (YYYY-MM-DD)');
  end if;
  if end_date is null then
    perform private.invalid('end_date', 'is required (YYYY-MM-DD)');
  end if;
  if end_date < start_date then
    perform private.invalid('end_date', 'must be on or after start_date');
  end if;
  if end_date - start_date + 1 > 366 then
    perform private.invalid('end_date', 'the range must be at most 366 days');
  end if;
  if group_by is null or group_by not in ('day', 'week', 'month') then
    perform private.invalid('group_by', 'must be day, week or month');
  end if;

  with periods as (
    select p::date as period_start,
           greatest(p::date, stats_range_for.start_date) as first_day,
           least(case group_by when 'day' then p::date
                               when 'week' then p::date + 6
                               else (p + interval '1 month')::date - 1 end, stats_range_for.end_date) as last_day
      from generate_series(date_trunc(case group_by when 'day' then 'day' when 'week' then 'week' else 'month' end,
                                      stats_range_for.start_date::timestamp),
                           stats_range_for.end_date::timestamp,
                           case group_by when 'day' then interval '1 day' when 'week' then interval '1 week'
                                         else interval '1 month' end) p
  ), day_rows as (
    select ds.* from public.daily_statistics ds
     where ds.user_id = stats_range_for.user_id
       and ds.stat_date between stats_range_for.start_date and stats_range_for.end_date
       and (stats_range_for.device_id is null or ds.device_id = stats_range_for.device_id)
  ), per_period as (
    select pe.period_start, pe.first_day, pe.last_day,
           count(distinct r.stat_date) filter (where r.sessions > 0) as active_days,
           coalesce(sum(r.sessions), 0) as sessions,
           coalesce(sum(r.working_seconds), 0) as working_seconds,
           coalesce(sum(r.pause_seconds), 0) as pause_seconds,
           coalesce(sum(r.ushot_sessions), 0) as ushot_sessions,
           coalesce(sum(r.ushot_seconds), 0) as ushot_seconds,
           coalesce(sum(r.eshot_sessions), 0) as eshot_sessions,
           coalesce(sum(r.eshot_seconds), 0) as eshot_seconds,
           coalesce(sum(r.led_sessions), 0) as led_sessions,
           coalesce(sum(r.led_seconds), 0) as led_seconds,
           coalesce(sum(r.warning_sessions), 0) as warning_sessions,
           coalesce(sum(r.temperature_warnings), 0) as temperature_warnings,
           coalesce(sum(r.battery_warnings), 0) as battery_warnings,
           coalesce(sum(r.estimated_sessions), 0) as estimated_sessions,
           private.merge_breakdowns(r.mode_breakdown) as mode_breakdown,
           private.merge_breakdowns(r.level_breakdown) as level_breakdown
      from periods pe
      left join day_rows r on r.stat_date between pe.first_day and pe.last_day
     group by pe.period_start, pe.first_day, pe.last_day
  ), totals as (
    select (select count(distinct stat_date) from day_rows where sessions > 0) as active_days,
           coalesce(sum(sessions), 0) as sessions, coalesce(sum(working_seconds), 0) as working_seconds,
           coalesce(sum(pause_seconds), 0) as pause_seconds,
           coalesce(sum(ushot_sessions), 0) as ushot_sessions, coalesce(sum(ushot_seconds), 0) as ushot_seconds,
           coalesce(sum(eshot_sessions), 0) as eshot_sessions, coalesce(sum(eshot_seconds), 0) as eshot_seconds,
           coalesce(sum(led_sessions), 0) as led_sessions, coalesce(sum(led_seconds), 0) as led_seconds,
           coalesce(sum(warning_sessions), 0) as warning_sessions,
           coalesce(sum(temperature_warnings), 0) as temperature_warnings,
           coalesce(sum(battery_warnings), 0) as battery_warnings,
           coalesce(sum(estimated_sessions), 0) as estimated_sessions,
           private.merge_breakdowns(mode_breakdown) as mode_breakdown,
           private.merge_breakdowns(level_breakdown) as level_breakdown
      from day_rows
  )
  select jsonb_build_object(
    'range', jsonb_build_object('start_date', stats_range_for.start_date, 'end_date', stats_range_for.end_date,
                                'group_by', group_by, 'device_id', stats_range_for.device_id,
                                'days', stats_range_for.end_date - stats_range_for.start_date + 1),
    'periods', (select coalesce(jsonb_agg(jsonb_build_object(
        'period', case group_by when 'month' then to_char(pp.period_start, 'YYYY-MM') else pp.period_start::text end,
        'start_date', pp.first_day, 'end_date', pp.last_day, 'active_days', pp.active_days,
        'sessions', pp.sessions, 'working_seconds', pp.working_seconds, 'pause_seconds', pp.pause_seconds,
        'ushot_sessions', pp.ushot_sessions, 'ushot_seconds', pp.ushot_seconds,
        'eshot_sessions', pp.eshot_sessions, 'eshot_seconds', pp.eshot_seconds,
        'led_sessions', pp.led_sessions, 'led_seconds', pp.led_seconds,
        'warning_sessions', pp.warning_sessions, 'temperature_warnings', pp.temperature_warnings,
        'battery_warnings', pp.battery_warnings, 'estimated_sessions', pp.estimated_sessions,
        'mode_breakdown', pp.mode_breakdown, 'level_breakdown', pp.level_breakdown) order by pp.period_start),
        '[]'::jsonb) from per_period pp),
    'summary', (select jsonb_build_object(
        'active_days', t.active_days, 'sessions', t.sessions, 'working_seconds', t.working_seconds,
        'pause_seconds', t.pause_seconds, 'ushot_sessions', t.ushot_sessions, 'ushot_seconds', t.ushot_seconds,
        'eshot_sessions', t.eshot_sessions, 'eshot_seconds', t.eshot_seconds,
        'led_sessions', t.led_sessions, 'led_seconds', t.led_seconds,
        'warning_sessions', t.warning_sessions, 'temperature_warnings', t.temperature_warnings,
        'battery_warnings', t.battery_warnings, 'estimated_sessions', t.estimated_sessions,
        'mode_breakdown', t.mode_breakdown, 'level_breakdown', t.level_breakdown,
        'avg_sessions_per_active_day', case when t.active_days > 0 then round(t.sessions::numeric / t.active_days, 2) else 0 end,
        'avg_working_seconds_per_active_day',
            case when t.active_days > 0 then round(t.working_seconds::numeric / t.active_days) else 0 end)
      from totals t)
  ) into result;
  return result;
end
$$;
revoke all on function private.stats_range_for(uuid, date, date, text, uuid) from public;

create function public.stats_range(start_date date, end_date date, group_by text default 'day',
                                   device_id uuid default null)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
begin
  if stats_range.device_id is not null
     and not exists (select 1 from public.devices d where d.id = stats_range.device_id and d.owner_id = uid)
     and not exists (select 1 from public.daily_statistics ds
                      where ds.user_id = uid and ds.device_id = stats_range.device_id) then
    raise exception 'device not found' using errcode = 'P0002';
  end if;
  return private.stats_range_for(uid, stats_range.start_date, stats_range.end_date,
                                 lower(btrim(stats_range.group_by)), stats_range.device_id);
end
$$;
revoke all on function public.stats_range(date, date, text, uuid) from public;
grant execute on function public.stats_range(date, date, text, uuid) to authenticated;

-- ---------------------------------------------------------------------------------------- stats_streaks

-- Streaks of active local days (a day with at least one session on any device), up to today. The current
-- streak is the run ending today, or yesterday when today has no session yet (the day is not over).
create function private.stats_streaks_for(user_id uuid) returns jsonb
language sql stable
as $$
  with today as (
    select private.local_today(stats_streaks_for.user_id) as d
  ), active as (
    select distinct ds.stat_date as d from public.daily_statistics ds, today
     where ds.user_id = stats_streaks_for.user_id and ds.sessions > 0 and ds.stat_date <= today.d
  ), runs as (
    select min(d) as first_day, max(d) as last_day, count(*)::integer as length
      from (select d, d - (row_number() over (order by d))::integer as island from active) a
     group by island
  ), current_run as (
    select r.* from runs r, today where r.last_day >= today.d - 1
  ), longest as (
    select r.* from runs r order by r.length desc, r.last_day desc limit 1
  )
  select jsonb_build_object(
    'today', (select d from today),
    'current', coalesce((select length from current_run), 0),
    'current_start', (select first_day from current_run),
    'longest', coalesce((select length from longest), 0),
    'longest_start', (select first_day from longest),
    'longest_end', (select last_day from longest),
    'last_active_date', (select max(d) from active),
    'active_days', (select count(*) from active))
$$;
revoke all on function private.stats_streaks_for(uuid) from public;

create function public.stats_streaks() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return private.stats_streaks_for(private.require_active_user());
end
$$;
revoke all on function public.stats_streaks() from public;
grant execute on function public.stats_streaks() to authenticated;

-- ---------------------------------------------------------------------------------------- goal_progress

-- For each active goal whose date window contains today: the current period (the ISO week or calendar month
-- containing today, clipped to the goal's start and end dates), the working time achieved in it on all
-- devices, and whether the target is reached. Oldest goal first.
create function private.goal_progress_for(user_id uuid) returns jsonb
language sql stable
as $$
  with today as (
    select private.local_today(goal_progress_for.user_id) as d
  ), windows as (
    select g.*, greatest(g.start_date, case g.goal_type when 'weekly' then date_trunc('week', t.d::timestamp)::date
                                                     else date_trunc('month', t.d::timestamp)::date end) as period_start,
           least(coalesce(g.end_date, 'infinity'::date),
                 case g.goal_type when 'weekly' then date_trunc('week', t.d::timestamp)::date + 6
                                  else (date_trunc('month', t.d::timestamp) + interval '1 month')::date - 1 end)
             as period_end
      from public.goals g, today t
     where g.user_id = goal_progress_for.user_id and g.is_active
       and g.start_date <= t.d and (g.end_date is null or g.end_date >= t.d)
  ), progress as (
    select w.*, coalesce((select sum(ds.working_seconds) from public.daily_statistics ds
                           where ds.user_id = w.user_id
                             and ds.stat_date between w.period_start and w.period_end), 0)::bigint as achieved_seconds
      from windows w
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'goal_id', p.id, 'goal_type', p.goal_type, 'target_minutes', p.target_minutes,
           'start_date', p.start_date, 'end_date', p.end_date,
           'period_start', p.period_start, 'period_end', p.period_end,
           'achieved_seconds', p.achieved_seconds,
           'achieved_minutes', round(p.achieved_seconds / 60.0, 1),
           'percent', round(100.0 * p.achieved_seconds / (p.target_minutes * 60), 1),
           'achieved', p.achieved_seconds >= p.target_minutes * 60)
         order by p.created_at, p.id), '[]'::jsonb)
    from progress p
$$;
revoke all on function private.goal_progress_for(uuid) from public;

create function public.goal_progress() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return private.goal_progress_for(private.require_active_user());
end
$$;
revoke all on function public.goal_progress() from public;
grant execute on function public.goal_progress() to authenticated;

-- ---------------------------------------------------------------------------------------- reconciliation

-- Check each user's (or only_user's) last `days` local days (today included) against a from-scratch computation from
-- usage_sessions, and mark every (user, device, day) that differs dirty, so that the statistics drain
-- recomputes it (reconciliation never writes daily_statistics itself: the drain's claim protocol keeps
-- recomputations of one day from overlapping). Days already marked dirty are skipped (they are about to be
-- recomputed). Returns {"days", "rows_checked", "inserted", "updated", "deleted", "drift": [first 100
-- {"user_id", "device_id", "stat_date", "change", "fields"}]} where "change" is what the recomputation will do:
-- insert a missing row, update a wrong one, delete a row whose day has no sessions.
create function private.reconcile_daily_statistics(days integer default 3, only_user uuid default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  result jsonb;
begin
  if days is null or days not between 1 and 366 then
    perform private.invalid('days', 'must be 1-366');
  end if;
  with windows as (
    select p.id as user_id, p.timezone,
           (private.clock() at time zone p.timezone)::date - (days - 1) as first_day,
           (private.clock() at time zone p.timezone)::date as last_day
      from public.profiles p
     where only_user is null or p.id = only_user
  ), src as (
    select s.user_id, s.device_id, (s.start_time at time zone w.timezone)::date as local_date, s.shot_type,
           s.device_mode, s.level, s.start_time, s.working_duration, s.pause_duration, s.had_temperature_warning,
           s.had_battery_warning, s.time_synced
      from windows w
      join public.usage_sessions s
        on s.user_id = w.user_id
       and s.start_time >= w.first_day::timestamp at time zone w.timezone
       and s.start_time < (w.last_day + 1)::timestamp at time zone w.timezone
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
  ), expected as (
    select t.user_id, t.device_id, t.local_date as stat_date,
           jsonb_build_object(
             'sessions', count(*), 'working_seconds', sum(working_duration), 'pause_seconds', sum(pause_duration),
             'ushot_sessions', count(*) filter (where shot_type = 0),
             'ushot_seconds', coalesce(sum(working_duration) filter (where shot_type = 0), 0),
             'eshot_sessions', count(*) filter (where shot_type = 1),
             'eshot_seconds', coalesce(sum(working_duration) filter (where shot_type = 1), 0),
             'led_sessions', count(*) filter (where shot_type = 2),
             'led_seconds', coalesce(sum(working_duration) filter (where shot_type = 2), 0),
             'warning_sessions', count(*) filter (where had_temperature_warning or had_battery_warning),
             'temperature_warnings', count(*) filter (where had_temperature_warning),
             'battery_warnings', count(*) filter (where had_battery_warning),
             'estimated_sessions', count(*) filter (where not time_synced),
             'first_session_at', min(start_time), 'last_session_at', max(start_time),
             'mode_breakdown', (select m.breakdown from modes m where (m.user_id, m.device_id, m.local_date)
                                                                   = (t.user_id, t.device_id, t.local_date)),
             'level_breakdown', (select l.breakdown from levels l where (l.user_id, l.device_id, l.local_date)
                                                                    = (t.user_id, t.device_id, t.local_date))
           ) as v
      from src t group by t.user_id, t.device_id, t.local_date
  ), stored as (
    select ds.user_id, ds.device_id, ds.stat_date,
           to_jsonb(ds) - array['user_id', 'device_id', 'stat_date', 'computed_at'] as v
      from public.daily_statistics ds join windows w on w.user_id = ds.user_id
     where ds.stat_date between w.first_day and w.last_day
  ), compared as (
    select coalesce(e.user_id, s.user_id) as user_id, coalesce(e.device_id, s.device_id) as device_id,
           coalesce(e.stat_date, s.stat_date) as stat_date,
           case when s.v is null then 'insert' when e.v is null then 'delete'
                when e.v is distinct from s.v then 'update' end as change,
           array(select k from jsonb_object_keys(coalesce(e.v, '{}'::jsonb) || coalesce(s.v, '{}'::jsonb)) k
                  where e.v -> k is distinct from s.v -> k order by k) as fields
      from expected e full join stored s
        on s.user_id = e.user_id and s.device_id = e.device_id and s.stat_date = e.stat_date
  ), drift as (
    select c.user_id, c.device_id, c.stat_date, c.change, c.fields from compared c
   where c.change is not null
     and not exists (select 1 from public.stats_dirty_days d
                      where (d.user_id, d.device_id, d.local_date) = (c.user_id, c.device_id, c.stat_date))
  ), marked as (
    insert into public.stats_dirty_days (user_id, device_id, local_date)
    select r.user_id, r.device_id, r.stat_date from drift r
    on conflict (user_id, device_id, local_date) do update set marked_at = excluded.marked_at
    returning 1
  )
  select jsonb_build_object(
    'days', days,
    'rows_checked', (select count(*) from stored),
    'inserted', count(*) filter (where r.change = 'insert'),
    'updated', count(*) filter (where r.change = 'update'),
    'deleted', count(*) filter (where r.change = 'delete'),
    'drift', coalesce((select jsonb_agg(jsonb_build_object('user_id', x.user_id, 'device_id', x.device_id,
                                                           'stat_date', x.stat_date, 'change', x.change,
                                                           'fields', to_jsonb(x.fields)))
                         from (select * from drift order by stat_date, user_id, device_id limit 100) x),
                      '[]'::jsonb),
    'marked', (select count(*) from marked))
    into result
    from drift r;
  return result;
end
$$;
revoke all on function private.reconcile_daily_statistics(integer, uuid) from public;

-- ---------------------------------------------------------------------------------------- scheduled jobs

-- Scheduled work is enqueued by every worker replica's scheduler with a key naming the period
-- ("stats.reconcile:2026-11-22"); a key seen before in any status (until pruned) is not enqueued again, so
-- N replicas firing the same schedule make one job, even when the first one has already finished.
create index jobs_dedupe_key_idx on public.jobs (dedupe_key) where dedupe_key is not null;

create function private.enqueue_scheduled_job(kind text, payload jsonb, dedupe_key text) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  job_id bigint;
begin
  if dedupe_key is null then
    perform private.invalid('dedupe_key', 'is required for scheduled jobs');
  end if;
  select j.id into job_id from public.jobs j where j.dedupe_key = enqueue_scheduled_job.dedupe_key
   order by j.id desc limit 1;
  if job_id is not null then
    return job_id;
  end if;
  return private.enqueue_job(enqueue_scheduled_job.kind, enqueue_scheduled_job.payload,
                             enqueue_scheduled_job.dedupe_key);
end
$$;
revoke all on function private.enqueue_scheduled_job(text, jsonb, text) from public;
