"""Fixtures and helpers for the email tests: a real SMTP server in-process (aiosmtpd),
settings that point the sender at it, and rows written straight into the tables.

`smtp` is an aiosmtpd `Controller` (its own thread and event loop, on a free port)
whose handler records every accepted message and can be told to answer a command with
an error, or to take its time. Notifications and their outbox rows are inserted with
SQL, as `db.notifications.enqueue` leaves them, so these tests depend on the outbox
contract only.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from databases import Database

from db.core import connection, transaction
from liventix import jobs
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.support import free_port

EMAIL_FROM = "Liventix <notifications@liventix.test>"
PUBLIC_URL = "https://api.liventix.test"


class Mailbox:
    """The SMTP server's handler: accepts and keeps messages, unless told to refuse."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse_rcpt: str | None = None  # e.g. "550 5.1.1 No such user"
        self.refuse_data: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.delay = 0.0  # seconds before answering DATA (a slow server)
        self._lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse_data:
            return self.refuse_data
        data = envelope.original_content or b""
        with self._lock:
            self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), data))
        return "250 2.0.0 Accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            received = list(self.received)
        return [parse(data) for _, _, data in received]

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox = field(default_factory=Mailbox)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 for this test (no TLS, no authentication)."""
    server = SmtpServer(port=free_port())
    controller = Controller(server.mailbox, hostname="127.0.0.1", port=server.port)
    await asyncio.to_thread(controller.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(controller.stop)


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    """The test's settings, sending to `smtp`: 3 attempts, 60 s backoff base."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "smtp_timeout_seconds": 10.0,
            "email_from": EMAIL_FROM,
            "public_url": PUBLIC_URL,
            "email_max_attempts": 3,
            "email_retry_base_seconds": 60.0,
            "email_lease_seconds": 120.0,
        }
    )


@dataclass
class Runner:
    """What a process's job loop hands a job (`liventix.jobs.JobServices`)."""

    settings: Settings
    db: Database
    clock: FrozenClock
    payments: Any = None


def job(name: str) -> jobs.Job:
    return next(j for j in jobs.registry() if j.name == name)


async def send_tick(runner: Runner) -> dict[str, Any]:
    """One tick of the email sender job, as the job loop runs it."""
    report = await jobs.run_once(runner, job("send_emails"))
    assert report is not None and "error" not in report, report
    return report


async def digest_tick(runner: Runner) -> dict[str, Any]:
    report = await jobs.run_once(runner, job("schedule_digests"))
    assert report is not None and "error" not in report, report
    return report


# -- rows ------------------------------------------------------------------------------


async def add_user(database: Database, email_address: str | None = "fan@example.com") -> uuid.UUID:
    user_id = uuid.uuid4()
    async with transaction(database) as conn:
        await conn.execute(
            "INSERT INTO users.profiles (id, email, display_name) VALUES ($1, $2, 'Fan')",
            user_id,
            email_address,
        )
    return user_id


async def add_notification(
    database: Database,
    user_id: uuid.UUID,
    created_at: datetime,
    *,
    title: str = "Your tickets are ready",
    body: str = "Order paid: 2 tickets.",
    category: str = "order_paid",
    lane: str = "priority",
    in_app: bool = True,
    read_at: datetime | None = None,
) -> uuid.UUID:
    async with transaction(database) as conn:
        notification_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO notify.notifications (user_id, category, lane, title, body, dedupe_key,
                                                 batch, in_app, created_at, read_at)
               VALUES ($1, $2, $3, $4, $5, $6, nextval('notify.batches'), $7, $8, $9)
               RETURNING id""",
            user_id,
            category,
            lane,
            title,
            body,
            uuid.uuid4().hex,
            in_app,
            created_at,
            read_at,
        )
    return notification_id


async def add_email(
    database: Database,
    user_id: uuid.UUID,
    notification_id: uuid.UUID,
    now: datetime,
    *,
    due_at: datetime | None = None,
) -> int:
    """The pending email row `enqueue` writes for a notification (due now, or later
    when deferred by quiet hours)."""
    async with transaction(database) as conn:
        outbox_id: int = await conn.fetchval(
            """INSERT INTO notify.outbox (user_id, channel, notification_id, status, local_day,
                                          counts_to_cap, due_at, created_at)
               VALUES ($1, 'email', $2, 'pending', $3::timestamptz::date, true, $4, $3)
               RETURNING id""",
            user_id,
            notification_id,
            now,
            due_at or now,
        )
    return outbox_id


async def notify_by_email(
    database: Database,
    now: datetime,
    *,
    email_address: str = "fan@example.com",
    title: str = "Your tickets are ready",
    category: str = "order_paid",
) -> tuple[uuid.UUID, uuid.UUID, int]:
    """A user with an address, a notification, its pending email: (user, notification,
    outbox row)."""
    user_id = await add_user(database, email_address)
    notification_id = await add_notification(database, user_id, now, title=title, category=category)
    return user_id, notification_id, await add_email(database, user_id, notification_id, now)


async def outbox_row(database: Database, outbox_id: int) -> dict[str, Any]:
    async with connection(database) as conn:
        row = await conn.fetchrow("SELECT * FROM notify.outbox WHERE id = $1", outbox_id)
    assert row is not None
    return dict(row)


async def digest_rows(database: Database) -> list[dict[str, Any]]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            "SELECT * FROM notify.outbox WHERE digest_period IS NOT NULL ORDER BY id"
        )
    return [dict(r) for r in rows]


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture
def runner(mail_settings: Settings, database: Database, clock: FrozenClock) -> Iterator[Runner]:
    yield Runner(mail_settings, database, clock)
