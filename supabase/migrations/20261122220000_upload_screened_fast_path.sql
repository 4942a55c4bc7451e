-- upload_sessions, faster for the batches devices actually send (every item valid), same results for all.
--
-- The full validation (a reason per field, per item) cost about two thirds of an upload. Now a batch first gets
-- a cheap, conservative screen: JSON types (one jsonpath over the whole batch), no unknown keys, the exact UUID
-- and timestamp formats, and start_time no later than tomorrow. What the screen leaves unchecked, the casts and
-- the tables' CHECK and NOT NULL constraints refuse: fractions (a plain integer cast), ranges, mode/shot pairs,
-- end after start, curves of 1-500 strictly increasing samples. A batch that passes is stored without computing per-field
-- reasons; any refusal rolls that attempt back (one subtransaction per batch) and the batch goes through the full
-- validation, which names the field of every rejected item exactly as before. So the screen only has to be
-- conservative: whatever it lets through is still checked by a cast or a constraint.
--
-- Also fixed in the full validation, each of which failed the whole batch with an internal error instead of
-- rejecting or storing the item: an integral JSON number written with a fraction (2.0, which the validation
-- accepts; values are now cast through numeric, always checked integral first, so nothing rounds); a battery
-- sample that is itself an array (a lax jsonpath filter looked inside it); two samples at the same second
-- written 5 and 5.0 (compared as text, not as numbers). Items repeating an id within a batch are found with a
-- window function instead of a scan of the batch per item.

-- The full validation's per-item check, unchanged but for comparing numbers as numeric: an integral value written
-- with a fraction (2.0) passed the integer checks, then failed the batch with a cast error in the mode/shot and
-- termination checks.
create or replace function private.session_item_problem(item jsonb, st timestamptz, et timestamptz) returns text
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
    case when not (((item ->> 'shot_type')::numeric = 0 and (item ->> 'device_mode')::numeric between 1 and 4)
                or ((item ->> 'shot_type')::numeric = 1 and (item ->> 'device_mode')::numeric between 17 and 20)
                or ((item ->> 'shot_type')::numeric = 2 and (item ->> 'device_mode')::numeric = 33))
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
          and (item ->> 'termination_reason')::numeric not between 0 and 9 and (item ->> 'termination_reason')::numeric <> 255
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

-- True when every item passes the screen. Its casts may raise on impossible dates; the caller treats that like
-- any other refusal. The jsonpath guards every comparison with a type check, and && and || stop at the first
-- operand that decides them, so the predicate is never "unknown" (which would let an item through unflagged).
create function private.upload_batch_screened(sessions jsonb) returns boolean
language plpgsql stable
set search_path = ''
as $$
declare
  -- the validation's pattern (private.parse_timestamp); impossible days are left to the cast
  iso_timestamp constant text := '^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d'
    '(?::[0-5]\d(?:\.\d{1,9})?)?(?:[Zz]|[+-](?:0\d|1[0-5])(?::?[0-5]\d)?)$';
begin
  return not jsonb_path_exists(sessions, 'lax $[*] ? (!(
            @.type() == "object"
            && @.id.type() == "string"
            && @.start_time.type() == "string"
            && (!exists(@.end_time) || @.end_time.type() == "null" || @.end_time.type() == "string")
            && @.shot_type.type() == "number"
            && @.device_mode.type() == "number"
            && @.level.type() == "number"
            && (!exists(@.led_pattern) || @.led_pattern.type() == "null"
               || @.led_pattern.type() == "number")
            && (!exists(@.working_duration) || @.working_duration.type() == "null"
               || @.working_duration.type() == "number")
            && (!exists(@.pause_duration) || @.pause_duration.type() == "null"
               || @.pause_duration.type() == "number")
            && (!exists(@.pause_count) || @.pause_count.type() == "null"
               || @.pause_count.type() == "number")
            && (!exists(@.termination_reason) || @.termination_reason.type() == "null"
               || @.termination_reason.type() == "number")
            && (!exists(@.completion_percent) || @.completion_percent.type() == "null"
               || @.completion_percent.type() == "number")
            && (!exists(@.battery_start_mv) || @.battery_start_mv.type() == "null"
               || @.battery_start_mv.type() == "number")
            && (!exists(@.battery_end_mv) || @.battery_end_mv.type() == "null"
               || @.battery_end_mv.type() == "number")
            && (!exists(@.had_temperature_warning) || @.had_temperature_warning.type() == "null"
               || @.had_temperature_warning.type() == "boolean")
            && (!exists(@.had_battery_warning) || @.had_battery_warning.type() == "null"
               || @.had_battery_warning.type() == "boolean")
            && (!exists(@.time_synced) || @.time_synced.type() == "null"
               || @.time_synced.type() == "boolean")
            && (!exists(@.battery_samples) || @.battery_samples.type() == "null"
               || (@.battery_samples.type() == "array"
                   && !(@.battery_samples[*].type() != "object")
                   && !exists(@.battery_samples[*] ? (!(@.type() == "object"
                      && @.elapsed_seconds.type() == "number" && @.voltage_mv.type() == "number")))))))')
     and not exists (
       select 1 from jsonb_array_elements(sessions) as e(item)
        where item - array['id', 'shot_type', 'device_mode', 'level', 'led_pattern', 'start_time', 'end_time',
                'working_duration', 'pause_duration', 'pause_count', 'termination_reason', 'completion_percent',
                'had_temperature_warning', 'had_battery_warning', 'battery_start_mv', 'battery_end_mv', 'time_synced',
                'battery_samples'] <> '{}'::jsonb
           -- hyphens where the validation's pattern has them; the uuid cast refuses anything but hex digits
           or length(item ->> 'id') <> 36 or substr(item ->> 'id', 9, 1) <> '-' or substr(item ->> 'id', 14, 1) <> '-'
           or substr(item ->> 'id', 19, 1) <> '-' or substr(item ->> 'id', 24, 1) <> '-'
           or (item ->> 'start_time') !~ iso_timestamp or (item ->> 'end_time') !~ iso_timestamp
           or (item ->> 'start_time')::timestamptz > now() + interval '1 day');
end
$$;
revoke all on function private.upload_batch_screened(jsonb) from public;

-- A JSON number as an integer. With integral_fraction, an integral value written with a fraction (2.0) is
-- accepted, for values the full validation has checked; without, anything but plain digits raises (a cast error
-- sends a screened batch to the full validation). Plain SQL, inlined by the planner.
create function private.json_int(obj jsonb, key text, integral_fraction boolean) returns int
language sql immutable
as $$
  select case when integral_fraction then (obj ->> key)::numeric::int else (obj ->> key)::int end
$$;
revoke all on function private.json_int(jsonb, text, boolean) from public;

-- Stores a batch for a device the caller owns (upload_sessions checks that) and returns the per-item results.
-- validate: compute the reason of every invalid item (the full validation). False only for a screened batch,
-- whose items are then taken as valid: a cast or a constraint raises if one is not.
create function private.store_sessions(device_id uuid, user_id uuid, sessions jsonb, validate boolean)
returns jsonb
language plpgsql
set search_path = ''
-- one generic plan, cached per connection: custom plans for each value of validate re-planned the statement
-- (about a millisecond) on every call
set plan_cache_mode = force_generic_plan
as $$
declare
  result jsonb;
begin
  -- One statement: validation (per item, then the battery samples set-based), classification against this
  -- batch and the stored sessions, the inserts of sessions and their battery curves, and the per-item result.
  -- The statement-level triggers on usage_sessions mark the touched days in this same transaction.
  with items as materialized (
    select e.ord - 1 as idx, e.item, t.st, t.et,
           case when store_sessions.validate then private.session_item_problem(e.item, t.st, t.et) end as problem
      from jsonb_array_elements(store_sessions.sessions) with ordinality as e(item, ord),
           lateral (select case when store_sessions.validate then private.parse_timestamp(e.item -> 'start_time')
                                else (e.item ->> 'start_time')::timestamptz end as st,
                           case when store_sessions.validate then private.parse_timestamp(e.item -> 'end_time')
                                else (e.item ->> 'end_time')::timestamptz end as et
                    offset 0) as t
  ), bad as (  -- the first bad sample of each item; a jsonpath pre-check in C skips items whose samples are all fine
              -- (.type() never unwraps arrays in lax mode; a missing key compares false)
    select distinct on (i.idx) i.idx,
           case when jsonb_typeof(e.x) <> 'object' then 'battery_samples: every sample must be an object'
                else 'battery_samples.' || coalesce(private.int_problem(e.x, 'elapsed_seconds', 0, 86400, true),
                                                    private.int_problem(e.x, 'voltage_mv', 0, 5000, true)) end as problem
      from items i, jsonb_array_elements(i.item -> 'battery_samples') with ordinality as e(x, n)
     where store_sessions.validate and i.problem is null and jsonb_typeof(i.item -> 'battery_samples') = 'array'
       -- strict: a lax filter unwraps a sample that is itself an array and would look inside it
       and (jsonb_path_exists(i.item -> 'battery_samples', 'strict $[*] ? (@.type() != "object")')
            or jsonb_path_exists(i.item -> 'battery_samples',
             'lax $[*] ? (@.type() != "object" || !(@.elapsed_seconds.type() == "number")
                         || !(@.voltage_mv.type() == "number")
                         || !(@.elapsed_seconds >= 0 && @.elapsed_seconds <= 86400
                              && @.elapsed_seconds == @.elapsed_seconds.floor())
                         || !(@.voltage_mv >= 0 && @.voltage_mv <= 5000 && @.voltage_mv == @.voltage_mv.floor()))'))
       and (jsonb_typeof(e.x) <> 'object'
            or private.int_problem(e.x, 'elapsed_seconds', 0, 86400, true) is not null
            or private.int_problem(e.x, 'voltage_mv', 0, 5000, true) is not null)
     order by i.idx, e.n
  ), dup as (
    -- compared as numbers (5 and 5.0 are the same second); other values are the bad CTE's
    select distinct on (g.idx) g.idx, 'battery_samples.elapsed_seconds: duplicate value ' || trim_scale(g.v) as problem
      from (select i.idx, (e.x ->> 'elapsed_seconds')::numeric as v, min(e.n) as first_n
              from items i, jsonb_array_elements(i.item -> 'battery_samples') with ordinality as e(x, n)
             where store_sessions.validate and i.problem is null and jsonb_typeof(i.item -> 'battery_samples') = 'array'
               and jsonb_typeof(e.x -> 'elapsed_seconds') = 'number'
             group by i.idx, (e.x ->> 'elapsed_seconds')::numeric having count(*) > 1) g
     order by g.idx, g.first_n
  ), keyed as materialized (
    select i.idx, i.item, i.st, i.et, p.problem,
           case when p.problem is null then (i.item ->> 'id')::uuid end as id
      from items i
      left join bad b on b.idx = i.idx
      left join dup d on d.idx = i.idx
      cross join lateral (select coalesce(i.problem, b.problem, d.problem) as problem) p
  ), classified as materialized (  -- an id's first occurrence in the batch is the one that counts
    select k.idx, k.item, k.st, k.et, k.id,
           case when k.problem is not null then 'rejected'
                when row_number() over (partition by k.id order by k.idx) > 1 then 'duplicate'
                when s.device_id = store_sessions.device_id then 'duplicate'
                when s.device_id is not null then 'rejected'
           end as status,
           case when k.problem is not null then k.problem
                when s.device_id is not null and s.device_id <> store_sessions.device_id then 'id: already used by another session'
           end as problem
      from keyed k left join public.usage_sessions s on s.id = k.id
  ), inserted as (
    insert into public.usage_sessions (
      id, device_id, user_id, shot_type, device_mode, level, led_pattern, start_time, end_time,
      working_duration, pause_duration, pause_count, termination_reason, completion_percent,
      had_temperature_warning, had_battery_warning, battery_start_mv, battery_end_mv, time_synced, sync_status)
    select c.id, store_sessions.device_id, store_sessions.user_id,
           private.json_int(c.item, 'shot_type', store_sessions.validate)::smallint,
           private.json_int(c.item, 'device_mode', store_sessions.validate)::smallint,
           private.json_int(c.item, 'level', store_sessions.validate)::smallint,
           private.json_int(c.item, 'led_pattern', store_sessions.validate)::smallint, c.st, c.et,
           coalesce(private.json_int(c.item, 'working_duration', store_sessions.validate)::int, 0),
           coalesce(private.json_int(c.item, 'pause_duration', store_sessions.validate)::int, 0),
           coalesce(private.json_int(c.item, 'pause_count', store_sessions.validate)::smallint, 0),
           private.json_int(c.item, 'termination_reason', store_sessions.validate)::smallint,
           coalesce(private.json_int(c.item, 'completion_percent', store_sessions.validate)::smallint, 0),
           coalesce((c.item ->> 'had_temperature_warning')::boolean, false),
           coalesce((c.item ->> 'had_battery_warning')::boolean, false),
           private.json_int(c.item, 'battery_start_mv', store_sessions.validate)::int,
           private.json_int(c.item, 'battery_end_mv', store_sessions.validate)::int,
           coalesce((c.item ->> 'time_synced')::boolean, true), 2
      from classified c
     where c.status is null
    on conflict (id) do nothing
    returning id
  ), curves as (
    insert into public.battery_samples (session_id, elapsed_seconds, voltage_mv)
    select c.id,
           array_agg(private.json_int(b, 'elapsed_seconds', store_sessions.validate)
                     order by private.json_int(b, 'elapsed_seconds', store_sessions.validate)),
           array_agg(private.json_int(b, 'voltage_mv', store_sessions.validate)
                     order by private.json_int(b, 'elapsed_seconds', store_sessions.validate))
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
revoke all on function private.store_sessions(uuid, uuid, jsonb, boolean) from public;

create or replace function public.upload_sessions(device_id uuid, sessions jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  dev public.devices;
  n int;
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

  begin
    if private.upload_batch_screened(upload_sessions.sessions) then
      return private.store_sessions(dev.id, uid, upload_sessions.sessions, false);
    end if;
  exception when data_exception or not_null_violation or check_violation then
    null;  -- refused by a cast or a constraint: nothing of the attempt remains; the full validation says why
  end;
  return private.store_sessions(dev.id, uid, upload_sessions.sessions, true);
end
$$;
