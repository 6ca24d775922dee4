"""Helpers the benchmark scripts share: ports, scratch databases, server readiness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

DEFAULT_ADMIN_URL = os.environ.get(
    "BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def postgres_server(admin_url: str = DEFAULT_ADMIN_URL) -> Iterator[str]:
    """The admin URL of the server at `admin_url` if it answers, else of an embedded
    PostgreSQL in a temporary directory (so `make bench` needs no server installed).

    Call it outside `asyncio.run`: it runs its own short event loop to probe.
    """
    if asyncio.run(_reachable(admin_url)):
        parts = urlsplit(admin_url)
        print(f"PostgreSQL: {parts.hostname}:{parts.port or 5432}", flush=True)
        yield admin_url
        return
    from liventix.embedded import server_url, start_embedded

    with tempfile.TemporaryDirectory(prefix="lvx-bench-") as tmp:
        server = start_embedded(Path(tmp))
        print(f"PostgreSQL: embedded (nothing answered at {admin_url})", flush=True)
        try:
            yield str(server_url(server, "postgres"))
        finally:
            server.cleanup()


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fresh_database(admin_url: str, name: str) -> str:
    """A new, empty database `name` (replacing any left over); returns its URL."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def wait_ready(base: str, *, attempts: int = 600) -> None:
    """Poll `{base}/readyz` every 0.1 s until it answers 200."""
    async with httpx.AsyncClient() as http:
        for _ in range(attempts):
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become ready")


def read_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete (unmasked, server-to-client) WebSocket frames at the start of
    `buffer` as (opcode, payload), and the bytes left over for the next read. The
    benchmarks' clients parse frames by hand: thousands of them in one process, where a
    full client library per connection would measure the client, not the server."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while len(buffer) - offset >= 2:
        opcode = buffer[offset] & 0x0F
        length = buffer[offset + 1] & 0x7F
        start = offset + 2
        if length == 126:
            if len(buffer) - offset < 4:
                break
            length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
            start = offset + 4
        elif length == 127:
            if len(buffer) - offset < 10:
                break
            length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
            start = offset + 10
        if len(buffer) < start + length:
            break
        frames.append((opcode, buffer[start : start + length]))
        offset = start + length
    return frames, buffer[offset:]
