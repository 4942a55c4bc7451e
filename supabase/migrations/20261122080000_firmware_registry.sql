-- Firmware registry: versions, the private firmware-binaries bucket and its policies.
--
-- A version is registered as a draft (binary uploaded, row written) and published by an admin. Once it has
-- left draft, its binary, size, hash, version and code never change. Users read published versions only.
-- Version codes are strictly increasing per model; a device's version string maps to a code through the
-- registry, or, for versions the registry does not know, as major*10000 + minor*100 + patch (the
-- convention upstream uses: 1.0.23 -> 10023).

create function private.semver_ok(v text) returns boolean
language sql immutable
as $$ select v ~ '^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]{1,32})?$' $$;

create table public.firmware_versions (
  id uuid primary key default gen_random_uuid(),
  version text not null check (private.semver_ok(version)),
  version_code integer not null check (version_code between 1 and 2000000000),
  model text not null default 'DualTetraX' check (model ~ '^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$'),
  hardware_revisions text[] not null default '{}' check (private.valid_tags(hardware_revisions)),
  channel text not null default 'stable' check (channel in ('stable', 'beta')),
  changelog text not null default '' check (char_length(changelog) <= 10000),
  storage_path text not null unique check (storage_path ~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}\.bin$' and storage_path !~ '\.\.'),
  size_bytes integer not null check (size_bytes between 1024 and 2097152),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  min_version_code integer check (min_version_code between 1 and 2000000000),
  is_required boolean not null default false,
  status text not null default 'draft' check (status in ('draft', 'published', 'deprecated')),
  published_at timestamptz,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'draft') = (published_at is null)),
  unique (model, version),
  unique (model, version_code)
);
create trigger firmware_versions_updated_at before update on public.firmware_versions
  for each row execute function private.set_updated_at();

-- A device's version string as a comparable code.
-- Plain SQL (no SET clause) so callers, all of them SECURITY DEFINER RPCs with a pinned search_path, get it
-- inlined.
create function private.version_code_of(model text, v text) returns integer
language sql stable
as $$
  select coalesce(
    (select f.version_code from public.firmware_versions f where f.model = version_code_of.model and f.version = v),
    case when v ~ '^[0-9]{1,4}\.[0-9]{1,2}\.[0-9]{1,2}([-+].*)?$'
         then split_part(v, '.', 1)::int * 10000 + split_part(v, '.', 2)::int * 100
              + split_part(split_part(split_part(v, '.', 3), '-', 1), '+', 1)::int end)
$$;
revoke all on function private.version_code_of(text, text) from public;
grant execute on function private.version_code_of(text, text) to authenticated, service_role;

create function private.guard_firmware_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if exists (select 1 from public.firmware_versions f
                where f.model = new.model and f.version_code >= new.version_code) then
      raise exception 'version_code: must be greater than every existing version code of model %', new.model
        using errcode = '22023', detail = 'version_code';
    end if;
    if new.status <> 'draft' then
      raise exception 'status: a new version starts as a draft' using errcode = '22023', detail = 'status';
    end if;
    return new;
  end if;
  if old.status <> 'draft' and (new.version, new.version_code, new.model, new.storage_path, new.size_bytes, new.sha256)
       is distinct from (old.version, old.version_code, old.model, old.storage_path, old.size_bytes, old.sha256) then
    raise exception 'a published version''s binary, size, hash and version never change; register a new version'
      using errcode = 'P0001';
  end if;
  if new.status = 'draft' and old.status <> 'draft' then
    raise exception 'status: a published version cannot return to draft' using errcode = 'P0001';
  end if;
  if new.status = 'published' and old.status = 'draft' then
    new.published_at := now();
  end if;
  return new;
end
$$;
create trigger firmware_versions_guard before insert or update on public.firmware_versions
  for each row execute function private.guard_firmware_version();

create function private.guard_firmware_delete() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.status <> 'draft' then
    raise exception 'only draft versions can be deleted; deprecate a published one' using errcode = 'P0001';
  end if;
  return old;
end
$$;
create trigger firmware_versions_no_delete before delete on public.firmware_versions
  for each row execute function private.guard_firmware_delete();

alter table public.firmware_versions enable row level security;
create policy firmware_versions_select on public.firmware_versions for select to authenticated
  using (status = 'published' or (select private.is_admin()));
create policy firmware_versions_service on public.firmware_versions for all to service_role using (true) with check (true);
grant select on public.firmware_versions to authenticated, service_role;
grant insert, update, delete on public.firmware_versions to service_role;

-- ---------------------------------------------------------------------------------------- admin RPCs

create function public.admin_register_firmware(
  version text, version_code integer, storage_path text, size_bytes integer, sha256 text,
  model text default 'DualTetraX', channel text default 'stable', changelog text default '',
  hardware_revisions text[] default '{}', min_version_code integer default null, is_required boolean default false
) returns public.firmware_versions
language plpgsql security definer
set search_path = ''
as $$
declare
  f public.firmware_versions;
begin
  perform private.require_admin();
  if not coalesce(private.semver_ok(admin_register_firmware.version), false) then
    perform private.invalid('version', 'must be a semantic version such as 1.2.0 or 1.2.0-rc1');
  end if;
  if admin_register_firmware.version_code is null or admin_register_firmware.version_code < 1 then
    perform private.invalid('version_code', 'must be a positive integer');
  end if;
  if admin_register_firmware.sha256 is null or admin_register_firmware.sha256 !~ '^[0-9a-f]{64}$' then
    perform private.invalid('sha256', 'must be 64 lowercase hex digits');
  end if;
  if admin_register_firmware.size_bytes is null or admin_register_firmware.size_bytes not between 1024 and 2097152 then
    perform private.invalid('size_bytes', 'must be between 1 KiB and 2 MiB');
  end if;
  if admin_register_firmware.storage_path is null
     or admin_register_firmware.storage_path !~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}\.bin$'
     or admin_register_firmware.storage_path ~ '\.\.' then
    perform private.invalid('storage_path', 'must be a relative path ending in .bin');
  end if;
  if admin_register_firmware.channel not in ('stable', 'beta') then
    perform private.invalid('channel', 'must be stable or beta');
  end if;
  if admin_register_firmware.min_version_code is not null
     and admin_register_firmware.min_version_code >= admin_register_firmware.version_code then
    perform private.invalid('min_version_code', 'must be below version_code');
  end if;
  if exists (select 1 from public.firmware_versions x where x.version = admin_register_firmware.version
               and x.model = admin_register_firmware.model) then
    raise exception 'version: % is already registered', admin_register_firmware.version
      using errcode = '23505', detail = 'version';
  end if;
  insert into public.firmware_versions (version, version_code, model, hardware_revisions, channel, changelog,
                                        storage_path, size_bytes, sha256, min_version_code, is_required)
  values (admin_register_firmware.version, admin_register_firmware.version_code, admin_register_firmware.model,
          coalesce(admin_register_firmware.hardware_revisions, '{}'), admin_register_firmware.channel,
          coalesce(admin_register_firmware.changelog, ''), admin_register_firmware.storage_path,
          admin_register_firmware.size_bytes, admin_register_firmware.sha256,
          admin_register_firmware.min_version_code, coalesce(admin_register_firmware.is_required, false))
  returning * into f;
  perform private.write_audit('firmware.registered', 'firmware', f.id::text,
    jsonb_build_object('version', f.version, 'version_code', f.version_code, 'sha256', f.sha256));
  return f;
end
$$;

create function public.admin_set_firmware_status(firmware_id uuid, status text) returns public.firmware_versions
language plpgsql security definer
set search_path = ''
as $$
declare
  f public.firmware_versions;
begin
  perform private.require_admin();
  if admin_set_firmware_status.status not in ('published', 'deprecated') then
    perform private.invalid('status', 'must be published or deprecated');
  end if;
  update public.firmware_versions x set status = admin_set_firmware_status.status
   where x.id = admin_set_firmware_status.firmware_id
  returning * into f;
  if not found then
    raise exception 'firmware version not found' using errcode = 'P0002';
  end if;
  perform private.write_audit('firmware.' || f.status, 'firmware', f.id::text, jsonb_build_object('version', f.version));
  return f;
end
$$;

revoke all on function public.admin_register_firmware(text, integer, text, integer, text, text, text, text, text[], integer, boolean) from public;
revoke all on function public.admin_set_firmware_status(uuid, text) from public;
grant execute on function public.admin_register_firmware(text, integer, text, integer, text, text, text, text, text[], integer, boolean)
  to authenticated, service_role;
grant execute on function public.admin_set_firmware_status(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- storage

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('firmware-binaries', 'firmware-binaries', false, 2097152, array['application/octet-stream'])
on conflict (id) do nothing;

create function private.firmware_object_published(object_name text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.firmware_versions f where f.storage_path = object_name and f.status = 'published')
$$;
create function private.firmware_object_locked(object_name text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.firmware_versions f where f.storage_path = object_name and f.status <> 'draft')
$$;
revoke all on function private.firmware_object_published(text), private.firmware_object_locked(text) from public;
grant execute on function private.firmware_object_published(text), private.firmware_object_locked(text)
  to authenticated, service_role;

create policy firmware_binaries_read on storage.objects for select to authenticated
  using (bucket_id = 'firmware-binaries'
         and (private.firmware_object_published(name) or (select private.is_admin())));
create policy firmware_binaries_admin_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'firmware-binaries' and (select private.is_admin())
              and not private.firmware_object_locked(name));
create policy firmware_binaries_admin_update on storage.objects for update to authenticated
  using (bucket_id = 'firmware-binaries' and (select private.is_admin()) and not private.firmware_object_locked(name))
  with check (bucket_id = 'firmware-binaries' and (select private.is_admin()) and not private.firmware_object_locked(name));
create policy firmware_binaries_admin_delete on storage.objects for delete to authenticated
  using (bucket_id = 'firmware-binaries' and (select private.is_admin()) and not private.firmware_object_locked(name));
