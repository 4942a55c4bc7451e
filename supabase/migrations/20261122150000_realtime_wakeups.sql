-- Realtime wake-ups for the worker. Against a Supabase project the worker subscribes to `postgres_changes`
-- INSERT on public.jobs and public.stats_dirty_days (dtx_worker/realtime.py) instead of LISTEN dtx_jobs.
-- Events are hints only (the worker polls too); this migration changes nothing about how work is stored.
--
-- 1. Realtime only streams tables in the `supabase_realtime` publication. INSERT is all the worker needs; the
--    publication publishes every action, so Realtime also decodes the claim/complete updates of these tables
--    and drops them (no subscription asks for UPDATE/DELETE). No REPLICA IDENTITY change is needed.
-- 2. Realtime checks the subscriber's role (`service_role` for the worker's key) with has_column_privilege:
--    without SELECT on the primary key it still delivers the event, but as an `Error 401: Unauthorized`
--    record whose commit_timestamp is null, which the Python client rejects and drops. So the service role
--    may read the key columns, and only those: payloads, errors and timestamps stay private. The tables keep
--    RLS on with no policies; service_role bypasses RLS on Supabase (and in supabase/platform/00_roles.sql).

alter publication supabase_realtime add table public.jobs, public.stats_dirty_days;

grant select (id) on public.jobs to service_role;
grant select (user_id, device_id, local_date) on public.stats_dirty_days to service_role;
