-- Schema `extensions` with the extensions every Supabase project has.
create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
alter database postgres set search_path = "$user", public, extensions;

-- Schema public: usage for the API roles. Since 2026 new Supabase projects no longer grant table,
-- sequence or function privileges in `public` to the API roles by default, so neither do we: every
-- migration must carry its own GRANTs. (PUBLIC keeps EXECUTE on new functions, as in stock PostgreSQL.)
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges in schema public revoke select, insert, update, delete on tables from anon, authenticated, service_role;
alter default privileges in schema public revoke usage, select on sequences from anon, authenticated, service_role;
