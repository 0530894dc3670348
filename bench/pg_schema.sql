-- Anchor schema for pgbench (bench/run.sh loads it with -v chests=N -v zones=N).
CREATE TABLE chests (
    id       bigint PRIMARY KEY,
    zone     int NOT NULL,
    found    boolean NOT NULL DEFAULT false,
    found_by bigint,
    found_at timestamptz
);
-- chests are created zone by zone (as a hunt definition creates them): a zone is contiguous
INSERT INTO chests (id, zone) SELECT g, 1 + g * :zones / :chests FROM generate_series(0, :chests - 1) AS g;
CREATE INDEX chests_zone_open ON chests (zone) WHERE NOT found;
CREATE TABLE scans (
    id         bigserial PRIMARY KEY,
    hunt_id    int NOT NULL,
    player_id  bigint NOT NULL,
    code_id    int NOT NULL,
    points     int NOT NULL,
    scanned_at timestamptz NOT NULL
);
CREATE INDEX scans_player ON scans (hunt_id, player_id);
VACUUM ANALYZE;
