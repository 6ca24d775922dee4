"""Realtime: one LISTEN connection per process, fanned out to local subscribers."""

from liventix.realtime.hub import Hub, SubscriberTooSlow, Subscription

__all__ = ["Hub", "SubscriberTooSlow", "Subscription"]
