-- Usage sessions recorded by devices, their battery samples, the dirty-day marks the statistics
-- worker drains, and the batch upload RPC.
--
-- Enumerations follow the device firmware (device-protocol.md):
--   shot_type 0 U-Shot, 1 E-Shot, 2 LED Care
--   device_mode 0x01-0x04 (U-Shot: Glow, Toneup, Renew, Volume), 0x11-0x14 (E-Shot: Clean, Firm, Line,
--     Lift), 0x21 (LED)
--   level 1-3; termination_reason 0-9 or 255; sync_status 0-3 (the server stores 2, syncedToServer)
-- Battery values are millivolts as the device reports them (the SDK converts to percent for display).

create table public.usage_sessions (
  id uuid primary key,
  device_id uuid not null references public.devices (id) on delete cascade,
  user_id uuid not null references public.profiles (id) on delete cascade,
  shot_type smallint not null check (shot_type between 0 and 2),
  device_mode smallint not null check (device_mode in (1, 2, 3, 4, 17, 18, 19, 20, 33)),
  level smallint not null check (level between 1 and 3),
  led_pattern smallint check (led_pattern between 0 and 255),
  start_time timestamptz not null check (start_time >= timestamptz '2020-01-01 00:00:00+00'),
  end_time timestamptz,
  working_duration integer not null default 0 check (working_duration between 0 and 7200),
  pause_duration integer not null default 0 check (pause_duration between 0 and 7200),
  pause_count smallint not null default 0 check (pause_count between 0 and 255),
  termination_reason smallint check (termination_reason between 0 and 9 or termination_reason = 255),
  completion_percent smallint not null default 0 check (completion_percent between 0 and 100),
  had_temperature_warning boolean not null default false,
  had_battery_warning boolean not null default false,
  battery_start_mv integer check (battery_start_mv between 0 and 5000),
  battery_end_mv integer check (battery_end_mv between 0 and 5000),
  time_synced boolean not null default true,
  sync_status smallint not null default 2 check (sync_status between 0 and 3),
  uploaded_at timestamptz not null default now(),
  check ((shot_type = 0 and device_mode between 1 and 4)
      or (shot_type = 1 and device_mode between 17 and 20)
      or (shot_type = 2 and device_mode = 33)),
  check (end_time is null or (end_time >= start_time and end_time <= start_time + interval '1 day'))
);
create index usage_sessions_user_start_idx on public.usage_sessions (user_id, start_time desc);
create index usage_sessions_device_start_idx on public.usage_sessions (device_id, start_time desc);

-- A session's battery curve (one sample a minute), one row per session: elapsed seconds and millivolts as
-- parallel arrays, ordered by elapsed time. One row instead of one per sample keeps uploads to one
-- foreign-key check per session.
create function private.valid_battery_curve(elapsed integer[], mv integer[]) returns boolean
language plpgsql immutable
as $$
-- plpgsql with simple expressions only: no per-row query execution inside a CHECK constraint
declare
  n int := cardinality(elapsed);
begin
  if n is null or n <> cardinality(mv) or n not between 1 and 500
     or array_ndims(elapsed) <> 1 or array_ndims(mv) <> 1
     or array_lower(elapsed, 1) <> 1 or array_lower(mv, 1) <> 1 then
    return false;
  end if;
  for i in 1 .. n loop
    if elapsed[i] is null or mv[i] is null or elapsed[i] not between 0 and 86400 or mv[i] not between 0 and 5000
       or (i > 1 and elapsed[i] <= elapsed[i - 1]) then
      return false;
    end if;
  end loop;
  return true;
end
$$;

create table public.battery_samples (
  session_id uuid primary key references public.usage_sessions (id) on delete cascade,
  elapsed_seconds integer[] not null,
  voltage_mv integer[] not null,
  check (private.valid_battery_curve(elapsed_seconds, voltage_mv))
);
comment on table public.battery_samples is
  'Battery curve per session: elapsed_seconds[i] (strictly increasing, 0-86400) and voltage_mv[i] (0-5000).';

-- (user, device, local day) keys whose daily_statistics must be recomputed. Written in the same
-- transaction as the change to usage_sessions; drained by the worker.
create table public.stats_dirty_days (
  user_id uuid not null references public.profiles (id) on delete cascade,
  device_id uuid not null,
  local_date date not null,
  marked_at timestamptz not null default now(),
  primary key (user_id, device_id, local_date)
);
comment on table public.stats_dirty_days is
  'Days whose statistics are stale. device_id has no FK so that marks outlive a deleted device.';
alter table public.stats_dirty_days enable row level security;
-- No policies and no grants: only the worker (a trusted direct connection) reads it.

-- ---------------------------------------------------------------------------------------- triggers

-- Statement-level: one INSERT ... SELECT per statement, whatever the number of rows.
create function private.mark_dirty_from_new() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stats_dirty_days (user_id, device_id, local_date)
  select distinct s.user_id, s.device_id, (s.start_time at time zone p.timezone)::date
    from new_rows s join public.profiles p on p.id = s.user_id
  on conflict (user_id, device_id, local_date) do update set marked_at = excluded.marked_at;
  return null;
end
$$;

create function private.mark_dirty_from_old() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stats_dirty_days (user_id, device_id, local_date)
  select distinct s.user_id, s.device_id, (s.start_time at time zone p.timezone)::date
    from old_rows s join public.profiles p on p.id = s.user_id
  on conflict (user_id, device_id, local_date) do update set marked_at = excluded.marked_at;
  return null;
end
$$;

-- Device counters follow inserts and deletes of sessions, computed per statement.
create function private.count_sessions_inserted() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.devices d
     set total_sessions = d.total_sessions + n.cnt,
         last_synced_at = now(),
         last_session_at = greatest(d.last_session_at, n.last_start)
    from (select device_id, count(*) as cnt, max(start_time) as last_start from new_rows group by device_id) n
   where d.id = n.device_id;
  return null;
end
$$;

create function private.count_sessions_deleted() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.devices d
     set total_sessions = greatest(d.total_sessions - n.cnt, 0)
    from (select device_id, count(*) as cnt from old_rows group by device_id) n
   where d.id = n.device_id;
  return null;
end
$$;

revoke all on function private.mark_dirty_from_new() from public;
revoke all on function private.mark_dirty_from_old() from public;
revoke all on function private.count_sessions_inserted() from public;
revoke all on function private.count_sessions_deleted() from public;

create trigger usage_sessions_dirty_ins after insert on public.usage_sessions
  referencing new table as new_rows for each statement execute function private.mark_dirty_from_new();
create trigger usage_sessions_dirty_upd_new after update on public.usage_sessions
  referencing new table as new_rows for each statement execute function private.mark_dirty_from_new();
create trigger usage_sessions_dirty_upd_old after update on public.usage_sessions
  referencing old table as old_rows for each statement execute function private.mark_dirty_from_old();
create trigger usage_sessions_dirty_del after delete on public.usage_sessions
  referencing old table as old_rows for each statement execute function private.mark_dirty_from_old();
create trigger usage_sessions_count_ins after insert on public.usage_sessions
  referencing new table as new_rows for each statement execute function private.count_sessions_inserted();
create trigger usage_sessions_count_del after delete on public.usage_sessions
  referencing old table as old_rows for each statement execute function private.count_sessions_deleted();

-- ---------------------------------------------------------------------------------------- RLS

alter table public.usage_sessions enable row level security;
create policy usage_sessions_select on public.usage_sessions for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy usage_sessions_delete_own on public.usage_sessions for delete to authenticated
  using (user_id = (select auth.uid()));
create policy usage_sessions_service on public.usage_sessions for all to service_role using (true) with check (true);
grant select, delete on public.usage_sessions to authenticated;
grant select, insert, update, delete on public.usage_sessions to service_role;

alter table public.battery_samples enable row level security;
create policy battery_samples_select on public.battery_samples for select to authenticated
  using (exists (select 1 from public.usage_sessions s
                  where s.id = battery_samples.session_id
                    and (s.user_id = (select auth.uid()) or (select private.is_admin()))));
create policy battery_samples_service on public.battery_samples for all to service_role using (true) with check (true);
grant select on public.battery_samples to authenticated;
grant select, insert, update, delete on public.battery_samples to service_role;

-- ---------------------------------------------------------------------------------------- upload

-- Plain SQL so the planner inlines it into the caller's expressions (no SET clause: that would prevent
-- inlining; it only uses built-in operators, which pg_catalog resolves first).
create function private.int_problem(obj jsonb, key text, lo int, hi int, required boolean) returns text
language sql immutable
as $$
  select case
    when obj -> key is null or jsonb_typeof(obj -> key) = 'null' then
      case when required then key || ': is required' end
    when jsonb_typeof(obj -> key) <> 'number' then key || ': must be an integer'
    when (obj ->> key)::numeric <> trunc((obj ->> key)::numeric) then key || ': must be an integer'
    when (obj ->> key)::numeric < lo or (obj ->> key)::numeric > hi then
      key || ': must be between ' || lo::text || ' and ' || hi::text
  end
$$;

-- ISO 8601 with an explicit offset, or null. Checked so that the cast cannot fail (an exception handler
-- would cost a subtransaction per call); plain SQL so the planner inlines it.
-- The validation helpers are SECURITY INVOKER, use only built-ins and fully qualified names, and run inside
-- upload_sessions (whose search_path is pinned); they carry no SET clause because one costs ~50 us per call.
create function private.parse_timestamp(v jsonb) returns timestamptz
language sql stable
as $$
  select case
    when jsonb_typeof(v) is distinct from 'string' then null
    -- match only (no capture groups: the regex engine is an order of magnitude faster without them)
    when (v #>> '{}') !~ ('^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d'
                          '(?::[0-5]\d(?:\.\d{1,9})?)?(?:[Zz]|[+-](?:0\d|1[0-5])(?::?[0-5]\d)?)$') then null
    when substr(v #>> '{}', 1, 4)::int < 1 then null
    when substr(v #>> '{}', 9, 2)::int > (case substr(v #>> '{}', 6, 2)::int
           when 2 then (case when substr(v #>> '{}', 1, 4)::int % 4 = 0
                              and (substr(v #>> '{}', 1, 4)::int % 100 <> 0 or substr(v #>> '{}', 1, 4)::int % 400 = 0)
                             then 29 else 28 end)
           when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30 else 31 end) then null
    else (v #>> '{}')::timestamptz
  end
$$;

-- The first key of a JSON object that is not a session field (only called when there is one).
create function private.first_unknown_key(item jsonb) returns text
language sql stable
as $$
  select min(k) from jsonb_object_keys(item - array['id', 'shot_type', 'device_mode', 'level', 'led_pattern',
    'start_time', 'end_time', 'working_duration', 'pause_duration', 'pause_count', 'termination_reason',
    'completion_percent', 'had_temperature_warning', 'had_battery_warning', 'battery_start_mv', 'battery_end_mv',
    'time_synced', 'battery_samples']) as k
$$;

-- Why a session item is invalid, or null (battery samples are checked set-based in upload_sessions).
-- st and et are the item's start_time and end_time parsed once by the caller (null when invalid).
-- JSON types are checked before any cast so one bad item never aborts the batch; COALESCE evaluates the
-- checks in order and stops at the first problem. Field names in messages are the JSON keys the client
-- sent. A single SQL expression with no subqueries and no SET clause, so the planner inlines it into the
-- upload's one INSERT ... SELECT: no per-item executor start-up.
create function private.session_item_problem(item jsonb, st timestamptz, et timestamptz) returns text
language sql stable
as $$
  select case when jsonb_typeof(item) is distinct from 'object' then 'item: must be a JSON object'
  else coalesce(
    case when item - array['id', 'shot_type', 'device_mode', 'level', 'led_pattern', 'start_time', 'end_time',
        'working_duration', 'pause_duration', 'pause_count', 'termination_reason', 'completion_percent',
        'had_temperature_warning', 'had_battery_warning', 'battery_start_mv', 'battery_end_mv', 'time_synced',
        'battery_samples'] <> '{}'::jsonb
         then private.first_unknown_key(item) || ': unknown field' end,
    case when jsonb_typeof(item -> 'id') is distinct from 'string'
           or (item ->> 'id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         then 'id: must be a UUID string' end,
    private.int_problem(item, 'shot_type', 0, 2, true),
    private.int_problem(item, 'device_mode', 1, 33, true),
    case when not (((item ->> 'shot_type')::int = 0 and (item ->> 'device_mode')::int between 1 and 4)
                or ((item ->> 'shot_type')::int = 1 and (item ->> 'device_mode')::int between 17 and 20)
                or ((item ->> 'shot_type')::int = 2 and (item ->> 'device_mode')::int = 33))
         then 'device_mode: ' || (item ->> 'device_mode') || ' is not a mode of shot_type ' || (item ->> 'shot_type')
              || ' (U-Shot 1-4, E-Shot 17-20, LED 33)' end,
    private.int_problem(item, 'level', 1, 3, true),
    private.int_problem(item, 'led_pattern', 0, 255, false),
    private.int_problem(item, 'working_duration', 0, 7200, false),
    private.int_problem(item, 'pause_duration', 0, 7200, false),
    private.int_problem(item, 'pause_count', 0, 255, false),
    private.int_problem(item, 'completion_percent', 0, 100, false),
    private.int_problem(item, 'battery_start_mv', 0, 5000, false),
    private.int_problem(item, 'battery_end_mv', 0, 5000, false),
    private.int_problem(item, 'termination_reason', 0, 255, false),
    case when jsonb_typeof(item -> 'termination_reason') = 'number'
          and (item ->> 'termination_reason')::int not between 0 and 9 and (item ->> 'termination_reason')::int <> 255
         then 'termination_reason: must be 0-9 or 255' end,
    case when jsonb_typeof(item -> 'had_temperature_warning') not in ('boolean', 'null')
         then 'had_temperature_warning: must be true or false' end,
    case when jsonb_typeof(item -> 'had_battery_warning') not in ('boolean', 'null')
         then 'had_battery_warning: must be true or false' end,
    case when jsonb_typeof(item -> 'time_synced') not in ('boolean', 'null')
         then 'time_synced: must be true or false' end,
    case when st is null
         then 'start_time: must be an ISO 8601 timestamp with a time zone offset, e.g. 2026-01-31T08:15:00Z' end,
    case when st not between timestamptz '2020-01-01 00:00:00+00'
                                                              and now() + interval '1 day'
         then 'start_time: must be between 2020-01-01 and tomorrow' end,
    case when jsonb_typeof(item -> 'end_time') not in ('null')
          and et is null
         then 'end_time: must be an ISO 8601 timestamp with a time zone offset, or null' end,
    case when et not between st
                                                           and st + interval '1 day'
         then 'end_time: must be at or after start_time and within one day of it' end,
    case when jsonb_typeof(item -> 'battery_samples') not in ('array', 'null')
         then 'battery_samples: must be an array' end,
    case when jsonb_typeof(item -> 'battery_samples') = 'array' and jsonb_array_length(item -> 'battery_samples') > 500
         then 'battery_samples: at most 500 samples per session' end
  ) end
$$;

revoke all on function private.session_item_problem(jsonb, timestamptz, timestamptz) from public;
revoke all on function private.first_unknown_key(jsonb) from public;
revoke all on function private.int_problem(jsonb, text, int, int, boolean) from public;
revoke all on function private.parse_timestamp(jsonb) from public;

-- Upload 1-100 sessions of one of the caller's active devices. Idempotent by session id: re-sending
-- changes nothing and reports duplicates. Every item gets a result; invalid items are rejected with the
-- reason and nothing of them is stored; valid items are stored with their battery samples; the affected
-- (user, device, local day) keys are marked for the statistics worker in the same transaction.
create function public.upload_sessions(device_id uuid, sessions jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  dev public.devices;
  n int;
  result jsonb;
begin
  if upload_sessions.device_id is null then
    perform private.invalid('device_id', 'is required');
  end if;
  if upload_sessions.sessions is null or jsonb_typeof(upload_sessions.sessions) <> 'array' then
    perform private.invalid('sessions', 'must be an array of 1 to 100 sessions');
  end if;
  n := jsonb_array_length(upload_sessions.sessions);
  if n < 1 or n > 100 then
    perform private.invalid('sessions', 'must contain 1 to 100 sessions, got ' || n);
  end if;
  select * into dev from public.devices d where d.id = upload_sessions.device_id;
  if not found or dev.owner_id <> uid then
    raise exception 'device_id: device not found' using errcode = 'P0002', detail = 'device_id';
  end if;
  if not dev.is_active then
    raise exception 'device_id: device is deactivated; reactivate it before uploading'
      using errcode = 'P0001', detail = 'device_id';
  end if;

  -- One statement: validation (per item, then the battery samples set-based), classification against this
  -- batch and the stored sessions, the inserts of sessions and their battery curves, and the per-item result.
  -- The statement-level triggers on usage_sessions mark the touched days in this same transaction.
  with items as materialized (
    select e.ord - 1 as idx, e.item, t.st, t.et, private.session_item_problem(e.item, t.st, t.et) as problem
      from jsonb_array_elements(upload_sessions.sessions) with ordinality as e(item, ord),
           lateral (select private.parse_timestamp(e.item -> 'start_time') as st,
                           private.parse_timestamp(e.item -> 'end_time') as et
                    offset 0) as t
  ), bad as (  -- the first bad sample of each item; a jsonpath pre-check in C skips items whose samples are all fine
              -- (.type() never unwraps arrays in lax mode; a missing key compares false)
    select distinct on (i.idx) i.idx,
           case when jsonb_typeof(e.x) <> 'object' then 'battery_samples: every sample must be an object'
                else 'battery_samples.' || coalesce(private.int_problem(e.x, 'elapsed_seconds', 0, 86400, true),
                                                    private.int_problem(e.x, 'voltage_mv', 0, 5000, true)) end as problem
      from items i, jsonb_array_elements(i.item -> 'battery_samples') with ordinality as e(x, n)
     where i.problem is null and jsonb_typeof(i.item -> 'battery_samples') = 'array'
       and jsonb_path_exists(i.item -> 'battery_samples',
             'lax $[*] ? (@.type() != "object" || !(@.elapsed_seconds.type() == "number")
                         || !(@.voltage_mv.type() == "number")
                         || !(@.elapsed_seconds >= 0 && @.elapsed_seconds <= 86400
                              && @.elapsed_seconds == @.elapsed_seconds.floor())
                         || !(@.voltage_mv >= 0 && @.voltage_mv <= 5000 && @.voltage_mv == @.voltage_mv.floor()))')
       and (jsonb_typeof(e.x) <> 'object'
            or private.int_problem(e.x, 'elapsed_seconds', 0, 86400, true) is not null
            or private.int_problem(e.x, 'voltage_mv', 0, 5000, true) is not null)
     order by i.idx, e.n
  ), dup as (
    select distinct on (g.idx) g.idx, 'battery_samples.elapsed_seconds: duplicate value ' || g.v as problem
      from (select i.idx, e.x ->> 'elapsed_seconds' as v, min(e.n) as first_n
              from items i, jsonb_array_elements(i.item -> 'battery_samples') with ordinality as e(x, n)
             where i.problem is null and jsonb_typeof(i.item -> 'battery_samples') = 'array'
             group by i.idx, e.x ->> 'elapsed_seconds' having count(*) > 1) g
     order by g.idx, g.first_n
  ), keyed as materialized (
    select i.idx, i.item, i.st, i.et, p.problem,
           case when p.problem is null then (i.item ->> 'id')::uuid end as id
      from items i
      left join bad b on b.idx = i.idx
      left join dup d on d.idx = i.idx
      cross join lateral (select coalesce(i.problem, b.problem, d.problem) as problem) p
  ), classified as materialized (
    select k.idx, k.item, k.st, k.et, k.id,
           case when k.problem is not null then 'rejected'
                when exists (select 1 from keyed v where v.id = k.id and v.idx < k.idx) then 'duplicate'
                when s.device_id = dev.id then 'duplicate'
                when s.device_id is not null then 'rejected'
           end as status,
           case when k.problem is not null then k.problem
                when s.device_id is not null and s.device_id <> dev.id then 'id: already used by another session'
           end as problem
      from keyed k left join public.usage_sessions s on s.id = k.id
  ), inserted as (
    insert into public.usage_sessions (
      id, device_id, user_id, shot_type, device_mode, level, led_pattern, start_time, end_time,
      working_duration, pause_duration, pause_count, termination_reason, completion_percent,
      had_temperature_warning, had_battery_warning, battery_start_mv, battery_end_mv, time_synced, sync_status)
    select c.id, dev.id, uid,
           (c.item ->> 'shot_type')::smallint, (c.item ->> 'device_mode')::smallint, (c.item ->> 'level')::smallint,
           (c.item ->> 'led_pattern')::smallint, c.st, c.et,
           coalesce((c.item ->> 'working_duration')::int, 0), coalesce((c.item ->> 'pause_duration')::int, 0),
           coalesce((c.item ->> 'pause_count')::smallint, 0), (c.item ->> 'termination_reason')::smallint,
           coalesce((c.item ->> 'completion_percent')::smallint, 0),
           coalesce((c.item ->> 'had_temperature_warning')::boolean, false),
           coalesce((c.item ->> 'had_battery_warning')::boolean, false),
           (c.item ->> 'battery_start_mv')::int, (c.item ->> 'battery_end_mv')::int,
           coalesce((c.item ->> 'time_synced')::boolean, true), 2
      from classified c
     where c.status is null
    on conflict (id) do nothing
    returning id
  ), curves as (
    insert into public.battery_samples (session_id, elapsed_seconds, voltage_mv)
    select c.id,
           array_agg((b ->> 'elapsed_seconds')::int order by (b ->> 'elapsed_seconds')::int),
           array_agg((b ->> 'voltage_mv')::int order by (b ->> 'elapsed_seconds')::int)
      from classified c join inserted i on i.id = c.id, jsonb_array_elements(c.item -> 'battery_samples') b
     where c.status is null and jsonb_typeof(c.item -> 'battery_samples') = 'array'
     group by c.id
    returning 1
  ), outcome as (
    select c.idx, coalesce(c.id::text, c.item ->> 'id') as id,
           -- not inserted although unseen: a concurrent upload stored it first
           coalesce(c.status, case when i.id is not null then 'stored' else 'duplicate' end) as status,
           c.problem
      from classified c left join inserted i on i.id = c.id and c.status is null
  )
  select jsonb_build_object(
           'stored', count(*) filter (where o.status = 'stored'),
           'duplicates', count(*) filter (where o.status = 'duplicate'),
           'rejected', count(*) filter (where o.status = 'rejected'),
           'results', jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'index', o.idx, 'id', o.id, 'status', o.status,
               'reason', case when o.status = 'rejected' then o.problem end)) order by o.idx))
    into result
    from outcome o;
  return result;
end
$$;
revoke all on function public.upload_sessions(uuid, jsonb) from public;
grant execute on function public.upload_sessions(uuid, jsonb) to authenticated;
