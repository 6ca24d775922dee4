"""Garbage-collector settings for a server process: thresholds for one that holds
thousands of WebSockets, and the start-up heap kept out of collections.

Each open connection keeps a few dozen GC-tracked objects alive (protocol state, tasks,
mailboxes), so 10,000 subscribers mean about a million long-lived objects. With
CPython's default thresholds (700, 10, 10) the fan-out of every few changes triggers a
full collection that walks all of them: measured with `bench/fanout.py`, a 0.9 s pause
every fifth change at 10,000 subscribers (p99 1.3 s), versus p99 0.37 s with
generations 1 and 2 collected 5 and 10 times less often, as below.

The young generation's threshold bounds the pause of every young collection, which
walks (and frees) what requests left in cycles since the last one: about 4 ms for
10,000 objects, but about 100 ms for 100,000, on a busy two-core machine (the
single-connection stalls of the read benchmark). Ten thousand keeps young pauses short;
at 10,000 subscribers the fan-out costs about 15 % more CPU per change for it, with no
measurable change in p99 (1.17-1.26 s versus 1.19-1.31 s with 100,000, measured in one
sitting on a loaded machine).
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 50, 100)


def tune_for_many_connections() -> None:
    """Raise the collection thresholds (process-wide; never lowers them)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(current, THRESHOLDS, strict=True)))


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive now (modules, the schema and its
    resolvers, the pool) to the permanent generation that collections never walk.

    Those objects live as long as the process. Walking them (about 125,000 objects)
    is what made a full collection stall every request in flight for tens of
    milliseconds; only what requests allocate afterwards is collected. For a served
    process only: objects frozen here are never freed, so a process that builds many
    apps (the tests) must not call it.
    """
    gc.collect()
    gc.freeze()
