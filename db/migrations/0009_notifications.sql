-- Notifications: the in-app inbox, each user's preferences, and one outbox for every
-- delivery beyond the inbox (email, push, SMS) and for digest emails. Which lane a
-- category is in, and the default switches, are owned by db/notification_rules.py.

CREATE SCHEMA IF NOT EXISTS notify;

-- Handles for mentions (@handle): unique whatever their case.
ALTER TABLE users.profiles ADD COLUMN handle text
    CHECK (handle IS NULL OR handle ~ '^[A-Za-z0-9_]{3,30}$');
CREATE UNIQUE INDEX profiles_handle_key ON users.profiles (lower(handle));

-- One row per user who changed anything; absent means every default.
CREATE TABLE notify.preferences (
    user_id          uuid PRIMARY KEY REFERENCES users.profiles (id),
    -- Overrides of the channel x category switches: {"email": {"social": false}, ...}.
    switches         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(switches) = 'object'),
    quiet_start      time,
    quiet_end        time,
    time_zone        text NOT NULL DEFAULT 'UTC',
    daily_cap        integer CHECK (daily_cap IS NULL OR daily_cap BETWEEN 1 AND 1000),
    digest           text NOT NULL DEFAULT 'off' CHECK (digest IN ('off', 'daily', 'weekly')),
    digest_weekday   smallint NOT NULL DEFAULT 1 CHECK (digest_weekday BETWEEN 1 AND 7),  -- ISO
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

CREATE TABLE notify.notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- newest first, and cursors
    user_id     uuid NOT NULL REFERENCES users.profiles (id),
    category    text NOT NULL,
    lane        text NOT NULL CHECK (lane IN ('priority', 'social', 'system')),
    title       text NOT NULL CHECK (length(title) <= 200),
    body        text NOT NULL DEFAULT '' CHECK (length(body) <= 2000),
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text NOT NULL CHECK (length(dedupe_key) <= 200),
    batch       bigint NOT NULL,  -- one per enqueue: what the live inbox fans out
    in_app      boolean NOT NULL DEFAULT true,  -- false: the user switched the inbox off
    created_at  timestamptz NOT NULL,
    read_at     timestamptz,
    UNIQUE (user_id, dedupe_key)
);
CREATE SEQUENCE notify.batches;
CREATE INDEX notifications_user_seq ON notify.notifications (user_id, seq DESC) WHERE in_app;
CREATE INDEX notifications_unread ON notify.notifications (user_id, lane)
    WHERE read_at IS NULL AND in_app;
CREATE INDEX notifications_batch ON notify.notifications (batch);

-- Every delivery beyond the inbox, written in the enqueueing transaction, and every
-- digest email. Email rows are sent by the outbox job; push and SMS rows without a
-- provider are recorded 'skipped' (reason 'no provider'), never 'sent'.
CREATE TABLE notify.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users.profiles (id),
    channel          text NOT NULL CHECK (channel IN ('email', 'push', 'sms')),
    notification_id  uuid REFERENCES notify.notifications (id),
    digest_period    text,  -- e.g. 'daily:2026-11-30', 'weekly:2026-W48'
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'skipped', 'capped', 'dead')),
    reason           text,  -- why skipped, capped or dead; why deferred
    local_day        date NOT NULL,  -- the recipient's day when enqueued (the daily cap)
    counts_to_cap    boolean NOT NULL DEFAULT false,
    due_at           timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    CHECK ((notification_id IS NULL) <> (digest_period IS NULL)),
    UNIQUE (notification_id, channel),
    UNIQUE (user_id, digest_period)
);
CREATE INDEX outbox_due ON notify.outbox (due_at) WHERE status = 'pending';
CREATE INDEX outbox_cap ON notify.outbox (user_id, local_day) WHERE counts_to_cap;
CREATE INDEX outbox_dead ON notify.outbox (created_at) WHERE status = 'dead';
