-- Refunds with reasons: each refund row says why (a code from a fixed list) and may
-- carry a note, and a refund the client asked for under its own idempotency key is
-- found again by that key, so a retried request refunds nothing twice.
--
-- Reasons: the six an organizer (or an admin) chooses, and two the platform writes
-- itself: `late_payment` (the payment came after the seats or the code's uses were
-- gone) and `payment_provider` (refunded at Stripe, outside this API). Rows written
-- before reasons existed kept free text in `reason`: it moves to `note`.
ALTER TABLE ticketing.refunds ADD COLUMN note text CHECK (length(note) <= 500);
ALTER TABLE ticketing.refunds ADD COLUMN client_key text
    CHECK (length(client_key) BETWEEN 1 AND 200);

UPDATE ticketing.refunds
   SET note = nullif(reason, ''),
       reason = CASE
           WHEN reason IN ('sold_out_after_hold_expired',
                           'discount_code_used_up_after_order_expired') THEN 'late_payment'
           WHEN reason = 'refunded at the payment provider' THEN 'payment_provider'
           ELSE 'other'
       END;

-- A row written by hand (an operator's repair) without a reason is OTHER.
ALTER TABLE ticketing.refunds ALTER COLUMN reason SET DEFAULT 'other';
ALTER TABLE ticketing.refunds ADD CONSTRAINT refund_reason_known CHECK (reason IN (
    'requested_by_customer', 'event_canceled', 'event_changed', 'duplicate', 'fraudulent',
    'other', 'late_payment', 'payment_provider'));

-- A refund that voids tickets whose paid share is nothing (a free or comp ticket, or an
-- order whose money was already given back) is still a refund operation, recorded
-- with its reason; there is nothing to send to the payment provider for it.
ALTER TABLE ticketing.refunds DROP CONSTRAINT refunds_amount_cents_check;
ALTER TABLE ticketing.refunds ADD CONSTRAINT refunds_amount_cents_check
    CHECK (amount_cents >= 0);

-- The client's idempotency key names one refund of one order.
CREATE UNIQUE INDEX refunds_client_key ON ticketing.refunds (order_id, client_key)
    WHERE client_key IS NOT NULL;
