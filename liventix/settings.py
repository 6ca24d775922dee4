"""Settings read from the environment (and `.env`), validated once at start-up.

Every variable is documented in the README's configuration table; `load_settings`
turns a validation failure into one line per bad variable, naming it, so an operator
never has to read a stack trace to find a typo.
"""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "liventix-development-secret-change-me-0123456789"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_liventix_local_development"
# Where `npm ci` in `web/` puts GraphiQL's built files in a source checkout. An installed
# package (the Docker image) is not next to `web/`, so it sets GRAPHIQL_ASSETS_DIR.
DEFAULT_GRAPHIQL_ASSETS_DIR = Path(__file__).resolve().parent.parent / "web" / "node_modules"
# The roles a token may carry (`liventix.auth.Role`, which tests keep in step): settings
# sit below auth in the layers, so they name them here to validate INTROSPECTION_ROLES.
ROLE_NAMES = ("anonymous", "user", "organizer", "admin", "partner")
# Email defaults for development: links point at the local server, and the sender's
# domain is reserved (RFC 2606), so a message that escapes the sink bounces at once.
DEV_EMAIL_FROM = "Liventix <notifications@liventix.invalid>"
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


# Browser origins allowed by default outside production (CORS_ORIGINS unset): the usual
# dev servers of SPA tool chains (create-react-app / Next.js, Vite), by name and address.
DEV_CORS_ORIGINS = (
    "http://localhost:3000",
    "http://localhost:5173",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:5173",
)


class SettingsError(Exception):
    """Raised with a readable message naming every invalid variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    data_dir: Path = Path(".data")
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: json in production

    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    db_acquire_timeout: float = Field(default=5.0, gt=0)

    jwt_secret: str = DEV_JWT_SECRET
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    cors_origins: str | None = None  # unset: DEV_CORS_ORIGINS, none in production

    graphiql: bool = True  # false by default in production (`_graphiql_off_in_production`)
    graphiql_assets_dir: Path = DEFAULT_GRAPHIQL_ASSETS_DIR
    max_query_depth: int = Field(default=10, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2000, ge=50)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_query_cost: int = Field(default=10000, ge=1)
    introspection_roles: str = "organizer,admin,partner"
    request_timeout_seconds: float = Field(default=15.0, gt=0)
    statement_timeout_ms: int = Field(default=10000, ge=0)
    rate_limit: str = "300/minute"
    rate_limit_enabled: bool = True
    persisted_queries: Literal["automatic", "allowlist", "off"] = "automatic"
    persisted_query_max_age: int = Field(default=10, ge=0, le=86400)
    persisted_query_cache_size: int = Field(default=1000, ge=1)
    persisted_query_max_stored: int = Field(default=10000, ge=1)

    hold_ttl_seconds: int = Field(default=900, ge=10)
    sweep_interval_seconds: float = Field(default=10.0, gt=0, le=30)
    reconcile_interval_seconds: float = Field(default=86400.0, gt=0)
    anonymize_after_days: int = Field(default=90, ge=1)
    health_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    jobs_enabled: bool = True

    stripe_secret_key: str | None = None
    stripe_webhook_secret: str = DEV_STRIPE_WEBHOOK_SECRET
    stripe_webhook_tolerance: int = Field(default=300, ge=1)
    stripe_api_base: str | None = None

    ws_init_timeout: float = Field(default=10.0, gt=0)
    ws_max_subscriptions: int = Field(default=50, ge=1)
    ws_buffer_size: int = Field(default=256, ge=1)

    # Email: the outbox sender (liventix.mail) and the links its messages carry.
    public_url: str | None = None  # unset: this server's own HOST and PORT (`link_base`)
    email_from: str = DEV_EMAIL_FROM
    smtp_host: str | None = None  # unset: the .eml sink outside production
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # unset: by SMTP_TLS
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    mail_sink_dir: Path | None = None  # unset: DATA_DIR/mail
    email_send_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    email_batch_size: int = Field(default=50, ge=1, le=1000)
    email_lease_seconds: float = Field(default=120.0, gt=0)
    email_max_attempts: int = Field(default=8, ge=1, le=30)
    email_retry_base_seconds: float = Field(default=30.0, gt=0, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _graphiql_off_in_production(cls, data: Any) -> Any:
        """GRAPHIQL defaults to false in production: the playground is opt-in there."""
        if isinstance(data, dict) and data.get("graphiql") in (None, ""):
            data = {k: v for k, v in data.items() if k != "graphiql"}
            if data.get("environment") == "production":
                data["graphiql"] = False
        return data

    @field_validator("introspection_roles")
    @classmethod
    def _known_roles(cls, value: str) -> str:
        roles = [part.strip() for part in value.split(",") if part.strip()]
        unknown = sorted(set(roles) - set(ROLE_NAMES))
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (roles: {', '.join(ROLE_NAMES)})")
        return ",".join(roles)

    @property
    def link_base(self) -> str:
        """Where links in emails point: PUBLIC_URL, or in development the address this
        server binds (a wildcard host as loopback), so a link works as it is."""
        if self.public_url is not None:
            return self.public_url
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def log_format_in_use(self) -> Literal["json", "text"]:
        """LOG_FORMAT, with ``auto`` resolved: JSON lines in production (for a log
        collector), readable lines elsewhere."""
        if self.log_format == "auto":
            return "json" if self.is_production else "text"
        return self.log_format

    @property
    def introspection_role_set(self) -> frozenset[str]:
        """The roles that may introspect the schema in production (everyone elsewhere)."""
        return frozenset(role for role in self.introspection_roles.split(",") if role)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// URL")
        return value or None

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: str | None) -> str | None:
        """Comma-separated `scheme://host[:port]` origins, as browsers send them in
        `Origin`; a path, a wildcard or a typo would silently match nothing."""
        if value is None:
            return None
        origins = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            origin = item.lower().removesuffix("/")
            parts = urlsplit(origin)
            try:
                port_ok = parts.port is None or parts.port > 0
            except ValueError:
                port_ok = False
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.username is not None
                or parts.path
                or parts.query
                or parts.fragment
                or "?" in origin
                or "#" in origin
                or not port_ok
            ):
                raise ValueError(
                    f"{item!r} is not an origin: give scheme://host[:port], no path "
                    "(e.g. https://app.example.com)"
                )
            origins.append(origin)
        return ",".join(origins)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """The browser origins allowed to call the API (CORS)."""
        if self.cors_origins is None:
            return () if self.environment == "production" else DEV_CORS_ORIGINS
        return tuple(origin for origin in self.cors_origins.split(",") if origin)

    @field_validator("rate_limit")
    @classmethod
    def _one_parsable_rate(cls, value: str) -> str:
        """Parsed here, not first by the rate limiter: a typo must stop the start, not
        turn every request (health probes included) into a 500 later."""
        try:
            items = parse_many(value)
        except ValueError:
            raise ValueError("must be a rate such as 300/minute or 10/second") from None
        if len(items) != 1:
            raise ValueError("must be one limit such as 300/minute (only one is applied)")
        if items[0].amount < 1:
            raise ValueError("must allow at least 1 request per window")
        return value

    @field_validator("smtp_host", "smtp_username", "smtp_password", "mail_sink_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """`SMTP_HOST=` (as compose files write an optional variable) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        """The base of the links in emails (unsubscribe): scheme, host and an optional
        path prefix, no query; a typo here would only show up in users' mailboxes."""
        if value is None or not value.strip():
            return None
        url = value.strip().removesuffix("/")
        parts = urlsplit(url)
        ours = parts.scheme in ("http", "https") and parts.hostname and parts.username is None
        if not ours or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL such as https://api.example.com")
        return url

    @field_validator("email_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        """One address, with an optional display name: `Liventix <hello@example.com>`.
        Its domain also names our Message-IDs."""
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        _, address = parseaddr(value)
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in address):
            raise ValueError("must be an address such as Liventix <hello@example.com>")
        return value.strip()

    @property
    def email_domain(self) -> str:
        """The domain of EMAIL_FROM (the right-hand side of our Message-IDs)."""
        return parseaddr(self.email_from)[1].rpartition("@")[2].lower()

    @property
    def smtp_port_in_use(self) -> int:
        """SMTP_PORT, else the usual port of SMTP_TLS (25, 587 or 465)."""
        return self.smtp_port or SMTP_DEFAULT_PORTS[self.smtp_tls]

    @property
    def mail_sink_path(self) -> Path:
        """Where the development sink writes `.eml` files."""
        return self.mail_sink_dir or self.data_dir / "mail"

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if len(value) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs a strong key)")
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("JWT_SECRET must be set in production")
        if (
            self.environment == "production"
            and self.stripe_secret_key
            and self.stripe_webhook_secret == DEV_STRIPE_WEBHOOK_SECRET
        ):
            # The default is published in this repository: anyone could sign a fake
            # "payment succeeded" webhook with it and be handed tickets.
            raise ValueError(
                "STRIPE_WEBHOOK_SECRET must be set in production when STRIPE_SECRET_KEY is "
                "(the default signing secret is public)"
            )
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        self._check_email()
        return self

    def _check_email(self) -> None:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
        if self.email_lease_seconds < 2 * self.smtp_timeout_seconds:
            # The sender starts a message only while a whole SMTP timeout is left on
            # its lease; shorter, a slow server would let another process send it too.
            raise ValueError("EMAIL_LEASE_SECONDS must be at least twice SMTP_TIMEOUT_SECONDS")
        if self.environment != "production" or self.smtp_host is None:
            return
        if self.public_url is None:
            raise ValueError(
                "PUBLIC_URL must be set in production when SMTP_HOST is (the unsubscribe "
                "links in emails point at it)"
            )
        if self.email_from == DEV_EMAIL_FROM:
            raise ValueError("EMAIL_FROM must be set in production when SMTP_HOST is")
        if self.smtp_password is not None and self.smtp_tls == "none":
            raise ValueError("SMTP_TLS=none would send SMTP_PASSWORD in clear text")


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise `SettingsError` naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "SETTINGS"
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
