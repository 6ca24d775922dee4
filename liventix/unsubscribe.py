"""The unsubscribe link of every email: `/notifications/unsubscribe?token=...`.

POST turns the email off: the one-click request a mail client sends on its own (RFC
8058: body `List-Unsubscribe=One-Click`), and the button of the page below. GET only
shows that page, with the button: mail scanners and link previews fetch links, and
must not unsubscribe anyone by doing so. A notification's link turns its category's
email switch off (`db.notification_prefs.set_switch`), a digest's link the digest.
Repeating it changes nothing more. A token that is not one of our unsubscribe tokens
(forged, altered, cut short, an API token) gets a 400 and changes nothing.
"""

from __future__ import annotations

import functools

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import db.notification_prefs
from db.notification_prefs import Change
from liventix.mail import links
from liventix.mail.compose import label
from resolvers.context import Services

PATH = links.PATH
# The token is in the URL: no caches, no referrer to the pages it links to, no index.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


@functools.cache
def _page_template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("liventix", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("unsubscribe.html")


def _page(status: int, title: str, message: str, confirm: str = "", action: str = "") -> Response:
    html = _page_template().render(title=title, message=message, confirm=confirm, action=action)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _what(link: links.Unsubscribe) -> str:
    if link.category is None:
        return "digest emails"
    return f"{label(link.category).lower()} emails"


async def unsubscribe(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        link = links.verify(services.settings, request.query_params.get("token", ""))
    except links.InvalidLink:
        return _page(
            400,
            "This link does not work",
            "It may have been cut short by your mail program. You can turn emails off in "
            "the notification settings of the app.",
        )
    if request.method != "POST":
        action = f"{request.url.path}?{request.url.query}"
        return _page(200, "Unsubscribe?", f"Stop {_what(link)}?", "Unsubscribe", action)
    now = services.clock.now()
    if link.category is None:
        change = Change(digest="off")
        await db.notification_prefs.update_preferences(services.db, link.user_id, change, now)
    else:
        await db.notification_prefs.set_switch(
            services.db, link.user_id, link.channel, link.category, False, now
        )
    return _page(
        200,
        "You are unsubscribed",
        f"You will get no more {_what(link)}. You can turn them back on in the "
        "notification settings of the app.",
    )
