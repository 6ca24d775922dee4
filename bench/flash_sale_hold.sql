-- The raw hold transaction, as `bench/flash_sale.py` runs it with pgbench: the ceiling
-- any client of this database can reach for holds on one tier (no HTTP, no JWT, no
-- GraphQL, no Python), to compare the API against.
--
-- What a successful hold writes: the conditional tier update that cannot oversell, the
-- hold row, and the notification of the tier's new counters in the realtime wire form
-- (`db.channels.TierMessage`), all in one transaction.
--
-- Variables (pgbench -D): tier, the tier's id; its capacity covers every transaction.
-- Each transaction holds for a buyer of its own (a user holds at most one active hold
-- per tier): profile n has the id md5('bench-buyer-' || n), and `bench_buyer_seq`
-- hands out n.
BEGIN;
UPDATE ticketing.ticket_tiers
   SET reserved_quantity = reserved_quantity + 1
 WHERE id = CAST(:tier AS uuid) AND quantity - reserved_quantity - issued_quantity >= 1
RETURNING event_id, quantity, reserved_quantity, issued_quantity, version \gset
INSERT INTO ticketing.ticket_holds (tier_id, event_id, user_id, quantity, expires_at)
VALUES (CAST(:tier AS uuid), CAST(:event_id AS uuid),
        CAST(md5('bench-buyer-' || nextval('bench_buyer_seq')) AS uuid), 1,
        now() + interval '15 minutes');
SELECT pg_notify('liventix', format(
    '{"ch":"tier:%s","op":"tier","tier_id":"%s","quantity":%s,"reserved":%s,'
    '"issued":%s,"version":%s}',
    CAST(:event_id AS text), CAST(:tier AS text), CAST(:quantity AS text),
    CAST(:reserved_quantity AS text), CAST(:issued_quantity AS text), CAST(:version AS text)));
END;
