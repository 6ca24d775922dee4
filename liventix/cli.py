"""The `liventix` command: serve, migrate, seed-demo, token, webhook, reconcile, schema
and persisted-queries."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

import db.demo
import db.jobs
import db.migrate
import db.persisted_queries
import db.reconcile
from db.core import create_database
from db.persisted_queries import Registration
from liventix import jobs, logs, metrics_endpoint, operation_files
from liventix.auth import Role, mint_token
from liventix.clock import SystemClock
from liventix.database_url import resolve_database_url
from liventix.payments.gateways import gateway_for
from liventix.settings import Settings, SettingsError, load_settings
from liventix.signed_events import EVENT_TYPES, trigger
from resolvers.ids import ORDER, parse_id
from schema import build_schema


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"liventix: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
    result: int = args.handler(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liventix", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API (embedded PostgreSQL by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.add_argument("--demo", action="store_true", help="seed demo data first")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply pending SQL migrations")
    migrate.set_defaults(handler=_migrate)

    seed = commands.add_parser("seed-demo", help="load demo data (idempotent)")
    seed.set_defaults(handler=_seed_demo)

    token = commands.add_parser("token", help="mint a development JWT")
    token.add_argument("--role", choices=[r.value for r in Role], default="user")
    token.add_argument("--user", type=uuid.UUID, help="user id (default: demo user of the role)")
    token.add_argument("--hours", type=float, default=12.0)
    token.set_defaults(handler=_token)

    hook = commands.add_parser(
        "webhook", help="send a signed Stripe test event for an order to a running server"
    )
    hook.add_argument("event_type", choices=EVENT_TYPES)
    hook.add_argument(
        "--order", type=_order_id, required=True, help="order id (as the API gave it)"
    )
    hook.add_argument(
        "--url", help="webhook URL (default: /webhooks/stripe on HOST and PORT, as `serve` binds)"
    )
    hook.set_defaults(handler=_webhook)

    reconcile = commands.add_parser(
        "reconcile", help="repair paid orders without tickets and drifted counters; report"
    )
    reconcile.set_defaults(handler=_reconcile)

    sdl = commands.add_parser("schema", help="print the GraphQL schema as SDL (no database needed)")
    sdl.set_defaults(handler=_schema)

    persisted = commands.add_parser(
        "persisted-queries", help="the allow-list of operations (PERSISTED_QUERIES=allowlist)"
    )
    actions = persisted.add_subparsers(required=True, metavar="ACTION")
    register = actions.add_parser(
        "register",
        help="register every operation of the .graphql files under a folder, as clients hash it",
    )
    register.add_argument("folder", type=Path, metavar="DIR")
    register.set_defaults(handler=_register_persisted_queries)
    listing = actions.add_parser("list", help="list stored persisted queries")
    listing.add_argument(
        "--kind", choices=[k.value for k in db.persisted_queries.Kind], help="only this kind"
    )
    listing.set_defaults(handler=_list_persisted_queries)
    return parser


@contextlib.asynccontextmanager
async def _migrated_url(settings: Settings) -> AsyncIterator[str]:
    async with resolve_database_url(settings) as url:
        await db.migrate.migrate(url)
        yield url


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    if args.demo:
        _seed_demo(settings, args)
    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    if workers > 1:  # /metrics sums the workers' metric files (see liventix.metrics_endpoint)
        metrics_endpoint.prepare_multiprocess_dir(settings.data_dir, port)
    print(f"Liventix API on http://{host}:{port}/graphql (GraphiQL in a browser)", flush=True)
    uvicorn.run(
        "liventix.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws="websockets-sansio",
        # A WebSocket message is held to the same size limit as an HTTP request body.
        ws_max_size=settings.max_body_bytes,
        proxy_headers=True,
        # Every worker logs like this process (LOG_FORMAT), with our request log.
        **logs.uvicorn_options(settings),
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        async with resolve_database_url(settings) as url:
            return await db.migrate.migrate(url)

    applied = asyncio.run(run())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _migrated_url(settings) as url:
            database = create_database(url, min_size=1, max_size=2)
            await database.connect()
            try:
                await db.demo.seed(database)
            finally:
                await database.disconnect()

    asyncio.run(run())
    print("demo data loaded (organizer, 2 events, tiers, posts)")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    role = Role(args.role)
    defaults = {Role.ORGANIZER: db.demo.ORGANIZER_ID, Role.ADMIN: uuid.UUID(int=1)}
    user_id = args.user or defaults.get(role, db.demo.FAN_ID)
    print(mint_token(settings, user_id, role, ttl=timedelta(hours=args.hours)))
    return 0


# A wildcard bind address accepts connections on every interface but is not itself an
# address to connect to: the loopback of the same family reaches the server.
_CONNECTABLE = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def local_webhook_url(settings: Settings) -> str:
    """The webhook URL of the server `liventix serve` runs with these settings.

    HOST and PORT are what `serve` binds (a wildcard becomes loopback), so the
    command reaches a server started with the same environment.
    """
    host = _CONNECTABLE.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):  # an IPv6 literal needs brackets
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/webhooks/stripe"


def _order_id(value: str) -> uuid.UUID:
    """An order's id as `checkout` returned it (or its bare UUID), for argparse."""
    order_id = parse_id(value, ORDER)
    if order_id is None:
        raise argparse.ArgumentTypeError(f"not an order id: {value!r}")
    return order_id


def _webhook(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or local_webhook_url(settings)
    try:
        response = asyncio.run(trigger(settings, args.event_type, args.order, url))
    except LookupError as exc:
        print(f"liventix: {exc}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # httpx's own message ("All connection attempts failed") does not say where.
        hint = "" if args.url else " (is `liventix serve` running with this HOST and PORT?)"
        print(
            f"liventix: could not send the event to {url}: {_one_line(exc)}{hint}", file=sys.stderr
        )
        return 1
    except (OSError, asyncpg.PostgresError) as exc:  # the order is read first
        print(
            f"liventix: could not read the order from the database: {_one_line(exc)}",
            file=sys.stderr,
        )
        return 1
    print(f"{response.status_code} {response.text}")
    return 0 if response.is_success else 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """The reconciliation job's body, run now and recorded like a scheduled run."""

    async def run() -> dict[str, Any]:
        async with _migrated_url(settings) as url:
            database = create_database(url, min_size=1, max_size=2)
            await database.connect()
            gateway = gateway_for(settings)
            try:
                run_id = await db.jobs.start_run(database, db.reconcile.JOB_NAME)
                items, report = await jobs.reconcile(database, gateway, SystemClock().now())
                await db.jobs.finish_run(database, run_id, items=items, report=report)
                return report
            finally:
                await gateway.aclose()
                await database.disconnect()

    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
    return 0


def schema_sdl() -> str:
    """The schema as SDL, exactly as `liventix schema > schema.graphql` writes it."""
    return build_schema().as_str() + "\n"


def _schema(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(schema_sdl())
    return 0


def _register_persisted_queries(settings: Settings, args: argparse.Namespace) -> int:
    """Validate every operation of the folder against the schema (with the operation
    limits of these settings), then register them all in one transaction; one invalid
    operation registers nothing."""
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_cost=settings.max_query_cost,
    )
    try:
        operations = operation_files.read_operations(args.folder)
        documents = operation_files.documents_to_register(operations, schema)
    except operation_files.OperationFileError as exc:
        print(f"liventix: {exc}", file=sys.stderr)
        return 2

    async def run() -> frozenset[str]:
        async with _migrated_url(settings) as url:
            database = create_database(url, min_size=1, max_size=2)
            await database.connect()
            try:
                registrations = [Registration(d.hash, d.text, d.operation.name) for d in documents]
                return await db.persisted_queries.register(database, registrations)
            finally:
                await database.disconnect()

    added = asyncio.run(run())
    width = max(len(d.operation.label) for d in documents)
    for document in documents:
        state = "registered" if document.hash in added else "already registered"
        print(
            f"{document.operation.label:<{width}}  {document.hash}  {document.variant}  ({state})"
        )
    print(
        f"{_count(len(documents), 'document')} of {_count(len(operations), 'operation')} "
        f"on the allow-list ({len(added)} new)"
    )
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _list_persisted_queries(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[db.persisted_queries.PersistedQuery]:
        async with _migrated_url(settings) as url:
            database = create_database(url, min_size=1, max_size=2)
            await database.connect()
            try:
                kind = db.persisted_queries.Kind(args.kind) if args.kind else None
                return await db.persisted_queries.list_queries(database, kind)
            finally:
                await database.disconnect()

    for stored in asyncio.run(run()):
        name = stored.operation_name or "-"
        print(f"{stored.kind.value:<10}  {stored.hash}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
