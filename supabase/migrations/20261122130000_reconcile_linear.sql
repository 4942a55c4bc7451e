-- Reconciliation in linear time. The first definition looked up each day's mode and level breakdowns with a
-- correlated subquery over a CTE (which has no index): a scan of every day's breakdowns per day, quadratic in
-- the number of days checked (100,000 sessions / 28,000 days took 411 s; the nightly 3-day job over 10,000
-- users would have taken minutes). It also built and compared a JSON object per day.
--
-- Now each user's window of sessions is scanned once and turned into expected rows by
-- private.expected_daily_statistics (defined here, shared with the recomputation); stored and expected rows
-- meet in one full join and are compared column by column,
-- and the JSON detail ("fields") is built only for the reported drift. Same signature, result and marks.
-- Expected statistics rows of one user's sessions that started in [from_at, to_at) (optionally of one device), per
-- local day in time zone tz: the one definition of a day's statistics, shared by the recomputation
-- (refresh_daily_statistics) and this reconciliation. The sessions are grouped once by (device, local day, shot
-- type, mode, level); each day's totals and both breakdowns are aggregated from those few groups in one more
-- pass (window sums give each group its mode's and its level's totals), with no join between CTEs for the
-- planner to turn into a nested loop. A plain SQL function: the planner inlines it where it is called.
create function private.expected_daily_statistics(for_user uuid, for_device uuid, from_at timestamptz,
                                                  to_at timestamptz, tz text)
returns table (user_id uuid, device_id uuid, stat_date date, sessions integer, working_seconds integer,
               pause_seconds integer, ushot_sessions integer, ushot_seconds integer, eshot_sessions integer,
               eshot_seconds integer, led_sessions integer, led_seconds integer, mode_breakdown jsonb,
               level_breakdown jsonb, warning_sessions integer, temperature_warnings integer,
               battery_warnings integer, estimated_sessions integer, first_session_at timestamptz,
               last_session_at timestamptz)
language sql stable
as $$
  with fine as (
    select s.user_id as u, s.device_id as d, (s.start_time at time zone tz)::date as day,
           s.shot_type as shot, s.device_mode as mode, s.level as lvl,
           count(*) as n,
           sum(s.working_duration) as working,
           sum(s.pause_duration) as pause,
           count(*) filter (where s.had_temperature_warning or s.had_battery_warning) as warnings,
           count(*) filter (where s.had_temperature_warning) as temperature,
           count(*) filter (where s.had_battery_warning) as battery,
           count(*) filter (where not s.time_synced) as estimated,
           min(s.start_time) as first_at,
           max(s.start_time) as last_at
      from public.usage_sessions s
     where s.user_id = for_user and s.start_time >= from_at and s.start_time < to_at
       and (for_device is null or s.device_id = for_device)
     group by 1, 2, 3, 4, 5, 6
  ), fine_with_breakdowns as (  -- each group also carries its mode's and its level's day totals
    select f.*,
           sum(f.n) over by_mode as mode_n, sum(f.working) over by_mode as mode_working,
           sum(f.n) over by_level as level_n, sum(f.working) over by_level as level_working
      from fine f
    window by_mode as (partition by f.u, f.d, f.day, f.mode),
           by_level as (partition by f.u, f.d, f.day, f.lvl)
  )
  -- a mode (level) appears once per level (mode) with the same totals: jsonb_object_agg keeps one of them
  select g.u, g.d, g.day,
         sum(g.n)::integer,
         sum(g.working)::integer,
         sum(g.pause)::integer,
         coalesce(sum(g.n) filter (where g.shot = 0), 0)::integer,
         coalesce(sum(g.working) filter (where g.shot = 0), 0)::integer,
         coalesce(sum(g.n) filter (where g.shot = 1), 0)::integer,
         coalesce(sum(g.working) filter (where g.shot = 1), 0)::integer,
         coalesce(sum(g.n) filter (where g.shot = 2), 0)::integer,
         coalesce(sum(g.working) filter (where g.shot = 2), 0)::integer,
         jsonb_object_agg(g.mode::text, jsonb_build_object('sessions', g.mode_n::bigint,
                                                           'seconds', g.mode_working::bigint)),
         jsonb_object_agg(g.lvl::text, jsonb_build_object('sessions', g.level_n::bigint,
                                                          'seconds', g.level_working::bigint)),
         sum(g.warnings)::integer,
         sum(g.temperature)::integer,
         sum(g.battery)::integer,
         sum(g.estimated)::integer,
         min(g.first_at),
         max(g.last_at)
    from fine_with_breakdowns g group by 1, 2, 3
$$;
revoke all on function private.expected_daily_statistics(uuid, uuid, timestamptz, timestamptz, text) from public;

create or replace function private.reconcile_daily_statistics(days integer default 3, only_user uuid default null)
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
  ), expected as (
    select e.* from windows w
     cross join lateral private.expected_daily_statistics(
       w.user_id, null, w.first_day::timestamp at time zone w.timezone,
       (w.last_day + 1)::timestamp at time zone w.timezone, w.timezone) e
  ), stored as (
    select ds.user_id, ds.device_id, ds.stat_date, ds.sessions, ds.working_seconds, ds.pause_seconds,
           ds.ushot_sessions, ds.ushot_seconds, ds.eshot_sessions, ds.eshot_seconds, ds.led_sessions, ds.led_seconds,
           ds.mode_breakdown, ds.level_breakdown, ds.warning_sessions, ds.temperature_warnings,
           ds.battery_warnings, ds.estimated_sessions, ds.first_session_at, ds.last_session_at
      from public.daily_statistics ds join windows w on w.user_id = ds.user_id
     where ds.stat_date between w.first_day and w.last_day
  ), compared as (
    select coalesce(e.user_id, s.user_id) as user_id, coalesce(e.device_id, s.device_id) as device_id,
           coalesce(e.stat_date, s.stat_date) as stat_date,
           case when s.user_id is null then 'insert' when e.user_id is null then 'delete'
                when (e.sessions, e.working_seconds, e.pause_seconds, e.ushot_sessions, e.ushot_seconds,
                      e.eshot_sessions, e.eshot_seconds, e.led_sessions, e.led_seconds, e.mode_breakdown,
                      e.level_breakdown, e.warning_sessions, e.temperature_warnings, e.battery_warnings,
                      e.estimated_sessions, e.first_session_at, e.last_session_at)
                     is distinct from
                     (s.sessions, s.working_seconds, s.pause_seconds, s.ushot_sessions, s.ushot_seconds,
                      s.eshot_sessions, s.eshot_seconds, s.led_sessions, s.led_seconds, s.mode_breakdown,
                      s.level_breakdown, s.warning_sessions, s.temperature_warnings, s.battery_warnings,
                      s.estimated_sessions, s.first_session_at, s.last_session_at)
                then 'update' end as change,
           e, s
      from expected e full join stored s
        on s.user_id = e.user_id and s.device_id = e.device_id and s.stat_date = e.stat_date
  ), drift as materialized (
    select c.user_id, c.device_id, c.stat_date, c.change, c.e, c.s from compared c
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
    'inserted', (select count(*) from drift r where r.change = 'insert'),
    'updated', (select count(*) from drift r where r.change = 'update'),
    'deleted', (select count(*) from drift r where r.change = 'delete'),
    'drift', coalesce((select jsonb_agg(jsonb_build_object(
                                 'user_id', x.user_id, 'device_id', x.device_id, 'stat_date', x.stat_date,
                                 'change', x.change, 'fields', to_jsonb(x.fields))
                                 order by x.stat_date, x.user_id, x.device_id)
                         from (select r.*, array(
                                 select k from jsonb_object_keys(coalesce(ev, '{}'::jsonb) || coalesce(sv, '{}'::jsonb)) k
                                  where ev -> k is distinct from sv -> k order by k) as fields
                                 from (select r0.*, to_jsonb(r0.e) - array['user_id', 'device_id', 'stat_date'] as ev,
                                              to_jsonb(r0.s) - array['user_id', 'device_id', 'stat_date'] as sv
                                         from drift r0 order by r0.stat_date, r0.user_id, r0.device_id limit 100) r) x),
                      '[]'::jsonb),
    'marked', (select count(*) from marked))
    into result;
  return result;
end
$$;
revoke all on function private.reconcile_daily_statistics(integer, uuid) from public;
