"""What a new user sees first: the README's examples, run on freshly seeded demo data.

The README's GraphQL examples are executed in the order a reader meets them, against a
real server over HTTP and WebSocket, with the variables a reader would fill in from the
previous answers; its `liventix webhook` command is run as written. Then one query per
kind of viewer touches every root `Query` field with every sub-field a few levels deep.
A masked internal error anywhere fails the test (the demo feed once crashed this way
while every test that read its own data passed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from databases import Database
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLUnionType,
    Undefined,
    get_named_type,
    is_leaf_type,
)
from starlette.applications import Starlette

import db.demo
from liventix.auth import Role, mint_token
from liventix.settings import Settings
from schema import build_schema
from tests.conftest import ServerThread
from tests.support import WSClient, gid

README = Path(__file__).resolve().parent.parent / "README.md"
INTERNAL = "INTERNAL_SERVER_ERROR"
SELECTION_DEPTH = 4


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def operation_of(document: str) -> tuple[str, str | None]:
    """The operation type (query, mutation, subscription) and name of a README example."""
    match = re.match(r"\s*(query|mutation|subscription)\b\s*(\w+)?", document)
    if match is None:
        return "query", None
    return match.group(1), match.group(2)


def variables_of(document: str) -> list[str]:
    head = document.split("{", 1)[0]
    return re.findall(r"\$(\w+)\s*:", head)


def internal_errors(payload: dict[str, Any]) -> list[Any]:
    return [
        error
        for error in payload.get("errors") or []
        if (error.get("extensions") or {}).get("code") == INTERNAL
    ]


@pytest.fixture
async def demo_server(
    make_app: Callable[..., Starlette], database: Database
) -> AsyncIterator[ServerThread]:
    await db.demo.seed(database)
    # Limits raised so one operation can reach every sub-field of a root field.
    app = make_app(max_tokens=50_000, max_query_depth=20, max_aliases=500)
    async with ServerThread(app) as running:
        yield running


class Walkthrough:
    """Runs README examples in order, remembering what a reader would copy from them."""

    def __init__(self, server: ServerThread, settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self.values: dict[str, Any] = {"eventId": str(db.demo.EVENT_IDS[0])}
        self.tokens = {
            Role.USER: mint_token(settings, db.demo.FAN_ID, Role.USER),
            Role.ORGANIZER: mint_token(settings, db.demo.ORGANIZER_ID, Role.ORGANIZER),
        }
        self.subscriptions: dict[str | None, tuple[WSClient, str]] = {}

    def variables(self, document: str) -> dict[str, Any]:
        missing = [name for name in variables_of(document) if name not in self.values]
        assert not missing, f"the smoke test has no value for {missing}: teach it one"
        return {name: self.values[name] for name in variables_of(document)}

    def token_for(self, name: str | None) -> str:
        # The organizer scans at the door, creates discount codes, refunds, runs the
        # console, sets and reads a waitlist, approves it and adds seats; every other
        # example is the fan's.
        organizers = (
            "Scan",
            "NewCode",
            "RefundPreview",
            "PartialRefund",
            "Registrations",
            "SalesSummary",
            "ExportRegistrations",
            "ConsoleCounts",
            "Settlement",
            "WaitlistSettings",
            "AddBackstageSeats",
            "BackstageLine",
            "ApproveBackstage",
        )
        return self.tokens[Role.ORGANIZER if name in organizers else Role.USER]

    async def run(self, document: str) -> None:
        """Run an example; a subscription stays open, as in the reader's second tab."""
        kind, name = operation_of(document)
        variables = self.variables(document)
        if kind == "subscription":
            client = WSClient(self.server.ws_url)
            await client.connect()
            await client.init({"Authorization": f"Bearer {self.token_for(name)}"})
            self.subscriptions[name] = (client, await client.subscribe(document, variables))
            return
        payload = await self.post(document, variables, self.token_for(name))
        assert not payload.get("errors"), f"{name}: {payload['errors']}"
        self.remember(payload["data"])

    async def watch_availability(self) -> None:
        """The README's availability steps: the snapshot, then hold seats of another tier
        (holding the same tier again only refreshes the hold) and see that change."""
        client, op_id = self.subscriptions.pop("Availability")
        try:
            first = (await client.next_payload(op_id))["data"]["tierAvailability"]
            assert first["reason"] == "SNAPSHOT", first
            other = next(
                t["tierId"] for t in first["tiers"] if t["tierId"] != self.values["tierId"]
            )
            reserve = next(d for d in readme_blocks("graphql") if operation_of(d)[1] == "Reserve")
            payload = await self.post(reserve, {"tierId": other}, self.tokens[Role.USER])
            assert payload["data"]["reserveTickets"]["__typename"] == "HoldPayload", payload
            change = (await client.next_payload(op_id))["data"]["tierAvailability"]
            assert change["reason"] == "CHANGE", change
            assert change["changedTierId"] == other, change
        finally:
            await client.close()

    async def first_messages(self) -> dict[str | None, dict[str, Any]]:
        """Each open subscription's first message (the examples after it caused it)."""
        firsts = {}
        for name, (client, op_id) in self.subscriptions.items():
            try:
                payload = await client.next_payload(op_id)
            finally:
                await client.close()
            assert not payload.get("errors"), f"{name}: {payload['errors']}"
            self.remember(payload["data"])
            firsts[name] = payload["data"]
        return firsts

    async def post(self, document: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.http_url, timeout=10) as http:
            response = await http.post(
                "/graphql",
                json={"query": document, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        payload: dict[str, Any] = response.json()
        assert response.status_code == 200, payload
        return payload

    def remember(self, data: Any) -> None:
        """Keep the ids a reader would paste into the next example."""
        if isinstance(data, dict):
            typename = data.get("__typename")
            assert not (isinstance(typename, str) and typename.endswith("Error")), data
            for key, value in data.items():
                if key == "tiers" and isinstance(value, list) and len(value) > 1:
                    self.values.setdefault("tierId", value[1].get("id"))  # a paid tier
                    self.values.setdefault("backstageTierId", value[-1].get("id"))  # sold out
                elif key == "entry" and isinstance(value, dict):
                    self.values["entryId"] = value["id"]
                elif key == "hold" and isinstance(value, dict):
                    self.values["holdId"] = value["id"]
                elif key == "order" and isinstance(value, dict):
                    self.values["orderId"] = value["id"]
                elif key == "url" and isinstance(value, str) and "/exports/" in value:
                    self.values["exportPath"] = value[value.index("/exports/") :]
                elif key == "qrPayload":
                    self.values.setdefault("token", value)
                self.remember(value)
        elif isinstance(data, list):
            for item in data:
                self.remember(item)

    async def download_export(self) -> None:
        """Open the export link the README's mutation returned, as `curl` would."""
        async with httpx.AsyncClient(base_url=self.server.http_url, timeout=10) as http:
            response = await http.get(self.values["exportPath"])
        assert response.status_code == 200, response.text
        assert response.text.startswith("order_id,"), response.text[:200]
        assert "sam@example.com" in response.text, response.text[:500]

    def run_command(self, line: str) -> None:
        command = line.replace("<the order id>", self.values["orderId"]).split()
        assert command[0].endswith("liventix"), line
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": self.settings.database_url or "",
            "HOST": "127.0.0.1",
            "PORT": str(self.server.port),
        }
        done = subprocess.run(
            [sys.executable, "-m", "liventix.cli", *command[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"


def readme_webhook_command() -> str:
    for block in readme_blocks("sh"):
        for line in block.splitlines():
            if "liventix webhook" in line:
                return line.strip()
    raise AssertionError("the README no longer shows the webhook command")


async def test_readme_examples_run_on_the_demo_data(
    demo_server: ServerThread, settings: Settings
) -> None:
    walkthrough = Walkthrough(demo_server, settings)
    examples = readme_blocks("graphql")
    assert len(examples) >= 8, "expected the README's walkthrough examples"
    for document in examples:
        await walkthrough.run(document)
        name = operation_of(document)[1]
        if name == "Availability":
            await walkthrough.watch_availability()
        elif name == "ExportRegistrations":  # the README then downloads it
            await walkthrough.download_export()
        elif name == "Checkout":  # the README then pays in a terminal
            walkthrough.run_command(readme_webhook_command())
    assert "token" in walkthrough.values, "MyTickets showed no ticket after the payment"
    firsts = await walkthrough.first_messages()
    assert firsts["Feed"]["eventFeed"]["__typename"] == "PostCreated"
    assert firsts["ConsoleCounts"]["eventConsoleCounts"]["__typename"] == "ConsoleCounts"


# --------------------------------------------------------- every root Query field


def argument_values(values: dict[str, str]) -> dict[str, str]:
    """Literal arguments by `Type.field.argument`, then by argument name alone."""
    return {
        "Query.post.id": f'"{values["postId"]}"',
        "Query.order.id": f'"{values["orderId"]}"',
        "Query.refundPreview.orderId": f'"{values["orderId"]}"',
        "Query.event.id": f'"{db.demo.EVENT_IDS[0]}"',
        "Query.node.id": f'"{values["postId"]}"',
        "Query.nodes.ids": orjson.dumps(
            [
                values["postId"],
                values["orderId"],
                gid("Event", db.demo.EVENT_IDS[0]),
                gid("EventAvailability", db.demo.EVENT_IDS[0]),
            ]
        ).decode(),
        "eventId": f'"{db.demo.EVENT_IDS[0]}"',
        "tierId": f'"{values["tierId"]}"',
        "first": "5",
        "limit": "5",
    }


def arguments(owner: str, name: str, field: GraphQLField, known: dict[str, str]) -> str | None:
    rendered = []
    for arg_name, arg in field.args.items():
        value = known.get(f"{owner}.{name}.{arg_name}", known.get(arg_name))
        if (
            value is None
            and isinstance(arg.type, GraphQLNonNull)
            and arg.default_value is Undefined
        ):
            if owner == "Query":
                raise AssertionError(f"no value for required {owner}.{name}({arg_name}:)")
            return None  # a nested field we cannot call: leave it out
        if value is not None:
            rendered.append(f"{arg_name}: {value}")
    return f"({', '.join(rendered)})" if rendered else ""


def selection(
    type_: GraphQLOutputType, depth: int, path: frozenset[str], known: dict[str, str]
) -> str | None:
    named: GraphQLNamedType = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    if depth == 0 or named.name in path:
        return None
    inner = path | {named.name}
    if isinstance(named, GraphQLUnionType):
        parts = []
        for member in named.types:
            sub = selection(member, depth, path, known)
            if sub:
                parts.append(f"... on {member.name} {sub}")
        return "{ __typename " + " ".join(parts) + " }"
    assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
    parts = ["__typename"]
    for name, field in named.fields.items():
        args = arguments(named.name, name, field, known)
        sub = selection(field.type, depth - 1, inner, known)
        if args is not None and sub is not None:
            parts.append(f"{name}{args} {sub}")
    return "{ " + " ".join(parts) + " }"


def root_field_queries(known: dict[str, str]) -> dict[str, str]:
    """One operation per root `Query` field, so one field's failure cannot hide another's
    (a non-null root field's error nulls the whole `data`)."""
    query = build_schema()._schema.query_type
    assert query is not None
    values = argument_values(known)
    documents = {}
    for name, field in query.fields.items():
        args = arguments("Query", name, field, values)
        sub = selection(field.type, SELECTION_DEPTH, frozenset({"Query"}), values)
        assert args is not None and sub is not None, name
        documents[name] = f"query Every_{name} {{ {name}{args} {sub} }}"
    return documents


async def test_every_root_query_field_on_the_demo_data(
    demo_server: ServerThread, settings: Settings
) -> None:
    walkthrough = Walkthrough(demo_server, settings)
    for document in readme_blocks("graphql"):
        if operation_of(document)[0] != "subscription":
            await walkthrough.run(document)
        if operation_of(document)[1] == "Checkout":
            walkthrough.run_command(readme_webhook_command())
    feed = await walkthrough.post(
        "query($e: ID!) { eventFeed(eventId: $e, first: 1) { edges { node { id } } } }",
        {"e": str(db.demo.EVENT_IDS[0])},
        walkthrough.tokens[Role.USER],
    )
    walkthrough.values["postId"] = feed["data"]["eventFeed"]["edges"][0]["node"]["id"]
    documents = root_field_queries(walkthrough.values)
    viewers = {
        "anonymous": None,
        "fan": walkthrough.tokens[Role.USER],
        "organizer": walkthrough.tokens[Role.ORGANIZER],
        "admin": mint_token(settings, uuid.UUID(int=1), Role.ADMIN),
    }
    failures = []
    async with httpx.AsyncClient(base_url=demo_server.http_url, timeout=20) as http:
        for viewer, token in viewers.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for name, document in documents.items():
                response = await http.post("/graphql", json={"query": document}, headers=headers)
                payload = response.json()
                assert response.status_code == 200, payload
                failures += [(viewer, name, error) for error in internal_errors(payload)]
    assert not failures, failures


async def test_graphiql_default_query_shows_the_tier_ids_the_next_step_needs(
    demo_server: ServerThread, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=demo_server.http_url, timeout=10) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        match = re.search(r"const defaultQuery = `(.*?)`;", page.text, flags=re.DOTALL)
        assert match is not None, "GraphiQL's default query not found in the page"
        document = match.group(1).replace("\\`", "`")
        response = await http.post("/graphql", json={"query": document})
    payload = response.json()
    assert not payload.get("errors"), payload
    events = [edge["node"] for edge in payload["data"]["events"]["edges"]]
    assert events and all(tier["id"] for event in events for tier in event["tiers"])
