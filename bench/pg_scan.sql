-- pgbench script: one scan row inserted per transaction (autocommit, durable).
\set player random(1, 2000)
\set code random(1, 500)
INSERT INTO scans (hunt_id, player_id, code_id, points, scanned_at) VALUES (1, :player, :code, 10, now());
