-- The device-facing OTA RPCs plan their statements under enable_seqscan = off.
--
-- Every statement in them is a keyed lookup (devices, profiles and device_firmware_status by primary key,
-- firmware_versions by (model, version) or id, rollout_offers by model). PL/pgSQL caches each statement's
-- plan per connection and, after five executions, keeps a generic plan if it looks no worse. A connection
-- that builds that plan while device_firmware_status is still small (a new deployment, a new fleet, or our
-- benchmark's fresh cluster) costs a sequential scan below an index scan and keeps it: every later check on
-- that connection scans the whole table, until an ANALYZE happens to invalidate the plan. Measured on
-- tests/bench/ota_check.py (fresh cluster, 100,000 first checks): 1,540–1,730 checks/s in four runs with the
-- scan plans (perf: ExecStoreBufferHeapTuple, HeapTupleSatisfiesVisibility, uuid_eq on top), 3,660 with this.
-- The setting holds for the function's own statements and the triggers and functions it runs (foreign-key
-- checks included), all of which are keyed lookups too.
--
-- `create or replace` of these functions drops the setting unless it repeats it; tests/db/test_ota_status_and_
-- security.py checks that it is there.
alter function public.ota_check_update(uuid, text) set enable_seqscan = off;
alter function public.ota_report_status(uuid, uuid, text, integer, text) set enable_seqscan = off;
