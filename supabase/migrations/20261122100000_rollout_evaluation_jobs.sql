-- The rollout engine runs as a worker job: `rollouts.evaluate` calls private.evaluate_rollouts(). It is
-- enqueued in the same transaction as every device status report and every rollout state change, and every
-- minute by the worker's schedule (key `rollouts.evaluate:<minute>`, see workers/dtx_worker/schedules.py).
--
-- Reports enqueue without a dedupe key, and only when no evaluation is *queued*: a queued one will see this
-- change, a running one may not. So a burst of reports makes about one job at a time, and a report that
-- arrives while an evaluation runs gets the next one. (Two concurrent reports may both enqueue; evaluations
-- are idempotent.)

create index jobs_queued_kind_idx on public.jobs (kind) where status = 'queued';

create function private.enqueue_rollout_evaluation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.jobs j where j.kind = 'rollouts.evaluate' and j.status = 'queued') then
    perform private.enqueue_job('rollouts.evaluate', '{}'::jsonb, null);
  end if;
  return null;
end
$$;
revoke all on function private.enqueue_rollout_evaluation() from public;

create trigger firmware_update_history_evaluate after insert on public.firmware_update_history
  for each statement execute function private.enqueue_rollout_evaluation();
create trigger firmware_rollouts_evaluate after insert or update of status, current_stage on public.firmware_rollouts
  for each statement execute function private.enqueue_rollout_evaluation();
