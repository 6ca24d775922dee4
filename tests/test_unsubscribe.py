"""The unsubscribe link of every email (RFC 8058 one-click), taken from emails really
sent over SMTP: POST turns the category's email (or the digest) off, GET only asks,
and a token that is not ours changes nothing. Unsubscribe tokens and API tokens never
stand in for each other.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from databases import Database

from db.core import connection
from db.notification_prefs import Change, get_preferences, update_preferences
from db.notification_rules import Category, Channel
from liventix.auth import AuthError, Role, mint_token, viewer_from_token
from liventix.clock import FrozenClock
from liventix.mail import links
from liventix.settings import Settings
from tests.mail_support import (
    PUBLIC_URL,
    Runner,
    SmtpServer,
    add_notification,
    digest_tick,
    mail_settings,
    notify_by_email,
    runner,
    send_tick,
    smtp,
)
from tests.support import GraphQLClient

__all__ = ["mail_settings", "runner", "smtp"]  # the fixtures, re-exported for pytest

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def link_of(message: Any) -> str:
    """The path and query of an email's List-Unsubscribe URL (the app is in-process)."""
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<") and header.endswith(">"), header
    url = urlsplit(header[1:-1])
    assert f"{url.scheme}://{url.netloc}" == PUBLIC_URL
    return f"{url.path}?{url.query}"


async def emailed_link(
    runner: Runner, smtp: SmtpServer, category: Category
) -> tuple[uuid.UUID, str]:
    user_id, _, _ = await notify_by_email(runner.db, runner.clock.now(), category=category.value)
    await send_tick(runner)
    [message] = smtp.mailbox.messages
    return user_id, link_of(message)


async def preferences_row(database: Database, user_id: uuid.UUID) -> Any:
    async with connection(database) as conn:
        return await conn.fetchrow("SELECT * FROM notify.preferences WHERE user_id = $1", user_id)


async def test_the_one_click_post_turns_that_categorys_email_off(
    runner: Runner, smtp: SmtpServer, client: GraphQLClient
) -> None:
    user_id, link = await emailed_link(runner, smtp, Category.EVENT_CHANGED)
    before = await get_preferences(runner.db, user_id)
    assert before.enabled(Channel.EMAIL, Category.EVENT_CHANGED)

    response = await client.http.post(link, headers=FORM, **ONE_CLICK)

    assert response.status_code == 200, response.text
    assert "You are unsubscribed" in response.text
    after = await get_preferences(runner.db, user_id)
    assert not after.enabled(Channel.EMAIL, Category.EVENT_CHANGED)
    assert after.enabled(Channel.EMAIL, Category.ORDER_PAID)  # other categories as they were
    assert after.enabled(Channel.IN_APP, Category.EVENT_CHANGED)  # the inbox too
    assert after.switches == {"email": {"event_changed": False}}

    again = await client.http.post(link, headers=FORM, **ONE_CLICK)  # a second click
    assert again.status_code == 200
    assert (await get_preferences(runner.db, user_id)) == after


async def test_opening_the_link_changes_nothing_and_offers_the_button(
    runner: Runner, smtp: SmtpServer, client: GraphQLClient
) -> None:
    """Mail scanners and link previews fetch links: a GET only asks."""
    user_id, link = await emailed_link(runner, smtp, Category.ORDER_PAID)

    page = await client.http.get(link)

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "Stop order confirmation emails?" in page.text
    assert '<form method="post"' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert await preferences_row(runner.db, user_id) is None  # nothing written
    assert (await client.http.head(link)).status_code == 200
    assert await preferences_row(runner.db, user_id) is None

    action = link.replace("&", "&amp;")  # as HTML escapes it
    assert f'action="{action}"' in page.text
    pressed = await client.http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert pressed.status_code == 200
    assert not (await get_preferences(runner.db, user_id)).enabled(
        Channel.EMAIL, Category.ORDER_PAID
    )


async def test_the_digest_link_turns_the_digest_off(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock, client: GraphQLClient
) -> None:
    clock.set(datetime(2026, 11, 30, 9, tzinfo=UTC))
    user_id, _, _ = await notify_by_email(runner.db, clock.now())
    await send_tick(runner)
    await update_preferences(runner.db, user_id, Change(digest="daily"), clock.now())
    await add_notification(runner.db, user_id, clock.now() - timedelta(minutes=5))
    await digest_tick(runner)
    await send_tick(runner)
    [_, digest] = smtp.mailbox.messages
    assert "digest" in digest["Message-ID"]

    response = await client.http.post(link_of(digest), headers=FORM, **ONE_CLICK)

    assert response.status_code == 200
    assert "no more digest emails" in response.text
    preferences = await get_preferences(runner.db, user_id)
    assert preferences.digest == "off"
    assert preferences.switches == {}  # the category switches are untouched
    clock.set(datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert (await digest_tick(runner))["scheduled"] == 0


def forge(claims: dict[str, Any], secret: str = "someone-elses-secret-0123456789-abcdef") -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def tampered(token: str, **changes: Any) -> str:
    """The token with its claims changed and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


def bad_tokens(settings: Settings, user_id: uuid.UUID, genuine: str) -> dict[str, str]:
    own = {
        "sub": str(user_id),
        "aud": links.UNSUBSCRIBE_AUDIENCE,
        "purpose": links.PURPOSE,
        "ch": "email",
        "cat": "order_paid",
    }
    secret = settings.jwt_secret
    return {
        "signed with another secret": forge(own),
        "claims altered after signing": tampered(genuine, cat="event_changed"),
        "an API token": mint_token(settings, user_id, Role.USER),
        "no audience": forge({k: v for k, v in own.items() if k != "aud"}, secret),
        "another audience": forge({**own, "aud": "authenticated"}, secret),
        "no purpose": forge({k: v for k, v in own.items() if k != "purpose"}, secret),
        "another channel": forge({**own, "ch": "sms"}, secret),
        "an unknown category": forge({**own, "cat": "everything"}, secret),
        "alg none": jwt.encode(own, None, algorithm="none"),
        "cut short": genuine[: len(genuine) // 2],
        "empty": "",
    }


async def test_a_forged_or_altered_link_is_refused_and_changes_nothing(
    runner: Runner, smtp: SmtpServer, client: GraphQLClient, settings: Settings
) -> None:
    user_id, link = await emailed_link(runner, smtp, Category.ORDER_PAID)
    genuine = link.split("token=", 1)[1]
    for name, token in bad_tokens(settings, user_id, genuine).items():
        for method in ("GET", "POST"):
            response = await client.http.request(
                method, "/notifications/unsubscribe", params={"token": token}, **ONE_CLICK
            )
            assert response.status_code == 400, (name, method)
            assert "This link does not work" in response.text
    assert (await client.http.post("/notifications/unsubscribe", **ONE_CLICK)).status_code == 400
    assert await preferences_row(runner.db, user_id) is None


async def test_an_unsubscribe_token_is_never_an_api_token(
    runner: Runner, smtp: SmtpServer, client: GraphQLClient, settings: Settings
) -> None:
    _, link = await emailed_link(runner, smtp, Category.ORDER_PAID)
    token = link.split("token=", 1)[1]
    response = await client.post("{ viewer { id } }", token=token)
    assert response.status_code == 401
    # Even given the claims an API token needs, the purpose claim refuses it.
    with_exp = jwt.encode(
        {
            **jwt.decode(token, options={"verify_signature": False}),
            "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
            "role": "admin",
        },
        settings.jwt_secret,
        algorithm="HS256",
    )
    with pytest.raises(AuthError, match="Not an API token"):
        viewer_from_token(with_exp, settings)
    audience = settings.model_copy(update={"jwt_audience": "authenticated"})
    with pytest.raises(AuthError):
        viewer_from_token(token, audience)


async def test_the_link_ignores_the_callers_authorization_header(
    runner: Runner, smtp: SmtpServer, client: GraphQLClient
) -> None:
    """The token says who; a mail client's or proxy's own `Authorization` is no concern
    of this route (it is not refused as a bad API token)."""
    user_id, link = await emailed_link(runner, smtp, Category.ORDER_PAID)
    headers = {**FORM, "Authorization": "Bearer not-a-token"}
    response = await client.http.post(link, headers=headers, **ONE_CLICK)
    assert response.status_code == 200
    assert not (await get_preferences(runner.db, user_id)).enabled(
        Channel.EMAIL, Category.ORDER_PAID
    )


def test_a_link_names_what_it_turns_off() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    user_id = uuid.uuid4()
    now = datetime(2026, 11, 30, tzinfo=UTC)
    for category in (Category.MENTION, None):
        link = links.Unsubscribe(user_id, Channel.EMAIL, category)
        assert links.verify(settings, links.sign(settings, link, now)) == link
    url = links.url(settings, links.Unsubscribe(user_id, Channel.EMAIL, None), now)
    assert url.startswith("http://127.0.0.1:8000/notifications/unsubscribe?token=")
