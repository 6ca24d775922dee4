"""Background jobs, run by every API process but executed by one at a time.

A job's body is an async function of what it uses (database, clock, gateway) that
returns `(items, report)`; the registry below binds each body to the services and
gives its interval. Each tick takes the job's advisory lock (other processes skip that
tick), records the run in `ops.job_runs` and logs failures without stopping the loop.
Tests call `run_once` directly; `liventix reconcile` runs the `reconcile` body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from databases import Database

import db.jobs
import db.privacy
import db.reconcile
import db.sweeper
from db.refunds import RefundRecord
from liventix.clock import Clock
from liventix.payments.flows import settle_refund
from liventix.payments.gateways import PaymentGateway
from liventix.settings import Settings

log = logging.getLogger("liventix.jobs")

JobResult = tuple[int, dict[str, Any]]


class JobServices(Protocol):
    """The long-lived resources a job may use (the lifespan's `Services` has them)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def payments(self) -> PaymentGateway: ...


JobFn = Callable[[JobServices], Awaitable[JobResult]]


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFn
    interval: Callable[[JobServices], float]


# ------------------------------------------------------------------------------ bodies


async def sweep_holds(database: Database, now: datetime) -> JobResult:
    """Expire lapsed holds and fix counter drift.

    Runs every `sweep_interval_seconds` (at most 30), so an expired hold gives its
    seats back within 30 seconds even if no buyer comes along to trigger it.
    """
    report = await db.sweeper.sweep_expired_holds(database, now)
    return report.expired_holds + report.drift_fixed, report.as_dict()


async def reconcile(database: Database, gateway: PaymentGateway, now: datetime) -> JobResult:
    """Repair (paid orders without tickets, drifted counters), then retry refunds the
    gateway never confirmed, each under its own idempotency key."""
    report = await db.reconcile.reconcile(database, now=now)
    refunds: list[RefundRecord] = report.pop("refunds_to_settle")
    settled = [str(r.id) for r in refunds if await settle_refund(database, gateway, r)]
    report["refunds_settled"] = settled
    report["refunds_unsettled"] = [str(r.id) for r in refunds if str(r.id) not in settled]
    items = len(report["completed_orders"]) + len(report["corrected_tiers"]) + len(refunds)
    return items, report


async def anonymize_orders(database: Database, now: datetime, after_days: int) -> JobResult:
    """Erase buyers' contact data once their event is long over (privacy by default)."""
    count = await db.privacy.anonymize_contacts(database, now=now, after_days=after_days)
    return count, {"anonymized_orders": count, "after_days": after_days}


def registry() -> list[Job]:
    """Every periodic job. Features add theirs here."""
    return [
        Job(
            "sweep_holds",
            lambda s: sweep_holds(s.db, s.clock.now()),
            lambda s: s.settings.sweep_interval_seconds,
        ),
        Job(
            db.reconcile.JOB_NAME,
            lambda s: reconcile(s.db, s.payments, s.clock.now()),
            lambda s: s.settings.reconcile_interval_seconds,
        ),
        Job(
            "anonymize_orders",
            lambda s: anonymize_orders(s.db, s.clock.now(), s.settings.anonymize_after_days),
            lambda s: s.settings.reconcile_interval_seconds,
        ),
    ]


# ------------------------------------------------------------------------------ runner


async def run_once(services: JobServices, job: Job) -> dict[str, Any] | None:
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


async def _loop(services: JobServices, job: Job) -> None:
    while True:
        try:
            await run_once(services, job)
        except Exception:  # e.g. database briefly unreachable: try again next tick
            log.exception("job %s tick failed", job.name)
        await asyncio.sleep(job.interval(services))


@contextlib.asynccontextmanager
async def running(services: JobServices) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_loop(services, job), name=job.name) for job in registry()]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
