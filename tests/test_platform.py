"""Deployment files kept honest by reading them: docker-compose.yml and the Dockerfile
must name real settings with valid values, and agree on services and ports.

Neither can run here (no Docker), so these tests are what keeps them from drifting
away from `liventix.settings.Settings`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from liventix.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}
API_SERVICES = ("api", "api-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def interpolate(value: object) -> str:
    """Resolve compose's `${VAR:-default}` / `${VAR:?message}` as an operator would."""

    def substitute(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if op == ":-":
            return rest
        return "operator-provided-secret-" + "x" * 24 if name == "JWT_SECRET" else "set"

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", substitute, str(value))


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    pairs = []
    for mapping in service.get("ports", []):
        host, container = str(mapping).rsplit(":", 1)
        pairs.append((int(host.rsplit(":", 1)[-1]), int(container)))
    return pairs


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # `docker compose up` starts these; Prometheus and Grafana only with their profile
    # (tests/test_observability.py checks those).
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", *API_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert published_ports(services["postgres"]) == [(5432, 5432)]
    assert published_ports(services["redis"]) == [(6379, 6379)]
    for name in API_SERVICES:
        assert services[name]["build"] in (".", {"context": "."}), name
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}
    assert (ROOT / "Dockerfile").is_file()


def test_api_environment_is_settings_with_valid_values(compose: dict[str, Any]) -> None:
    for name in API_SERVICES:
        environment = compose["services"][name]["environment"]
        unknown = set(environment) - SETTINGS_VARS
        assert not unknown, f"{name} sets variables Settings does not read: {unknown}"
        values = {key.lower(): interpolate(value) for key, value in environment.items()}
        settings = load_settings(**values)  # raises, naming the variable, if invalid
        assert settings.environment == "production"
        assert settings.host == "0.0.0.0"
        assert settings.redis_url is not None
        assert [container for _, container in published_ports(compose["services"][name])] == [
            settings.port
        ], f"{name} publishes a port the API does not listen on"


def test_api_replicas_share_one_configuration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["environment"] == services["api-2"]["environment"]
    hosts = [published_ports(services[name])[0][0] for name in API_SERVICES]
    assert len(set(hosts)) == len(hosts), "replicas must publish distinct host ports"


def test_api_urls_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environment = services["api"]["environment"]
    postgres = services["postgres"]["environment"]
    database = urlsplit(environment["DATABASE_URL"])
    assert database.hostname == "postgres"
    assert database.port == 5432
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    redis = urlsplit(environment["REDIS_URL"])
    assert (redis.hostname, redis.port) == ("redis", 6379)


def test_dockerfile_sets_only_settings_and_exposes_the_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    env_lines = re.findall(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, flags=re.MULTILINE)
    names = set(re.findall(r"(\w+)=", " ".join(env_lines)))
    python_vars = {n for n in names if n.startswith("PYTHON")}
    assert names - python_vars <= SETTINGS_VARS, names - python_vars - SETTINGS_VARS
    assert "GRAPHIQL_ASSETS_DIR" in names, "an installed package must be told where assets are"
    port = re.search(r"\bPORT=(\d+)", dockerfile)
    assert port is not None
    assert f"EXPOSE {port.group(1)}" in dockerfile
    assert re.search(r"COPY --from=\S+ \S+ (\S+)", dockerfile)
    assets_dir = re.search(r"GRAPHIQL_ASSETS_DIR=(\S+)", dockerfile)
    assert assets_dir is not None
    assert f" {assets_dir.group(1)}\n" in dockerfile, "assets are copied where the setting says"
