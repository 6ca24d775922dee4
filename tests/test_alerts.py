"""The alert rules in ops/prometheus: valid, unit-tested, each with a severity and a
runbook, and written against metrics the app exports.

promtool checks the rules and the Prometheus configuration and runs the rules' unit
tests (ops/prometheus/alerts_test.yml); a machine without promtool fails here, pointing
at scripts/test-tools.sh, which installs it. RULE_METRICS is what the rules read: every
series they select must be listed there, and the `live_app` test checks that a running
app exports each of them, with its type and labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from tests.ops_support import (
    PROMETHEUS_DIR,
    ROOT,
    RUNBOOKS_DIR,
    Metric,
    family_name,
    matcher_labels,
    metric_names,
    run_promtool,
    scrape_until_complete,
)
from tests.support import GraphQLClient

RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
SEVERITIES = {"page", "ticket"}

# Every metric family the rules read, with its type and the labels they match on.
RULE_METRICS: dict[str, Metric] = {
    "liventix_paid_orders_without_tickets": Metric("gauge"),
    "liventix_tiers_negative_availability": Metric("gauge"),
    "liventix_ghost_reservations": Metric("gauge"),
    "liventix_oldest_expired_active_hold_seconds": Metric("gauge"),
    "liventix_reconciliation_mismatches": Metric("gauge"),
    "liventix_unsettled_refunds": Metric("gauge"),
    "liventix_emails_dead": Metric("gauge"),
    "liventix_realtime_listener_connected": Metric("gauge"),
    "liventix_job_runs_total": Metric("counter", frozenset({"job", "outcome"})),
    "liventix_job_last_success_timestamp_seconds": Metric("gauge", frozenset({"job"})),
    "liventix_job_interval_seconds": Metric("gauge", frozenset({"job"})),
    "liventix_graphql_operations_total": Metric(
        "counter", frozenset({"operation", "type", "outcome"})
    ),
    "liventix_graphql_errors_total": Metric("counter", frozenset({"code"})),
    "liventix_http_requests_total": Metric("counter", frozenset({"method", "route", "status"})),
    "liventix_graphql_field_duration_seconds": Metric("histogram", frozenset({"field"})),
}


def alerts() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"] if "alert" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alerts()]


def promtool_ok(*args: str) -> str:
    result = run_promtool(*args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


@pytest.mark.static
def test_promtool_check_rules() -> None:
    assert "SUCCESS" in promtool_ok("check", "rules", RULES.name)


@pytest.mark.static
def test_promtool_check_config() -> None:
    """The compose stack's Prometheus configuration, with the rules it loads."""
    assert "SUCCESS" in promtool_ok("check", "config", "prometheus.yml")


@pytest.mark.static
def test_promtool_test_rules() -> None:
    assert "SUCCESS" in promtool_ok("test", "rules", RULE_TESTS.name)


@pytest.mark.static
def test_the_platforms_alerts_are_all_there() -> None:
    assert set(alert_names()) == {
        "PaidOrdersWithoutTickets",
        "NegativeAvailability",
        "GhostReservations",
        "HoldCleanupLatencyHigh",
        "HoldSweeperFailing",
        "HoldSweeperStalled",
        "CheckoutLatencyHigh",
        "ReconciliationMismatch",
        "ApiDown",
        "RealtimeListenerDown",
        "HighErrorRate",
        "JobStalled",
        "JobsNotRunning",
        "EmailsDeadLettered",
        "UnsettledRefunds",
    }
    assert len(alert_names()) == len(set(alert_names())), "alert names must be unique"


@pytest.mark.static
@pytest.mark.parametrize("name", alert_names())
def test_alert_has_for_severity_and_a_runbook_that_exists(name: str) -> None:
    (rule,) = [rule for rule in alerts() if rule["alert"] == name]
    assert rule.get("for"), f"{name} has no `for:`"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"
    assert (ROOT / annotations["runbook_url"]).is_file(), f"no runbook for {name}"


@pytest.mark.static
def test_every_runbook_page_is_an_alerts() -> None:
    pages = {path.stem for path in RUNBOOKS_DIR.glob("*.md")} - {"README"}
    assert pages == set(alert_names())
    index = (RUNBOOKS_DIR / "README.md").read_text()
    for rule in alerts():
        assert f"| {rule['alert']} | {rule['labels']['severity']} |" in index, rule["alert"]


@pytest.mark.static
def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    loaded: dict[str, Any] = yaml.safe_load(RULE_TESTS.read_text())
    assert loaded["rule_files"] == [RULES.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in loaded["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


@pytest.mark.static
def test_rules_read_only_the_listed_metrics_and_labels() -> None:
    used: set[str] = set()
    for rule in alerts():
        expr = rule["expr"]
        for series in metric_names(expr):
            family = family_name(series, RULE_METRICS)
            assert family in RULE_METRICS, f"{rule['alert']} reads {series}, not listed"
            used.add(family)
        for series, labels in matcher_labels(expr).items():
            metric = RULE_METRICS[family_name(series, RULE_METRICS)]
            assert labels <= metric.labels | {"le"}, (rule["alert"], series, labels)
    assert used == set(RULE_METRICS), f"listed but unused: {set(RULE_METRICS) - used}"


@pytest.mark.static
def test_prometheus_scrapes_the_api_and_loads_the_rules() -> None:
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "liventix-api"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The app's `job` label must land in `exported_job`, which the rules read.
    assert job.get("honor_labels", False) is False
    for rule in alerts():
        if "up{" in rule["expr"]:
            assert 'job="liventix-api"' in rule["expr"], rule["alert"]


@pytest.mark.live_app
async def test_the_app_exports_every_metric_the_rules_read(
    make_app: Callable[..., Starlette], tmp_path: Path
) -> None:
    """Scrape a running app (jobs on, so that they export theirs) after a few requests."""
    app = make_app(jobs_enabled=True, mail_sink_dir=tmp_path / "mail")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GraphQLClient(http)
            await client("{ events(first: 1) { edges { node { id } } } }")
            await client.post("{ noSuchField }")
            page = await scrape_until_complete(http, RULE_METRICS)
    assert page.problems(RULE_METRICS) == []
