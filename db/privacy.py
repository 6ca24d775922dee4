"""Privacy: buyers' contact details are erased once their event is long over.

Amounts, items and tickets stay (they are the accounting record); only the order's
contact fields are cleared.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from databases import Database

from db.core import retry_transient, transaction


@retry_transient
async def anonymize_contacts(database: Database, *, now: datetime, after_days: int) -> int:
    """Erase contact data of orders whose event ended more than `after_days` ago.

    Amounts, items and tickets stay (they are the accounting record); the contact
    fields are cleared and `anonymized_at` set, so each order is anonymized once.
    """
    async with transaction(database) as conn:
        done = await conn.fetch(
            """UPDATE ticketing.orders o
                  SET contact_email = NULL, contact_name = NULL, contact_phone = NULL,
                      anonymized_at = $1, updated_at = $1
                 FROM events.events e
                WHERE e.id = o.event_id AND o.anonymized_at IS NULL
                  AND coalesce(e.end_at, e.start_at) < $2
                RETURNING o.id""",
            now,
            now - timedelta(days=after_days),
        )
    return len(done)
