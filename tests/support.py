"""Test clients: GraphQL over HTTP and over `graphql-transport-ws`, and `liventix serve`
in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    VariableDefinitionNode,
    VariableNode,
    parse,
    parse_type,
    print_ast,
    value_from_ast_untyped,
)
from websockets.asyncio.client import ClientConnection, connect

from liventix import jobs
from liventix.auth import Role, mint_token
from liventix.settings import Settings
from resolvers.ids import decode_global_id, global_id

PROTOCOL = "graphql-transport-ws"


async def until_waiting(monitor: asyncpg.Connection, sessions: int) -> None:
    """Return once `sessions` backends of this database are blocked on a lock."""
    for _ in range(1000):
        waiting = await monitor.fetchval(
            """SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        )
        if waiting >= sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {sessions} sessions waiting for a lock")


def gid(type_name: str, key: uuid.UUID | int) -> str:
    """The global id the API gives the `type_name` object with this key."""
    return global_id(type_name, key)


def only_code(response: httpx.Response) -> str:
    """The code of the response's one error; a request error (no `data`)."""
    payload = response.json()
    assert "data" not in payload, payload
    assert len(payload["errors"]) == 1, payload
    code: str = payload["errors"][0]["extensions"]["code"]
    return code


def key_of(value: str | uuid.UUID) -> uuid.UUID:
    """The row key inside a global id the API returned (or a UUID as it is), to look
    the row up in the database."""
    if isinstance(value, uuid.UUID):
        return value
    decoded = decode_global_id(value)
    return uuid.UUID(decoded[1] if decoded else value)


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables or {}}
        return await self.http.post("/graphql", json=body, headers=headers)

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Execute and return `data`; fails the test on any GraphQL error."""
        response = await self.post(query, variables, token)
        payload: dict[str, Any] = response.json()
        assert response.status_code == 200, payload
        assert not payload.get("errors"), payload["errors"]
        data: dict[str, Any] = payload["data"]
        return data


class WSClient:
    """A minimal graphql-transport-ws client over a real WebSocket connection."""

    def __init__(self, url: str, subprotocol: str = PROTOCOL) -> None:
        self.url = url
        self.subprotocol = subprotocol
        self.conn: ClientConnection | None = None

    async def connect(self) -> None:
        self.conn = await connect(self.url, subprotocols=[self.subprotocol])  # type: ignore[list-item]

    async def send(self, message: dict[str, Any]) -> None:
        assert self.conn is not None
        await self.conn.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        assert self.conn is not None
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, op_id: str | None = None
    ) -> str:
        op_id = op_id or uuid.uuid4().hex[:8]
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})
        return op_id

    async def next_payload(self, op_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next `next` message for `op_id` (pings answered, others skipped)."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            if message.get("id") == op_id:
                assert message["type"] == "next", message
                payload: dict[str, Any] = message["payload"]
                return payload

    async def expect_nothing(self, seconds: float = 0.5) -> None:
        assert self.conn is not None
        try:
            raw = await asyncio.wait_for(self.conn.recv(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {raw!r}")

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def bad_tokens(settings: Settings) -> dict[str, str]:
    """Tokens that must be refused: malformed, forged, expired, unsigned."""
    user = str(uuid.uuid4())
    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    claims = {"sub": user, "role": "user", "exp": exp}
    return {
        "malformed": "not-a-jwt",
        "other secret": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "expired": mint_token(
            settings, uuid.uuid4(), Role.USER, now=datetime.now(UTC) - timedelta(days=2)
        ),
        "alg none": jwt.encode(claims, None, algorithm="none"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


class ApiProcess:
    """`liventix serve` in a subprocess on a free port, run in `workdir` and configured
    only by the variables set here (none of the caller's settings leak in); with
    `workers` > 1, `serve --workers N`."""

    def __init__(self, database_url: str, workdir: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS_VARS}
        env.update(
            DATABASE_URL=database_url,
            PORT=str(self.port),
            JOBS_ENABLED="false",
            RATE_LIMIT_ENABLED="false",
            ENVIRONMENT="test",
            LOG_LEVEL="warning",
        )
        command = [sys.executable, "-m", "liventix.cli", "serve"]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, timeout: float = 45) -> httpx.Response:
        """Poll `/readyz` until it answers 200 and return that answer; fails the test if
        the process exits first or is not ready in time."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise AssertionError(f"server on :{self.port} exited early:\n{stderr}")
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get(f"{self.url}/readyz")
                    if response.status_code == 200:
                        return response
                await asyncio.sleep(0.1)
        raise AssertionError(f"server on :{self.port} not ready after {timeout}s")

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(self.process.wait, 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        if self.process.stderr is not None:
            self.process.stderr.close()


def with_variables(schema: GraphQLSchema, document: str) -> tuple[str, dict[str, Any]]:
    """The document with its root fields' arguments moved into variables."""
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    root = schema.query_type if operation.operation == OperationType.QUERY else schema.mutation_type
    assert isinstance(root, GraphQLObjectType)
    definitions: list[VariableDefinitionNode] = []
    variables: dict[str, Any] = {}
    selections: list[SelectionNode] = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or not selection.arguments:
            selections.append(selection)
            continue
        args = []
        for argument in selection.arguments:
            name = f"v{len(definitions)}"
            arg_type = root.fields[selection.name.value].args[argument.name.value].type
            definitions.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=name)),
                    type=parse_type(str(arg_type)),
                )
            )
            variables[name] = value_from_ast_untyped(argument.value)
            variable = VariableNode(name=NameNode(value=name))
            args.append(ArgumentNode(name=argument.name, value=variable))
        selections.append(dataclasses.replace(selection, arguments=tuple(args)))
    rewritten = dataclasses.replace(
        operation,
        variable_definitions=tuple(definitions),
        selection_set=dataclasses.replace(operation.selection_set, selections=tuple(selections)),
    )
    return print_ast(rewritten), variables


def job_named(name: str) -> jobs.Job:
    """The registered background job called `name`."""
    return next(job for job in jobs.registry() if job.name == name)
