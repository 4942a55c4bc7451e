-- Announcements: admins write (every change audited), signed-in users read published ones.

create table public.announcements (
  id uuid primary key default gen_random_uuid(),
  title text not null check (char_length(btrim(title)) between 1 and 200),
  body text not null check (char_length(body) between 1 and 20000),
  kind text not null default 'notice' check (kind in ('notice', 'maintenance', 'update')),
  locale text check (locale in ('en', 'ko', 'ja', 'zh', 'es', 'pt', 'th', 'vi')),
  is_published boolean not null default false,
  published_at timestamptz,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (not is_published or published_at is not null)
);
create index announcements_published_idx on public.announcements (published_at desc) where is_published;
create trigger announcements_updated_at before update on public.announcements
  for each row execute function private.set_updated_at();

-- published_at follows is_published unless the admin sets it explicitly.
create function private.announcement_publish_time() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.is_published and new.published_at is null then
    new.published_at := now();
  elsif not new.is_published then
    new.published_at := null;
  end if;
  return new;
end
$$;
create trigger announcements_publish_time before insert or update on public.announcements
  for each row execute function private.announcement_publish_time();

create function private.audit_announcement() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  r public.announcements := case when tg_op = 'DELETE' then old else new end;
begin
  perform private.write_audit(
    case tg_op when 'INSERT' then 'announcement.created' when 'UPDATE' then 'announcement.updated'
               else 'announcement.deleted' end,
    'announcement', r.id::text,
    jsonb_build_object('title', r.title, 'is_published', r.is_published));
  return null;
end
$$;
revoke all on function private.audit_announcement() from public;
create trigger announcements_audit after insert or update or delete on public.announcements
  for each row execute function private.audit_announcement();

alter table public.announcements enable row level security;
create policy announcements_select on public.announcements for select to authenticated
  using (is_published or (select private.is_admin()));
create policy announcements_admin_insert on public.announcements for insert to authenticated
  with check ((select private.is_admin()) and created_by = (select auth.uid()));
create policy announcements_admin_update on public.announcements for update to authenticated
  using ((select private.is_admin())) with check ((select private.is_admin()));
create policy announcements_admin_delete on public.announcements for delete to authenticated
  using ((select private.is_admin()));
create policy announcements_service on public.announcements for all to service_role using (true) with check (true);
grant select, delete on public.announcements to authenticated;
grant insert (title, body, kind, locale, is_published, published_at),
      update (title, body, kind, locale, is_published, published_at) on public.announcements to authenticated;
grant select, insert, update, delete on public.announcements to service_role;
