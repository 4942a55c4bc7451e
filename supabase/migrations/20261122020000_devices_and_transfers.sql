-- Devices and ownership transfers.
-- Owners register devices through register_device() (serial numbers are global, so a direct INSERT
-- would leak constraint names); they may rename, record the firmware/BLE address, and deactivate.
-- Counters (total_sessions, last_synced_at, last_session_at) are maintained by the server only.
-- Beta flag and tags (used for rollout targeting) are admin-only.

create function private.valid_tags(tags text[]) returns boolean
language sql immutable
set search_path = ''
as $$
  select cardinality(tags) <= 20
     and coalesce(array_ndims(tags), 1) = 1
     and not exists (select 1 from unnest(tags) t where t is null or t !~ '^[a-z0-9][a-z0-9_.:-]{0,31}$')
$$;

create table public.devices (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references public.profiles (id) on delete cascade,
  serial_number text not null unique check (serial_number ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$'),
  model text not null default 'DualTetraX' check (model ~ '^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$'),
  hardware_revision text check (hardware_revision ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
  firmware_version text check (firmware_version ~ '^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]{1,32})?$'),
  ble_address text check (ble_address ~ '^[0-9A-F]{2}(:[0-9A-F]{2}){5}$'),
  nickname text check (nickname is null or char_length(btrim(nickname)) between 1 and 100),
  is_beta boolean not null default false,
  tags text[] not null default '{}' check (private.valid_tags(tags)),
  is_active boolean not null default true,
  total_sessions integer not null default 0 check (total_sessions >= 0),
  last_synced_at timestamptz,
  last_session_at timestamptz,
  registered_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index devices_owner_idx on public.devices (owner_id);
create trigger devices_updated_at before update on public.devices
  for each row execute function private.set_updated_at();

alter table public.devices enable row level security;
create policy devices_select on public.devices for select to authenticated
  using (owner_id = (select auth.uid()) or (select private.is_admin()));
create policy devices_update_own on public.devices for update to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy devices_service on public.devices for all to service_role using (true) with check (true);

grant select on public.devices to authenticated, service_role;
grant update (nickname, firmware_version, hardware_revision, ble_address, is_active)
  on public.devices to authenticated;
grant insert, update, delete on public.devices to service_role;

-- Admin-only device attributes go through an audited RPC.
create function public.admin_update_device(device_id uuid, is_beta boolean default null, tags text[] default null)
returns public.devices
language plpgsql security definer
set search_path = ''
as $$
declare
  d public.devices;
begin
  perform private.require_admin();
  if admin_update_device.tags is not null and not private.valid_tags(admin_update_device.tags) then
    perform private.invalid('tags', 'at most 20 tags of lowercase letters, digits, and _ . : - (max 32 chars)');
  end if;
  update public.devices x
     set is_beta = coalesce(admin_update_device.is_beta, x.is_beta),
         tags = coalesce(admin_update_device.tags, x.tags)
   where x.id = admin_update_device.device_id
  returning * into d;
  if not found then
    raise exception 'device not found' using errcode = 'P0002';
  end if;
  perform private.write_audit('device.updated', 'device', d.id::text,
    jsonb_build_object('is_beta', d.is_beta, 'tags', to_jsonb(d.tags)));
  return d;
end
$$;
revoke all on function public.admin_update_device(uuid, boolean, text[]) from public;
grant execute on function public.admin_update_device(uuid, boolean, text[]) to authenticated, service_role;

create function private.require_active_user() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  uid uuid := auth.uid();
begin
  if uid is null then
    raise exception 'sign in required' using errcode = '42501';
  end if;
  if not private.is_active_user() then
    raise exception 'this account is deactivated' using errcode = '42501';
  end if;
  return uid;
end
$$;
revoke all on function private.require_active_user() from public;
grant execute on function private.require_active_user() to authenticated;

-- Register a device to the caller. Re-registering one's own device (same serial) updates and reactivates
-- it; a serial owned by someone else is refused without saying who owns it.
create function public.register_device(
  serial_number text,
  model text default 'DualTetraX',
  hardware_revision text default null,
  firmware_version text default null,
  ble_address text default null,
  nickname text default null
) returns public.devices
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  existing public.devices;
  d public.devices;
  sn text := btrim(register_device.serial_number);
  ble text := upper(btrim(register_device.ble_address));
begin
  if sn is null or sn !~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$' then
    perform private.invalid('serial_number', 'must be 3-64 letters, digits, ''-'' or ''_''');
  end if;
  if register_device.model is null or register_device.model !~ '^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$' then
    perform private.invalid('model', 'must be 1-64 letters, digits, spaces, ''.'', ''-'' or ''_''');
  end if;
  if register_device.hardware_revision is not null
     and register_device.hardware_revision !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$' then
    perform private.invalid('hardware_revision', 'must be 1-32 letters, digits, ''.'', ''-'' or ''_''');
  end if;
  if register_device.firmware_version is not null
     and register_device.firmware_version !~ '^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]{1,32})?$' then
    perform private.invalid('firmware_version', 'must be a semantic version such as 1.0.23 or 1.0.23-rc1');
  end if;
  if ble is not null and ble !~ '^[0-9A-F]{2}(:[0-9A-F]{2}){5}$' then
    perform private.invalid('ble_address', 'must look like AA:BB:CC:DD:EE:FF');
  end if;
  if register_device.nickname is not null and char_length(btrim(register_device.nickname)) not between 1 and 100 then
    perform private.invalid('nickname', 'must be 1-100 characters');
  end if;

  select * into existing from public.devices x where x.serial_number = sn for update;
  if found then
    if existing.owner_id <> uid then
      raise exception 'serial_number: this device is registered to another account; ask its owner to transfer it'
        using errcode = '23505', detail = 'serial_number';
    end if;
    update public.devices x set
      model = register_device.model,
      hardware_revision = coalesce(register_device.hardware_revision, x.hardware_revision),
      firmware_version = coalesce(register_device.firmware_version, x.firmware_version),
      ble_address = coalesce(ble, x.ble_address),
      nickname = coalesce(btrim(register_device.nickname), x.nickname),
      is_active = true
    where x.id = existing.id
    returning * into d;
    return d;
  end if;

  insert into public.devices (owner_id, serial_number, model, hardware_revision, firmware_version, ble_address, nickname)
  values (uid, sn, register_device.model, register_device.hardware_revision, register_device.firmware_version,
          ble, btrim(register_device.nickname))
  on conflict on constraint devices_serial_number_key do nothing
  returning * into d;
  if d.id is null then
    -- lost a race with a concurrent registration of the same serial
    raise exception 'serial_number: this device is registered to another account; ask its owner to transfer it'
      using errcode = '23505', detail = 'serial_number';
  end if;
  return d;
end
$$;
revoke all on function public.register_device(text, text, text, text, text, text) from public;
grant execute on function public.register_device(text, text, text, text, text, text) to authenticated;

-- ---------------------------------------------------------------------------------------- transfers

create table public.device_transfers (
  id uuid primary key default gen_random_uuid(),
  device_id uuid not null references public.devices (id) on delete cascade,
  from_user_id uuid not null references public.profiles (id) on delete cascade,
  to_user_id uuid not null references public.profiles (id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'accepted', 'rejected', 'cancelled')),
  message text check (message is null or char_length(message) <= 500),
  created_at timestamptz not null default now(),
  responded_at timestamptz,
  check (from_user_id <> to_user_id),
  check ((status = 'pending') = (responded_at is null))
);
create unique index device_transfers_one_pending on public.device_transfers (device_id) where status = 'pending';
create index device_transfers_to_idx on public.device_transfers (to_user_id, status);
create index device_transfers_from_idx on public.device_transfers (from_user_id, status);

alter table public.device_transfers enable row level security;
create policy device_transfers_select on public.device_transfers for select to authenticated
  using (from_user_id = (select auth.uid()) or to_user_id = (select auth.uid()) or (select private.is_admin()));
create policy device_transfers_service on public.device_transfers for all to service_role using (true) with check (true);
grant select on public.device_transfers to authenticated, service_role;
grant insert, update, delete on public.device_transfers to service_role;

create function public.offer_device_transfer(device_id uuid, to_email text, message text default null)
returns public.device_transfers
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  d public.devices;
  recipient uuid;
  t public.device_transfers;
begin
  if offer_device_transfer.device_id is null then
    perform private.invalid('device_id', 'is required');
  end if;
  if offer_device_transfer.to_email is null or offer_device_transfer.to_email !~ '^[^@\s]+@[^@\s]+$' then
    perform private.invalid('to_email', 'must be an email address');
  end if;
  if offer_device_transfer.message is not null and char_length(offer_device_transfer.message) > 500 then
    perform private.invalid('message', 'must be at most 500 characters');
  end if;
  select * into d from public.devices x where x.id = offer_device_transfer.device_id for update;
  if not found or d.owner_id <> uid then
    raise exception 'device not found' using errcode = 'P0002';
  end if;
  select p.id into recipient from public.profiles p
   where lower(p.email) = lower(btrim(offer_device_transfer.to_email)) and p.is_active;
  if recipient is null then
    raise exception 'to_email: no active account uses this email' using errcode = 'P0002', detail = 'to_email';
  end if;
  if recipient = uid then
    perform private.invalid('to_email', 'is your own account');
  end if;
  if exists (select 1 from public.device_transfers x where x.device_id = d.id and x.status = 'pending') then
    raise exception 'this device already has a pending transfer; cancel it first' using errcode = '23505';
  end if;
  insert into public.device_transfers (device_id, from_user_id, to_user_id, message)
  values (d.id, uid, recipient, offer_device_transfer.message)
  returning * into t;
  return t;
end
$$;

-- The recipient accepts or rejects. Ownership moves only on acceptance, and only if the offering user
-- still owns the device. Past sessions stay with the user who recorded them.
create function public.respond_device_transfer(transfer_id uuid, accept boolean)
returns public.device_transfers
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  t public.device_transfers;
begin
  if respond_device_transfer.accept is null then
    perform private.invalid('accept', 'is required');
  end if;
  select * into t from public.device_transfers x where x.id = respond_device_transfer.transfer_id for update;
  if not found or t.to_user_id <> uid then
    raise exception 'transfer not found' using errcode = 'P0002';
  end if;
  if t.status <> 'pending' then
    raise exception 'this transfer is already %', t.status using errcode = 'P0001';
  end if;
  if respond_device_transfer.accept then
    update public.devices d set owner_id = t.to_user_id
     where d.id = t.device_id and d.owner_id = t.from_user_id;
    if not found then
      update public.device_transfers x set status = 'cancelled', responded_at = now() where x.id = t.id;
      raise exception 'the device changed owner since this offer; the offer is void' using errcode = 'P0001';
    end if;
  end if;
  update public.device_transfers x
     set status = case when respond_device_transfer.accept then 'accepted' else 'rejected' end,
         responded_at = now()
   where x.id = t.id
  returning * into t;
  return t;
end
$$;

create function public.cancel_device_transfer(transfer_id uuid)
returns public.device_transfers
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  t public.device_transfers;
begin
  select * into t from public.device_transfers x where x.id = cancel_device_transfer.transfer_id for update;
  if not found or t.from_user_id <> uid then
    raise exception 'transfer not found' using errcode = 'P0002';
  end if;
  if t.status <> 'pending' then
    raise exception 'this transfer is already %', t.status using errcode = 'P0001';
  end if;
  update public.device_transfers x set status = 'cancelled', responded_at = now()
   where x.id = t.id returning * into t;
  return t;
end
$$;

revoke all on function public.offer_device_transfer(uuid, text, text) from public;
revoke all on function public.respond_device_transfer(uuid, boolean) from public;
revoke all on function public.cancel_device_transfer(uuid) from public;
grant execute on function public.offer_device_transfer(uuid, text, text) to authenticated;
grant execute on function public.respond_device_transfer(uuid, boolean) to authenticated;
grant execute on function public.cancel_device_transfer(uuid) to authenticated;
