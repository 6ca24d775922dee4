-- Discount and comp codes per event, their uses, and what an order was discounted by.
--
-- A code's uses are two counters on its row, written only by `db/code_uses.py`:
-- `uses_reserved` (pending orders that applied it) and `uses_paid` (paid orders). A
-- checkout reserves a use with one conditional update, as a hold reserves seats, and
-- the CHECK below backs it up: the database, not the application, keeps a code from
-- being used more than `max_uses` times under any concurrency.
CREATE TABLE ticketing.discount_codes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        uuid NOT NULL REFERENCES events.events (id),
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{3,40}$'),
    kind            text NOT NULL CHECK (kind IN ('percent', 'fixed', 'comp')),
    percent_off     integer CHECK (percent_off BETWEEN 1 AND 100),
    amount_off_cents integer CHECK (amount_off_cents BETWEEN 1 AND 100000000),
    currency        text CHECK (currency ~ '^[a-z]{3}$'),
    tier_id         uuid REFERENCES ticketing.ticket_tiers (id),
    max_uses        integer NOT NULL CHECK (max_uses BETWEEN 0 AND 1000000),
    per_user_limit  integer CHECK (per_user_limit BETWEEN 1 AND 1000),
    starts_at       timestamptz,
    ends_at         timestamptz,
    enabled         boolean NOT NULL DEFAULT true,
    uses_reserved   integer NOT NULL DEFAULT 0 CHECK (uses_reserved >= 0),
    uses_paid       integer NOT NULL DEFAULT 0 CHECK (uses_paid >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT discount_code_never_over_used CHECK (uses_reserved + uses_paid <= max_uses),
    CONSTRAINT discount_code_window CHECK (ends_at IS NULL OR starts_at IS NULL
                                           OR ends_at > starts_at),
    CONSTRAINT discount_code_amount CHECK (
        (kind = 'percent' AND percent_off IS NOT NULL AND amount_off_cents IS NULL)
        OR (kind = 'fixed' AND amount_off_cents IS NOT NULL AND currency IS NOT NULL
            AND percent_off IS NULL)
        OR (kind = 'comp' AND percent_off IS NULL AND amount_off_cents IS NULL))
);
-- Codes are case-insensitive and unique per event.
CREATE UNIQUE INDEX discount_codes_event_code ON ticketing.discount_codes (event_id, upper(code));
CREATE INDEX discount_codes_tier ON ticketing.discount_codes (tier_id) WHERE tier_id IS NOT NULL;

-- What an order was discounted by: the code (its id and its text as applied) and the
-- amount taken off the sum of its items; `total_cents` is that sum less the discount.
ALTER TABLE ticketing.orders
    ADD COLUMN discount_code_id uuid REFERENCES ticketing.discount_codes (id),
    ADD COLUMN discount_code text,
    ADD COLUMN discount_cents integer NOT NULL DEFAULT 0 CHECK (discount_cents >= 0);
CREATE INDEX orders_discount_code ON ticketing.orders (discount_code_id)
    WHERE discount_code_id IS NOT NULL;

-- One redemption per order that applied a code: whether its use is reserved (the
-- order is pending), paid, or released (the order expired, failed, was canceled or
-- fully refunded). Each change of status moves one use between the code's counters,
-- so a repeated change (a webhook delivered twice) finds the status already moved
-- and counts nothing twice. The per-user limit counts a user's reserved and paid ones.
CREATE TABLE ticketing.discount_redemptions (
    order_id    uuid PRIMARY KEY REFERENCES ticketing.orders (id),
    code_id     uuid NOT NULL REFERENCES ticketing.discount_codes (id),
    user_id     uuid NOT NULL REFERENCES users.profiles (id),
    status      text NOT NULL DEFAULT 'reserved'
                CHECK (status IN ('reserved', 'paid', 'released')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX discount_redemptions_code_user
    ON ticketing.discount_redemptions (code_id, user_id);
CREATE INDEX discount_redemptions_user ON ticketing.discount_redemptions (user_id);
