#!/usr/bin/env python3
"""Failure tests of the PostgreSQL store (issue #14): the real binary on a PostgreSQL server
of this file's own (tests/pg/pgctl.py, which it may kill -9 and start again), reached
through a TCP proxy that the tests drive (tests/pg/tcpproxy.py: drop every connection
with an RST, or stall one way or both without a word).

- A commit whose answer is lost (the server committed; the proxy held the answer, then
  reset the connection): the write is acknowledged once, never written twice.
- A commit that never arrived (the proxy held the statements, then reset): the write is
  written again on a new connection and acknowledged once.
- A session cut off (its connection kept, nothing forwarded on it): the commit gives up
  after veltrix_timeout_ms and the new connection ends the old session on the server
  before the batch is read back (statements held: written again; answers held: found).
- A silent partition (nothing forwarded, no RST): noticed within the store's timeout;
  meanwhile writes get 503 store_unavailable with Retry-After, /healthz 503, reads are
  served; the server recovers by itself when the network does.
- PostgreSQL killed with kill -9 under write load and started again: every acknowledged
  write is there, none twice, no chest has two owners.
- PostgreSQL restarted between a write and its retry with the same Idempotency-Key: the
  retry gets the same answer, the write is there once; the log's queue stays under its cap.
- A server that does not answer at start: exit 2 and one line, after connect_timeout; one
  older than PostgreSQL 15 (a stand-in that says it is 13.4): exit 2, both versions named.
After each: the digest after a restart of veltrix is the one before, and the store holds
exactly the events the server counted (count = max seq = the digest's seq)."""
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402
import pgctl  # noqa: E402
from tcpproxy import TcpProxy  # noqa: E402

HUNT = "pgf"
N_CODES = 120
POINTS = {"c-%03d" % i: i % 17 + 1 for i in range(N_CODES)}
_pg = {"cluster": None, "error": None, "dbs": 0}


def cluster():
    """The test's own PostgreSQL (started on first use); a failure to start fails every
    test, never skips it."""
    if _pg["error"]:
        raise AssertionError(_pg["error"])
    if not _pg["cluster"]:
        try:
            _pg["cluster"] = pgctl.PgCluster()
        except (pgctl.PgError, OSError, subprocess.SubprocessError) as e:
            _pg["error"] = "no PostgreSQL of its own to test with (tests/pg/pgctl.py): %s" % e
            raise AssertionError(_pg["error"])
    return _pg["cluster"]


def destroy_cluster():
    if _pg["cluster"]:
        _pg["cluster"].destroy()


def fresh_db():
    pg = cluster()
    _pg["dbs"] += 1
    db = "vx_faults_%d" % _pg["dbs"]
    pg.psql("DROP DATABASE IF EXISTS %s" % db)
    pg.psql("CREATE DATABASE %s" % db)
    return db


def hunt_def():
    return vx.basic_def(
        name="faults", width=16, height=16,
        codes=[{"id": cid, "points": p, "x": i % 16, "y": i // 16}
               for i, (cid, p) in enumerate(sorted(POINTS.items()))],
        zones=[{"id": "z", "x": 0, "y": 0, "w": 16, "h": 16, "chests": [],
                "chest_range": {"prefix": "z-", "count": 40, "points": 3, "loot": ["coin"]}}])


class Setup:
    """A fresh database, a proxy to the cluster and veltrix on the proxy."""

    def __init__(self, timeout_ms=10000, args=()):
        pg = cluster()
        self.db = fresh_db()
        self.proxy = TcpProxy(pg.port)
        url = ("postgres://postgres@127.0.0.1:%d/%s?connect_timeout=2&veltrix_timeout_ms=%d"
               % (self.proxy.port, self.db, timeout_ms))
        self.s = vx.Server(args=["--store", url] + list(args))
        self.s.start(timeout=30)
        self.c = self.s.client(timeout=60)
        vx.put_hunt(self.c, HUNT, hunt_def())
        self.pay = vx.codes_of(self.c, HUNT)

    def stored(self):
        """(count, max seq) of the hunt's events in PostgreSQL, read without the proxy."""
        out = cluster().psql("SELECT count(*), coalesce(max(seq),0) FROM veltrix.events "
                             "WHERE hunt='%s'" % HUNT, self.db)
        n, m = out.split("|")
        return int(n), int(m)

    def finish(self, what):
        """The store holds exactly what the server counted; a restart keeps the digest."""
        d = vx.digest(self.c, HUNT)
        eq(self.stored(), (d[0], d[0]), "%s: events in the store (count, max seq)" % what)
        self.s.restart()
        self.c = self.s.client(timeout=60)
        eq(vx.digest(self.c, HUNT), d, "%s: digest after a restart of veltrix" % what)
        self.s.stop()
        self.proxy.close()


def wait_for(cond, what, seconds=60.0):
    """Polls cond() until it is true; fails after seconds (a generous bound, not a timing
    assertion: the test prints how long it took)."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        v = cond()
        if v:
            vx.note("%s after %.2f s" % (what, time.time() - t0))
            return v
        time.sleep(0.05)
    raise AssertionError("%s: not within %.0f s" % (what, seconds))


def in_thread(fn):
    """Runs fn() on a thread; returns a function that joins it and gives fn's result (or
    raises its exception)."""
    box = {}

    def run():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: B902 - handed to the test's thread
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=90):
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("the request is still unanswered after %d s" % timeout)
        if "e" in box:
            raise box["e"]
        return box["r"]
    return join


def health(port):
    try:
        return vx.healthz(port).status
    except ConnectionError:
        return None


@test
def commit_answer_lost_is_acknowledged_once():
    """The proxy holds PostgreSQL's answers, the batch commits, then every connection is
    reset: the server reads the batch back on a new connection, finds it and answers."""
    st = Setup()
    _, tok, _ = vx.new_player(st.c)
    check(vx.scan(st.c, HUNT, tok, st.pay["c-000"]), 200)
    seq = vx.digest(st.c, HUNT)[0]
    st.proxy.stall("down")
    join = in_thread(lambda: vx.scan(st.s.client(timeout=90), HUNT, tok, st.pay["c-001"],
                                     headers={"Idempotency-Key": "lost-answer"}))
    wait_for(lambda: st.stored()[1] == seq + 1, "the commit landed (answer held)")
    st.proxy.drop_all()
    r = join()
    check(r, 200, what="the scan whose COMMIT answer was lost")
    eq(r.body.get("code"), "c-001", "the answer")
    eq(vx.digest(st.c, HUNT)[0], seq + 1, "seq: the scan applied once")
    again = vx.scan(st.c, HUNT, tok, st.pay["c-001"], headers={"Idempotency-Key": "lost-answer"})
    check(again, 200, what="its retry")
    eq(again.body, r.body, "the retry's answer")
    true("reconnected" in st.s.stderr_text(), "the server says it reconnected")
    st.finish("answer lost")


@test
def commit_that_never_arrived_is_written_again():
    """The proxy holds veltrix's statements (BEGIN..COMMIT), then resets: nothing landed,
    the batch is written again on a new connection."""
    st = Setup()
    _, tok, _ = vx.new_player(st.c)
    check(vx.scan(st.c, HUNT, tok, st.pay["c-000"]), 200)
    seq = vx.digest(st.c, HUNT)[0]
    st.proxy.stall("up")
    join = in_thread(lambda: vx.scan(st.s.client(timeout=90), HUNT, tok, st.pay["c-002"]))
    wait_for(lambda: st.proxy.held()["up"] > 0, "the batch is held by the proxy")
    eq(st.stored()[1], seq, "nothing of the batch in the store")
    st.proxy.drop_all()
    r = join()
    check(r, 200, what="the scan whose COMMIT never arrived")
    eq(vx.digest(st.c, HUNT)[0], seq + 1, "seq: the scan applied once")
    st.finish("never arrived")


@test
def silent_partition_is_noticed_and_outlived():
    """Nothing is forwarded any more, and nothing says so (no RST, no FIN): the store's
    timeout (veltrix_timeout_ms=2000) notices; writes get 503 store_unavailable with
    Retry-After, /healthz 503, reads go on; once the network is back the held write is
    acknowledged, once, and /healthz is 200 again."""
    st = Setup(timeout_ms=2000)
    _, tok, _ = vx.new_player(st.c)
    check(vx.scan(st.c, HUNT, tok, st.pay["c-000"]), 200)
    seq = vx.digest(st.c, HUNT)[0]
    st.proxy.stall("both")
    t0 = time.time()
    join = in_thread(lambda: vx.scan(st.s.client(timeout=120), HUNT, tok, st.pay["c-003"]))
    wait_for(lambda: health(st.s.port) == 503, "/healthz 503 in the partition")
    # the held commit gives up after the timeout: the log is down from then on
    wait_for(lambda: vx.metric(st.c, "veltrix_store_down") == 1, "the log sees the store down")
    r = vx.scan(st.c, HUNT, tok, st.pay["c-004"])
    check(r, 503, "store_unavailable")
    true(r.headers.get("retry-after"), "Retry-After on store_unavailable: %s" % r.headers)
    eq(vx.digest(st.c, HUNT)[0], seq + 1, "reads are served (the held scan is applied in memory)")
    check(st.c.req("GET", "/v1/hunts/%s/leaderboard" % HUNT), 200, what="a read in the partition")
    vx.note("partition noticed, write refused after %.2f s" % (time.time() - t0))
    st.proxy.resume()
    r = join()
    check(r, 200, what="the scan held through the partition")
    wait_for(lambda: health(st.s.port) == 200, "/healthz 200 after the partition")
    check(vx.scan(st.c, HUNT, tok, st.pay["c-004"]), 200, what="the refused scan, again")
    eq(vx.digest(st.c, HUNT)[0], seq + 2, "seq after the partition")
    st.finish("partition")


def db_pids(st):
    """The server sessions on st's database (psql's own left out)."""
    return set(cluster().psql("SELECT pid FROM pg_stat_activity WHERE datname='%s' AND "
                              "pid <> pg_backend_pid()" % st.db, st.db).split()) - {""}


@test
def a_lost_session_is_ended_before_the_read_back():
    """The proxy keeps veltrix's open connections but forwards nothing on them (new ones go
    through): the commit waits out veltrix_timeout_ms, and the new connection ends the
    old session on the server before the batch is read back, so a COMMIT still on its way
    can never land later. With the statements held: nothing landed, written again. With
    the answers held: landed, acknowledged. Either way once, and the old session is gone
    while the proxy still holds its connection."""
    st = Setup(timeout_ms=2000)
    _, tok, _ = vx.new_player(st.c)
    check(vx.scan(st.c, HUNT, tok, st.pay["c-000"]), 200)
    for n, (direction, code) in enumerate((("up", "c-005"), ("down", "c-006"))):
        seq = vx.digest(st.c, HUNT)[0]
        before = db_pids(st)
        held = st.proxy.connections()
        st.proxy.stall(direction, existing_only=True)
        t0 = time.time()
        join = in_thread(lambda: vx.scan(st.s.client(timeout=90), HUNT, tok, st.pay[code]))
        r = join()
        vx.note("%s held: answered after %.2f s" % (direction, time.time() - t0))
        check(r, 200, what="the scan with the %s direction held" % direction)
        eq(vx.digest(st.c, HUNT)[0], seq + 1, "seq: the scan applied once (%s held)" % direction)
        gone = before - db_pids(st)
        true(len(gone) >= 1, "%s held: the writer's old session is still on the server "
             "(sessions before %s, now %s)" % (direction, sorted(before), sorted(db_pids(st))))
        true(st.proxy.connections() >= held, "the proxy still holds the old connections")
        st.proxy.resume()
    true("no answer within 2000 ms" in st.s.stderr_text(), "the server says it gave up")
    st.finish("lost session")

class Player:
    def __init__(self, pid, tok):
        self.pid, self.tok = pid, tok
        self.scans, self.opens = set(), set()
        self.replies = []  # (kind, target, key, body) of acknowledged writes


def play(st, pl, seed, stop, errors, acks):
    """One player's writes, each with its Idempotency-Key, retried with that key on 503
    until it has a final answer."""
    cl = st.s.client(timeout=60)
    rng = random.Random(seed)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            key = "%s-%d-%d" % (pl.pid[:8], seed, n)
            left = [c for c in POINTS if c not in pl.scans]
            kind = "scan" if left and rng.random() < 0.7 else "open"
            target = rng.choice(left) if kind == "scan" else "z"
            while True:
                h = {"Idempotency-Key": key}
                r = (vx.scan(cl, HUNT, pl.tok, st.pay[target], headers=h) if kind == "scan"
                     else vx.open_zone(cl, HUNT, pl.tok, "z", headers=h))
                if r.status != 503:
                    break
                if r.code() not in ("store_unavailable", "busy") or not r.headers.get("retry-after"):
                    errors.append("%s: 503 %s" % (r.desc, short(r.body)))
                    return
                time.sleep(0.05)
            if r.status == 200:
                if kind == "scan":
                    pl.scans.add(target)
                else:
                    pl.opens.add(r.body.get("chest"))
                pl.replies.append((kind, target, key, r.body))
                with acks["lock"]:
                    acks["n"] += 1
            elif not (kind == "open" and r.code() == "no_chest_available"):
                errors.append("%s -> %d %s" % (r.desc, r.status, short(r.body)))
                return
    except ConnectionError as e:
        errors.append("connection: %s" % e)
    finally:
        cl.close()


def verify(st, players, what):
    """The server's state is exactly the acknowledged writes; no chest has two owners;
    every acknowledged write's key replays its answer."""
    owners = {}
    problems = []
    for pl in players:
        m = vx.me(st.c, HUNT, pl.tok)
        if set(m["scanned"]) != pl.scans or len(m["scanned"]) != len(pl.scans):
            problems.append("player %s scanned %s, acknowledged %s" % (
                pl.pid, sorted(m["scanned"]), sorted(pl.scans)))
        if set(m["opened"]) != pl.opens or len(m["opened"]) != len(pl.opens):
            problems.append("player %s opened %s, acknowledged %s" % (
                pl.pid, sorted(m["opened"]), sorted(pl.opens)))
        for ch in m["opened"]:
            owners.setdefault(ch, []).append(pl.pid)
        for kind, target, key, body in pl.replies[::7]:
            h = {"Idempotency-Key": key}
            r = (vx.scan(st.c, HUNT, pl.tok, st.pay[target], headers=h) if kind == "scan"
                 else vx.open_zone(st.c, HUNT, pl.tok, "z", headers=h))
            if r.status != 200 or r.body != body:
                problems.append("replay of %s: %d %s, was %s" % (key, r.status, short(r.body),
                                                                short(body)))
    for ch, who in owners.items():
        if len(who) > 1:
            problems.append("chest %s has owners %s" % (ch, who))
    if problems:
        raise AssertionError("%s: %d problems: %s" % (what, len(problems), " || ".join(problems[:10])))


@test
def postgres_killed_under_write_load():
    """kill -9 of every PostgreSQL process while 6 players write, then a start (crash
    recovery): the writes held or refused meanwhile are retried with their keys; in the
    end the state is exactly the acknowledged writes."""
    st = Setup()
    pg = cluster()
    players = [Player(*vx.new_player(st.c, "p%d" % i)[:2]) for i in range(6)]
    stop, errors, acks = threading.Event(), [], {"n": 0, "lock": threading.Lock()}
    ths = [threading.Thread(target=play, args=(st, pl, i + 1, stop, errors, acks), daemon=True)
           for i, pl in enumerate(players)]
    for t in ths:
        t.start()
    try:
        wait_for(lambda: acks["n"] >= 40 or errors, "40 writes before the kill")
        pg.kill9()
        at_kill = acks["n"]
        wait_for(lambda: health(st.s.port) == 503 or errors, "/healthz 503 with PostgreSQL dead")
        held = acks["n"]
        pg.start()
        wait_for(lambda: acks["n"] >= held + 40 or errors, "40 writes after the start")
        vx.note("acknowledged: %d before the kill, %d before the start, %d at the end"
                % (at_kill, held, acks["n"]))
    finally:
        stop.set()
        for t in ths:
            t.join(90)
    true(not errors, "errors: %s" % " || ".join(errors[:5]))
    wait_for(lambda: health(st.s.port) == 200, "/healthz 200")
    verify(st, players, "after kill -9")
    st.finish("kill -9")


@test
def postgres_restarted_between_a_write_and_its_retry():
    """PostgreSQL dies; a write is held (its client gives up waiting), the next ones get
    503 store_unavailable + Retry-After and the log's queue stays under its cap; PostgreSQL
    comes back; each write retried with its Idempotency-Key is applied once and answered
    the same, before and after a restart of veltrix."""
    st = Setup(args=["--log-queue-max", "64"])
    pg = cluster()
    _, tok, _ = vx.new_player(st.c)
    check(vx.scan(st.c, HUNT, tok, st.pay["c-000"]), 200)
    seq = vx.digest(st.c, HUNT)[0]
    pg.kill9()
    quick = st.s.client(timeout=1.0, retry=False)
    k1, k2 = {"Idempotency-Key": "retry-1"}, {"Idempotency-Key": "retry-2"}
    try:
        r = vx.scan(quick, HUNT, tok, st.pay["c-010"], headers=k1)
        true(r.status == 503, "the first write during the outage: %s" % r)  # refused: fine too
    except ConnectionError:
        pass  # held: its answer waits for the store
    wait_for(lambda: health(st.s.port) == 503, "/healthz 503 with PostgreSQL dead")
    r2 = vx.scan(st.c, HUNT, tok, st.pay["c-011"], headers=k2)
    check(r2, 503, "store_unavailable")
    true(r2.headers.get("retry-after"), "Retry-After: %s" % r2.headers)
    for i in range(200):  # a flood while the store is away: refused, nothing queued
        check(vx.scan(st.c, HUNT, tok, st.pay["c-%03d" % (20 + i % 90)]), 503, "store_unavailable")
    pending = vx.metric(st.c, "veltrix_log_pending")
    true(pending <= 64, "log entries pending during the outage: %d (cap 64)" % pending)
    pg.start()
    a1 = vx.scan(st.c, HUNT, tok, st.pay["c-010"], headers=k1)
    check(a1, 200, what="the held write's retry")
    a2 = vx.scan(st.c, HUNT, tok, st.pay["c-011"], headers=k2)
    check(a2, 200, what="the refused write's retry")
    eq(vx.scan(st.c, HUNT, tok, st.pay["c-010"], headers=k1).body, a1.body, "second retry of 1")
    eq(vx.scan(st.c, HUNT, tok, st.pay["c-011"], headers=k2).body, a2.body, "second retry of 2")
    eq(vx.digest(st.c, HUNT)[0], seq + 2, "seq: each write once")
    eq(sorted(vx.me(st.c, HUNT, tok)["scanned"]), ["c-000", "c-010", "c-011"], "scanned")
    d = vx.digest(st.c, HUNT)
    st.s.restart()
    st.c = st.s.client(timeout=60)
    eq(vx.scan(st.c, HUNT, tok, st.pay["c-010"], headers=k1).body, a1.body,
       "retry of 1 after a restart of veltrix")
    eq(vx.digest(st.c, HUNT), d, "digest after the replay")
    st.finish("restart between write and retry")


@test
def a_server_that_does_not_answer_at_start_exits_2():
    """The proxy accepts and never answers: connect_timeout=2 ends the start with exit 2
    and one line naming the (redacted) URL."""
    pg = cluster()
    proxy = TcpProxy(pg.port)
    proxy.stall("both")
    data = tempfile.mkdtemp(prefix="vx-bb-")
    url = "postgres://postgres:Silent-pw-7@127.0.0.1:%d/postgres?connect_timeout=2" % proxy.port
    cmd = [vx.BIN, "serve", "--listen", "127.0.0.1:%d" % vx.free_port(), "--data", data,
           "--admin-key", vx.ADMIN_KEY, "--store", url]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        proxy.close()
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 2, "exit code (stderr: %s)" % short(err))
    eq(len(err.strip().splitlines()), 1, "stderr lines: %s" % short(err))
    true("cannot connect to postgres://postgres:***@" in err, "the line: %s" % short(err))
    true("Silent-pw-7" not in err, "the password is in the message: %s" % short(err))


class OldServer:
    """A stand-in for a PostgreSQL 13 server: it answers the start of every connection
    (no TLS, authentication ok, server_version 13.4, ready) and then only reads."""

    def __init__(self, version="13.4"):
        import socket
        import struct
        self.version = version.encode()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.struct = struct
        threading.Thread(target=self.serve, daemon=True).start()

    def msg(self, kind, body):
        return kind + self.struct.pack("!I", len(body) + 4) + body

    def serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        pk = self.struct.pack
        try:
            while True:
                n = self.struct.unpack("!I", c.recv(4, 0x100))[0]  # MSG_WAITALL
                body = c.recv(n - 4, 0x100)
                code = self.struct.unpack("!I", body[:4])[0]
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                    c.sendall(b"N")
                    continue
                break
            c.sendall(self.msg(b"R", pk("!I", 0)) +
                      self.msg(b"S", b"server_version\0" + self.version + b"\0") +
                      self.msg(b"S", b"client_encoding\0UTF8\0") +
                      self.msg(b"S", b"standard_conforming_strings\0on\0") +
                      self.msg(b"K", pk("!II", 4242, 77)) + self.msg(b"Z", b"I"))
            while c.recv(65536):
                pass
        except (OSError, self.struct.error):
            pass
        finally:
            c.close()

    def close(self):
        self.ls.close()


@test
def a_server_older_than_15_is_refused_at_start():
    """A server that says it is PostgreSQL 13.4: exit 2 and one line naming both versions."""
    old = OldServer("13.4")
    data = tempfile.mkdtemp(prefix="vx-bb-")
    url = "postgres://postgres:Old-pw-3@127.0.0.1:%d/postgres?sslmode=disable" % old.port
    cmd = [vx.BIN, "serve", "--listen", "127.0.0.1:%d" % vx.free_port(), "--data", data,
           "--admin-key", vx.ADMIN_KEY, "--store", url]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        old.close()
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 2, "exit code (stderr: %s)" % short(err))
    eq(len(err.strip().splitlines()), 1, "stderr lines: %s" % short(err))
    true("version 13.4 is too old: veltrix needs 15 or newer" in err, "the line: %s" % short(err))
    true("Old-pw-3" not in err, "the password is in the message: %s" % short(err))


if __name__ == "__main__":
    import atexit
    atexit.register(destroy_cluster)
    vx.run_all()
