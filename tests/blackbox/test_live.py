#!/usr/bin/env python3
"""Black-box tests: the live stream (API.md "Live stream"): handshake checks, durable
events in seq order with no gap, resume with since= (served in slices per connection,
gapless while events commit, one log pass per hunt, other hunts unaffected, a 5 MB /
4,800-event hunt resumed from 4 connections), resync when too old, positions and
their thinning, the top 10, a slow reader cut off while others keep receiving, bad client
frames closed with the right code, keepalive, and 2,000 clients at once."""
import os
import re
import resource
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import WS, WSClosed, check, eq, true, test, short, scan, collect, open_zone  # noqa: E402


def hunt_def(codes=20):
    return vx.basic_def(
        name="live", width=100, height=50,
        codes=[{"id": "c%d" % i, "points": 10 + i, "x": i % 100, "y": 1} for i in range(codes)],
        items=[{"id": "torch", "x": 1, "y": 2, "quantity": 3}],
        zones=[{"id": "vault", "x": 0, "y": 0, "w": 4, "h": 4,
                "chests": [{"id": "v1", "points": 300, "loot": ["gem"]}]}])


def setup(server, hunt, codes=20, players=1):
    c = server.client()
    vx.put_hunt(c, hunt, hunt_def(codes), status=201)
    ps = [vx.new_player(c, "P%d" % i) for i in range(players)]
    return c, vx.codes_of(c, hunt), ps


def seq_of(c, hunt):
    r = c.req("GET", "/v1/hunts/%s/stats" % hunt)
    check(r, 200)
    return r.body["seq"]


def durable(ws, until_seq, what):
    """Reads messages until seq until_seq; returns the durable ones (with a seq), checking
    that they come in order with no gap."""
    got, last = [], None
    while last is None or last < until_seq:
        m = ws.recv_json()
        if m.get("type") == "leaderboard":
            ws.last_lb = m
        if m.get("type") in ("leaderboard", "position"):
            continue
        true("seq" in m, "%s: message without seq: %s" % (what, short(m)))
        if last is not None:
            eq(m["seq"], last + 1, "%s: seq after %d" % (what, last))
        last = m["seq"]
        got.append(m)
    return got


def wait_leaderboard(ws, done, seconds=10):
    """The newest top-10 message (one durable() skipped counts) once done(message) holds,
    or the last one seen when seconds pass (None if none came)."""
    deadline = time.time() + seconds
    last = getattr(ws, "last_lb", None)
    while time.time() < deadline and not (last and done(last)):
        ws.s.settimeout(max(0.1, deadline - time.time()))
        m = ws.recv_json()
        if m.get("type") == "leaderboard":
            last = m
    return last


def metric(server, name):
    r = server.client().req("GET", "/metrics")
    for line in r.raw.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("metric %s not in /metrics" % name)


@test
def handshake_checks():
    s = vx.shared()
    c, _, [(pid, tok, _r)] = setup(s, "lv-hs")
    w = vx.live(s.port, "lv-hs", "not-a-token")
    check(vx.R(w.status, {}, w.body, b"", "live bad token"), 401, "unauthorized")
    w = WS(s.port, "/v1/hunts/lv-hs/live")
    eq(w.status, 401, "no token")
    w = vx.live(s.port, "lv-nope", tok)
    check(vx.R(w.status, {}, w.body, b"", "live unknown hunt"), 404, "hunt_not_found")
    w = vx.live(s.port, "lv-hs", tok, since=0)
    eq(w.status, 101, "a valid token upgrades")
    w.close()
    r = c.req("GET", "/v1/hunts/lv-hs/live?token=" + tok)
    check(r, 426, "upgrade_required")
    r = c.req("GET", "/v1/hunts/lv-hs/live?token=%s&since=-4" % tok)
    check(r, 400, "invalid_request")
    vx.assert_serving(s)


@test
def expired_token():
    s = vx.Server(token_ttl=1).start()
    c, _, [(pid, tok, _r)] = setup(s, "lv-exp")
    time.sleep(2.1)
    w = vx.live(s.port, "lv-exp", tok)
    check(vx.R(w.status, {}, w.body, b"", "live expired token"), 401, "token_expired")
    s.stop()


@test
def ordering_and_content():
    s = vx.shared()
    c, codes, ps = setup(s, "lv-ord", codes=10, players=4)
    start = seq_of(c, "lv-ord")
    w = vx.live(s.port, "lv-ord", ps[0][1])
    eq(w.status, 101, "upgrade")
    pid, tok, _ = ps[0]
    r = scan(c, "lv-ord", tok, codes["c3"])
    check(r, 200)

    def player(i):
        cc = s.client()
        for k in range(10):
            check(scan(cc, "lv-ord", ps[i][1], codes["c%d" % k]), (200, 409))
        cc.close()
    th = [threading.Thread(target=player, args=(i,)) for i in range(1, 4)]
    for t in th:
        t.start()
    check(collect(c, "lv-ord", tok, "torch"), 200)
    check(open_zone(c, "lv-ord", tok, "vault"), 200)
    for t in th:
        t.join()
    end = seq_of(c, "lv-ord")
    eq(end, start + 1 + 30 + 2, "events written")
    got = durable(w, end, "live")
    eq(got[0]["seq"], start + 1, "first live event")
    for m in got:  # every durable message ends with its hash (API.md "Fairness evidence")
        true(re.fullmatch(r"[0-9a-f]{64}", m.get("hash", "")) and list(m)[-1] == "hash",
             "live message without a trailing hash: %s" % m)
    eq({k: v for k, v in got[0].items() if k != "hash"},
       {"seq": start + 1, "type": "scan", "player_id": pid, "display_name": "P0",
        "code": "c3", "points": 13, "score": 13}, "scan message")
    kinds = {m["type"]: m for m in got}
    true("item_collected" in kinds and "chest_opened" in kinds, "all kinds: %s" % sorted(kinds))
    eq({k: kinds["item_collected"][k] for k in ("player_id", "item", "remaining")},
       {"player_id": pid, "item": "torch", "remaining": 2}, "item_collected message")
    eq({k: kinds["chest_opened"][k] for k in ("player_id", "zone", "chest", "points")},
       {"player_id": pid, "zone": "vault", "chest": "v1", "points": 300}, "chest_opened message")
    # the top 10 arrives (coalesced) and agrees with the HTTP leaderboard once quiet
    lb = vx.leaderboard(c, "lv-ord")

    def rows(m):
        return [(e["rank"], e["player_id"], e["display_name"], e["score"]) for e in m["entries"]]
    last = wait_leaderboard(w, lambda m: rows(m) == rows(lb))
    true(last is not None, "no leaderboard message")
    eq(rows(last), rows(lb), "pushed top 10 equals GET leaderboard")
    w.close()


@test
def top10_is_coalesced():
    """A player scanning 40 codes in a row changes the top 10 forty times; subscribers get
    at most one top 10 per 250 ms (the server's leaderboard_ms), each in order after the
    events it reflects, and the last one equals GET leaderboard."""
    s = vx.shared()
    c, codes, [(pid, tok, _)] = setup(s, "lv-co", codes=40)
    w = vx.live(s.port, "lv-co", tok)
    eq(w.status, 101, "upgrade")
    start = seq_of(c, "lv-co")
    t0 = time.time()
    for i in range(40):
        check(scan(c, "lv-co", tok, codes["c%d" % i]), 200)
    final = sum(10 + i for i in range(40))
    pushes, last_seq, seen = [], start, None
    while not (seen and seen["entries"] and seen["entries"][0]["score"] == final):
        m = w.recv_json()
        if m.get("type") == "leaderboard":
            true(m["seq"] <= last_seq, "a top 10 (seq %d) ahead of the events (%d)"
                 % (m["seq"], last_seq))
            seen = m
            pushes.append(m)
        elif "seq" in m:
            eq(m["seq"], last_seq + 1, "events in order")
            last_seq = m["seq"]
    elapsed = time.time() - t0
    true(len(pushes) <= elapsed / 0.25 + 2,
         "%d top-10 pushes in %.2f s (at most one per 250 ms)" % (len(pushes), elapsed))
    eq([(e["player_id"], e["score"]) for e in seen["entries"]],
       [(e["player_id"], e["score"]) for e in vx.leaderboard(c, "lv-co")["entries"]],
       "last top 10 equals GET leaderboard")
    w.close()


@test
def names_are_escaped():
    """Display names with quotes, backslashes and non-ASCII text arrive intact in the scan
    message and in the pushed top 10 (frames are written by hand, not by a JSON library)."""
    s = vx.shared()
    c = s.client()
    vx.put_hunt(c, "lv-esc", hunt_def(3), status=201)
    codes = vx.codes_of(c, "lv-esc")
    name = 'Zoë "the \\ fox" </script>'
    pid, tok, _ = vx.new_player(c, name)
    w = vx.live(s.port, "lv-esc", tok)
    eq(w.status, 101, "upgrade")
    start = seq_of(c, "lv-esc")
    check(scan(c, "lv-esc", tok, codes["c1"]), 200)
    got = durable(w, start + 1, "escaped")
    eq((got[-1]["display_name"], got[-1]["player_id"]), (name, pid), "scan message name")
    lb = wait_leaderboard(w, lambda m: bool(m["entries"]))
    true(lb is not None and lb["entries"], "no leaderboard message with entries")
    eq((lb["entries"][0]["display_name"], lb["entries"][0]["player_id"]), (name, pid),
       "top 10 name")
    w.close()


@test
def resume_after_reconnect():
    s = vx.shared()
    c, codes, ps = setup(s, "lv-res", codes=30, players=2)
    tok = ps[0][1]
    w = vx.live(s.port, "lv-res", tok, since=0)
    for k in range(10):
        check(scan(c, "lv-res", tok, codes["c%d" % k]), 200)
    got = durable(w, seq_of(c, "lv-res"), "first connection")
    eq(got[0]["seq"], 1, "since=0 starts at seq 1")
    eq(got[0]["type"], "hunt_updated", "seq 1 is the definition")
    cut = got[5]["seq"]  # pretend we only processed up to here
    w.close()
    for k in range(10, 20):  # written while disconnected
        check(scan(c, "lv-res", ps[1][1], codes["c%d" % k]), 200)
    w = vx.live(s.port, "lv-res", tok, since=cut)
    check(scan(c, "lv-res", tok, codes["c25"]), 200)  # and one live after reconnecting
    end = seq_of(c, "lv-res")
    got2 = durable(w, end, "after reconnect")
    eq([m["seq"] for m in got2], list(range(cut + 1, end + 1)), "nothing missed, nothing repeated")
    eq(got2[:len(got) - 6], got[6:], "replayed messages are the same bytes' JSON")
    w.close()
    w = vx.live(s.port, "lv-res", tok, since=end)  # up to date: nothing replayed, then live
    check(scan(c, "lv-res", tok, codes["c26"]), 200)
    eq(durable(w, end + 1, "up to date")[0]["seq"], end + 1, "next live event")
    w.close()


@test
def resume_from_the_store():
    s = vx.Server(args=["--live-window", "4"]).start()
    c, codes, ps = setup(s, "lv-st", codes=20, players=2)
    w = vx.live(s.port, "lv-st", ps[0][1], since=0)
    for k in range(12):
        check(scan(c, "lv-st", ps[k % 2][1], codes["c%d" % k]), 200)
    check(collect(c, "lv-st", ps[0][1], "torch"), 200)
    check(open_zone(c, "lv-st", ps[1][1], "vault"), 200)
    end = seq_of(c, "lv-st")
    live = durable(w, end, "live")
    w.close()
    w = vx.live(s.port, "lv-st", ps[0][1], since=2)  # older than the window of 4
    eq(durable(w, end, "from the store, then the window"), live[2:], "resumed from seq 3")
    w.close()
    s.restart()  # nothing in the window: all from the store
    w = vx.live(s.port, "lv-st", ps[1][1], since=0)
    eq(durable(w, end, "after a restart"), live, "the same messages after a restart")
    check(scan(c, "lv-st", ps[0][1], codes["c19"]), 200)
    eq(durable(w, end + 1, "then live")[0]["seq"], end + 1, "then live")
    true(metric(s, "veltrix_live_store_replays_total") >= 1, "store replays counted")
    s.stop()  # with a live connection open: exits 0 (and frees it: LeakSanitizer)
    w.close()


# The sanitizer builds (make SANITIZE=...) are several times slower: the big-hunt tests
# keep their shape (a definition of MBs, thousands of events) at a smaller size there.
SAN = bool(os.environ.get("SANITIZE"))


def big_hunt(server, hunt, n_codes, n_events, writers=8):
    """A hunt like the review's: n_codes codes with 64-character ids (a definition of
    ~107 bytes a code: 50,000 codes are 5.3 MB) and n_events events (the definition and
    n_events - 1 scans by `writers` players). Returns (client, code payloads, players)."""
    c = server.client(timeout=120)
    codes = [{"id": "code-%06d-%s" % (i, "x" * 52), "points": 1 + i % 50, "x": i % 100, "y": 1}
             for i in range(n_codes)]
    vx.put_hunt(c, hunt, vx.basic_def(name="big", width=100, height=50, codes=codes), status=201)
    payloads = vx.codes_of(c, hunt)
    payloads = [payloads[x["id"]] for x in codes]
    ps = [vx.new_player(c, "B%d" % i) for i in range(writers)]
    errors = []

    def w(k):
        cc = server.client(timeout=60)
        try:
            for i in range(k, n_events - 1, writers):
                check(scan(cc, hunt, ps[k][1], payloads[i]), 200)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        cc.close()
    th = [threading.Thread(target=w, args=(k,)) for k in range(writers)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    true(not errors, "writing the big hunt: %s" % short(errors[:1]))
    eq(seq_of(c, hunt), n_events, "events in the big hunt")
    return c, payloads, ps


def no_resync(msgs, what):
    bad = [m for m in msgs if m.get("type") == "resync"]
    true(not bad, "%s: got a resync: %s" % (what, short(bad[:1])))


@test
def big_resume_is_sliced_and_shared():
    """The review's case: a hunt with a 5 MB definition and 4,800 events; after a restart
    (every window empty) one player resumes since=0 from 4 connections that do not read.
    Everything is kept, so each of them must get every event 1..N, in order, and never a
    resync. Their catch-up is served in slices per connection while the server goes on
    with the rest: it is still in progress (4 connections catching up) while another
    hunt's live subscriber gets its events and that hunt's resumer its whole history;
    events committed meanwhile arrive once, in order, after the catch-up; the big hunt's
    log is read (and its definition parsed) once for the 4, not once per resume; no
    slice is over --live-replay-slice-bytes (64 KiB by default).
    On the code before the fix the 4 resumes got {"type":"resync"} (each over half the
    connection's queue, after replaying the whole log synchronously, 4 times)."""
    n_codes, n_events = (12000, 1200) if SAN else (50000, 4800)
    s = vx.Server(fsync="off").start()
    c, codes, ps = big_hunt(s, "lv-big5", n_codes, n_events)
    cb, bcodes, bps = setup(s, "lv-other", codes=20, players=10)
    for i in range(10):
        for k in range(15):
            check(scan(cb, "lv-other", bps[i][1], bcodes["c%d" % k]), 200)
    seq_a, seq_b = seq_of(c, "lv-big5"), seq_of(cb, "lv-other")
    s.restart()
    c, cb = s.client(timeout=60), s.client()
    b_live = vx.live(s.port, "lv-other", bps[0][1], since=seq_b)
    slow = [vx.live(s.port, "lv-big5", ps[0][1], since=0, rcvbuf=4096) for _ in range(4)]
    for i, w in enumerate(slow):
        w.s.settimeout(60)
        m = w.recv_json()
        h1 = m.pop("hash", None)
        eq(m, {"seq": 1, "type": "hunt_updated"}, "slow resumer %d: first message" % i)
    b_res = vx.live(s.port, "lv-other", bps[1][1], since=0)
    got = durable(b_res, seq_b, "the other hunt's resume")
    no_resync(got, "the other hunt's resume")
    eq([m["seq"] for m in got], list(range(1, seq_b + 1)), "the other hunt's history")
    # the 4 do not read: their catch-up waits for their sockets, the server does not
    eq(metric(s, "veltrix_live_replay_catching_up"), 4, "connections still catching up")
    vx.assert_serving(s, "during the catch-up")
    for k in range(15, 20):  # committed during the catch-up, on both hunts
        check(scan(cb, "lv-other", bps[2][1], bcodes["c%d" % k]), 200)
    for i in range(n_events - 1, n_events + 29):
        check(scan(c, "lv-big5", ps[1][1], codes[i]), 200)
    got = durable(b_live, seq_b + 5, "the other hunt's live subscriber")
    eq([m["seq"] for m in got], list(range(seq_b + 1, seq_b + 6)), "other hunt, live")
    got = durable(b_res, seq_b + 5, "the other hunt's resumer, then live")
    eq([m["seq"] for m in got], list(range(seq_b + 1, seq_b + 6)), "other hunt, then live")
    eq(metric(s, "veltrix_live_replay_catching_up"), 4, "still catching up")
    end = seq_a + 30
    first = None
    for i, w in enumerate(slow):
        got = [{"seq": 1, "type": "hunt_updated", "hash": h1}] + durable(w, end, "slow resumer %d" % i)
        no_resync(got, "slow resumer %d" % i)
        eq([m["seq"] for m in got], list(range(1, end + 1)), "slow resumer %d: seqs" % i)
        if first is None:
            first = got
        else:
            eq(got, first, "slow resumer %d: the same messages as the first" % i)
        w.close()
    eq(first[-1]["code"], "code-%06d-%s" % (n_events + 28, "x" * 52), "the last one is live")
    eq(metric(s, "veltrix_live_resyncs_total"), 0, "resyncs")
    eq(metric(s, "veltrix_live_store_replays_total"), 2, "store replays (one per hunt)")
    eq(metric(s, "veltrix_live_replay_store_events_total"), seq_a + seq_b,
       "events read from the store: each log once")
    slices = metric(s, "veltrix_live_replay_slices_total")
    sent = metric(s, "veltrix_live_replay_bytes_total")
    true(sent >= 4 * 200 * seq_a, "catch-up bytes counted: %d" % sent)
    true(sent <= slices * 65536, "%d catch-up bytes in %d slices: one over 64 KiB" % (sent, slices))
    b_live.close()
    b_res.close()
    s.stop()


@test
def catch_up_while_events_commit():
    """The tricky part of a resume: events committed while a connection catches up. With
    a window of 16 (so those events leave the window before the slow connections reach
    them) and slices of 2 KiB, connections resume from seq 0, 150 and near the end and do
    not read while 4 writers commit; then they read, slowly, while the writers go on; a
    fifth resumes from 0 in the middle of it. Each must get every event after its since
    exactly once, in order, and no resync; a live subscriber of another hunt gets that
    hunt's events meanwhile."""
    s = vx.Server(fsync="off", args=["--live-window", "16", "--live-replay-slice-bytes", "2048"])
    s.start()
    c, codes, ps = setup(s, "lv-cc", codes=60, players=50)
    for i in range(50):
        for k in range(20):
            check(scan(c, "lv-cc", ps[i][1], codes["c%d" % k]), 200)
    cb, bcodes, [(bp, btok, _)] = setup(s, "lv-cc2", codes=30)
    b_start = seq_of(cb, "lv-cc2")
    b_live = vx.live(s.port, "lv-cc2", btok, since=b_start)
    base = seq_of(c, "lv-cc")
    end = base + 20 * 20  # 20 writers' players scan 20 more codes each
    sinces = [0, 150, base - 3]
    ws = [vx.live(s.port, "lv-cc", ps[0][1], since=x, rcvbuf=4096) for x in sinces]
    committed, go, errors = [0], threading.Event(), []
    lock = threading.Lock()

    def writer(k):
        cc = s.client()
        try:
            for i in range(k, 20, 4):
                for j in range(20, 40):
                    check(scan(cc, "lv-cc", ps[i][1], codes["c%d" % j]), 200)
                    with lock:
                        committed[0] += 1
                        if committed[0] == 200:
                            go.set()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            go.set()
        cc.close()
    results = {}

    def reader(i, w, since):
        try:
            go.wait(60)
            w.s.settimeout(60)
            msgs, n = [], 0
            while not msgs or msgs[-1]["seq"] < end:
                m = w.recv_json()
                if m.get("type") in ("leaderboard", "position"):
                    continue
                msgs.append(m)
                n += 1
                if n % 100 == 0:
                    time.sleep(0.01)  # a slow reader
            results[i] = (since, msgs)
        except Exception as e:  # noqa: BLE001
            results[i] = (since, e)
    th = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    th += [threading.Thread(target=reader, args=(i, w, x)) for i, (w, x) in
           enumerate(zip(ws, sinces))]
    for t in th:
        t.start()
    go.wait(60)
    catching = metric(s, "veltrix_live_replay_catching_up")
    true(catching >= 2, "connections catching up while the writers commit: %d" % catching)
    late = vx.live(s.port, "lv-cc", ps[1][1], since=0, rcvbuf=4096)
    th.append(threading.Thread(target=reader, args=(len(ws), late, 0)))
    th[-1].start()
    for k in range(5):
        check(scan(cb, "lv-cc2", btok, bcodes["c%d" % k]), 200)
    got = durable(b_live, b_start + 5, "the other hunt's live subscriber")
    eq([m["seq"] for m in got], list(range(b_start + 1, b_start + 6)), "other hunt, live")
    for t in th:
        t.join(120)
    true(not errors, "writers: %s" % short(errors[:1]))
    eq(seq_of(c, "lv-cc"), end, "events committed")
    eq(len(results), len(ws) + 1, "readers done")
    for i in sorted(results):
        since, msgs = results[i]
        true(not isinstance(msgs, Exception), "reader %d (since %d): %s" % (i, since, short(msgs)))
        no_resync(msgs, "reader %d" % i)
        eq([m["seq"] for m in msgs], list(range(since + 1, end + 1)),
           "reader %d (since %d): every event once, in order" % (i, since))
    eq(results[0][1][-len(results[2][1]):], results[2][1], "the same messages")
    eq(metric(s, "veltrix_live_resyncs_total"), 0, "resyncs")
    for w in ws + [late, b_live]:
        w.close()
    s.stop()


@test
def replay_max_is_per_hunt():
    """--live-replay-max bounds the hunts whose log is replayed for resumes, hunt by hunt:
    resumes of a hunt within it are all served, however many come in the same second (no
    budget shared with other hunts or resumes: one resume never makes another resync); a
    resume older than the window of a hunt over it gets a resync (and a counter)."""
    s = vx.Server(args=["--live-window", "2", "--live-replay-max", "21"]).start()
    c, codes, ps = setup(s, "lv-bud", codes=25)
    tok = ps[0][1]
    for k in range(20):
        check(scan(c, "lv-bud", tok, codes["c%d" % k]), 200)
    end = seq_of(c, "lv-bud")
    eq(end, 21, "seq (the definition and 20 scans)")
    cb, bcodes, bps = setup(s, "lv-bud2", codes=25)
    for k in range(24):
        check(scan(cb, "lv-bud2", bps[0][1], bcodes["c%d" % k]), 200)
    end2 = seq_of(cb, "lv-bud2")
    first = None
    for i in range(6):  # back to back, interleaved with refused resumes of the big hunt
        w = vx.live(s.port, "lv-bud", tok, since=1)
        got = durable(w, end, "resume %d from the store" % i)
        eq([m["seq"] for m in got], list(range(2, end + 1)), "resume %d: replayed from seq 2" % i)
        first = first or got
        eq(got, first, "resume %d: the same messages" % i)
        w.close()
        w = vx.live(s.port, "lv-bud2", bps[0][1], since=1)
        eq(w.recv_json(), {"type": "resync", "seq": end2}, "a hunt over --live-replay-max")
        w.close()
    true(metric(s, "veltrix_live_store_replays_refused_total") >= 6, "refused replays counted")
    eq(metric(s, "veltrix_live_store_replays_total"), 1, "one archive for the 6 resumes")
    w = vx.live(s.port, "lv-bud2", bps[0][1], since=end2 - 2)  # within its window: served
    eq([m["seq"] for m in durable(w, end2, "window of the big hunt")], [end2 - 1, end2],
       "the window of a hunt over --live-replay-max")
    w.close()
    s.stop()


@test
def resync_when_too_old():
    s = vx.Server(args=["--live-window", "8", "--live-replay-max", "0"]).start()
    c, codes, ps = setup(s, "lv-old", codes=20)
    tok = ps[0][1]
    for k in range(12):
        check(scan(c, "lv-old", tok, codes["c%d" % k]), 200)
    end = seq_of(c, "lv-old")
    w = vx.live(s.port, "lv-old", tok, since=1)
    m = w.recv_json()
    eq(m, {"type": "resync", "seq": end}, "since older than the window")
    check(scan(c, "lv-old", tok, codes["c15"]), 200)
    eq(durable(w, end + 1, "live after resync")[0]["seq"], end + 1, "then live")
    w.close()
    w = vx.live(s.port, "lv-old", tok, since=end + 1 - 8)  # exactly the window: replayed
    got = durable(w, end + 1, "window edge")
    eq(got[0]["seq"], end + 2 - 8, "oldest kept")
    w.close()
    w = vx.live(s.port, "lv-old", tok, since=end + 100)
    eq(w.recv_json(), {"type": "resync", "seq": end + 1}, "since from the future")
    w.close()
    s.stop()
    # a resume larger than the connection's queue is not a reason to resync: it comes in
    # slices (at most half the queue each), then live
    s = vx.Server(args=["--live-queue-bytes", "4096"]).start()
    c, codes, ps = setup(s, "lv-big", codes=40)
    for k in range(40):
        check(scan(c, "lv-big", ps[0][1], codes["c%d" % k]), 200)
    end = seq_of(c, "lv-big")
    w = vx.live(s.port, "lv-big", ps[0][1], since=0)
    check(collect(c, "lv-big", ps[0][1], "torch"), 200)
    got = durable(w, end + 1, "resume over the queue size, then live")
    no_resync(got, "resume over the queue size")
    eq([m["seq"] for m in got], list(range(1, end + 2)), "every event, then the live one")
    sent = metric(s, "veltrix_live_replay_bytes_total")
    true(sent > 4096 and sent <= metric(s, "veltrix_live_replay_slices_total") * 2048,
         "slices of at most half the queue")
    w.close()
    s.stop()


@test
def positions_broadcast_and_thinned():
    s = vx.shared()
    c, codes, ps = setup(s, "lv-pos", players=3)
    (p0, t0, _), (p1, t1, _), (p2, t2, _) = ps
    watcher = vx.live(s.port, "lv-pos", t1)
    check(c.req("POST", "/v1/hunts/lv-pos/position", {"x": 500, "y": 1}, token=t0), 400,
          "out_of_bounds")
    n = 40
    t_start = time.time()
    for i in range(n):
        check(c.req("POST", "/v1/hunts/lv-pos/position", {"x": i, "y": 2.5}, token=t0), 202)
    elapsed = time.time() - t_start
    mover = vx.live(s.port, "lv-pos", t2)
    mover.send_json({"type": "position", "x": 100, "y": 0})  # outside the map: ignored
    mover.send_json({"type": "position", "x": 99.5, "y": 49})  # p2's first position
    got = []
    watcher.s.settimeout(3.0)
    try:
        while True:
            m = watcher.recv_json()
            if m["type"] == "position":
                got.append(m)
    except socket.timeout:
        pass
    posts = [m for m in got if m["player_id"] == p0]
    # thinned to one per 200 ms per player: the POSTs spanned `elapsed` seconds
    bound = int(elapsed / 0.2) + 2
    true(1 <= len(posts) <= bound, "%d positions delivered from %d POSTs in %.2f s (bound %d)"
         % (len(posts), n, elapsed, bound))
    true(all(set(m) == {"type", "player_id", "x", "y"} for m in got),
         "position message shape: %s" % short(got[:3]))
    eq(posts[0], {"type": "position", "player_id": p0, "x": 0, "y": 2.5}, "first position")
    eq([(m["x"], m["y"]) for m in got if m["player_id"] == p2], [(99.5, 49)],
       "client position message delivered, the one outside the map ignored")
    if elapsed < 0.2 * (n - 2):
        true(metric(s, "veltrix_live_positions_thinned_total") > 0, "thinning counted")
    watcher.close()
    mover.close()


@test
def slow_reader_cut_off():
    s = vx.Server(fsync="off", args=["--live-queue-bytes", "16384"]).start()
    players, codes_n = 24, 60
    c, codes, ps = setup(s, "lv-slow", codes=codes_n, players=players)
    base = seq_of(c, "lv-slow")
    slow = vx.live(s.port, "lv-slow", ps[0][1], rcvbuf=4096)  # never reads until the end
    fast = vx.live(s.port, "lv-slow", ps[1][1])
    fast.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    got, stop = [], threading.Event()

    def reader():
        try:
            got.extend(durable(fast, base + players * codes_n, "fast reader"))
        except Exception as e:  # noqa: BLE001
            got.append(e)
    rt = threading.Thread(target=reader)
    rt.start()

    def writer(k):
        cc = s.client()
        for i in range(k, players, 4):
            for j in range(codes_n):
                check(scan(cc, "lv-slow", ps[i][1], codes["c%d" % j]), 200)
        cc.close()
    th = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    rt.join(60)
    true(not rt.is_alive(), "fast reader did not finish")
    true(got and not isinstance(got[-1], Exception), "fast reader: %s" % short(got[-1:]))
    eq(len(got), players * codes_n, "the fast reader got every event")
    slow.s.settimeout(10)
    code, msgs = slow.expect_close()
    eq(code, 1008, "slow reader's close code")
    true(msgs and msgs[-1].get("type") == "resync", "resync before close: %s" % short(msgs[-2:]))
    events = [m for m in msgs if "seq" in m and m.get("type") not in ("resync", "leaderboard")]
    eq([m["seq"] for m in events], list(range(base + 1, base + 1 + len(events))),
       "what the slow reader got is a gap-free prefix")
    true(len(events) < players * codes_n, "the slow reader was cut off before the end")
    true(metric(s, "veltrix_live_slow_closed_total") >= 1, "slow close counted")
    r = c.req("GET", "/v1/hunts/lv-slow/stats")
    eq(r.body["live_connections"], 1, "live_connections after the cut (the fast one)")
    fast.close()
    s.stop()


def bad_frame(s, tok, data, want, what):
    w = vx.live(s.port, "lv-bad", tok)
    eq(w.status, 101, what + ": upgrade")
    w.send_raw(data)
    w.s.settimeout(10)
    code, _ = w.expect_close()
    eq(code, want, what + ": close code")
    w.close()


@test
def bad_client_frames():
    s = vx.shared()
    c, _, [(pid, tok, _r)] = setup(s, "lv-bad")
    F = WS.frame
    bad_frame(s, tok, F(1, b'{"type":"position"}', mask=False), 1002, "unmasked frame")
    bad_frame(s, tok, F(1, b"x", rsv=0x40), 1002, "RSV1 set")
    bad_frame(s, tok, F(3, b"x"), 1002, "reserved opcode")
    bad_frame(s, tok, F(9, b"x" * 126), 1002, "ping over 125 bytes")
    bad_frame(s, tok, F(0, b"x"), 1002, "continuation without a start")
    bad_frame(s, tok, F(1, b"a" * 4097), 1009, "text of 4097 bytes")
    bad_frame(s, tok, F(1, b"", length=1 << 40)[:14], 1009, "announced 1 TiB")
    bad_frame(s, tok, F(1, b"a" * 3000, fin=False) + F(0, b"b" * 1200), 1009,
              "fragments over 4 KiB")
    bad_frame(s, tok, F(1, b"\xc3\x28"), 1007, "invalid UTF-8")
    bad_frame(s, tok, F(2, b"\x00\x01"), 1003, "binary message")
    bad_frame(s, tok, F(8, b"\x03\xe8"), 1000, "client close is answered")
    # a good connection: ping answered with the same payload, messages of exactly 4 KiB and
    # fragmented ones accepted, garbage JSON ignored
    w = vx.live(s.port, "lv-bad", tok)
    w.send(9, b"hello")
    w.send(1, b"z" * 4096)
    w.send(1, b'{"type":"posi', fin=False)
    w.send(0, b'tion","x":1,"y":1}')
    w.send(1, b"not json")
    w.s.settimeout(10)
    op, p = w.recv_frame()
    eq((op, p), (10, b"hello"), "pong")
    m = w.recv_json()
    eq((m["type"], m["x"]), ("position", 1), "fragmented position delivered")
    w.close()
    true(metric(s, "veltrix_live_protocol_closed_total") >= 10, "protocol closes counted")
    vx.assert_serving(s)


@test
def ping_flood_without_reading():
    s = vx.Server(args=["--live-queue-bytes", "16384"]).start()
    c, _, [(pid, tok, _r)] = setup(s, "lv-flood")
    w = vx.live(s.port, "lv-flood", tok, rcvbuf=4096)
    w.s.settimeout(5)
    ping = WS.frame(9, b"p" * 125)
    try:
        w.send_raw(ping * 4000)  # 4000 pongs owed, never read while sending
    except (socket.timeout, BrokenPipeError, ConnectionResetError):
        pass
    code, _ = w.expect_close()
    eq(code, 1008, "closed once the pongs owed pass the queue cap")
    w.close()
    vx.assert_serving(s)
    s.stop()


@test
def frames_sent_with_the_handshake():
    s = vx.shared()
    c, _, [(pid, tok, _r)] = setup(s, "lv-pipe")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(("GET /v1/hunts/lv-pipe/live?token=%s HTTP/1.1\r\nHost: x\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  "\r\n" % tok).encode() + WS.frame(9, b"early"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        true(d, "closed during the handshake")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    true(head.startswith(b"HTTP/1.1 101"), "upgraded: %s" % short(head))
    true(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "RFC 6455 example accept key")
    w = WS.__new__(WS)
    w.s, w.buf, w.pongs = sock, rest, []
    eq(w.recv_frame(), (10, b"early"), "a ping sent with the handshake is answered")
    w.close()


@test
def keepalive_closes_dead_connections():
    s = vx.Server(args=["--live-ping-ms", "200"]).start()
    c, _, [(pid, tok, _r)] = setup(s, "lv-ka")
    w = vx.live(s.port, "lv-ka", tok)
    w.s.settimeout(10)
    op, _p = w.recv_frame()  # read without answering: we are "dead"
    eq(op, 9, "a ping comes")
    frames = []
    try:
        while True:
            frames.append(w.recv_frame()[0])
    except WSClosed as e:
        eq(e.code, None, "dead connection dropped without a close frame")
    except ConnectionResetError:
        pass
    true(metric(s, "veltrix_live_dead_closed_total") >= 1, "dead close counted")
    eq(c.req("GET", "/v1/hunts/lv-ka/stats").body["live_connections"], 0, "connection gone")
    s.stop()


@test
def two_thousand_clients():
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 500), hard))
    # all from 127.0.0.1: above the default per-address connection cap (2000)
    s = vx.Server(args=["--max-connections-per-ip", str(n + 100)]).start()
    c, codes, ps = setup(s, "lv-many", players=1)
    tok = ps[0][1]
    ws = []
    try:
        for i in range(n):
            w = vx.live(s.port, "lv-many", tok)
            eq(w.status, 101, "client %d upgraded" % i)
            ws.append(w)
        eq(c.req("GET", "/v1/hunts/lv-many/stats").body["live_connections"], n, "live_connections")
        true(metric(s, "veltrix_live_connections") >= n, "veltrix_live_connections")
        check(scan(c, "lv-many", tok, codes["c1"]), 200)
        check(scan(c, "lv-many", tok, codes["c2"]), 200)
        end = seq_of(c, "lv-many")
        pending = {w.s.fileno(): w for w in ws}
        done = 0
        deadline = time.time() + 60
        last = {}
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN)
        while pending and time.time() < deadline:
            for fd, _ev in poller.poll(1000):
                if fd not in pending:
                    continue
                w = pending[fd]
                w._fill()
                while True:
                    try:
                        op, p = _frame_nowait(w)
                    except EOFError:
                        break
                    if op == 1:
                        m = vx.json.loads(p)
                        if "seq" in m and m.get("type") != "leaderboard":
                            if fd in last:
                                eq(m["seq"], last[fd] + 1, "client order")
                            last[fd] = m["seq"]
                if last.get(fd) == end:
                    del pending[fd]
                    poller.unregister(fd)
                    done += 1
        eq(done, n, "clients that received both events")
    finally:
        for w in ws:
            w.close()


def _frame_nowait(w):
    """A whole frame from w's buffer, or EOFError when it does not hold one."""
    b = w.buf
    if len(b) < 2:
        raise EOFError
    n, off = b[1] & 0x7f, 2
    if n == 126:
        if len(b) < 4:
            raise EOFError
        n, off = int.from_bytes(b[2:4], "big"), 4
    if len(b) < off + n:
        raise EOFError
    w.buf = b[off + n:]
    return b[0] & 0x0f, b[off:off + n]


if __name__ == "__main__":
    vx.run_all()
