-- The original design's tile table: 65,536 tiles of 1,200 bytes (a 256×256 map), one
-- hunt, primary key (hunt_id, x, y). Loaded by bench/run.sh when the tiles workload runs.
DROP TABLE IF EXISTS hunt_tile_mv;
CREATE TABLE hunt_tile_mv (hunt_id int NOT NULL, x int NOT NULL, y int NOT NULL,
                           tile_data bytea NOT NULL, PRIMARY KEY (hunt_id, x, y));
INSERT INTO hunt_tile_mv
SELECT 1, x, y, decode(repeat(md5(x || ':' || y), 75), 'hex')
FROM generate_series(0, 255) AS x, generate_series(0, 255) AS y;
VACUUM ANALYZE hunt_tile_mv;
