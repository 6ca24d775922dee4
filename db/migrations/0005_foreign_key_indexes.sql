-- Every foreign key gets an index that leads with its columns (tests/test_schema_indexes.py
-- keeps it so). Without one, deleting a referenced row scans the referencing table once
-- per row, and a user's holds are found by scanning every hold. Partial indexes limited to
-- live rows (posts not deleted, active holds) do not serve the key's lookups.
CREATE INDEX posts_author ON feed.posts (author_id);
CREATE INDEX posts_event ON feed.posts (event_id);
CREATE INDEX ticket_holds_user ON ticketing.ticket_holds (user_id);
CREATE INDEX ticket_holds_event ON ticketing.ticket_holds (event_id);
CREATE INDEX ticket_holds_tier ON ticketing.ticket_holds (tier_id);
CREATE INDEX order_items_tier ON ticketing.order_items (tier_id);
CREATE INDEX tickets_tier ON ticketing.tickets (tier_id);

-- Media kinds are stored lower-case ("image", "video"), as `db.feed.MediaItem` writes
-- them. An earlier demo seed wrote "IMAGE", which the API could not read back: repair
-- such rows, then let the database refuse any other kind.
UPDATE feed.posts p
   SET media = (SELECT jsonb_agg(CASE WHEN item ? 'kind'
                                      THEN jsonb_set(item, '{kind}', to_jsonb(lower(item->>'kind')))
                                      ELSE item END
                                 ORDER BY ord)
                  FROM jsonb_array_elements(p.media) WITH ORDINALITY AS m(item, ord))
 WHERE jsonb_path_exists(p.media, '$[*] ? (@.kind != "image" && @.kind != "video")');
ALTER TABLE feed.posts ADD CONSTRAINT posts_media_kind
    CHECK (NOT jsonb_path_exists(media, '$[*] ? (@.kind != "image" && @.kind != "video")'));
