-- The rollout engine decides per stage, as specified: a stage advances when the devices offered *at that
-- stage* reach the sample size and the success rate (before, the counts were over every device the rollout had
-- offered, so after a good first stage every later stage could advance on the earlier stages' results alone,
-- before any of its own devices had reported). The failure threshold pauses on the current stage's rate, or on
-- the whole rollout's (a late wave of failures among an earlier stage's devices). A stage that selects fewer
-- devices than min_sample_size waits for an admin to advance it, as the first stage always did.
--
-- The counters gain the stage: device_firmware_status.stage is the stage the device was offered at, and the
-- deltas and folded counts are now per (rollout, stage, phase). The counts are rebuilt from the status rows.

-- (held to the end of the migration's transaction: no status change slips between the rebuild and the new trigger)
do $$
begin
  lock table public.device_firmware_status, private.rollout_phase_deltas, private.rollout_phase_counts
    in share row exclusive mode;
end
$$;

alter table private.rollout_phase_deltas add column stage integer not null default 0 check (stage >= 0);
alter table private.rollout_phase_deltas alter column stage drop default;
delete from private.rollout_phase_deltas;

alter table private.rollout_phase_counts drop constraint rollout_phase_counts_pkey;
delete from private.rollout_phase_counts;
alter table private.rollout_phase_counts add column stage integer not null check (stage >= 0);
alter table private.rollout_phase_counts add primary key (rollout_id, stage, phase);
insert into private.rollout_phase_counts (rollout_id, stage, phase, devices)
select s.rollout_id, coalesce(s.stage, 0), s.phase, count(*)
  from public.device_firmware_status s
 where s.rollout_id is not null and exists (select 1 from public.firmware_rollouts r where r.id = s.rollout_id)
 group by 1, 2, 3;

create or replace function private.status_delta() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.rollout_id is not null then
    insert into private.rollout_phase_deltas (rollout_id, stage, phase, delta)
    values (old.rollout_id, coalesce(old.stage, 0), old.phase, -1);
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.rollout_id is not null then
    insert into private.rollout_phase_deltas (rollout_id, stage, phase, delta)
    values (new.rollout_id, coalesce(new.stage, 0), new.phase, 1);
  end if;
  return null;
end
$$;
drop trigger device_firmware_status_delta_upd on public.device_firmware_status;
create trigger device_firmware_status_delta_upd after update of rollout_id, phase, stage on public.device_firmware_status
  for each row when ((old.rollout_id, old.phase, old.stage) is distinct from (new.rollout_id, new.phase, new.stage))
  execute function private.status_delta();

create or replace function private.fold_rollout_counts() returns void
language sql
set search_path = ''
as $$
  with moved as (delete from private.rollout_phase_deltas returning rollout_id, stage, phase, delta)
  insert into private.rollout_phase_counts as c (rollout_id, stage, phase, devices)
  select m.rollout_id, m.stage, m.phase, sum(m.delta) from moved m
   where exists (select 1 from public.firmware_rollouts r where r.id = m.rollout_id)
   group by 1, 2, 3
  on conflict (rollout_id, stage, phase) do update set devices = c.devices + excluded.devices
$$;

-- One evaluation of every active rollout: expire in-progress devices past the timeout (they count as
-- failures), then per rollout pause it when a failure rate crosses its threshold (with enough executed
-- devices), or advance / complete it when the stage has soaked and enough of the stage's devices have executed
-- at the success rate. Returns what it did.
create or replace function private.evaluate_rollouts() returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.clock();
  r record;
  actions jsonb := '[]'::jsonb;
  executed bigint;
  stage_executed bigint;
  stage_fail_pct numeric;
  stage_ok_pct numeric;
  total_fail_pct numeric;
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
  -- per rollout and phase ("<id>:<phase>") and per rollout, stage and phase ("<id>:<stage>:<phase>")
  select coalesce(jsonb_object_agg(k.key, k.devices), '{}'::jsonb) into counts
    from (select c.rollout_id || ':' || c.phase as key, sum(c.devices) as devices
            from private.rollout_phase_counts c
           where c.rollout_id in (select id from public.firmware_rollouts where status = 'active')
           group by c.rollout_id, c.phase
          union all
          select c.rollout_id || ':' || c.stage || ':' || c.phase, c.devices
            from private.rollout_phase_counts c
           where c.rollout_id in (select id from public.firmware_rollouts where status = 'active')) k;

  for r in
    select ro.*, coalesce((counts ->> (ro.id || ':succeeded'))::bigint, 0) as succeeded,
           coalesce((counts ->> (ro.id || ':failed'))::bigint, 0) as failed,
           coalesce((counts ->> (ro.id || ':timed_out'))::bigint, 0) as timed_out,
           coalesce((counts ->> (ro.id || ':' || ro.current_stage || ':succeeded'))::bigint, 0) as stage_succeeded,
           coalesce((counts ->> (ro.id || ':' || ro.current_stage || ':failed'))::bigint, 0) as stage_failed,
           coalesce((counts ->> (ro.id || ':' || ro.current_stage || ':timed_out'))::bigint, 0) as stage_timed_out
      from public.firmware_rollouts ro
     where ro.status = 'active'
     for update
  loop
    -- the current stage decides on its own devices (those offered at this stage); the whole rollout's failure
    -- rate can pause it too (a late wave of failures among an earlier stage's devices)
    stage_executed := r.stage_succeeded + r.stage_failed + r.stage_timed_out;
    stage_fail_pct := case when stage_executed > 0
                           then 100.0 * (r.stage_failed + r.stage_timed_out) / stage_executed else 0 end;
    stage_ok_pct := case when stage_executed > 0 then 100.0 * r.stage_succeeded / stage_executed else 0 end;
    executed := r.succeeded + r.failed + r.timed_out;
    total_fail_pct := case when executed > 0 then 100.0 * (r.failed + r.timed_out) / executed else 0 end;
    if stage_executed >= r.min_sample_size and stage_fail_pct > r.failure_threshold then
      fail_pct := stage_fail_pct;
      executed := stage_executed;
    else
      fail_pct := total_fail_pct;
    end if;
    ok_pct := stage_ok_pct;
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
          and stage_executed >= r.min_sample_size and ok_pct >= r.success_threshold then
      if r.current_stage >= last_stage then
        update public.firmware_rollouts x set status = 'completed', finished_at = at,
               status_reason = 'completed automatically' where x.id = r.id;
        perform private.write_audit('rollout.completed', 'rollout', r.id::text,
          jsonb_build_object('succeeded', r.succeeded, 'executed', r.succeeded + r.failed + r.timed_out));
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

