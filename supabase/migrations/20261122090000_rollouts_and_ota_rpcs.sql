-- Staged rollouts, per-device update status and history, the device-facing RPCs ota_check_update and
-- ota_report_status, the rollout evaluation the worker runs, and the admin RPCs.
--
-- A device's place in a rollout is bucket = hash(rollout id, device id) mod 10000; it is selected at a stage
-- of p percent when bucket < 100 * p, so widening a stage keeps every device already in, and 100 % selects
-- every targeted device. Eligibility is computed at check time; the worker advances stages or pauses a
-- rollout (private.evaluate_rollouts).
--
-- The clock is private.clock(): now(), unless the session sets `dtx.clock` (simulations and tests only;
-- PostgREST clients cannot set it).

create function private.clock() returns timestamptz
language sql stable
as $$ select coalesce(nullif(current_setting('dtx.clock', true), '')::timestamptz, now()) $$;

create function private.rollout_bucket(rollout_id uuid, device_id uuid) returns integer
language sql immutable
as $$
  select ((('x' || substr(md5(rollout_id::text || ':' || device_id::text), 1, 8))::bit(32)::bigint) % 10000)::int
$$;

-- [{"percent": 1, "soak_minutes": 1440}, ..., {"percent": 100, "soak_minutes": 0}]
create function private.valid_stages(stages jsonb) returns boolean
language plpgsql immutable
as $$
declare
  n int;
  prev int := 0;
  s jsonb;
begin
  if jsonb_typeof(stages) is distinct from 'array' then
    return false;
  end if;
  n := jsonb_array_length(stages);
  if n not between 1 and 10 then
    return false;
  end if;
  for i in 0 .. n - 1 loop
    s := stages -> i;
    if jsonb_typeof(s) <> 'object' or jsonb_typeof(s -> 'percent') <> 'number'
       or jsonb_typeof(s -> 'soak_minutes') <> 'number'
       or (s ->> 'percent')::numeric <> trunc((s ->> 'percent')::numeric)
       or (s ->> 'soak_minutes')::numeric <> trunc((s ->> 'soak_minutes')::numeric)
       or (s ->> 'percent')::int not between 1 and 100 or (s ->> 'percent')::int <= prev
       or (s ->> 'soak_minutes')::int not between 0 and 43200
       or (select count(*) from jsonb_object_keys(s)) <> 2 then
      return false;
    end if;
    prev := (s ->> 'percent')::int;
  end loop;
  return prev = 100;
end
$$;

create table public.firmware_rollouts (
  id uuid primary key default gen_random_uuid(),
  firmware_version_id uuid not null references public.firmware_versions (id),
  name text not null check (char_length(btrim(name)) between 1 and 200),
  strategy text not null check (strategy in ('all_at_once', 'staged', 'manual', 'beta')),
  stages jsonb not null default '[{"percent": 100, "soak_minutes": 0}]'::jsonb check (private.valid_stages(stages)),
  current_stage integer not null default 0 check (current_stage >= 0),
  stage_started_at timestamptz,
  model text not null,
  channel text not null check (channel in ('stable', 'beta')),
  device_ids uuid[] not null default '{}' check (cardinality(device_ids) <= 10000),
  beta_tags text[] not null default '{}' check (private.valid_tags(beta_tags)),
  target_hardware_revisions text[] not null default '{}' check (private.valid_tags(target_hardware_revisions)),
  min_current_version_code integer check (min_current_version_code between 1 and 2000000000),
  success_threshold numeric(5, 2) not null default 95 check (success_threshold between 0 and 100),
  failure_threshold numeric(5, 2) not null default 5 check (failure_threshold between 0 and 100),
  min_sample_size integer not null default 10 check (min_sample_size between 1 and 1000000),
  in_progress_timeout_minutes integer not null default 120 check (in_progress_timeout_minutes between 5 and 10080),
  is_downgrade boolean not null default false,
  status text not null default 'draft' check (status in ('draft', 'active', 'paused', 'completed', 'aborted')),
  status_reason text check (char_length(status_reason) <= 500),
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  check (current_stage < jsonb_array_length(stages)),
  check (strategy = 'staged' or jsonb_array_length(stages) = 1),
  check (strategy <> 'manual' or cardinality(device_ids) > 0),
  check ((status in ('completed', 'aborted')) = (finished_at is not null)),
  check (status = 'draft' or started_at is not null)
);
-- one live (active or paused) rollout per model and channel
create unique index firmware_rollouts_one_live on public.firmware_rollouts (model, channel)
  where status in ('active', 'paused');
create index firmware_rollouts_status_idx on public.firmware_rollouts (status);
create trigger firmware_rollouts_updated_at before update on public.firmware_rollouts
  for each row execute function private.set_updated_at();

alter table public.firmware_rollouts enable row level security;
create policy firmware_rollouts_admin_select on public.firmware_rollouts for select to authenticated
  using ((select private.is_admin()));
create policy firmware_rollouts_service on public.firmware_rollouts for all to service_role using (true) with check (true);
grant select on public.firmware_rollouts to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- device status

create table public.device_firmware_status (
  device_id uuid primary key references public.devices (id) on delete cascade,
  current_version text check (private.semver_ok(current_version)),
  current_version_code integer check (current_version_code >= 0),
  last_check_at timestamptz,
  rollout_id uuid references public.firmware_rollouts (id) on delete set null,
  target_version_id uuid references public.firmware_versions (id) on delete set null,
  stage integer check (stage >= 0),
  phase text not null default 'idle' check (phase in ('idle', 'offered', 'downloading', 'transferring',
    'installing', 'succeeded', 'failed', 'timed_out', 'cancelled')),
  phase_at timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  error_code integer check (error_code between 0 and 255),
  error_message text check (char_length(error_message) <= 500),
  verified_at timestamptz,
  check ((phase = 'idle') or (rollout_id is not null and target_version_id is not null) or phase = 'succeeded')
);
-- room on each page for HOT updates: a check-in rewrites the row without touching indexed columns
alter table public.device_firmware_status set (fillfactor = 80);
create index device_firmware_status_rollout_idx on public.device_firmware_status (rollout_id, phase);
-- what the evaluation's timeout sweep reads: only updates in flight
create index device_firmware_status_in_flight_idx on public.device_firmware_status (rollout_id, phase_at)
  where phase in ('downloading', 'transferring', 'installing');

alter table public.device_firmware_status enable row level security;
create policy device_firmware_status_select on public.device_firmware_status for select to authenticated
  using ((select private.is_admin())
         or exists (select 1 from public.devices d where d.id = device_id and d.owner_id = (select auth.uid())));
create policy device_firmware_status_service on public.device_firmware_status for all to service_role
  using (true) with check (true);
grant select on public.device_firmware_status to authenticated, service_role;

-- Devices per (rollout, phase), kept exact without scanning the status table: every change of a status row's
-- rollout or phase appends -1/+1 to rollout_phase_deltas (inserts only: concurrent check-ins never wait on a
-- shared counter row), and each evaluation folds the deltas into rollout_phase_counts.
create table private.rollout_phase_deltas (
  id bigint generated always as identity primary key,
  rollout_id uuid not null,
  phase text not null,
  delta integer not null check (delta <> 0)
);
create table private.rollout_phase_counts (
  rollout_id uuid not null references public.firmware_rollouts (id) on delete cascade,
  phase text not null,
  devices bigint not null,  -- no CHECK: ON CONFLICT checks the proposed row, which may carry a negative delta
  primary key (rollout_id, phase)
);
revoke all on private.rollout_phase_deltas, private.rollout_phase_counts from public;

-- Row-level with WHEN clauses: a check-in that changes neither rollout nor phase (the common case) fires
-- nothing at all.
create function private.status_delta() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.rollout_id is not null then
    insert into private.rollout_phase_deltas (rollout_id, phase, delta) values (old.rollout_id, old.phase, -1);
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.rollout_id is not null then
    insert into private.rollout_phase_deltas (rollout_id, phase, delta) values (new.rollout_id, new.phase, 1);
  end if;
  return null;
end
$$;
revoke all on function private.status_delta() from public;
create trigger device_firmware_status_delta_ins after insert on public.device_firmware_status
  for each row when (new.rollout_id is not null) execute function private.status_delta();
create trigger device_firmware_status_delta_upd after update of rollout_id, phase on public.device_firmware_status
  for each row when ((old.rollout_id, old.phase) is distinct from (new.rollout_id, new.phase))
  execute function private.status_delta();
create trigger device_firmware_status_delta_del after delete on public.device_firmware_status
  for each row when (old.rollout_id is not null) execute function private.status_delta();

-- Fold pending deltas into the counts (concurrent folds are safe: each delta row is deleted exactly once).
create function private.fold_rollout_counts() returns void
language sql
set search_path = ''
as $$
  with moved as (delete from private.rollout_phase_deltas returning rollout_id, phase, delta)
  insert into private.rollout_phase_counts as c (rollout_id, phase, devices)
  select m.rollout_id, m.phase, sum(m.delta) from moved m
   where exists (select 1 from public.firmware_rollouts r where r.id = m.rollout_id)
   group by 1, 2
  on conflict (rollout_id, phase) do update set devices = c.devices + excluded.devices
$$;
revoke all on function private.fold_rollout_counts() from public;

create table public.firmware_update_history (
  id bigint generated always as identity primary key,
  device_id uuid not null references public.devices (id) on delete cascade,
  rollout_id uuid references public.firmware_rollouts (id) on delete set null,
  firmware_version_id uuid references public.firmware_versions (id) on delete set null,
  from_version text check (private.semver_ok(from_version)),
  to_version text not null check (private.semver_ok(to_version)),
  phase text not null check (phase in ('offered', 'downloading', 'transferring', 'installing', 'succeeded',
    'failed', 'timed_out', 'cancelled')),
  error_code integer check (error_code between 0 and 255),
  error_message text check (char_length(error_message) <= 500),
  reported_by uuid,
  reported_at timestamptz not null default now()
);
create index firmware_update_history_device_idx on public.firmware_update_history (device_id, reported_at desc);
create index firmware_update_history_rollout_idx on public.firmware_update_history (rollout_id);

create function private.history_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
    return old;  -- cascades from deleting the device or its owner
  end if;
  raise exception 'firmware_update_history is append-only' using errcode = '42501';
end
$$;
create trigger firmware_update_history_append_only before update or delete on public.firmware_update_history
  for each row execute function private.history_append_only();

alter table public.firmware_update_history enable row level security;
create policy firmware_update_history_select on public.firmware_update_history for select to authenticated
  using ((select private.is_admin())
         or exists (select 1 from public.devices d where d.id = device_id and d.owner_id = (select auth.uid())));
create policy firmware_update_history_service on public.firmware_update_history for select to service_role using (true);
grant select on public.firmware_update_history to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- eligibility

-- Is this device, at this version code, selected by this rollout right now? (Ignores the firmware's own
-- min_version_code, which ota_check_update reports separately.)
create function private.rollout_selects(r public.firmware_rollouts, target_code integer, d public.devices,
                                        current_code integer) returns boolean
language sql stable
as $$
  select d.is_active
     and d.model = r.model
     and (cardinality(r.target_hardware_revisions) = 0 or lower(d.hardware_revision) = any (r.target_hardware_revisions))
     and (r.min_current_version_code is null or current_code >= r.min_current_version_code)
     and (r.channel = 'stable' or d.is_beta or d.tags && r.beta_tags)
     and case when r.is_downgrade then current_code > target_code else current_code < target_code end
     and case r.strategy
           when 'all_at_once' then true
           when 'manual' then d.id = any (r.device_ids)
           when 'beta' then d.is_beta or d.tags && r.beta_tags
           else private.rollout_bucket(r.id, d.id) < 100 * (r.stages -> r.current_stage ->> 'percent')::int
         end
$$;

-- Rollouts that may offer their version: active ones, and completed ones no newer rollout of the same model
-- and channel has replaced (so late devices still update).
create function private.offering_rollouts() returns setof public.firmware_rollouts
language sql stable
as $$
  select r.* from public.firmware_rollouts r
   where r.status = 'active'
      or (r.status = 'completed' and not exists (
            select 1 from public.firmware_rollouts n
             where n.model = r.model and n.channel = r.channel and n.status in ('active', 'completed')
               and n.started_at > r.started_at))
$$;

create function public.ota_check_update(device_id uuid, current_version text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
-- Hot path (every device checks in): reads of device, owner and status row, at most one write of the status
-- row and one history row.
declare
  uid uuid := auth.uid();
  d public.devices;
  owner_active boolean;
  code integer;
  st public.device_firmware_status;
  had_status boolean;
  best record;
  blocked record;
  at timestamptz := private.clock();
  confirmed boolean := false;
  new_offer boolean := false;
begin
  if uid is null then
    raise exception 'sign in required' using errcode = '42501';
  end if;
  if ota_check_update.device_id is null then
    perform private.invalid('device_id', 'is required');
  end if;
  if not coalesce(private.semver_ok(ota_check_update.current_version), false) then
    perform private.invalid('current_version', 'must be a semantic version such as 1.0.23');
  end if;
  select * into d from public.devices x where x.id = ota_check_update.device_id;
  if d.id is null or d.owner_id <> uid then
    raise exception 'device_id: device not found' using errcode = 'P0002', detail = 'device_id';
  end if;
  select p.is_active into owner_active from public.profiles p where p.id = uid;
  if not owner_active then
    raise exception 'this account is deactivated' using errcode = '42501';
  end if;
  code := private.version_code_of(d.model, ota_check_update.current_version);
  -- What a check writes is bookkeeping a device rebuilds by checking again (the offer is deterministic), so it
  -- need not wait for the WAL flush: a crash loses at most the last moments of check-ins, never a report.
  perform set_config('synchronous_commit', 'off', true);

  select r.id as rollout_id, r.current_stage, r.is_downgrade, f.* into best
    from private.offering_rollouts() r
    join public.firmware_versions f on f.id = r.firmware_version_id and f.status = 'published'
   where private.rollout_selects(r, f.version_code, d, code)
     and (f.min_version_code is null or code >= f.min_version_code)
     and (cardinality(f.hardware_revisions) = 0 or lower(d.hardware_revision) = any (f.hardware_revisions))
   order by r.is_downgrade desc, f.version_code desc
   limit 1;

  if best.rollout_id is null then
    -- a required update this device cannot take directly, because it is below that version's minimum
    select f.version, f.min_version_code into blocked
      from private.offering_rollouts() r
      join public.firmware_versions f on f.id = r.firmware_version_id and f.status = 'published'
     where f.is_required and f.min_version_code is not null and code < f.min_version_code
       and private.rollout_selects(r, f.version_code, d, code)
     order by f.version_code desc limit 1;
  end if;

  select * into st from public.device_firmware_status s where s.device_id = d.id for update;
  had_status := found;
  if not had_status then
    st.device_id := d.id;
    st.phase := 'idle';
    st.attempts := 0;
  end if;

  -- a check reporting the version it was updating to confirms the update
  if st.target_version_id is not null and (st.phase <> 'succeeded' or st.verified_at is null)
     and exists (select 1 from public.firmware_versions f where f.id = st.target_version_id
                   and f.version = ota_check_update.current_version) then
    confirmed := st.phase <> 'succeeded';
    if confirmed then
      insert into public.firmware_update_history (device_id, rollout_id, firmware_version_id, from_version, to_version,
                                                  phase, reported_by, reported_at)
      values (d.id, st.rollout_id, st.target_version_id, st.current_version, ota_check_update.current_version,
              'succeeded', uid, at);
      st.phase := 'succeeded';
      st.phase_at := at;
    end if;
    st.verified_at := at;
  end if;

  if best.rollout_id is not null
     and (st.rollout_id is distinct from best.rollout_id or st.target_version_id is distinct from best.id
          or st.phase in ('idle', 'succeeded', 'cancelled')) then
    new_offer := true;
    st.rollout_id := best.rollout_id;
    st.target_version_id := best.id;
    st.stage := best.current_stage;
    st.phase := 'offered';
    st.phase_at := at;
    st.attempts := 0;
    st.error_code := null;
    st.error_message := null;
    st.verified_at := null;
    insert into public.firmware_update_history (device_id, rollout_id, firmware_version_id, from_version, to_version,
                                                phase, reported_by, reported_at)
    values (d.id, best.rollout_id, best.id, ota_check_update.current_version, best.version, 'offered', uid, at);
  end if;
  st.current_version := ota_check_update.current_version;
  st.current_version_code := code;
  st.last_check_at := at;
  st.phase_at := coalesce(st.phase_at, at);

  if had_status then
    update public.device_firmware_status s
       set current_version = st.current_version, current_version_code = st.current_version_code,
           last_check_at = st.last_check_at, rollout_id = st.rollout_id, target_version_id = st.target_version_id,
           stage = st.stage, phase = st.phase, phase_at = st.phase_at, attempts = st.attempts,
           error_code = st.error_code, error_message = st.error_message, verified_at = st.verified_at
     where s.device_id = d.id;
  else
    insert into public.device_firmware_status (device_id, current_version, current_version_code, last_check_at,
      rollout_id, target_version_id, stage, phase, phase_at, attempts, error_code, error_message, verified_at)
    values (d.id, st.current_version, st.current_version_code, st.last_check_at, st.rollout_id, st.target_version_id,
            st.stage, st.phase, st.phase_at, st.attempts, st.error_code, st.error_message, st.verified_at);
  end if;
  if d.firmware_version is distinct from ota_check_update.current_version then
    update public.devices x set firmware_version = ota_check_update.current_version where x.id = d.id;
  end if;

  if best.rollout_id is null then
    return jsonb_strip_nulls(jsonb_build_object(
      'update_available', false,
      'current_version_code', code,
      'below_minimum', case when blocked.version is not null then
          jsonb_build_object('version', blocked.version, 'min_version_code', blocked.min_version_code) end));
  end if;
  return jsonb_build_object(
    'update_available', true,
    'rollout_id', best.rollout_id,
    'firmware_id', best.id,
    'version', best.version,
    'version_code', best.version_code,
    'size_bytes', best.size_bytes,
    'sha256', best.sha256,
    'changelog', best.changelog,
    'required', best.is_required,
    'is_downgrade', best.is_downgrade,
    'storage_path', best.storage_path,
    'bucket', 'firmware-binaries',
    'current_version_code', code);
end
$$;
revoke all on function public.ota_check_update(uuid, text) from public;
grant execute on function public.ota_check_update(uuid, text) to authenticated;

-- ---------------------------------------------------------------------------------------- status reports

create function private.ota_transition_ok(from_phase text, to_phase text) returns boolean
language sql immutable
as $$
  select case from_phase
    when 'offered' then to_phase in ('downloading', 'transferring', 'installing', 'succeeded', 'failed', 'cancelled')
    when 'downloading' then to_phase in ('transferring', 'failed', 'cancelled')
    when 'transferring' then to_phase in ('installing', 'succeeded', 'failed', 'cancelled')
    when 'installing' then to_phase in ('succeeded', 'failed')
    when 'failed' then to_phase in ('downloading', 'transferring', 'cancelled')
    when 'timed_out' then to_phase in ('downloading', 'transferring', 'installing', 'succeeded', 'failed', 'cancelled')
    when 'cancelled' then to_phase in ('downloading', 'transferring')
    else false
  end
$$;

create function public.ota_report_status(device_id uuid, rollout_id uuid, phase text, error_code integer default null,
                                         error_message text default null) returns public.device_firmware_status
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  d public.devices;
  st public.device_firmware_status;
  f public.firmware_versions;
  at timestamptz := private.clock();
begin
  if ota_report_status.phase is null or ota_report_status.phase not in
     ('downloading', 'transferring', 'installing', 'succeeded', 'failed', 'cancelled') then
    perform private.invalid('phase', 'must be one of downloading, transferring, installing, succeeded, failed, cancelled');
  end if;
  if ota_report_status.error_code is not null and ota_report_status.error_code not between 0 and 255 then
    perform private.invalid('error_code', 'must be between 0 and 255');
  end if;
  if ota_report_status.error_message is not null and char_length(ota_report_status.error_message) > 500 then
    perform private.invalid('error_message', 'must be at most 500 characters');
  end if;
  if ota_report_status.phase = 'failed' and ota_report_status.error_code is null then
    perform private.invalid('error_code', 'is required when phase is failed');
  end if;
  select * into d from public.devices x where x.id = ota_report_status.device_id;
  if not found or d.owner_id <> uid then
    raise exception 'device_id: device not found' using errcode = 'P0002', detail = 'device_id';
  end if;
  select * into st from public.device_firmware_status s where s.device_id = d.id for update;
  if not found or st.rollout_id is distinct from ota_report_status.rollout_id then
    raise exception 'rollout_id: no update of this rollout was offered to this device; call ota_check_update first'
      using errcode = 'P0001', detail = 'rollout_id';
  end if;
  if st.phase = ota_report_status.phase then
    return st;  -- a repeated report changes nothing
  end if;
  if not private.ota_transition_ok(st.phase, ota_report_status.phase) then
    raise exception 'phase: cannot go from % to %', st.phase, ota_report_status.phase
      using errcode = 'P0001', detail = 'phase';
  end if;
  select * into f from public.firmware_versions x where x.id = st.target_version_id;
  insert into public.firmware_update_history (device_id, rollout_id, firmware_version_id, from_version, to_version,
                                              phase, error_code, error_message, reported_by, reported_at)
  values (d.id, st.rollout_id, f.id, st.current_version, f.version, ota_report_status.phase,
          ota_report_status.error_code, ota_report_status.error_message, uid, at);
  update public.device_firmware_status s
     set phase = ota_report_status.phase, phase_at = at,
         attempts = s.attempts + case when ota_report_status.phase in ('downloading', 'transferring')
                                       and st.phase in ('offered', 'failed', 'timed_out', 'cancelled') then 1 else 0 end,
         error_code = case when ota_report_status.phase = 'failed' then ota_report_status.error_code end,
         error_message = case when ota_report_status.phase = 'failed' then ota_report_status.error_message end,
         current_version = case when ota_report_status.phase = 'succeeded' then f.version else s.current_version end,
         current_version_code = case when ota_report_status.phase = 'succeeded' then f.version_code
                                     else s.current_version_code end
   where s.device_id = d.id
  returning * into st;
  if ota_report_status.phase = 'succeeded' then
    update public.devices x set firmware_version = f.version where x.id = d.id;
  end if;
  return st;
end
$$;
revoke all on function public.ota_report_status(uuid, uuid, text, integer, text) from public;
grant execute on function public.ota_report_status(uuid, uuid, text, integer, text) to authenticated;

-- ---------------------------------------------------------------------------------------- evaluation

-- One evaluation of every active rollout: expire in-progress devices past the timeout (they count as
-- failures), then per rollout pause it when the failure rate crosses its threshold (with enough executed
-- devices), or advance / complete it when the stage has soaked, enough devices have executed and the
-- success rate is reached. Returns what it did. Counts are over the devices offered by the rollout so far.
create function private.evaluate_rollouts() returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.clock();
  r record;
  actions jsonb := '[]'::jsonb;
  executed bigint;
  fail_pct numeric;
  ok_pct numeric;
  soak int;
  last_stage int;
  counts jsonb;
begin
  with expired as (
    update public.device_firmware_status s
       set phase = 'timed_out', phase_at = at
      from public.firmware_rollouts ro
     where ro.status = 'active' and s.rollout_id = ro.id
       and s.phase in ('downloading', 'transferring', 'installing')  -- an offer nobody started is not a failure
       and s.phase_at < at - make_interval(mins => ro.in_progress_timeout_minutes)
    returning s.device_id, s.rollout_id, s.target_version_id, s.current_version
  )
  insert into public.firmware_update_history (device_id, rollout_id, firmware_version_id, from_version, to_version, phase,
                                              reported_at)
  select e.device_id, e.rollout_id, e.target_version_id, e.current_version, f.version, 'timed_out', at
    from expired e join public.firmware_versions f on f.id = e.target_version_id;

  perform private.fold_rollout_counts();
  select coalesce(jsonb_object_agg(c.rollout_id || ':' || c.phase, c.devices), '{}'::jsonb) into counts
    from private.rollout_phase_counts c
   where c.rollout_id in (select id from public.firmware_rollouts where status = 'active');

  for r in
    select ro.*, coalesce((counts ->> (ro.id || ':succeeded'))::bigint, 0) as succeeded,
           coalesce((counts ->> (ro.id || ':failed'))::bigint, 0) as failed,
           coalesce((counts ->> (ro.id || ':timed_out'))::bigint, 0) as timed_out
      from public.firmware_rollouts ro
     where ro.status = 'active'
     for update
  loop
    executed := r.succeeded + r.failed + r.timed_out;
    fail_pct := case when executed > 0 then 100.0 * (r.failed + r.timed_out) / executed else 0 end;
    ok_pct := case when executed > 0 then 100.0 * r.succeeded / executed else 0 end;
    soak := (r.stages -> r.current_stage ->> 'soak_minutes')::int;
    last_stage := jsonb_array_length(r.stages) - 1;
    if executed >= r.min_sample_size and fail_pct > r.failure_threshold then
      update public.firmware_rollouts x
         set status = 'paused',
             status_reason = format('paused automatically: %s%% of %s executed updates failed (threshold %s%%)',
                                    round(fail_pct, 1), executed, r.failure_threshold)
       where x.id = r.id;
      perform private.write_audit('rollout.auto_paused', 'rollout', r.id::text,
        jsonb_build_object('stage', r.current_stage, 'failed', r.failed, 'timed_out', r.timed_out,
                           'succeeded', r.succeeded, 'failure_pct', round(fail_pct, 2)));
      insert into public.notifications (user_id, kind, title, body, data, dedupe_key)
      select p.id, 'rollout_paused', 'Rollout paused: ' || r.name,
             format('%s%% of %s executed updates failed at stage %s.', round(fail_pct, 1), executed, r.current_stage + 1),
             jsonb_build_object('rollout_id', r.id, 'stage', r.current_stage),
             'rollout_paused:' || r.id || ':' || r.current_stage || ':' || executed
        from public.profiles p where p.role = 'admin' and p.is_active
      on conflict (user_id, dedupe_key) do nothing;
      actions := actions || jsonb_build_object('rollout_id', r.id, 'action', 'paused', 'failure_pct', round(fail_pct, 2));
    elsif r.stage_started_at + make_interval(mins => soak) <= at
          and executed >= r.min_sample_size and ok_pct >= r.success_threshold then
      if r.current_stage >= last_stage then
        update public.firmware_rollouts x set status = 'completed', finished_at = at,
               status_reason = 'completed automatically' where x.id = r.id;
        perform private.write_audit('rollout.completed', 'rollout', r.id::text,
          jsonb_build_object('succeeded', r.succeeded, 'executed', executed));
        actions := actions || jsonb_build_object('rollout_id', r.id, 'action', 'completed');
      else
        update public.firmware_rollouts x set current_stage = r.current_stage + 1, stage_started_at = at
         where x.id = r.id;
        perform private.write_audit('rollout.advanced', 'rollout', r.id::text,
          jsonb_build_object('from_stage', r.current_stage, 'to_stage', r.current_stage + 1,
                             'percent', (r.stages -> (r.current_stage + 1) ->> 'percent')::int, 'automatic', true));
        actions := actions || jsonb_build_object('rollout_id', r.id, 'action', 'advanced', 'stage', r.current_stage + 1);
      end if;
    end if;
  end loop;
  return jsonb_build_object('evaluated_at', at, 'actions', actions);
end
$$;
revoke all on function private.evaluate_rollouts() from public;

-- ---------------------------------------------------------------------------------------- admin RPCs

create function public.admin_create_rollout(
  firmware_id uuid, name text, strategy text,
  stages jsonb default '[{"percent": 100, "soak_minutes": 0}]',
  device_ids uuid[] default '{}', beta_tags text[] default '{}', target_hardware_revisions text[] default '{}',
  min_current_version_code integer default null, success_threshold numeric default 95,
  failure_threshold numeric default 5, min_sample_size integer default 10,
  in_progress_timeout_minutes integer default 120, is_downgrade boolean default false
) returns public.firmware_rollouts
language plpgsql security definer
set search_path = ''
as $$
declare
  f public.firmware_versions;
  r public.firmware_rollouts;
begin
  perform private.require_admin();
  select * into f from public.firmware_versions x where x.id = admin_create_rollout.firmware_id;
  if not found then
    raise exception 'firmware_id: firmware version not found' using errcode = 'P0002', detail = 'firmware_id';
  end if;
  if f.status <> 'published' then
    perform private.invalid('firmware_id', 'only a published version can be rolled out');
  end if;
  if admin_create_rollout.strategy is null or admin_create_rollout.strategy not in ('all_at_once', 'staged', 'manual', 'beta') then
    perform private.invalid('strategy', 'must be all_at_once, staged, manual or beta');
  end if;
  if not coalesce(private.valid_stages(admin_create_rollout.stages), false) then
    perform private.invalid('stages', 'must be 1-10 stages {"percent", "soak_minutes"} with increasing percents ending at 100');
  end if;
  if admin_create_rollout.strategy <> 'staged' and jsonb_array_length(admin_create_rollout.stages) <> 1 then
    perform private.invalid('stages', 'only a staged rollout has more than one stage');
  end if;
  if admin_create_rollout.strategy = 'manual' and cardinality(coalesce(admin_create_rollout.device_ids, '{}')) = 0 then
    perform private.invalid('device_ids', 'a manual rollout needs at least one device');
  end if;
  if admin_create_rollout.is_downgrade and not exists (
       select 1 from public.firmware_versions n where n.model = f.model and n.version_code > f.version_code) then
    perform private.invalid('is_downgrade', 'a downgrade targets a version older than another registered one');
  end if;
  if admin_create_rollout.failure_threshold not between 0 and 100 or admin_create_rollout.success_threshold not between 0 and 100 then
    perform private.invalid('failure_threshold', 'thresholds are percentages between 0 and 100');
  end if;
  insert into public.firmware_rollouts (firmware_version_id, name, strategy, stages, model, channel, device_ids, beta_tags,
    target_hardware_revisions, min_current_version_code, success_threshold, failure_threshold, min_sample_size,
    in_progress_timeout_minutes, is_downgrade)
  values (f.id, btrim(admin_create_rollout.name), admin_create_rollout.strategy, admin_create_rollout.stages, f.model,
          f.channel, coalesce(admin_create_rollout.device_ids, '{}'), coalesce(admin_create_rollout.beta_tags, '{}'),
          coalesce(admin_create_rollout.target_hardware_revisions, '{}'), admin_create_rollout.min_current_version_code,
          admin_create_rollout.success_threshold, admin_create_rollout.failure_threshold,
          admin_create_rollout.min_sample_size, admin_create_rollout.in_progress_timeout_minutes,
          admin_create_rollout.is_downgrade)
  returning * into r;
  perform private.write_audit('rollout.created', 'rollout', r.id::text,
    jsonb_build_object('version', f.version, 'strategy', r.strategy, 'stages', r.stages, 'is_downgrade', r.is_downgrade));
  return r;
end
$$;

-- The state machine: draft -> active <-> paused -> completed | aborted (draft may be aborted too).
create function private.move_rollout(rollout_id uuid, action text, reason text) returns public.firmware_rollouts
language plpgsql security definer
set search_path = ''
as $$
declare
  r public.firmware_rollouts;
  at timestamptz := private.clock();
  last_stage int;
begin
  perform private.require_admin();
  if reason is not null and char_length(reason) > 500 then
    perform private.invalid('reason', 'must be at most 500 characters');
  end if;
  select * into r from public.firmware_rollouts x where x.id = move_rollout.rollout_id for update;
  if not found then
    raise exception 'rollout not found' using errcode = 'P0002';
  end if;
  last_stage := jsonb_array_length(r.stages) - 1;
  if action = 'start' and r.status = 'draft' then
    if exists (select 1 from public.firmware_rollouts x where x.model = r.model and x.channel = r.channel
                 and x.status in ('active', 'paused')) then
      raise exception 'another rollout of % (%) is active or paused; complete or abort it first', r.model, r.channel
        using errcode = '23505';
    end if;
    update public.firmware_rollouts x set status = 'active', started_at = at, stage_started_at = at, status_reason = reason
     where x.id = r.id returning * into r;
  elsif action = 'pause' and r.status = 'active' then
    update public.firmware_rollouts x set status = 'paused', status_reason = reason where x.id = r.id returning * into r;
  elsif action = 'resume' and r.status = 'paused' then
    update public.firmware_rollouts x set status = 'active', status_reason = reason, stage_started_at = at
     where x.id = r.id returning * into r;
  elsif action = 'abort' and r.status in ('draft', 'active', 'paused') then
    update public.firmware_rollouts x set status = 'aborted', finished_at = at, status_reason = reason,
           started_at = coalesce(x.started_at, at)
     where x.id = r.id returning * into r;
  elsif action = 'advance' and r.status in ('active', 'paused') then
    if r.current_stage >= last_stage then
      update public.firmware_rollouts x set status = 'completed', finished_at = at, status_reason = reason
       where x.id = r.id returning * into r;
    else
      update public.firmware_rollouts x set current_stage = r.current_stage + 1, stage_started_at = at,
             status_reason = reason where x.id = r.id returning * into r;
    end if;
  else
    raise exception 'cannot % a rollout that is %', action, r.status using errcode = 'P0001';
  end if;
  perform private.write_audit('rollout.' || action, 'rollout', r.id::text,
    jsonb_build_object('status', r.status, 'stage', r.current_stage, 'reason', reason));
  return r;
end
$$;
revoke all on function private.move_rollout(uuid, text, text) from public;

create function public.admin_start_rollout(rollout_id uuid, reason text default null) returns public.firmware_rollouts
language sql security definer set search_path = '' as $$ select private.move_rollout(rollout_id, 'start', reason) $$;
create function public.admin_pause_rollout(rollout_id uuid, reason text default null) returns public.firmware_rollouts
language sql security definer set search_path = '' as $$ select private.move_rollout(rollout_id, 'pause', reason) $$;
create function public.admin_resume_rollout(rollout_id uuid, reason text default null) returns public.firmware_rollouts
language sql security definer set search_path = '' as $$ select private.move_rollout(rollout_id, 'resume', reason) $$;
create function public.admin_abort_rollout(rollout_id uuid, reason text default null) returns public.firmware_rollouts
language sql security definer set search_path = '' as $$ select private.move_rollout(rollout_id, 'abort', reason) $$;
create function public.admin_advance_rollout(rollout_id uuid, reason text default null) returns public.firmware_rollouts
language sql security definer set search_path = '' as $$ select private.move_rollout(rollout_id, 'advance', reason) $$;

-- Devices per version; per rollout, its state and the devices per stage and phase.
create function public.admin_fleet_overview() returns jsonb
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.require_admin();
  return jsonb_build_object(
    'devices_by_version', coalesce((
      select jsonb_object_agg(v, n) from (
        select coalesce(firmware_version, 'unknown') as v, count(*) as n from public.devices
         where is_active group by 1) x), '{}'::jsonb),
    'rollouts', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', r.id, 'name', r.name, 'version', f.version, 'status', r.status, 'strategy', r.strategy,
               'current_stage', r.current_stage,
               'percent', (r.stages -> r.current_stage ->> 'percent')::int,
               'status_reason', r.status_reason,
               'phases', coalesce((select jsonb_object_agg(p.phase, p.n) from (
                   select s.phase, count(*) as n from public.device_firmware_status s
                    where s.rollout_id = r.id group by s.phase) p), '{}'::jsonb),
               'stages', coalesce((select jsonb_object_agg(g.stage, g.phases) from (
                   select s.stage, jsonb_object_agg(s.phase, s.n) as phases from (
                     select s2.stage, s2.phase, count(*) as n from public.device_firmware_status s2
                      where s2.rollout_id = r.id group by s2.stage, s2.phase) s group by s.stage) g), '{}'::jsonb))
             order by r.created_at desc)
        from public.firmware_rollouts r join public.firmware_versions f on f.id = r.firmware_version_id
       where r.status in ('draft', 'active', 'paused') or r.finished_at > now() - interval '90 days'), '[]'::jsonb));
end
$$;

revoke all on function public.admin_create_rollout(uuid, text, text, jsonb, uuid[], text[], text[], integer, numeric, numeric, integer, integer, boolean) from public;
revoke all on function public.admin_start_rollout(uuid, text), public.admin_pause_rollout(uuid, text),
  public.admin_resume_rollout(uuid, text), public.admin_abort_rollout(uuid, text),
  public.admin_advance_rollout(uuid, text), public.admin_fleet_overview() from public;
grant execute on function public.admin_create_rollout(uuid, text, text, jsonb, uuid[], text[], text[], integer, numeric, numeric, integer, integer, boolean)
  to authenticated, service_role;
grant execute on function public.admin_start_rollout(uuid, text), public.admin_pause_rollout(uuid, text),
  public.admin_resume_rollout(uuid, text), public.admin_abort_rollout(uuid, text),
  public.admin_advance_rollout(uuid, text), public.admin_fleet_overview() to authenticated, service_role;
