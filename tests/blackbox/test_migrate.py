#!/usr/bin/env python3
"""Black-box tests of `veltrix migrate --from sqlite:PATH --to postgres://...` (API.md
"Command line"): a game played on the embedded store, moved to a fresh PostgreSQL
database of a throwaway server (VELTRIX_TEST_PG_URL when set, as tests/run_all.sh does;
otherwise this file starts its own with tests/pg/pgtmp.sh, as test_pg.py does, and a
server that does not start fails every test, never skips).

- The game goes on on PostgreSQL: the same digest, leaderboard, /me and tiles; the same
  access tokens and refresh tokens work (a refresh token used before the move is still
  detected as reused); an Idempotency-Key retry of a write made before the move answers
  the same without applying it twice; the log continues; every table's rows are in
  PostgreSQL, as many as in the SQLite files; replaying the whole log agrees.
- A target holding anything (one row of any table) is refused with exit 2 before
  anything is written; so is a source whose server is running.
- A copy that differs (a trigger on the target alters an event or a player on the way in)
  is caught by the verification: exit 1, naming the hunt or the table.
- Bad flags, an unknown scheme, the same store twice, a malformed URL, nobody listening,
  a wrong password: exit 2, one line on stderr, never the password."""
import atexit
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HUNT = "mig"
_pg = {"url": None, "error": None, "proc": None, "dbs": 0}
# the summary line of a migration, and the tables it counts, in its order
SUMMARY = re.compile(r"copied (\d+) hunts, (\d+) events, (\d+) players, (\d+) refresh tokens, "
                     r"(\d+) idempotency records, (\d+) blobs, (\d+) tiles, (\d+) map versions, "
                     r"(\d+) snapshots in ")
COUNTED = ("hunts", "events", "players", "refresh", "idem", "blobs", "draft_tiles",
           "map_versions", "snapshots")


# --------------------------------------------------------------------------- PostgreSQL
def pg_server():
    """The URL of the test server (started on first use), or an AssertionError saying why
    there is none."""
    if _pg["url"] or _pg["error"]:
        if _pg["error"]:
            raise AssertionError(_pg["error"])
        return _pg["url"]
    url = os.environ.get("VELTRIX_TEST_PG_URL")
    if not url:
        script = os.path.join(HERE, "..", "pg", "pgtmp.sh")
        p = subprocess.Popen(["bash", script, "--watch", str(os.getpid())], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        _pg["proc"] = p
        atexit.register(stop_pg)
        url = p.stdout.readline().decode().strip()
        if not url:
            err = p.stderr.read().decode(errors="replace").strip().splitlines()
            _pg["error"] = "no PostgreSQL to test with (tests/pg/pgtmp.sh): %s" % (
                err[-1] if err else "exit %s" % p.wait())
            raise AssertionError(_pg["error"])
    _pg["url"] = url
    return url


def stop_pg():
    p = _pg["proc"]
    if p and p.poll() is None:
        p.terminate()
        p.wait(60)


def psql(url, sql):
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, timeout=60)
    if r.returncode:
        raise AssertionError("psql %r: %s" % (sql, r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode().strip()


def fresh_db():
    """A new, empty database on the test server; its URL."""
    base = pg_server()
    _pg["dbs"] += 1
    db = "vx_mig_%d_%d" % (os.getpid(), _pg["dbs"])
    psql(base, "DROP DATABASE IF EXISTS %s" % db)
    psql(base, "CREATE DATABASE %s" % db)
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


def pg_counts(url):
    """Rows of every table veltrix keeps in url's database, by COUNTED's names."""
    n = {t: int(psql(url, "SELECT count(*) FROM veltrix.%s" % t)) for t in COUNTED[1:]}
    n["hunts"] = int(psql(url, "SELECT count(DISTINCT hunt) FROM veltrix.events"))
    return n


def sqlite_counts(data):
    """The same counts in a data directory's SQLite files (veltrix.db and its snapshots)."""
    db = sqlite3.connect(os.path.join(data, "veltrix.db"))
    n = {t: db.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in COUNTED[1:-1]}
    n["hunts"] = db.execute("SELECT count(DISTINCT hunt) FROM events").fetchone()[0]
    db.close()
    snaps = sqlite3.connect(os.path.join(data, "veltrix-snapshots.db"))
    n["snapshots"] = snaps.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    snaps.close()
    return n


def migrate(src, dst, timeout=300):
    """(exit code, stdout, stderr) of `veltrix migrate --from src --to dst`."""
    try:
        r = subprocess.run([vx.BIN, "migrate", "--from", src, "--to", dst], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("veltrix migrate still running after %d s (killed)" % timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def sqlite_url(data):
    return "sqlite:" + os.path.join(data, "veltrix.db")


# --------------------------------------------------------------------------- a game
def game_def():
    return vx.basic_def(
        name="to be moved", width=4, height=4,
        codes=[{"id": "c-%02d" % i, "points": i + 1, "x": i % 4, "y": i // 4} for i in range(16)],
        items=[{"id": "key", "x": 1, "y": 1, "quantity": 10}],
        zones=[{"id": "z", "x": 0, "y": 0, "w": 4, "h": 4,
                "chests": [{"id": "vault", "points": 40, "loot": ["gem"], "requires": "key"}],
                "chest_range": {"prefix": "z-", "count": 30, "points": 3, "loot": ["coin"]}}])


def wait_snapshot(c):
    """Waits (bounded) for the first snapshot; not a timing assertion."""
    for _ in range(400):
        if vx.metric(c, "veltrix_snapshots_total") >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("no snapshot taken within 20 s")


def play(s):
    """Plays a game on the running SQLite server s: returns what the checks after the move
    need (players with their tokens, the code payloads, an idempotent scan's answer)."""
    c = s.client()
    vx.put_hunt(c, HUNT, game_def())
    pay = vx.codes_of(c, HUNT)
    g = {"players": [], "pay": pay}
    for i in range(4):
        pid, tok, refresh = vx.new_player(c, "Mover %d" % i)
        g["players"].append({"id": pid, "token": tok, "refresh": refresh})
        for k in range(i * 3, i * 3 + 4):
            check(vx.scan(c, HUNT, tok, pay["c-%02d" % k]), 200, what="scan c-%02d" % k)
        check(vx.open_zone(c, HUNT, tok, "z"), 200, what="open a chest")
    p0 = g["players"][0]
    check(vx.collect(c, HUNT, p0["token"], "key"), 200, what="collect the key")
    check(vx.open_zone(c, HUNT, p0["token"], "z"), 200, what="open with the key")
    wait_snapshot(c)  # --snapshot-every 10: several by now; the log goes on past the last
    g["idem_key"] = {"Idempotency-Key": "move-me-1"}
    first = vx.scan(c, HUNT, p0["token"], pay["c-15"], headers=g["idem_key"])
    check(first, 200, what="scan with an Idempotency-Key")
    g["idem_body"] = first.body
    # player 1 rotates its refresh token: the old one is used, the new one current
    p1 = g["players"][1]
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": p1["refresh"]})
    check(r, 200, what="refresh rotation")
    p1["old_refresh"], p1["refresh"], p1["token"] = p1["refresh"], r.body["refresh_token"], r.body["token"]
    for xy, data in (((0, 0), b"\x89PNG tile a"), ((3, 3), b"tile c")):
        vx.put_tile(c, HUNT, xy[0], xy[1], data, ctype="image/png" if data[0] == 0x89 else "image/webp")
    eq(vx.publish(c, HUNT), 1, "first map version")
    c.close()
    return g


def tiles_import(s):
    """`veltrix tiles import` into the stopped server's store (map version 2)."""
    d = tempfile.mkdtemp(prefix="vx-mig-tiles-")
    os.makedirs(os.path.join(d, "1"))
    with open(os.path.join(d, "1", "2.svg"), "wb") as f:
        f.write(b"<svg>imported 1,2</svg>")
    r = subprocess.run([vx.BIN, "tiles", "import", HUNT, d, "--data", s.data], capture_output=True,
                       timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    eq(r.returncode, 0, "tiles import (%s)" % r.stderr.decode(errors="replace").strip())


def state(c, g):
    me = {}
    for p in g["players"]:
        m = vx.me(c, HUNT, p["token"])
        me[p["id"]] = (m.get("points"), sorted(m["scanned"]), sorted(m["collected"]), sorted(m["opened"]))
    tiles = {}
    for xy in ((0, 0), (3, 3), (1, 2)):
        r = c.req("GET", "/tiles/%s/%d/%d" % ((HUNT,) + xy))
        check(r, 200, what="tile %s" % (xy,))
        tiles[xy] = (r.raw, r.headers.get("content-type"), r.headers.get("etag"))
    return {"digest": vx.digest(c, HUNT), "leaderboard": vx.leaderboard(c, HUNT), "me": me,
            "tiles": tiles, "map_version": vx.get_hunt(c, HUNT)["map_version"]}


def played_and_stopped():
    """A SQLite server that played a game and was stopped, its game and its state."""
    s = vx.Server(args=["--snapshot-every", "10"])
    s.start()
    g = play(s)
    s.stop()
    tiles_import(s)
    s.start()
    before = state(s.client(), g)
    s.stop()
    return s, g, before


# --------------------------------------------------------------------------- tests
@test
def the_game_goes_on_on_postgres():
    s, g, before = played_and_stopped()
    true(before["digest"][0] > 20, "events in the log: %s" % (before["digest"],))
    eq(before["map_version"], 2, "the import published version 2")
    src = sqlite_counts(s.data)
    for t in COUNTED:
        true(src[t] > 0, "the source has no %s: %s" % (t, src))
    url = fresh_db()
    rc, out, err = migrate(sqlite_url(s.data), url)
    eq(rc, 0, "migrate exit code (stderr: %s)" % vx.short(err, 600))
    m = SUMMARY.search(out)
    true(m is not None, "no summary on stdout: %s" % vx.short(out))
    eq(dict(zip(COUNTED, map(int, m.groups()))), src, "the summary's counts against the source")
    true("digests equal" in out, "the summary says the digests are equal: %s" % vx.short(out))
    true(re.search(r"veltrix: migrate: %d/%d events" % (src["events"], src["events"]), err),
         "a progress line on stderr: %s" % vx.short(err))
    eq(pg_counts(url), src, "rows in PostgreSQL against the SQLite files")
    # the records of hunt writes name their hunt (a next owner on several nodes takes them)
    eq(psql(url, "SELECT hunt FROM veltrix.idem WHERE key = 'move-me-1'"), HUNT,
       "the hunt of a migrated idempotency record")

    # nothing of SQLite is left to serve from: the server must use PostgreSQL
    for f in ("veltrix.db", "veltrix-snapshots.db", "veltrix.db-wal", "veltrix.db-shm"):
        if os.path.exists(os.path.join(s.data, f)):
            os.rename(os.path.join(s.data, f), os.path.join(s.data, f + ".moved"))
    s.args = ["--store", url, "--snapshot-every", "10"]
    s.start()
    c = s.client()
    after = state(c, g)
    for k in ("digest", "leaderboard", "me", "tiles", "map_version"):
        eq(after[k], before[k], "%s after the move" % k)
    for p in g["players"]:  # the same access tokens
        r = c.req("GET", "/v1/players/me", token=p["token"])
        check(r, 200, what="an access token from before the move")
        eq(r.body.get("player_id"), p["id"], "the token's player")
    p0, p1, p2 = g["players"][:3]
    again = vx.scan(c, HUNT, p0["token"], g["pay"]["c-15"], headers=g["idem_key"])
    check(again, 200, what="the Idempotency-Key retry after the move")
    eq(again.body, g["idem_body"], "the retried write's answer")
    eq(vx.digest(c, HUNT), before["digest"], "digest after the retry (not applied twice)")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": p2["refresh"]})
    check(r, 200, what="a refresh token from before the move")
    check(c.req("GET", "/v1/players/me", token=r.body["token"]), 200, what="its new access token")
    check(vx.scan(c, HUNT, p2["token"], g["pay"]["c-14"]), 200, what="a scan after the move")
    eq(vx.digest(c, HUNT)[0], before["digest"][0] + 1, "the log goes on from its last seq")
    # the refresh token player 1 used before the move is still known as used
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": p1["old_refresh"]})
    check(r, 401, "refresh_token_reused", what="a refresh token used before the move")
    check(c.req("GET", "/v1/players/me", token=p1["token"]), 401, what="its family after the reuse")
    d = vx.digest(c, HUNT)
    s.stop()
    s.args = ["--store", url, "--ignore-snapshots"]  # the whole copied log, replayed
    s.start()
    eq(vx.digest(s.client(), HUNT), d, "digest from the whole log")


@test
def a_non_empty_target_is_refused():
    """For every table: a target holding only that table's rows is refused, exit 2, and
    not written to."""
    s, _, _ = played_and_stopped()
    tables = ["events", "players", "refresh", "idem", "blobs", "draft_tiles", "map_versions",
              "snapshots"]
    names = {"events": "events of hunt '%s'" % HUNT, "refresh": "refresh tokens",
             "idem": "idempotency records", "draft_tiles": "tiles", "map_versions": "map versions"}
    for keep in tables:
        url = fresh_db()
        rc, out, err = migrate(sqlite_url(s.data), url)
        eq(rc, 0, "the first migration (stderr: %s)" % vx.short(err))
        others = ", ".join("veltrix." + t for t in tables if t != keep)
        psql(url, "TRUNCATE %s" % others)
        left = pg_counts(url)
        rc, out, err = migrate(sqlite_url(s.data), url)
        eq(rc, 2, "exit code for a target holding only %s (stderr: %s)" % (keep, vx.short(err)))
        lines = err.strip().splitlines()
        eq(len(lines), 1, "one line on stderr: %s" % vx.short(err))
        true("not empty" in err and names.get(keep, keep) in err,
             "the line names the target's %s: %s" % (keep, vx.short(err)))
        eq(out, "", "stdout of a refused migration")
        eq(pg_counts(url), left, "the refused target's rows")


@test
def a_running_source_is_refused():
    s = vx.Server()
    s.start()
    c = s.client()
    vx.put_hunt(c, HUNT, game_def())
    vx.new_player(c)
    url = fresh_db()
    rc, out, err = migrate(sqlite_url(s.data), url)
    eq(rc, 2, "exit code while the source's server runs (stderr: %s)" % vx.short(err))
    eq(len(err.strip().splitlines()), 1, "one line on stderr: %s" % vx.short(err))
    true("stop it first" in err, "the line says the store is in use: %s" % vx.short(err))
    eq(psql(url, "SELECT to_regclass('veltrix.events') IS NULL"), "t", "the target was not touched")
    check(vx.scan(c, HUNT, vx.new_player(c)[1], vx.codes_of(c, HUNT)["c-00"]), 200,
          what="the server still writes its store")
    s.stop()
    rc, out, err = migrate(sqlite_url(s.data), url)
    eq(rc, 0, "once stopped (stderr: %s)" % vx.short(err))


def altered_copy(sql):
    """Migrates a played game into a target whose schema has the trigger function body
    `sql` on `table` (created by a server start that wrote nothing); (exit, stdout, stderr)."""
    s, _, _ = played_and_stopped()
    url = fresh_db()
    t = vx.Server(args=["--store", url])
    t.start()  # creates the schema, writes nothing
    t.stop()
    psql(url, sql)
    return migrate(sqlite_url(s.data), url)


@test
def a_copy_that_differs_is_caught():
    rc, out, err = altered_copy(
        "CREATE FUNCTION veltrix.flip() RETURNS trigger AS $$ BEGIN "
        "IF NEW.seq = 5 THEN NEW.data := NEW.data || '\\x00'::bytea; END IF; RETURN NEW; END "
        "$$ LANGUAGE plpgsql; CREATE TRIGGER flip BEFORE INSERT ON veltrix.events "
        "FOR EACH ROW EXECUTE FUNCTION veltrix.flip()")
    eq(rc, 1, "exit code for an altered event (stdout %s, stderr %s)" % (vx.short(out), vx.short(err)))
    true("hunt '%s'" % HUNT in err and "different contents" in err,
         "the line names the hunt: %s" % vx.short(err))
    eq(out, "", "no summary for a copy that differs")
    rc, out, err = altered_copy(
        "CREATE FUNCTION veltrix.rename() RETURNS trigger AS $$ BEGIN "
        "NEW.display_name := NEW.display_name || '!'; RETURN NEW; END $$ LANGUAGE plpgsql; "
        "CREATE TRIGGER rename BEFORE INSERT ON veltrix.players "
        "FOR EACH ROW EXECUTE FUNCTION veltrix.rename()")
    eq(rc, 1, "exit code for altered players (stderr %s)" % vx.short(err))
    true("players" in err and "different contents" in err, "the line names the table: %s" % vx.short(err))


def refused(args, want, secret=None):
    """`veltrix migrate ARGS` must exit 2 with one stderr line saying `want`, no secret."""
    r = subprocess.run([vx.BIN, "migrate"] + args, capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 2, "exit code for %s (stderr: %s)" % (want, vx.short(err)))
    eq(len(err.strip().splitlines()), 1, "stderr lines for %s: %s" % (want, vx.short(err)))
    true(want in err, "stderr for %s does not say it: %s" % (want, vx.short(err)))
    true(err.startswith("veltrix: migrate: "), "the line: %s" % vx.short(err))
    eq(r.stdout, b"", "stdout for %s" % want)
    if secret:
        true(secret not in err, "the password is in the message: %s" % vx.short(err))


@test
def bad_input_exits_2_without_the_password():
    s, _, _ = played_and_stopped()
    src = sqlite_url(s.data)
    base = pg_server()
    port = urllib.parse.urlsplit(base).port
    refused([], "--from and --to are both required")
    refused(["--from", src], "--from and --to are both required")
    refused(["--from", src, "--to"], "bad option or value: '--to'")
    refused(["--from", src, "--to", base, "--from", src], "bad option or value: '--from'")
    refused(["--from", src, "--to", base, "--fsync", "off"], "bad option or value: '--fsync'")
    refused(["--from", src, "--to", "mysql://u:Secret-pw-0@h/db"], "unsupported store url scheme",
            "Secret-pw-0")
    refused(["--from", src, "--to", src], "the same store")
    refused(["--from", src, "--to", "sqlite:" + os.path.join(s.data, ".", "veltrix.db")],
            "the same store")
    missing = os.path.join(s.data, "nope.db")
    refused(["--from", "sqlite:" + missing, "--to", base], "no store at")
    true(not os.path.exists(missing), "a store was made at the mistyped path")
    refused(["--from", src, "--to", "postgres://vx:Secret-pw-1@127.0.0.1:1/db"],
            "Connection refused", "Secret-pw-1")
    refused(["--from", src, "--to", "postgres://vx:Secret-%zz-2@127.0.0.1/db"],
            "malformed postgres url", "Secret")
    refused(["--from", src, "--to", "postgres://vx@127.0.0.1:%d/postgres?password=Secret-pw-4&bogus=1"
             % port], "malformed postgres url", "Secret-pw-4")
    # pgtmp.sh's pg_hba.conf: the role veltrix_pw alone must give its password
    psql(base, "DROP ROLE IF EXISTS veltrix_pw")
    psql(base, "CREATE ROLE veltrix_pw LOGIN PASSWORD 'Right-pw-77'")
    try:
        refused(["--from", src, "--to", "postgres://veltrix_pw:Wrong-pw-42@127.0.0.1:%d/postgres"
                 % port], "password authentication failed", "Wrong-pw-42")
    finally:
        psql(base, "DROP ROLE IF EXISTS veltrix_pw")
    empty = tempfile.mkdtemp(prefix="vx-bb-")
    sqlite3.connect(os.path.join(empty, "veltrix.db")).close()
    refused(["--from", sqlite_url(empty), "--to", fresh_db()], "holds nothing to migrate")
    shutil.rmtree(empty, ignore_errors=True)


if __name__ == "__main__":
    vx.run_all()
