#!/usr/bin/env python3
"""Black-box tests: three nodes on one PostgreSQL through failures, under load (API.md
"Several nodes on PostgreSQL", issue 15 item 7). Each test runs a storm of writes: six
players scanning codes and opening chests of one hunt, through all three nodes in turn,
every write with an Idempotency-Key of its own and retried with it (through the next
node) until it is answered for good; then it breaks something:

- SIGSTOP of the owner for longer than its lease, then SIGCONT: the requests it held are
  answered after it wakes without it ever acknowledging a write it could not commit;
- a silent cut between one node (the owner) and PostgreSQL, with no reset (a proxy that
  stops forwarding), the node still reachable by clients; then the cut heals;
- PostgreSQL itself killed (-9) and started again (its own instance, tests/pg/pgctl.py);
- a rolling restart: each node in turn stopped with SIGTERM and started again; the only
  answers allowed are the successes and the retryable 503 hunt_moving (and a refused
  connection to the node that is down: a load balancer sends those elsewhere).

After each, checked on every node: every acknowledged write is in the hunt exactly once
(each player's score is the sum of its acknowledged points; the hunt's seq is 1 + the
number of acknowledged writes, so no gap and no write twice), no chest has two owners,
every node's leaderboard, stats and /me equal the owner's, and a retry of an acknowledged
write through any node replays the first answer. Timing is printed, never asserted."""
import collections
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pg"))
import pgctl  # noqa: E402
import vx  # noqa: E402
from tcpproxy import TcpProxy  # noqa: E402
from test_forward import NODES, Cluster, hunts_on  # noqa: E402
from test_replica import cluster, state  # noqa: E402
from vx import eq, true, test  # noqa: E402

del vx._tests[:]  # the imported suites' tests registered themselves on import

CODES = 1500
PACE = 0.01  # seconds between a writer's writes: the storm lasts while the test breaks things
CHESTS = 12
RETRYABLE = {"hunt_moving", "store_unavailable", "busy"}


def storm_def(name):
    return vx.basic_def(
        name=name,
        codes=[{"id": "s%d" % i, "points": i, "x": i % 64, "y": i // 64} for i in range(1, CODES + 1)],
        zones=[{"id": "vault", "x": 0, "y": 0, "w": 8, "h": 8,
                "chest_range": {"prefix": "v", "count": CHESTS, "points": 1000, "loot": ["gem"]}}])


def post(port, path, body, tok, key, timeout=20.0):
    """(status, parsed body) or (None, "refused" | "reset" | "timeout")."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + tok,
                           "Idempotency-Key": key})
        r = c.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, {"raw": raw[:200].decode(errors="replace")}
    except ConnectionRefusedError:
        return None, "refused"
    except socket.timeout:
        return None, "timeout"
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
            http.client.BadStatusLine) as e:
        return None, "reset (%r)" % e
    finally:
        c.close()


def errcode(b):
    """An error answer's code ({"error": {"code": ...}}), a transport failure's name."""
    if isinstance(b, dict) and isinstance(b.get("error"), dict):
        return b["error"].get("code")
    return b if isinstance(b, str) else None


class Storm:
    """Writers, one per player, each going through its codes (every tenth write an open of
    the vault) and through the nodes in `up` in turn; a write is retried with its key until
    it is answered for good. tolerate: the transport failures that count as retryable."""

    def __init__(self, cl, hunt, pay, players, tolerate=("refused",), timeout=20.0):
        self.cl, self.hunt, self.pay, self.players = cl, hunt, pay, players
        self.timeout = timeout  # a client's patience: then it retries through the next node
        self.tolerate = set(tolerate)
        self.lock = threading.Lock()
        self.up = list(NODES)
        self.stop = threading.Event()
        self.acked = {}        # key -> (player id, node, body) of its first 200
        self.exhausted = 0     # opens answered 404 no_chest_available
        self.answers = collections.Counter()
        self.errors = []
        self.threads = [threading.Thread(target=self.writer, args=(i, p), daemon=True)
                        for i, p in enumerate(players)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def nodes_up(self):
        with self.lock:
            return list(self.up)

    def set_up(self, nodes):
        with self.lock:
            self.up = list(nodes)

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def writer(self, i, player):
        pid, tok = player
        turn = i
        for j in range(1, CODES + 1):
            if self.stop.is_set():
                return
            is_open = j % 10 == 0
            key = "%s-%d" % (pid, j)
            path = "/v1/hunts/%s/%s" % (self.hunt, "zones/vault/open" if is_open else "scans")
            body = {} if is_open else {"code": self.pay["s%d" % j]}
            deadline = time.time() + 90
            while True:
                up = self.nodes_up()
                node = up[turn % len(up)]
                turn += 1
                st, b = post(self.cl.servers[node].port, path, body, tok, key, self.timeout)
                code = errcode(b)
                with self.lock:
                    self.answers["%s %s" % (st, code if st != 200 else "ok")] += 1
                    if st == 200:
                        self.acked[key] = (pid, node, b)
                    elif st == 404 and is_open and code == "no_chest_available":
                        self.exhausted += 1
                if st == 200 or (st == 404 and is_open and code == "no_chest_available"):
                    time.sleep(PACE)
                    break
                retry = (st == 503 and code in RETRYABLE) or (st is None and code in self.tolerate)
                if not retry:
                    with self.lock:
                        self.errors.append("%s via %s: %s %s" % (key, node, st, vx.short(b, 200)))
                    return
                if time.time() > deadline:
                    with self.lock:
                        self.errors.append("%s: not answered for good within 90 s" % key)
                    return
                time.sleep(0.05)

    def wait_more(self, n, what, timeout=60.0):
        """Waits until n more writes are acknowledged; returns the seconds it took."""
        t0, start = time.time(), self.n_acked()
        while self.n_acked() < start + n:
            true(time.time() - t0 < timeout, "%s: fewer than %d writes acknowledged in %.0f s "
                 "(answers so far: %s; errors: %s)" % (what, n, timeout, dict(self.answers),
                                                        self.errors[:3]))
            true(not self.errors, "%s: %s" % (what, self.errors[:3]))
            time.sleep(0.02)
        return time.time() - t0

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(120)
        true(not any(t.is_alive() for t in self.threads), "a writer did not finish")
        print("  answers: %s" % ", ".join("%s × %d" % kv for kv in sorted(self.answers.items())))
        true(not self.errors, "errors: %s" % " || ".join(self.errors[:5]))


def define(cl, owner, prefix, via):
    (h,) = hunts_on(owner, 1, prefix)
    vx.put_hunt(cl.client(via), h, storm_def(prefix), status=201)
    cl.owned([h])
    return h, vx.codes_of(cl.client(owner), h)


def players(cl, n=6):
    out = []
    for i in range(n):
        pid, tok, _ = vx.new_player(cl.client(NODES[i % 3]), "Storm %d" % i)
        out.append((pid, tok))
    return out


def owner_of(cl, hunt, via):
    return [x["owner"] for x in cl.view(via)["hunts"] if x["hunt"] == hunt][0]


def converge(cl, owner, hunt, tok, timeout=30.0):
    """Waits until every node's view of hunt (leaderboard, stats, /me) equals the owner's,
    read afresh each time (a node that just took the hunt over catches up within a poll);
    returns the seconds."""
    t0, last = time.time(), None
    while time.time() - t0 < timeout:
        want = state(cl.client(owner), hunt, tok)
        got = {n: state(cl.client(n), hunt, tok) for n in NODES if n in cl.alive}
        last = (want, got)
        if all(v == want for v in got.values()):
            return time.time() - t0
        time.sleep(0.05)
    raise AssertionError("nodes of %s did not reach the owner's state in %.0f s: owner %s: %s"
                         % (hunt, timeout, owner, vx.short(last, 1200)))


def verify(cl, hunt, storm, what):
    """The checks of the module's docstring, on every node of cl.alive."""
    cl.all_alive(timeout=60)
    cl.owned([hunt], timeout=60)
    owner = owner_of(cl, hunt, NODES[0])
    tok0 = storm.players[0][1]
    lag = converge(cl, owner, hunt, tok0, timeout=30)
    c = cl.client(owner)
    want = collections.Counter()
    chests = collections.Counter()
    for key, (pid, node, b) in storm.acked.items():
        want[pid] += b["points"]
        if b.get("chest"):
            chests[b["chest"]] += 1
    lb = vx.leaderboard(c, hunt)
    rows = lb.get("top", lb.get("entries", lb.get("leaderboard", [])))
    got = {r["player_id"]: r["score"] for r in rows}
    eq(got, {p: s for p, s in want.items() if s or p in got}, "%s: every acknowledged write once "
       "(scores)" % what)
    st = c.ok("GET", "/v1/hunts/%s/stats" % hunt)
    eq(st["seq"], 1 + len(storm.acked), "%s: seq = 1 + acknowledged writes (no gap, none twice)" % what)
    twice = [ch for ch, n in chests.items() if n > 1]
    eq(twice, [], "%s: chests opened twice" % what)
    true(sum(chests.values()) <= CHESTS, "%s: %d chests opened of %d" % (what, sum(chests.values()), CHESTS))
    # a retry of acknowledged writes, through every node, replays the first answer
    rng = random.Random(7)
    for key in rng.sample(sorted(storm.acked), min(9, len(storm.acked))):
        pid, _, first = storm.acked[key]
        tok = dict(storm.players)[pid]
        j = int(key.rsplit("-", 1)[1])
        node = NODES[j % 3]
        path = "/v1/hunts/%s/%s" % (hunt, "zones/vault/open" if j % 10 == 0 else "scans")
        body = {} if j % 10 == 0 else {"code": storm.pay["s%d" % j]}
        t0 = time.time()
        while True:  # a hunt handed back to its placement answers 503 hunt_moving meanwhile
            stt, again = post(cl.servers[node].port, path, body, tok, key)
            if stt != 503 or time.time() - t0 > 10:
                break
            time.sleep(0.05)
        eq((stt, again), (200, first), "%s: the retry of %s through %s" % (what, key, node))
    print("  %s: %d writes acknowledged, %d chests, every node equal to the owner %s after %.2f s"
          % (what, len(storm.acked), sum(chests.values()), owner, lag))


def kill_nodes(cl):
    """The test's own servers end at once (it may fail with PostgreSQL or a proxy away)."""
    for sv in cl.servers.values():
        if sv.alive():
            sv.kill()


@test
def sigstop_of_the_owner_past_its_lease():
    cl = cluster()
    owner = "n2"
    h, pay = define(cl, owner, "stop", via="n1")
    s = Storm(cl, h, pay, players(cl), tolerate=("refused", "timeout"), timeout=2.0).start()
    s.wait_more(30, "before the stop")
    pid = cl.servers[owner].proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        took = s.wait_more(20, "while the owner is stopped")
        print("  owner stopped: 20 more writes acknowledged by the others within %.2f s" % took)
        time.sleep(1.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    s.wait_more(30, "after SIGCONT")
    s.finish()
    verify(cl, h, s, "SIGSTOP")


class CutCluster(Cluster):
    """Node `cut` reaches PostgreSQL through a TcpProxy (answers bounded to 3 s)."""

    def __init__(self, cut):
        self.cut, self.proxy = cut, None
        super().__init__(secret_file=False)

    def start(self, name):
        if name != self.cut:
            return super().start(name)
        u = urllib.parse.urlsplit(self.url)
        if not self.proxy:
            self.proxy = TcpProxy(u.port)
        q = "veltrix_timeout_ms=3000&connect_timeout=2"
        url = urllib.parse.urlunsplit((u.scheme, "%s@127.0.0.1:%d" % (u.username, self.proxy.port),
                                       u.path, (u.query + "&" if u.query else "") + q, ""))
        s = vx.Server(args=["--store", url, "--node-id", name] + self.extra)
        s.args += ["--advertise", "http://127.0.0.1:%d" % s.port]
        return s.start(timeout=30)


@test
def a_silent_cut_between_the_owner_and_postgres():
    cl = CutCluster("n3")
    cl.alive = list(NODES)
    try:
        h, pay = define(cl, "n3", "cut", via="n1")
        s = Storm(cl, h, pay, players(cl), tolerate=("refused", "timeout"), timeout=2.0).start()
        s.wait_more(30, "before the cut")
        cl.proxy.stall("both")
        try:
            took = s.wait_more(20, "during the cut")
            print("  n3 cut from PostgreSQL: 20 more writes acknowledged within %.2f s; "
                  "bytes held by the proxy %s" % (took, cl.proxy.held()))
            time.sleep(1.0)
        finally:
            cl.proxy.resume()
        s.wait_more(30, "after the cut healed")
        s.finish()
        verify(cl, h, s, "silent cut")
    finally:
        kill_nodes(cl)
        cl.proxy.close()


_own = {"pg": None}


@test
def postgres_killed_and_restarted_under_load():
    pg = _own["pg"] = pgctl.PgCluster()
    pg.psql("CREATE DATABASE vx_failover")
    cl = cluster(url=pg.url("vx_failover") + "?connect_timeout=2&veltrix_timeout_ms=5000")
    try:
        h, pay = define(cl, "n1", "pgdown", via="n2")
        s = Storm(cl, h, pay, players(cl), tolerate=("refused", "timeout")).start()
        s.wait_more(30, "before PostgreSQL dies")
        pg.kill9()
        time.sleep(2.0)
        pg.start()
        took = s.wait_more(20, "after PostgreSQL came back", timeout=90)
        print("  PostgreSQL killed for 2 s: 20 writes acknowledged %.2f s after its start" % took)
        s.finish()
        verify(cl, h, s, "PostgreSQL restart")
    finally:
        kill_nodes(cl)


@test
def rolling_restart_under_load():
    cl = cluster()
    h, pay = define(cl, "n1", "roll", via="n3")
    s = Storm(cl, h, pay, players(cl), tolerate=("refused",)).start()
    s.wait_more(30, "before the restarts")
    for n in NODES:
        s.set_up([x for x in NODES if x != n])
        t0 = time.time()
        cl.servers[n].stop(timeout=60)  # SIGTERM: drain, hand the hunts over, exit 0
        stopped = time.time() - t0
        cl.servers[n].start(timeout=30)
        cl.all_alive(timeout=60)
        s.set_up(NODES)
        cl.owned([h], timeout=60)
        took = s.wait_more(10, "after restarting %s" % n)
        print("  %s: SIGTERM to exit %.2f s; back, 10 writes in %.2f s" % (n, stopped, took))
    s.finish()
    bad = [a for a in s.answers if a not in ("200 ok", "503 hunt_moving", "None refused",
                                             "404 no_chest_available")]
    eq(bad, [], "answers other than 200, 503 hunt_moving, a refused connection and the "
       "vault's 404 no_chest_available once its chests are gone")
    verify(cl, h, s, "rolling restart")


def _cleanup():
    if _own["pg"]:
        _own["pg"].destroy()


if __name__ == "__main__":
    try:
        vx.run_all()
    finally:
        _cleanup()
