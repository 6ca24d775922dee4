"""Realtime: one LISTEN connection per process, fanned out to local subscribers."""

from liventix.realtime.hub import Hub, Notification, SubscriberTooSlow, Subscription, load_once

__all__ = ["Hub", "Notification", "SubscriberTooSlow", "Subscription", "load_once"]
