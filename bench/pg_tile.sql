-- pgbench script: one tile read, the original design's query (prepared).
\set x random(0, 255)
\set y random(0, 255)
SELECT tile_data FROM hunt_tile_mv WHERE hunt_id = 1 AND x = :x AND y = :y;
