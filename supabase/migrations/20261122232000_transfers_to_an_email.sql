-- A device transfer is offered to an email address, not to an account looked up when the offer is made.
--
-- Before, an offer to an address without an active account failed with "no active account uses this email", so
-- any device owner could learn whether an address is registered. Now every well-formed address gets the same
-- answer: a pending offer addressed to that email. Whoever holds an account with that email, confirmed, sees the
-- offer and may accept or reject it (also after signing up later); the response fills in to_user_id. The sender
-- learns nothing beyond the outcome. Offers made before this migration keep their recipient account.

alter table public.device_transfers add column to_email text;
update public.device_transfers t
   set to_email = coalesce(nullif(lower(btrim(p.email)), ''), 'unknown@invalid.invalid')
  from public.profiles p
 where p.id = t.to_user_id;
alter table public.device_transfers
  alter column to_email set not null,
  add constraint device_transfers_to_email_check
    check (char_length(to_email) <= 320 and to_email = lower(btrim(to_email)) and to_email ~ '^[^@\s]+@[^@\s]+$'),
  alter column to_user_id drop not null,
  -- the account that answered; an offer cancelled or still pending may have none
  add constraint device_transfers_responder_check check (status not in ('accepted', 'rejected') or to_user_id is not null);
create index device_transfers_to_email_idx on public.device_transfers (to_email, status);
comment on column public.device_transfers.to_email is
  'The address the offer was made to (lower case). Any account with this confirmed email may answer it.';
comment on column public.device_transfers.to_user_id is
  'The account that accepted or rejected the offer (set when made, for offers older than to_email).';

-- The caller's email if their account has confirmed it, in lower case; otherwise null. Only a confirmed address
-- can claim an offer, so signing up with somebody else's address (where confirmations are off) gains nothing.
create function private.confirmed_email() returns text
language sql stable security definer
set search_path = ''
as $$
  select lower(u.email) from auth.users u where u.id = auth.uid() and u.email_confirmed_at is not null
$$;
revoke all on function private.confirmed_email() from public;
grant execute on function private.confirmed_email() to authenticated;

drop policy device_transfers_select on public.device_transfers;
create policy device_transfers_select on public.device_transfers for select to authenticated
  using (from_user_id = (select auth.uid()) or to_user_id = (select auth.uid())
         or to_email = (select private.confirmed_email()) or (select private.is_admin()));

create or replace function public.offer_device_transfer(device_id uuid, to_email text, message text default null)
returns public.device_transfers
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_active_user();
  address text := lower(btrim(offer_device_transfer.to_email));
  d public.devices;
  t public.device_transfers;
begin
  if offer_device_transfer.device_id is null then
    perform private.invalid('device_id', 'is required');
  end if;
  if address is null or address !~ '^[^@\s]+@[^@\s]+$' or char_length(address) > 320 then
    perform private.invalid('to_email', 'must be an email address');
  end if;
  if offer_device_transfer.message is not null and char_length(offer_device_transfer.message) > 500 then
    perform private.invalid('message', 'must be at most 500 characters');
  end if;
  select * into d from public.devices x where x.id = offer_device_transfer.device_id for update;
  if not found or d.owner_id <> uid then
    raise exception 'device not found' using errcode = 'P0002';
  end if;
  if address = (select lower(u.email) from auth.users u where u.id = uid) then
    perform private.invalid('to_email', 'is your own account');
  end if;
  if exists (select 1 from public.device_transfers x where x.device_id = d.id and x.status = 'pending') then
    raise exception 'this device already has a pending transfer; cancel it first' using errcode = '23505';
  end if;
  insert into public.device_transfers (device_id, from_user_id, to_email, message)
  values (d.id, uid, address, offer_device_transfer.message)
  returning * into t;
  return t;
end
$$;

-- The recipient accepts or rejects: the account the offer names, or for an offer to an email, any account with
-- that confirmed email, which becomes the recipient. Ownership moves only on acceptance, and only if the
-- offering user still owns the device. Past sessions stay with the user who recorded them.
create or replace function public.respond_device_transfer(transfer_id uuid, accept boolean)
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
  if not found or t.from_user_id = uid
     or not coalesce(t.to_user_id = uid, t.to_email = private.confirmed_email(), false) then
    raise exception 'transfer not found' using errcode = 'P0002';
  end if;
  if t.status <> 'pending' then
    raise exception 'this transfer is already %', t.status using errcode = 'P0001';
  end if;
  if respond_device_transfer.accept then
    update public.devices d set owner_id = uid
     where d.id = t.device_id and d.owner_id = t.from_user_id;
    if not found then
      update public.device_transfers x set status = 'cancelled', responded_at = now() where x.id = t.id;
      raise exception 'the device changed owner since this offer; the offer is void' using errcode = 'P0001';
    end if;
  end if;
  update public.device_transfers x
     set status = case when respond_device_transfer.accept then 'accepted' else 'rejected' end,
         responded_at = now(), to_user_id = uid
   where x.id = t.id
  returning * into t;
  return t;
end
$$;
