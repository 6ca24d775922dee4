"""GraphiQL in a real headless Chromium: the page loads from this API alone, runs its
prefilled query, a query with the Headers tab's token and a subscription, and shows
their results.

The browser's resolver maps every host except 127.0.0.1 to NOTFOUND, and every request
the page makes is recorded through the DevTools protocol, so a CDN reference anywhere
in the page or its assets fails the test instead of silently loading from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from liventix import graphiql
from liventix.auth import Role
from liventix.settings import DEFAULT_GRAPHIQL_ASSETS_DIR
from tests.conftest import ServerThread
from tests.support import gid

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(autouse=True)
def browser_and_assets() -> None:
    """`make test` installs both; a missing one fails here rather than skipping the test,
    so a machine that silently never runs the browser cannot pass."""
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: run `make test` (scripts/test-tools.sh)"
    assert graphiql.assets_installed(DEFAULT_GRAPHIQL_ASSETS_DIR), (
        "GraphiQL assets missing: run `make setup` (npm ci in web/)"
    )


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class DevTools:
    """A minimal Chrome DevTools protocol client for one page target."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.conn:
            message = json.loads(raw)
            future = self.pending.pop(message.get("id", -1), None)
            if future is not None:
                future.set_result(message)
            else:
                self.events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.conn.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 15)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def wait_for(
        self, expression: str, done: Callable[[Any], bool] = bool, timeout: float = 20
    ) -> Any:
        """Poll `expression` in the page until `done(value)`; fail with the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if done(value):
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression!r}; last value {value!r}")

    def request_urls(self) -> list[str]:
        urls = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Network.requestWillBeSent":
                urls.append(params["request"]["url"])
            elif event.get("method") == "Network.webSocketCreated":
                urls.append(params["url"])
        return urls

    def failed_requests(self) -> list[str]:
        return [
            event["params"].get("errorText", "")
            for event in self.events
            if event.get("method") == "Network.loadingFailed"
        ]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile, connected to its blank first page."""
    profile = tempfile.mkdtemp(prefix="lvx-chromium-")
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        browser_ws = ""
        while not browser_ws:
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "chromium exited before opening its DevTools port"
            match = re.search(rb"DevTools listening on (ws://\S+)", line)
            browser_ws = match.group(1).decode() if match else ""
        port = urlsplit(browser_ws).port
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=None) as conn:
            tools = DevTools(conn)
            try:
                yield tools
            finally:
                tools.reader.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def editor(selector: str) -> str:
    """JS for the CodeMirror instance inside the GraphiQL pane matching `selector`."""
    return f"document.querySelector({json.dumps(selector + ' .CodeMirror')}).CodeMirror"


QUERY_EDITOR = editor(".graphiql-query-editor")
RESPONSE = editor(".graphiql-response")
RUN = "document.querySelector('.graphiql-execute-button').click()"


async def run_in_playground(page: DevTools, document: str) -> None:
    """Type `document` into the editor and press Run, as a user would."""
    await page.evaluate(f"{QUERY_EDITOR}.setValue({json.dumps(document)})")
    # GraphiQL re-parses the editor (operation name and type) on a debounce; pressing
    # Run sooner would send the previous operation's name with the new document.
    await asyncio.sleep(0.5)
    await page.evaluate(RUN)


def response_json(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        return None


async def test_playground_runs_a_query_and_a_subscription_offline(
    server: ServerThread, token: Callable[..., str]
) -> None:
    user_id = uuid.uuid4()
    async with chromium() as page:
        await page.call("Network.enable")
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{server.http_url}/graphql")
        await page.wait_for("!!document.querySelector('.graphiql-query-editor .CodeMirror')")
        # The prefilled query runs as it is.
        await page.evaluate(RUN)
        shown = await page.wait_for(f"{RESPONSE}.getValue()", lambda v: "events" in (v or ""))
        assert response_json(shown) == {"data": {"events": {"edges": []}}}

        # The Headers tab's token is sent with the query.
        headers = json.dumps({"Authorization": f"Bearer {token(Role.USER, user_id)}"})
        await page.evaluate(
            "document.querySelector('.graphiql-editor-tools button:nth-child(2)').click()"
        )
        await page.wait_for("!!document.querySelector('.graphiql-editor-tool .CodeMirror')")
        await page.evaluate(
            "[...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]"
            f".at(-1).CodeMirror.setValue({json.dumps(headers)})"
        )
        await run_in_playground(page, "query Me { viewer { id role } }")
        shown = await page.wait_for(f"{RESPONSE}.getValue()", lambda v: "viewer" in (v or ""))
        assert response_json(shown) == {
            "data": {"viewer": {"id": gid("Viewer", user_id), "role": "USER"}}
        }

        # A subscription streams over graphql-transport-ws; each tick replaces the last.
        await run_in_playground(page, "subscription Tick { clock(intervalSeconds: 1, count: 3) }")
        ticks: set[str] = set()

        def two_ticks(value: Any) -> bool:
            body = response_json(value)
            if body and "clock" in (body.get("data") or {}):
                ticks.add(body["data"]["clock"])
            return len(ticks) >= 2

        await page.wait_for(f"{RESPONSE}.getValue()", two_ticks, timeout=10)

        urls = page.request_urls()
    origin = f"127.0.0.1:{server.port}"
    assert any(url.startswith(f"ws://{origin}/graphql") for url in urls), urls
    assert any("/graphiql/static/graphiql/graphiql.min.js" in url for url in urls), urls
    outside = [u for u in urls if not u.startswith("data:") and urlsplit(u).netloc != origin]
    assert outside == [], f"requests left {origin}: {outside}"
    assert page.failed_requests() == []


async def test_playground_assets_come_from_the_configured_directory(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    """GRAPHIQL_ASSETS_DIR moves the assets (an installed package is not next to web/)."""
    for asset in graphiql.ASSETS:
        target = tmp_path / asset
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"/* {asset} */")
    app = make_app(graphiql_assets_dir=tmp_path)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql.min.js" in page.text
        asset = await http.get("/graphiql/static/graphiql/graphiql.min.js")
        assert asset.text == "/* graphiql/graphiql.min.js */"
        hidden = await http.get("/graphiql/static/graphiql/package.json")
        assert hidden.status_code == 404
    missing = make_app(graphiql_assets_dir=tmp_path / "nowhere")
    async with (
        missing.router.lifespan_context(missing),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=missing), base_url="http://t") as h,
    ):
        page = await h.get("/graphql", headers={"Accept": "text/html"})
        assert "make setup" in page.text
