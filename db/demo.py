"""Demo data for the playground: an organizer, two published events with tiers, posts.

Fixed ids and ON CONFLICT make seeding idempotent: running it again changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from databases import Database

from db.core import transaction
from db.feed import MediaItem

ORGANIZER_ID = uuid.UUID("00000000-0000-4000-8000-00000000a001")
FAN_ID = uuid.UUID("00000000-0000-4000-8000-00000000f001")
EVENT_IDS = (
    uuid.UUID("00000000-0000-4000-8000-0000000e0001"),
    uuid.UUID("00000000-0000-4000-8000-0000000e0002"),
)


async def seed(database: Database, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    async with transaction(database) as conn:
        await conn.executemany(
            """INSERT INTO users.profiles (id, role, display_name, handle, email)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (id) DO NOTHING""",
            [
                (ORGANIZER_ID, "organizer", "Aurora Live", "aurora", "aurora@example.com"),
                (FAN_ID, "user", "Sam Fan", "samfan", "sam@example.com"),
            ],
        )
        events = [
            (
                EVENT_IDS[0],
                "Midnight Synth Festival",
                "Warehouse 9, Berlin",
                "Three stages of modular synth, live until sunrise.",
                now + timedelta(days=30),
            ),
            (
                EVENT_IDS[1],
                "Acoustic Rooftop Sessions",
                "Skyline Terrace, Lisbon",
                "Unplugged sets at golden hour.",
                now + timedelta(days=45),
            ),
        ]
        for event_id, title, venue, description, start in events:
            inserted = await conn.fetchval(
                """INSERT INTO events.events
                       (id, organizer_id, title, venue, description, start_at, end_at,
                        time_zone, status)
                   VALUES ($1, $2, $3, $4, $5, $6::timestamptz,
                           $6::timestamptz + interval '6 hours', 'Europe/Berlin', 'published')
                   ON CONFLICT (id) DO NOTHING RETURNING id""",
                event_id,
                ORGANIZER_ID,
                title,
                venue,
                description,
                start,
            )
            if inserted is None:
                continue
            await conn.executemany(
                """INSERT INTO ticketing.ticket_tiers
                       (event_id, name, price_cents, currency, quantity, max_per_order,
                        sort_order)
                   VALUES ($1, $2, $3, 'usd', $4, $5, $6)""",
                [
                    (event_id, "Free community pass", 0, 50, 2, 0),
                    (event_id, "General admission", 4500, 500, 8, 1),
                    (event_id, "VIP", 15000, 40, 4, 2),
                    # Sold out before the demo starts: the waitlist's walkthrough.
                    (event_id, "Backstage", 25000, 0, 2, 3),
                ],
            )
            await conn.executemany(
                """INSERT INTO feed.posts (event_id, author_id, text, media)
                   VALUES ($1, $2, $3, $4)""",
                [
                    (event_id, ORGANIZER_ID, f"Welcome to {title}! Lineup drops Friday.", []),
                    (event_id, FAN_ID, "Can't wait, bringing the whole crew.", []),
                    (
                        event_id,
                        ORGANIZER_ID,
                        "Doors open one hour before start.",
                        [
                            MediaItem(
                                url="https://cdn.liventix.example/venue.jpg",
                                kind="image",
                                width=1600,
                                height=900,
                            ).to_json()
                        ],
                    ),
                ],
            )
