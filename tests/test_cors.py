"""CORS: pages on `CORS_ORIGINS` may call `/graphql` with a bearer token; pages on any
other origin get no CORS headers, so their browser refuses them the answer.

First through the ASGI app, then in the headless Chromium of `tests/test_graphiql.py`:
a page served from a second origin (another port of 127.0.0.1) calls the API with
`fetch`, as an SPA does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from liventix.auth import Role
from tests.conftest import ServerThread
from tests.support import gid
from tests.test_graphiql import CHROMIUM, chromium

ALLOWED = "http://localhost:5173"  # a default development origin (ENVIRONMENT=test)
OTHER = "https://evil.example"
QUERY = {"query": "query Me { viewer { id } }"}


@asynccontextmanager
async def http_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_preflight_from_an_allowed_origin_is_answered(
    make_app: Callable[..., Starlette],
) -> None:
    async with http_client(make_app()) as http:
        response = await http.options("/graphql", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers  # bearer, no cookies


async def test_another_origin_gets_no_cors_headers(make_app: Callable[..., Starlette]) -> None:
    async with http_client(make_app()) as http:
        refused = await http.options("/graphql", headers=preflight(OTHER))
        answered = await http.post("/graphql", json=QUERY, headers={"Origin": OTHER})
    assert refused.status_code == 400
    # Without Access-Control-Allow-Origin naming it, the page's browser refuses both.
    for response in (refused, answered):
        assert "access-control-allow-origin" not in response.headers


async def test_responses_to_an_allowed_origin_expose_the_request_id(
    make_app: Callable[..., Starlette], token: Callable[..., str]
) -> None:
    """Answers, refusals included (a bad token's 401), carry the CORS headers, so the
    page can read their codes; X-Request-Id is readable from the page."""
    async with http_client(make_app()) as http:
        ok = await http.post(
            "/graphql",
            json=QUERY,
            headers={"Origin": ALLOWED, "Authorization": f"Bearer {token()}"},
        )
        refused = await http.post(
            "/graphql", json=QUERY, headers={"Origin": ALLOWED, "Authorization": "Bearer nope"}
        )
    assert ok.status_code == 200 and refused.status_code == 401
    for response in (ok, refused):
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
        assert response.headers["x-request-id"]


async def test_production_allows_no_origin_by_default(
    make_app: Callable[..., Starlette],
) -> None:
    async with http_client(make_app(cors_origins="")) as http:
        response = await http.options("/graphql", headers=preflight(ALLOWED))
    assert "access-control-allow-origin" not in response.headers


async def test_cors_is_for_graphql_only(make_app: Callable[..., Starlette]) -> None:
    async with http_client(make_app()) as http:
        response = await http.get("/healthz", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in response.headers


# -- in a real browser ---------------------------------------------------------------------


def page_server() -> ServerThread:
    """A server of one blank page: the SPA's origin (127.0.0.1 on a port of its own)."""

    async def page(request: Request) -> Response:
        return HTMLResponse("<!doctype html><title>spa</title><p>spa</p>")

    return ServerThread(Starlette(routes=[Route("/", page)]))


def fetch_viewer(api: str, token: str) -> str:
    """JS: the page calls the API as an SPA does (JSON, a bearer token: a preflight)."""
    options = {
        "method": "POST",
        "headers": {
            "Content-Type": "application/json",
            "Accept": "application/graphql-response+json",
            "Authorization": f"Bearer {token}",
        },
        "body": json.dumps(QUERY),
    }
    return (
        f"fetch({json.dumps(api + '/graphql')}, {json.dumps(options)})"
        ".then(async r => ({ok: true, status: r.status, body: await r.json(),"
        " requestId: r.headers.get('x-request-id')}),"
        " e => ({ok: false, error: String(e)}))"
    )


async def test_a_browser_page_on_an_allowed_origin_calls_the_api_and_others_cannot(
    make_app: Callable[..., Starlette], token: Callable[..., str]
) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: run `make test` (scripts/test-tools.sh)"
    user_id = uuid.uuid4()
    bearer = token(Role.USER, user_id)
    allowed_page, other_page = page_server(), page_server()
    api_app = make_app(cors_origins=allowed_page.http_url)
    async with allowed_page, other_page, ServerThread(api_app) as api, chromium() as browser:
        results: dict[str, Any] = {}
        for name, site in (("allowed", allowed_page), ("other", other_page)):
            await browser.call("Page.navigate", url=f"{site.http_url}/")
            await browser.wait_for(f"location.origin === {json.dumps(site.http_url)}")
            await browser.wait_for("document.readyState === 'complete'")
            results[name] = await browser.evaluate(fetch_viewer(api.http_url, bearer))
    allowed, other = results["allowed"], results["other"]
    assert allowed["ok"], allowed
    assert allowed["status"] == 200
    assert allowed["body"] == {"data": {"viewer": {"id": gid("Viewer", user_id)}}}
    assert allowed["requestId"]  # exposed to the page
    assert not other["ok"], other  # the browser refused the page the answer
    assert "Failed to fetch" in other["error"], other
