"""The email outbox against a real SMTP server (aiosmtpd, in-process) and PostgreSQL.

What is sent (HTML and text, a stable Message-ID, one-click unsubscribe headers), that
racing senders send each message once (with a control that shows the race is real), that
a refusal is retried with exponential backoff on the injected clock and finally
dead-lettered (visible to admins and in the metric), and the development sink.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from databases import Database
from prometheus_client import REGISTRY

import db.jobs
import db.outbox
from db.core import connection, create_database, transaction
from liventix import jobs
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.mail.compose import Outgoing, digest_message_id, notification_message_id
from liventix.mail.sender import send_due
from liventix.settings import Settings, SettingsError, load_settings
from tests.mail_support import (
    PUBLIC_URL,
    Runner,
    SmtpServer,
    add_email,
    add_notification,
    add_user,
    job,
    mail_settings,
    notify_by_email,
    outbox_row,
    parse,
    runner,
    seconds,
    send_tick,
    smtp,
)
from tests.support import GraphQLClient

__all__ = ["mail_settings", "runner", "smtp"]  # the fixtures, re-exported for pytest

DEAD_EMAILS = """
query ($first: Int) {
  deadEmails(first: $first) {
    outboxId userId recipient notificationId category title digestPeriod
    attempts reason lastError createdAt diedAt
  }
}
"""


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_due_email_is_sent_with_both_bodies_its_message_id_and_unsubscribe_headers(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    now = clock.now()
    _, notification_id, outbox_id = await notify_by_email(
        runner.db, now, title="Your tickets are ready"
    )
    sent_before = metric("liventix_emails_sent_total", kind="notification")

    report = await send_tick(runner)

    assert report["sent"] == 1, report
    [(sender, recipients, _)] = smtp.mailbox.received
    assert (sender, recipients) == ("notifications@liventix.test", ["fan@example.com"])
    [message] = smtp.mailbox.messages
    assert message["Message-ID"] == f"<notification.{notification_id}@liventix.test>"
    assert message["Subject"] == "Your tickets are ready"
    assert message["From"] == "Liventix <notifications@liventix.test>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Order paid: 2 tickets." in text.get_content()
    assert "<h1" in html.get_content() and "Your tickets are ready" in html.get_content()
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith(f"<{PUBLIC_URL}/notifications/unsubscribe?token=")
    assert unsubscribe.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe[1:-1] in text.get_content()  # the link is in the body too
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["sent_at"], row["locked_until"]) == ("sent", now, None)
    assert metric("liventix_emails_sent_total", kind="notification") == sent_before + 1

    assert (await send_tick(runner))["claimed"] == 0
    assert len(smtp.mailbox.received) == 1


async def test_html_is_escaped_and_a_title_never_breaks_the_headers(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    user_id = await add_user(runner.db)
    notification_id = await add_notification(
        runner.db,
        user_id,
        clock.now(),
        title="<script>alert(1)</script>\r\nBcc: everyone@example.com",
        body="<b>bold</b> & more",
    )
    await add_email(runner.db, user_id, notification_id, clock.now())
    await send_tick(runner)
    [message] = smtp.mailbox.messages
    assert message["Bcc"] is None
    assert message["Subject"] == "<script>alert(1)</script> Bcc: everyone@example.com"
    html = message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in html.get_content()


async def test_an_email_deferred_by_quiet_hours_waits_for_its_due_time(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    now = clock.now()
    user_id = await add_user(runner.db)
    notification_id = await add_notification(runner.db, user_id, now)
    outbox_id = await add_email(
        runner.db, user_id, notification_id, now, due_at=now + seconds(3600)
    )

    assert (await send_tick(runner))["claimed"] == 0
    clock.advance(3599)
    assert (await send_tick(runner))["claimed"] == 0
    clock.advance(1)
    assert (await send_tick(runner))["sent"] == 1
    assert (await outbox_row(runner.db, outbox_id))["status"] == "sent"


async def test_push_and_sms_rows_are_never_claimed(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    now = clock.now()
    user_id = await add_user(runner.db)
    notification_id = await add_notification(runner.db, user_id, now)
    async with transaction(runner.db) as conn:
        await conn.execute(
            """INSERT INTO notify.outbox (user_id, channel, notification_id, status, reason,
                                          local_day, due_at, created_at)
               SELECT $1, ch, $2, 'skipped', 'no provider', $3::timestamptz::date, $3, $3
                 FROM unnest(ARRAY['push', 'sms']) AS ch""",
            user_id,
            notification_id,
            now,
        )
    assert (await send_tick(runner))["claimed"] == 0
    assert smtp.mailbox.received == []


async def test_an_email_whose_user_has_no_address_any_more_is_skipped(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    user_id, _, outbox_id = await notify_by_email(runner.db, clock.now())
    async with transaction(runner.db) as conn:
        await conn.execute("UPDATE users.profiles SET email = NULL WHERE id = $1", user_id)
    assert (await send_tick(runner))["skipped"] == 1
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["reason"]) == ("skipped", "no email address")
    assert smtp.mailbox.received == []


# -- several processes -----------------------------------------------------------------


async def race(
    settings: Settings, database_url: str, clock: FrozenClock, processes: int = 2
) -> list[int]:
    """`processes` senders, each with its own pool (as separate processes have), tick
    at the same time until the outbox is empty; how many each sent."""
    pools = [create_database(database_url, min_size=1, max_size=4) for _ in range(processes)]
    for pool in pools:
        await pool.connect()

    async def process(pool: Database) -> int:
        sent = 0
        runner = Runner(settings, pool, clock)
        while True:
            report = await send_tick(runner)
            sent += report["sent"]
            if report["claimed"] == 0:
                return sent

    try:
        return list(await asyncio.gather(*(process(pool) for pool in pools)))
    finally:
        for pool in pools:
            await pool.disconnect()


async def test_two_senders_racing_on_one_outbox_send_each_message_exactly_once(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock, database_url: str
) -> None:
    for _ in range(24):
        await notify_by_email(runner.db, clock.now())
    smtp.mailbox.delay = 0.01  # each message takes a while: the senders overlap
    settings = runner.settings.model_copy(update={"email_batch_size": 4})

    sent_by = await race(settings, database_url, clock)

    counts = Counter(smtp.mailbox.message_ids())
    assert len(counts) == 24
    assert set(counts.values()) == {1}, [m for m, n in counts.items() if n > 1]
    assert sum(sent_by) == 24
    assert all(sent > 0 for sent in sent_by), sent_by  # both really sent, at once
    async with connection(runner.db) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notify.outbox WHERE status = 'sent'") == 24


# The claim without its guards: no row locks, no lease condition.
UNGUARDED_CLAIM = db.outbox._CLAIM.replace("FOR UPDATE SKIP LOCKED", "").replace(
    "AND (locked_until IS NULL OR locked_until <= $1)", ""
)


async def test_control_without_locks_and_lease_the_same_race_sends_duplicates(
    runner: Runner,
    smtp: SmtpServer,
    clock: FrozenClock,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness can see a double send: with the claim's guards taken away, both
    senders claim the same rows and send them twice."""
    assert UNGUARDED_CLAIM != db.outbox._CLAIM
    monkeypatch.setattr(db.outbox, "_CLAIM", UNGUARDED_CLAIM)
    for _ in range(8):
        await notify_by_email(runner.db, clock.now())
    smtp.mailbox.delay = 0.02
    settings = runner.settings.model_copy(update={"email_batch_size": 8})

    await race(settings, database_url, clock)

    counts = Counter(smtp.mailbox.message_ids())
    assert len(counts) == 8
    assert max(counts.values()) > 1, counts


async def test_the_sender_runs_in_every_process_and_records_only_ticks_that_did_something(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    sender = job("send_emails")
    assert not sender.exclusive
    assert job("schedule_digests").exclusive
    await notify_by_email(runner.db, clock.now())
    holding, done = asyncio.Event(), asyncio.Event()

    async def another_process() -> None:
        """Holds the lock an exclusive job would take, as a process in mid-tick."""
        async with db.jobs.exclusive(runner.db, sender.name) as acquired:
            assert acquired
            holding.set()
            await done.wait()

    other = asyncio.create_task(another_process())
    await holding.wait()
    try:
        # Control: were the sender exclusive, this process would skip the tick.
        assert await jobs.run_once(runner, replace(sender, exclusive=True)) is None
        report = await jobs.run_once(runner, sender)
    finally:
        done.set()
        await other
    assert report is not None and report["sent"] == 1, report
    assert await jobs.run_once(runner, sender) == {
        "claimed": 0,
        "sent": 0,
        "failed": 0,
        "dead": 0,
        "skipped": 0,
        "released": 0,
    }
    runs = await db.jobs.recent_runs(runner.db, sender.name)
    assert [(r["status"], r["items"], r["report"]["sent"]) for r in runs] == [("ok", 1, 1)]


async def test_a_lease_keeps_a_claimed_email_from_other_senders_until_it_runs_out(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    """A sender that dies after claiming (or after the server accepted, before the
    commit) leaves the row leased: it is sent again once the lease runs out, with the
    same Message-ID. This is the at-least-once boundary."""
    _, notification_id, outbox_id = await notify_by_email(runner.db, clock.now())
    lease = seconds(120)
    [claimed] = await db.outbox.claim_due(runner.db, clock.now(), limit=10, lease=lease)
    assert claimed.id == outbox_id and claimed.locked_until == clock.now() + lease
    assert await db.outbox.claim_due(runner.db, clock.now(), limit=10, lease=lease) == []
    clock.advance(119)
    assert (await send_tick(runner))["claimed"] == 0
    clock.advance(1)
    assert (await send_tick(runner))["sent"] == 1
    assert smtp.mailbox.message_ids() == [f"<notification.{notification_id}@liventix.test>"]


class SlowTransport:
    """Each message takes 56 s on the test's clock."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.sent: list[str] = []

    async def send(self, outgoing: Outgoing) -> None:
        self.clock.advance(56)
        self.sent.append(outgoing.message_id)

    async def aclose(self) -> None:
        return None


async def test_a_sender_gives_back_what_its_lease_no_longer_covers(
    runner: Runner, clock: FrozenClock
) -> None:
    """Lease 120 s, SMTP timeout 10 s, 56 s per message: the third message would start
    with 8 s of lease left, less than it may take, so it is not started (it could still
    be in flight when another sender claims it); the rest is released at once."""
    rows = [(await notify_by_email(runner.db, clock.now()))[2] for _ in range(5)]
    transport = SlowTransport(clock)

    report = await send_due(runner.db, transport, runner.settings, clock)

    assert (report.claimed, report.sent, report.released) == (5, 2, 3), report
    statuses = [(await outbox_row(runner.db, i))["status"] for i in rows]
    assert statuses == ["sent", "sent", "pending", "pending", "pending"]
    assert [(await outbox_row(runner.db, i))["locked_until"] for i in rows[2:]] == [None] * 3
    assert len(await db.outbox.claim_due(runner.db, clock.now(), limit=10, lease=seconds(1))) == 3


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "refusal", ["451 4.3.0 Try again later", "554 5.7.1 Message rejected for policy reasons"]
)
async def test_a_refused_email_is_retried_with_exponential_backoff_then_dead_lettered(
    runner: Runner,
    smtp: SmtpServer,
    clock: FrozenClock,
    client: GraphQLClient,
    token: Any,
    refusal: str,
) -> None:
    """3 attempts, base 60 s: retried 60 s after the first failure, 120 s after the
    second; the third failure is final. Visible in `deadEmails` and the metric."""
    smtp.mailbox.refuse_data = refusal
    _, _, outbox_id = await notify_by_email(runner.db, clock.now())
    failed_before = metric("liventix_emails_failed_total")

    first = clock.now()
    assert (await send_tick(runner))["failed"] == 1
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["attempts"], row["due_at"]) == ("pending", 1, first + seconds(60))
    assert row["last_error"] == refusal
    assert row["locked_until"] is None

    clock.advance(59)
    assert (await send_tick(runner))["claimed"] == 0
    clock.advance(1)
    assert (await send_tick(runner))["failed"] == 1
    row = await outbox_row(runner.db, outbox_id)
    assert (row["attempts"], row["due_at"]) == (2, clock.now() + seconds(120))

    clock.advance(120)
    report = await send_tick(runner)
    assert (report["failed"], report["dead"]) == (1, 1), report
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["attempts"], row["reason"]) == ("dead", 3, "failed 3 times")
    assert metric("liventix_emails_failed_total") == failed_before + 3
    assert metric("liventix_emails_dead") == 1

    clock.advance(86400)
    assert (await send_tick(runner))["claimed"] == 0  # dead stays dead
    assert smtp.mailbox.received == []

    admin = token(Role.ADMIN)
    [dead] = (await client(DEAD_EMAILS, {"first": 5}, token=admin))["deadEmails"]
    assert dead["outboxId"] == outbox_id
    assert dead["recipient"] == "fan@example.com"
    assert dead["category"] == "order_paid" and dead["title"] == "Your tickets are ready"
    assert dead["attempts"] == 3 and dead["reason"] == "failed 3 times"
    assert dead["lastError"] == refusal and dead["digestPeriod"] is None
    assert dead["notificationId"] is not None and dead["userId"] is not None
    assert datetime.fromisoformat(dead["diedAt"]) == clock.now() - seconds(86400)

    response = await client.post(DEAD_EMAILS, token=token(Role.USER))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_recipient_refused_for_good_is_dead_at_once(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    smtp.mailbox.refuse_rcpt = "550 5.1.1 No such user here"
    _, _, outbox_id = await notify_by_email(runner.db, clock.now())
    report = await send_tick(runner)
    assert (report["failed"], report["dead"]) == (1, 1)
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert row["reason"] == "refused by the mail server"
    assert "550" in row["last_error"]


async def test_a_recipient_refused_for_now_is_retried(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    smtp.mailbox.refuse_rcpt = "450 4.2.1 Mailbox busy"
    _, _, outbox_id = await notify_by_email(runner.db, clock.now())
    await send_tick(runner)
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    smtp.mailbox.refuse_rcpt = None
    clock.advance(60)
    assert (await send_tick(runner))["sent"] == 1


async def test_an_unreachable_server_is_retried_and_other_emails_are_not_held_up(
    runner: Runner, clock: FrozenClock
) -> None:
    settings = runner.settings.model_copy(update={"smtp_port": 9, "smtp_timeout_seconds": 5.0})
    _, _, first = await notify_by_email(runner.db, clock.now())
    _, _, second = await notify_by_email(runner.db, clock.now())
    report = await send_tick(Runner(settings, runner.db, clock))
    assert report["failed"] == 2, report
    for outbox_id in (first, second):
        row = await outbox_row(runner.db, outbox_id)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["last_error"]


async def test_an_address_that_is_not_one_is_dead_at_once(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    _, _, outbox_id = await notify_by_email(runner.db, clock.now(), email_address="not an address")
    await send_tick(runner)
    row = await outbox_row(runner.db, outbox_id)
    assert (row["status"], row["reason"]) == ("dead", "the message cannot be built")
    assert "not an email address" in row["last_error"]


async def test_dead_emails_are_newest_first_and_bounded(
    runner: Runner, clock: FrozenClock, client: GraphQLClient, token: Any
) -> None:
    ids = []
    for n in range(3):
        _, _, outbox_id = await notify_by_email(runner.db, clock.now() + seconds(n))
        ids.append(outbox_id)
        await db.outbox.mark_failed(
            runner.db, outbox_id, "boom", clock.now(), max_attempts=1, retry_base_seconds=1
        )
    assert await db.outbox.count_dead(runner.db) == 3
    admin = token(Role.ADMIN)
    listed = (await client(DEAD_EMAILS, {"first": 2}, token=admin))["deadEmails"]
    assert [d["outboxId"] for d in listed] == [ids[2], ids[1]]
    listed = (await client(DEAD_EMAILS, {"first": -5}, token=admin))["deadEmails"]
    assert len(listed) == 1  # clamped to 1-100


async def test_the_backoff_doubles_up_to_its_ceiling(
    database: Database, clock: FrozenClock
) -> None:
    user_id = await add_user(database)
    notification_id = await add_notification(database, user_id, clock.now())
    outbox_id = await add_email(database, user_id, notification_id, clock.now())
    delays = []
    for _ in range(12):
        status = await db.outbox.mark_failed(
            database, outbox_id, "451", clock.now(), max_attempts=20, retry_base_seconds=30
        )
        assert status == "pending"
        delays.append(((await outbox_row(database, outbox_id))["due_at"] - clock.now()).seconds)
    assert delays[:6] == [30, 60, 120, 240, 480, 960]
    assert delays[-1] == db.outbox.MAX_BACKOFF_SECONDS


# -- the development sink --------------------------------------------------------------


async def test_the_development_sink_writes_an_eml_a_mail_client_opens(
    settings: Settings, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    sink = tmp_path / "mail"
    dev = settings.model_copy(update={"environment": "development", "mail_sink_dir": sink})
    _, notification_id, outbox_id = await notify_by_email(database, clock.now())

    assert (await send_tick(Runner(dev, database, clock)))["sent"] == 1

    [path] = sink.iterdir()
    assert path.name == f"notification.{notification_id}@liventix.invalid.eml"
    message = parse(path.read_bytes())
    assert message["To"] == "fan@example.com"
    assert message["Subject"] == "Your tickets are ready"
    text = message.get_body(("plain",))
    assert text is not None and "Order paid: 2 tickets." in text.get_content()
    assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/notifications/")
    assert (await outbox_row(database, outbox_id))["status"] == "sent"
    assert not list(sink.glob("*.partial"))


async def test_production_without_smtp_host_sends_nothing_and_keeps_emails_pending(
    settings: Settings, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    production = settings.model_copy(
        update={"environment": "production", "smtp_host": None, "mail_sink_dir": tmp_path}
    )
    _, _, outbox_id = await notify_by_email(database, clock.now())
    assert await jobs.run_once(Runner(production, database, clock), job("send_emails")) == {
        "transport": None
    }
    assert (await outbox_row(database, outbox_id))["status"] == "pending"
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (a test's tmp dir)


# -- settings ---------------------------------------------------------------------------


PRODUCTION = {"environment": "production", "jwt_secret": "p" * 40}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"email_from": "not an address"}, "EMAIL_FROM: "),
        ({"email_from": "A <a@b.example>\r\nBcc: x@y.example"}, "EMAIL_FROM: "),
        ({"public_url": "api.example.com"}, "PUBLIC_URL: "),
        ({"public_url": "https://api.example.com/?x=1"}, "PUBLIC_URL: "),
        ({"smtp_tls": "ssl"}, "SMTP_TLS: "),
        ({"smtp_port": 0}, "SMTP_PORT: "),
        ({"smtp_username": "me"}, "SMTP_USERNAME and SMTP_PASSWORD"),
        ({"email_lease_seconds": 30, "smtp_timeout_seconds": 30}, "EMAIL_LEASE_SECONDS"),
        ({**PRODUCTION, "smtp_host": "smtp.example.com"}, "PUBLIC_URL must be set"),
        (
            {
                **PRODUCTION,
                "smtp_host": "smtp.example.com",
                "public_url": "https://api.example.com",
            },
            "EMAIL_FROM must be set",
        ),
        (
            {
                **PRODUCTION,
                "smtp_host": "smtp.example.com",
                "public_url": "https://api.example.com",
                "email_from": "Liventix <hello@example.com>",
                "smtp_username": "me",
                "smtp_password": "secret",
                "smtp_tls": "none",
            },
            "SMTP_TLS=none",
        ),
    ],
)
def test_bad_email_settings_are_named(values: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(")):
        load_settings(_env_file=None, **values)


def test_email_settings_defaults_and_derived_values() -> None:
    settings = load_settings(_env_file=None, smtp_host="", public_url="https://api.example.com/")
    assert settings.smtp_host is None  # blank is unset
    assert settings.public_url == "https://api.example.com"
    assert settings.link_base == "https://api.example.com"
    # Unset, links point at the server itself, as `liventix serve` binds it.
    local = load_settings(_env_file=None, host="0.0.0.0", port=8302)
    assert local.link_base == "http://127.0.0.1:8302"
    assert settings.smtp_port_in_use == 587
    assert load_settings(_env_file=None, smtp_tls="tls").smtp_port_in_use == 465
    assert settings.mail_sink_path == settings.data_dir / "mail"
    assert settings.email_domain == "liventix.invalid"
    configured = load_settings(
        _env_file=None,
        **PRODUCTION,
        smtp_host="smtp.example.com",
        public_url="https://api.example.com",
        email_from="Liventix <Hello@Mail.Example.com>",
    )
    assert configured.email_domain == "mail.example.com"


async def test_the_job_loop_sends_on_its_interval(
    make_app: Any, smtp: SmtpServer, database: Database, clock: FrozenClock
) -> None:
    """With jobs on, a running app sends what is due without being asked."""
    _, notification_id, _ = await notify_by_email(database, clock.now())
    app = make_app(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_tls="none",
        email_from="Liventix <notifications@liventix.test>",
        jobs_enabled=True,
        email_send_interval_seconds=0.05,
    )
    async with app.router.lifespan_context(app):
        for _ in range(200):
            if smtp.mailbox.received:
                break
            await asyncio.sleep(0.025)
    assert smtp.mailbox.message_ids() == [f"<notification.{notification_id}@liventix.test>"]


def test_message_ids_depend_only_on_what_the_email_is() -> None:
    some = uuid.UUID(int=1)
    assert notification_message_id(some, "x.test") == f"<notification.{some}@x.test>"
    assert digest_message_id(some, "weekly:2026-W48", "x.test") == (
        f"<digest.weekly.2026-W48.{some}@x.test>"
    )
