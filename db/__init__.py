"""The data layer: transactional repository functions and SQL migrations.

Every public function here is one business operation in one transaction; it takes the
`databases.Database`, opens its own connection and transaction in the calling task
(``databases`` binds connections to tasks) and never touches GraphQL. Functions that
take an open asyncpg connection instead run inside their caller's transaction.

Modules, by concept:

* events and feed: `events` (records, organizer writes, who sees an event), `feed`
  (posts), `users` (profiles);
* capacity: `tiers` (tier records, organizer writes, which tiers are listed), `holds`
  (the only writer of tier counters and hold states, with its SQL function
  `ticketing.reserve_hold` that makes a hold in one statement; the lock order is written
  there), `reservations` (the buyer's reserve/release), `sweeper` (expired holds);
* orders: `order_records` (shared records), `checkout`, `completion`,
  `payment_events` (Stripe events), `refunds` (refund rows and the refund operation)
  with `refund_rules` (what a refund may do: one rule for a refund and its preview),
  `checkin`, `order_queries` (reads),
  `privacy` (contact anonymization);
* discount codes: `discount_codes` (records, organizer writes, pricing, uses and
  revenue per code), `code_uses` (the only writer of a code's use counters and
  redemptions);
* operations: `reconcile`, `ops_views`, `jobs`;
* email: `outbox` (claiming due emails and recording what sending did), `digests`
  (which digests are due, and what one contains);
* the API's own: `persisted_queries` (stored and registered GraphQL documents);
* plumbing: `core` (connections, transactions, retries), `pages` (every cursor),
  `notify` and `channels` (realtime messages), `errors` (the exception tree and each
  domain's codes), `migrate`, `demo`.

Expected failures are raised as `db.errors.DomainError` subclasses (one per domain,
each with its code enum), which the schema maps to its typed errors in one place
(`schema/error_map.py`).
"""
