#!/usr/bin/env python3
"""Black-box tests of several nodes on one PostgreSQL store (API.md "Several nodes on
PostgreSQL", issue 15), as far as it goes today: membership and hunt ownership.

- Three nodes on one store register, see each other alive in GET /v1/cluster, and every
  hunt gets exactly one owner: the node that rendezvous hashing places it on (computed
  here from docs/DESIGN.md's recipe), the same in every node's view.
- A node killed with SIGKILL is seen dead and its hunts move to the placement over the
  survivors, with a higher epoch (printed: how long it took); a node stopped with SIGTERM
  hands its hunts over before it exits; a node that joins takes only the hunts placed on
  it, nothing moves between the others.
- --node-id without a PostgreSQL store, a bad node id or advertise URL: exit code 2 and a
  line that says why. A single node's /v1/cluster (admin only) lists its hunts as its own.
Timing is printed, never asserted: waits are bounded polls (generous bounds)."""
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgutil  # noqa: E402
import vx  # noqa: E402
from vx import check, eq, true, test  # noqa: E402

HUNTS = ["h%02d" % i for i in range(12)]


def score(node, hunt):
    """cluster.h: the first 8 bytes of SHA-256("veltrix-place-v1" || len || node || hunt)."""
    d = hashlib.sha256(b"veltrix-place-v1" + bytes([len(node)]) + node.encode() + hunt.encode())
    return int.from_bytes(d.digest()[:8], "big")


def placed(hunt, nodes):
    return max(sorted(nodes), key=lambda n: score(n, hunt))


def node(url, name):
    s = vx.Server(args=["--store", url, "--node-id", name])
    s.args += ["--advertise", "http://127.0.0.1:%d" % s.port]
    return s.start()


def view(s):
    return s.client().ok("GET", "/v1/cluster", admin=True)


def settled(servers, alive, timeout=30.0):
    """Polls until every server's view has exactly the nodes `alive` alive and every hunt
    owned by its placement over them; returns (seconds, the last view)."""
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        good = True
        for s in servers:
            v = view(s)
            last = v
            live = sorted(n["node_id"] for n in v["nodes"] if n["alive"])
            owners = {h["hunt"]: h["owner"] for h in v["hunts"]}
            if live != sorted(alive) or any(owners.get(h) != placed(h, alive) for h in HUNTS):
                good = False
                break
        if good:
            return time.time() - t0, last
        time.sleep(0.2)
    raise AssertionError("not settled on %s within %.0f s: %s" % (alive, timeout, vx.short(last, 800)))


def epochs(v):
    return {h["hunt"]: h["epoch"] for h in v["hunts"]}


@test
def nodes_share_hunts_and_take_over():
    url = pgutil.fresh_db()
    a, b, c = node(url, "n1"), node(url, "n2"), node(url, "n3")
    ca = a.client()
    for h in HUNTS:
        vx.put_hunt(ca, h, vx.basic_def(name=h))
    took, v = settled([a, b, c], ["n1", "n2", "n3"])
    print("  3 nodes: every hunt owned by its placement after %.1f s" % took)
    eq(sum(n["hunts_owned"] for n in v["nodes"]), len(HUNTS), "hunts owned in all")
    true(all(h["seq"] >= 1 for h in v["hunts"] if h["hunt"] in HUNTS), "seqs: %s" % v["hunts"])
    eq(sorted(n["advertise"] for n in v["nodes"]),
       sorted("http://127.0.0.1:%d" % s.port for s in (a, b, c)), "advertised URLs")
    before = epochs(v)
    # n2 dies without a word: after its heartbeat and leases lapse, its hunts move.
    gone = [h for h in HUNTS if placed(h, ["n1", "n2", "n3"]) == "n2"]
    b.kill()
    took, v = settled([a, c], ["n1", "n3"])
    print("  n2 killed: its %d hunts moved after %.1f s" % (len(gone), took))
    after = epochs(v)
    for h in HUNTS:
        if h in gone:
            true(after[h] > before[h], "hunt %s: epoch %s -> %s" % (h, before[h], after[h]))
        else:
            eq(after[h], before[h], "epoch of %s, which did not move" % h)
    # n3 stops: it hands over at once (no lease to wait for).
    t0 = time.time()
    c.stop()
    took, v = settled([a], ["n1"])
    print("  n3 stopped: its hunts moved %.1f s after SIGTERM" % (time.time() - t0))
    true("released its hunts" in c.stderr_text(), "n3's log: %s" % vx.short(c.stderr_text()))
    # n4 joins: it takes the hunts placed on it, nothing else moves.
    d = node(url, "n4")
    before = {h["hunt"]: (h["owner"], h["epoch"]) for h in v["hunts"]}
    took, v = settled([a, d], ["n1", "n4"])
    print("  n4 joined: it owns its share after %.1f s" % took)
    for h in v["hunts"]:
        if h["hunt"] in HUNTS and h["owner"] == "n1":
            eq(h["epoch"], before[h["hunt"]][1], "epoch of %s, which stayed on n1" % h["hunt"])


def refused(args, want):
    data = tempfile.mkdtemp(prefix="vx-bb-")
    r = subprocess.run([vx.BIN, "serve", "--listen", "127.0.0.1:%d" % vx.free_port(), "--data", data]
                       + args, capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 2, "exit code for %s (stderr: %s)" % (args, vx.short(err)))
    true(want in err, "stderr for %s does not say %r: %s" % (args, want, vx.short(err)))


@test
def bad_cluster_flags_exit_2():
    refused(["--node-id", "n1"], "several nodes need a postgres:// store")
    url = pgutil.fresh_db()
    refused(["--store", url, "--node-id", "Not An Id"], "--node-id must be")
    refused(["--store", url, "--node-id", "n1", "--advertise", "ftp://x"], "--advertise must be")
    refused(["--advertise", "http://127.0.0.1:1"], "--advertise needs --node-id")
    refused(["--replica-feed", "push"], "--replica-feed needs --node-id")
    refused(["--store", url, "--node-id", "n1", "--replica-feed", "both"],
            "--replica-feed must be push or poll")
    refused(["--store", url, "--node-id", "n1", "--replica-poll-ms", "0"], "--replica-poll-ms")


@test
def a_single_node_owns_everything():
    s = vx.Server().start()
    c = s.client()
    vx.put_hunt(c, "solo", vx.basic_def(name="solo"))
    check(c.req("GET", "/v1/cluster"), 401, what="without the admin key")
    v = view(s)
    eq(v["node_id"], "local", "node id")
    eq([(n["node_id"], n["alive"], n["hunts_owned"]) for n in v["nodes"]], [("local", True, 1)],
       "nodes")
    eq([(h["hunt"], h["owner"], h["epoch"], h["seq"]) for h in v["hunts"]], [("solo", "local", 0, 1)],
       "hunts")


if __name__ == "__main__":
    vx.run_all()
