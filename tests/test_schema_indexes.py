"""Every foreign key has an index that leads with its columns.

Without one, deleting (or re-keying) a referenced row makes PostgreSQL scan the whole
referencing table once per row: deleting a few hundred profiles beside 50,000 posts ran
for minutes. A partial index counts only when its predicate is `<column> IS NOT NULL`
(the lookups a foreign key makes never match NULL), so an index limited to live rows,
say, does not cover the key.
"""

from __future__ import annotations

import asyncpg

# Foreign keys allowed to stay without an index of their own, with the reason.
ALLOWED: dict[str, str] = {}

UNINDEXED_FOREIGN_KEYS = """
WITH fk AS (
    SELECT c.conname, c.conrelid, c.conkey,
           c.conrelid::regclass::text AS table_name,
           (SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
               AS columns
      FROM pg_constraint c
      JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
)
SELECT fk.table_name || '(' || array_to_string(fk.columns, ', ') || ')' AS key
  FROM fk
 WHERE NOT EXISTS (
        SELECT 1
          FROM pg_index i
         WHERE i.indrelid = fk.conrelid
           AND (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] @> fk.conkey
           AND (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] <@ fk.conkey
           AND (i.indpred IS NULL
                OR pg_get_expr(i.indpred, i.indrelid)
                   = '(' || fk.columns[1] || ' IS NOT NULL)'))
 ORDER BY 1
"""


async def unindexed_foreign_keys(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["key"] for row in await conn.fetch(UNINDEXED_FOREIGN_KEYS)]
    finally:
        await conn.close()


async def test_every_foreign_key_has_a_leading_index(database_url: str) -> None:
    missing = [key for key in await unindexed_foreign_keys(database_url) if key not in ALLOWED]
    assert missing == [], f"foreign keys without a leading index: {missing}"


async def test_the_check_sees_a_missing_index(database_url: str) -> None:
    """Control: a new foreign key without an index is reported."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE public.probe (id int PRIMARY KEY,"
            " owner uuid REFERENCES users.profiles (id))"
        )
    finally:
        await conn.close()
    assert "probe(owner)" in await unindexed_foreign_keys(database_url)
