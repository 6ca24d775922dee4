-- Each event's feed. `seq` orders the feed and backs its cursors: unique and
-- monotonically assigned, so keyset pagination has no ties.
CREATE SCHEMA IF NOT EXISTS feed;

CREATE TABLE feed.posts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id    uuid NOT NULL REFERENCES events.events (id),
    author_id   uuid NOT NULL REFERENCES users.profiles (id),
    text        text NOT NULL DEFAULT '' CHECK (length(text) <= 2000),
    media       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(media) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    deleted_by  uuid
);
CREATE INDEX posts_event_feed ON feed.posts (event_id, seq DESC) WHERE deleted_at IS NULL;
CREATE INDEX posts_home_feed ON feed.posts (seq DESC) WHERE deleted_at IS NULL;
