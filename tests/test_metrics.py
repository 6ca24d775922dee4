"""Request, pool, webhook, job and WebSocket metrics, read from `/metrics` as Prometheus
reads them; and `liventix serve --workers 2`, whose `/metrics` is the sum over both.

Counters are the process's (shared by the session's tests), so each test compares a
scrape before and after what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from databases import Database
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette

import db.persisted_queries
from db.core import PoolTimeout, connection, create_database
from db.persisted_queries import Registration
from liventix import jobs, metrics_endpoint
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.metrics import PoolMetrics
from liventix.persisted_queries import sha256_hex
from liventix.signed_events import build_event, send_event
from liventix.ws import GraphQLTransportWS
from tests.conftest import ServerThread
from tests.metrics_support import Scrape, scrape
from tests.orders_support import World, paid_order, pending_order, world
from tests.support import ApiProcess, GraphQLClient, WSClient, job_named, key_of

__all__ = ["world"]

EVENTS = "query UpcomingEvents { events(first: 5) { edges { node { id } } } }"
OPS = "liventix_graphql_operations_total"
OP_SECONDS = "liventix_graphql_operation_duration_seconds_count"
FIELD_SECONDS = "liventix_graphql_field_duration_seconds_count"
ERRORS = "liventix_graphql_errors_total"
HTTP = "liventix_http_requests_total"


# -- GraphQL operations and fields ------------------------------------------------------


async def test_a_query_is_counted_and_timed_with_its_root_field_and_its_http_request(
    client: GraphQLClient,
) -> None:
    before = await scrape(client.http)
    await client(EVENTS)
    await client("{ events(first: 1) { edges { node { id } } } }")
    after = await scrape(client.http)
    # A client's own operation name is never a label: only registered names are.
    assert after.delta(before, OPS, operation="other", type="query", outcome="ok") == 1
    assert after.delta(before, OPS, operation="anonymous", type="query", outcome="ok") == 1
    assert after.delta(before, OP_SECONDS, operation="other", type="query") == 1
    assert after.delta(before, FIELD_SECONDS, field="events") == 2
    assert after.delta(before, HTTP, method="POST", route="/graphql", status="200") == 2
    assert not after.has(OPS, operation="UpcomingEvents", type="query", outcome="ok")


async def test_a_mutation_is_counted_and_its_root_field_timed(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """`checkout` is the field the checkout latency alert reads (its p95)."""
    before = await scrape(client.http)
    await pending_order(client, database, world, clock, 1)
    after = await scrape(client.http)
    assert after.delta(before, OPS, operation="anonymous", type="mutation", outcome="ok") == 1
    assert after.delta(before, FIELD_SECONDS, field="checkout") == 1
    assert after.has("liventix_graphql_field_duration_seconds_bucket", field="checkout", le="0.8")


async def test_a_registered_persisted_query_is_counted_under_its_name(
    client: GraphQLClient, database: Database
) -> None:
    await db.persisted_queries.register(
        database, [Registration(sha256_hex(EVENTS), EVENTS, "UpcomingEvents")]
    )
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(EVENTS)}}}
    before = await scrape(client.http)
    response = await client.http.post("/graphql", json=by_hash)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    after = await scrape(client.http)
    assert after.delta(before, OPS, operation="UpcomingEvents", type="query", outcome="ok") == 1
    assert after.delta(before, OP_SECONDS, operation="UpcomingEvents", type="query") == 1


async def test_errors_are_counted_by_code_and_outcomes_tell_failed_from_refused(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    before = await scrape(client.http)
    # A field the viewer may not use: it ran, and failed.
    response = await client.post("{ eventHealth { eventId } }", token=token(Role.ORGANIZER))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Nothing ran: the document does not validate, or does not parse.
    await client.post("{ noSuchField }")
    await client.post("{")
    # Refused by the endpoint before the schema: a hash nobody registered.
    unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}}
    await client.http.post("/graphql", json=unknown)
    after = await scrape(client.http)

    assert after.delta(before, ERRORS, code="FORBIDDEN") == 1
    assert after.delta(before, OPS, operation="anonymous", type="query", outcome="error") == 1
    assert after.delta(before, ERRORS, code="GRAPHQL_VALIDATION_FAILED") == 1
    assert (
        after.delta(before, OPS, operation="anonymous", type="query", outcome="request_error") == 1
    )
    assert after.delta(before, ERRORS, code="GRAPHQL_PARSE_FAILED") == 1
    assert after.delta(before, OPS, operation="other", type="unknown", outcome="request_error") == 1
    assert after.delta(before, ERRORS, code="PERSISTED_QUERY_NOT_FOUND") == 1


async def test_http_requests_are_counted_by_route_template_and_status(
    client: GraphQLClient,
) -> None:
    before = await scrape(client.http)
    await client.http.get("/healthz")
    await client.http.get("/no/such/page/123")
    await client.http.request("BREW", "/healthz")
    bad_token = await client.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status_code == 401  # refused by the middleware, counted all the same
    after = await scrape(client.http)
    assert after.delta(before, HTTP, method="GET", route="/healthz", status="200") == 1
    assert after.delta(before, HTTP, method="GET", route="other", status="404") == 1
    assert after.delta(before, HTTP, method="other", route="/healthz", status="405") == 1
    assert after.delta(before, HTTP, method="POST", route="/graphql", status="401") == 1
    # The scrape before this one is counted too.
    assert after.delta(before, HTTP, method="GET", route="/metrics", status="200") == 1
    assert not [key for key in after.samples if ("route", "/no/such/page/123") in key[1]]


# -- webhooks, jobs ---------------------------------------------------------------------


async def test_webhook_deliveries_are_counted_by_type_and_result(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    before = await scrape(client.http)
    order = await paid_order(client, database, world, clock, 1)
    event = build_event(
        "payment_intent.succeeded",
        order_id=str(key_of(order["id"])),
        payment_intent_id=order["paymentIntentId"],
        amount_cents=order["totalCents"],
        event_id="evt_metrics_twice",
    )
    for _ in range(2):
        sent = await send_event(
            client.http, "/webhooks/stripe", event, world.settings.stripe_webhook_secret
        )
        assert sent.status_code == 200
    forged = await send_event(client.http, "/webhooks/stripe", event, "whsec_" + "x" * 30)
    assert forged.status_code == 400
    after = await scrape(client.http)
    kind = "payment_intent.succeeded"
    assert after.delta(before, "liventix_webhook_events_total", type=kind, result="paid") == 1
    assert after.delta(before, "liventix_webhook_events_total", type=kind, result="unchanged") == 1
    assert after.delta(before, "liventix_webhook_events_total", type=kind, result="duplicate") == 1
    assert (
        after.delta(before, "liventix_webhook_events_total", type="unknown", result="bad_signature")
        == 1
    )


async def test_job_runs_are_counted_and_timed_and_a_success_is_stamped(
    client: GraphQLClient, app: Starlette
) -> None:
    services = app.state.services

    async def broken(_services: Any) -> tuple[int, dict[str, Any]]:
        raise RuntimeError("the body of this job always fails")

    failing = jobs.Job("metrics_test_failing", broken, lambda _s: 60.0)
    before = await scrape(client.http)
    started = time.time()
    await jobs.run_once(services, job_named("sweep_holds"))
    await jobs.run_once(services, failing)
    after = await scrape(client.http)
    runs = "liventix_job_runs_total"
    assert after.delta(before, runs, job="sweep_holds", outcome="ok") == 1
    assert after.delta(before, "liventix_job_duration_seconds_count", job="sweep_holds") == 1
    stamped = after.value("liventix_job_last_success_timestamp_seconds", job="sweep_holds")
    assert started <= stamped <= time.time()
    assert after.delta(before, runs, job="metrics_test_failing", outcome="failed") == 1
    assert not after.has("liventix_job_last_success_timestamp_seconds", job="metrics_test_failing")


async def test_each_job_loop_exports_its_interval(make_app: Callable[..., Starlette]) -> None:
    """What a "no success for three intervals" alert divides by."""
    app = make_app(health_interval_seconds=45.0, sweep_interval_seconds=7.0)
    async with app.router.lifespan_context(app), jobs.running(app.state.services):
        pass
    interval = "liventix_job_interval_seconds"
    assert REGISTRY.get_sample_value(interval, {"job": "ticketing_health"}) == 45.0
    assert REGISTRY.get_sample_value(interval, {"job": "sweep_holds"}) == 7.0


# -- the pool, WebSockets, the listener -------------------------------------------------


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_the_pool_reports_its_size_use_waiters_and_each_wait(database_url: str) -> None:
    pool = create_database(
        database_url, min_size=1, max_size=1, acquire_timeout=0.3, observer=PoolMetrics()
    )
    await pool.connect()
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with connection(pool), connection(pool):  # nested: one connection in use
            holding.set()
            await release.wait()

    async def wait_for_it() -> None:
        async with connection(pool):
            pass

    waits = _sample("liventix_db_pool_acquire_seconds_count")
    tasks: list[asyncio.Task[None]] = []
    try:
        assert _sample("liventix_db_pool_size") == 1
        tasks.append(asyncio.create_task(hold()))
        await holding.wait()
        assert (_sample("liventix_db_pool_in_use"), _sample("liventix_db_pool_waiters")) == (1, 0)
        tasks.append(asyncio.create_task(wait_for_it()))
        await asyncio.sleep(0.05)
        assert _sample("liventix_db_pool_waiters") == 1
        release.set()
        await asyncio.gather(*tasks)
        assert (_sample("liventix_db_pool_in_use"), _sample("liventix_db_pool_waiters")) == (0, 0)
        assert _sample("liventix_db_pool_acquire_seconds_count") == waits + 2

        # A wait that timed out is a wait too (it shows up in the slowest buckets).
        release.clear()
        holding.clear()
        tasks.append(asyncio.create_task(hold()))
        await holding.wait()
        with pytest.raises(PoolTimeout):
            await wait_for_it()
        assert _sample("liventix_db_pool_waiters") == 0
        assert _sample("liventix_db_pool_acquire_seconds_count") == waits + 4
    finally:
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.disconnect()


async def test_the_app_pool_is_observed(client: GraphQLClient, settings: Any) -> None:
    before = await scrape(client.http)
    await client(EVENTS)
    after = await scrape(client.http)
    assert after.value("liventix_db_pool_size") == settings.db_pool_max
    assert after.delta(before, "liventix_db_pool_acquire_seconds_count") >= 1
    assert after.value("liventix_db_pool_waiters") == 0


async def test_websocket_frames_out_are_counted_and_the_listener_is_up(
    ws: Callable[..., Any], handler: GraphQLTransportWS
) -> None:
    sent = _sample("liventix_ws_messages_sent_total")
    client = await ws()  # connection_ack: one frame
    op = await client.subscribe("subscription { clock(count: 1, intervalSeconds: 1) }")
    await client.next_payload(op)
    assert (await client.receive())["type"] == "complete"
    for _ in range(200):  # counted once the frame is written: just after it arrives
        if _sample("liventix_ws_messages_sent_total") >= sent + 3:
            break
        await asyncio.sleep(0.01)
    assert _sample("liventix_ws_messages_sent_total") == sent + 3
    assert _sample("liventix_realtime_listener_connected") == 1
    assert _sample("liventix_ws_connections") >= 1


async def test_websocket_operations_of_the_allow_list_are_counted_under_their_names(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    """Over WebSocket a document is sent as text; under the allow-list its registration
    names it. A subscription is counted when it ends."""
    clock_query = "subscription Tick { clock(count: 1, intervalSeconds: 1) }"
    await db.persisted_queries.register(
        database, [Registration(sha256_hex(clock_query), clock_query, "Tick")]
    )
    labels = {"operation": "Tick", "type": "subscription", "outcome": "ok"}
    before = REGISTRY.get_sample_value(OPS, labels) or 0.0
    refused = REGISTRY.get_sample_value(ERRORS, {"code": "PERSISTED_QUERY_NOT_ALLOWED"}) or 0.0
    async with ServerThread(make_app(persisted_queries="allowlist")) as server:
        client = WSClient(server.ws_url)
        await client.connect()
        try:
            await client.init()
            op = await client.subscribe(clock_query)
            await client.next_payload(op)
            assert (await client.receive())["type"] == "complete"
            unregistered = await client.subscribe("subscription { clock(count: 1) }")
            message = await client.receive()
            assert (message["id"], message["type"]) == (unregistered, "error")
        finally:
            await client.close()
    assert REGISTRY.get_sample_value(OPS, labels) == before + 1
    after = REGISTRY.get_sample_value(ERRORS, {"code": "PERSISTED_QUERY_NOT_ALLOWED"})
    assert after == refused + 1


# -- several workers --------------------------------------------------------------------


def _per_worker(directory: Path, name: str, labels: dict[str, str]) -> dict[int, float]:
    """Each worker's own value of a counter, from its file in the metric directory."""
    counts: dict[int, float] = {}
    for file in directory.glob("counter_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        for family in MultiProcessCollector.merge([str(file)]):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    counts[pid] = sample.value
    return counts


async def _post_many(url: str, count: int) -> None:
    """`count` queries at once, each on its own connection (so the kernel spreads them
    over the workers accepting on the shared socket)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=15) as http:
        responses = await asyncio.gather(
            *(http.post("/graphql", json={"query": "{ __typename }"}) for _ in range(count))
        )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_with_two_workers_metrics_shows_the_sum_over_both(
    database_url: str, tmp_path: Path
) -> None:
    server = ApiProcess(database_url, tmp_path, workers=2)
    labels = {"method": "POST", "route": "/graphql", "status": "200"}
    try:
        await server.ready()
        directory = tmp_path / ".data" / "metrics" / str(server.port)
        assert directory.is_dir()
        sent = 0
        for _ in range(30):  # until both workers have answered some
            await _post_many(server.url, 20)
            sent += 20
            if len([n for n in _per_worker(directory, HTTP, labels).values() if n]) == 2:
                break
        per_worker = _per_worker(directory, HTTP, labels)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        assert sum(per_worker.values()) == sent

        async with httpx.AsyncClient(base_url=server.url) as http:
            total = await scrape(http)
        assert total.value(HTTP, **labels) == sent
        ok = {"operation": "anonymous", "type": "query", "outcome": "ok"}
        assert total.value(OPS, **ok) == sent
        assert total.value("liventix_db_pool_size") == 2 * 10  # livesum of DB_POOL_MAX
        assert total.value("liventix_realtime_listener_connected") == 1  # livemin

        # A worker dies: uvicorn starts another. Its counts stay in the sum; its live
        # gauges (its pool) leave it.
        dead = next(iter(per_worker))
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("gauge_livesum_*.db")}
            if len(alive - {dead}) == 2:
                break
            await asyncio.sleep(0.2)
        after = Scrape({})
        async with httpx.AsyncClient(base_url=server.url) as http:
            for _ in range(100):  # the new worker opens its pool as it starts
                with contextlib.suppress(httpx.TransportError):
                    after = await scrape(http)
                    if after.value("liventix_db_pool_size") == 2 * 10:
                        break
                await asyncio.sleep(0.2)
        assert not (directory / f"gauge_livesum_{dead}.db").exists()
        assert after.value("liventix_db_pool_size") == 2 * 10
        assert after.value(HTTP, **labels) == sent
    finally:
        await server.stop()


def test_serve_gives_its_workers_an_empty_metric_directory_per_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of an earlier run would add its counts to this one's."""
    monkeypatch.setenv(metrics_endpoint.MULTIPROC_ENV, "")  # restored (unset) afterwards
    stale = tmp_path / "metrics" / "8123" / "counter_4242.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old counts")
    path = metrics_endpoint.prepare_multiprocess_dir(tmp_path, 8123)
    assert path == stale.parent.resolve() and list(path.iterdir()) == []
    assert os.environ[metrics_endpoint.MULTIPROC_ENV] == str(path)
    assert metrics_endpoint.multiprocess_dir() == path


async def test_one_process_serves_its_own_registry(client: GraphQLClient) -> None:
    """Without several workers there is no metric directory: the process's registry,
    with the process collectors."""
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    response = await client.http.get("/metrics")
    assert "process_cpu_seconds_total" in response.text or "python_info" in response.text
    assert Scrape.parse(response.text).has("liventix_db_pool_size")
