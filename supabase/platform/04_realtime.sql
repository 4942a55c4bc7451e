-- Realtime: the schema and the (initially empty) publication tables are added to by migrations.
create schema if not exists realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime with (publish = 'insert, update, delete, truncate');
  end if;
end
$$;
