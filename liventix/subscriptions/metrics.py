"""Prometheus metrics of GraphQL over WebSocket (served on `/metrics`).

Module-level so every WebSocket handler in the process adds to the same series; the
names are the ones the dashboards and alerts use. With several workers, each gauge is
the sum over the live ones (`livesum`: a dead worker's connections are gone).
"""

from __future__ import annotations

from prometheus_client import Gauge

WS_CONNECTIONS = Gauge(
    "liventix_ws_connections",
    "Open graphql-transport-ws connections.",
    multiprocess_mode="livesum",
)
WS_OPERATIONS = Gauge(
    "liventix_ws_operations", "Active operations over WebSocket.", multiprocess_mode="livesum"
)
WS_SHARED_EXECUTIONS = Gauge(
    "liventix_ws_shared_executions",
    "Subscription executions shared by all the operations with the same document, "
    "variables and permission scope.",
    multiprocess_mode="livesum",
)
