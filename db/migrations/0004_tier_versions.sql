-- A version per tier, bumped by every UPDATE of the row. Updates of one row are
-- serialized by its row lock, so versions increase in commit order: a live subscriber
-- can tell a notification older than the snapshot it already has, and skip it.
ALTER TABLE ticketing.ticket_tiers ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION ticketing.bump_tier_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ticket_tiers_version BEFORE UPDATE ON ticketing.ticket_tiers
    FOR EACH ROW EXECUTE FUNCTION ticketing.bump_tier_version();
