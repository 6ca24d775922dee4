"""Helpers for the operations tests (alert rules, runbooks, dashboard): promtool, the
metric names a PromQL expression uses, and what a running app exports on `/metrics`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"

PROMTOOL_MISSING = (
    "promtool is not installed: `bash scripts/test-tools.sh` installs it (Debian's "
    "`prometheus` package ships /usr/bin/promtool), or set PROMTOOL to its path"
)


@dataclass(frozen=True)
class Metric:
    """What a rule or panel expects of a metric family: its type and the labels it
    reads (as the app exports them; Prometheus stores the app's `job` as
    `exported_job`)."""

    type: str
    labels: frozenset[str] = frozenset()


def _m(kind: str, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


# Every metric family the app exports for operations, as the rules, the runbooks and
# the dashboard may read it. A name outside this list in any of them is a typo or a
# metric nobody exports.
EXPORTED: dict[str, Metric] = {
    # requests
    "liventix_graphql_operations_total": _m("counter", "operation", "type", "outcome"),
    "liventix_graphql_operation_duration_seconds": _m("histogram", "operation", "type"),
    "liventix_graphql_field_duration_seconds": _m("histogram", "field"),
    "liventix_graphql_errors_total": _m("counter", "code"),
    "liventix_http_requests_total": _m("counter", "method", "route", "status"),
    # WebSocket and realtime
    "liventix_ws_connections": _m("gauge"),
    "liventix_ws_operations": _m("gauge"),
    "liventix_ws_shared_executions": _m("gauge"),
    "liventix_ws_messages_sent_total": _m("counter"),
    "liventix_realtime_subscribers": _m("gauge"),
    "liventix_realtime_listener_connected": _m("gauge"),
    "liventix_realtime_listener_disconnects_total": _m("counter"),
    "liventix_realtime_listener_reconnects_total": _m("counter"),
    "liventix_realtime_notifications_total": _m("counter"),
    "liventix_realtime_resyncs_total": _m("counter"),
    "liventix_realtime_slow_subscribers_dropped_total": _m("counter", "layer"),
    # database pool
    "liventix_db_pool_size": _m("gauge"),
    "liventix_db_pool_in_use": _m("gauge"),
    "liventix_db_pool_waiters": _m("gauge"),
    "liventix_db_pool_acquire_seconds": _m("histogram"),
    # webhooks and jobs
    "liventix_webhook_events_total": _m("counter", "type", "result"),
    "liventix_job_runs_total": _m("counter", "job", "outcome"),
    "liventix_job_duration_seconds": _m("histogram", "job"),
    "liventix_job_last_success_timestamp_seconds": _m("gauge", "job"),
    "liventix_job_interval_seconds": _m("gauge", "job"),
    # email
    "liventix_emails_sent_total": _m("counter", "kind"),
    "liventix_emails_failed_total": _m("counter"),
    "liventix_emails_dead": _m("gauge"),
    # ticketing health (from PostgreSQL)
    "liventix_paid_orders_without_tickets": _m("gauge"),
    "liventix_tiers_negative_availability": _m("gauge"),
    "liventix_ghost_reservations": _m("gauge"),
    "liventix_expired_active_holds": _m("gauge"),
    "liventix_oldest_expired_active_hold_seconds": _m("gauge"),
    "liventix_unsettled_refunds": _m("gauge"),
    "liventix_reconciliation_mismatches": _m("gauge"),
}


def promtool() -> str:
    """The promtool binary; fails the test (never skips it) when there is none."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if path is None or not Path(path).is_file():
        pytest.fail(PROMTOOL_MISSING)
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


_NAME = re.compile(r"\b(liventix_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b(liventix_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(promql: str) -> set[str]:
    """The Liventix series names an expression selects (`liventix_*`)."""
    return set(_NAME.findall(promql))


def matcher_labels(promql: str) -> dict[str, set[str]]:
    """Per series name, the label names its selectors match on, as the app exports
    them (`exported_job` is the app's `job`)."""
    labels: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(promql):
        found = {
            "job" if label == "exported_job" else label for label in _MATCHER.findall(matchers)
        }
        labels.setdefault(name, set()).update(found)
    return labels


def family_name(series: str, metrics: Mapping[str, Metric]) -> str:
    """The family a series name belongs to: a histogram's `_bucket`/`_sum`/`_count`
    series belong to the histogram."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and metrics.get(base, Metric("")).type == "histogram":
            return base
    return series


@dataclass
class Exposition:
    """A `/metrics` page: each family's type (from its `# TYPE` line) and the label
    names seen on its samples."""

    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Exposition:
        page = cls()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                page.types[name] = kind.strip()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                owner = _owner(sample.name, page.types)
                page.labels.setdefault(owner, set()).update(sample.labels)
        return page

    def problems(self, wanted: Mapping[str, Metric]) -> list[str]:
        """What `wanted` expects and this page lacks: a family, its type, a label."""
        found: list[str] = []
        for name, metric in sorted(wanted.items()):
            kind = self.types.get(name)
            if kind is None:
                found.append(f"{name}: not exported")
                continue
            if kind != metric.type:
                found.append(f"{name}: a {kind}, expected a {metric.type}")
            seen = self.labels.get(name)
            if seen is not None and not metric.labels <= seen:
                found.append(
                    f"{name}: no label {sorted(metric.labels - seen)} (has {sorted(seen)})"
                )
        return found


def _owner(sample: str, types: Mapping[str, str]) -> str:
    if sample in types:
        return sample
    for suffix in (*HISTOGRAM_SUFFIXES, "_created"):
        base = sample.removesuffix(suffix)
        if base == sample:
            continue
        for candidate in (base, f"{base}_total"):  # a counter's `_created` sample
            if candidate in types:
                return candidate
    return sample


async def scrape_until_complete(
    http: httpx.AsyncClient, wanted: Mapping[str, Metric], *, timeout: float = 15.0
) -> Exposition:
    """GET /metrics until every wanted family is there (jobs export theirs when they
    first run), or `timeout` seconds passed; the last page either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get("/metrics")
        assert response.status_code == 200, response.text
        page = Exposition.parse(response.text)
        if not page.problems(wanted) or loop.time() > deadline:
            return page
        await asyncio.sleep(0.25)
