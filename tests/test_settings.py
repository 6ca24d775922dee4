"""Settings: validated at start-up, with a message naming each bad variable.

Each test runs in an empty working directory so a developer's own `.env` never leaks
in, and with the variables it sets cleared from the environment first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from liventix.settings import (
    DEV_JWT_SECRET,
    DEV_STRIPE_WEBHOOK_SECRET,
    Settings,
    SettingsError,
    load_settings,
)

VARIABLES = [f.upper() for f in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PORT", "eighty", "valid integer"),
        ("PORT", "70000", "less than or equal to 65535"),
        ("JWT_SECRET", "too-short", "at least 32 characters"),
        ("DATABASE_URL", "mysql://root@localhost/liventix", "postgresql://"),
        ("REDIS_URL", "memcached://localhost", "redis://"),
        ("LOG_LEVEL", "loud", "debug"),
        # Unparsable, it used to start the server and then fail every request with 500.
        ("RATE_LIMIT", "lots", "300/minute"),
        ("RATE_LIMIT", "0/minute", "at least 1"),
        ("RATE_LIMIT", "10/second;300/minute", "one limit"),
        # An origin is what a browser sends in `Origin`: anything else matches nothing.
        ("CORS_ORIGINS", "https://app.example.com/app", "not an origin"),
        ("CORS_ORIGINS", "app.example.com", "not an origin"),
        ("CORS_ORIGINS", "*", "not an origin"),
        ("CORS_ORIGINS", "http://localhost:3000,ftp://files.example.com", "ftp://"),
        ("PERSISTED_QUERIES", "sometimes", "'automatic', 'allowlist' or 'off'"),
        ("PERSISTED_QUERY_MAX_AGE", "-1", "greater than or equal to 0"),
        ("PERSISTED_QUERY_CACHE_SIZE", "0", "greater than or equal to 1"),
        ("PERSISTED_QUERY_MAX_STORED", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_variable_is_named_in_the_message(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{variable}: " in message, message
    assert reason in message, message


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "0")
    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "PORT: " in str(caught.value)
    assert "JWT_SECRET: " in str(caught.value)


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="JWT_SECRET must be set in production"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", "p" * 40)
    assert load_settings().jwt_secret == "p" * 40


def test_production_refuses_the_public_webhook_secret_with_stripe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default signing secret is in this repository: with real Stripe keys in
    production, anyone could sign a fake `payment_intent.succeeded` with it."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", "p" * 40)
    assert load_settings().stripe_webhook_secret == DEV_STRIPE_WEBHOOK_SECRET  # local gateway
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_example")
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET must be set in production"):
        load_settings()
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_the_stripe_dashboard")
    assert load_settings().stripe_webhook_secret == "whsec_from_the_stripe_dashboard"


def test_development_accepts_the_public_webhook_secret_with_stripe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_example")
    assert load_settings().stripe_webhook_secret == DEV_STRIPE_WEBHOOK_SECRET


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.port == 8000
    assert settings.database_url is None  # the embedded PostgreSQL
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert (settings.graphiql_assets_dir / "graphiql").parent.name == "node_modules"


def test_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "PORT=9123\nJWT_SECRET=from-dotenv-0123456789-0123456789\n"
        "GRAPHIQL_ASSETS_DIR=/srv/assets\nRATE_LIMIT=5/second\n"
    )
    settings = load_settings()
    assert settings.port == 9123
    assert settings.jwt_secret == "from-dotenv-0123456789-0123456789"
    assert settings.graphiql_assets_dir == Path("/srv/assets")
    assert settings.rate_limit == "5/second"
    monkeypatch.setenv("PORT", "9124")
    assert load_settings().port == 9124


def test_a_bad_dotenv_value_is_named_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_POOL_MAX=lots\n")
    with pytest.raises(SettingsError, match="DB_POOL_MAX: "):
        load_settings()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"PORT": "not-a-port"}, "PORT: "),
        ({"RATE_LIMIT": "lots"}, "RATE_LIMIT: "),
        ({"CORS_ORIGINS": "https://app.example.com/spa"}, "CORS_ORIGINS: "),
        (
            {
                "ENVIRONMENT": "production",
                "JWT_SECRET": "p" * 40,
                "STRIPE_SECRET_KEY": "sk_live_example",
            },
            "STRIPE_WEBHOOK_SECRET",
        ),
    ],
)
def test_serve_with_a_bad_variable_exits_2_naming_it(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(variables)
    # Nothing listens there: should validation let a bad value through, `serve` fails
    # fast on the database instead of serving (and the test fails without hanging).
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:9/none"
    result = subprocess.run(
        [sys.executable, "-m", "liventix.cli", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_readme_documents_every_variable() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    # The configuration section's table only (the error codes have a table too).
    configuration = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", configuration, flags=re.MULTILINE))
    assert documented == set(VARIABLES), {
        "undocumented": set(VARIABLES) - documented,
        "not settings": documented - set(VARIABLES),
    }


def test_cors_origins_default_to_local_dev_servers_except_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "http://localhost:5173" in load_settings().cors_origin_list
    assert "http://127.0.0.1:3000" in load_settings().cors_origin_list
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", "p" * 40)
    assert load_settings().cors_origin_list == ()
    monkeypatch.setenv("CORS_ORIGINS", " https://App.example.com/, https://admin.example.com:8443")
    assert load_settings().cors_origin_list == (
        "https://app.example.com",
        "https://admin.example.com:8443",
    )
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert load_settings().cors_origin_list == ()
