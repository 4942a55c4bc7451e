"""Statistics jobs: the nightly reconciliation of recent days against usage_sessions."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dtx_worker.jobs import Job, JobContext
from dtx_worker.stats import drain_dirty_days

log = logging.getLogger("dtx_worker.stats")


class ReconcilePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(3, ge=1, le=366, description="local days checked per user, today included")
    user_id: uuid.UUID | None = Field(None, description="only this user (support, tests); every user when absent")


async def reconcile_statistics(job: Job, ctx: JobContext) -> None:
    """Compare each user's last `days` local days with a recomputation from usage_sessions
    (private.reconcile_daily_statistics), log the drift, and recompute the drifted days at once."""
    payload = ReconcilePayload.model_validate(job.payload)
    async with ctx.pool.connection() as conn:
        cur = await conn.execute("select private.reconcile_daily_statistics(%s, %s)",
                                 (payload.days, payload.user_id))
        row = await cur.fetchone()
    report: dict[str, Any] = row[0] if row else {}
    fields = {"job_id": job.id, "days": payload.days, "user_id": payload.user_id,
              "rows_checked": report.get("rows_checked"),
              "inserted": report.get("inserted"), "updated": report.get("updated"),
              "deleted": report.get("deleted")}
    if report.get("drift"):
        log.warning("statistics drift corrected", extra={**fields, "drift": report["drift"]})
        await drain_dirty_days(ctx.pool, 500)
    else:
        log.info("statistics reconciled; no drift", extra=fields)
