-- Settlement: what each recorded Stripe event was about, so collected money can be
-- compared with what paid orders expect. Events recorded before this migration keep
-- NULLs (their order and amount were never stored).
ALTER TABLE ticketing.stripe_events
    ADD COLUMN order_id uuid REFERENCES ticketing.orders (id),
    ADD COLUMN amount_cents bigint CHECK (amount_cents >= 0);

CREATE INDEX stripe_events_order ON ticketing.stripe_events (order_id)
    WHERE order_id IS NOT NULL;
