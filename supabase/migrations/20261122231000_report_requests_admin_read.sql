-- Admins (support) read every report request: its status, period, locale and the error of a failed one. The
-- rendered files stay readable by their owner only (storage policy reports_exports_read_own).
create policy report_requests_select_admin on public.report_requests for select to authenticated
  using ((select private.is_admin()));
