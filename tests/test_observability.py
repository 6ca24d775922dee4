"""The optional observability stack: Prometheus and Grafana in docker-compose.yml, the
Grafana provisioning, and the dashboard (ops/grafana/dashboards/liventix.json).

Images cannot be pulled here, so the compose file is read (and checked with
`docker compose config` where Docker Compose is installed), the files the services
mount are checked to be where they say, every PromQL query of the dashboard is parsed
by promtool and may read only exported metrics, and every SQL query runs against a
migrated database with demo data. The `live_app` test scrapes a running app for every
metric the dashboard reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import yaml
from databases import Database
from starlette.applications import Starlette

import db.demo
from tests.ops_support import (
    EXPORTED,
    PROMETHEUS_DIR,
    ROOT,
    Metric,
    family_name,
    metric_names,
    run_promtool,
    scrape_until_complete,
)
from tests.support import GraphQLClient

GRAFANA_DIR = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "liventix.json"
PROVISIONING = GRAFANA_DIR / "provisioning"
API_SERVICES = ("api", "api-2")
API_PORT = 8000

# What Grafana puts in place of its variables, to run the queries outside it.
PROMQL_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}
_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]+)\)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return loaded


def provisioning(kind: str) -> dict[str, Any]:
    (path,) = (PROVISIONING / kind).glob("*.yml")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of this checkout: container path → repository path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            found[target] = source.removeprefix("./")
    return found


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """(panel title, query) of every query of a datasource type: `prometheus` (PromQL,
    Grafana's variables replaced) or `grafana-postgresql-datasource` (SQL)."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != kind:
                continue
            if kind == "prometheus":
                query = target["expr"]
                for variable, value in PROMQL_VARIABLES.items():
                    query = query.replace(variable, value)
            else:
                query = _TIME_FILTER.sub(
                    r"\1 BETWEEN now() - interval '6 hours' AND now()", target["rawSql"]
                )
            found.append((panel["title"], query))
    return found


def dashboard_metrics() -> dict[str, Metric]:
    loaded: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    names = {
        family_name(series, EXPORTED)
        for _, query in targets(loaded, "prometheus")
        for series in metric_names(query)
    }
    return {name: EXPORTED.get(name, Metric("unknown")) for name in names}


# --- compose ------------------------------------------------------------------------------


@pytest.mark.static
def test_prometheus_and_grafana_are_optional_pinned_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["observability"], name
        _, _, tag = service["image"].partition(":")
        assert tag and tag != "latest", f"{name}: pin the image"
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} listens beyond loopback"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


@pytest.mark.static
def test_prometheus_mounts_its_config_and_scrapes_the_replicas(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    assert mounts(service) == {"/etc/prometheus": "ops/prometheus"}
    (config_flag,) = [c for c in service["command"] if c.startswith("--config.file=")]
    config_path = config_flag.removeprefix("--config.file=")
    assert config_path == "/etc/prometheus/prometheus.yml"
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), rule_file
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    assert sorted(static["targets"]) == sorted(f"{name}:{API_PORT}" for name in API_SERVICES)
    for name in API_SERVICES:
        assert compose["services"][name]["environment"]["PORT"] == str(API_PORT)
    assert set(service["depends_on"]) == set(API_SERVICES)


@pytest.mark.static
def test_grafana_is_provisioned_with_the_datasources_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["grafana"]
    environment = service["environment"]
    bound = mounts(service)
    assert bound["/etc/grafana/provisioning"] == "ops/grafana/provisioning"
    dashboards_dir = next(t for t, s in bound.items() if s == "ops/grafana/dashboards")
    (provider,) = provisioning("dashboards")["providers"]
    assert provider["options"]["path"] == dashboards_dir
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"

    sources = {source["uid"]: source for source in provisioning("datasources")["datasources"]}
    prometheus = sources["liventix-prometheus"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert "9090" in str(compose["services"]["prometheus"]["ports"][0])
    postgres = sources["liventix-postgres"]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["url"] == "postgres:5432"

    # Every ${VAR} of the datasource file is set for Grafana, to the database's values.
    text = next((PROVISIONING / "datasources").glob("*.yml")).read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert variables <= set(environment), variables - set(environment)
    database = compose["services"]["postgres"]["environment"]
    assert environment["LIVENTIX_GRAFANA_DB_NAME"] == database["POSTGRES_DB"]
    assert environment["LIVENTIX_GRAFANA_DB_USER"] == database["POSTGRES_USER"]
    assert environment["LIVENTIX_GRAFANA_DB_PASSWORD"] == database["POSTGRES_PASSWORD"]
    assert set(service["depends_on"]) == {"prometheus", "postgres"}


def compose_command() -> list[str] | None:
    """Docker Compose, as the `docker compose` plugin or the `docker-compose` program."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.mark.static
def test_docker_compose_accepts_the_file() -> None:
    """`docker compose config` where Docker Compose is installed (the YAML checks above
    stand in for it elsewhere): the file is valid with and without the profile.
    (docker-compose 1.x lists profiled services either way: which ones start by
    default is tests/test_platform.py's check.)"""
    command = compose_command()
    if command is None:
        yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        return

    def services(*profile: str) -> set[str]:
        result = subprocess.run(
            [*command, *profile, "config", "--services"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "JWT_SECRET": "x" * 32},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return set(result.stdout.split())

    assert {"postgres", "redis", "api", "api-2"} <= services()
    assert {"prometheus", "grafana"} <= services("--profile", "observability")


# --- the dashboard -------------------------------------------------------------------------


@pytest.mark.static
def test_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "liventix-overview" and dashboard["title"] == "Liventix"
    assert "id" not in dashboard or dashboard["id"] is None  # an import gets its own
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["postgres"]["query"] == "grafana-postgresql-datasource"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        uids = {panel["datasource"]["uid"]} | {t["datasource"]["uid"] for t in panel["targets"]}
        assert uids <= {"${datasource}", "${postgres}"}, panel["title"]


@pytest.mark.static
def test_dashboard_shows_what_operations_watch(dashboard: dict[str, Any]) -> None:
    promql = " ".join(query for _, query in targets(dashboard, "prometheus"))
    sql = " ".join(query for _, query in targets(dashboard, "grafana-postgresql-datasource"))
    for gauge in (
        "liventix_paid_orders_without_tickets",
        "liventix_tiers_negative_availability",
        "liventix_ghost_reservations",
        "liventix_expired_active_holds",
        "liventix_oldest_expired_active_hold_seconds",
        "liventix_unsettled_refunds",
        "liventix_reconciliation_mismatches",
        "liventix_emails_dead",
    ):
        assert gauge in promql, gauge
    assert "ticketing.event_health" in sql and "ticketing.event_readiness" in sql
    for needed in (
        "liventix_graphql_operation_duration_seconds_bucket",  # latency per operation
        "liventix_graphql_field_duration_seconds_bucket",
        "liventix_ws_connections",
        "liventix_job_runs_total",
        "liventix_job_last_success_timestamp_seconds",
        "liventix_webhook_events_total",
        "liventix_db_pool_in_use",
    ):
        assert needed in promql, needed


@pytest.mark.static
def test_dashboard_promql_parses_and_reads_exported_metrics(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    queries = targets(dashboard, "prometheus")
    unknown = {name for name, metric in dashboard_metrics().items() if metric.type == "unknown"}
    assert unknown == set(), "the dashboard reads metrics nobody exports"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query:{n}", "expr": query}
                    for n, (_, query) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(orjson.dumps(rules).decode())  # JSON is YAML
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


async def test_dashboard_sql_runs_against_the_schema(
    dashboard: dict[str, Any], database: Database, database_url: str
) -> None:
    await db.demo.seed(database)
    queries = targets(dashboard, "grafana-postgresql-datasource")
    assert queries
    conn = await asyncpg.connect(database_url)
    try:
        for title, query in queries:
            async with conn.transaction(readonly=True):
                rows = await conn.fetch(query)
            if "event_health" in query:
                assert len(rows) == len(db.demo.EVENT_IDS), title
    finally:
        await conn.close()


def readme_grafana_role() -> str:
    """The README's SQL that creates the dashboard's read-only PostgreSQL role."""
    blocks: list[str] = re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (block,) = [b for b in blocks if "liventix_grafana" in b]
    return block


async def test_the_readme_role_for_grafana_can_run_every_dashboard_query(
    dashboard: dict[str, Any], database: Database, database_url: str
) -> None:
    """As the role the README creates for Grafana (in a transaction rolled back)."""
    await db.demo.seed(database)
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(readme_grafana_role())
            await conn.execute("SET LOCAL ROLE liventix_grafana")
            for _, query in targets(dashboard, "grafana-postgresql-datasource"):
                await conn.fetch(query)  # raises InsufficientPrivilegeError if not allowed
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT contact_email FROM ticketing.orders")
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


@pytest.mark.live_app
async def test_the_app_exports_every_metric_the_dashboard_reads(
    make_app: Callable[..., Starlette], tmp_path: Path
) -> None:
    wanted = dashboard_metrics()
    app = make_app(jobs_enabled=True, mail_sink_dir=tmp_path / "mail")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await GraphQLClient(http)("{ events(first: 1) { edges { node { id } } } }")
            page = await scrape_until_complete(http, wanted)
    assert page.problems(wanted) == []
