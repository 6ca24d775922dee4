"""One tick of the outbox sender: claim due emails, send them, record each outcome.

`send_due` claims a batch (`db.outbox.claim_due`: the lease is committed first), then,
outside any transaction, composes and hands each message to the transport, and records
what happened in a short transaction of its own: `sent`; `failed` (due again after
the backoff) or `dead`; `skipped` when there is nothing to send (no address any more,
a digest with nothing unread). It starts a message only while a whole SMTP timeout is
left on the lease, and gives the rest of the batch back otherwise, so a slow server
never lets a lease run out under a message in flight.

Every process runs it at once (the claim's SKIP LOCKED and lease keep them apart);
see `liventix.mail` for the at-least-once boundary.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from databases import Database

import db.digests
import db.notification_prefs
import db.outbox
from db.outbox import Claimed
from liventix.clock import Clock
from liventix.mail import compose
from liventix.mail.compose import Outgoing
from liventix.mail.metrics import EMAILS_DEAD, EMAILS_FAILED, EMAILS_SENT
from liventix.mail.transports import DeliveryError, Transport, transport_for
from liventix.settings import Settings

log = logging.getLogger("liventix.mail")

# Why an email died at its first failure (`reason`; the details are in `last_error`).
REFUSED = "refused by the mail server"
UNBUILDABLE = "the message cannot be built"


@dataclass(slots=True)
class SendReport:
    """What one tick did (the job's report)."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0  # of which `dead` died now
    dead: int = 0
    skipped: int = 0
    released: int = 0  # given back unsent: the lease was running out

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def run_sender(database: Database, settings: Settings, clock: Clock) -> SendReport | None:
    """One tick with the transport the settings name (None: there is none, emails
    stay pending); its connection is closed at the end of the tick."""
    transport = transport_for(settings)
    if transport is None:
        return None
    try:
        return await send_due(database, transport, settings, clock)
    finally:
        await transport.aclose()


async def send_due(
    database: Database, transport: Transport, settings: Settings, clock: Clock
) -> SendReport:
    """Claim up to EMAIL_BATCH_SIZE due emails and deliver them through `transport`."""
    lease = timedelta(seconds=settings.email_lease_seconds)
    claimed = await db.outbox.claim_due(
        database, clock.now(), limit=settings.email_batch_size, lease=lease
    )
    report = SendReport(claimed=len(claimed))
    in_flight = timedelta(seconds=settings.smtp_timeout_seconds)
    for index, row in enumerate(claimed):
        if clock.now() + in_flight > row.locked_until:
            rest = [r.id for r in claimed[index:]]
            await db.outbox.release(database, rest)
            report.released = len(rest)
            break
        await _deliver(database, transport, settings, clock, row, report)
    EMAILS_DEAD.set(await db.outbox.count_dead(database))
    return report


async def _deliver(
    database: Database,
    transport: Transport,
    settings: Settings,
    clock: Clock,
    row: Claimed,
    report: SendReport,
) -> None:
    try:
        outgoing = await _compose(database, settings, row, clock.now())
    except ValueError as exc:  # it can never be built (an address that is not one)
        await _failed(database, settings, clock.now(), row, str(exc), UNBUILDABLE, report)
        return
    except Exception as exc:  # a bug or the database: retry later, dead-letter at last
        log.exception("composing outbox email %s failed", row.id)
        await _failed(database, settings, clock.now(), row, repr(exc), None, report)
        return
    if isinstance(outgoing, str):
        await db.outbox.mark_skipped(database, row.id, outgoing)
        report.skipped += 1
        return
    try:
        await transport.send(outgoing)
    except DeliveryError as exc:
        log.warning("outbox email %s not accepted: %s", row.id, exc)
        undeliverable = REFUSED if exc.permanent else None
        await _failed(database, settings, clock.now(), row, str(exc), undeliverable, report)
        return
    # Accepted. Were the process to die before this commit, the lease would run out and
    # the email be sent again, with the same Message-ID.
    await db.outbox.mark_sent(database, row.id, clock.now())
    EMAILS_SENT.labels(kind="digest" if row.digest_period else "notification").inc()
    report.sent += 1


async def _compose(
    database: Database, settings: Settings, row: Claimed, now: datetime
) -> Outgoing | str:
    """The message, or why there is none to send."""
    if row.email is None:
        return "no email address"
    if row.notification is not None:
        return compose.notification_email(settings, row.notification, row.email, now)
    assert row.digest_period is not None  # the table's CHECK: one or the other
    content = await db.digests.digest_content(database, row.id)
    if not content.total:
        return "nothing unread"
    preferences = await db.notification_prefs.get_preferences(database, row.user_id)
    return compose.digest_email(
        settings,
        row.user_id,
        row.digest_period,
        content,
        preferences.time_zone,
        row.email,
        now,
    )


async def _failed(
    database: Database,
    settings: Settings,
    now: datetime,
    row: Claimed,
    error: str,
    undeliverable: str | None,
    report: SendReport,
) -> None:
    status = await db.outbox.mark_failed(
        database,
        row.id,
        error,
        now,
        max_attempts=settings.email_max_attempts,
        retry_base_seconds=settings.email_retry_base_seconds,
        undeliverable=undeliverable,
    )
    EMAILS_FAILED.inc()
    report.failed += 1
    if status == "dead":
        log.error("outbox email %s is dead after %d attempts: %s", row.id, row.attempts + 1, error)
        report.dead += 1
