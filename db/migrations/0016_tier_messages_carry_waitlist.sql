-- Tier announcements carry the seats the tier's waiting line asks for (`waitlist`), so
-- every subscriber computes what the public can hold (`db.channels.public_seats`) the
-- same way a read of the row does. Byte for byte what `db.channels.TierMessage.encode`
-- gives and orjson writes (tests/test_reserve_hold.py compares them).
CREATE OR REPLACE FUNCTION ticketing.announce_tier(p_channel text, t ticketing.ticket_tiers)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    payload text := format(
        '{"ch":"tier:%s","op":"tier","tier_id":"%s","quantity":%s,"reserved":%s,'
        '"issued":%s,"version":%s,"waitlist":%s}',
        t.event_id, t.id, t.quantity, t.reserved_quantity, t.issued_quantity, t.version,
        t.waitlist_demand);
BEGIN
    PERFORM pg_notify(p_channel, payload);
    RETURN payload;
END;
$$;
