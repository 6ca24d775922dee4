"""`/metrics`: this process's metrics, or the aggregate over `liventix serve --workers`.

One process serves its own registry. With `--workers N` (N > 1) the server is N
processes behind one port and a scrape reaches any one of them, so `serve` gives them
a fresh directory (`prepare_multiprocess_dir`, under DATA_DIR) in
``PROMETHEUS_MULTIPROC_DIR`` before they start; `prometheus_client` then keeps every
process's values in files there, and `/metrics` merges all of them
(`MultiProcessCollector`): counters and histograms are summed over the workers, dead
ones included (a restart never takes a count back), and each gauge is merged as it
declares (`multiprocess_mode`):

- ``livesum``: what each live worker holds (connections, operations, pool use), summed;
- ``livemin``: the realtime listener is up only if it is up in every live worker;
- ``max``: job interval and last success time, the latest over workers;
- ``mostrecent``: the ticketing health gauges (`liventix.health_metrics`), the
  database's figures, the same for everyone: the value written last.

Workers that died are marked so (their ``live`` gauges dropped) at each scrape. The
per-process collectors (``process_*``, ``python_gc_*``) are not in the aggregate: one
worker's figures would pass for the server's.

Before answering, the health gauges are set from the last recorded health reading, so
whichever worker answers shows the latest one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

from liventix import health_metrics
from resolvers.context import Services

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(data_dir: Path, port: int) -> Path:
    """A fresh, empty directory for the workers' metric files (per port, so two servers
    sharing DATA_DIR keep theirs apart), named in the environment the workers inherit.

    Files left by an earlier run would add its counts to this one's: removed first."""
    path = (data_dir / "metrics" / str(port)).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def multiprocess_dir() -> Path | None:
    """The workers' metric directory, when this process is one of several."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def render() -> bytes:
    """The exposition text: the aggregate over the workers, or this process's."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    mark_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def mark_dead_workers(path: Path) -> list[int]:
    """Drop the ``live`` gauges of workers that are gone (a crash leaves them behind);
    returns their pids."""
    dead = sorted({pid for pid in _pids_with_live_gauges(path) if not _alive(pid)})
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    return dead


def _pids_with_live_gauges(path: Path) -> set[int]:
    pids = set()
    for file in path.glob("gauge_live*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(file.stem.rsplit("_", 1)[1]))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not one of our workers any more
        return False
    return True


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    await health_metrics.refresh(services.db)
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
