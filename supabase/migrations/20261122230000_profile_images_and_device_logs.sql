-- The two remaining storage buckets of the architecture: profile photos and device diagnostic logs. Both
-- private; each user works only in their own folder; admins (support) read and remove.
--
--   profile-images  <user id>/<name>.(jpg|jpeg|png|webp)          up to 2 MB; the owner uploads, replaces, deletes
--   device-logs     <user id>/<device id>/<name>.(log|txt|gz|bin)  up to 10 MB; the owner uploads for a device they
--                   own and that is active, and deletes; nobody rewrites a log (upload a new one instead)
--
-- The Storage server enforces the size and MIME limits of the bucket row and runs the object queries as the
-- caller, so these policies decide who may do what. Direct deletes stay refused by the platform's guard unless
-- the Storage server marks the transaction.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('profile-images', 'profile-images', false, 2097152, array['image/jpeg', 'image/png', 'image/webp']),
       ('device-logs', 'device-logs', false, 10485760,
        array['text/plain', 'application/gzip', 'application/octet-stream'])
on conflict (id) do nothing;

-- An object name the caller may create in profile-images: directly in their own folder, a plain file name.
create function private.own_profile_image_name(object_name text) returns boolean
language sql stable
set search_path = ''
as $$
  select object_name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(jpg|jpeg|png|webp)$'
     and split_part(object_name, '/', 1) = auth.uid()::text
$$;

-- An object name the caller may create in device-logs: their own folder, then the id of an active device they
-- own, then a plain file name. Definer so that the device lookup does not depend on the devices table's RLS;
-- the CASE keeps the uuid cast away from names that are not uuids.
create function private.own_device_log_name(object_name text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select case
    when object_name !~ ('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
                         '/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
                         '/[A-Za-z0-9][A-Za-z0-9._-]{0,119}\.(log|txt|gz|bin)$')
      or split_part(object_name, '/', 1) <> auth.uid()::text then false
    else exists (select 1 from public.devices d
                  where d.id = split_part(object_name, '/', 2)::uuid and d.owner_id = auth.uid() and d.is_active)
  end
$$;

revoke all on function private.own_profile_image_name(text), private.own_device_log_name(text) from public;
grant execute on function private.own_profile_image_name(text), private.own_device_log_name(text) to authenticated;

-- profile-images
create policy profile_images_read on storage.objects for select to authenticated
  using (bucket_id = 'profile-images'
         and ((storage.foldername(name))[1] = (select auth.uid())::text or (select private.is_admin())));
create policy profile_images_insert_own on storage.objects for insert to authenticated
  with check (bucket_id = 'profile-images' and (select private.is_active_user())
              and private.own_profile_image_name(name));
create policy profile_images_update_own on storage.objects for update to authenticated
  using (bucket_id = 'profile-images' and (storage.foldername(name))[1] = (select auth.uid())::text)
  with check (bucket_id = 'profile-images' and (select private.is_active_user())
              and private.own_profile_image_name(name));
create policy profile_images_delete on storage.objects for delete to authenticated
  using (bucket_id = 'profile-images'
         and ((storage.foldername(name))[1] = (select auth.uid())::text or (select private.is_admin())));

-- device-logs
create policy device_logs_read on storage.objects for select to authenticated
  using (bucket_id = 'device-logs'
         and ((storage.foldername(name))[1] = (select auth.uid())::text or (select private.is_admin())));
create policy device_logs_insert_own on storage.objects for insert to authenticated
  with check (bucket_id = 'device-logs' and (select private.is_active_user()) and private.own_device_log_name(name));
create policy device_logs_delete on storage.objects for delete to authenticated
  using (bucket_id = 'device-logs'
         and ((storage.foldername(name))[1] = (select auth.uid())::text or (select private.is_admin())));
