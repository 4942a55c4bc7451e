-- Profiles (1:1 with auth.users), the append-only audit log, and the audited admin RPCs.
--
-- Conventions used by every migration of this project:
-- * RLS is enabled on every table, with one policy per operation that is allowed at all.
-- * Table privileges are granted explicitly (new Supabase projects grant nothing by default), column by
--   column where a role may change only some columns.
-- * SECURITY DEFINER functions pin `search_path = ''` and qualify every name; EXECUTE is revoked from
--   PUBLIC and granted to the roles meant to call them.
-- * Internal helpers live in schema `private`, which the Data API does not expose.
-- * Bad input raises SQLSTATE 22023 with the message "<field>: <problem>"; missing or foreign rows raise
--   P0002; forbidden actions 42501; conflicts 23505; invalid state transitions P0001.

create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------- helpers

create function private.invalid(field text, problem text) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  raise exception '%: %', field, problem using errcode = '22023', detail = field;
end
$$;

create function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- True for calls made with the service role key, and for trusted direct connections (the worker, a
-- migration, psql as postgres) that carry no JWT at all and have not switched to an API role.
create function private.is_trusted() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(auth.role(), '') = 'service_role'
      or (auth.jwt() is null and current_setting('role') = 'none'
          and session_user not in ('authenticator', 'anon', 'authenticated'))
$$;

-- IANA time zone names, copied from pg_timezone_names once: that view reads the whole zone database from disk
-- on every use (milliseconds), too slow for a trigger that runs on every sign-up.
create table private.time_zones (name text primary key);
insert into private.time_zones (name) select name from pg_catalog.pg_timezone_names on conflict do nothing;
revoke all on private.time_zones from public;

create function private.is_time_zone(tz text) returns boolean
language sql stable security definer
set search_path = ''
as $$ select exists (select 1 from private.time_zones z where z.name = tz) $$;
revoke all on function private.is_time_zone(text) from public;
grant execute on function private.is_time_zone(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- profiles

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null default '' check (length(email) <= 320),
  display_name text check (display_name is null or char_length(display_name) between 1 and 100),
  gender text check (gender in ('female', 'male', 'other')),
  birth_date date check (birth_date is null or birth_date >= date '1900-01-01'),
  timezone text not null default 'Asia/Seoul' check (char_length(timezone) between 1 and 64),
  locale text not null default 'ko' check (locale in ('en', 'ko', 'ja', 'zh', 'es', 'pt', 'th', 'vi')),
  role text not null default 'user' check (role in ('user', 'admin')),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.profiles is
  'One row per auth user, created by trigger. Owners change only display_name, gender, birth_date, '
  'timezone and locale; role and is_active change only through the audited admin RPCs; email follows auth.users.';

create index profiles_admins_idx on public.profiles (id) where role = 'admin' and is_active;

create function private.is_admin() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.profiles p
    where p.id = auth.uid() and p.role = 'admin' and p.is_active
  )
$$;
revoke all on function private.is_admin() from public;
grant execute on function private.is_admin() to authenticated, service_role;

create function private.is_active_user() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.profiles p where p.id = auth.uid() and p.is_active)
$$;
revoke all on function private.is_active_user() from public;
grant execute on function private.is_active_user() to authenticated, service_role;

create function private.validate_profile() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.timezone is distinct from old.timezone then
    if not private.is_time_zone(new.timezone) then
      perform private.invalid('timezone', 'must be an IANA time zone name such as Asia/Seoul');
    end if;
  end if;
  if new.birth_date is not null and new.birth_date > current_date then
    perform private.invalid('birth_date', 'must not be in the future');
  end if;
  return new;
end
$$;

create trigger profiles_validate before insert or update on public.profiles
  for each row execute function private.validate_profile();
create trigger profiles_updated_at before update on public.profiles
  for each row execute function private.set_updated_at();

-- A new auth user gets a profile. Metadata from sign-up (display_name, timezone, locale) is used when it
-- is valid and ignored otherwise: a bad hint must never block a sign-up.
create function private.handle_new_auth_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  tz text := meta ->> 'timezone';
  loc text := meta ->> 'locale';
  name text := left(nullif(btrim(coalesce(meta ->> 'display_name', meta ->> 'name', '')), ''), 100);
begin
  if tz is null or not private.is_time_zone(tz) then
    tz := 'Asia/Seoul';
  end if;
  if loc is null or loc not in ('en', 'ko', 'ja', 'zh', 'es', 'pt', 'th', 'vi') then
    loc := 'ko';
  end if;
  insert into public.profiles (id, email, display_name, timezone, locale)
  values (new.id, coalesce(new.email, ''), name, tz, loc);
  return new;
end
$$;
revoke all on function private.handle_new_auth_user() from public;

create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_auth_user();

-- The profile's email follows the auth user's (upstream copied it once and never again).
create function private.handle_auth_email_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.profiles set email = coalesce(new.email, '') where id = new.id;
  return new;
end
$$;
revoke all on function private.handle_auth_email_change() from public;

create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function private.handle_auth_email_change();

alter table public.profiles enable row level security;

create policy profiles_select on public.profiles for select to authenticated
  using (id = (select auth.uid()) or (select private.is_admin()));
create policy profiles_update_own on public.profiles for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));
create policy profiles_service on public.profiles for all to service_role using (true) with check (true);

grant select on public.profiles to authenticated, service_role;
grant update (display_name, gender, birth_date, timezone, locale) on public.profiles to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- audit log

create table public.audit_log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  actor_id uuid,
  actor_kind text not null check (actor_kind in ('admin', 'user', 'service', 'system')),
  action text not null check (action ~ '^[a-z_]+(\.[a-z_]+)+$' and char_length(action) <= 64),
  target_type text not null check (target_type in
    ('user', 'device', 'device_transfer', 'announcement', 'firmware', 'rollout', 'system')),
  target_id text check (char_length(target_id) <= 128),
  details jsonb not null default '{}'::jsonb check (jsonb_typeof(details) = 'object')
);
comment on table public.audit_log is 'Append-only record of every admin and privileged mutation.';
create index audit_log_target_idx on public.audit_log (target_type, target_id, occurred_at desc);
create index audit_log_actor_idx on public.audit_log (actor_id, occurred_at desc);

create function private.audit_log_immutable() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'audit_log is append-only' using errcode = '42501';
end
$$;

create trigger audit_log_no_update before update or delete on public.audit_log
  for each row execute function private.audit_log_immutable();
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function private.audit_log_immutable();

create function private.write_audit(action text, target_type text, target_id text, details jsonb)
returns void
language sql security definer
set search_path = ''
as $$
  insert into public.audit_log (actor_id, actor_kind, action, target_type, target_id, details)
  values (
    auth.uid(),
    case
      when auth.uid() is not null and private.is_admin() then 'admin'
      when auth.uid() is not null then 'user'
      when coalesce(auth.role(), '') = 'service_role' then 'service'
      else 'system'
    end,
    write_audit.action, write_audit.target_type, write_audit.target_id,
    coalesce(write_audit.details, '{}'::jsonb)
  )
$$;
revoke all on function private.write_audit(text, text, text, jsonb) from public;

alter table public.audit_log enable row level security;
create policy audit_log_select_admin on public.audit_log for select to authenticated
  using ((select private.is_admin()));
create policy audit_log_service_select on public.audit_log for select to service_role using (true);
grant select on public.audit_log to authenticated, service_role;

-- Any change of role or active flag is audited, whatever path made it.
create function private.audit_profile_privileges() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.role is distinct from old.role then
    perform private.write_audit('user.role_changed', 'user', new.id::text,
      jsonb_build_object('from', old.role, 'to', new.role));
  end if;
  if new.is_active is distinct from old.is_active then
    perform private.write_audit(
      case when new.is_active then 'user.reactivated' else 'user.deactivated' end,
      'user', new.id::text, jsonb_build_object('is_active', new.is_active));
  end if;
  return new;
end
$$;
revoke all on function private.audit_profile_privileges() from public;

create trigger profiles_audit_privileges after update of role, is_active on public.profiles
  for each row execute function private.audit_profile_privileges();

-- ---------------------------------------------------------------------------------------- admin RPCs

create function private.require_admin() returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if not (private.is_admin() or private.is_trusted()) then
    raise exception 'admin privileges required' using errcode = '42501';
  end if;
end
$$;
revoke all on function private.require_admin() from public;

-- Serialises changes to the set of admins so two admins cannot demote each other at once.
create function private.lock_admin_set() returns void
language sql
set search_path = ''
as $$ select pg_catalog.pg_advisory_xact_lock(7326001) $$;
revoke all on function private.lock_admin_set() from public;

create function private.other_active_admins(excluding uuid) returns bigint
language sql stable
set search_path = ''
as $$
  select count(*) from public.profiles
  where role = 'admin' and is_active and id <> excluding
$$;
revoke all on function private.other_active_admins(uuid) from public;

create function public.admin_set_role(user_id uuid, role text) returns public.profiles
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.profiles;
begin
  perform private.require_admin();
  if admin_set_role.user_id is null then
    perform private.invalid('user_id', 'is required');
  end if;
  if admin_set_role.role is null or admin_set_role.role not in ('user', 'admin') then
    perform private.invalid('role', 'must be ''user'' or ''admin''');
  end if;
  perform private.lock_admin_set();
  select * into target from public.profiles p where p.id = admin_set_role.user_id for update;
  if not found then
    raise exception 'user not found' using errcode = 'P0002';
  end if;
  if target.role = 'admin' and admin_set_role.role = 'user' and target.is_active
     and private.other_active_admins(target.id) = 0 then
    raise exception 'cannot demote the last active admin' using errcode = 'P0001';
  end if;
  update public.profiles p set role = admin_set_role.role where p.id = target.id returning * into target;
  return target;
end
$$;

create function public.admin_set_active(user_id uuid, is_active boolean) returns public.profiles
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.profiles;
begin
  perform private.require_admin();
  if admin_set_active.user_id is null then
    perform private.invalid('user_id', 'is required');
  end if;
  if admin_set_active.is_active is null then
    perform private.invalid('is_active', 'is required');
  end if;
  perform private.lock_admin_set();
  select * into target from public.profiles p where p.id = admin_set_active.user_id for update;
  if not found then
    raise exception 'user not found' using errcode = 'P0002';
  end if;
  if target.role = 'admin' and target.is_active and not admin_set_active.is_active
     and private.other_active_admins(target.id) = 0 then
    raise exception 'cannot deactivate the last active admin' using errcode = 'P0001';
  end if;
  update public.profiles p set is_active = admin_set_active.is_active
  where p.id = target.id returning * into target;
  return target;
end
$$;

-- The first admin is made with the service role key, once; after that admins promote admins.
create function public.admin_bootstrap(email text) returns public.profiles
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.profiles;
begin
  if not private.is_trusted() then
    raise exception 'admin_bootstrap needs the service role' using errcode = '42501';
  end if;
  if admin_bootstrap.email is null or btrim(admin_bootstrap.email) = '' then
    perform private.invalid('email', 'is required');
  end if;
  perform private.lock_admin_set();
  if exists (select 1 from public.profiles p where p.role = 'admin') then
    raise exception 'an admin already exists; promote further admins with admin_set_role'
      using errcode = 'P0001';
  end if;
  select * into target from public.profiles p
  where lower(p.email) = lower(btrim(admin_bootstrap.email)) for update;
  if not found then
    raise exception 'no user with that email' using errcode = 'P0002';
  end if;
  update public.profiles p set role = 'admin', is_active = true where p.id = target.id returning * into target;
  perform private.write_audit('admin.bootstrap', 'user', target.id::text, jsonb_build_object('email', target.email));
  return target;
end
$$;

revoke all on function public.admin_set_role(uuid, text) from public;
revoke all on function public.admin_set_active(uuid, boolean) from public;
revoke all on function public.admin_bootstrap(text) from public;
grant execute on function public.admin_set_role(uuid, text) to authenticated, service_role;
grant execute on function public.admin_set_active(uuid, boolean) to authenticated, service_role;
grant execute on function public.admin_bootstrap(text) to service_role;
