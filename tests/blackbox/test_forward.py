#!/usr/bin/env python3
"""Black-box tests of writes on several nodes (API.md "Several nodes on PostgreSQL", issue
15 item 3): one PostgreSQL, three nodes on loopback, started here.

- The same write through the hunt's owner and through another node gets the same answer:
  status, Content-Type, Retry-After and the body byte for byte (two hunts with the same
  definition and the same owner, so that the bodies are comparable).
- A write retried with its Idempotency-Key through another node is replayed, not applied
  twice.
- A chest race spread over the three nodes has exactly one winner per chest.
- An X-Veltrix-Forwarded header from a client — malformed, with a wrong MAC, expired, or
  signed for another node — gets 403 and changes nothing; a correctly signed one (this
  test knows the cluster secret: --cluster-secret-file) is accepted, so the refusals are
  not an accident of the test's signing; a forwarded request that reaches a node which
  does not own the hunt is not forwarded again (503 hunt_moving).
- The client address rate limit applies on the owner to forwarded writes, by the address
  the forwarder carries (several forwarders share one bucket per client).
- Killing the owner gives retryable 503 hunt_moving (Retry-After: 1), then the same write
  succeeds once another node has taken the hunt over.
- Writes that reach a node in the same loop turn for the same owner travel in one batch
  (POST /v1/cluster/batch, fwdbatch.h); each client still gets its own answer, byte for
  byte what the owner gives when the same request is replayed to it directly. A batch from
  outside the cluster gets 403, a malformed one 400, and both change nothing; a node-only
  route inside a batch gets 403; a write inside a batch for a hunt the receiver does not
  own gets 503 hunt_moving (never a second hop).
- A player read from the store (a token of a player this node does not hold) and a
  refresh token's rotation wait for the store off the event loop: while PostgreSQL holds
  them behind a table lock, the same node answers other requests at once.
- Players created on one node play through the others (the nodes share the secret: the
  store's in the tests without --cluster-secret-file).
Forward latency (owner-direct vs through another node) is printed, never asserted."""
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgutil  # noqa: E402
import vx  # noqa: E402
from vx import check, eq, true, test  # noqa: E402

NODES = ["n1", "n2", "n3"]
SECRET = bytes(range(32))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes: tiles are stored as sent


def score(node, hunt):
    """cluster.h: the first 8 bytes of SHA-256("veltrix-place-v1" || len || node || hunt)."""
    d = hashlib.sha256(b"veltrix-place-v1" + bytes([len(node)]) + node.encode() + hunt.encode())
    return int.from_bytes(d.digest()[:8], "big")


def placed(hunt, nodes=NODES):
    return max(sorted(nodes), key=lambda n: score(n, hunt))


def hunts_on(node, n, prefix="fw"):
    """n hunt names that placement gives node (over all three nodes)."""
    out, i = [], 0
    while len(out) < n:
        h = "%s%d" % (prefix, i)
        if placed(h) == node:
            out.append(h)
        i += 1
    return out


def forward_header(secret, to, frm, t_ms, client, method, path, auth, idem, body):
    """forward.h / cluster.h: the MAC of a forwarded request, under the key of node `to`."""
    key = hmac.new(secret, b"veltrix-forward-key-v1:" + to.encode(), hashlib.sha256).digest()
    m = hmac.new(key, b"veltrix-forward-v1", hashlib.sha256)
    for f in (frm, str(t_ms), client, method, path, auth, idem):
        b = f.encode()
        m.update(len(b).to_bytes(4, "big") + b)
    m.update((32).to_bytes(4, "big") + hashlib.sha256(body).digest())
    return "vf1.%s.%d.%s" % (frm, t_ms, m.hexdigest())


class Cluster:
    def __init__(self, args=(), secret_file=True, url=None):
        self.url = url or pgutil.fresh_db()
        extra = list(args)
        if secret_file:
            fd, path = tempfile.mkstemp(prefix="vx-secret-")
            os.write(fd, SECRET.hex().encode() + b"\n")
            os.close(fd)
            extra += ["--cluster-secret-file", path]
        self.extra = extra
        self.servers = {n: self.start(n) for n in NODES}
        self.all_alive()

    def all_alive(self, timeout=30.0):
        """Waits until every node sees the three alive: a hunt created before that may be
        placed by a view that lacks a node (then written where that view said)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if all(sorted(x["node_id"] for x in self.view(n)["nodes"] if x["alive"]) == NODES
                   for n in NODES):
                return
            time.sleep(0.1)
        raise AssertionError("the nodes do not all see each other alive")

    def start(self, name):
        s = vx.Server(args=["--store", self.url, "--node-id", name] + self.extra)
        s.args += ["--advertise", "http://127.0.0.1:%d" % s.port]
        return s.start()

    def client(self, name):
        return self.servers[name].client()

    def view(self, name):
        # Each look from an address of its own: the rate limit test's buckets are small
        # (X-Forwarded-For counts only behind --trusted-proxy).
        self.looks = getattr(self, "looks", 0) + 1
        xff = {"X-Forwarded-For": "10.9.%d.%d" % (self.looks // 250 % 250, self.looks % 250 + 1)}
        return self.client(name).ok("GET", "/v1/cluster", admin=True, headers=xff)

    def owned(self, hunts, alive=NODES, timeout=30.0):
        """Waits until every live node's view gives each hunt its placement as owner."""
        t0, last = time.time(), None
        while time.time() - t0 < timeout:
            views = [self.view(n) for n in alive]
            last = views
            if all({h["hunt"]: h["owner"] for h in v["hunts"]}.get(hunt) == placed(hunt, alive)
                   for v in views for hunt in hunts):
                return time.time() - t0
            time.sleep(0.1)
        raise AssertionError("hunts %s not owned by their placement within %.0f s: %s"
                             % (hunts, timeout, vx.short(last, 600)))


def game_def(name):
    return vx.basic_def(
        name=name,
        codes=[{"id": "c%d" % i, "points": 10 * i, "x": i, "y": i} for i in range(1, 6)],
        items=[{"id": "key", "x": 9, "y": 9, "quantity": 3}],
        zones=[{"id": "vault", "x": 0, "y": 0, "w": 8, "h": 8,
                "chests": [{"id": "v1", "points": 100, "loot": ["gem"]}]},
               {"id": "race", "x": 8, "y": 8, "w": 8, "h": 8,
                "chests": [{"id": "r%d" % i, "points": 5, "loot": ["coin"]} for i in range(5)]}])


def forwarded(c, result="relayed"):
    return vx.metric(c, "veltrix_forward_requests_total", '{result="%s"}' % result)


def same(a, b, what):
    """Two answers are the same to a client: status, the headers it acts on, the bytes."""
    eq(a.status, b.status, what + ": status (%s | %s)" % (a, b))
    for h in ("content-type", "retry-after", "location", "idempotent-replayed"):
        eq(a.headers.get(h), b.headers.get(h), what + ": header " + h)
    eq(a.raw, b.raw, what + ": body bytes")


@test
def the_same_answer_through_any_node():
    cl = Cluster()
    owner = "n2"
    others = [n for n in NODES if n != owner]
    ha, hb = hunts_on(owner, 2)
    # Defined through a node that does not own them: forwarded to their placement.
    vx.put_hunt(cl.client(others[0]), ha, game_def("same"), status=201)
    vx.put_hunt(cl.client(others[1]), hb, game_def("same"), status=201)
    cl.owned([ha, hb])
    co, cx = cl.client(owner), cl.client(others[0])
    pa, pb = vx.codes_of(co, ha), vx.codes_of(co, hb)
    _, tok, _ = vx.new_player(cl.client(others[1]), "Ana")  # created on a third node
    before = forwarded(cx)
    pairs = [
        ("scan", lambda c, h, p: vx.scan(c, h, tok, p["c3"])),
        ("scan again", lambda c, h, p: vx.scan(c, h, tok, p["c3"])),
        ("scan of a bad code", lambda c, h, p: vx.scan(c, h, tok, "vx1.nope.c1.AAAA")),
        ("collect", lambda c, h, p: vx.collect(c, h, tok, "key")),
        ("collect unknown", lambda c, h, p: vx.collect(c, h, tok, "nothing")),
        ("open", lambda c, h, p: vx.open_zone(c, h, tok, "vault")),
        ("open an empty zone", lambda c, h, p: vx.open_zone(c, h, tok, "vault")),
        ("bad token", lambda c, h, p: vx.scan(c, h, "vt1.bad", p["c1"])),
        ("bad JSON", lambda c, h, p: c.req("POST", "/v1/hunts/%s/scans" % h, b"{", token=tok)),
        ("position", lambda c, h, p: c.req("POST", "/v1/hunts/%s/position" % h, {"x": 3, "y": 4},
                                           token=tok)),
        ("tile upload (admin, binary body)", lambda c, h, p: c.req(
            "PUT", "/v1/hunts/%s/tiles/1/2" % h, PNG, admin=True, headers={"Content-Type": "image/png"})),
        ("map publish", lambda c, h, p: c.req("POST", "/v1/hunts/%s/map/publish" % h, {}, admin=True)),
        ("publish with a player token", lambda c, h, p: c.req("POST", "/v1/hunts/%s/map/publish" % h,
                                                              {}, token=tok)),
    ]
    for what, call in pairs:
        a, b = call(co, ha, pa), call(cx, hb, pb)
        same(a, b, what)
    eq(forwarded(cx) - before, len(pairs), "writes the other node forwarded")
    true(vx.metric(co, "veltrix_player_loads_total", '{result="read"}') >= 1,
         "the owner read the player another node created from the store")
    print("  %d writes: the same answers from the owner and through %s" % (len(pairs), others[0]))
    # Forward latency, printed: sequential scans of a bad code (answered by the engine's
    # check, so the store is not in the way), direct vs through another node.
    for label, c, h in (("owner-direct", co, ha), ("forwarded", cx, hb)):
        ts = []
        for _ in range(200):
            t0 = time.perf_counter()
            check(vx.scan(c, h, tok, "vx1.nope.c1.AAAA"), 400)
            ts.append((time.perf_counter() - t0) * 1000)
        ts.sort()
        print("  %s: p50 %.2f ms, p99 %.2f ms (200 sequential requests)" % (label, ts[100], ts[197]))
    # Persistent connections: the sequential writes above reused one connection.
    opened = vx.metric(cx, "veltrix_forward_connections_opened_total")
    true(opened <= 3, "connections opened to forward %d writes: %d" % (len(pairs) + 200, opened))


@test
def refresh_tokens_rotate_in_the_store_across_nodes():
    """A refresh token works once on any node: rotated on a node that did not issue it,
    its successor on a third; the new access token is honoured everywhere; a token used
    again on any node is a reuse that revokes every session, on every node's refresh."""
    cl = Cluster()
    pid, tok, ref = vx.new_player(cl.client("n1"), "Roamer")
    r = cl.client("n2").req("POST", "/v1/sessions/refresh", {"refresh_token": ref})
    check(r, 200, what="a refresh on a node that did not issue the token")
    tok2, ref2 = r.body["token"], r.body["refresh_token"]
    for n in NODES:
        me = cl.client(n).req("GET", "/v1/players/me", token=tok2)
        check(me, 200, what="the new access token on %s" % n)
        eq(me.body.get("player_id"), pid, "the new token's player on %s" % n)
    r = cl.client("n3").req("POST", "/v1/sessions/refresh", {"refresh_token": ref2})
    check(r, 200, what="its successor rotated on a third node")
    tok3, ref3 = r.body["token"], r.body["refresh_token"]
    # the first token again, on the node that issued it: a reuse, every session revoked
    r = cl.client("n1").req("POST", "/v1/sessions/refresh", {"refresh_token": ref})
    check(r, 401, "refresh_token_reused", what="a used refresh token presented again")
    for n in NODES:
        r = cl.client(n).req("POST", "/v1/sessions/refresh", {"refresh_token": ref3})
        check(r, 401, what="the current refresh token after the revocation, on %s" % n)
    r = cl.client("n1").req("GET", "/v1/players/me", token=tok3)
    check(r, 401, what="an access token of the revoked generation on the revoking node")
    # ... and on the other nodes too, told by the revoking node's push (not at expiry)
    for n in ("n2", "n3"):
        t0 = time.time()
        while cl.client(n).req("GET", "/v1/players/me", token=tok3).status != 401:
            true(time.time() - t0 < 5, "%s still honours an access token of the revoked "
                 "generation 5 s after the revocation (token TTL: 600 s)" % n)
            time.sleep(0.02)
    eq(vx.metric(cl.client("n2"), "veltrix_revocations_received_total"), 1,
       "revocations n2 applied")
    # a fresh player's token used twice on two nodes at once: exactly one success
    _, _, ref4 = vx.new_player(cl.client("n2"), "Twice")
    import threading
    out = {}

    def go(n):
        out[n] = cl.servers[n].client().req("POST", "/v1/sessions/refresh", {"refresh_token": ref4})
    ths = [threading.Thread(target=go, args=(n,)) for n in ("n1", "n3")]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    eq(sorted(x.status for x in out.values()), [200, 401],
       "one refresh token presented on two nodes at once: one success, one reuse (%s)"
       % {n: (x.status, x.body) for n, x in out.items()})


@test
def idempotency_key_retry_through_another_node():
    cl = Cluster()
    owner = "n1"
    x, y = [n for n in NODES if n != owner]
    (h,) = hunts_on(owner, 1, "idem")
    vx.put_hunt(cl.client(owner), h, game_def("idem"), status=201)
    cl.owned([h])
    co = cl.client(owner)
    pay = vx.codes_of(co, h)
    _, tok, _ = vx.new_player(cl.client(y), "Bo")
    seq0, _ = vx.digest(co, h)
    key = {"Idempotency-Key": "retry-1"}
    first = vx.scan(cl.client(x), h, tok, pay["c2"], headers=key)
    check(first, 200, what="first try through %s" % x)
    for n in (y, owner, x):
        again = vx.scan(cl.client(n), h, tok, pay["c2"], headers=key)
        check(again, 200, what="retry through %s" % n)
        eq(again.headers.get("idempotent-replayed"), "true", "retry through %s replayed" % n)
        eq(again.raw, first.raw, "retry through %s: body bytes" % n)
    check(vx.scan(cl.client(y), h, tok, pay["c3"], headers=key), 422, "idempotency_key_reused",
          what="the same key with another body through another node")
    seq1, _ = vx.digest(co, h)
    eq(seq1 - seq0, 1, "events the retries added")


def raw_req(port, method, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@test
def a_chest_race_over_three_nodes_has_one_winner_per_chest():
    cl = Cluster()
    owner = "n3"
    (h,) = hunts_on(owner, 1, "race")
    vx.put_hunt(cl.client("n1"), h, game_def("race"), status=201)
    cl.owned([h])
    players = [vx.new_player(cl.client(NODES[i % 3]), "racer-%d" % i)[1] for i in range(30)]
    res = [None] * len(players)
    go = threading.Event()

    def run(i):
        port = cl.servers[NODES[i % 3]].port
        go.wait()
        res[i] = raw_req(port, "POST", "/v1/hunts/%s/zones/race/open" % h, b"{}",
                         {"Authorization": "Bearer " + players[i], "Content-Type": "application/json"})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(players))]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    wins = [json.loads(b)["chest"] for s, b in res if s == 200]
    other = [(s, b) for s, b in res if s != 200 and not (s == 404 and b"no_chest_available" in b)]
    true(not other, "unexpected answers: %s" % other[:3])
    eq(sorted(wins), ["r%d" % i for i in range(5)], "chests won (each exactly once)")
    left = vx.get_hunt(cl.client(owner), h)["chests_left"]
    eq(left.get("race"), 0, "chests left in the zone")


def batch_body(reqs):
    """fwdbatch.h: the body of a batch of forwarded requests (dicts: method, path, auth,
    idem, ctype (None: absent), body bytes, client IPv4)."""
    def field(b, n):
        return len(b).to_bytes(n, "big") + b

    out = bytes([1]) + len(reqs).to_bytes(2, "big")
    for q in reqs:
        flags = sum(bit for bit, k in ((1, "auth"), (2, "idem"), (4, "ctype")) if q.get(k) is not None)
        client = bytes(10) + b"\xff\xff" + bytes(int(x) for x in q.get("client", "198.51.100.7").split("."))
        out += (bytes([flags]) + client + field(q["method"].encode(), 1) + field(q["path"].encode(), 2)
                + b"".join(field((q.get(k) or "").encode(), 2) for k in ("auth", "idem", "ctype"))
                + field(q.get("body", b""), 4))
    return out


def batch_answers(body):
    """fwdbatch.h: the answers of a batch, [(status, {header: value}, body bytes)]."""
    eq(body[0], 1, "the answer's version")
    n, i, out = int.from_bytes(body[1:3], "big"), 3, []
    for _ in range(n):
        st, nh, hd = int.from_bytes(body[i:i + 2], "big"), body[i + 2], {}
        i += 3
        for _ in range(nh):
            ln = body[i]
            name = body[i + 1:i + 1 + ln].decode()
            i += 1 + ln
            lv = int.from_bytes(body[i:i + 2], "big")
            hd[name] = body[i + 2:i + 2 + lv].decode()
            i += 2 + lv
        lb = int.from_bytes(body[i:i + 4], "big")
        out.append((st, hd, body[i + 4:i + 4 + lb]))
        i += 4 + lb
    eq(i, len(body), "the answer's length")
    return out


@test
def batches_from_outside_get_403_bad_ones_400_and_good_ones_their_answers():
    cl = Cluster()
    owner, other = "n1", "n2"
    (h,) = hunts_on(owner, 1, "bat")
    (elsewhere,) = hunts_on(other, 1, "bat")
    for hunt in (h, elsewhere):
        vx.put_hunt(cl.client(placed(hunt)), hunt, game_def("bat"), status=201)
    cl.owned([h, elsewhere])
    co = cl.client(owner)
    pay = vx.codes_of(co, h)
    _, tok, _ = vx.new_player(co, "Ba")
    auth = "Bearer " + tok
    path = "/v1/cluster/batch"

    def scan_req(code, key, hunt=h):
        return {"method": "POST", "path": "/v1/hunts/%s/scans" % hunt, "auth": auth, "idem": key,
                "ctype": "application/json", "body": json.dumps({"code": code}).encode()}

    def post(body, to=owner, secret=SECRET, signed_for=None, headers=None):
        hd = {"Content-Type": "application/octet-stream", "X-Veltrix-Client": "0.0.0.0"}
        if secret is not None:
            hd["X-Veltrix-Forwarded"] = forward_header(secret, signed_for or to, "n3",
                                                       int(time.time() * 1000), "0.0.0.0", "POST",
                                                       path, "", "", body)
        return raw_req(cl.servers[to].port, "POST", path, body, dict(hd, **(headers or {})))

    good = batch_body([scan_req(pay["c1"], "b-1"), scan_req(pay["c2"], "b-2")])
    seq0, dig0 = vx.digest(co, h)
    for what, kw in [("unsigned", {"secret": None}), ("another secret", {"secret": b"\x07" * 32}),
                     ("signed for another node", {"signed_for": "n3"}),
                     ("with a player's token", {"secret": None, "headers": {"Authorization": auth}})]:
        st, b = post(good, **kw)
        eq(st, 403, "a batch %s (%s)" % (what, b[:200]))
    one = batch_body([scan_req(pay["c1"], "b-1")])
    for what, body in [("empty", b""), ("cut short", good[:-3]), ("trailing bytes", good + b"\0"),
                       ("version 2", b"\x02" + good[1:]), ("count 0", b"\x01\0\0"),
                       ("count too high", b"\x01\x01\x01" + good[3:]),
                       ("unknown flags", one[:3] + b"\x08" + one[4:]),
                       ("a header flagged absent but not empty", one[:3] + b"\x06" + one[4:])]:
        st, b = post(body)
        eq(st, 400, "a malformed batch, %s (%s)" % (what, b[:200]))
    eq(vx.digest(co, h), (seq0, dig0), "the hunt after the refused batches")
    # A good one: each write its own answer, in order.
    st, b = post(good)
    eq(st, 200, "a signed batch (%s)" % b[:200])
    first = batch_answers(b)
    eq([a[0] for a in first], [200, 200], "statuses")
    eq([json.loads(a[2])["points"] for a in first], [10, 20], "points of each write")
    eq(first[0][1].get("content-type"), "application/json", "content-type of an answer")
    eq(vx.digest(co, h)[0], seq0 + 2, "events of the batch")
    # Again: replayed, byte for byte, as the owner gives them directly.
    again = batch_answers(post(good)[1])
    eq([a[2] for a in again], [a[2] for a in first], "replayed bodies")
    eq([a[1].get("idempotent-replayed") for a in again], ["true", "true"], "replayed")
    direct = vx.scan(co, h, tok, pay["c2"], headers={"Idempotency-Key": "b-2"})
    eq(direct.raw, first[1][2], "the owner's own replay, byte for byte")
    eq(vx.digest(co, h)[0], seq0 + 2, "events after the replays")
    # Inside a batch: no node-only route, no second hop.
    other0 = vx.digest(cl.client(other), elsewhere)
    mixed = batch_body([{"method": "POST", "path": "/v1/cluster/events", "body": b"\0"},
                        {"method": "POST", "path": path, "body": good},
                        scan_req(pay["c3"], "b-3", hunt=elsewhere),
                        {"method": "GET", "path": "/healthz"}])
    st, b = post(mixed)
    eq(st, 200, "a batch of odd requests (%s)" % b[:200])
    ans = batch_answers(b)
    eq([a[0] for a in ans], [403, 403, 503, 200], "statuses of the odd requests")
    eq(json.loads(ans[2][2])["error"]["code"], "hunt_moving", "a write for another owner's hunt")
    eq(ans[2][1].get("retry-after"), "1", "its Retry-After")
    eq(vx.digest(cl.client(other), elsewhere), other0, "the other node's hunt: not written")
    eq(vx.digest(co, h)[0], seq0 + 2, "this node's hunt after the odd batch")


@test
def concurrent_writes_through_a_node_travel_in_batches():
    cl = Cluster()
    owner, via = "n2", "n1"
    (h,) = hunts_on(owner, 1, "many")
    vx.put_hunt(cl.client(owner), h, game_def("many"), status=201)
    cl.owned([h])
    co = cl.client(owner)
    pay = vx.codes_of(co, h)
    players = [vx.new_player(co, "M%d" % i)[1] for i in range(24)]
    seq0, _ = vx.digest(co, h)
    res = [None] * len(players)
    go = threading.Event()

    def run(i):
        go.wait()
        res[i] = raw_req(cl.servers[via].port, "POST", "/v1/hunts/%s/scans" % h,
                         json.dumps({"code": pay["c%d" % (i % 5 + 1)]}).encode(),
                         {"Authorization": "Bearer " + players[i], "Content-Type": "application/json",
                          "Idempotency-Key": "many-%d" % i})

    batches0 = vx.metric(cl.client(via), "veltrix_forward_batches_total")
    got0 = vx.metric(co, "veltrix_batched_requests_received_total")
    # The forwarder stopped while the writes come: they all wait in its sockets, and its
    # next loop turn reads them together (well under its heartbeat's 1.5 s).
    cl.servers[via].proc.send_signal(signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(players))]
        for t in threads:
            t.start()
        go.set()
        time.sleep(0.4)
    finally:
        cl.servers[via].proc.send_signal(signal.SIGCONT)
    for t in threads:
        t.join()
    eq([s for s, _ in res], [200] * len(players), "statuses (%s)" % [b[:120] for s, b in res if s != 200][:2])
    eq([json.loads(b)["points"] for _, b in res], [10 * (i % 5 + 1) for i in range(len(players))],
       "each write's own answer")
    batches = vx.metric(cl.client(via), "veltrix_forward_batches_total") - batches0
    batched = vx.metric(co, "veltrix_batched_requests_received_total") - got0
    print("  %d writes through %s: %d batches carrying %d of them" % (len(players), via, batches, batched))
    true(batches >= 1 and batched >= 2, "the writes travelled in batches (%d, %d)" % (batches, batched))
    eq(vx.digest(co, h)[0] - seq0, len(players), "events: one per write")
    for i in range(len(players)):  # the same answer the owner gives directly, byte for byte
        r = vx.scan(co, h, players[i], pay["c%d" % (i % 5 + 1)], headers={"Idempotency-Key": "many-%d" % i})
        eq(r.headers.get("idempotent-replayed"), "true", "write %d replayed on the owner" % i)
        eq(r.raw, res[i][1], "write %d: the forwarded answer's bytes" % i)


@test
def a_slow_store_read_does_not_stall_the_node():
    cl = Cluster()
    # Created after n2 started: n2 holds neither player until a token names it.
    _, tok, _ = vx.new_player(cl.client("n1"), "Slow")
    r = cl.client("n1").req("POST", "/v1/players", {"display_name": "Slower"})
    check(r, 201)
    refresh = r.body["refresh_token"]
    n2 = cl.servers["n2"]
    for what, table, send in [
            ("a player's read", "players",
             lambda: raw_req(n2.port, "GET", "/v1/players/me", None, {"Authorization": "Bearer " + tok})),
            ("a refresh token's rotation", "refresh",
             lambda: raw_req(n2.port, "POST", "/v1/sessions/refresh",
                             json.dumps({"refresh_token": refresh}).encode(),
                             {"Content-Type": "application/json"}))]:
        lock = subprocess.Popen(["psql", "-X", "-q", "-d", cl.url, "-c",
                                 "BEGIN; LOCK TABLE veltrix.%s IN ACCESS EXCLUSIVE MODE; "
                                 "SELECT pg_sleep(3); COMMIT;" % table],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            t0 = time.time()
            while pgutil.psql(cl.url, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                              "c.oid = l.relation WHERE c.relname = '%s' AND l.mode = "
                              "'AccessExclusiveLock' AND l.granted" % table) != "1":
                true(time.time() - t0 < 10, "the lock on %s was not taken" % table)
                time.sleep(0.05)
            got = {}
            slow = threading.Thread(target=lambda: got.update(r=send(), t=time.time()))
            slow.start()
            time.sleep(0.3)  # the request waits for the lock now
            t1 = time.time()
            h = cl.client("n2").req("GET", "/healthz")
            fast = time.time() - t1
            check(h, 200, what="/healthz on n2 during %s" % what)
            slow.join(30)
            true(lock.wait(30) == 0, "the lock's psql: %s" % lock.stderr.read())
        finally:
            if lock.poll() is None:
                lock.kill()
        print("  %s waited %.2f s for the store; /healthz meanwhile: %.3f s" % (what, got["t"] - t0, fast))
        # 3 s of lock; a loop waiting for the store would answer /healthz after it.
        true(fast < 1.5, "/healthz on n2 took %.2f s while %s waited for the store" % (fast, what))
        eq(got["r"][0], 200, "%s, once the store answers (%s)" % (what, got["r"][1][:200]))
    new = json.loads(got["r"][1])
    true(new.get("token") and new.get("refresh_token") not in (None, refresh), "new tokens: %s" % new)
    me = cl.client("n3").req("GET", "/v1/players/me", token=new["token"])
    check(me, 200, what="the refreshed token on n3")
    eq(me.body["player_id"], r.body["player_id"], "the refreshed player")


@test
def forged_forwarded_headers_get_403_and_change_nothing():
    cl = Cluster()
    owner = "n1"
    other = "n2"
    (h,) = hunts_on(owner, 1, "forge")
    vx.put_hunt(cl.client(owner), h, game_def("forge"), status=201)
    cl.owned([h])
    co = cl.client(owner)
    pay = vx.codes_of(co, h)
    _, tok, _ = vx.new_player(co, "Cy")
    seq0, dig0 = vx.digest(co, h)
    path = "/v1/hunts/%s/scans" % h
    body = json.dumps({"code": pay["c1"]}).encode()
    auth = "Bearer " + tok
    now = int(time.time() * 1000)

    def send(node, fwd, client="198.51.100.7"):
        hd = {"Authorization": auth, "Content-Type": "application/json",
              "X-Veltrix-Forwarded": fwd, "X-Veltrix-Client": client}
        return raw_req(cl.servers[node].port, "POST", path, body, hd)

    good = forward_header(SECRET, owner, other, now, "198.51.100.7", "POST", path, auth, "", body)
    cases = [
        ("malformed", "vf1.nonsense"),
        ("wrong MAC", good[:-4] + ("0000" if not good.endswith("0000") else "1111")),
        ("wrong secret", forward_header(b"\x01" * 32, owner, other, now, "198.51.100.7", "POST",
                                        path, auth, "", body)),
        ("expired", forward_header(SECRET, owner, other, now - 60000, "198.51.100.7", "POST", path,
                                   auth, "", body)),
        ("signed for another node", forward_header(SECRET, "n3", other, now, "198.51.100.7",
                                                   "POST", path, auth, "", body)),
        ("another client address", good, "203.0.113.9"),
    ]
    for case in cases:
        st, b = send(owner, *case[1:])
        eq(st, 403, "%s: status (%s)" % (case[0], b[:200]))
        eq(json.loads(b)["error"]["code"], "forbidden", "%s: error code" % case[0])
    eq(vx.digest(co, h), (seq0, dig0), "the hunt after the refused requests")
    # The test's signing is right: the same header, untouched, is accepted by the owner...
    st, b = send(owner, good)
    eq(st, 200, "a correctly signed forwarded request (%s)" % b[:200])
    # ... and a node that does not own the hunt does not forward a forwarded request again.
    again = forward_header(SECRET, other, "n3", now, "198.51.100.7", "POST", path, auth, "", body)
    st, b = send(other, again)
    eq((st, json.loads(b)["error"]["code"]), (503, "hunt_moving"), "a second hop")
    eq(vx.digest(co, h)[0], seq0 + 1, "events: only the accepted request's")


@test
def a_new_hunt_is_leased_from_its_first_write_even_where_views_disagree():
    """Right after a node joins, nodes may place a new hunt differently for a round: node A
    forwards its creation to B, whose view gives it to C. B takes the hunt's lease with the
    first write (no unfenced epoch 0), and placement moves it to its owner afterwards."""
    cl = Cluster()
    (h,) = hunts_on("n1", 1, "claim")
    path = "/v1/hunts/" + h
    body = json.dumps(game_def("claim")).encode()
    auth = "Bearer " + vx.ADMIN_KEY
    now = int(time.time() * 1000)
    fwd = forward_header(SECRET, "n2", "n3", now, "198.51.100.7", "PUT", path, auth, "", body)
    st, b = raw_req(cl.servers["n2"].port, "PUT", path, body,
                    {"Authorization": auth, "Content-Type": "application/json",
                     "X-Veltrix-Forwarded": fwd, "X-Veltrix-Client": "198.51.100.7"})
    eq(st, 201, "a forwarded creation on a node placement does not give it (%s)" % b[:200])
    true("owns hunt '%s' (epoch 1), claimed for its first write" % h
         in cl.servers["n2"].stderr_text(), "n2 took the lease with the first write")
    # The hunt then goes to its placement, under a newer epoch, with its events.
    cl.owned([h])
    v = {x["hunt"]: x for x in cl.view("n1")["hunts"]}
    true(v[h]["epoch"] >= 2, "the epoch after the hand-over: %s" % v[h])
    eq(v[h]["seq"], 1, "the hunt's events")
    # A hunt created the usual way is leased from its first write as well.
    (h2,) = hunts_on("n3", 1, "claimed")
    vx.put_hunt(cl.client("n1"), h2, game_def("claimed"), status=201)
    true("owns hunt '%s' (epoch 1), claimed for its first write" % h2
         in cl.servers["n3"].stderr_text(), "n3 took the lease of the hunt forwarded to it")
    for n in NODES:
        true(("owns hunt '%s'" % h2) not in cl.servers[n].stderr_text() or n == "n3",
             "only n3 ever owned %s" % h2)


@test
def the_address_rate_limit_applies_to_forwarded_writes():
    # 4 requests per address, then (almost) nothing: the setup below comes from one
    # address, the writes from others (X-Forwarded-For behind --trusted-proxy 127.0.0.1).
    cl = Cluster(args=["--rate-ip", "0.001:4", "--trusted-proxy", "127.0.0.1"], secret_file=False)
    owner = "n2"
    x, y = [n for n in NODES if n != owner]
    (h,) = hunts_on(owner, 1, "rate")
    setup = {"X-Forwarded-For": "192.0.2.1"}
    mk = {n: vx.Client(cl.servers[n]) for n in NODES}
    check(mk[owner].req("PUT", "/v1/hunts/" + h, game_def("rate"), admin=True, headers=setup), 201)
    cl.owned([h])
    r = mk[y].req("POST", "/v1/players", {"display_name": "Di"}, headers={"X-Forwarded-For": "192.0.2.250"})
    check(r, 201)
    tok = r.body["token"]
    client = {"X-Forwarded-For": "203.0.113.50"}
    got = []
    for n in (x, y, x, y, x, y):  # 3 through each forwarder: each sees fewer than 4
        got.append(vx.scan(mk[n], h, tok, "vx1.nope.c1.AAAA", headers=client))
    codes = [g.status for g in got]
    eq(codes, [400, 400, 400, 400, 429, 429], "statuses: the owner's bucket for 203.0.113.50")
    true(all(g.headers.get("retry-after") for g in got[4:]), "429 with Retry-After")
    r = vx.scan(mk[x], h, tok, "vx1.nope.c1.AAAA", headers={"X-Forwarded-For": "203.0.113.51"})
    check(r, 400, what="another client address, through the same forwarder")


@test
def killing_the_owner_gives_hunt_moving_then_success():
    cl = Cluster(secret_file=False)
    owner = "n3"
    (h,) = hunts_on(owner, 1, "kill")
    vx.put_hunt(cl.client("n1"), h, game_def("kill"), status=201)
    cl.owned([h])
    pay = vx.codes_of(cl.client(owner), h)
    _, tok, _ = vx.new_player(cl.client("n1"), "Ed")
    check(vx.scan(cl.client("n2"), h, tok, pay["c1"]), 200, what="a write before (the new owner catches up)")
    survivors = ["n1", "n2"]
    cl.servers[owner].kill()
    key = {"Idempotency-Key": "after-kill"}
    r = vx.scan(cl.client("n1"), h, tok, pay["c4"], headers=key)
    check(r, 503, "hunt_moving", what="right after the owner died")
    eq(r.headers.get("retry-after"), "1", "Retry-After of hunt_moving")
    t0, statuses, ok = time.time(), {}, None
    while time.time() - t0 < 30 and ok is None:
        for n in survivors:
            r = vx.scan(cl.client(n), h, tok, pay["c4"], headers=key)
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 200:
                ok = r
                break
            check(r, 503, "hunt_moving", what="while the hunt moves")
        time.sleep(0.1)
    true(ok is not None, "no success within 30 s: %s" % statuses)
    print("  owner killed: writes succeed again after %.1f s (%s)" % (time.time() - t0, statuses))
    eq(ok.body.get("points"), 40, "the retried scan")
    for n in survivors:  # every survivor's view names the new owner within a round or two
        t0 = time.time()
        again = vx.scan(cl.client(n), h, tok, pay["c4"], headers=key)
        while again.status == 503 and time.time() - t0 < 10:
            time.sleep(0.1)
            again = vx.scan(cl.client(n), h, tok, pay["c4"], headers=key)
        check(again, 200, what="the retry through %s" % n)
        eq(again.headers.get("idempotent-replayed"), "true", "the retry through %s replayed" % n)
        eq(again.raw, ok.raw, "the retry's body through %s" % n)


@test
def sigterm_waits_for_the_answers_of_forwarded_writes():
    cl = Cluster()
    owner, fwd = "n1", "n2"
    (h,) = hunts_on(owner, 1, "drain")
    vx.put_hunt(cl.client(owner), h, game_def("drain"), status=201)
    cl.owned([h])
    pay = vx.codes_of(cl.client(owner), h)
    _, tok, _ = vx.new_player(cl.client(fwd), "Flo")
    o, f = cl.servers[owner], cl.servers[fwd]
    out = {}
    o.proc.send_signal(signal.SIGSTOP)  # the owner takes the write, but answers later
    try:
        def send():
            out["r"] = raw_req(f.port, "POST", "/v1/hunts/%s/scans" % h,
                               json.dumps({"code": pay["c5"]}).encode(),
                               {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        t = threading.Thread(target=send)
        t.start()
        t0 = time.time()
        while vx.metric(cl.client(fwd), "veltrix_forward_in_flight") != 1 and time.time() - t0 < 5:
            time.sleep(0.02)
        eq(vx.metric(cl.client(fwd), "veltrix_forward_in_flight"), 1, "writes in flight to the owner")
        f.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        true(f.alive(), "the forwarding node waits for its write's answer")
    finally:
        o.proc.send_signal(signal.SIGCONT)
    t.join(30)
    eq(f.proc.wait(30), 0, "the forwarding node's exit code")
    f.expect_dead = True
    st, body = out.get("r", (None, b""))
    eq(st, 200, "the forwarded write's answer (%s)" % body[:200])
    eq(json.loads(body)["points"], 50, "points of the scan")


def refused(args, want):
    data = tempfile.mkdtemp(prefix="vx-bb-")
    r = subprocess.run([vx.BIN, "serve", "--listen", "127.0.0.1:%d" % vx.free_port(), "--data", data]
                       + args, capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 2, "exit code for %s (stderr: %s)" % (args, vx.short(err)))
    true(want in err, "stderr for %s does not say %r: %s" % (args, want, vx.short(err)))


@test
def bad_cluster_secret_files_exit_2():
    d = tempfile.mkdtemp(prefix="vx-bb-")
    bad = os.path.join(d, "bad.key")
    with open(bad, "w") as f:
        f.write("not a secret\n")
    refused(["--cluster-secret-file", bad], "--cluster-secret-file needs --node-id")
    url = pgutil.fresh_db()
    refused(["--store", url, "--node-id", "n1", "--cluster-secret-file", bad],
            "must hold 32 bytes or 64 hex digits")
    refused(["--store", url, "--node-id", "n1", "--cluster-secret-file", os.path.join(d, "none")],
            "No such file")


if __name__ == "__main__":
    vx.run_all()
