-- A buyer's hold in one statement: `ticketing.reserve_hold`.
--
-- Part of the capacity module `db/holds.py` (its only caller, `db.holds.reserve`, and
-- where its lock order is written): the rules below are that module's, moved next to
-- the rows so that a hold costs one round trip and the tier's row lock is held for the
-- microseconds the function runs, not across client round trips and whatever else the
-- client's event loop is doing in between. Called as a statement of its own (no
-- BEGIN/COMMIT around it), it commits when it returns, releasing the lock at once.

-- A tier's active holds by expiry: "has any hold of this tier lapsed?" (an index range
-- that is empty unless some did) in the read of every reserve, and the release of
-- lapsed holds. `quantity > 0` is true of every row (a CHECK says so); it is in the
-- predicate so that only the queries that say it, those two, can use this index.
-- Without it, the lookup of the buyer's own hold (tier and user) could scan a tier's
-- holds through this index, a little smaller than the unique one, whenever the
-- statistics are stale, which is what they are during a flash sale: holds come faster
-- than autovacuum.
CREATE INDEX ticket_holds_tier_lapse
    ON ticketing.ticket_holds (tier_id, expires_at) WHERE status = 'active' AND quantity > 0;

-- Announce a tier's counters as `db.notify.announce_tier` does: `pg_notify` on
-- `p_channel` (`db.channels.NOTIFY_CHANNEL`) with exactly the JSON that
-- `db.channels.TierMessage.encode` makes and orjson writes (the same bytes:
-- tests/test_reserve_hold.py compares them). Returns the payload it sent.
CREATE FUNCTION ticketing.announce_tier(p_channel text, t ticketing.ticket_tiers)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    payload text := format(
        '{"ch":"tier:%s","op":"tier","tier_id":"%s","quantity":%s,"reserved":%s,'
        '"issued":%s,"version":%s}',
        t.event_id, t.id, t.quantity, t.reserved_quantity, t.issued_quantity, t.version);
BEGIN
    PERFORM pg_notify(p_channel, payload);
    RETURN payload;
END;
$$;

-- Release the lapsed holds of one tier (active, expired as of `p_now`) and give their
-- seats back: the tier FOR UPDATE first, then its holds, then its counters; announced
-- like every change of counters. Returns the payload announced, or NULL when no hold
-- had lapsed. (`db.holds.expire_tier_holds` is the same release, for callers in Python.)
CREATE FUNCTION ticketing.expire_lapsed_holds(p_tier uuid, p_now timestamptz, p_channel text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    tier ticketing.ticket_tiers;
BEGIN
    PERFORM 1 FROM ticketing.ticket_tiers WHERE id = p_tier FOR UPDATE;
    WITH gone AS (
        UPDATE ticketing.ticket_holds
           SET status = 'expired', ended_at = p_now, updated_at = p_now
         WHERE tier_id = p_tier AND status = 'active' AND quantity > 0 AND expires_at <= p_now
     RETURNING quantity
    ), freed AS (SELECT coalesce(sum(quantity), 0)::int AS n FROM gone)
    UPDATE ticketing.ticket_tiers t
       SET reserved_quantity = t.reserved_quantity - freed.n
      FROM freed
     WHERE t.id = p_tier AND freed.n > 0
 RETURNING t.* INTO tier;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN ticketing.announce_tier(p_channel, tier);
END;
$$;

-- Hold `p_quantity` seats of tier `p_tier` for user `p_user` until `p_expires_at`, as
-- of `p_now` (the application's clock). The user's active hold on the tier, if any, is
-- resized to `p_quantity` (only the difference is taken or given back) and its expiry
-- refreshed; otherwise a new hold is inserted.
--
-- `outcome` is 'held' (`hold` is the hold as written) or why not, having written
-- nothing but possibly the release of lapsed holds: TIER_NOT_FOUND,
-- EVENT_NOT_PUBLISHED, SALES_CLOSED, SALES_NOT_OPEN (`sales_open_at`), SALES_ENDED,
-- MAX_PER_ORDER_EXCEEDED (`order_limit`), HOLD_IN_CHECKOUT, SOLD_OUT (`seats_free`:
-- what is still free). `notices` are the payloads announced, in order (the caller
-- hands them to its own process's subscribers after the commit).
--
-- 1. Read, without locks and in one snapshot: the tier, its event, the user's active
--    hold, whether any hold of the tier has lapsed. Refusals that depend on no counter
--    are answered here.
-- 2. Sold out as of that read and no hold of the tier lapsed: refuse, still without a
--    lock, so once a tier is sold out refusals never queue on its row. Safe: the
--    snapshot is a moment during the call at which the tier had no room for the buyer
--    and no lapsed hold to free, and no hold can newly lapse as of `p_now` (holds are
--    made to expire later).
-- 3. Otherwise lock the tier, then holds (the lock order of `db/holds.py`):
--    - a user with an active hold: the tier FOR UPDATE (as a release takes it), then the
--      hold FOR UPDATE, re-read: the decision is made on locked rows. A hold of theirs
--      that lapsed is released (with the tier's other lapsed holds) and replaced.
--    - everyone else: the conditional update itself locks the tier.
--    Seats are taken by the conditional update, which cannot oversell under READ
--    COMMITTED (it re-checks the row a concurrent writer committed). If it matches
--    nothing, the tier's lapsed holds are released (tier FOR UPDATE first) and it is
--    tried once more; still nothing is SOLD_OUT, and the release commits with it, so a
--    refused buyer leaves no ghost reservation behind. A concurrent insert by the same
--    user violates `ticket_holds_one_active` and aborts the whole statement (the
--    caller starts again and finds the hold to resize).
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
BEGIN
    notices := '{}';

    -- 1. The unlocked read. "Has a hold lapsed?" is asked as a count of the tier's
    -- lapsed holds (usually none), not as EXISTS or min(expires_at): those stop at the
    -- first match, which tempts the planner (guessing a third of the rows pass an
    -- inequality against a parameter, or that the tier owns many holds) to walk a
    -- tier's holds, or every tier's in expiry order, for a match that never comes. A
    -- count reads every match, so the index with the fewest, `ticket_holds_tier_lapse`,
    -- is the one to use whatever the statistics say.
    SELECT t.quantity - t.reserved_quantity - t.issued_quantity AS free,
           t.event_id, t.status, t.max_per_order, t.sales_start_at, t.sales_end_at,
           e.status AS event_status,
           h.id AS hold_id, h.quantity AS hold_quantity, h.order_id AS hold_order_id,
           h.expires_at AS hold_expires_at,
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

    -- 2. Sold out without a lock.
    IF ctx.hold_id IS NOT NULL AND ctx.hold_expires_at > p_now THEN
        held := ctx.hold_quantity;
    END IF;
    IF p_quantity - held > ctx.free AND NOT ctx.lapsed THEN
        outcome := 'SOLD_OUT';
        seats_free := greatest(ctx.free, 0);
        RETURN;
    END IF;

    -- 3. Locked: the tier, then holds.
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
        IF has_own AND own.expires_at <= p_now THEN
            has_own := false;  -- theirs lapsed: release it (and the tier's others), start anew
            notice := ticketing.expire_lapsed_holds(p_tier, p_now, p_channel);
            IF notice IS NOT NULL THEN
                notices := notices || notice;
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
         WHERE t.id = p_tier AND t.quantity - t.reserved_quantity - t.issued_quantity >= delta
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
                UPDATE ticketing.ticket_tiers t
                   SET reserved_quantity = t.reserved_quantity + delta
                 WHERE t.id = p_tier
                   AND t.quantity - t.reserved_quantity - t.issued_quantity >= delta
             RETURNING t.* INTO tier;
                taken := FOUND;
            END IF;
        END IF;
        IF NOT taken THEN
            outcome := 'SOLD_OUT';
            SELECT greatest(t.quantity - t.reserved_quantity - t.issued_quantity, 0)
              INTO seats_free
              FROM ticketing.ticket_tiers t WHERE t.id = p_tier;
            RETURN;  -- any release of lapsed holds above commits with the refusal
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
    outcome := 'held';
END;
$$;
