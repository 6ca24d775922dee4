"""Background jobs, run by every API process but executed by one at a time.

A job is an async function `(services) -> (items, report)`. Each tick takes the job's
advisory lock (other processes skip that tick), records the run in `ops.job_runs` and
logs failures without stopping the loop. The registry below lists every job with its
interval; tests and the CLI call `run_once` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import db.jobs
from liventix.context import Services

log = logging.getLogger("liventix.jobs")

JobFn = Callable[[Services], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFn
    interval: Callable[[Services], float]


def registry() -> list[Job]:
    """Every periodic job. Features add theirs here."""
    # Imported on call: `resolvers` can only be imported once `schema` has been.
    from liventix.payments import anonymize_job, reconcile_job
    from resolvers.ticketing import sweep_holds_job

    return [
        Job("sweep_holds", sweep_holds_job, lambda s: s.settings.sweep_interval_seconds),
        Job("reconcile", reconcile_job, lambda s: s.settings.reconcile_interval_seconds),
        Job("anonymize_orders", anonymize_job, lambda s: s.settings.reconcile_interval_seconds),
    ]


async def run_once(services: Services, job: Job) -> dict[str, Any] | None:
    """Run `job` now unless another process is running it; returns its report."""
    async with db.jobs.exclusive(services.db, job.name) as acquired:
        if not acquired:
            return None
        run_id = await db.jobs.start_run(services.db, job.name)
        try:
            items, report = await job.run(services)
        except Exception as exc:
            log.exception("job %s failed", job.name)
            await db.jobs.finish_run(services.db, run_id, items=0, error=repr(exc)[:2000])
            return {"error": repr(exc)}
        await db.jobs.finish_run(services.db, run_id, items=items, report=report)
        return report


async def _loop(services: Services, job: Job) -> None:
    while True:
        try:
            await run_once(services, job)
        except Exception:  # e.g. database briefly unreachable: try again next tick
            log.exception("job %s tick failed", job.name)
        await asyncio.sleep(job.interval(services))


@contextlib.asynccontextmanager
async def running(services: Services) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_loop(services, job), name=job.name) for job in registry()]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
