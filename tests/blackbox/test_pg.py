#!/usr/bin/env python3
"""Black-box tests of the PostgreSQL store (API.md "Several nodes on PostgreSQL", the
`--store postgres://` part): the real binary on a fresh database of a throwaway server
(VELTRIX_TEST_PG_URL when set, as tests/run_all.sh does; otherwise this file starts its own
with tests/pg/pgtmp.sh, and a server that does not start fails every test, never skips).

- A hunt, players, scans, an item, chest opens, an idempotent replay and published tiles
  survive a restart: the digest, the leaderboard, /me and the tiles are the same before
  and after, the rows are in PostgreSQL (schema veltrix) and the data directory holds no
  SQLite store; the password of the URL shows in no line the server writes.
- The server ending veltrix's connections (a restart of PostgreSQL, a network cut) costs
  a delay, not a write: the log retries until the store answers on a new connection.
- A store that cannot be opened (a wrong password, nobody listening, a malformed URL)
  stops the server at start with exit code 2 and one line on stderr that names the
  problem and never the password."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgutil  # noqa: E402
import vx  # noqa: E402
from vx import check, eq, true, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HUNT = "pgh"


pg_server, psql, fresh_db = pgutil.server, pgutil.psql, pgutil.fresh_db


def pg_def():
    return vx.basic_def(
        name="on postgres", width=4, height=4,
        codes=[{"id": "c-%02d" % i, "points": i + 1, "x": i % 4, "y": i // 4} for i in range(12)],
        items=[{"id": "key", "x": 1, "y": 1, "quantity": 10}],
        zones=[{"id": "z", "x": 0, "y": 0, "w": 4, "h": 4,
                "chests": [{"id": "vault", "points": 40, "loot": ["gem"], "requires": "key"}],
                "chest_range": {"prefix": "z-", "count": 30, "points": 3, "loot": ["coin"]}}])


def state(c, players):
    """Everything compared across the restart."""
    me = {}
    for pid, tok in players:
        m = vx.me(c, HUNT, tok)
        me[pid] = (m.get("points"), sorted(m["scanned"]), sorted(m["collected"]), sorted(m["opened"]))
    tiles = {}
    for xy in ((0, 0), (1, 0), (3, 3)):
        r = c.req("GET", "/tiles/%s/%d/%d" % ((HUNT,) + xy))
        check(r, 200, what="tile %s" % (xy,))
        tiles[xy] = (r.raw, r.headers.get("content-type"), r.headers.get("etag"))
    return {"digest": vx.digest(c, HUNT), "leaderboard": vx.leaderboard(c, HUNT), "me": me,
            "tiles": tiles}


def with_password(url, password):
    """url with a password in its user info (the test server trusts loopback: it is not
    checked, but it must not show in any line the server writes)."""
    u = urllib.parse.urlsplit(url)
    netloc = "%s:%s@%s:%d" % (u.username or "postgres", password, u.hostname, u.port or 5432)
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


@test
def state_survives_a_restart():
    url = fresh_db()
    s = vx.Server(args=["--store", with_password(url, "Unchecked-Pw-5")])
    s.start()
    c = s.client()
    vx.put_hunt(c, HUNT, pg_def())
    pay = vx.codes_of(c, HUNT)
    players = []
    for i in range(3):
        pid, tok, refresh = vx.new_player(c, "Pg player %d" % i)
        players.append((pid, tok))
        for k in range(i * 3, i * 3 + 4):
            check(vx.scan(c, HUNT, tok, pay["c-%02d" % k]), 200, what="scan c-%02d" % k)
        check(vx.open_zone(c, HUNT, tok, "z"), 200, what="open a chest")
    tok0 = players[0][1]
    check(vx.collect(c, HUNT, tok0, "key"), 200, what="collect the key")
    key = {"Idempotency-Key": "pg-replay-1"}
    first = vx.scan(c, HUNT, tok0, pay["c-11"], headers=key)
    check(first, 200, what="scan with an Idempotency-Key")
    for xy, data in (((0, 0), b"\x89PNG tile a"), ((1, 0), b"\x89PNG tile b"), ((3, 3), b"tile c")):
        vx.put_tile(c, HUNT, xy[0], xy[1], data, ctype="image/png" if data[0] == 0x89 else "image/webp")
    eq(vx.publish(c, HUNT), 1, "first map version")
    vx.put_tile(c, HUNT, 1, 0, b"\x89PNG tile b2")
    eq(vx.publish(c, HUNT), 2, "second map version")
    before = state(c, players)
    true(before["digest"][0] > 10, "events in the log: %s" % (before["digest"],))
    # the rows are in PostgreSQL, not in a SQLite file of the data directory
    n = int(psql(url, "SELECT count(*) FROM veltrix.events WHERE hunt = '%s'" % HUNT))
    eq(n, before["digest"][0], "events of %s in veltrix.events" % HUNT)
    true(not os.path.exists(os.path.join(s.data, "veltrix.db")), "a veltrix.db in the data dir")
    true(int(psql(url, "SELECT count(*) FROM veltrix.players")) >= 3, "players in PostgreSQL")

    s.restart()
    c = s.client()
    after = state(c, players)
    for k in ("digest", "leaderboard", "me", "tiles"):
        eq(after[k], before[k], "%s after a restart" % k)
    again = vx.scan(c, HUNT, tok0, pay["c-11"], headers=key)
    check(again, 200, what="the idempotent replay after a restart")
    eq(again.body, first.body, "the replayed answer")
    eq(vx.digest(c, HUNT), before["digest"], "digest after the replay")
    # the log goes on from where it was
    pid, tok, _ = vx.new_player(c, "late")
    check(vx.scan(c, HUNT, tok, pay["c-00"]), 200, what="a scan after the restart")
    eq(vx.digest(c, HUNT)[0], before["digest"][0] + 1, "seq after one more scan")
    s.stop()
    err = s.stderr_text()
    true("postgres:***@" in err, "the store's URL is shown redacted: %s" % vx.short(err))
    true("Unchecked-Pw-5" not in err + s.stdout_text(), "the password is in the server's output")


@test
def dropped_connections_are_made_again():
    """The server ends every connection of veltrix (as a restart of PostgreSQL or a
    network cut would): the next write is retried by the log until the store answers
    again and is then acknowledged; /healthz comes back to 200; nothing is lost."""
    url = fresh_db()
    db = urllib.parse.urlsplit(url).path.lstrip("/")
    s = vx.Server(args=["--store", url])
    s.start()
    c = s.client()
    vx.put_hunt(c, HUNT, pg_def())
    pay = vx.codes_of(c, HUNT)
    _, tok, _ = vx.new_player(c)
    check(vx.scan(c, HUNT, tok, pay["c-00"]), 200)
    seq0 = vx.digest(c, HUNT)[0]
    kill = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
            % db)
    true(int(psql(pg_server(), kill)) >= 2, "veltrix's connections were ended")
    check(vx.scan(c, HUNT, tok, pay["c-01"]), 200, what="a scan after the connections were ended")
    eq(vx.digest(c, HUNT)[0], seq0 + 1, "seq after the scan")
    for _ in range(100):  # the reader reconnects at most once a second
        if vx.healthz(s.port)[0] == 200:
            break
        time.sleep(0.1)
    eq(vx.healthz(s.port)[0], 200, "/healthz after the store came back")
    d = vx.digest(c, HUNT)
    s.restart()
    eq(vx.digest(s.client(), HUNT), d, "digest after a restart")
    true("reconnected" in s.stderr_text(), "the server says it reconnected")


def refused(url, want, secret):
    """Starts veltrix on url, which must fail: exit 2, one stderr line with `want`, no secret."""
    data = tempfile.mkdtemp(prefix="vx-bb-")
    cmd = [vx.BIN, "serve", "--listen", "127.0.0.1:%d" % vx.free_port(), "--data", data,
           "--admin-key", vx.ADMIN_KEY, "--store", url]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s: the server neither started nor exited within 60 s" % want)
    err = r.stderr.decode(errors="replace")
    lines = err.strip().splitlines()
    eq(r.returncode, 2, "exit code for %s (stderr: %s)" % (want, vx.short(err)))
    eq(len(lines), 1, "stderr lines for %s: %s" % (want, vx.short(err)))
    true(want in err, "stderr for %s does not say it: %s" % (want, vx.short(err)))
    true(secret not in err, "the password is in the message: %s" % vx.short(err))
    true(lines[0].startswith("veltrix: store:"), "the line: %s" % vx.short(err))
    true(not os.path.exists(os.path.join(data, "veltrix.db")), "a SQLite store was made instead")
    shutil.rmtree(data, ignore_errors=True)


@test
def a_store_that_cannot_be_opened_exits_2():
    base = pg_server()
    port = urllib.parse.urlsplit(base).port
    # pgtmp.sh's pg_hba.conf: the role veltrix_pw alone must give its password
    psql(base, "DROP ROLE IF EXISTS veltrix_pw")
    psql(base, "CREATE ROLE veltrix_pw LOGIN PASSWORD 'Right-pw-77'")
    try:
        refused("postgres://veltrix_pw:Wrong-pw-42@127.0.0.1:%d/postgres" % port,
                "password authentication failed", "Wrong-pw-42")
    finally:
        psql(base, "DROP ROLE IF EXISTS veltrix_pw")
    refused("postgres://vx:Secret-pw-1@127.0.0.1:1/db", "Connection refused", "Secret-pw-1")
    refused("postgres://vx:Secret-%zz-2@127.0.0.1/db", "malformed postgres url", "Secret")
    refused("postgres://vx:Secret-pw-3@[::1/db", "malformed postgres url", "Secret-pw-3")
    refused("postgres://vx@127.0.0.1:%d/postgres?password=Secret-pw-4&bogus=1" % port,
            "malformed postgres url", "Secret-pw-4")


if __name__ == "__main__":
    vx.run_all()
