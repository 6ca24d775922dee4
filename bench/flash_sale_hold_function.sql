-- The hold as the API makes it since `ticketing.reserve_hold` (one statement: the
-- function releases lapsed holds, takes the seats with the conditional update, inserts
-- the hold and announces the tier, and commits as it returns), run by pgbench as
-- `bench/flash_sale.py` does where the function exists: the ceiling of that design.
--
-- Variables (pgbench -D): tier, the tier's id; its capacity covers every transaction.
-- Each call holds for a buyer of its own, as in `bench/flash_sale_hold.sql`.
SELECT outcome
  FROM ticketing.reserve_hold(
       CAST(:tier AS uuid), CAST(md5('bench-buyer-' || nextval('bench_buyer_seq')) AS uuid),
       1, now(), now() + interval '15 minutes', 'liventix');
