"""Prometheus metrics of GraphQL over WebSocket (served on `/metrics`).

Module-level so every WebSocket handler in the process adds to the same series; the
names are the ones the dashboards and alerts use.
"""

from __future__ import annotations

from prometheus_client import Gauge

WS_CONNECTIONS = Gauge("liventix_ws_connections", "Open graphql-transport-ws connections.")
WS_OPERATIONS = Gauge("liventix_ws_operations", "Active operations over WebSocket.")
WS_SHARED_EXECUTIONS = Gauge(
    "liventix_ws_shared_executions",
    "Subscription executions shared by all the operations with the same document, "
    "variables and permission scope.",
)
