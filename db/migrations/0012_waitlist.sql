-- The waitlist of a sold-out tier: freed seats become held offers for the next people in
-- line, in the transaction that frees them.
--
-- Part of the capacity module `db/holds.py` (its lock order and rules are written
-- there): `ticketing.offer_freed_seats` is the one owner of "capacity freed", called by
-- every path that gives seats back (`db.holds` in Python, `ticketing.reserve_hold` here),
-- and `ticketing.reserve_hold` is replaced so that the public never takes the seats the
-- waiting entries need.

-- How long an offer holds its seats, per event (the organizer's setting).
ALTER TABLE events.events
    ADD COLUMN waitlist_offer_minutes integer NOT NULL DEFAULT 60
        CHECK (waitlist_offer_minutes BETWEEN 1 AND 10080);

-- The seats the tier's waiting entries ask for (the sum of their quantities), kept on
-- the tier's row so that the conditional update of a public hold reads it from the row
-- it locks: a join that commits while a buyer waits for the row is seen when the buyer's
-- update re-checks it. The public may take only
--     quantity - reserved_quantity - issued_quantity - waitlist_demand
-- seats (`db.holds` documents this rule).
ALTER TABLE ticketing.ticket_tiers
    ADD COLUMN waitlist_demand integer NOT NULL DEFAULT 0 CHECK (waitlist_demand >= 0);

-- One person in line for a tier. `status` is 'waiting' (in line), 'offered' (`hold_id`
-- is the offer: a hold like any other, so checkout works unchanged; what became of it,
-- active, converted or expired, is the hold's status) or 'left'.
CREATE TABLE ticketing.waitlist_entries (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tier_id     uuid NOT NULL REFERENCES ticketing.ticket_tiers (id),
    event_id    uuid NOT NULL REFERENCES events.events (id),
    user_id     uuid NOT NULL REFERENCES users.profiles (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    status      text NOT NULL DEFAULT 'waiting'
                CHECK (status IN ('waiting', 'offered', 'left')),
    hold_id     uuid REFERENCES ticketing.ticket_holds (id),
    joined_at   timestamptz NOT NULL,
    offered_at  timestamptz,
    ended_at    timestamptz,
    updated_at  timestamptz NOT NULL,
    CHECK ((status = 'offered') = (hold_id IS NOT NULL) OR status = 'left')
);
-- The line of a tier, first come first served (ties by id).
CREATE INDEX waitlist_entries_line ON ticketing.waitlist_entries (tier_id, joined_at, id);
-- A person waits at most once per tier at a time.
CREATE UNIQUE INDEX waitlist_entries_one_waiting ON ticketing.waitlist_entries (tier_id, user_id)
    WHERE status = 'waiting';
CREATE INDEX waitlist_entries_user ON ticketing.waitlist_entries (user_id, joined_at);
CREATE INDEX waitlist_entries_event ON ticketing.waitlist_entries (event_id);
CREATE UNIQUE INDEX waitlist_entries_hold ON ticketing.waitlist_entries (hold_id)
    WHERE hold_id IS NOT NULL;

-- Offer the tier's free seats to its waiting entries, first come first served: each
-- entry whose quantity fits the seats still free is offered a hold of that many seats
-- until the event's offer window ends; an entry that does not fit is skipped and keeps
-- its place. An entry whose person already holds seats of the tier (one active hold per
-- person and tier) is skipped the same way. The caller's transaction is the one that
-- freed the seats, so nothing else can take them in between. Locks the tier (FOR NO KEY
-- UPDATE, the lock of a counter update), then the waiting entries, then inserts holds:
-- the lock order of `db/holds.py`. Returns the entries offered and the announcement of
-- the tier's new counters (NULL when nothing was offered).
CREATE FUNCTION ticketing.offer_freed_seats(
    p_tier uuid,
    p_now timestamptz,
    p_channel text,
    OUT offered uuid[],
    OUT notice text)
LANGUAGE plpgsql AS $$
DECLARE
    tier ticketing.ticket_tiers;
    minutes integer;
    free integer;
    taken integer := 0;
    taken_demand integer := 0;
    entry ticketing.waitlist_entries;
    new_hold uuid;
BEGIN
    offered := '{}';
    SELECT * INTO tier FROM ticketing.ticket_tiers WHERE id = p_tier FOR NO KEY UPDATE;
    IF NOT FOUND OR tier.waitlist_demand = 0 THEN
        RETURN;
    END IF;
    free := tier.quantity - tier.reserved_quantity - tier.issued_quantity;
    IF free <= 0 THEN
        RETURN;
    END IF;
    SELECT e.waitlist_offer_minutes INTO minutes FROM events.events e WHERE e.id = tier.event_id;
    FOR entry IN
        SELECT * FROM ticketing.waitlist_entries w
         WHERE w.tier_id = p_tier AND w.status = 'waiting'
         ORDER BY w.joined_at, w.id
           FOR UPDATE
    LOOP
        EXIT WHEN free = 0;
        CONTINUE WHEN entry.quantity > free;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM ticketing.ticket_holds h
             WHERE h.tier_id = p_tier AND h.user_id = entry.user_id AND h.status = 'active');
        INSERT INTO ticketing.ticket_holds
               (tier_id, event_id, user_id, quantity, expires_at, created_at, updated_at)
        VALUES (p_tier, tier.event_id, entry.user_id, entry.quantity,
                p_now + make_interval(mins => minutes), p_now, p_now)
     RETURNING id INTO new_hold;
        UPDATE ticketing.waitlist_entries
           SET status = 'offered', hold_id = new_hold, offered_at = p_now, updated_at = p_now
         WHERE id = entry.id;
        free := free - entry.quantity;
        taken := taken + entry.quantity;
        offered := offered || entry.id;
    END LOOP;
    IF taken = 0 THEN
        RETURN;
    END IF;
    UPDATE ticketing.ticket_tiers t
       SET reserved_quantity = t.reserved_quantity + taken,
           waitlist_demand = t.waitlist_demand - taken
     WHERE t.id = p_tier
 RETURNING t.* INTO tier;
    notice := ticketing.announce_tier(p_channel, tier);
END;
$$;

-- `ticketing.reserve_hold` as in 0010, with the waitlist's rules:
-- - the public takes only seats the waiting entries do not need (`waitlist_demand`,
--   read from the locked row by the conditional update);
-- - seats freed here (lapsed holds released, a hold made smaller) are offered to the
--   waitlist at once (`offers`: the entries offered);
-- - a person's waitlist offer is not resized by a public hold (OFFER_HELD): it is
--   checked out as it is, or given up by leaving the waitlist.
DROP FUNCTION ticketing.reserve_hold(uuid, uuid, integer, timestamptz, timestamptz, text);

CREATE FUNCTION ticketing.reserve_hold(
    p_tier uuid,
    p_user uuid,
    p_quantity integer,
    p_now timestamptz,
    p_expires_at timestamptz,
    p_channel text,
    OUT outcome text,
    OUT seats_free integer,
    OUT order_limit integer,
    OUT sales_open_at timestamptz,
    OUT notices text[],
    OUT offers uuid[],
    OUT hold ticketing.ticket_holds)
LANGUAGE plpgsql AS $$
DECLARE
    ctx record;
    tier ticketing.ticket_tiers;
    own ticketing.ticket_holds;
    has_own boolean := false;
    held integer := 0;
    delta integer;
    taken boolean := false;
    notice text;
    given record;
BEGIN
    notices := '{}';
    offers := '{}';

    -- 1. The unlocked read (see 0010 for why "lapsed" is a count).
    SELECT t.quantity - t.reserved_quantity - t.issued_quantity AS free,
           t.waitlist_demand AS demand,
           t.event_id, t.status, t.max_per_order, t.sales_start_at, t.sales_end_at,
           e.status AS event_status,
           h.id AS hold_id, h.quantity AS hold_quantity, h.order_id AS hold_order_id,
           h.expires_at AS hold_expires_at,
           EXISTS (SELECT 1 FROM ticketing.waitlist_entries w WHERE w.hold_id = h.id)
               AS hold_is_offer,
           (SELECT count(*) FROM ticketing.ticket_holds g
             WHERE g.tier_id = t.id AND g.status = 'active' AND g.quantity > 0
               AND g.expires_at <= p_now) > 0 AS lapsed
      INTO ctx
      FROM ticketing.ticket_tiers t
      JOIN events.events e ON e.id = t.event_id
      LEFT JOIN ticketing.ticket_holds h
             ON h.tier_id = t.id AND h.user_id = p_user AND h.status = 'active'
     WHERE t.id = p_tier;
    IF NOT FOUND THEN
        outcome := 'TIER_NOT_FOUND';
        RETURN;
    END IF;
    IF ctx.event_status <> 'published' THEN
        outcome := 'EVENT_NOT_PUBLISHED';
        RETURN;
    END IF;
    IF ctx.status = 'closed' THEN
        outcome := 'SALES_CLOSED';
        RETURN;
    END IF;
    IF ctx.sales_start_at IS NOT NULL AND p_now < ctx.sales_start_at THEN
        outcome := 'SALES_NOT_OPEN';
        sales_open_at := ctx.sales_start_at;
        RETURN;
    END IF;
    IF ctx.sales_end_at IS NOT NULL AND p_now >= ctx.sales_end_at THEN
        outcome := 'SALES_ENDED';
        RETURN;
    END IF;
    IF p_quantity > ctx.max_per_order THEN
        outcome := 'MAX_PER_ORDER_EXCEEDED';
        order_limit := ctx.max_per_order;
        RETURN;
    END IF;
    IF ctx.hold_order_id IS NOT NULL THEN
        outcome := 'HOLD_IN_CHECKOUT';
        RETURN;
    END IF;
    IF ctx.hold_is_offer AND ctx.hold_expires_at > p_now THEN
        outcome := 'OFFER_HELD';
        RETURN;
    END IF;

    -- 2. Sold out (for the public) without a lock.
    IF ctx.hold_id IS NOT NULL AND ctx.hold_expires_at > p_now THEN
        held := ctx.hold_quantity;
    END IF;
    IF p_quantity - held > greatest(ctx.free - ctx.demand, 0) AND NOT ctx.lapsed THEN
        outcome := 'SOLD_OUT';
        seats_free := greatest(ctx.free - ctx.demand, 0);
        RETURN;
    END IF;

    -- 3. Locked: the tier, then waitlist entries (when offering), then holds.
    held := 0;
    IF ctx.hold_id IS NOT NULL THEN
        PERFORM 1 FROM ticketing.ticket_tiers WHERE id = p_tier FOR UPDATE;
        SELECT * INTO own FROM ticketing.ticket_holds
         WHERE tier_id = p_tier AND user_id = p_user AND status = 'active'
           FOR UPDATE;
        has_own := FOUND;
        IF has_own AND own.order_id IS NOT NULL THEN
            outcome := 'HOLD_IN_CHECKOUT';
            RETURN;
        END IF;
        IF has_own AND own.expires_at > p_now AND EXISTS (
            SELECT 1 FROM ticketing.waitlist_entries w WHERE w.hold_id = own.id
        ) THEN
            outcome := 'OFFER_HELD';
            RETURN;
        END IF;
        IF has_own AND own.expires_at <= p_now THEN
            has_own := false;  -- theirs lapsed: release it (and the tier's others), start anew
            notice := ticketing.expire_lapsed_holds(p_tier, p_now, p_channel);
            IF notice IS NOT NULL THEN
                notices := notices || notice;
                SELECT * INTO given FROM ticketing.offer_freed_seats(p_tier, p_now, p_channel);
                offers := offers || given.offered;
                IF given.notice IS NOT NULL THEN
                    notices := notices || given.notice;
                END IF;
            END IF;
        END IF;
        IF has_own THEN
            held := own.quantity;
        END IF;
    END IF;

    delta := p_quantity - held;
    IF delta > 0 THEN
        UPDATE ticketing.ticket_tiers t
           SET reserved_quantity = t.reserved_quantity + delta
         WHERE t.id = p_tier
           AND t.quantity - t.reserved_quantity - t.issued_quantity - t.waitlist_demand >= delta
     RETURNING t.* INTO tier;
        taken := FOUND;
        IF NOT taken AND (
            SELECT count(*) FROM ticketing.ticket_holds g
             WHERE g.tier_id = p_tier AND g.status = 'active' AND g.quantity > 0
               AND g.expires_at <= p_now
        ) > 0 THEN
            notice := ticketing.expire_lapsed_holds(p_tier, p_now, p_channel);
            IF notice IS NOT NULL THEN
                notices := notices || notice;
                SELECT * INTO given FROM ticketing.offer_freed_seats(p_tier, p_now, p_channel);
                offers := offers || given.offered;
                IF given.notice IS NOT NULL THEN
                    notices := notices || given.notice;
                END IF;
                UPDATE ticketing.ticket_tiers t
                   SET reserved_quantity = t.reserved_quantity + delta
                 WHERE t.id = p_tier
                   AND t.quantity - t.reserved_quantity - t.issued_quantity
                       - t.waitlist_demand >= delta
             RETURNING t.* INTO tier;
                taken := FOUND;
            END IF;
        END IF;
        IF NOT taken THEN
            outcome := 'SOLD_OUT';
            SELECT greatest(t.quantity - t.reserved_quantity - t.issued_quantity
                            - t.waitlist_demand, 0)
              INTO seats_free
              FROM ticketing.ticket_tiers t WHERE t.id = p_tier;
            RETURN;  -- any release (and offer) of lapsed holds above commits with it
        END IF;
        notices := notices || ticketing.announce_tier(p_channel, tier);
    ELSIF delta < 0 THEN
        UPDATE ticketing.ticket_tiers t
           SET reserved_quantity = t.reserved_quantity + delta
         WHERE t.id = p_tier
     RETURNING t.* INTO tier;
        notices := notices || ticketing.announce_tier(p_channel, tier);
    END IF;

    IF has_own THEN
        UPDATE ticketing.ticket_holds h
           SET quantity = p_quantity, expires_at = p_expires_at, updated_at = p_now
         WHERE h.id = own.id
     RETURNING h.* INTO hold;
    ELSE
        INSERT INTO ticketing.ticket_holds
               (tier_id, event_id, user_id, quantity, expires_at, created_at, updated_at)
        VALUES (p_tier, ctx.event_id, p_user, p_quantity, p_expires_at, p_now, p_now)
     RETURNING * INTO hold;
    END IF;
    IF delta < 0 THEN  -- the hold shrank: its seats go to the waitlist first
        SELECT * INTO given FROM ticketing.offer_freed_seats(p_tier, p_now, p_channel);
        offers := offers || given.offered;
        IF given.notice IS NOT NULL THEN
            notices := notices || given.notice;
        END IF;
    END IF;
    outcome := 'held';
END;
$$;
