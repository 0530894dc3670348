-- pgbench script: the original design's chest claim (NOTES-deps.md), one claim per
-- transaction. Variables: -D zones=N (chests are spread over zones 1..N).
\set zone random(1, :zones)
\set player random(1, 1000000)
BEGIN;
SELECT id AS chest FROM chests WHERE zone = :zone AND found = false ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE chests SET found = true, found_by = :player, found_at = now() WHERE id = :chest AND found = false;
END;
