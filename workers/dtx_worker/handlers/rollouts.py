"""The rollout engine: advance stages, pause on failures, complete rollouts (the rules live in SQL,
private.evaluate_rollouts; this job runs them and logs what they did)."""

from __future__ import annotations

import logging

from dtx_worker.jobs import Job, JobContext

log = logging.getLogger("dtx_worker.rollouts")


async def evaluate_rollouts(job: Job, ctx: JobContext) -> None:
    async with ctx.pool.connection() as conn:
        cur = await conn.execute("select private.evaluate_rollouts()")
        row = await cur.fetchone()
    result = row[0] if row else {}
    for action in result.get("actions", []):
        level = logging.WARNING if action.get("action") == "paused" else logging.INFO
        log.log(level, "rollout %s", action.get("action"), extra={"rollout": action})
