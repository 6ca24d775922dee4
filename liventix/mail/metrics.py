"""Prometheus metrics of the email outbox (served on `/metrics`).

The counters are per process (every process sends); the dead-letter gauge is the
database's count, the same in every process, refreshed by each sender tick: alert on
`max(liventix_emails_dead) > 0`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EMAILS_SENT = Counter(
    "liventix_emails_sent_total",
    "Emails the SMTP server (or the development sink) accepted, by kind.",
    ["kind"],
)
EMAILS_FAILED = Counter(
    "liventix_emails_failed_total",
    "Email attempts that failed (each is retried with backoff, or dead-lettered).",
)
EMAILS_DEAD = Gauge(
    "liventix_emails_dead",
    "Emails dead-lettered after their last attempt (all processes; from PostgreSQL).",
)
