-- Demo data for the local stack (`make db` loads it once through `supabase db push --include-seed`).
-- Deterministic: ids are derived from names, "random" values from hashes, so every load is identical.
-- Passwords are all `dualtetrax-demo`.

insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, raw_user_meta_data, raw_app_meta_data)
select md5('demo-user-' || u.email)::uuid, 'authenticated', 'authenticated', u.email,
       extensions.crypt('dualtetrax-demo', extensions.gen_salt('bf', 6)), now(),
       jsonb_build_object('display_name', u.name, 'timezone', u.tz, 'locale', u.locale),
       '{"provider": "email", "providers": ["email"]}'::jsonb
from (values
  ('admin@dualtetrax.test', 'Fleet Admin', 'Asia/Seoul', 'en'),
  ('mina@example.test', '김민아', 'Asia/Seoul', 'ko'),
  ('jiho@example.test', '박지호', 'Asia/Seoul', 'ko'),
  ('kenji@example.test', '佐藤健二', 'Asia/Tokyo', 'ja'),
  ('mei@example.test', '王美', 'Asia/Shanghai', 'zh'),
  ('sofia@example.test', 'Sofía Martín', 'Europe/Madrid', 'es'),
  ('ana@example.test', 'Ana Souza', 'America/Sao_Paulo', 'pt'),
  ('somchai@example.test', 'สมชาย ใจดี', 'Asia/Bangkok', 'th'),
  ('linh@example.test', 'Nguyễn Linh', 'Asia/Ho_Chi_Minh', 'vi'),
  ('emma@example.test', 'Emma Brown', 'America/Los_Angeles', 'en'),
  -- the rest of the demo fleet: more of the same markets, and zones with half-hour offsets, southern-hemisphere
  -- summer time and days that start before UTC's (Auckland) or after it (the Americas)
  ('seoyeon@example.test', '이서연', 'Asia/Seoul', 'ko'),
  ('hyunwoo@example.test', '최현우', 'Asia/Seoul', 'ko'),
  ('jisoo@example.test', '정지수', 'Asia/Seoul', 'ko'),
  ('yuki@example.test', '鈴木由紀', 'Asia/Tokyo', 'ja'),
  ('haruto@example.test', '高橋陽翔', 'Asia/Tokyo', 'ja'),
  ('wei@example.test', '李伟', 'Asia/Shanghai', 'zh'),
  ('yating@example.test', '陳雅婷', 'Asia/Taipei', 'zh'),
  ('lucia@example.test', 'Lucía García', 'Europe/Madrid', 'es'),
  ('camila@example.test', 'Camila López', 'America/Mexico_City', 'es'),
  ('mateo@example.test', 'Mateo Fernández', 'America/Argentina/Buenos_Aires', 'es'),
  ('beatriz@example.test', 'Beatriz Lima', 'America/Sao_Paulo', 'pt'),
  ('joao@example.test', 'João Pereira', 'Europe/Lisbon', 'pt'),
  ('niran@example.test', 'นิรันดร์ ศรีสุข', 'Asia/Bangkok', 'th'),
  ('minh@example.test', 'Trần Minh', 'Asia/Ho_Chi_Minh', 'vi'),
  ('olivia@example.test', 'Olivia Smith', 'America/New_York', 'en'),
  ('liam@example.test', 'Liam Johnson', 'America/Chicago', 'en'),
  ('chloe@example.test', 'Chloe Wilson', 'Australia/Sydney', 'en'),
  ('aroha@example.test', 'Aroha Ngata', 'Pacific/Auckland', 'en'),
  ('priya@example.test', 'Priya Sharma', 'Asia/Kolkata', 'en'),
  ('siti@example.test', 'Siti Rahma', 'Asia/Jakarta', 'en'),
  ('grace@example.test', 'Grace Tan', 'Asia/Singapore', 'en'),
  ('hannah@example.test', 'Hannah Müller', 'Europe/Berlin', 'en'),
  ('amelia@example.test', 'Amelia Taylor', 'Europe/London', 'en'),
  ('giulia@example.test', 'Giulia Romano', 'Europe/Rome', 'en'),
  ('zanele@example.test', 'Zanele Dube', 'Africa/Johannesburg', 'en')
) as u(email, name, tz, locale)
on conflict (id) do nothing;

update public.profiles set role = 'admin' where id = md5('demo-user-admin@dualtetrax.test')::uuid;

-- The demo users have used their devices for months: signed up 120 days ago, so the worker's report schedule
-- (monthly for everyone, weekly for those who turned it on) produces their reports for the last local month
-- and week when `make run` starts the worker.
update public.profiles set created_at = now() - interval '120 days'
 where email like '%@example.test' and created_at > now() - interval '120 days';
update public.notification_settings set weekly_report = true
 where user_id in (select id from public.profiles
                   where email in ('mina@example.test', 'sofia@example.test', 'somchai@example.test',
                                   'olivia@example.test', 'yuki@example.test', 'aroha@example.test'));

-- one device each, two for a few users; one beta device
insert into public.devices (id, owner_id, serial_number, model, hardware_revision, firmware_version, ble_address, nickname, is_beta)
select md5('demo-device-' || p.email || '-' || k)::uuid, p.id,
       'DTX-' || upper(substr(md5(p.email || k), 1, 8)), 'DualTetraX', 'rev-c', '1.0.23',
       upper(regexp_replace(substr(md5('ble' || p.email || k), 1, 12), '(..)(?!$)', '\1:', 'g')),
       case k when 1 then 'Bathroom' else 'Travel' end,
       p.email = 'kenji@example.test'
from public.profiles p, generate_series(1, 2) as k
where p.email like '%@example.test'
  and (k = 1 or p.email in ('mina@example.test', 'sofia@example.test', 'emma@example.test',
                            'wei@example.test', 'olivia@example.test', 'chloe@example.test', 'camila@example.test'))
on conflict (id) do nothing;

-- 90 days of sessions: most days one or two, some days none
insert into public.usage_sessions (id, device_id, user_id, shot_type, device_mode, level, start_time, end_time,
  working_duration, pause_duration, pause_count, termination_reason, completion_percent,
  had_temperature_warning, had_battery_warning, battery_start_mv, battery_end_mv, time_synced)
select md5('demo-session-' || d.id || '-' || day || '-' || slot)::uuid, d.id, d.owner_id,
       shot, (array[1, 17, 33])[shot + 1] + case when shot < 2 then h % 4 else 0 end, 1 + h % 3,
       start_at, start_at + make_interval(secs => work + pause),
       work, pause, case when pause > 0 then 1 else 0 end,
       case when work >= 480 then 0 else 1 end, least(100, work * 100 / 480),
       h % 29 = 0, h % 31 = 0, 4150 - h % 100, 3900 - h % 150, true
from public.devices d
join public.profiles p on p.id = d.owner_id
cross join generate_series(0, 89) as day
cross join generate_series(1, 2) as slot
cross join lateral (select ('x' || substr(md5(d.id::text || day || slot), 1, 7))::bit(28)::int as h) as r
cross join lateral (select h % 3 as shot,
                           case when h % 5 = 0 then 240 + h % 200 else 480 end as work,
                           case when h % 4 = 0 then 30 + h % 60 else 0 end as pause,
                           -- mornings and evenings in the owner's own time zone
                           (date_trunc('day', now() at time zone p.timezone) - make_interval(days => day)
                              + make_interval(hours => 7 + 12 * (slot - 1) + h % 3, mins => h % 60))
                             at time zone p.timezone as start_at) as s
where d.id in (select md5('demo-device-' || p.email || '-' || k)::uuid from public.profiles p, generate_series(1, 2) k
                 where p.email like '%@example.test')
  and (slot = 1 and h % 6 <> 0 or slot = 2 and h % 3 = 0)
  and start_at < now()
on conflict (id) do nothing;

insert into public.battery_samples (session_id, elapsed_seconds, voltage_mv)
select s.id, array_agg(m * 60 order by m), array_agg(s.battery_start_mv - m * 25 order by m)
from public.usage_sessions s, generate_series(0, s.working_duration / 60) as m
where s.device_id in (select md5('demo-device-' || p.email || '-' || k)::uuid from public.profiles p, generate_series(1, 2) k
                      where p.email like '%@example.test')
  and s.battery_start_mv is not null
group by s.id
on conflict (session_id) do nothing;

insert into public.goals (user_id, goal_type, target_minutes, start_date)
select id, 'weekly', 60, date_trunc('week', now())::date - 28 from public.profiles where email like '%@example.test'
on conflict do nothing;

insert into public.announcements (id, title, body, kind, is_published)
values (md5('demo-announcement-1')::uuid, 'Welcome to DualTetraX', 'Your sessions now sync to the cloud.', 'notice', true)
on conflict (id) do nothing;

-- A staged OTA rollout to watch in `make run`: a lab fleet of 40 more devices (owned by one lab account), the
-- published demo firmware 1.1.0 and an active rollout 10 % -> 50 % -> 100 % with one-minute soaks.
-- `python -m dtx_worker.demo_fleet` (started by `make run`) makes the devices check in and report; the worker
-- advances the stages. The binary is build_test_image(version="1.1.0", size=65536) (the simulator writes it
-- to .local/storage if it is missing); at 10 % this rollout selects 8 of the 81 devices, at 50 % 41.
insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, raw_user_meta_data, raw_app_meta_data)
values (md5('demo-user-lab@dualtetrax.test')::uuid, 'authenticated', 'authenticated', 'lab@dualtetrax.test',
        extensions.crypt('dualtetrax-demo', extensions.gen_salt('bf', 6)), now(),
        '{"display_name": "Device Lab", "timezone": "Asia/Seoul", "locale": "en"}'::jsonb,
        '{"provider": "email", "providers": ["email"]}'::jsonb)
on conflict (id) do nothing;

insert into public.devices (id, owner_id, serial_number, model, hardware_revision, firmware_version, ble_address, nickname)
select md5('demo-device-lab-' || k)::uuid, md5('demo-user-lab@dualtetrax.test')::uuid,
       'DTX-LAB-' || lpad(k::text, 3, '0'), 'DualTetraX', 'rev-c', '1.0.23',
       upper(regexp_replace(substr(md5('ble-lab-' || k), 1, 12), '(..)(?!$)', '\1:', 'g')),
       'Lab ' || lpad(k::text, 2, '0')
from generate_series(1, 40) as k
on conflict (id) do nothing;

insert into public.firmware_versions (id, version, version_code, model, channel, changelog, storage_path, size_bytes, sha256)
select md5('demo-firmware-DualTetraX-1.1.0')::uuid, '1.1.0', 10100, 'DualTetraX', 'stable',
       'Demo release: smoother E-Shot ramp, battery warning at 3.4 V.', 'DualTetraX/1.1.0/dualtetrax-1.1.0.bin', 65536,
       '2e4e7d442a6694872b834d8b6ae81fdce9113fbed2e48971f7fff96577073345'
where not exists (select 1 from public.firmware_versions where model = 'DualTetraX' and version_code >= 10100);
update public.firmware_versions set status = 'published'
 where id = md5('demo-firmware-DualTetraX-1.1.0')::uuid and status = 'draft';
insert into storage.objects (bucket_id, name, metadata)
values ('firmware-binaries', 'DualTetraX/1.1.0/dualtetrax-1.1.0.bin',
        '{"size": 65536, "mimetype": "application/octet-stream"}'::jsonb)
on conflict (bucket_id, name) do nothing;

insert into public.firmware_rollouts (id, firmware_version_id, name, strategy, stages, model, channel,
  success_threshold, failure_threshold, min_sample_size, in_progress_timeout_minutes, status, started_at,
  stage_started_at, status_reason)
select md5('demo-rollout-1.1.0')::uuid, f.id, 'Demo: 1.1.0 to the whole fleet', 'staged',
       '[{"percent": 10, "soak_minutes": 1}, {"percent": 50, "soak_minutes": 1}, {"percent": 100, "soak_minutes": 1}]',
       'DualTetraX', 'stable', 80, 40, 3, 5, 'active', now(), now(), 'started by the demo seed'
from public.firmware_versions f
where f.id = md5('demo-firmware-DualTetraX-1.1.0')::uuid and f.status = 'published'
  and not exists (select 1 from public.firmware_rollouts r
                   where r.model = 'DualTetraX' and r.channel = 'stable' and r.status in ('active', 'paused'))
on conflict do nothing;
