-- Only an outcome enqueues a rollout evaluation. The evaluation decides on succeeded, failed and timed-out
-- counts; an offer or a downloading / transferring / installing report changes none of them (timeouts are
-- found by the evaluation itself, which the worker also runs every minute). Yet every history row enqueued
-- one, through a statement trigger with a transition table that fired on every offer made by
-- ota_check_update: about a quarter of a first check's cost (tests/bench/ota_check.py), and with a worker
-- running, a job and a NOTIFY for nearly every check-in.
--
-- Now a row trigger with a WHEN clause: rows of other phases fire nothing at all, including the timed_out
-- rows the evaluation writes in bulk (it counts those in the same run, so it needs no follow-up).

drop trigger firmware_update_history_evaluate on public.firmware_update_history;
create trigger firmware_update_history_evaluate after insert on public.firmware_update_history
  for each row when (new.phase in ('succeeded', 'failed'))
  execute function private.enqueue_rollout_evaluation();
drop function private.enqueue_rollout_evaluation_for_history();
