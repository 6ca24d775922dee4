"""Bookkeeping for background jobs: one run at a time across processes, every run recorded."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from databases import Database

from db.core import connection, keeps_session_state, transaction


@asynccontextmanager
async def exclusive(database: Database, job: str) -> AsyncIterator[bool]:
    """Hold a session advisory lock for `job` while the body runs.

    Yields False (and runs nothing) when another process holds it, so with several API
    processes each periodic job still runs on one of them at a time.
    """
    key = zlib.crc32(f"liventix.job.{job}".encode())
    async with connection(database) as conn:
        keeps_session_state(conn)  # released fully even if the unlock below never runs
        got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        try:
            yield bool(got)
        finally:
            if got:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def start_run(database: Database, job: str) -> int:
    async with transaction(database) as conn:
        run_id: int = await conn.fetchval(
            "INSERT INTO ops.job_runs (job) VALUES ($1) RETURNING id", job
        )
    return run_id


async def finish_run(
    database: Database,
    run_id: int,
    *,
    items: int,
    error: str | None = None,
    report: dict[str, Any] | None = None,
) -> None:
    async with transaction(database) as conn:
        await conn.execute(
            """UPDATE ops.job_runs
                  SET status = CASE WHEN $3::text IS NULL THEN 'ok' ELSE 'failed' END,
                      finished_at = clock_timestamp(), items = $2, error = $3,
                      report = $4
                WHERE id = $1""",
            run_id,
            items,
            error,
            report or {},
        )


async def record_run(
    database: Database,
    job: str,
    duration_seconds: float,
    *,
    items: int = 0,
    error: str | None = None,
    report: dict[str, Any] | None = None,
) -> None:
    """Record a run that has finished, in one write (a frequent job records only the
    runs that did something, so it never writes a row before knowing)."""
    async with transaction(database) as conn:
        await conn.execute(
            """INSERT INTO ops.job_runs (job, status, started_at, finished_at, items, error,
                                         report)
               VALUES ($1, CASE WHEN $4::text IS NULL THEN 'ok' ELSE 'failed' END,
                       clock_timestamp() - make_interval(secs => $2), clock_timestamp(),
                       $3, $4, $5)""",
            job,
            duration_seconds,
            items,
            error,
            report or {},
        )


async def recent_runs(database: Database, job: str, limit: int = 20) -> list[dict[str, Any]]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT id, job, status, started_at, finished_at, items, error, report
                 FROM ops.job_runs WHERE job = $1 ORDER BY started_at DESC LIMIT $2""",
            job,
            limit,
        )
    return [dict(r) for r in rows]


async def last_ok_run(database: Database, job: str) -> dict[str, Any] | None:
    """The latest successful run of `job` (its items and report), or None."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            """SELECT id, job, status, started_at, finished_at, items, error, report
                 FROM ops.job_runs WHERE job = $1 AND status = 'ok'
                ORDER BY started_at DESC LIMIT 1""",
            job,
        )
    return dict(row) if row else None


async def get_run(database: Database, job: str, run_id: int) -> dict[str, Any] | None:
    """One run of `job`, or None."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            """SELECT id, job, status, started_at, finished_at, items, error, report
                 FROM ops.job_runs WHERE job = $1 AND id = $2""",
            job,
            run_id,
        )
    return dict(row) if row else None
