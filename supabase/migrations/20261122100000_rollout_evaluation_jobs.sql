-- The rollout engine runs as a worker job: `rollouts.evaluate` calls private.evaluate_rollouts(). It is
-- enqueued in the same transaction as every device status report and every rollout state change, and on a
-- schedule by the worker. The dedupe key is per minute, so a burst of reports makes one job a minute while a
-- running evaluation never swallows the next minute's.

create function private.enqueue_rollout_evaluation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.enqueue_job('rollouts.evaluate', '{}'::jsonb,
    'rollouts.evaluate:' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI'));
  return null;
end
$$;
revoke all on function private.enqueue_rollout_evaluation() from public;

create trigger firmware_update_history_evaluate after insert on public.firmware_update_history
  for each statement execute function private.enqueue_rollout_evaluation();
create trigger firmware_rollouts_evaluate after insert or update of status, current_stage on public.firmware_rollouts
  for each statement execute function private.enqueue_rollout_evaluation();
