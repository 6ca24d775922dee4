"""Background jobs, run by every API process, most of them executed by one at a time.

A job's body is an async function of what it uses (database, clock, gateway) that
returns `(items, report)`; the registry below binds each body to the services and
gives its interval. Each tick of an exclusive job takes the job's advisory lock (other
processes skip that tick); a job that is not exclusive (the email sender) runs in every
process at once, its body keeping them apart (`FOR UPDATE SKIP LOCKED`). Runs are
recorded in `ops.job_runs` (a frequent job records only the ticks that did something
or failed) and failures are logged without stopping the loop. Tests call `run_once`
directly; `liventix reconcile` runs the `reconcile` body.

Every run a process executes is counted and timed for Prometheus (`liventix.metrics`:
runs by outcome, duration, the last success's time) and each loop exports its job's
interval, so an alert can tell a job that stopped succeeding from one that is not due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from databases import Database

import db.digests
import db.jobs
import db.ops_views
import db.privacy
import db.reconcile
import db.sweeper
from db.refunds import RefundRecord
from liventix import health_metrics, metrics
from liventix.clock import Clock
from liventix.mail.sender import run_sender
from liventix.payments.flows import settle_refund
from liventix.payments.gateways import PaymentGateway
from liventix.settings import Settings

log = logging.getLogger("liventix.jobs")

JobResult = tuple[int, dict[str, Any]]
DIGEST_INTERVAL_SECONDS = 60.0  # a digest goes out within a minute of 08:00 local
STOP_GRACE_SECONDS = 10.0  # how long shutdown waits for ticks in progress


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
    exclusive: bool = True
    """One process at a time (an advisory lock). False: every process runs each tick,
    and the body keeps them apart itself."""
    record_idle: bool = True
    """Record ticks that did nothing too; False for a frequent job, whose idle ticks
    would fill `ops.job_runs` (every process, every few seconds)."""


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


async def send_emails(database: Database, settings: Settings, clock: Clock) -> JobResult:
    """Send due outbox emails; every process at once (rows are claimed with SKIP LOCKED
    under a lease), so sending scales with the processes."""
    report = await run_sender(database, settings, clock)
    if report is None:
        return 0, {"transport": None}
    return report.claimed, report.as_dict()


async def schedule_digests(database: Database, now: datetime) -> JobResult:
    """Write the digest rows that are due (08:00 local); the sender sends them."""
    report = await db.digests.schedule_digests(database, now)
    return report.scheduled, {"scheduled": report.scheduled, "pending": report.pending}


async def ticketing_health(database: Database, now: datetime) -> JobResult:
    """Read what the platform alerts on and export it as gauges; the report (every
    figure) is recorded, so every process's `/metrics` can show this reading."""
    health = await db.ops_views.ticketing_health(database, now)
    health_metrics.export(health)
    return health.failing_checks, health.as_report()


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
        Job(
            "send_emails",
            lambda s: send_emails(s.db, s.settings, s.clock),
            lambda s: s.settings.email_send_interval_seconds,
            exclusive=False,
            record_idle=False,
        ),
        Job(
            "schedule_digests",
            lambda s: schedule_digests(s.db, s.clock.now()),
            lambda s: DIGEST_INTERVAL_SECONDS,
        ),
        Job(
            db.ops_views.HEALTH_JOB_NAME,
            lambda s: ticketing_health(s.db, s.clock.now()),
            lambda s: s.settings.health_interval_seconds,
        ),
    ]


# ------------------------------------------------------------------------------ runner


async def run_once(services: JobServices, job: Job) -> dict[str, Any] | None:
    """Run `job` now, unless it is exclusive and another process is running it (None
    then); returns its report."""
    if not job.exclusive:
        return await _measured(services, job)
    async with db.jobs.exclusive(services.db, job.name) as acquired:
        if not acquired:
            return None
        return await _measured(services, job)


async def _measured(services: JobServices, job: Job) -> dict[str, Any]:
    """`_run`, counted and timed. A run whose bookkeeping failed has failed too; one
    that shutdown cancelled (not an `Exception`) is not counted."""
    started = time.monotonic()
    try:
        report, ok = await _run(services, job)
    except Exception:
        metrics.job_ran(job.name, time.monotonic() - started, ok=False)
        raise
    metrics.job_ran(job.name, time.monotonic() - started, ok=ok)
    return report


async def _run(services: JobServices, job: Job) -> tuple[dict[str, Any], bool]:
    """The run's report, and whether the body succeeded."""
    if not job.record_idle:
        return await _run_recording_work_only(services, job)
    run_id = await db.jobs.start_run(services.db, job.name)
    try:
        items, report = await job.run(services)
    except Exception as exc:
        log.exception("job %s failed", job.name)
        await db.jobs.finish_run(services.db, run_id, items=0, error=repr(exc)[:2000])
        return {"error": repr(exc)}, False
    await db.jobs.finish_run(services.db, run_id, items=items, report=report)
    return report, True


async def _run_recording_work_only(services: JobServices, job: Job) -> tuple[dict[str, Any], bool]:
    started = time.monotonic()
    try:
        items, report = await job.run(services)
    except Exception as exc:
        log.exception("job %s failed", job.name)
        error = repr(exc)[:2000]
        await db.jobs.record_run(services.db, job.name, time.monotonic() - started, error=error)
        return {"error": repr(exc)}, False
    if items:
        await db.jobs.record_run(
            services.db, job.name, time.monotonic() - started, items=items, report=report
        )
    return report, True


async def _loop(services: JobServices, job: Job, stopping: asyncio.Event) -> None:
    metrics.JOB_INTERVAL.labels(job.name).set(job.interval(services))
    while not stopping.is_set():
        try:
            await run_once(services, job)
        except Exception:  # e.g. database briefly unreachable: try again next tick
            log.exception("job %s tick failed", job.name)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(job.interval(services)):
                await stopping.wait()


@contextlib.asynccontextmanager
async def running(services: JobServices) -> AsyncIterator[None]:
    """Every job's loop, for as long as the block runs. On the way out, a tick in
    progress may finish (up to `STOP_GRACE_SECONDS`) before its task is cancelled: a
    tick cut short at any await can leave a pooled connection checked out, and the
    pool's close then waits for it forever."""
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(_loop(services, job, stopping), name=job.name) for job in registry()
    ]
    try:
        yield
    finally:
        stopping.set()
        _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in late:
            log.warning("job %s still running at shutdown; cancelling it", task.get_name())
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
