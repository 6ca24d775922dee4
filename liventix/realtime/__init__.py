"""Realtime pub/sub: one LISTEN connection per process, fanned out to local subscribers.

Pure pub/sub: it routes the messages of `db.channels` by channel key and knows nothing
of GraphQL (shared subscription executions are `liventix.subscriptions`).
"""

from liventix.realtime.hub import Hub, SubscriberTooSlow, Subscription, Watch, load_once

__all__ = ["Hub", "SubscriberTooSlow", "Subscription", "Watch", "load_once"]
