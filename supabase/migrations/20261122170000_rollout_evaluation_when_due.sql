-- A report or a rollout change enqueues an evaluation unless one is already queued. But a queued evaluation
-- may not be due for a while: one whose attempt failed waits out its retry back-off (run_after in the
-- future). Until then every report was folded into that waiting job, so a device's success could take as
-- long as the back-off (seconds to minutes) to advance or complete its rollout. Only a queued evaluation
-- that is due now stands in for a new one.

create function private.rollout_evaluation_pending() returns boolean
language sql stable
as $$
  select exists (select 1 from public.jobs j
                  where j.kind = 'rollouts.evaluate' and j.status = 'queued' and j.run_after <= now())
$$;
revoke all on function private.rollout_evaluation_pending() from public;

create or replace function private.enqueue_rollout_evaluation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not private.rollout_evaluation_pending() then
    perform private.enqueue_job('rollouts.evaluate', '{}'::jsonb, null);
  end if;
  return null;
end
$$;
-- The history trigger moves to this function too, in …190000_rollout_evaluation_on_outcomes.sql.
