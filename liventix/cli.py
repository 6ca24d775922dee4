"""The `liventix` command: serve, migrate, seed-demo, token, and operational jobs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Sequence

import db.demo
import db.migrate
from db.core import create_database
from liventix.auth import Role, mint_token
from liventix.database_url import resolve_database_url
from liventix.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"liventix: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
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

    from liventix import stripe_cli

    stripe_cli.add_commands(commands)
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
    print(f"Liventix API on http://{host}:{port}/graphql (GraphiQL in a browser)", flush=True)
    uvicorn.run(
        "liventix.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        ws="websockets-sansio",
        # A WebSocket message is held to the same size limit as an HTTP request body.
        ws_max_size=settings.max_body_bytes,
        proxy_headers=True,
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
    from datetime import timedelta

    print(mint_token(settings, user_id, role, ttl=timedelta(hours=args.hours)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
