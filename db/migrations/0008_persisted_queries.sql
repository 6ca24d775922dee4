-- Persisted GraphQL documents, keyed by the SHA-256 of their exact text (hex, as
-- Apollo's persisted-queries link sends it). `registered` rows are the allow-list,
-- written at deploy by `liventix persisted-queries register`; `automatic` rows are
-- stored by the API when a client sends a hash with its query (APQ) and are a bounded
-- cache: the oldest are dropped beyond PERSISTED_QUERY_MAX_STORED.

CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE api.persisted_queries (
    hash            text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    query           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('automatic', 'registered')),
    operation_name  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    registered_at   timestamptz,
    -- A hash can only ever answer with the document it is the hash of.
    CONSTRAINT persisted_queries_hash_of_query
        CHECK (hash = encode(sha256(convert_to(query, 'UTF8')), 'hex')),
    CONSTRAINT persisted_queries_registered_at
        CHECK ((kind = 'registered') = (registered_at IS NOT NULL))
);

-- The trim of automatic rows walks them newest first.
CREATE INDEX persisted_queries_automatic_age
    ON api.persisted_queries (created_at DESC, hash DESC) WHERE kind = 'automatic';
