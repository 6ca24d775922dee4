"""A shared response is exactly what a full execution gives the viewer it is shared with.

`liventix.response_cache` keys a feed or tier query's response by which of the events
it names the viewer manages, not by who they are: a fan gets the anonymous response, an
organizer the one an admin gets on their event. That is sound only if everything
reachable below `eventFeed` and `eventTiers` depends on the viewer through
`db.events.manages_event` alone, so:

- the fields reachable below those roots are pinned here: a field added there fails the
  first test until someone decides whether it may be shared (and says so by adding it);
- the differential test generates valid queries over those roots (`hypothesis-graphql`:
  random sub-selections, arguments, aliases, fragments), with event ids drawn from a
  published event with a hidden and a closed tier, a draft, another organizer's event
  and ids of nothing, and viewers drawn from the anonymous visitor, a fan, the
  organizer, another organizer and an admin. Each query is first sent by one viewer (so
  the cache holds its response), then by another over POST (the cache's path, shared
  where allowed) and over GET (never cached: a full execution); the two answers must be
  equal, data and errors. It also checks that the shared path was really taken, often.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from databases import Database
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries
from starlette.applications import Starlette

from db.pages import encode_seq_cursor
from liventix import response_cache
from liventix.auth import Role, mint_token
from liventix.settings import Settings
from schema import build_schema
from tests.conftest import ServerThread
from tests.feed_support import add_event, add_profile
from tests.support import with_variables

MAX_EXAMPLES = 150  # the control runs a third of them

# Every field reachable below the cached roots. Each depends on the viewer only through
# whether they manage the event (drafts, hidden tiers) or not at all.
REVIEWED = {
    "Query.eventFeed",
    "Query.eventTiers",
    "PostConnection.edges",
    "PostConnection.pageInfo",
    "PostEdge.cursor",
    "PostEdge.node",
    "PageInfo.hasNextPage",
    "PageInfo.hasPreviousPage",
    "PageInfo.startCursor",
    "PageInfo.endCursor",
    "Post.id",
    "Post.text",
    "Post.media",
    "Post.createdAt",
    "Post.cursor",
    "Post.author",
    "Post.event",
    "Media.url",
    "Media.kind",
    "Media.width",
    "Media.height",
    "Media.durationSeconds",
    "User.id",
    "User.displayName",
    "User.role",
    "User.handle",
    "Event.id",
    "Event.title",
    "Event.description",
    "Event.venue",
    "Event.startAt",
    "Event.endAt",
    "Event.timeZone",
    "Event.status",
    "Event.createdAt",
    "Event.updatedAt",
    "Event.waitlistApproval",
    "Event.waitlistOfferMinutes",
    "Event.organizer",
    "Event.tiers",
    "TicketTier.id",
    "TicketTier.eventId",
    "TicketTier.name",
    "TicketTier.priceCents",
    "TicketTier.currency",
    "TicketTier.quantity",
    "TicketTier.reserved",
    "TicketTier.issued",
    "TicketTier.available",
    "TicketTier.maxPerOrder",
    "TicketTier.salesStartAt",
    "TicketTier.salesEndAt",
    "TicketTier.status",
    "TicketTier.sortOrder",
}


def reachable(schema: GraphQLSchema, roots: list[str]) -> set[str]:
    """Coordinates (`Type.field`) of every field a query below `roots` can select."""
    query = schema.query_type
    assert query is not None
    found = {f"Query.{root}" for root in roots}
    pending = [query.fields[root].type for root in roots]
    seen: set[str] = set()
    while pending:
        output = pending.pop()
        while isinstance(output, GraphQLNonNull | GraphQLList):
            output = output.of_type
        if not isinstance(output, GraphQLObjectType) or output.name in seen:
            continue
        seen.add(output.name)
        for name, field in output.fields.items():
            found.add(f"{output.name}.{name}")
            pending.append(field.type)
    return found


def test_every_field_below_the_cached_roots_is_reviewed() -> None:
    fields = reachable(build_schema()._schema, sorted(response_cache.CHANNELS))
    assert fields - REVIEWED == set(), (
        "new fields below a cached root: may their answers be shared by every viewer who "
        "does not manage the event? If so add them to REVIEWED; if not, keep such queries "
        "out of liventix.response_cache"
    )
    assert REVIEWED - fields == set(), "REVIEWED names fields that no longer exist"


@dataclass(frozen=True)
class World:
    event_ids: list[str]
    cursors: list[str]
    viewers: dict[str, str | None]


async def add_tier(database: Database, event_id: uuid.UUID, name: str, status: str) -> None:
    await database.execute(
        """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity, status)
           VALUES (:e, :n, 1500, 20, :s)""",
        {"e": event_id, "n": name, "s": status},
    )


async def post_seqs(database: Database) -> list[int]:
    return [row["seq"] for row in await database.fetch_all("SELECT seq FROM feed.posts")]


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    organizer = await add_profile(database, "organizer", "Org")
    other = await add_profile(database, "organizer", "Other")
    fan = await add_profile(database, "user", "Fan")
    published = await add_event(database, organizer, title="Open air")
    draft = await add_event(database, organizer, status="draft", title="Secret show")
    elsewhere = await add_event(database, other, title="Elsewhere")
    for event_id in (published, draft, elsewhere):
        for n in range(4):
            await database.execute(
                "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, :t)",
                {"e": event_id, "a": fan if n % 2 else organizer, "t": f"post {n}"},
            )
        for name, status in (("GA", "active"), ("Crew", "hidden"), ("Early", "closed")):
            await add_tier(database, event_id, name, status)
    return World(
        event_ids=[str(e) for e in (published, draft, elsewhere, uuid.uuid4())] + ["nope"],
        cursors=[encode_seq_cursor(seq) for seq in await post_seqs(database)] + ["nope"],
        viewers={
            "anonymous": None,
            "fan": mint_token(settings, fan, Role.USER),
            "other organizer": mint_token(settings, other, Role.ORGANIZER),
            "organizer": mint_token(settings, organizer, Role.ORGANIZER),
            "admin": mint_token(settings, uuid.uuid4(), Role.ADMIN),
        },
    )


@pytest.fixture
async def server(make_app: Callable[..., Starlette]) -> AsyncIterator[ServerThread]:
    # Limits raised so generated selections are executed rather than refused as too big.
    app = make_app(max_tokens=50_000, max_query_depth=30, max_aliases=500, max_query_cost=10**9)
    async with ServerThread(app) as running:
        yield running


def answer(response: httpx.Response) -> tuple[int, Any]:
    """Status and body, without the request id a masked error would carry."""
    body = response.json()
    for error in body.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
    return response.status_code, body


@dataclass
class Outcome:
    compared: list[str]  # the viewer of each comparison
    mismatches: list[str]  # each described: the viewers, the query, its variables
    hits: int  # answers served from the cache


async def differential(
    server: ServerThread, world: World, monkeypatch: pytest.MonkeyPatch, examples: int
) -> Outcome:
    outcome = Outcome([], [], 0)
    send_cached = response_cache._send_cached

    async def counted(send: Any, entry: Any) -> None:
        outcome.hits += 1
        await send_cached(send, entry)

    monkeypatch.setattr(response_cache, "_send_cached", counted)
    schema = build_schema()._schema
    # Mostly values the resolvers accept (page sizes, real cursors), so most answers are
    # data worth sharing; the rest are refused, and must be refused alike.
    scalars = {
        "ID": st.sampled_from(world.event_ids).map(nodes.String),
        "Int": st.one_of(st.integers(0, 60), st.integers()).map(nodes.Int),
        "String": st.sampled_from(world.cursors).map(nodes.String),
    }
    documents = queries(schema, fields=sorted(response_cache.CHANNELS), custom_scalars=scalars)
    viewers = st.sampled_from(list(world.viewers))  # those who share first

    def headers(viewer: str) -> dict[str, str]:
        token = world.viewers[viewer]
        return {"Authorization": f"Bearer {token}"} if token else {}

    def run() -> None:
        with httpx.Client(base_url=server.http_url, timeout=20) as http:

            @hypothesis_settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(document=documents, first=viewers, then=viewers, as_variables=st.booleans())
            def one(document: str, first: str, then: str, as_variables: bool) -> None:
                query, variables = (
                    with_variables(schema, document) if as_variables else (document, {})
                )
                body = {"query": query, "variables": variables}
                http.post("/graphql", json=body, headers=headers(first))
                shared = http.post("/graphql", json=body, headers=headers(then))
                params = {"query": query, "variables": orjson.dumps(variables).decode()}
                full = http.get("/graphql", params=params, headers=headers(then))
                outcome.compared.append(then)
                if answer(shared) != answer(full):
                    outcome.mismatches.append(f"{first} then {then}:\n{query}\n{variables}")

            one()

    await asyncio.to_thread(run)
    return outcome


async def test_shared_answers_equal_full_executions(
    server: ServerThread, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = await differential(server, world, monkeypatch, MAX_EXAMPLES)
    assert not outcome.mismatches, "\n\n".join(outcome.mismatches[:5])
    assert len(outcome.compared) >= MAX_EXAMPLES // 2
    assert set(outcome.compared) == set(world.viewers)
    assert outcome.hits >= len(outcome.compared) // 3, (
        f"only {outcome.hits} of {len(outcome.compared)} answers came from the cache"
    )


async def test_control_sharing_with_managers_is_caught(
    server: ServerThread, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the comparison can fail: with management left out of the key, organizers
    and admins share responses with everyone else, so drafts and hidden tiers go
    missing from their answers or show up in others'."""

    async def nobody_manages(_: object, __: object, events: tuple[object, ...]) -> tuple[bool, ...]:
        return (False,) * len(events)

    monkeypatch.setattr(response_cache.ResponseCache, "_managed", nobody_manages)
    outcome = await differential(server, world, monkeypatch, MAX_EXAMPLES // 3)
    assert outcome.mismatches, "sharing with managers went unnoticed"
