"""The realtime contract: every channel and its messages, defined once.

Changes are announced with `pg_notify` on one PostgreSQL channel (`NOTIFY_CHANNEL`),
each as a small JSON object, its *wire* form::

    {"ch": "feed:<event id>", "op": "created", "post_id": "<uuid>", "seq": 42}

``ch`` is the key local subscribers listen to and ``op`` says what happened. Each
channel has one frozen dataclass here, the only place its name and payload are
written or read:

=========================  ================  ===========================================
message                    channel           ops
=========================  ================  ===========================================
`FeedMessage`              ``feed:<event>``  ``created``, ``deleted`` (a post),
                                             ``event`` (edited), ``author`` (renamed)
`TierMessage`              ``tier:<event>``  ``tier`` (a tier's counters changed)
`UserMessage`              ``user:<user>``   ``order_paid``, ``order_refunded``
`InboxBatch`               ``inbox``         ``batch`` (notifications were enqueued)
`InboxMessage`             ``inbox:<user>``  ``new`` (local only), ``read``
`ConsoleMessage`           ``console:<ev>``  ``paid``, ``refunded`` (an order),
                                             ``checked_in`` (a ticket)
`Resync` (any channel)     any               ``resync``: notifications may have been
                                             missed (the hub sends it after a gap)
=========================  ================  ===========================================

Producers build a message and hand it to `db.notify.publish`, which sends
``encode()``; consumers receive the decoded JSON object and call ``decode`` of the
channel they subscribed to, which returns the message, a `Resync`, or None for anything
malformed or foreign (logged by nobody: a consumer just skips it). Ids travel as
strings; the event or user id is carried by the channel name alone. Processes are
upgraded together, so the wire form may change between releases.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, cast, get_args

NOTIFY_CHANNEL = "liventix"
"""The one PostgreSQL channel every message travels on (routing is by ``ch``)."""

Wire = dict[str, Any]
"""A message as it travels: a JSON object with ``ch`` and ``op`` keys."""

FeedKind = Literal["created", "deleted", "event", "author"]
UserKind = Literal["order_paid", "order_refunded"]
InboxKind = Literal["new", "read"]
ConsoleKind = Literal["paid", "refunded", "checked_in"]
RESYNC = "resync"


class Row(Protocol):
    """A database row (or mapping) read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


def _id_in(channel: object, prefix: str) -> uuid.UUID | None:
    """The id a channel name of this kind carries (None for another channel)."""
    if not isinstance(channel, str) or not channel.startswith(prefix):
        return None
    return _uuid(channel[len(prefix) :])


def _addressed(wire: Mapping[str, Any], prefix: str) -> tuple[uuid.UUID, object] | Resync | None:
    """The id and op of a wire object on a channel of this kind; a `Resync` if that is
    what it says; None for another channel."""
    channel_id = _id_in(wire.get("ch"), prefix)
    if channel_id is None:
        return None
    op = wire.get("op")
    if op == RESYNC:
        return Resync(f"{prefix}{channel_id}")
    return channel_id, op


def _uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _wire(channel: str, op: str, **fields: object) -> Wire:
    """The wire object, without the fields that are None."""
    wire: Wire = {"ch": channel, "op": op}
    for name, value in fields.items():
        if value is not None:
            wire[name] = str(value) if isinstance(value, uuid.UUID) else value
    return wire


@dataclass(frozen=True, slots=True)
class Resync:
    """Notifications on `channel` may have been missed: reload the state from the
    database (the hub sends one to every subscriber after a listener gap)."""

    channel: str

    def encode(self) -> Wire:
        return {"ch": self.channel, "op": RESYNC}


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """Something shown on an event's feed pages changed.

    ``created`` / ``deleted`` carry the post (and its feed seq); ``event`` means the
    event itself was edited (pages embed it); ``author`` that `user_id` renamed
    themselves (pages show authors' names).
    """

    PREFIX: ClassVar[str] = "feed:"

    event_id: uuid.UUID
    kind: FeedKind
    post_id: uuid.UUID | None = None
    seq: int | None = None
    user_id: uuid.UUID | None = None

    @classmethod
    def channel_of(cls, event_id: uuid.UUID) -> str:
        return f"{cls.PREFIX}{event_id}"

    @property
    def channel(self) -> str:
        return self.channel_of(self.event_id)

    def encode(self) -> Wire:
        return _wire(
            self.channel, self.kind, post_id=self.post_id, seq=self.seq, user_id=self.user_id
        )

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> FeedMessage | Resync | None:
        head = _addressed(wire, cls.PREFIX)
        if not isinstance(head, tuple):
            return head
        event_id, op = head
        if op not in get_args(FeedKind):
            return None
        post_id = _uuid(wire["post_id"]) if "post_id" in wire else None
        user_id = _uuid(wire["user_id"]) if "user_id" in wire else None
        if op in ("created", "deleted") and post_id is None:
            return None
        seq = _int(wire["seq"]) if "seq" in wire else None
        return cls(event_id, cast(FeedKind, op), post_id=post_id, seq=seq, user_id=user_id)


def public_seats(quantity: int, reserved: int, issued: int, waitlist_demand: int) -> int:
    """Seats of a tier the public can hold now: the free ones its waiting line does not
    want. The rule is `db.holds`'s (its SQL enforces it on every hold); this is its
    arithmetic for what clients are shown, from a row or from a message alike."""
    return max(0, quantity - reserved - issued - waitlist_demand)


@dataclass(frozen=True, slots=True)
class TierMessage:
    """A tier's counters after a change, as the UPDATE that made it returned them.

    The counters are absolute and `version` grows with every change, so applying a
    message is idempotent and one older than what a subscriber holds can be skipped.
    The hold's SQL function (`ticketing.announce_tier`, called by
    `ticketing.reserve_hold`) writes this wire form itself, byte for byte what
    `encode` gives and orjson writes; tests/test_reserve_hold.py holds them together.
    """

    PREFIX: ClassVar[str] = "tier:"
    OP: ClassVar[str] = "tier"

    event_id: uuid.UUID
    tier_id: uuid.UUID
    quantity: int
    reserved: int
    issued: int
    version: int
    waitlist: int = 0  # seats the waiting line asks for; absent from older senders

    @classmethod
    def channel_of(cls, event_id: uuid.UUID) -> str:
        return f"{cls.PREFIX}{event_id}"

    @classmethod
    def from_row(cls, tier: Row) -> TierMessage:
        """From a row with id, event_id, quantity, reserved_quantity, issued_quantity,
        version and waitlist_demand (what the writers' ``RETURNING`` gives)."""
        return cls(
            event_id=tier["event_id"],
            tier_id=tier["id"],
            quantity=tier["quantity"],
            reserved=tier["reserved_quantity"],
            issued=tier["issued_quantity"],
            version=tier["version"],
            waitlist=tier["waitlist_demand"],
        )

    @property
    def channel(self) -> str:
        return self.channel_of(self.event_id)

    @property
    def available(self) -> int:
        return public_seats(self.quantity, self.reserved, self.issued, self.waitlist)

    def encode(self) -> Wire:
        return _wire(
            self.channel,
            self.OP,
            tier_id=self.tier_id,
            quantity=self.quantity,
            reserved=self.reserved,
            issued=self.issued,
            version=self.version,
            waitlist=self.waitlist,
        )

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> TierMessage | Resync | None:
        head = _addressed(wire, cls.PREFIX)
        if not isinstance(head, tuple):
            return head
        event_id, op = head
        if op != cls.OP:
            return None
        tier_id = _uuid(wire.get("tier_id"))
        counters = [_int(wire.get(n)) for n in ("quantity", "reserved", "issued", "version")]
        if tier_id is None:
            return None
        quantity, reserved, issued, version = counters
        if quantity is None or reserved is None or issued is None or version is None:
            return None
        waitlist = _int(wire.get("waitlist", 0))
        if waitlist is None:
            return None
        return cls(event_id, tier_id, quantity, reserved, issued, version, waitlist)


@dataclass(frozen=True, slots=True)
class UserMessage:
    """Something happened to one of the user's orders (paid, refunded)."""

    PREFIX: ClassVar[str] = "user:"

    user_id: uuid.UUID
    kind: UserKind
    order_id: uuid.UUID
    tickets: int | None = None
    reason: str | None = None

    @classmethod
    def channel_of(cls, user_id: uuid.UUID) -> str:
        return f"{cls.PREFIX}{user_id}"

    @property
    def channel(self) -> str:
        return self.channel_of(self.user_id)

    def encode(self) -> Wire:
        return _wire(
            self.channel,
            self.kind,
            order_id=self.order_id,
            tickets=self.tickets,
            reason=self.reason,
        )

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> UserMessage | Resync | None:
        head = _addressed(wire, cls.PREFIX)
        if not isinstance(head, tuple):
            return head
        user_id, op = head
        order_id = _uuid(wire.get("order_id"))
        if op not in get_args(UserKind) or order_id is None:
            return None
        tickets = _int(wire["tickets"]) if "tickets" in wire else None
        reason = wire.get("reason")
        if not isinstance(reason, str):
            reason = None
        return cls(user_id, cast(UserKind, op), order_id, tickets=tickets, reason=reason)


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """Notifications were enqueued, one batch of them (`db.notifications.enqueue`): one
    message however many recipients, so each process looks up which of its own inbox
    subscribers got one, at a cost that grows with those subscribers, not the batch."""

    CHANNEL: ClassVar[str] = "inbox"
    OP: ClassVar[str] = "batch"

    batch: int

    @property
    def channel(self) -> str:
        return self.CHANNEL

    def encode(self) -> Wire:
        return _wire(self.CHANNEL, self.OP, batch=self.batch)

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> InboxBatch | Resync | None:
        if wire.get("ch") != cls.CHANNEL:
            return None
        if wire.get("op") == RESYNC:
            return Resync(cls.CHANNEL)
        batch = _int(wire.get("batch"))
        return cls(batch) if wire.get("op") == cls.OP and batch is not None else None


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One user's inbox changed: ``new`` (a notification, handed to the user's
    subscribers by the process's inbox fan-out) or ``read`` (marked read: the counts)."""

    PREFIX: ClassVar[str] = "inbox:"

    user_id: uuid.UUID
    kind: InboxKind
    notification_id: uuid.UUID | None = None

    @classmethod
    def channel_of(cls, user_id: uuid.UUID) -> str:
        return f"{cls.PREFIX}{user_id}"

    @property
    def channel(self) -> str:
        return self.channel_of(self.user_id)

    def encode(self) -> Wire:
        return _wire(self.channel, self.kind, notification_id=self.notification_id)

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> InboxMessage | Resync | None:
        head = _addressed(wire, cls.PREFIX)
        if not isinstance(head, tuple):
            return head
        user_id, op = head
        if op not in get_args(InboxKind):
            return None
        notification_id = _uuid(wire["notification_id"]) if "notification_id" in wire else None
        if op == "new" and notification_id is None:
            return None
        return cls(user_id, cast(InboxKind, op), notification_id)


@dataclass(frozen=True, slots=True)
class ConsoleMessage:
    """A figure of an event's producer console changed: an order was ``paid`` or
    ``refunded``, a ticket ``checked_in``. It carries no figures: consumers recompute
    them (`db.console.console_counts`), coalescing a burst into one read."""

    PREFIX: ClassVar[str] = "console:"

    event_id: uuid.UUID
    kind: ConsoleKind

    @classmethod
    def channel_of(cls, event_id: uuid.UUID) -> str:
        return f"{cls.PREFIX}{event_id}"

    @property
    def channel(self) -> str:
        return self.channel_of(self.event_id)

    def encode(self) -> Wire:
        return _wire(self.channel, self.kind)

    @classmethod
    def decode(cls, wire: Mapping[str, Any]) -> ConsoleMessage | Resync | None:
        head = _addressed(wire, cls.PREFIX)
        if not isinstance(head, tuple):
            return head
        event_id, op = head
        if op not in get_args(ConsoleKind):
            return None
        return cls(event_id, cast(ConsoleKind, op))


Message = FeedMessage | TierMessage | UserMessage | InboxBatch | InboxMessage | ConsoleMessage
"""Anything a transaction may announce."""


def supersedes(wire: Mapping[str, Any]) -> Hashable | None:
    """The key under which `wire` replaces an unread message with the same key (None:
    it replaces nothing). A tier message carries absolute counters, so only the latest
    per tier matters; one pending resync, or console message, is as good as several."""
    op = wire.get("op")
    if op == TierMessage.OP:
        return (TierMessage.OP, wire.get("tier_id"))
    if op == RESYNC:
        return (RESYNC,)
    if op in get_args(ConsoleKind):
        return (ConsoleMessage.PREFIX,)  # it carries no figures: any one says "recompute"
    return None
