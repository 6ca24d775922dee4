"""Check-in: scanning a ticket's QR token at the door of its event.

One scan is one transaction, opened here (retried on a deadlock or serialization
failure): the ticket and then its token are locked, the tail of the lock order written
in `db.holds`, so two scanners at two doors admit the holder once and both scans
are counted.

Errors: `OrderError` with TOKEN_NOT_FOUND or NOT_ALLOWED.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from databases import Database

from db.channels import ConsoleMessage
from db.core import retry_transient, transaction
from db.errors import OrderCode, OrderError
from db.notify import publish
from db.order_records import TicketRecord


@dataclass(frozen=True, slots=True)
class CheckIn:
    """A scan's outcome; `refusal` is None when the holder was admitted now."""

    ticket: TicketRecord
    scan_count: int
    refusal: OrderCode | None = None


@retry_transient
async def check_in(
    database: Database,
    *,
    token: str,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    now: datetime,
) -> CheckIn:
    """Scan a ticket's QR token at the door of its event.

    The first scan admits and records the time; a later one is refused with
    ALREADY_CHECKED_IN (the ticket says when); a refunded or void ticket is refused with
    TICKET_REFUNDED / TICKET_VOID. Every scan by a permitted scanner is counted, refused
    or not. Unknown tokens raise TOKEN_NOT_FOUND; scanners who are neither the event's
    organizer nor an admin get NOT_ALLOWED, and nothing is written for either. An
    admission is announced on the event's console channel (`db.channels.ConsoleMessage`).
    """
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            """SELECT e.organizer_id, t.id, t.order_id, t.event_id, t.tier_id, t.owner_user_id,
                      t.status, t.sequence_number, t.checked_in_at, t.created_at, k.token
                 FROM ticketing.ticket_tokens k
                 JOIN ticketing.tickets t ON t.id = k.ticket_id
                 JOIN events.events e ON e.id = t.event_id
                WHERE k.token = $1
                  FOR UPDATE OF t, k""",
            token,
        )
        if row is None:
            raise OrderError("Unknown ticket", code=OrderCode.TOKEN_NOT_FOUND, field="token")
        if not (actor_is_admin or row["organizer_id"] == actor_id):
            raise OrderError(
                "Only the event's organizer can check tickets in", code=OrderCode.NOT_ALLOWED
            )
        scans: int = await conn.fetchval(
            """UPDATE ticketing.ticket_tokens
                  SET scan_count = scan_count + 1, last_scanned_at = $2
                WHERE token = $1 RETURNING scan_count""",
            token,
            now,
        )
        ticket = TicketRecord.from_row(row)
        if ticket.status != "issued":
            refusal = (
                OrderCode.TICKET_REFUNDED if ticket.status == "refunded" else OrderCode.TICKET_VOID
            )
            return CheckIn(ticket=ticket, scan_count=scans, refusal=refusal)
        if ticket.checked_in_at is not None:
            return CheckIn(ticket=ticket, scan_count=scans, refusal=OrderCode.ALREADY_CHECKED_IN)
        updated = await conn.fetchrow(
            """UPDATE ticketing.tickets SET checked_in_at = $2, checked_in_by = $3, updated_at = $2
                WHERE id = $1 RETURNING checked_in_at""",
            ticket.id,
            now,
            actor_id,
        )
        assert updated is not None
        await publish(conn, ConsoleMessage(ticket.event_id, "checked_in"))
    return CheckIn(ticket=replace(ticket, checked_in_at=updated["checked_in_at"]), scan_count=scans)
