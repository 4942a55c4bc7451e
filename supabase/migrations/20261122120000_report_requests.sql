-- Report and export requests: weekly/monthly PDF reports, a sessions CSV and a complete personal-data
-- export, all through one path. A request is a row here (deduplicated per user, kind, period and locale);
-- the RPC that creates it enqueues the worker job `reports.render` in the same transaction. The worker
-- renders, stores the file in a private bucket under `<user id>/…`, marks the request ready and notifies
-- the user in-app. Scheduled monthly/weekly reports are created by private.enqueue_due_reports(at).
--
-- Life cycle:  queued --worker claims--> rendering --stored--> ready
--                 ^                          |  error, attempts left: back to queued with `error`
--                 +--------------------------+
--                                            |  error on the last attempt --> failed (asking again re-queues)

-- ---------------------------------------------------------------------------------------- table

create table public.report_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  kind text not null check (kind in ('weekly', 'monthly', 'sessions_csv', 'data_export')),
  period_start date not null check (period_start >= date '2020-01-01'),
  period_end date not null,
  locale text not null check (locale in ('en', 'ko', 'ja', 'zh', 'es', 'pt', 'th', 'vi')),
  status text not null default 'queued' check (status in ('queued', 'rendering', 'ready', 'failed')),
  -- the bucket follows from the kind: PDFs in `reports`, CSV and archives in `exports`
  bucket text not null generated always as
    (case when kind in ('weekly', 'monthly') then 'reports' else 'exports' end) stored,
  -- the object's name inside the bucket, fixed when the request is created: `<user id>/<period>-<locale>.<ext>`
  object_path text not null check (object_path ~ '^[0-9a-f-]{36}/[A-Za-z0-9_.-]{1,120}\.(pdf|csv|zip)$'),
  error text check (char_length(error) between 1 and 4000),
  attempts integer not null default 0 check (attempts between 0 and 1000),
  source text not null default 'user' check (source in ('user', 'schedule')),
  requested_at timestamptz not null default now(),
  started_at timestamptz,
  completed_at timestamptz,
  updated_at timestamptz not null default now(),
  unique (user_id, kind, period_start, locale),
  check (period_end >= period_start and period_end <= period_start + 366),
  check (split_part(object_path, '/', 1) = user_id::text),
  check (status <> 'failed' or error is not null),
  check ((status in ('ready', 'failed')) = (completed_at is not null)),
  check (status = 'queued' or started_at is not null)
);
comment on table public.report_requests is
  'Report and export requests (see the migration header). Created by request_report() or the schedule; '
  'only the worker changes them. The file is storage object <bucket>/<object_path> once status is ready.';
create index report_requests_user_idx on public.report_requests (user_id, requested_at desc);
create trigger report_requests_updated_at before update on public.report_requests
  for each row execute function private.set_updated_at();

alter table public.report_requests enable row level security;
create policy report_requests_select_own on public.report_requests for select to authenticated
  using (user_id = (select auth.uid()));
create policy report_requests_service on public.report_requests for all to service_role using (true) with check (true);
grant select on public.report_requests to authenticated;
grant select, insert, update, delete on public.report_requests to service_role;

alter table public.report_requests replica identity full;
alter publication supabase_realtime add table public.report_requests;

-- ---------------------------------------------------------------------------------------- helpers

-- `<user id>/<period>-<locale>.<ext>`: monthly `2026-10-ko.pdf`, weekly `2026-W44-ko.pdf` (ISO week),
-- sessions `sessions-2026-10-01_2026-10-31-ko.csv`, data export `data-export-2026-11-22-ko.zip`.
create function private.report_object_name(user_id uuid, kind text, period_start date, period_end date, locale text)
returns text
language sql immutable
set search_path = ''
as $$
  select user_id::text || '/' || case kind
    when 'monthly' then to_char(period_start, 'YYYY-MM')
    when 'weekly' then to_char(period_start, 'IYYY-"W"IW')
    when 'sessions_csv' then 'sessions-' || to_char(period_start, 'YYYY-MM-DD') || '_' || to_char(period_end, 'YYYY-MM-DD')
    else 'data-export-' || to_char(period_start, 'YYYY-MM-DD')
  end || '-' || locale || case when kind in ('weekly', 'monthly') then '.pdf'
                               when kind = 'sessions_csv' then '.csv' else '.zip' end
$$;
revoke all on function private.report_object_name(uuid, text, date, date, text) from public;

create function private.enqueue_report_job(request_id uuid) returns bigint
language sql security definer
set search_path = ''
as $$
  select private.enqueue_job('reports.render', jsonb_build_object('request_id', request_id),
                             'reports.render:' || request_id::text, null, 5)
$$;
revoke all on function private.enqueue_report_job(uuid) from public;

-- ---------------------------------------------------------------------------------------- request RPC

-- Ask for a report or export; returns the request (an existing one for the same kind, period and locale,
-- so calling twice is harmless). Periods: weekly starts on a Monday (7 days), monthly on the 1st (the
-- calendar month), both must have ended in the caller's time zone; sessions_csv covers period_start to
-- period_end (default: today), at most 367 days; data_export takes no period (it is today's export).
-- locale null = the profile's; tags such as ko-KR are understood. A failed request asked for again is
-- queued again; one whose job was lost is enqueued again (the worker never renders a ready request twice).
create function public.request_report(kind text, period_start date default null, locale text default null,
                                      period_end date default null)
returns public.report_requests
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  uid uuid := auth.uid();
  tz text;
  profile_locale text;
  active boolean;
  today date;
  p_start date := request_report.period_start;
  p_end date;
  loc text;
  req public.report_requests;
begin
  if uid is null then
    raise exception 'sign in to request reports' using errcode = '42501';
  end if;
  select p.timezone, p.locale, p.is_active into tz, profile_locale, active from public.profiles p where p.id = uid;
  if not found or not active then
    raise exception 'account is deactivated' using errcode = '42501';
  end if;
  today := (private.clock() at time zone tz)::date;

  if request_report.kind is null or request_report.kind not in ('weekly', 'monthly', 'sessions_csv', 'data_export') then
    perform private.invalid('kind', 'must be one of weekly, monthly, sessions_csv, data_export');
  end if;
  loc := coalesce(lower(split_part(replace(request_report.locale, '_', '-'), '-', 1)), profile_locale);
  if loc not in ('en', 'ko', 'ja', 'zh', 'es', 'pt', 'th', 'vi') then
    perform private.invalid('locale', 'must be one of en, ko, ja, zh, es, pt, th, vi (or null for the profile''s)');
  end if;

  if request_report.kind = 'data_export' then
    if p_start is not null and p_start <> today then
      perform private.invalid('period_start', 'leave it out for a data export (it covers everything up to today)');
    end if;
    p_start := today;
    p_end := today;
  else
    if p_start is null then
      perform private.invalid('period_start', 'is required');
    end if;
    if p_start < date '2020-01-01' then
      perform private.invalid('period_start', 'must be 2020-01-01 or later');
    end if;
    if request_report.kind = 'weekly' then
      if extract(isodow from p_start) <> 1 then
        perform private.invalid('period_start', 'must be a Monday for a weekly report');
      end if;
      p_end := p_start + 6;
    elsif request_report.kind = 'monthly' then
      if extract(day from p_start) <> 1 then
        perform private.invalid('period_start', 'must be the first day of a month for a monthly report');
      end if;
      p_end := (p_start + interval '1 month')::date - 1;
    else
      p_end := coalesce(request_report.period_end, today);
      if p_end < p_start then
        perform private.invalid('period_end', 'must not be before period_start');
      end if;
      if p_end > p_start + 366 then
        perform private.invalid('period_end', 'a sessions export covers at most 367 days');
      end if;
      if p_end > today then
        perform private.invalid('period_end', 'must not be in the future');
      end if;
    end if;
    if request_report.kind in ('weekly', 'monthly') then
      if request_report.period_end is not null and request_report.period_end <> p_end then
        perform private.invalid('period_end', 'follows from period_start for weekly and monthly reports; leave it out');
      end if;
      if p_end >= today then
        perform private.invalid('period_start', 'the period has not ended yet (it ends on ' || p_end::text || ')');
      end if;
    end if;
  end if;

  insert into public.report_requests as r (user_id, kind, period_start, period_end, locale, object_path)
  values (uid, request_report.kind, p_start, p_end, loc,
          private.report_object_name(uid, request_report.kind, p_start, p_end, loc))
  on conflict (user_id, kind, period_start, locale) do nothing
  returning r.* into req;
  if req.id is null then
    select r.* into req from public.report_requests r
     where r.user_id = uid and r.kind = request_report.kind and r.period_start = p_start and r.locale = loc
       for update;
    if req.status = 'failed' then
      update public.report_requests r set status = 'queued', error = null, completed_at = null, started_at = null
       where r.id = req.id returning r.* into req;
    end if;
    if req.status = 'ready' then
      return req;
    end if;
  end if;
  perform private.enqueue_report_job(req.id);
  return req;
end
$$;
revoke all on function public.request_report(text, date, text, date) from public;
grant execute on function public.request_report(text, date, text, date) to authenticated;

-- ---------------------------------------------------------------------------------------- worker side
-- Called by the worker over a direct connection as the owning role; not granted to any API role.

-- Start (or restart) work on a request: returns the row with status rendering, or nothing when there is
-- nothing to do (already ready, or the request is gone).
create function private.start_report(request_id uuid) returns setof public.report_requests
language sql
set search_path = ''
as $$
  update public.report_requests r
     set status = 'rendering', started_at = now(), completed_at = null, attempts = r.attempts + 1
   where r.id = start_report.request_id and r.status <> 'ready'
  returning r.*
$$;
revoke all on function private.start_report(uuid) from public;

-- The object is stored: mark ready and notify the user (once, whatever happens to this function's callers).
create function private.finish_report(request_id uuid, title text, body text) returns boolean
language plpgsql
set search_path = ''
as $$
declare
  r public.report_requests;
begin
  update public.report_requests q set status = 'ready', error = null, completed_at = now()
   where q.id = finish_report.request_id and q.status <> 'ready'
  returning q.* into r;
  if r.id is null then
    return false;
  end if;
  insert into public.notifications (user_id, kind, title, body, data, dedupe_key)
  values (r.user_id, case when r.kind in ('weekly', 'monthly') then 'report_ready' else 'export_ready' end,
          left(finish_report.title, 200), left(coalesce(finish_report.body, ''), 2000),
          jsonb_build_object('request_id', r.id, 'kind', r.kind, 'period_start', r.period_start,
                             'period_end', r.period_end, 'locale', r.locale, 'bucket', r.bucket,
                             'object_path', r.object_path),
          'report:' || r.kind || ':' || r.period_start::text || ':' || r.locale)
  on conflict (user_id, dedupe_key) do nothing;
  return true;
end
$$;
revoke all on function private.finish_report(uuid, text, text) from public;

-- A failed attempt: back to queued with the error, or failed for good on the last attempt.
create function private.fail_report(request_id uuid, error text, final boolean) returns void
language sql
set search_path = ''
as $$
  update public.report_requests r
     set status = case when fail_report.final then 'failed' else 'queued' end,
         error = left(coalesce(nullif(fail_report.error, ''), 'unknown error'), 4000),
         completed_at = case when fail_report.final then now() end,
         started_at = case when fail_report.final then r.started_at end
   where r.id = fail_report.request_id and r.status <> 'ready'
$$;
revoke all on function private.fail_report(uuid, text, boolean) from public;

-- ---------------------------------------------------------------------------------------- schedule

-- Create (idempotently) the scheduled reports that are due at `at`: for every active user, the monthly
-- report of the last local month that has ended (notification_settings.monthly_report) and the weekly
-- report of the last local ISO week that has ended (weekly_report), in the profile's locale; users who
-- signed up after the period ended get none. Inserting with ON CONFLICT DO NOTHING on the request's unique
-- key makes reruns and concurrent replicas harmless: a job is enqueued only for a row this call created.
-- Returns the number of requests created.
create function private.enqueue_due_reports(at timestamptz default now()) returns integer
language plpgsql
set search_path = ''
as $$
declare
  created integer := 0;
  rec record;
begin
  for rec in
    with users as (
      select p.id, p.locale, p.timezone, p.created_at, s.weekly_report, s.monthly_report,
             (enqueue_due_reports.at at time zone p.timezone)::date as today
        from public.profiles p
        join public.notification_settings s on s.user_id = p.id
       where p.is_active and (s.weekly_report or s.monthly_report)
    ), due as (
      select u.id, u.locale, u.timezone, u.created_at, 'monthly'::text as kind,
             (date_trunc('month', u.today) - interval '1 month')::date as ps,
             date_trunc('month', u.today)::date - 1 as pe
        from users u where u.monthly_report
      union all
      select u.id, u.locale, u.timezone, u.created_at, 'weekly'::text,
             u.today - extract(isodow from u.today)::integer - 6,
             u.today - extract(isodow from u.today)::integer
        from users u where u.weekly_report
    )
    insert into public.report_requests as r (user_id, kind, period_start, period_end, locale, object_path, source)
    select d.id, d.kind, d.ps, d.pe, d.locale, private.report_object_name(d.id, d.kind, d.ps, d.pe, d.locale), 'schedule'
      from due d
     where d.created_at < ((d.pe + 1)::timestamp at time zone d.timezone)
    on conflict (user_id, kind, period_start, locale) do nothing
    returning r.id
  loop
    perform private.enqueue_report_job(rec.id);
    created := created + 1;
  end loop;
  return created;
end
$$;
revoke all on function private.enqueue_due_reports(timestamptz) from public;

-- ---------------------------------------------------------------------------------------- storage

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('reports', 'reports', false, 10485760, array['application/pdf']),
       ('exports', 'exports', false, 104857600, array['text/csv', 'application/zip'])
on conflict (id) do nothing;

-- A user reads (downloads, lists, signs) only objects under their own folder. Nobody writes through the
-- API: the worker stores with the service role (which bypasses RLS) or, locally, as the owning role.
create policy reports_exports_read_own on storage.objects for select to authenticated
  using (bucket_id in ('reports', 'exports') and (storage.foldername(name))[1] = (select auth.uid())::text);
