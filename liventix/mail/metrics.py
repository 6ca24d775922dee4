"""Prometheus metrics of the email outbox (served on `/metrics`).

The counters are per process (every process sends, so they add up over processes);
the dead-letter gauge is the database's count, the same in every process, refreshed by
each sender tick and by the ticketing health job: alert on
`max(liventix_emails_dead) > 0`.
It is defined with the other health gauges (`liventix.health_metrics`).
"""

from __future__ import annotations

from prometheus_client import Counter

from liventix.health_metrics import EMAILS_DEAD

__all__ = ["EMAILS_DEAD", "EMAILS_FAILED", "EMAILS_SENT"]

EMAILS_SENT = Counter(
    "liventix_emails_sent_total",
    "Emails the SMTP server (or the development sink) accepted, by kind.",
    ["kind"],
)
EMAILS_FAILED = Counter(
    "liventix_emails_failed_total",
    "Email attempts that failed (each is retried with backoff, or dead-lettered).",
)
