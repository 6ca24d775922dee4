"""Feed test helpers: events made with direct SQL, the post fields every test reads,
and a counter of SQL statements."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from databases import Database

from db.core import transaction

POST_FIELDS = """
    id text createdAt cursor
    media { url kind width height durationSeconds }
    author { id displayName role }
    event { id title status }
"""

CREATE_POST = f"""
mutation Create($eventId: ID!, $text: String!, $media: [MediaInput!]) {{
  createPost(eventId: $eventId, text: $text, media: $media) {{
    __typename
    ... on CreatePostPayload {{
      post {{ __typename {POST_FIELDS} }}
      edge {{ cursor node {{ __typename {POST_FIELDS} }} }}
    }}
    ... on FeedError {{ code message field }}
  }}
}}
"""

DELETE_POST = """
mutation Delete($postId: ID!) {
  deletePost(postId: $postId) {
    __typename
    ... on DeletePostPayload { postId eventId }
    ... on FeedError { code message field }
  }
}
"""

EVENT_FEED = f"""
query Feed($eventId: ID!, $first: Int, $after: String) {{
  eventFeed(eventId: $eventId, first: $first, after: $after) {{
    edges {{ cursor node {{ __typename {POST_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


@dataclass(frozen=True)
class Scene:
    """An organizer with a published event (and a draft), plus a fan, with tokens."""

    organizer_id: uuid.UUID
    fan_id: uuid.UUID
    event_id: uuid.UUID
    draft_id: uuid.UUID
    organizer: str
    fan: str


async def add_profile(database: Database, role: str = "user", name: str = "") -> uuid.UUID:
    user_id = uuid.uuid4()
    async with transaction(database) as conn:
        await conn.execute(
            "INSERT INTO users.profiles (id, role, display_name) VALUES ($1, $2, $3)",
            user_id,
            role,
            name,
        )
    return user_id


async def add_event(
    database: Database, organizer_id: uuid.UUID, status: str = "published", title: str = "Show"
) -> uuid.UUID:
    async with transaction(database) as conn:
        event_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO events.events (organizer_id, title, start_at, status)
               VALUES ($1, $2, $3, $4) RETURNING id""",
            organizer_id,
            title,
            datetime.now(UTC) + timedelta(days=7),
            status,
        )
    return event_id


@pytest.fixture
async def scene(database: Database, token: Callable[..., str]) -> Scene:
    organizer_id = await add_profile(database, "organizer", "Org")
    fan_id = await add_profile(database, "user", "Fan")
    event_id = await add_event(database, organizer_id)
    draft_id = await add_event(database, organizer_id, status="draft", title="Draft")
    return Scene(
        organizer_id=organizer_id,
        fan_id=fan_id,
        event_id=event_id,
        draft_id=draft_id,
        organizer=token("organizer", organizer_id),
        fan=token("user", fan_id),
    )


def video(seconds: float, url: str = "https://cdn.example.com/v.mp4") -> dict[str, Any]:
    return {"url": url, "kind": "VIDEO", "width": 1080, "height": 1920, "durationSeconds": seconds}


def image(url: str = "https://cdn.example.com/i.jpg") -> dict[str, Any]:
    return {"url": url, "kind": "IMAGE", "width": 800, "height": 600}


@contextmanager
def count_statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record every SQL statement asyncpg connections in this process run for the app.

    The pool's reset on release (`pg_advisory_unlock_all(); ...`) is housekeeping of the
    pool, not of the request's work, and is left out.
    """
    seen: list[str] = []
    original = asyncpg.connection.Connection._execute

    async def counting(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        seen.append(query)
        return await original(self, query, *args, **kw)

    original_exec = asyncpg.connection.Connection.execute

    async def counting_exec(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        # With args, `execute` goes through `_execute` (counted there).
        if not args and not query.startswith("SELECT pg_advisory_unlock_all()"):
            seen.append(query)
        return await original_exec(self, query, *args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(asyncpg.connection.Connection, "_execute", counting)
        patch.setattr(asyncpg.connection.Connection, "execute", counting_exec)
        yield seen
