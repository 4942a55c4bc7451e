-- ota_check_update reads its offers from a small table kept by triggers, instead of evaluating
-- "which rollouts may offer" (active, or completed and not superseded, joined with their published firmware)
-- in every device's check. That set changes only when an admin or the rollout engine changes a rollout or a
-- firmware row; checks happen all day from every device. Same answers as before (tests/db/test_ota_*.py);
-- the checks/s figure is tests/bench/ota_check.py.
--
-- private.rollout_offers holds one row per offering rollout with what a check needs of it and of its
-- firmware. It is rebuilt whole (a handful of rows) by a DEFERRED constraint trigger, i.e. at the commit of
-- any transaction that changed firmware_rollouts or firmware_versions, under a transaction-level advisory
-- lock: the last transaction to commit rebuilds from a snapshot that sees every earlier commit, and taking the
-- lock only at commit, when the transaction takes no more row locks, cannot deadlock with another admin
-- change. (A REPEATABLE READ transaction would rebuild from its own older snapshot; every writer of these
-- tables, the RPCs through PostgREST and the worker, runs READ COMMITTED.)

create table private.rollout_offers (
  rollout_id uuid primary key references public.firmware_rollouts (id) on delete cascade,
  model text not null,
  channel text not null check (channel in ('stable', 'beta')),
  strategy text not null check (strategy in ('all_at_once', 'staged', 'manual', 'beta')),
  current_stage integer not null check (current_stage >= 0),
  stage_percent integer not null check (stage_percent between 1 and 100),
  device_ids uuid[] not null,
  beta_tags text[] not null,
  target_hardware_revisions text[] not null,
  min_current_version_code integer,
  is_downgrade boolean not null,
  firmware_id uuid not null references public.firmware_versions (id) on delete cascade,
  version text not null,
  version_code integer not null,
  min_version_code integer,
  hardware_revisions text[] not null,
  is_required boolean not null,
  size_bytes integer not null,
  sha256 text not null,
  changelog text not null,
  storage_path text not null
);
create index rollout_offers_model_idx on private.rollout_offers (model);
revoke all on private.rollout_offers from public;
comment on table private.rollout_offers is
  'The rollouts that may offer their firmware now, with the firmware''s fields: derived from firmware_rollouts '
  'and firmware_versions by private.rebuild_rollout_offers(); never written otherwise.';

create function private.rebuild_rollout_offers() returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  perform pg_advisory_xact_lock(hashtext('private.rollout_offers'));
  delete from private.rollout_offers;
  insert into private.rollout_offers
  select r.id, r.model, r.channel, r.strategy, r.current_stage, (r.stages -> r.current_stage ->> 'percent')::int,
         r.device_ids, r.beta_tags, r.target_hardware_revisions, r.min_current_version_code, r.is_downgrade,
         f.id, f.version, f.version_code, f.min_version_code, f.hardware_revisions, f.is_required, f.size_bytes,
         f.sha256, f.changelog, f.storage_path
    from private.offering_rollouts() r
    join public.firmware_versions f on f.id = r.firmware_version_id and f.status = 'published';
end
$$;
revoke all on function private.rebuild_rollout_offers() from public;

create function private.rollout_offers_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.rebuild_rollout_offers();
  return null;
end
$$;
revoke all on function private.rollout_offers_changed() from public;

create constraint trigger firmware_rollouts_offers after insert or update or delete on public.firmware_rollouts
  deferrable initially deferred for each row execute function private.rollout_offers_changed();
create constraint trigger firmware_versions_offers after insert or update or delete on public.firmware_versions
  deferrable initially deferred for each row execute function private.rollout_offers_changed();
-- TRUNCATE has no row triggers (and cannot be deferred): rebuild at once
create trigger firmware_rollouts_offers_truncate after truncate on public.firmware_rollouts
  for each statement execute function private.rollout_offers_changed();
create trigger firmware_versions_offers_truncate after truncate on public.firmware_versions
  for each statement execute function private.rollout_offers_changed();

select private.rebuild_rollout_offers();

create or replace function public.ota_check_update(device_id uuid, current_version text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
-- Hot path (every device checks in): one read of device and owner, one of the offers, one of the status row;
-- at most one write of the status row and one history row.
declare
  uid uuid := auth.uid();
  d record;
  code integer;
  st public.device_firmware_status;
  had_status boolean;
  o private.rollout_offers;
  best private.rollout_offers;
  blocked_version text;
  blocked_min_code integer;
  blocked_code integer;
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
  select x.id, x.owner_id, x.model, x.hardware_revision, x.firmware_version, x.is_active, x.is_beta, x.tags,
         p.is_active as owner_active
    into d
    from public.devices x left join public.profiles p on p.id = x.owner_id
   where x.id = ota_check_update.device_id;
  if d.id is null or d.owner_id <> uid then
    raise exception 'device_id: device not found' using errcode = 'P0002', detail = 'device_id';
  end if;
  if not coalesce(d.owner_active, false) then
    raise exception 'this account is deactivated' using errcode = '42501';
  end if;
  code := private.version_code_of(d.model, ota_check_update.current_version);
  -- What a check writes is bookkeeping a device rebuilds by checking again (the offer is deterministic), so it
  -- need not wait for the WAL flush: a crash loses at most the last moments of check-ins, never a report.
  perform set_config('synchronous_commit', 'off', true);

  -- The offers that select this device (the rules of private.rollout_selects), best first. The best one the
  -- firmware's own constraints allow is the offer; failing that, the newest required version the device is
  -- below the minimum of is reported.
  for o in
    select x.* from private.rollout_offers x
     where x.model = d.model
       and d.is_active
       and (cardinality(x.target_hardware_revisions) = 0 or lower(d.hardware_revision) = any (x.target_hardware_revisions))
       and (x.min_current_version_code is null or code >= x.min_current_version_code)
       and (x.channel = 'stable' or d.is_beta or d.tags && x.beta_tags)
       and case when x.is_downgrade then code > x.version_code else code < x.version_code end
       and case x.strategy
             when 'all_at_once' then true
             when 'manual' then d.id = any (x.device_ids)
             when 'beta' then d.is_beta or d.tags && x.beta_tags
             else private.rollout_bucket(x.rollout_id, d.id) < 100 * x.stage_percent
           end
     order by x.is_downgrade desc, x.version_code desc
  loop
    if (o.min_version_code is null or code >= o.min_version_code)
       and (cardinality(o.hardware_revisions) = 0 or lower(d.hardware_revision) = any (o.hardware_revisions)) then
      best := o;
      exit;
    end if;
    if o.is_required and o.min_version_code is not null and code < o.min_version_code
       and (blocked_code is null or o.version_code > blocked_code) then
      blocked_version := o.version;
      blocked_min_code := o.min_version_code;
      blocked_code := o.version_code;
    end if;
  end loop;
  if best.rollout_id is not null then
    blocked_version := null;
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
     and (st.rollout_id is distinct from best.rollout_id or st.target_version_id is distinct from best.firmware_id
          or st.phase in ('idle', 'succeeded', 'cancelled')) then
    new_offer := true;
    st.rollout_id := best.rollout_id;
    st.target_version_id := best.firmware_id;
    st.stage := best.current_stage;
    st.phase := 'offered';
    st.phase_at := at;
    st.attempts := 0;
    st.error_code := null;
    st.error_message := null;
    st.verified_at := null;
    insert into public.firmware_update_history (device_id, rollout_id, firmware_version_id, from_version, to_version,
                                                phase, reported_by, reported_at)
    values (d.id, best.rollout_id, best.firmware_id, ota_check_update.current_version, best.version, 'offered', uid, at);
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
      'below_minimum', case when blocked_version is not null then
          jsonb_build_object('version', blocked_version, 'min_version_code', blocked_min_code) end));
  end if;
  return jsonb_build_object(
    'update_available', true,
    'rollout_id', best.rollout_id,
    'firmware_id', best.firmware_id,
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
