-- Events, tiers, holds, orders, tickets: the revenue path.
-- Names match the monitoring SQL the platform already runs; invariants the database
-- can state are CHECK and UNIQUE constraints, not application code.
CREATE SCHEMA IF NOT EXISTS events;
CREATE SCHEMA IF NOT EXISTS ticketing;

CREATE TABLE events.events (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organizer_id  uuid NOT NULL REFERENCES users.profiles (id),
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    venue         text NOT NULL DEFAULT '' CHECK (length(venue) <= 300),
    start_at      timestamptz NOT NULL,
    end_at        timestamptz,
    time_zone     text NOT NULL DEFAULT 'UTC',
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'published', 'canceled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at IS NULL OR end_at >= start_at)
);
CREATE INDEX events_organizer ON events.events (organizer_id);
CREATE INDEX events_published_start ON events.events (start_at) WHERE status = 'published';

CREATE TABLE ticketing.ticket_tiers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id           uuid NOT NULL REFERENCES events.events (id),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_cents        integer NOT NULL CHECK (price_cents >= 0),
    currency           text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    quantity           integer NOT NULL CHECK (quantity >= 0),
    reserved_quantity  integer NOT NULL DEFAULT 0,
    issued_quantity    integer NOT NULL DEFAULT 0,
    max_per_order      integer NOT NULL DEFAULT 10 CHECK (max_per_order > 0),
    sales_start_at     timestamptz,
    sales_end_at       timestamptz,
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'hidden', 'closed')),
    sort_order         integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tier_issued_nonnegative CHECK (issued_quantity >= 0),
    CONSTRAINT tier_reserved_nonnegative CHECK (reserved_quantity >= 0),
    CONSTRAINT tier_never_oversold CHECK (reserved_quantity + issued_quantity <= quantity),
    CHECK (sales_end_at IS NULL OR sales_start_at IS NULL OR sales_end_at > sales_start_at)
);
CREATE INDEX ticket_tiers_event ON ticketing.ticket_tiers (event_id, sort_order);

CREATE TABLE ticketing.orders (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id                  uuid NOT NULL REFERENCES events.events (id),
    user_id                   uuid NOT NULL REFERENCES users.profiles (id),
    status                    text NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'paid', 'failed', 'expired',
                                                'canceled', 'refunded', 'partially_refunded')),
    stripe_payment_intent_id  text UNIQUE,
    contact_email             text,
    contact_name              text,
    contact_phone             text,
    metadata                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    total_cents               integer NOT NULL CHECK (total_cents >= 0),
    refunded_cents            integer NOT NULL DEFAULT 0
                              CHECK (refunded_cents >= 0 AND refunded_cents <= total_cents),
    currency                  text NOT NULL DEFAULT 'usd',
    failure_reason            text,
    refund_reason             text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    paid_at                   timestamptz,
    anonymized_at             timestamptz
);
CREATE INDEX orders_user ON ticketing.orders (user_id, created_at DESC);
CREATE INDEX orders_event ON ticketing.orders (event_id, created_at DESC, id DESC);

CREATE TABLE ticketing.order_items (
    order_id          uuid NOT NULL REFERENCES ticketing.orders (id),
    tier_id           uuid NOT NULL REFERENCES ticketing.ticket_tiers (id),
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  integer NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, tier_id)
);

CREATE TABLE ticketing.ticket_holds (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tier_id      uuid NOT NULL REFERENCES ticketing.ticket_tiers (id),
    event_id     uuid NOT NULL REFERENCES events.events (id),
    user_id      uuid NOT NULL REFERENCES users.profiles (id),
    quantity     integer NOT NULL CHECK (quantity > 0),
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'converted', 'released', 'expired')),
    expires_at   timestamptz NOT NULL,
    order_id     uuid REFERENCES ticketing.orders (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
-- A user holds at most one active hold per tier.
CREATE UNIQUE INDEX ticket_holds_one_active ON ticketing.ticket_holds (tier_id, user_id)
    WHERE status = 'active';
CREATE INDEX ticket_holds_active_expiry ON ticketing.ticket_holds (expires_at)
    WHERE status = 'active';
CREATE INDEX ticket_holds_order ON ticketing.ticket_holds (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE ticketing.tickets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id         uuid NOT NULL REFERENCES ticketing.orders (id),
    event_id         uuid NOT NULL REFERENCES events.events (id),
    tier_id          uuid NOT NULL REFERENCES ticketing.ticket_tiers (id),
    owner_user_id    uuid NOT NULL REFERENCES users.profiles (id),
    status           text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'refunded', 'void')),
    sequence_number  integer NOT NULL CHECK (sequence_number > 0),
    checked_in_at    timestamptz,
    checked_in_by    uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, tier_id, sequence_number)
);
CREATE INDEX tickets_owner ON ticketing.tickets (owner_user_id, created_at DESC);
CREATE INDEX tickets_event ON ticketing.tickets (event_id);

-- The QR code carries this random token, never the ticket id.
CREATE TABLE ticketing.ticket_tokens (
    token            text PRIMARY KEY CHECK (length(token) >= 20),
    ticket_id        uuid NOT NULL UNIQUE REFERENCES ticketing.tickets (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_scanned_at  timestamptz,
    scan_count       integer NOT NULL DEFAULT 0 CHECK (scan_count >= 0)
);

-- Each Stripe event id is processed once: the UNIQUE key makes retries harmless.
CREATE TABLE ticketing.stripe_events (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    result        text
);

CREATE TABLE ticketing.refunds (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id          uuid NOT NULL REFERENCES ticketing.orders (id),
    amount_cents      integer NOT NULL CHECK (amount_cents > 0),
    ticket_ids        uuid[] NOT NULL DEFAULT '{}',
    reason            text NOT NULL DEFAULT '',
    idempotency_key   text NOT NULL UNIQUE,
    stripe_refund_id  text,
    requested_by      uuid,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order ON ticketing.refunds (order_id);

-- Operations views, per event. "Ghost" reservations are active holds already expired.
CREATE VIEW ticketing.event_health AS
WITH tiers AS (
    SELECT event_id,
           sum(quantity)::int AS capacity,
           sum(issued_quantity)::int AS sold,
           sum(reserved_quantity)::int AS reserved,
           sum(quantity - reserved_quantity - issued_quantity)::int AS available,
           bool_or(quantity - reserved_quantity - issued_quantity < 0) AS negative_availability,
           count(*)::int AS tier_count
      FROM ticketing.ticket_tiers GROUP BY event_id
), ghosts AS (
    SELECT event_id, coalesce(sum(quantity), 0)::int AS ghost_reservations
      FROM ticketing.ticket_holds
     WHERE status = 'active' AND expires_at < now()
     GROUP BY event_id
), orphans AS (
    SELECT o.event_id, count(*)::int AS paid_orders_without_tickets
      FROM ticketing.orders o
     WHERE o.status = 'paid'
       AND NOT EXISTS (SELECT 1 FROM ticketing.tickets t WHERE t.order_id = o.id)
     GROUP BY o.event_id
)
SELECT e.id AS event_id,
       e.title,
       e.start_at,
       e.status AS event_status,
       coalesce(t.capacity, 0) AS capacity,
       coalesce(t.sold, 0) AS sold,
       coalesce(t.reserved, 0) AS reserved,
       coalesce(t.available, 0) AS available,
       coalesce(g.ghost_reservations, 0) AS ghost_reservations,
       coalesce(o.paid_orders_without_tickets, 0) AS paid_orders_without_tickets,
       greatest(0, 100
           - CASE WHEN coalesce(t.negative_availability, false) THEN 50 ELSE 0 END
           - CASE WHEN coalesce(o.paid_orders_without_tickets, 0) > 0 THEN 40 ELSE 0 END
           - CASE WHEN coalesce(g.ghost_reservations, 0) > 0 THEN 10 ELSE 0 END
       ) AS health_score
  FROM events.events e
  LEFT JOIN tiers t ON t.event_id = e.id
  LEFT JOIN ghosts g ON g.event_id = e.id
  LEFT JOIN orphans o ON o.event_id = e.id;

CREATE VIEW ticketing.event_readiness AS
SELECT h.event_id,
       h.title,
       h.start_at,
       NOT EXISTS (SELECT 1 FROM ticketing.ticket_tiers tt
                    WHERE tt.event_id = h.event_id
                      AND tt.quantity - tt.reserved_quantity - tt.issued_quantity < 0)
           AS no_negative_availability,
       h.ghost_reservations = 0 AS no_ghost_reservations,
       h.paid_orders_without_tickets = 0 AS no_paid_orders_without_tickets,
       EXISTS (SELECT 1 FROM ticketing.ticket_tiers tt WHERE tt.event_id = h.event_id)
           AS has_tiers,
       CASE WHEN h.ghost_reservations = 0
             AND h.paid_orders_without_tickets = 0
             AND EXISTS (SELECT 1 FROM ticketing.ticket_tiers tt WHERE tt.event_id = h.event_id)
             AND NOT EXISTS (SELECT 1 FROM ticketing.ticket_tiers tt
                              WHERE tt.event_id = h.event_id
                                AND tt.quantity - tt.reserved_quantity - tt.issued_quantity < 0)
            THEN 'ready' ELSE 'not_ready' END AS overall_status
  FROM ticketing.event_health h
 WHERE h.start_at > now() AND h.event_status <> 'canceled';
