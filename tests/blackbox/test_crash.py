#!/usr/bin/env python3
"""Black-box crash tests (docs/DESIGN.md "Testing"): with --fsync always, 8 threads of players
scan, collect and open chests; the server is SIGKILLed mid-load, restarted on the same
data directory, and every acknowledged write must be there, exactly once. In-flight
requests are then retried with their Idempotency-Key. The hunt digest must survive a
clean restart. Three kills in a row."""
import json
import os
import random
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402

HUNT = "crash"
N_CODES, N_ITEMS, ITEM_QTY, RANGE, N_LOCKED = 400, 30, 4, 300, 20
CODE_POINTS = {"c-%03d" % i: (i * 37) % 1000 + 1 for i in range(N_CODES)}
LOCK_REQ = {"lk-%d" % i: "it-%02d" % (i % 10) for i in range(N_LOCKED)}


def chest_points(ch):
    return 7 if ch.startswith("z-") else 25


def crash_def():
    return {"name": "crash", "map": {"width": 256, "height": 256},
            "codes": [{"id": cid, "points": p, "x": i % 256, "y": i // 256}
                      for i, (cid, p) in enumerate(sorted(CODE_POINTS.items()))],
            "items": [{"id": "it-%02d" % i, "x": i, "y": i, "quantity": ITEM_QTY} for i in range(N_ITEMS)],
            "zones": [{"id": "z", "x": 0, "y": 0, "w": 16, "h": 16, "chests": [],
                       "chest_range": {"prefix": "z-", "count": RANGE, "points": 7, "loot": ["coin"]}},
                      {"id": "lk", "x": 16, "y": 16, "w": 16, "h": 16,
                       "chests": [{"id": ch, "points": 25, "loot": ["gem"], "requires": req}
                                  for ch, req in LOCK_REQ.items()]}]}


class Player:
    def __init__(self, pid, tok):
        self.pid, self.tok = pid, tok
        self.scans, self.opens, self.collects = set(), set(), set()


class Load:
    """The model: every acknowledged write, and each thread's request in flight."""

    def __init__(self, players, payloads, seed):
        self.players = players
        self.pay = payloads
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.acks = 0
        self.inflight = {}     # thread id -> (player index, kind, target, key)
        self.errors = []
        self.new_players = []  # acknowledged POST /v1/players: (pid, token)
        self.key_n = 0

    def key(self, tid):
        with self.lock:
            self.key_n += 1
            return "crash-%d-%d-%d" % (tid, self.key_n, os.getpid())

    def send(self, cl, pl, kind, target, key):
        h = {"Idempotency-Key": key}
        if kind == "scan":
            return vx.scan(cl, HUNT, pl.tok, self.pay[target], headers=h)
        if kind == "collect":
            return vx.collect(cl, HUNT, pl.tok, target, headers=h)
        return vx.open_zone(cl, HUNT, pl.tok, target, headers=h)

    def record(self, pl, kind, target, r):
        """Applies an answer to the model; returns an error string or None."""
        if r.status == 200:
            b = r.body
            if kind == "scan":
                if b.get("code") != target or b.get("points") != CODE_POINTS[target]:
                    return "scan %s answered %s" % (target, short(b))
                pl.scans.add(target)
            elif kind == "collect":
                if b.get("item") != target:
                    return "collect %s answered %s" % (target, short(b))
                pl.collects.add(target)
            else:
                ch = b.get("chest")
                if not isinstance(ch, str) or not ch.startswith(target + "-") or b.get("points") != chest_points(ch):
                    return "open %s answered %s" % (target, short(b))
                if target == "lk" and LOCK_REQ.get(ch) not in pl.collects:
                    return "open gave %s without the key %s" % (ch, LOCK_REQ.get(ch))
                pl.opens.add(ch)
            return None
        ok = {"scan": (), "collect": ("item_exhausted",), "open": ("no_chest_available",)}[kind]
        if r.status in (404, 409) and r.code() in ok:
            return None
        return "%s -> %d %s" % (r.desc, r.status, short(r.body, 200))


def worker(load, tid, port, mine, stop, killed, kill_now, threshold):
    cl = vx.Client(port=port, timeout=10.0, retry=False)
    rng = random.Random(tid * 7919 + load.rng.randrange(1 << 30))
    try:
        while not stop.is_set():
            pi = rng.choice(mine)
            pl = load.players[pi]
            x = rng.random()
            if tid == 0 and x < 0.03:
                key = load.key(tid)
                load.inflight[tid] = (pi, "player", None, key)
                try:
                    r = cl.req("POST", "/v1/players", {"display_name": "late-%s" % key},
                               headers={"Idempotency-Key": key})
                except ConnectionError as e:
                    if not killed.is_set():
                        load.errors.append("thread %d: %s (before the kill)" % (tid, e))
                    return
                if r.status == 201:
                    load.new_players.append((r.body["player_id"], r.body["token"]))
                load.inflight.pop(tid, None)
                continue
            if x < 0.6:
                left = [c for c in load.pay if c not in pl.scans]
                if not left:
                    continue
                kind, target = "scan", rng.choice(left)
            elif x < 0.85:
                kind, target = "open", ("lk" if rng.random() < 0.3 else "z")
            else:
                left = ["it-%02d" % i for i in range(N_ITEMS) if "it-%02d" % i not in pl.collects]
                if not left:
                    continue
                kind, target = "collect", rng.choice(left)
            key = load.key(tid)
            load.inflight[tid] = (pi, kind, target, key)
            try:
                r = load.send(cl, pl, kind, target, key)
            except ConnectionError as e:
                if not killed.is_set():
                    load.errors.append("thread %d: %s (before the kill)" % (tid, e))
                return  # the request stays in flight
            err = load.record(pl, kind, target, r)
            load.inflight.pop(tid, None)
            if err:
                if r.status >= 500 or not killed.is_set():
                    load.errors.append("thread %d: %s" % (tid, err))
                continue
            if r.status == 200:
                with load.lock:
                    load.acks += 1
                    if load.acks >= threshold:
                        kill_now.set()
    finally:
        cl.close()


def verify(c, load, exact, what):
    """Checks the server state against the model. exact=False allows the requests in
    flight at the kill to have been applied (or not)."""
    inflight = {}
    if not exact:
        for tid, (pi, kind, target, key) in load.inflight.items():
            inflight.setdefault(pi, []).append((kind, target))
    owners = {}
    problems = []
    ranked = {}
    for pi, pl in enumerate(load.players):
        m = vx.me(c, HUNT, pl.tok)
        fl = inflight.get(pi, [])
        sc, op, co = set(m.get("scanned", [])), set(m.get("opened", [])), set(m.get("collected", []))
        may_scan = {t for k, t in fl if k == "scan"}
        may_collect = {t for k, t in fl if k == "collect"}
        may_open = sum(1 for k, t in fl if k == "open")
        if not sc >= pl.scans:
            problems.append("player %d lost acknowledged scans %s" % (pi, sorted(pl.scans - sc)))
        if not (sc - pl.scans) <= may_scan:
            problems.append("player %d has scans never acknowledged nor in flight: %s" % (pi, sorted(sc - pl.scans - may_scan)))
        if not op >= pl.opens:
            problems.append("player %d lost acknowledged chests %s" % (pi, sorted(pl.opens - op)))
        if len(op - pl.opens) > may_open:
            problems.append("player %d has chests never acknowledged nor in flight: %s" % (pi, sorted(op - pl.opens)))
        if not co >= pl.collects:
            problems.append("player %d lost acknowledged collects %s" % (pi, sorted(pl.collects - co)))
        if not (co - pl.collects) <= may_collect:
            problems.append("player %d has collects never acknowledged nor in flight: %s" % (pi, sorted(co - pl.collects)))
        if exact and (sc, op, co) != (pl.scans, pl.opens, pl.collects):
            problems.append("player %d state differs from the acknowledged writes" % pi)
        acked = sum(CODE_POINTS[x] for x in pl.scans) + sum(chest_points(x) for x in pl.opens)
        actual = sum(CODE_POINTS.get(x, 0) for x in sc) + sum(chest_points(x) for x in op)
        if m.get("score") != actual:
            problems.append("player %d: score %s but scanned+opened are worth %d" % (pi, m.get("score"), actual))
        if not isinstance(m.get("score"), int) or m["score"] < acked:
            problems.append("player %d: score %s below the acknowledged %d" % (pi, m.get("score"), acked))
        inv = {k: v for k, v in (m.get("inventory") or {}).items() if v}
        want = {}
        zc = sum(1 for x in op if x.startswith("z-"))
        lc = sum(1 for x in op if x.startswith("lk-"))
        if zc:
            want["coin"] = zc
        if lc:
            want["gem"] = lc
        for it in co:
            n = 1 - sum(1 for x in op if LOCK_REQ.get(x) == it)
            if n < 0:
                problems.append("player %d opened %d chests with the single key %s" % (pi, 1 - n, it))
            if n > 0:
                want[it] = n
        if inv != want:
            problems.append("player %d: inventory %s, expected %s" % (pi, short(inv), short(want)))
        for ch in op:
            owners.setdefault(ch, []).append(pi)
        if sc or op:
            ranked[pl.pid] = m.get("score")
    for ch, who in owners.items():
        if len(who) > 1:
            problems.append("chest %s opened by players %s" % (ch, who))
    h = vx.get_hunt(c, HUNT)
    zopen = sum(1 for ch in owners if ch.startswith("z-"))
    lopen = sum(1 for ch in owners if ch.startswith("lk-"))
    if h.get("chests_left") != {"z": RANGE - zopen, "lk": N_LOCKED - lopen}:
        problems.append("chests_left %s, players hold %d z and %d lk chests" % (h.get("chests_left"), zopen, lopen))
    want_items = {"it-%02d" % i: ITEM_QTY for i in range(N_ITEMS)}
    for pi, pl in enumerate(load.players):
        for it in vx.me(c, HUNT, pl.tok)["collected"]:
            want_items[it] -= 1
    if h.get("items_left") != want_items:
        problems.append("items_left %s, expected %s" % (short(h.get("items_left")), short(want_items)))
    lb = vx.leaderboard(c, HUNT, "?limit=1000")
    got = {e["player_id"]: e["score"] for e in lb["entries"]}
    if got != ranked or lb.get("total") != len(ranked):
        problems.append("leaderboard (total %s) %s differs from /me scores %s" % (lb.get("total"), short(got), short(ranked)))
    scores = [e["score"] for e in lb["entries"]]
    if scores != sorted(scores, reverse=True) or [e["rank"] for e in lb["entries"]] != list(range(1, len(scores) + 1)):
        problems.append("leaderboard not in order: %s" % short(lb["entries"]))
    for pid, tok in load.new_players:
        r = c.req("GET", "/v1/players/me", token=tok)
        if r.status != 200 or r.body.get("player_id") != pid:
            problems.append("player %s created (201) before the kill: /me -> %d %s" % (pid, r.status, short(r.body)))
    if problems:
        raise AssertionError("%s: %d problems: %s" % (what, len(problems), " || ".join(problems[:12])))


def retry_inflight(c, load):
    """Retries every request that was in flight at the kill with its Idempotency-Key."""
    for tid, (pi, kind, target, key) in sorted(load.inflight.items()):
        if kind == "player":
            r = c.req("POST", "/v1/players", {"display_name": "late-%s" % key}, headers={"Idempotency-Key": key})
            check(r, 201, what="retry of an in-flight player creation")
            load.new_players.append((r.body["player_id"], r.body["token"]))
            continue
        pl = load.players[pi]
        before = vx.me(c, HUNT, pl.tok)
        r = load.send(c, pl, kind, target, key)
        replayed = r.headers.get("idempotent-replayed", "").lower() == "true"
        if kind == "scan":
            was = target in before["scanned"]
        elif kind == "collect":
            was = target in before["collected"]
        else:
            was = None
        if r.status == 200:
            if kind == "open":
                was = r.body.get("chest") in before["opened"]
            if was and not replayed:
                raise AssertionError("retry %s: applied before the kill but not answered as a replay: %d %s"
                                     % (r.desc, r.status, short(r.body)))
            if replayed and not was:
                raise AssertionError("retry %s: answered as a replay but the write is not in the state: %s"
                                     % (r.desc, short(r.body)))
        elif was:
            raise AssertionError("retry %s: the write was durable but the retry got %d %s (no replay)"
                                 % (r.desc, r.status, short(r.body)))
        err = load.record(pl, kind, target, r)
        if err:
            raise AssertionError("retry of an in-flight request: " + err)
    load.inflight.clear()


@test
def kill9_under_load_three_times():
    seed = int(time.time()) & 0xffff
    vx.note("test_crash seed %d" % seed)
    s = vx.Server(fsync="always").start()
    true("always" in " ".join(s.cmd()), "fsync flag")
    c = s.client()
    vx.put_hunt(c, HUNT, crash_def(), status=201)
    payloads = vx.codes_of(c, HUNT)
    eq(len(payloads), N_CODES, "number of codes")
    players = [Player(*vx.new_player(c, "crash-%d" % i)[:2]) for i in range(16)]
    load = Load(players, payloads, seed)
    total_acks = 0
    for rnd in range(3):
        stop, killed, kill_now = threading.Event(), threading.Event(), threading.Event()
        threshold = load.acks + load.rng.randrange(300, 800)
        ths = [threading.Thread(target=worker, args=(load, t, s.port, [2 * t, 2 * t + 1], stop, killed, kill_now,
                                                     threshold)) for t in range(8)]
        for t in ths:
            t.start()
        kill_now.wait(8.0)
        true(s.alive(), "round %d: the server died under load (exit code %s)" % (rnd, s.proc.returncode))
        killed.set()
        s.kill()
        stop.set()
        for t in ths:
            t.join(20)
        true(not any(t.is_alive() for t in ths), "load threads did not stop after the kill")
        true(not load.errors, "round %d: errors under load: %s" % (rnd, " || ".join(load.errors[:8])))
        vx.note("round %d: %d acknowledged writes so far, %d in flight at the kill"
                % (rnd, load.acks, len(load.inflight)))
        true(load.acks > total_acks, "round %d: no write was acknowledged before the kill" % rnd)
        total_acks = load.acks
        c.close()
        s.start()
        c = s.client()
        verify(c, load, exact=False, what="round %d after SIGKILL" % rnd)
        retry_inflight(c, load)
        verify(c, load, exact=True, what="round %d after retrying in-flight requests" % rnd)
        d1 = vx.digest(c, HUNT)
        c.close()
        s.stop()
        s.start()
        c = s.client()
        eq(vx.digest(c, HUNT), d1, "round %d: digest after SIGTERM + restart" % rnd)
        verify(c, load, exact=True, what="round %d after a clean restart" % rnd)
    # an idle SIGKILL changes nothing either
    d1 = vx.digest(c, HUNT)
    c.close()
    s.kill()
    s.start()
    c = s.client()
    eq(vx.digest(c, HUNT), d1, "digest after an idle SIGKILL + restart")


@test
def kill9_right_after_definition_and_players():
    """Acknowledged definitions, players, refreshes and map publishes survive a SIGKILL."""
    s = vx.Server(fsync="always").start()
    c = s.client()
    vx.put_hunt(c, "k2", crash_def(), status=201)
    pay = vx.codes_of(c, "k2")
    ps = [vx.new_player(c, "k2-%d" % i) for i in range(5)]
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": ps[0][2]})
    check(r, 200)
    new_tok, new_rt = r.body["token"], r.body["refresh_token"]
    r_tile = c.req("PUT", "/v1/hunts/k2/tiles/1/1", b"tile!", admin=True, headers={"Content-Type": "image/png"})
    r_pub = c.req("POST", "/v1/hunts/k2/map/publish", {}, admin=True)
    check(vx.scan(c, "k2", ps[1][1], pay["c-001"]), 200)
    before = vx.get_hunt(c, "k2")
    d1 = vx.digest(c, "k2")
    c.close()
    s.kill()
    s.start()
    c = s.client()
    eq(vx.get_hunt(c, "k2"), before, "hunt after SIGKILL")
    eq(vx.digest(c, "k2"), d1, "digest after SIGKILL")
    eq(vx.codes_of(c, "k2"), pay, "payloads after SIGKILL")
    for pid, tok, _ in ps[1:]:
        r = c.req("GET", "/v1/players/me", token=tok)
        check(r, 200, what="player token after SIGKILL")
        eq(r.body["player_id"], pid, "player after SIGKILL")
    check(c.req("GET", "/v1/players/me", token=new_tok), 200, what="refreshed token after SIGKILL")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": ps[0][2]}), 401, "refresh_token_reused",
          what="refresh token used before the SIGKILL")
    if vx.TILES:
        check(r_tile, 204, what="(before the kill)")
        check(r_pub, 200, what="(before the kill)")
        r = c.req("GET", "/tiles/k2/1/1")
        check(r, 200, what="published tile after SIGKILL")
        eq(r.raw, b"tile!", "tile bytes after SIGKILL")


@test
def fsync_modes_announced_and_flushed_on_sigterm():
    for mode in ("batch", "off", "always"):
        s = vx.Server(fsync=mode).start()
        true(mode in s.stderr_text(), "--fsync %s is not mentioned in the log at start: %s" % (mode, short(s.stderr_text(), 300)))
        c = s.client()
        vx.put_hunt(c, "fm", crash_def(), status=201)
        pay = vx.codes_of(c, "fm")
        players = [vx.new_player(c, "fm-%d" % i) for i in range(5)]
        for i, (pid, tok, _) in enumerate(players):
            check(vx.scan(c, "fm", tok, pay["c-%03d" % i]), 200)
            check(vx.open_zone(c, "fm", tok, "z"), 200)
        d1 = vx.digest(c, "fm")
        c.close()
        s.stop()  # SIGTERM flushes whatever the mode
        s.start()
        c = s.client()
        eq(vx.digest(c, "fm"), d1, "--fsync %s: digest after SIGTERM + restart" % mode)
        for i, (pid, tok, _) in enumerate(players):
            m = vx.me(c, "fm", tok)
            eq(m["scanned"], ["c-%03d" % i], "--fsync %s: scans after restart" % mode)
            eq(len(m["opened"]), 1, "--fsync %s: opened after restart" % mode)
        c.close()
        s.stop()


def _raw_scan(port, hunt, tok, code, key):
    """A scan as raw bytes on a connection made now (the kernel completes it even while the
    server is stopped): (socket, request bytes)."""
    body = json.dumps({"code": code}).encode()
    head = ("POST /v1/hunts/%s/scans HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Idempotency-Key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (hunt, tok, key, len(body))).encode()
    return socket.create_connection(("127.0.0.1", port), timeout=30), head + body


def _answer(sock):
    """The status line and body of the one answer on sock, read to its close; or the
    transport error's name."""
    data = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            data += b
    except OSError as e:
        return "transport error %r after %d bytes" % (e, len(data))
    finally:
        sock.close()
    if not data:
        return "closed without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(errors="replace") + " " + body.decode(errors="replace")


@test
def sigterm_answers_every_connection_already_made():
    """SIGTERM stops accepting, but a connection the kernel already completed (waiting in
    the listen backlog, or accepted with its request still on the way) is served, not
    reset: each may carry a write its client cannot tell was applied."""
    s = vx.Server().start()
    c = s.client()
    vx.put_hunt(c, "st", crash_def(), status=201)
    pay = vx.codes_of(c, "st")
    players = [vx.new_player(c, "st-%d" % i) for i in range(12)]
    c.close()
    # 1. In the backlog: the server is stopped while the clients connect and send.
    os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        waiting = []
        for i, (pid, tok, _) in enumerate(players[:10]):
            sock, req = _raw_scan(s.port, "st", tok, pay["c-%03d" % i], "st-%d" % i)
            sock.sendall(req)
            waiting.append(sock)
    finally:
        s.expect_dead = True
        os.kill(s.proc.pid, signal.SIGTERM)
        os.kill(s.proc.pid, signal.SIGCONT)
    answers = [_answer(x) for x in waiting]
    bad = [a for a in answers if not a.startswith("HTTP/1.1 200")]
    eq(bad, [], "scans waiting in the listen backlog at SIGTERM")
    eq(s.proc.wait(30), 0, "exit code after SIGTERM")
    # 2. Accepted, its request sent after the SIGTERM.
    s.start()
    late = []
    for i, (pid, tok, _) in enumerate(players[10:], 10):
        late.append(_raw_scan(s.port, "st", tok, pay["c-%03d" % i], "st-%d" % i))
    c = s.client()
    check(c.req("GET", "/healthz"), 200)  # the loop went round: the connections above are accepted
    c.close()
    s.expect_dead = True
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    for sock, req in late:
        try:
            sock.sendall(req)
        except OSError as e:
            true(False, "a request sent 0.2 s after SIGTERM on an accepted connection: %r" % e)
    answers = [_answer(x) for x, _ in late]
    bad = [a for a in answers if not a.startswith("HTTP/1.1 200")]
    eq(bad, [], "scans sent on accepted connections after SIGTERM")
    eq(s.proc.wait(30), 0, "exit code after SIGTERM")
    # Every write answered 200 is there after the restart.
    s.start()
    c = s.client()
    for i, (pid, tok, _) in enumerate(players):
        eq(vx.me(c, "st", tok)["scanned"], ["c-%03d" % i], "player %d's scan after the restart" % i)
    c.close()
    s.stop()


if __name__ == "__main__":
    vx.run_all()
