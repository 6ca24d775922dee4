-- The hold sweeper marks `expired` the pending orders whose holds all lapsed; it finds
-- them among the pending orders, which this small partial index lists.
CREATE INDEX orders_pending ON ticketing.orders (id) WHERE status = 'pending';
