-- Durable jobs: every unit of background work is a row here, written in the same transaction as the change
-- that causes it. Workers claim ready jobs in batches with FOR UPDATE SKIP LOCKED under a time-limited lease,
-- so any number of replicas can run and a worker killed at any instant loses nothing (its lease expires and
-- the job returns to the queue). Failures are retried with exponential backoff and jitter, then
-- dead-lettered with the last error. A statement-level trigger NOTIFYs channel `dtx_jobs` on enqueue; that
-- is only a wake-up hint, workers also poll.
--
-- Life cycle:  queued --claim--> running --complete--> done --prune--> (deleted)
--                 ^                 |  fail / lease expired, attempts < max_attempts
--                 +-----------------+
--                                   |  fail / lease expired, attempts = max_attempts
--                                   +--> dead (kept for inspection; re-queue by hand)
-- `attempts` counts claims, so a job that crashes its worker still uses up an attempt.

create table public.jobs (
  id bigint generated always as identity primary key,
  kind text not null check (kind ~ '^[a-z][a-z0-9_.]{0,62}$'),
  payload jsonb not null default '{}'::jsonb
    check (jsonb_typeof(payload) = 'object' and pg_column_size(payload) <= 65536),
  dedupe_key text check (char_length(dedupe_key) between 1 and 200),
  status text not null default 'queued' check (status in ('queued', 'running', 'done', 'dead')),
  run_after timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 5 check (max_attempts between 1 and 100),
  lease_owner text check (char_length(lease_owner) between 1 and 200),
  lease_expires_at timestamptz,
  last_error text check (char_length(last_error) <= 4000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  check (attempts <= max_attempts),
  check (status <> 'queued' or attempts < max_attempts),
  check ((status = 'running') = (lease_owner is not null)),
  check ((status = 'running') = (lease_expires_at is not null)),
  check ((status in ('done', 'dead')) = (finished_at is not null))
);
comment on table public.jobs is
  'Durable background jobs (see the migration header). Only the worker and SECURITY DEFINER code touch it.';
-- at most one queued or running job per dedupe key
create unique index jobs_dedupe_key_active_idx on public.jobs (dedupe_key)
  where dedupe_key is not null and status in ('queued', 'running');
create index jobs_ready_idx on public.jobs (run_after, id) where status = 'queued';
create index jobs_lease_idx on public.jobs (lease_expires_at) where status = 'running';
create index jobs_finished_idx on public.jobs (finished_at) where status in ('done', 'dead');

alter table public.jobs enable row level security;
-- No policies and no grants: the API roles cannot see or touch jobs. Triggers and RPCs enqueue through
-- private.enqueue_job (SECURITY DEFINER); the worker connects as the owning role.

-- ---------------------------------------------------------------------------------------- enqueue

-- Enqueue a job, or return the id of the queued or running job that already holds dedupe_key.
create function private.enqueue_job(kind text, payload jsonb default '{}'::jsonb, dedupe_key text default null,
                                    run_after timestamptz default null, max_attempts integer default 5)
returns bigint
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  job_id bigint;
begin
  loop
    insert into public.jobs (kind, payload, dedupe_key, run_after, max_attempts)
    values (enqueue_job.kind, coalesce(enqueue_job.payload, '{}'::jsonb), enqueue_job.dedupe_key,
            coalesce(enqueue_job.run_after, now()), coalesce(enqueue_job.max_attempts, 5))
    on conflict (dedupe_key) where dedupe_key is not null and status in ('queued', 'running') do nothing
    returning id into job_id;
    if job_id is not null then
      return job_id;
    end if;
    select j.id into job_id from public.jobs j
     where j.dedupe_key = enqueue_job.dedupe_key and j.status in ('queued', 'running');
    if job_id is not null then
      return job_id;
    end if;
    -- the holder finished between our insert and our look-up: try again
  end loop;
end
$$;
revoke all on function private.enqueue_job(text, jsonb, text, timestamptz, integer) from public;

create function private.notify_jobs_enqueued() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  -- payload: the distinct kinds enqueued by the statement (a hint; NOTIFY folds duplicates per transaction)
  perform pg_catalog.pg_notify('dtx_jobs', coalesce(left((select string_agg(distinct n.kind, ',') from new_rows n), 7000), ''));
  return null;
end
$$;
revoke all on function private.notify_jobs_enqueued() from public;
create trigger jobs_notify_enqueued after insert on public.jobs
  referencing new table as new_rows for each statement execute function private.notify_jobs_enqueued();

-- ---------------------------------------------------------------------------------------- worker side
-- Called by the worker over a direct connection as the owning role; not granted to any API role.

-- Claim up to batch_size ready jobs (of the given kinds, or any kind when kinds is null), oldest first,
-- skipping rows another worker holds, and lease them to worker_id for lease_for.
create function private.claim_jobs(worker_id text, kinds text[] default null, batch_size integer default 10,
                                   lease_for interval default interval '5 minutes')
returns setof public.jobs
language plpgsql
set search_path = ''
as $$
begin
  if worker_id is null or batch_size is null or batch_size not between 1 and 1000
     or lease_for is null or lease_for <= interval '0' or lease_for > interval '1 day' then
    raise exception 'claim_jobs: worker_id is required, batch_size must be 1-1000 and lease_for 0-1 day'
      using errcode = '22023';
  end if;
  return query
  with ready as (
    select j.id from public.jobs j
     where j.status = 'queued' and j.run_after <= now()
       and (claim_jobs.kinds is null or j.kind = any (claim_jobs.kinds))
     order by j.run_after, j.id
     limit claim_jobs.batch_size
     for update skip locked
  )
  update public.jobs j
     set status = 'running', attempts = j.attempts + 1, lease_owner = claim_jobs.worker_id,
         lease_expires_at = now() + claim_jobs.lease_for, updated_at = now()
    from ready
   where j.id = ready.id
  returning j.*;
end
$$;
revoke all on function private.claim_jobs(text, text[], integer, interval) from public;

-- Mark a running job done. With worker_id, only while that worker still holds the lease (a worker whose
-- lease expired and was re-claimed must not finish someone else's attempt). True when the job was updated.
create function private.complete_job(job_id bigint, worker_id text default null) returns boolean
language sql
set search_path = ''
as $$
  with done as (
    update public.jobs
       set status = 'done', lease_owner = null, lease_expires_at = null, finished_at = now(), updated_at = now()
     where id = complete_job.job_id and status = 'running'
       and (complete_job.worker_id is null or lease_owner = complete_job.worker_id)
    returning 1
  )
  select exists (select 1 from done)
$$;
revoke all on function private.complete_job(bigint, text) from public;

-- Record a failed attempt: back to the queue after base * 2^(attempts-1) (capped), scaled by a random factor
-- in [0.5, 1) so that jobs failing together do not retry together; dead after max_attempts.
-- With worker_id, only while that worker holds the lease. True when the job was updated.
create function private.fail_job(job_id bigint, error text, worker_id text default null,
                                 retry_base interval default interval '5 seconds',
                                 retry_cap interval default interval '1 hour')
returns boolean
language sql
set search_path = ''
as $$
  with failed as (
    update public.jobs
       set status = case when attempts >= max_attempts then 'dead' else 'queued' end,
           run_after = case when attempts >= max_attempts then run_after
                            else now() + least(fail_job.retry_cap,
                                               fail_job.retry_base * power(2, least(attempts - 1, 30)))
                                         * (0.5 + random() / 2) end,
           finished_at = case when attempts >= max_attempts then now() end,
           last_error = left(coalesce(fail_job.error, 'unknown error'), 4000),
           lease_owner = null, lease_expires_at = null, updated_at = now()
     where id = fail_job.job_id and status = 'running'
       and (fail_job.worker_id is null or lease_owner = fail_job.worker_id)
    returning 1
  )
  select exists (select 1 from failed)
$$;
revoke all on function private.fail_job(bigint, text, text, interval, interval) from public;

-- Running jobs whose lease has expired (their worker died or hung) go back to the queue, ready at once, or
-- to dead when they have used all their attempts. Returns how many were reaped.
create function private.reap_expired_leases() returns integer
language sql
set search_path = ''
as $$
  with expired as (
    select id from public.jobs
     where status = 'running' and lease_expires_at < now()
     for update skip locked
  ), reaped as (
    update public.jobs j
       set status = case when j.attempts >= j.max_attempts then 'dead' else 'queued' end,
           run_after = now(),
           finished_at = case when j.attempts >= j.max_attempts then now() end,
           last_error = left('lease expired: worker ' || j.lease_owner || ' did not finish attempt '
                             || j.attempts || coalesce(' (previous error: ' || j.last_error || ')', ''), 4000),
           lease_owner = null, lease_expires_at = null, updated_at = now()
      from expired
     where j.id = expired.id
    returning 1
  )
  select count(*)::integer from reaped
$$;
revoke all on function private.reap_expired_leases() from public;

-- Delete done jobs finished more than older_than ago (dead jobs stay until someone looks at them).
create function private.prune_jobs(older_than interval default interval '7 days') returns integer
language sql
set search_path = ''
as $$
  with pruned as (
    delete from public.jobs where status = 'done' and finished_at < now() - prune_jobs.older_than returning 1
  )
  select count(*)::integer from pruned
$$;
revoke all on function private.prune_jobs(interval) from public;
