"""Prometheus metrics of requests, the database pool, webhooks and jobs (on `/metrics`).

Module-level, like `liventix.realtime.metrics`, so every request, connection and job
of the process adds to the same series; the names are the ones the alert rules and the
dashboard use. Low in the layers so that the schema (operation and field timings), the
shell (HTTP, WebSocket, webhooks, jobs) and the app (the pool) can all reach them; `db`
cannot, so the pool reports through `PoolMetrics`, the observer the app hands it.

Label values are bounded: an operation is named only when it is a registered persisted
query (else ``other``, or ``anonymous``), a field only among the schema's root fields,
a route only among the app's routes. With several worker processes each gauge says how
its values add up (`multiprocess_mode`, see `liventix.metrics_endpoint`).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from db.core import PoolStats

# Seconds. 0.8 is a bound because the checkout alert is "p95 over 800 ms", and 15 is
# REQUEST_TIMEOUT_SECONDS' default.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0, 15.0)
ACQUIRE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

# -- GraphQL and HTTP ---------------------------------------------------------------

GRAPHQL_OPERATIONS = Counter(
    "liventix_graphql_operations_total",
    "GraphQL operations that reached the schema (HTTP and WebSocket), counted when they "
    "end, by operation (registered name, else other or anonymous), type and outcome "
    "(ok, error, request_error: refused before anything ran).",
    ["operation", "type", "outcome"],
)
GRAPHQL_OPERATION_DURATION = Histogram(
    "liventix_graphql_operation_duration_seconds",
    "Time from receiving a GraphQL operation to its result (a subscription: until it "
    "started streaming).",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_FIELD_DURATION = Histogram(
    "liventix_graphql_field_duration_seconds",
    "Time to resolve a root field of Query or Mutation (e.g. checkout, reserveTickets).",
    ["field"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "liventix_graphql_errors_total",
    "Entries of `errors` in GraphQL responses (HTTP and WebSocket), by extensions.code "
    "as the client sees it.",
    ["code"],
)
HTTP_REQUESTS = Counter(
    "liventix_http_requests_total",
    "HTTP requests answered, by method, route (the matched route's path, or other) and status.",
    ["method", "route", "status"],
)
WS_MESSAGES_SENT = Counter(
    "liventix_ws_messages_sent_total",
    "Frames sent to WebSocket clients (results, errors, acks, pongs).",
)

# -- database pool ------------------------------------------------------------------

DB_POOL_SIZE = Gauge(
    "liventix_db_pool_size",
    "Most connections the database pool may open (DB_POOL_MAX); summed over processes.",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "liventix_db_pool_in_use",
    "Pooled database connections handed out; summed over processes.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITERS = Gauge(
    "liventix_db_pool_waiters",
    "Tasks waiting for a pooled database connection; summed over processes.",
    multiprocess_mode="livesum",
)
DB_POOL_ACQUIRE = Histogram(
    "liventix_db_pool_acquire_seconds",
    "Time waited for a pooled connection (timeouts included, at DB_ACQUIRE_TIMEOUT).",
    buckets=ACQUIRE_BUCKETS,
)


class PoolMetrics:
    """The pool's observer (`db.core.PoolObserver`): its figures into the gauges."""

    def changed(self, stats: PoolStats) -> None:
        DB_POOL_SIZE.set(stats.size)
        DB_POOL_IN_USE.set(stats.in_use)
        DB_POOL_WAITERS.set(stats.waiting)

    def waited(self, seconds: float) -> None:
        DB_POOL_ACQUIRE.observe(seconds)


# -- webhooks and jobs --------------------------------------------------------------

WEBHOOK_EVENTS = Counter(
    "liventix_webhook_events_total",
    "Stripe webhook deliveries by event type (unknown when unsigned or unreadable) and "
    "result (paid, duplicate, refunded_late, unchanged, failed, refunded, ignored, "
    "unknown_order, bad_signature, malformed, error).",
    ["type", "result"],
)
JOB_RUNS = Counter(
    "liventix_job_runs_total",
    "Background job runs this process executed, by outcome (ok, failed); a tick that "
    "another process held the job's lock for is not a run.",
    ["job", "outcome"],
)
JOB_DURATION = Histogram(
    "liventix_job_duration_seconds",
    "Duration of background job runs.",
    ["job"],
    buckets=JOB_BUCKETS,
)
JOB_LAST_SUCCESS = Gauge(
    "liventix_job_last_success_timestamp_seconds",
    "Unix time of the job's last successful run (the latest over processes).",
    ["job"],
    multiprocess_mode="max",
)
JOB_INTERVAL = Gauge(
    "liventix_job_interval_seconds",
    "The job's configured interval: alert when no run succeeded for a few of them.",
    ["job"],
    multiprocess_mode="max",
)


def job_ran(job: str, seconds: float, *, ok: bool) -> None:
    """Count and time one run of `job`; a success also moves its last success time."""
    JOB_RUNS.labels(job, "ok" if ok else "failed").inc()
    JOB_DURATION.labels(job).observe(seconds)
    if ok:
        JOB_LAST_SUCCESS.labels(job).set(time.time())
