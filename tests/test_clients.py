"""The served API, driven by the clients our users run: `tests/clients/apollo.test.mjs`
(Apollo Client with persisted queries and its normalized cache, graphql-ws for the live
feed) against the real app under uvicorn, on this test's database with the demo data.

Node and the script's npm packages are installed by `make test`
(`scripts/test-tools.sh`); a missing one fails here rather than skipping the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx

import db.demo
from liventix.auth import Role
from tests.conftest import ServerThread

CLIENTS = Path(__file__).parent / "clients"
SCRIPT = CLIENTS / "apollo.test.mjs"
RUN_TIMEOUT = 60.0  # the script stops itself after 30 s; this is the backstop


def installed_stamp() -> Path:
    """The marker `scripts/test-tools.sh` leaves after `npm ci` of the current lockfile."""
    digest = hashlib.sha256((CLIENTS / "package-lock.json").read_bytes()).hexdigest()
    return CLIENTS / "node_modules" / f".installed-{digest[:16]}"


async def first_event_id(api: str) -> str:
    """The soonest demo event's id as the API spells it (the script passes it back)."""
    query = "query { events(first: 1) { edges { node { id } } } }"
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        response = await http.post("/graphql", json={"query": query})
    payload = response.json()
    assert response.status_code == 200 and not payload.get("errors"), payload
    event_id: str = payload["data"]["events"]["edges"][0]["node"]["id"]
    return event_id


async def test_apollo_client_and_graphql_ws_against_the_served_api(
    demo: None, server: ServerThread, token: Callable[..., str]
) -> None:
    """Every step of the script passes: the feed read and normalized, a created post
    prepended in the cache without a refetch, the post live over graphql-ws, `node(id:)`
    on the same cache entry, automatic persisted queries over GET."""
    node = shutil.which("node")
    assert node, "node missing: run `make test` (scripts/test-tools.sh installs npm and node)"
    assert installed_stamp().exists(), (
        "tests/clients packages missing or stale: run `make test` (scripts/test-tools.sh "
        "runs npm ci in tests/clients)"
    )
    env = {
        **os.environ,
        "LIVENTIX_API_URL": f"{server.http_url}/graphql",
        "LIVENTIX_WS_URL": server.ws_url,
        "LIVENTIX_TOKEN": token(Role.USER, db.demo.FAN_ID),
        "LIVENTIX_EVENT_ID": await first_event_id(server.http_url),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        cwd=CLIENTS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    outcome = "failed"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        outcome = f"ran over {RUN_TIMEOUT} s"
    assert process.returncode == 0, f"{SCRIPT.name} {outcome}:\n{output.decode()}"
