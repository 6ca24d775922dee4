"""Fuzzing the whole schema: no valid operation, from any viewer, may crash the server.

`hypothesis-graphql` generates operations that pass validation (every root `Query` and
`Mutation` field, random sub-selections, random argument values); each is sent over
HTTP to a real server on freshly seeded demo data, by a viewer drawn among the
anonymous visitor, the demo fan, the demo organizer and an admin. Half of them pass
their root arguments as variables (a scalar parses a variable and a literal by
different code paths). IDs are mostly real (every id in the database, read again after
each mutation, and every id the server answers with), strings and ints mostly
plausible, so resolvers get past parsing and lookups and reach their domain logic; the
rest are random UUIDs, text and 32-bit ints.

The test fails on an HTTP 5xx or an error with code ``INTERNAL_SERVER_ERROR``, listing
each failing operation, its variables, its viewer and the exception the server logged;
a control plants a crash and expects it found. Mutations change the demo data; the
database is each test's own. Generation is derandomized, so a run is reproducible up to
the ids the database assigns.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from databases import Database
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries
from starlette.applications import Starlette

import db.demo
import resolvers.ids
from liventix.auth import Role, mint_token
from liventix.settings import Settings
from schema import build_schema
from tests.conftest import ServerThread
from tests.support import GraphQLClient, with_variables

INTERNAL = "INTERNAL_SERVER_ERROR"
MAX_EXAMPLES = 100
CONTROL_EXAMPLES = 30


@dataclass
class Failure:
    viewer: str
    document: str
    variables: dict[str, Any]
    status: int
    errors: list[Any]
    logged: list[str] = field(default_factory=list)

    @property
    def root_fields(self) -> set[str]:
        return {str(error["path"][0]) for error in self.errors if error.get("path")}

    def __str__(self) -> str:
        return (
            f"[{self.viewer}] HTTP {self.status}\n{self.document}\n"
            f"variables: {self.variables!r}\nerrors: {self.errors!r}\n"
            + "".join(f"server log: {line}\n" for line in self.logged)
        )


class LoggedErrors(logging.Handler):
    """The exceptions the server logged, to name the one behind a masked error (the
    client sees only its request id, which the log line carries)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        cause = f": {type(exc).__name__}: {exc}" if exc else ""
        self.lines.append(record.getMessage() + cause)

    def about(self, request_id: object) -> list[str]:
        return [line for line in self.lines if request_id and str(request_id) in line]


# ------------------------------------------------------------------ value strategies


class Harvest:
    """Real values to draw from: the ids and QR tokens in the database (read again after
    every mutation), and every id and cursor the server answers with (so `checkout` gets
    a real hold, `checkIn` a real token, `after` a real cursor)."""

    ID_KEY = re.compile(r"(^id$|Ids?$)")
    STRING_KEY = re.compile(r"([cC]ursor$|^qrPayload$)")

    def __init__(self) -> None:
        # Never empty, so `pick` always has a value (the demo's ids come in first).
        self.ids = [str(db.demo.EVENT_IDS[0])]
        self.strings = ["Europe/Berlin"]

    def stored(self, values: tuple[list[str], list[str]]) -> None:
        ids, tokens = values
        for value in ids:
            self.add(self.ids, value)
        for value in tokens:
            self.add(self.strings, value)

    @staticmethod
    def pick(values: list[str], index: int) -> str:
        return values[index % len(values)]

    def harvest(self, data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if self.ID_KEY.search(key):
                    for item in value if isinstance(value, list) else [value]:
                        self.add(self.ids, item)
                elif self.STRING_KEY.search(key):
                    self.add(self.strings, value)
                else:
                    self.harvest(value)
        elif isinstance(data, list):
            for item in data:
                self.harvest(item)

    @staticmethod
    def add(values: list[str], value: Any) -> None:
        if isinstance(value, str) and value not in values:
            values.append(value)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


def id_strategy(harvest: Harvest) -> st.SearchStrategy[str]:
    real = st.integers(min_value=0, max_value=2**16).map(lambda i: harvest.pick(harvest.ids, i))
    return weighted((6, real), (1, st.uuids().map(str)), (1, st.text(max_size=40)))


def string_strategy(harvest: Harvest) -> st.SearchStrategy[str]:
    """Mostly values a resolver accepts (so it gets past validation), some random text."""
    plausible = st.sampled_from(
        [
            "",
            "Sam Fan",
            "fan@example.com",
            "+49 30 1234567",
            "usd",
            "eur",
            "UTC",
            "Europe/Lisbon",
            "https://cdn.example.com/a.jpg",
            "Great show!",
        ]
    )
    seen = st.integers(min_value=0, max_value=2**16).map(lambda i: harvest.pick(harvest.strings, i))
    return weighted((3, plausible), (2, seen), (3, st.text(max_size=60)))


def int_strategy() -> st.SearchStrategy[int]:
    """Mostly small counts, prices and page sizes; sometimes any 32-bit value."""
    return weighted(
        (6, st.integers(min_value=-2, max_value=120)),
        (1, st.integers(min_value=-(2**31), max_value=2**31 - 1)),
    )


def datetime_strategy() -> st.SearchStrategy[str]:
    offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
        lambda delta: timezone(timedelta(minutes=delta // timedelta(minutes=1)))
    )
    near = st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    )
    anywhere = st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets))
    return weighted(
        (6, near.map(datetime.isoformat)),
        (2, anywhere.map(datetime.isoformat)),
        (1, st.text(max_size=30)),
    )


def operations(schema: Any, harvest: Harvest) -> st.SearchStrategy[str]:
    """Queries and mutations in equal parts. Built-in scalars are overridden too, so most
    values pass the resolvers' checks (the library's own strings are mostly refused); the
    random text among them still brings NUL and other characters PostgreSQL refuses."""
    scalars = {
        "ID": id_strategy(harvest).map(nodes.String),
        "String": string_strategy(harvest).map(nodes.String),
        "Int": int_strategy().map(nodes.Int),
        "DateTime": datetime_strategy().map(nodes.String),
    }
    return st.one_of(
        queries(schema, custom_scalars=scalars, allow_x00=False),
        mutations(schema, custom_scalars=scalars, allow_x00=False),
    )


# ------------------------------------------------------------------ the test


@pytest.fixture
async def demo_server(
    make_app: Callable[..., Starlette], database: Database
) -> AsyncIterator[ServerThread]:
    await db.demo.seed(database)
    # Limits raised so generated selections are executed rather than refused as too big.
    app = make_app(max_tokens=50_000, max_query_depth=30, max_aliases=500, max_query_cost=10**9)
    async with ServerThread(app) as running:
        yield running


async def stored_values(database: Database) -> tuple[list[str], list[str]]:
    """Every id a client could know (events, tiers, posts, users, holds, orders, tickets),
    and every ticket's QR token: what the generated operations refer to."""
    rows = await database.fetch_all(
        """SELECT id::text AS id FROM events.events
           UNION ALL SELECT id::text FROM ticketing.ticket_tiers
           UNION ALL SELECT id::text FROM feed.posts
           UNION ALL SELECT id::text FROM users.profiles
           UNION ALL SELECT id::text FROM ticketing.ticket_holds
           UNION ALL SELECT id::text FROM ticketing.orders
           UNION ALL SELECT id::text FROM ticketing.tickets"""
    )
    tokens = await database.fetch_all("SELECT token FROM ticketing.ticket_tokens")
    return [row["id"] for row in rows], [row["token"] for row in tokens]


async def fuzz_schema(
    server: ServerThread, database: Database, settings: Settings, max_examples: int
) -> tuple[int, list[Failure]]:
    """Send `max_examples` generated operations; the number sent and the crashes seen."""
    schema = build_schema()._schema
    harvest = Harvest()
    harvest.stored(await stored_values(database))
    loop = asyncio.get_running_loop()
    viewers = {
        "anonymous": None,
        "fan": mint_token(settings, db.demo.FAN_ID, Role.USER),
        "organizer": mint_token(settings, db.demo.ORGANIZER_ID, Role.ORGANIZER),
        "admin": mint_token(settings, uuid.UUID(int=1), Role.ADMIN),
    }
    logged = LoggedErrors()
    failures: list[Failure] = []
    sent = 0

    def send(http: httpx.Client, viewer: str, document: str, variables: dict[str, Any]) -> None:
        nonlocal sent
        token = viewers[viewer]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = http.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )
        sent += 1
        payload = response.json() if response.status_code < 500 else {}
        harvest.harvest(payload.get("data"))
        if document.startswith("mutation"):
            # The test's loop is idle, awaiting this thread: let it read the database.
            read = asyncio.run_coroutine_threadsafe(stored_values(database), loop)
            harvest.stored(read.result(timeout=10))
        internal = [
            error
            for error in payload.get("errors") or []
            if (error.get("extensions") or {}).get("code") == INTERNAL
        ]
        if response.status_code >= 500 or internal:
            requests = {(e.get("extensions") or {}).get("requestId") for e in internal}
            lines = [line for request in requests for line in logged.about(request)]
            failures.append(
                Failure(viewer, document, variables, response.status_code, internal, lines)
            )

    def fuzz() -> None:
        # Hypothesis drives a plain function in a worker thread, against the one server
        # the test built: no fixture is shared between examples behind Hypothesis's back
        # (so no health check to silence), and the test's loop stays free to serve
        # `stored_values` reads.
        with httpx.Client(base_url=server.http_url, timeout=20) as http:

            @hypothesis_settings(
                max_examples=max_examples,
                deadline=None,
                derandomize=True,
                database=None,
                # Failures are collected, not raised: an exception here is the harness's own
                # bug, shown at once rather than shrunk against a database that changed.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(
                document=operations(schema, harvest),
                viewer=st.sampled_from(sorted(viewers)),
                as_variables=st.booleans(),
            )
            def one(document: str, viewer: str, as_variables: bool) -> None:
                if as_variables:
                    send(http, viewer, *with_variables(schema, document))
                else:
                    send(http, viewer, document, {})

            one()

    graphql_log = logging.getLogger("liventix.graphql")
    graphql_log.addHandler(logged)
    try:
        await asyncio.to_thread(fuzz)
    finally:
        graphql_log.removeHandler(logged)
    return sent, failures


async def test_no_valid_operation_crashes_the_server(
    demo_server: ServerThread, database: Database, settings: Settings
) -> None:
    sent, failures = await fuzz_schema(demo_server, database, settings, MAX_EXAMPLES)
    assert sent >= MAX_EXAMPLES // 2, f"only {sent} operations were sent"
    assert not failures, f"{len(failures)} of {sent} operations crashed the server:\n\n" + (
        "\n".join(str(failure) for failure in failures[:20])
    )


async def test_control_the_fuzzer_catches_and_explains_a_planted_crash(
    demo_server: ServerThread,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proves the harness can fail: a crash planted where the resolvers parse every ID
    argument is found, reported with its operation, and named from the server's log."""
    original = resolvers.ids.parse_id

    def planted(value: str, type_name: str) -> uuid.UUID | None:
        raise RuntimeError("planted crash")

    # Every module that imported `parse_id` by name holds its own reference to it.
    for name, module in list(sys.modules.items()):
        if name.startswith("resolvers") and getattr(module, "parse_id", None) is original:
            monkeypatch.setattr(module, "parse_id", planted)
    sent, failures = await fuzz_schema(demo_server, database, settings, CONTROL_EXAMPLES)
    assert failures, f"{sent} operations and not one reached the planted crash"
    assert all(failure.status == 200 for failure in failures), failures[0]
    assert any("RuntimeError: planted crash" in line for f in failures for line in f.logged)


# ------------------------------------------------------------------ what the fuzzer found

NOT_NULL_FIELDS = [
    *(("updateEvent", name) for name in ("title", "description", "venue", "startAt", "timeZone")),
    *(
        ("updateTier", name)
        for name in (
            "name",
            "priceCents",
            "currency",
            "quantity",
            "maxPerOrder",
            "status",
            "sortOrder",
        )
    ),
]


@pytest.mark.parametrize(("mutation", "input_field"), NOT_NULL_FIELDS)
async def test_an_explicit_null_for_a_required_column_is_not_an_internal_error(
    client: GraphQLClient,
    database: Database,
    token: Callable[..., str],
    mutation: str,
    input_field: str,
) -> None:
    """`input: {description: null}` (an optional input field, given as null, for a column
    that may not be NULL) must be refused or ignored, not reach PostgreSQL as NULL."""
    await db.demo.seed(database)
    tier_id = await database.fetch_val(
        "SELECT id FROM ticketing.ticket_tiers WHERE event_id = :event ORDER BY sort_order",
        {"event": db.demo.EVENT_IDS[0]},
    )
    target = str(db.demo.EVENT_IDS[0]) if mutation == "updateEvent" else str(tier_id)
    call = f"{mutation}(id: $id, input: {{ {input_field}: null }})"
    document = f"mutation($id: ID!) {{ {call} {{ __typename }} }}"
    response = await client.post(
        document, {"id": target}, token(Role.ORGANIZER, db.demo.ORGANIZER_ID)
    )
    payload = response.json()
    assert response.status_code == 200, payload
    assert not [
        error
        for error in payload.get("errors") or []
        if (error.get("extensions") or {}).get("code") == INTERNAL
    ], f"{document}: {payload}"
