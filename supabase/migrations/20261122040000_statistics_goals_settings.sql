-- Per-day statistics (computed by the worker), goals, skin profiles, notification settings and in-app
-- notifications.

create table public.daily_statistics (
  user_id uuid not null references public.profiles (id) on delete cascade,
  device_id uuid not null references public.devices (id) on delete cascade,
  stat_date date not null,
  sessions integer not null default 0 check (sessions >= 0),
  working_seconds integer not null default 0 check (working_seconds >= 0),
  pause_seconds integer not null default 0 check (pause_seconds >= 0),
  ushot_sessions integer not null default 0 check (ushot_sessions >= 0),
  ushot_seconds integer not null default 0 check (ushot_seconds >= 0),
  eshot_sessions integer not null default 0 check (eshot_sessions >= 0),
  eshot_seconds integer not null default 0 check (eshot_seconds >= 0),
  led_sessions integer not null default 0 check (led_sessions >= 0),
  led_seconds integer not null default 0 check (led_seconds >= 0),
  -- {"<device_mode>": {"sessions": n, "seconds": s}}
  mode_breakdown jsonb not null default '{}'::jsonb check (jsonb_typeof(mode_breakdown) = 'object'),
  -- {"<level>": {"sessions": n, "seconds": s}}
  level_breakdown jsonb not null default '{}'::jsonb check (jsonb_typeof(level_breakdown) = 'object'),
  warning_sessions integer not null default 0 check (warning_sessions >= 0),
  temperature_warnings integer not null default 0 check (temperature_warnings >= 0),
  battery_warnings integer not null default 0 check (battery_warnings >= 0),
  estimated_sessions integer not null default 0 check (estimated_sessions >= 0),
  first_session_at timestamptz,
  last_session_at timestamptz,
  computed_at timestamptz not null default now(),
  primary key (user_id, device_id, stat_date),
  check (ushot_sessions + eshot_sessions + led_sessions = sessions),
  check (ushot_seconds + eshot_seconds + led_seconds = working_seconds),
  check (first_session_at is null or last_session_at >= first_session_at)
);
create index daily_statistics_user_date_idx on public.daily_statistics (user_id, stat_date);

alter table public.daily_statistics enable row level security;
create policy daily_statistics_select on public.daily_statistics for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy daily_statistics_service on public.daily_statistics for all to service_role using (true) with check (true);
grant select on public.daily_statistics to authenticated, service_role;

-- ---------------------------------------------------------------------------------------- goals

create table public.goals (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references public.profiles (id) on delete cascade,
  goal_type text not null check (goal_type in ('weekly', 'monthly')),
  target_minutes integer not null check (target_minutes between 1 and 10000),
  start_date date not null,
  end_date date,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (end_date is null or end_date >= start_date)
);
create index goals_user_idx on public.goals (user_id) where is_active;
create trigger goals_updated_at before update on public.goals
  for each row execute function private.set_updated_at();

alter table public.goals enable row level security;
create policy goals_select on public.goals for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy goals_insert_own on public.goals for insert to authenticated
  with check (user_id = (select auth.uid()) and (select private.is_active_user()));
create policy goals_update_own on public.goals for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy goals_delete_own on public.goals for delete to authenticated
  using (user_id = (select auth.uid()));
create policy goals_service on public.goals for all to service_role using (true) with check (true);
grant select, delete on public.goals to authenticated;
grant insert (user_id, goal_type, target_minutes, start_date, end_date, is_active) on public.goals to authenticated;
grant update (target_minutes, end_date, is_active) on public.goals to authenticated;
grant select, insert, update, delete on public.goals to service_role;

-- ---------------------------------------------------------------------------------------- skin profile

create table public.skin_profiles (
  user_id uuid primary key default auth.uid() references public.profiles (id) on delete cascade,
  skin_type text check (skin_type in ('dry', 'oily', 'combination', 'sensitive', 'normal')),
  concerns text[] not null default '{}' check (
    concerns <@ array['wrinkles', 'acne', 'pigmentation', 'pores', 'dryness', 'elasticity', 'redness', 'dullness']::text[]
    and cardinality(concerns) <= 8),
  memo text check (memo is null or char_length(memo) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger skin_profiles_updated_at before update on public.skin_profiles
  for each row execute function private.set_updated_at();

alter table public.skin_profiles enable row level security;
create policy skin_profiles_select on public.skin_profiles for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy skin_profiles_insert_own on public.skin_profiles for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy skin_profiles_update_own on public.skin_profiles for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy skin_profiles_delete_own on public.skin_profiles for delete to authenticated
  using (user_id = (select auth.uid()));
create policy skin_profiles_service on public.skin_profiles for all to service_role using (true) with check (true);
grant select, delete on public.skin_profiles to authenticated;
grant insert (user_id, skin_type, concerns, memo), update (skin_type, concerns, memo) on public.skin_profiles to authenticated;
grant select, insert, update, delete on public.skin_profiles to service_role;

-- ---------------------------------------------------------------------------------------- notification settings

create table public.notification_settings (
  user_id uuid primary key references public.profiles (id) on delete cascade,
  push_enabled boolean not null default true,
  email_enabled boolean not null default true,
  usage_reminder boolean not null default false,
  reminder_time time not null default time '21:00',
  weekly_report boolean not null default false,
  monthly_report boolean not null default true,
  firmware_updates boolean not null default true,
  marketing_enabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (extract(second from reminder_time) = 0)
);
create trigger notification_settings_updated_at before update on public.notification_settings
  for each row execute function private.set_updated_at();

-- Every profile has settings from the start: clients read, never create.
create function private.create_notification_settings() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.notification_settings (user_id) values (new.id) on conflict do nothing;
  return new;
end
$$;
revoke all on function private.create_notification_settings() from public;
create trigger profiles_create_notification_settings after insert on public.profiles
  for each row execute function private.create_notification_settings();

alter table public.notification_settings enable row level security;
create policy notification_settings_select on public.notification_settings for select to authenticated
  using (user_id = (select auth.uid()) or (select private.is_admin()));
create policy notification_settings_update_own on public.notification_settings for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy notification_settings_service on public.notification_settings for all to service_role
  using (true) with check (true);
grant select on public.notification_settings to authenticated, service_role;
grant update (push_enabled, email_enabled, usage_reminder, reminder_time, weekly_report, monthly_report,
              firmware_updates, marketing_enabled) on public.notification_settings to authenticated;
grant update on public.notification_settings to service_role;

-- ---------------------------------------------------------------------------------------- in-app notifications

create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  kind text not null check (kind in ('report_ready', 'export_ready', 'firmware_update', 'rollout_paused',
    'device_transfer', 'announcement', 'goal_achieved', 'system')),
  title text not null check (char_length(title) between 1 and 200),
  body text not null default '' check (char_length(body) <= 2000),
  data jsonb not null default '{}'::jsonb check (jsonb_typeof(data) = 'object'),
  dedupe_key text check (char_length(dedupe_key) <= 200),
  read_at timestamptz,
  created_at timestamptz not null default now(),
  unique (user_id, dedupe_key)
);
create index notifications_user_unread_idx on public.notifications (user_id, created_at desc) where read_at is null;

alter table public.notifications enable row level security;
create policy notifications_select_own on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_update_own on public.notifications for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy notifications_delete_own on public.notifications for delete to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_service on public.notifications for all to service_role using (true) with check (true);
grant select, delete on public.notifications to authenticated;
grant update (read_at) on public.notifications to authenticated;
grant select, insert, update, delete on public.notifications to service_role;

alter table public.notifications replica identity full;
alter publication supabase_realtime add table public.notifications;
