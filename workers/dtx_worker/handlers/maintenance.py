"""Housekeeping jobs for the jobs table itself."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dtx_worker.jobs import Job, JobContext


class PrunePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    older_than_days: int = Field(7, ge=1, le=3650)


async def prune_jobs(job: Job, ctx: JobContext) -> None:
    """Delete done jobs older than `older_than_days` (a malformed payload raises and is retried, then
    dead-lettered with the validation error)."""
    payload = PrunePayload.model_validate(job.payload)
    async with ctx.pool.connection() as conn:
        await conn.execute("select private.prune_jobs(make_interval(days => %s))", (payload.older_than_days,))
