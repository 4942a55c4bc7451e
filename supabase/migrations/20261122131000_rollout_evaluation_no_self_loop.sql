-- Rollout evaluation re-enqueued itself forever. private.evaluate_rollouts() starts with
-- `insert into firmware_update_history ... select` (devices whose update timed out), and the statement-level
-- trigger on that table fires even when the statement inserts no row; the running evaluation is not
-- "queued", so the trigger enqueued the next one, which did the same: an idle worker ran about 120
-- evaluations a second on an empty database (measured: 600 rollouts.evaluate jobs in 5 s), taking CPU from
-- everything else on the machine and NOTIFYing the job channel as fast as it could.
--
-- Now only real changes enqueue: the history trigger looks at its transition table, and the rollout triggers
-- are row triggers whose WHEN compares the status and stage. An evaluation that changes something (an
-- expiry, a pause, a stage) still gets one follow-up, which changes nothing and so enqueues nothing.

create function private.enqueue_rollout_evaluation_for_history() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if exists (select 1 from new_rows)
     and not exists (select 1 from public.jobs j where j.kind = 'rollouts.evaluate' and j.status = 'queued') then
    perform private.enqueue_job('rollouts.evaluate', '{}'::jsonb, null);
  end if;
  return null;
end
$$;
revoke all on function private.enqueue_rollout_evaluation_for_history() from public;

drop trigger firmware_update_history_evaluate on public.firmware_update_history;
create trigger firmware_update_history_evaluate after insert on public.firmware_update_history
  referencing new table as new_rows
  for each statement execute function private.enqueue_rollout_evaluation_for_history();

-- private.enqueue_rollout_evaluation() (enqueue unless one is queued) serves as a row trigger as it is.
drop trigger firmware_rollouts_evaluate on public.firmware_rollouts;
create trigger firmware_rollouts_evaluate_insert after insert on public.firmware_rollouts
  for each row execute function private.enqueue_rollout_evaluation();
create trigger firmware_rollouts_evaluate_update after update of status, current_stage on public.firmware_rollouts
  for each row when (old.status is distinct from new.status or old.current_stage is distinct from new.current_stage)
  execute function private.enqueue_rollout_evaluation();
