-- Manual approval of a waitlist: the organizer decides who gets in line.
--
-- An event's `waitlist_approval` is 'automatic' (a join is in line at once, as before)
-- or 'manual': a join is 'pending_approval' until the organizer approves it (it becomes
-- 'waiting', keeping its `joined_at`, so its place is by join time) or declines it
-- ('declined', final). A pending entry is not in line: it is not counted in its tier's
-- `waitlist_demand` and `ticketing.offer_freed_seats` (which walks 'waiting' entries
-- only) never offers it seats, so it never holds anything back from the public.
-- Switching an event back to 'automatic' leaves its pending entries pending: they were
-- asked for under manual review, and the organizer still approves or declines them.

ALTER TABLE events.events
    ADD COLUMN waitlist_approval text NOT NULL DEFAULT 'automatic'
        CHECK (waitlist_approval IN ('automatic', 'manual'));

ALTER TABLE ticketing.waitlist_entries DROP CONSTRAINT waitlist_entries_status_check;
ALTER TABLE ticketing.waitlist_entries ADD CONSTRAINT waitlist_entries_status_check
    CHECK (status IN ('pending_approval', 'waiting', 'offered', 'left', 'declined'));

-- A person has at most one entry per tier that is pending or in line.
DROP INDEX ticketing.waitlist_entries_one_waiting;
CREATE UNIQUE INDEX waitlist_entries_one_waiting ON ticketing.waitlist_entries (tier_id, user_id)
    WHERE status IN ('pending_approval', 'waiting');
