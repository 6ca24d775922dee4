"""Prometheus metrics for the realtime path (served on `/metrics`).

Module-level so every hub and WebSocket handler in the process adds to the same series;
the names are the ones the dashboards and alerts use. The WebSocket and shared-execution
gauges are in `liventix.subscriptions.metrics`; `SLOW_SUBSCRIBERS_DROPPED` is one series
for both layers (label ``hub`` or ``websocket``). With several workers the subscriber
gauge is the sum over the live ones, and the listener is connected only if every live
worker's is (`livemin`: one worker without its listener is an outage for its clients).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LISTENER_DISCONNECTS = Counter(
    "liventix_realtime_listener_disconnects_total",
    "Times the LISTEN connection to PostgreSQL was lost (each one is a gap).",
)
LISTENER_RECONNECTS = Counter(
    "liventix_realtime_listener_reconnects_total",
    "Times the LISTEN connection was re-established after a loss.",
)
NOTIFICATIONS = Counter(
    "liventix_realtime_notifications_total",
    "Notifications received from PostgreSQL by this process.",
)
RESYNCS = Counter(
    "liventix_realtime_resyncs_total",
    "Resync signals sent to local subscribers after a listener gap.",
)
SUBSCRIBERS = Gauge(
    "liventix_realtime_subscribers",
    "Hub subscriptions open in this process (one per shared execution and channel key).",
    multiprocess_mode="livesum",
)
LISTENER_CONNECTED = Gauge(
    "liventix_realtime_listener_connected",
    "1 while the LISTEN connection to PostgreSQL is up, 0 while it is down (with "
    "several workers: 1 only if every worker's is up).",
    multiprocess_mode="livemin",
)
SLOW_SUBSCRIBERS_DROPPED = Counter(
    "liventix_realtime_slow_subscribers_dropped_total",
    "Subscribers cut off because their bounded buffer overflowed.",
    ["layer"],
)
