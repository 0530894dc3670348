#!/usr/bin/env python3
"""Black-box tests of replicas on several nodes (API.md "Several nodes on PostgreSQL", issue
15 items 4-6): one PostgreSQL, three nodes on loopback, started here (test_forward.py's
Cluster).

- Every node follows the hunts it does not own: after writes through any node, each
  node's leaderboard, hunt stats and the player's /me equal the owner's (polled; the lag
  is printed, never asserted).
- A hunt defined after the nodes started reaches every node (none is restarted).
- A live client on a node that does not own the hunt receives the hunt's events in seq
  order without a gap, and resumes with `since` on another node.
- kill -9 of the owner: a survivor takes the hunt over without a restart, and its state
  holds every acknowledged write exactly once (scores, seq, one chest owner); writes go on.
- A fenced write (the hunt's lease epoch moved under the owner, bumped here in SQL) is
  answered 503 hunt_moving, never lands, and the owner's memory is rebuilt from the
  store: its state and its live stream equal the other nodes', and its retry lands once.
- A player created on another node after a replica started, whom that replica never saw,
  is named in the replica's live frames and leaderboard from its first pushed event: the
  push names a player the replica lacks, so the replica reads the events and the player
  on its store thread (no read of the store on its event loop).
- Read-your-writes (ReadIndex): a player's write answered by the owner is in that
  player's very next read on another node (/me, stats), with no wait in the test; stats
  and /metrics show the replication lag (0 on the owner).
- Stats on a replica ask the store for the hunt's head on the node's store thread: with the
  log's table locked for 3 s, eight concurrent stats wait (sharing the look) while the
  node answers /healthz at once; then each gives the lag the store says.
- A takeover reads the store on the new owner's store thread: with the idempotency records
  locked, the heir of a killed owner answers /healthz at once while writes wait for its
  take; then the retry of a write the dead owner acknowledged replays its first answer
  (that write was held by the owner's gate while it read the player: its record still
  names its hunt).
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgutil  # noqa: E402
import vx  # noqa: E402
from test_forward import NODES, SECRET, Cluster, forward_header, game_def, hunts_on, placed, raw_req  # noqa: E402
from vx import check, eq, true, test  # noqa: E402

del vx._tests[:]  # test_forward's own tests registered themselves on import


def state(c, hunt, tok):
    r = c.req("GET", "/v1/hunts/%s/leaderboard" % hunt)
    if r.status == 404:  # an anonymous read on a node that has not listed the hunt yet
        return ("not here yet",)
    check(r, 200)
    lb = r.body
    st = c.ok("GET", "/v1/hunts/%s/stats" % hunt)
    me = c.ok("GET", "/v1/hunts/%s/me" % hunt, token=tok) if tok else None
    return lb, st.get("seq"), me


def converge(cl, owner, hunt, tok, timeout=15.0):
    """Waits until every node's view of hunt equals the owner's; returns the seconds."""
    want = state(cl.client(owner), hunt, tok)
    t0, last = time.time(), None
    while time.time() - t0 < timeout:
        got = {}
        for n in NODES:
            if n not in cl.alive:
                continue
            try:
                got[n] = state(cl.client(n), hunt, tok)
            except AssertionError as e:  # not loaded there yet (404): checked every 50 ms
                got[n] = ("not yet", str(e)[:200])
        last = got
        if all(v == want for v in got.values()):
            return time.time() - t0
        time.sleep(0.02)
    diff = {n: [x for x, y in zip(v, want) if x != y] for n, v in last.items() if v != want}
    raise AssertionError("replicas of %s did not reach the owner's state (seq %s) in %.0f s: "
                         "%s; owner %s" % (hunt, want[1], timeout, vx.short(diff, 800),
                                           vx.short(want, 800)))


def hunt_owned_by(cl, owner, prefix, via):
    """A hunt that placement gives owner, defined through node via, once every node sees
    its owner; the hunt and its QR payloads."""
    (h,) = hunts_on(owner, 1, prefix)
    vx.put_hunt(cl.client(via), h, game_def(prefix), status=201)
    cl.owned([h])
    return h, vx.codes_of(cl.client(owner), h)


def cluster(**kw):
    cl = Cluster(secret_file=False, **kw)
    cl.alive = list(NODES)
    return cl


@test
def replicas_follow_the_owner():
    cl = cluster()
    owner = "n2"
    h, pay = hunt_owned_by(cl, owner, "rep", via="n1")  # defined after start
    players = [vx.new_player(cl.client(n), "P" + n) for n in NODES]
    for i, (pid, tok, _) in enumerate(players):
        for k in range(1, 4):
            check(vx.scan(cl.client(NODES[(i + k) % 3]), h, tok, pay["c%d" % k]), 200)
    check(vx.collect(cl.client("n3"), h, players[0][1], "key"), 200)
    lag = converge(cl, owner, h, players[0][1])
    st = cl.client("n1").ok("GET", "/v1/hunts/%s/stats" % h)
    eq(st["seq"], 1 + 9 + 1, "events on a replica (definition, 9 scans, a collect)")
    for n in NODES:
        eq(cl.client(n).ok("GET", "/v1/hunts/%s/stats" % h).get("owner"), owner,
           "stats owner on %s" % n)
    print("  every node equals the owner %.3f s after the last write" % lag)
    # One more write, then the time until a replica shows it (printed).
    t0 = time.time()
    check(vx.scan(cl.client(owner), h, players[1][1], pay["c5"]), 200)
    while cl.client("n3").ok("GET", "/v1/hunts/%s/stats" % h)["seq"] < st["seq"] + 1:
        true(time.time() - t0 < 15, "the replica did not follow")
        time.sleep(0.005)
    print("  a write on the owner reached another node's stats in %.1f ms" % ((time.time() - t0) * 1000))


@test
def map_tiles_published_through_any_node_are_served_by_every_node():
    """Tiles staged and published through nodes that do not own the hunt (forwarded to the
    owner) are served by every node, each version, once its map_published event reached
    that node's replica; a node started afterwards serves them too."""
    cl = cluster()
    owner = "n3"
    h, _ = hunt_owned_by(cl, owner, "rtile", via="n1")
    for v in (1, 2):
        for x in range(3):
            vx.put_tile(cl.client(NODES[x]), h, x, v, b"\x89PNG v%d tile %d" % (v, x))
        ver = vx.publish(cl.client("n2"), h)
        t0 = time.time()
        for n in NODES:
            for x in range(3):
                while True:
                    r = cl.client(n).req("GET", "/tiles/%s/%d/%d" % (h, x, v))
                    if r.status == 200 or time.time() - t0 > 15:
                        break
                    time.sleep(0.02)
                check(r, 200, what="tile %d/%d of version %d on %s" % (x, v, ver, n))
                eq(r.raw, b"\x89PNG v%d tile %d" % (v, x), "tile bytes on %s" % n)
        print("  version %d served by every node %.3f s after the publish" % (ver, time.time() - t0))
    for n in NODES:  # the first version is still readable everywhere (?v=)
        r = cl.client(n).req("GET", "/tiles/%s/0/1?v=%d" % (h, ver - 1))
        check(r, 200, what="version %d on %s" % (ver - 1, n))
    for n in NODES:
        if n != owner:  # version 2 (at least) read off the loop with its event, every blob too
            true(metric(cl.client(n), "veltrix_replica_maps_followed_total") >= 1,
                 "%s followed a version with its event" % n)
            eq(metric(cl.client(n), "veltrix_replica_map_blobs_read_on_loop_total"), 0,
               "blobs %s's event loop read itself" % n)


@test
def a_hunt_first_seen_by_a_replica_is_loaded_off_its_event_loop():
    """A hunt defined on another node reaches a replica through the store's hunt list: the
    replica reads it (snapshot, log, players, map) on its tail thread. With the snapshots
    locked in PostgreSQL, the replicas go on answering meanwhile, and hold the hunt, its
    players and its map once the lock is gone."""
    cl = cluster()
    owner = "n2"
    replicas = ("n1", "n3")
    for attempt in range(4):
        h = hunts_on(owner, attempt + 1, "rfirst")[attempt]
        loaded0 = {n: metric(cl.client(n), "veltrix_replica_hunts_loaded_total") for n in replicas}
        vx.put_hunt(cl.client(owner), h, game_def("rfirst"), status=201)  # (it writes snapshots)
        lock = locked(cl, "snapshots", 4)
        # The hunt list (every second) may have found the hunt before the lock: another one.
        if all(metric(cl.client(n), "veltrix_replica_hunts_loaded_total") == loaded0[n]
               for n in replicas):
            break
        lock.wait()
    else:
        raise AssertionError("every new hunt was loaded before the lock was taken")
    try:
        pay = vx.codes_of(cl.client(owner), h)
        _, tok, _ = vx.new_player(cl.client(owner), "Ada")
        check(vx.scan(cl.client(owner), h, tok, pay["c3"]), 200)
        vx.put_tile(cl.client(owner), h, 1, 1, b"\x89PNG first seen")
        ver = vx.publish(cl.client(owner), h)
        worst, n = healthz_while(cl, lock, replicas)
    finally:
        if lock.poll() is None:
            lock.kill()
    print("  snapshots locked for 4 s after a hunt was defined: %d /healthz on the replicas, "
          "the slowest %.3f s" % (n, worst))
    true(n >= 10, "too few /healthz while the lock was held (%d)" % n)
    true(worst < 1.5, "/healthz on a replica took %.2f s while it loaded a new hunt" % worst)
    for node in replicas:  # loaded by the hunt list (not by a request: none came)
        t0 = time.time()
        while metric(cl.client(node), "veltrix_replica_hunts_loaded_total") == loaded0[node]:
            true(time.time() - t0 < 15, "%s never loaded the hunt from the store's list" % node)
            time.sleep(0.05)
    converge(cl, owner, h, tok)
    for node in replicas:
        r = cl.client(node).req("GET", "/tiles/%s/1/1?v=%d" % (h, ver))
        check(r, 200, what="the map on %s" % node)
        eq(r.raw, b"\x89PNG first seen", "tile bytes on %s" % node)
        lb = vx.leaderboard(cl.client(node), h)
        eq([row.get("display_name") for row in lb["entries"]], ["Ada"], "%s names her" % node)


@test
def a_map_version_is_read_off_the_replicas_event_loops():
    """A version's tiles are read by a replica's tail thread with its map_published event:
    with the blobs locked in PostgreSQL, the replicas go on answering meanwhile, and serve
    the version once the lock is gone. A version that changes one tile of the last reads
    only that tile's blob."""
    cl = cluster()
    owner = "n1"
    h, _ = hunt_owned_by(cl, owner, "rtmap", via=owner)
    for x in range(4):
        vx.put_tile(cl.client(owner), h, x, 0, b"\x89PNG locked %d" % x)
    converge(cl, owner, h, None)  # the replicas hold the hunt (a hunt first seen loads its map on the loop)
    lock = locked(cl, "blobs", 4)
    try:
        ver = vx.publish(cl.client(owner), h)
        worst, n = healthz_while(cl, lock, ("n2", "n3"))
    finally:
        if lock.poll() is None:
            lock.kill()
    print("  blobs locked for 4 s after a publish: %d /healthz on the replicas, the slowest %.3f s"
          % (n, worst))
    true(worst < 1.5, "/healthz on a replica took %.2f s while it read a map version" % worst)

    def served(v, x, body):
        t0 = time.time()
        for node in NODES:
            while True:
                r = cl.client(node).req("GET", "/tiles/%s/%d/0?v=%d" % (h, x, v))
                if r.status == 200 or time.time() - t0 > 15:
                    break
                time.sleep(0.02)
            check(r, 200, what="tile %d of version %d on %s" % (x, v, node))
            eq(r.raw, body, "tile bytes on %s" % node)

    for x in range(4):
        served(ver, x, b"\x89PNG locked %d" % x)
    vx.put_tile(cl.client(owner), h, 2, 0, b"\x89PNG changed")
    ver2 = vx.publish(cl.client(owner), h)
    served(ver2, 2, b"\x89PNG changed")
    served(ver2, 3, b"\x89PNG locked 3")
    for node in ("n2", "n3"):
        eq(metric(cl.client(node), "veltrix_replica_map_blobs_read_on_loop_total"), 0,
           "blobs %s's event loop read itself" % node)


@test
def live_on_a_node_that_does_not_own_the_hunt():
    cl = cluster()
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "rlive", via="n3")
    pid, tok, _ = vx.new_player(cl.client("n2"), "Lee")
    converge(cl, owner, h, None)
    start = cl.client("n2").ok("GET", "/v1/hunts/%s/stats" % h)["seq"]
    w = vx.live(cl.servers["n2"].port, h, tok)
    eq(w.status, 101, "live on a replica")
    for k in range(1, 6):
        check(vx.scan(cl.client(NODES[k % 3]), h, tok, pay["c%d" % k]), 200)
    got = []
    while len(got) < 5:
        m = w.recv_json()
        if "hash" in m:  # the durable events (leaderboard messages carry a seq too)
            got.append(m)
    eq([m["seq"] for m in got], list(range(start + 1, start + 6)), "seqs on the replica's stream")
    eq([m.get("code") for m in got], ["c%d" % k for k in range(1, 6)], "codes in order")
    w.close()
    # Resume on a third node from the second message, at once: the resume carries a
    # player token, so n3 first catches up to the store's head (ReadIndex).
    w3 = vx.live(cl.servers["n3"].port, h, tok, since=start + 2)
    eq(w3.status, 101, "live on another replica")
    again = []
    while len(again) < 3:
        m = w3.recv_json()
        if "hash" in m:
            again.append(m)
    eq([m["seq"] for m in again], [start + 3, start + 4, start + 5], "since on another node")
    eq([m["hash"] for m in again], [m["hash"] for m in got[2:]], "the same hashes on both nodes")
    w3.close()


@test
def a_killed_owner_is_replaced_with_every_acknowledged_write():
    cl = cluster()
    owner = "n3"
    h, pay = hunt_owned_by(cl, owner, "rkill", via="n1")
    players = [vx.new_player(cl.client("n1"), "K%d" % i) for i in range(4)]
    acked = {}
    for i, (pid, tok, _) in enumerate(players):
        for k in range(1, 3):
            r = vx.scan(cl.client(NODES[(i + k) % 3]), h, tok, pay["c%d" % k])
            check(r, 200)
            acked[pid] = acked.get(pid, 0) + r.body["points"]
    r = vx.open_zone(cl.client("n2"), h, players[0][1], "vault")
    check(r, 200)
    acked[players[0][0]] += r.body["points"]
    cl.servers[owner].kill()
    cl.alive = ["n1", "n2"]
    t0, ok = time.time(), None
    while time.time() - t0 < 30 and ok is None:
        r = vx.scan(cl.client("n1"), h, players[1][1], pay["c5"])
        if r.status == 200:
            ok = r
        else:
            check(r, 503, "hunt_moving", what="while the hunt moves")
            time.sleep(0.05)
    true(ok is not None, "no node took the hunt over within 30 s")
    print("  owner killed: the hunt is written again after %.2f s" % (time.time() - t0))
    acked[players[1][0]] += ok.body["points"]
    new_owner = [x["owner"] for x in cl.view("n1")["hunts"] if x["hunt"] == h][0]
    true(new_owner in ("n1", "n2"), "new owner %s" % new_owner)
    converge(cl, new_owner, h, players[0][1])
    lb = vx.leaderboard(cl.client("n2"), h)
    rows = lb.get("top", lb.get("entries", lb.get("leaderboard", [])))
    scores = {row["player_id"]: row["score"] for row in rows}
    eq(scores, acked, "every acknowledged write once")
    st = cl.client(new_owner).ok("GET", "/v1/hunts/%s/stats" % h)
    eq(st["seq"], 1 + 8 + 1 + 1, "seqs gapless: definition, 8 scans, an open, a scan")
    again = vx.open_zone(cl.client("n1"), h, players[2][1], "vault")
    check(again, 404, "no_chest_available", what="the vault's one chest stays opened once")


def metric(c, name):
    r = c.req("GET", "/metrics")
    check(r, 200)
    for line in r.raw.decode().replace("{}", "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


@test
def a_token_read_on_a_replica_sees_the_players_own_writes():
    cl = cluster()
    owner = "n2"
    h, pay = hunt_owned_by(cl, owner, "ryw", via="n2")
    pid, tok, _ = vx.new_player(cl.client("n1"), "Rey")
    converge(cl, owner, h, tok)
    waits0 = metric(cl.client("n3"), "veltrix_read_index_waits_total")
    applied0 = metric(cl.client("n1"), "veltrix_replica_events_applied_total")
    codes = [c for c in sorted(pay) if c.startswith("c")][:8]
    for i, code in enumerate(codes):
        r = vx.scan(cl.client(owner), h, tok, pay[code])
        check(r, 200)
        reader = cl.client("n1" if i % 2 else "n3")  # never the owner, no sleep in between
        me = reader.ok("GET", "/v1/hunts/%s/me" % h, token=tok)
        eq(me["score"], r.body["score"], "score in /me on a replica right after scan %d" % i)
        true(code in me["scanned"], "%s in the replica's scanned list" % code)
        st = reader.ok("GET", "/v1/hunts/%s/stats" % h, token=tok)
        eq(st["replication_lag_events"], 0, "a token read of stats is caught up")
    waits = metric(cl.client("n3"), "veltrix_read_index_waits_total") - waits0
    print("  %d token reads on n3 found the replica behind and caught it up first" % waits)
    # Many token reads at once right after a write: each sees it, and the replica's fetches
    # (off the event loop, one in flight per hunt) serve them together.
    reads0 = metric(cl.client("n3"), "veltrix_read_index_total")
    fetches0 = metric(cl.client("n3"), "veltrix_replica_fetches_total")
    _, tok2, _ = vx.new_player(cl.client("n3"), "Rae")
    r = vx.scan(cl.client(owner), h, tok2, pay[codes[-1]])
    check(r, 200)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        got = list(ex.map(lambda i: cl.client("n3").ok("GET", "/v1/hunts/%s/me" % h, token=tok2)["score"],
                          range(40)))
    eq(got, [r.body["score"]] * 40, "40 concurrent token reads on n3 right after a scan")
    reads = metric(cl.client("n3"), "veltrix_read_index_total") - reads0
    fetches = metric(cl.client("n3"), "veltrix_replica_fetches_total") - fetches0
    true(reads >= 40, "every token read was held for a fetch (%d)" % reads)
    eq(metric(cl.client("n3"), "veltrix_read_index_held"), 0, "reads still held on n3")
    print("  40 concurrent token reads on n3: %d held, %d fetches answered meanwhile (polls too)"
          % (reads, fetches))
    # Anonymous reads never wait; the lag fields are there (0 on the owner).
    st = cl.client(owner).ok("GET", "/v1/hunts/%s/stats" % h)
    eq((st["replication_lag_ms"], st["replication_lag_events"]), (0, 0), "the owner's lag")
    st = cl.client("n1").ok("GET", "/v1/hunts/%s/stats" % h)
    true(st["replication_lag_ms"] >= 0 and st["replication_lag_events"] >= 0, "lag on n1: %s" % st)
    print("  anonymous stats on a replica: replication_lag_ms %d, replication_lag_events %d"
          % (st["replication_lag_ms"], st["replication_lag_events"]))
    true(metric(cl.client("n1"), "veltrix_replica_hunts") >= 1, "n1 follows the hunt")
    cl.client("n1").ok("GET", "/v1/hunts/%s/me" % h, token=tok)  # n1 at the head now
    eq(metric(cl.client("n1"), "veltrix_replica_events_applied_total") - applied0, len(codes) + 1,
       "events n1 applied as a replica since it was caught up (the scans, Rae's too)")
    print("  n1 /metrics: veltrix_replication_lag_ms %d, veltrix_replication_event_age_seconds_sum %s"
          % (metric(cl.client("n1"), "veltrix_replication_lag_ms"),
             metric(cl.client("n1"), "veltrix_replication_event_age_seconds_sum")))


def locked(cl, table, seconds):
    """A psql holding table behind an ACCESS EXCLUSIVE lock for seconds, once it holds it."""
    lock = subprocess.Popen(["psql", "-X", "-q", "-d", cl.url, "-c",
                             "BEGIN; LOCK TABLE veltrix.%s IN ACCESS EXCLUSIVE MODE; "
                             "SELECT pg_sleep(%d); COMMIT;" % (table, seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while pgutil.psql(cl.url, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                      "c.oid = l.relation WHERE c.relname = '%s' AND l.mode = "
                      "'AccessExclusiveLock' AND l.granted" % table) != "1":
        if time.time() - t0 > 10:
            lock.kill()
            raise AssertionError("the lock on %s was not taken" % table)
        time.sleep(0.05)
    return lock


def healthz_while(cl, lock, nodes):
    """/healthz on each of nodes every 0.1 s while lock (a locked() psql) holds its lock:
    (the slowest answer in seconds, how many)."""
    worst, n = 0.0, 0
    while lock.poll() is None:
        for node in nodes:
            t1 = time.time()
            check(cl.client(node).req("GET", "/healthz"), 200, what="/healthz on %s" % node)
            worst, n = max(worst, time.time() - t1), n + 1
        time.sleep(0.1)
    true(lock.returncode == 0, "the lock's psql: %s" % lock.stderr.read())
    return worst, n


@test
def stats_on_a_replica_ask_the_store_off_the_event_loop():
    # No push, polls once a minute: the replicas' memory stays where a token read left it.
    cl = Cluster(args=["--replica-feed", "poll", "--replica-poll-ms", "60000"])
    cl.alive = list(NODES)
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "lag", via=owner)
    _, tok, _ = vx.new_player(cl.client(owner), "Lee")
    cl.client("n2").ok("GET", "/v1/hunts/%s/me" % h, token=tok)  # n2 loads the hunt
    for k in range(1, 4):
        check(vx.scan(cl.client(owner), h, tok, pay["c%d" % k]), 200)
    head = cl.client(owner).ok("GET", "/v1/hunts/%s/stats" % h)["seq"]
    st = cl.client("n2").ok("GET", "/v1/hunts/%s/stats" % h)  # anonymous: no ReadIndex
    eq(st["replication_lag_events"], head - st["seq"], "lag = the store's head - n2's seq")
    true(st["replication_lag_events"] == 3 and st["replication_lag_ms"] >= 0,
         "three scans n2 has not applied: %s" % st)
    looks0 = metric(cl.client("n2"), "veltrix_replica_head_looks_total")
    # The store's log behind a lock for 3 s: stats on n2 waits for its head, n2 does not.
    port = cl.servers["n2"].port
    t0 = time.time()
    lock = locked(cl, "events", 3)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            slow = [ex.submit(raw_req, port, "GET", "/v1/hunts/%s/stats" % h, None, {})
                    for _ in range(8)]
            time.sleep(0.3)  # they wait for the lock now
            t1 = time.time()
            check(cl.client("n2").req("GET", "/healthz"), 200, what="/healthz on n2")
            fast = time.time() - t1
            got = [f.result(30) for f in slow]
        true(lock.wait(30) == 0, "the lock's psql: %s" % lock.stderr.read())
    finally:
        if lock.poll() is None:
            lock.kill()
    print("  8 stats on n2 waited %.2f s for the store's head; /healthz meanwhile: %.3f s"
          % (time.time() - t0, fast))
    # 3 s of lock; a loop waiting for the store would answer /healthz after it.
    true(fast < 1.5, "/healthz on n2 took %.2f s while stats waited for the store" % fast)
    for status, body in got:
        eq(status, 200, "stats once the store answers (%s)" % body[:200])
        b = json.loads(body)
        eq((b["seq"], b["replication_lag_events"]), (st["seq"], 3), "n2's lag, asked of the store")
        true(b["replication_lag_ms"] >= 0, "lag in ms: %s" % b)
    looks = metric(cl.client("n2"), "veltrix_replica_head_looks_total") - looks0
    true(1 <= looks <= 2, "the 8 concurrent stats shared the looks in flight (%d)" % looks)
    eq(metric(cl.client(owner), "veltrix_replica_head_looks_total"), 0, "the owner asks no one")
    # A token read catches n2 up (ReadIndex): lag 0 after it.
    st = cl.client("n2").ok("GET", "/v1/hunts/%s/stats" % h, token=tok)
    eq((st["seq"], st["replication_lag_events"], st["replication_lag_ms"]), (head, 0, 0),
       "a token read of stats on n2")


@test
def a_takeover_reads_the_store_off_the_new_owners_event_loop():
    cl = cluster()
    owner = "n3"
    h, pay = hunt_owned_by(cl, owner, "rtake", via="n1")
    heir = placed(h, ["n1", "n2"])
    pid, tok, _ = vx.new_player(cl.client("n1"), "Tia")
    first = vx.scan(cl.client("n1"), h, tok, pay["c1"], headers={"Idempotency-Key": "take-1"})
    check(first, 200, what="a write acknowledged by the owner")
    # Tia was created on n1: the owner read her first (its gate held the write meanwhile);
    # the write kept its grant through that hold, and its record names its hunt.
    eq(pgutil.psql(cl.url, "SELECT hunt FROM veltrix.idem WHERE key = 'take-1'::bytea"), h,
       "the hunt of the write's idempotency record")
    waits0 = metric(cl.client(heir), "veltrix_takeover_waits_total")
    # The idempotency records behind a lock: the heir's take waits for them, its loop does not.
    lock = locked(cl, "idem", 7)
    try:
        cl.servers[owner].kill()
        cl.alive = ["n1", "n2"]
        got = {}

        def write(name, code, key):
            t0 = time.time()
            while True:
                r = vx.scan(cl.client(heir), h, tok, pay[code], headers={"Idempotency-Key": key})
                if r.status != 503 or time.time() - t0 > 30:
                    break
                check(r, 503, "hunt_moving", what="%s while the hunt moves" % name)
                time.sleep(0.05)
            got[name] = r

        ws = [threading.Thread(target=write, args=a) for a in
              [("retry", "c1", "take-1"), ("new", "c2", "take-2")]]
        for w in ws:
            w.start()
        worst, n = 0.0, 0
        while lock.poll() is None:
            t1 = time.time()
            check(cl.client(heir).req("GET", "/healthz"), 200, what="/healthz on the heir")
            worst, n = max(worst, time.time() - t1), n + 1
            time.sleep(0.1)
        for w in ws:
            w.join(40)
        true(lock.returncode == 0, "the lock's psql: %s" % lock.stderr.read())
    finally:
        if lock.poll() is None:
            lock.kill()
    waits = metric(cl.client(heir), "veltrix_takeover_waits_total") - waits0
    print("  owner killed, its idempotency records locked for 7 s: %d /healthz on the heir %s, the "
          "slowest %.3f s; %d writes waited for the take" % (n, heir, worst, waits))
    true(worst < 1.5, "/healthz on %s took %.2f s while its take waited for the store" % (heir, worst))
    true(waits >= 1, "a write waited for the take (%d)" % waits)
    true(metric(cl.client(heir), 'veltrix_takeovers_total{result="done"}') >= 1, "the take is done")
    check(got["retry"], 200, what="the retry of the acknowledged write on the heir")
    eq(got["retry"].body, first.body, "the retry replays the first answer (applied once)")
    check(got["new"], 200, what="a new write on the heir")
    converge(cl, heir, h, tok)
    me = cl.client("n1").ok("GET", "/v1/hunts/%s/me" % h, token=tok)
    eq(me["score"], first.body["points"] + got["new"].body["points"], "the score: both scans, once")


def feed_record(hunt, seq, time_ms, etype, player, data, hsh=None):
    """feed.h: one record of a pushed body."""
    h = hunt.encode()
    return (bytes([len(h)]) + h + seq.to_bytes(8, "big") + time_ms.to_bytes(8, "big")
            + bytes([etype]) + player + bytes([1 if hsh else 0]) + (hsh or bytes(32))
            + len(data).to_bytes(4, "big") + data)


@test
def replicas_apply_the_owners_push_without_waiting_for_the_store():
    # Replicas read the store only once a minute here: what they show came pushed.
    cl = Cluster(args=["--replica-poll-ms", "60000"])
    cl.alive = list(NODES)
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "push", via=owner)
    pid, tok, _ = vx.new_player(cl.client(owner), "Pia")
    for n in ("n2", "n3"):  # a token read loads the hunt (it has no minute-long wait)
        cl.client(n).ok("GET", "/v1/hunts/%s/me" % h, token=tok)
    pushed0 = {n: metric(cl.client(n), "veltrix_replica_pushed_events_total") for n in NODES}
    t0 = time.time()
    for k in range(1, 6):
        check(vx.scan(cl.client(owner), h, tok, pay["c%d" % k]), 200)
    want = cl.client(owner).ok("GET", "/v1/hunts/%s/leaderboard" % h)
    for n in ("n2", "n3"):  # anonymous reads: no ReadIndex, no poll within the minute
        while cl.client(n).ok("GET", "/v1/hunts/%s/leaderboard" % h) != want:
            true(time.time() - t0 < 20, "%s did not get the owner's push" % n)
            time.sleep(0.01)
        eq(metric(cl.client(n), "veltrix_replica_pushed_events_total") - pushed0[n], 5,
           "events %s applied from the push" % n)
    print("  5 scans on the owner reached both replicas by push in %.0f ms (store polls: once a "
          "minute)" % ((time.time() - t0) * 1000))
    true(metric(cl.client(owner), "veltrix_feed_events_total") >= 6, "the owner's feed counts")
    eq(metric(cl.client(owner), "veltrix_feed_failed_total"), 0, "posts the peers refused")
    # A record larger than a post (a definition of 2,000 codes, ~100 KB) is not pushed: the
    # replicas see the gap at the next pushed event and read the store for it. (Here they
    # poll once a minute; at the default 20 ms, the heads of hunts whose push flows are
    # looked at in one read every 250 ms: a_lost_push_is_found_by_the_look_at_the_heads.)
    big = game_def("push")
    big["codes"] = big["codes"] + [{"id": "b%d" % i, "points": 1, "x": i % 64, "y": i // 64}
                                   for i in range(2000)]
    vx.put_hunt(cl.client(owner), h, big, status=200)
    dropped0 = metric(cl.client(owner), 'veltrix_feed_dropped_total{what="records"}')
    pay = vx.codes_of(cl.client(owner), h)
    t0 = time.time()
    check(vx.scan(cl.client(owner), h, tok, pay["b7"]), 200)
    want = cl.client(owner).ok("GET", "/v1/hunts/%s/leaderboard" % h)
    for n in ("n2", "n3"):
        while cl.client(n).ok("GET", "/v1/hunts/%s/leaderboard" % h) != want:
            true(time.time() - t0 < 20, "%s did not catch up past the unpushed definition" % n)
            time.sleep(0.01)
        true(metric(cl.client(n), "veltrix_replica_push_gaps_total") >= 1, "%s saw the gap" % n)
    eq(metric(cl.client(owner), 'veltrix_feed_dropped_total{what="records"}') - dropped0, 0,
       "records dropped after the definition (the scan was pushed)")
    true(dropped0 >= 1, "the big definition was not pushed (%d)" % dropped0)
    print("  a 100 KB definition, too large to push, reached both replicas through the store "
          "in %.0f ms" % ((time.time() - t0) * 1000))
    # Pushes are for the cluster only, and a bad one changes nothing.
    seq0, dig0 = vx.digest(cl.client("n2"), h)
    rec = feed_record(h, seq0 + 1, int(time.time() * 1000), 2, bytes.fromhex(pid.replace("-", "")),
                      b"{}")
    path = "/v1/cluster/events"
    hd = {"Content-Type": "application/octet-stream", "X-Veltrix-Client": "0.0.0.0"}

    def push(body, to="n2", secret=SECRET):
        fwd = forward_header(secret, to, "n1", int(time.time() * 1000), "0.0.0.0", "POST", path,
                             "", "", body)
        return raw_req(cl.servers[to].port, "POST", path, body, dict(hd, **{"X-Veltrix-Forwarded": fwd}))

    st, b = raw_req(cl.servers["n2"].port, "POST", path, rec, hd)
    eq(st, 403, "an unsigned push (%s)" % b[:200])
    st, b = push(rec, secret=b"\x07" * 32)
    eq(st, 403, "a push signed with another secret (%s)" % b[:200])
    for what, body in [("cut short", rec[:-3]), ("a revocation cut short", b"\0" + rec[1:12]),
                       ("trailing bytes", rec + b"\x05ab"), ("seq 0", feed_record(h, 0, 1, 2, bytes(16), b""))]:
        st, b = push(body)
        eq(st, 400, "a malformed push, %s (%s)" % (what, b[:200]))
    gaps0 = metric(cl.client("n2"), "veltrix_replica_push_gaps_total")
    st, b = push(feed_record(h, seq0 + 5, 1, 2, bytes(16), b"{}"))
    eq(st, 204, "a push past the replica's head (%s)" % b[:200])
    eq(metric(cl.client("n2"), "veltrix_replica_push_gaps_total") - gaps0, 1, "the gap seen")
    eq(vx.digest(cl.client("n2"), h), (seq0, dig0), "n2 after the refused and gapped pushes")


@test
def a_replica_names_a_player_it_never_saw():
    cl = Cluster(args=["--replica-poll-ms", "60000"])  # what the replica shows came pushed
    cl.alive = list(NODES)
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "names", via=owner)
    _, wtok, _ = vx.new_player(cl.client("n2"), "Watcher")
    w = vx.live(cl.servers["n2"].port, h, wtok)
    eq(w.status, 101, "live on the replica n2")
    new0 = metric(cl.client("n2"), "veltrix_replica_push_new_players_total")
    qid, qtok, _ = vx.new_player(cl.client("n3"), "Quinn")  # n2 never sees Quinn's token
    check(vx.scan(cl.client(owner), h, qtok, pay["c3"]), 200)
    while True:
        m = w.recv_json()
        if m.get("type") == "scan":
            break
    eq((m.get("player_id"), m.get("display_name"), m.get("code")), (qid, "Quinn", "c3"),
       "the replica's frame of the new player's first scan")
    w.close()
    want = cl.client(owner).ok("GET", "/v1/hunts/%s/leaderboard" % h)
    true("Quinn" in json.dumps(want), "the owner's leaderboard names Quinn: %s" % want)
    eq(cl.client("n2").ok("GET", "/v1/hunts/%s/leaderboard" % h), want, "n2's leaderboard")
    true(metric(cl.client("n2"), "veltrix_replica_push_new_players_total") > new0,
         "the push named a player n2 lacked")


@test
def a_lost_push_is_found_by_the_look_at_the_heads():
    cl = cluster()  # the default --replica-poll-ms (20)
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "heads", via=owner)
    _, tok, _ = vx.new_player(cl.client(owner), "Hal")
    for n in ("n2", "n3"):
        cl.client(n).ok("GET", "/v1/hunts/%s/me" % h, token=tok)
    check(vx.scan(cl.client(owner), h, tok, pay["c1"]), 200)  # pushed: the push flows
    reads0 = {n: metric(cl.client(n), "veltrix_replica_heads_read_total") for n in ("n2", "n3")}
    # A definition too large to push, and nothing after it: no later push shows the gap.
    big = game_def("heads")
    big["codes"] = big["codes"] + [{"id": "b%d" % i, "points": 1, "x": i % 64, "y": i // 64}
                                   for i in range(2000)]
    vx.put_hunt(cl.client(owner), h, big, status=200)
    want = cl.client(owner).ok("GET", "/v1/hunts/%s/stats" % h)["seq"]
    t0 = time.time()
    for n in ("n2", "n3"):  # anonymous reads: they never ask the store themselves
        while cl.client(n).ok("GET", "/v1/hunts/%s/stats" % h)["seq"] != want:
            true(time.time() - t0 < 20, "%s did not find the unpushed definition" % n)
            time.sleep(0.01)
        true(metric(cl.client(n), "veltrix_replica_heads_read_total") > reads0[n],
             "%s looked at the heads of its pushed hunts" % n)
    print("  an unpushed definition with no event after it reached both replicas in %.0f ms "
          "(heads found behind: n2 %d, n3 %d)" % ((time.time() - t0) * 1000,
          metric(cl.client("n2"), "veltrix_replica_heads_behind_total"),
          metric(cl.client("n3"), "veltrix_replica_heads_behind_total")))


def durable(w, n):
    """The next n durable events (seq, hash) of live client w."""
    got = []
    while len(got) < n:
        m = w.recv_json()
        if "hash" in m:
            got.append((m["seq"], m["hash"]))
    return got


@test
def a_fenced_write_never_lands_and_the_owner_is_rebuilt():
    cl = cluster()
    owner = "n1"
    h, pay = hunt_owned_by(cl, owner, "rfence", via=owner)
    players = [vx.new_player(cl.client(owner), "F%d" % i) for i in range(4)]
    acked, pre = {}, [(players[2], 5), (players[3], 5)]  # on the leaderboard before the fence
    for pl, k in pre:
        r = vx.scan(cl.client(owner), h, pl[1], pay["c%d" % k])
        check(r, 200, what="a scan before the fence")
        acked[pl[0]] = r.body["points"]
    converge(cl, owner, h, None)
    start = cl.client(owner).ok("GET", "/v1/hunts/%s/stats" % h)["seq"]
    w1 = vx.live(cl.servers[owner].port, h, players[0][1])
    w2 = vx.live(cl.servers["n2"].port, h, players[0][1])
    eq((w1.status, w2.status), (101, 101), "live on the owner and on a replica")
    fenced0 = metric(cl.client(owner), "veltrix_log_fenced_total")
    rebuilds0 = metric(cl.client(owner), "veltrix_fenced_rebuilds_total")
    # The snapshots behind a lock: the rebuild (snapshot + log) waits for the store on the
    # tail thread, and the owner's event loop goes on answering.
    lock = locked(cl, "snapshots", 5)
    probe = {"worst": 99.0, "n": 0}

    def healthz():
        probe["worst"], probe["n"] = healthz_while(cl, lock, [owner])

    prober = threading.Thread(target=healthz)
    prober.start()
    fenced, writes = None, [(p, k) for k in range(1, 6) for p in players if (p, k) not in pre]
    for pl, k in writes:
        key = "fence-%s-%d" % (pl[0], k)
        # The epoch moves under the owner; its next renewal (within a second) adopts it.
        pgutil.psql(cl.url, "UPDATE veltrix.hunt_leases SET epoch = epoch + 1 WHERE hunt = '%s'" % h)
        r = vx.scan(cl.client(owner), h, pl[1], pay["c%d" % k], headers={"Idempotency-Key": key})
        if r.status == 200:
            acked[pl[0]] = acked.get(pl[0], 0) + r.body["points"]
            continue
        check(r, 503, "hunt_moving", what="a write under an epoch that moved")
        fenced = (pl, k, key)
        break
    true(fenced is not None, "no write was fenced in %d tries" % len(writes))
    true(metric(cl.client(owner), "veltrix_log_fenced_total") > fenced0, "the log counted it")
    pl, k, key = fenced
    t0 = time.time()
    while True:  # the same write again, same key: lands once the owner adopted the epoch
        r = vx.scan(cl.client(owner), h, pl[1], pay["c%d" % k], headers={"Idempotency-Key": key})
        if r.status == 200:
            break
        check(r, 503, "hunt_moving", what="while the owner adopts the new epoch")
        true(time.time() - t0 < 15, "the owner never wrote the hunt again")
        time.sleep(0.05)
    landed = time.time()
    prober.join(30)
    print("  fenced write: landed on retry after %.2f s; snapshots locked for 5 s meanwhile: "
          "%d /healthz on the owner, the slowest %.3f s" % (landed - t0, probe["n"], probe["worst"]))
    true(probe["worst"] < 1.5, "/healthz on the owner took %.2f s while the fenced hunt's "
         "rebuild waited for the store" % probe["worst"])
    true(metric(cl.client(owner), "veltrix_fenced_rebuilds_total") > rebuilds0, "a rebuild counted")
    acked[pl[0]] = acked.get(pl[0], 0) + r.body["points"]
    converge(cl, owner, h, pl[1])
    lb = vx.leaderboard(cl.client(owner), h)
    scores = {row["player_id"]: row["score"] for row in lb["entries"]}
    eq(scores, acked, "the owner's scores: every acknowledged write once, the fenced one once")
    seq = cl.client(owner).ok("GET", "/v1/hunts/%s/stats" % h)["seq"]
    eq(seq, start + writes.index((pl, k)) + 1, "seqs: one per landed write")
    a, b = durable(w1, seq - start), durable(w2, seq - start)
    eq([x[0] for x in a], list(range(start + 1, seq + 1)), "the owner's stream: gapless")
    eq(a, b, "the same seqs and hashes on the owner's and a replica's streams")
    w1.close()
    w2.close()


if __name__ == "__main__":
    vx.run_all()
