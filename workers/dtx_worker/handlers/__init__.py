"""Job handlers, one module per kind family; `HANDLERS` maps each kind to its handler."""

from __future__ import annotations

from dtx_worker.handlers.maintenance import prune_jobs
from dtx_worker.handlers.reports import enqueue_due_reports_job, render_report_job
from dtx_worker.handlers.rollouts import evaluate_rollouts
from dtx_worker.handlers.statistics import reconcile_statistics
from dtx_worker.jobs import Handler

HANDLERS: dict[str, Handler] = {
    "jobs.prune": prune_jobs,
    "reports.render": render_report_job,
    "reports.schedule": enqueue_due_reports_job,
    "rollouts.evaluate": evaluate_rollouts,
    "stats.reconcile": reconcile_statistics,
}
