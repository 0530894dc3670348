#!/usr/bin/env python3
"""clusterbench.py - helpers for bench/cluster.sh, the `cluster` workload of bench/run.sh
(three nodes on one PostgreSQL; Python 3 standard library only).

Subcommands (results on stdout, errors on stderr, exit 1 on error):
  place NODE COUNT PREFIX...     COUNT hunt names that rendezvous placement gives NODE over
                                 n1, n2, n3 (comma separated; one line per triple)
  settle --urls --key --hunts    wait until every node sees the three alive and gives each
                                 hunt its placement as owner; prints the seconds waited
  failover-round ...             scans through a survivor, kill -9 of the owner, the time
                                 from the kill to the first 200 write (one JSON line)
  failover-report FILE           the failover check line from those JSON lines
  lag ...                        replica lag sampler (JSON lines), run beside a write load
  lag-report FILE                the replica lag check line
  combine OUT FILE...            several wrk outputs (BENCHJSON) as one: requests summed,
                                 the longest duration, the worst p50/p99/max
  writes-report RESULTS          the forwarded-writes check line from results.jsonl
"""
import argparse
import hashlib
import http.client
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.parse

NODES = ["n1", "n2", "n3"]


def die(msg):
    print("clusterbench: " + msg, file=sys.stderr)
    sys.exit(1)


def score(node, hunt):
    """src/cluster.h: the first 8 bytes of SHA-256("veltrix-place-v1" || len || node || hunt)
    (as tests/blackbox/test_forward.py)."""
    d = hashlib.sha256(b"veltrix-place-v1" + bytes([len(node)]) + node.encode() + hunt.encode())
    return int.from_bytes(d.digest()[:8], "big")


def placed(hunt, nodes=NODES):
    return max(sorted(nodes), key=lambda n: score(n, hunt))


class Conn:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, url, timeout=5.0):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout, self.c = u.hostname, u.port, timeout, None

    def req(self, method, path, body=None, headers=None):
        """(status, body bytes); status 0 when the connection failed."""
        try:
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.c.request(method, path, body=body, headers=headers or {})
            r = self.c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            if self.c is not None:
                self.c.close()
            self.c = None
            return 0, b""

    def json(self, method, path, headers=None):
        st, b = self.req(method, path, headers=headers)
        try:
            return st, json.loads(b) if b else None
        except ValueError:
            return st, None


def pct(vals, p):
    v = sorted(vals)
    return v[min(len(v) - 1, int(p / 100.0 * (len(v) - 1) + 0.5))] if v else None


def lines(path):
    return [l.strip() for l in open(path) if l.strip()]


# ---------------------------------------------------------------- placement and settling
def cmd_place(a):
    if len(a.spec) % 3:
        die("place: NODE COUNT PREFIX triples")
    for j in range(0, len(a.spec), 3):
        node, count, prefix = a.spec[j], int(a.spec[j + 1]), a.spec[j + 2]
        out, i = [], 0
        while len(out) < count:
            h = "%s%d" % (prefix, i)
            if placed(h) == node:
                out.append(h)
            i += 1
        print(",".join(out))


def cmd_settle(a):
    """Every node's view (GET /v1/cluster, at most one round old) must list the three
    nodes alive and give each hunt in --hunts the owner placement gives it."""
    urls = a.urls.split(",")
    hunts = [h for h in (a.hunts or "").split(",") if h]
    conns = [Conn(u, 2.0) for u in urls]
    auth = {"Authorization": "Bearer " + a.key}
    t0, last = time.time(), None
    while time.time() - t0 < a.timeout:
        ok = True
        for c in conns:
            st, v = c.json("GET", "/v1/cluster", auth)
            if st != 200 or not v:
                ok, last = False, "status %s" % st
                break
            alive = sorted(n["node_id"] for n in v["nodes"] if n["alive"])
            owners = {h["hunt"]: h["owner"] for h in v["hunts"]}
            bad = [h for h in hunts if owners.get(h) != placed(h)]
            if alive != NODES or bad:
                ok, last = False, "alive %s, not yet owned by their placement: %s" % (
                    alive, ",".join(bad[:5]))
                break
        if ok:
            print("%.1f" % (time.time() - t0))
            return
        time.sleep(0.1)
    die("not settled after %.0f s: %s" % (a.timeout, last))


# ---------------------------------------------------------------- failover
def cmd_failover_round(a):
    """Scans of fresh (player, code) pairs go to --hunt through --url (a node that is not
    the hunt's owner) from --threads keep-alive connections, back to back (a 503 is
    retried after --retry-ms, not after its Retry-After: 1, so that the first success is
    seen within a few ms). After --pre s the owner (--pid) gets SIGKILL; the round's figure
    is the time from the kill to the first 200 answer to a scan sent after the kill (the
    hunt written again by a survivor). One JSON line."""
    tokens, payloads = lines(a.tokens), lines(a.payloads)
    P, C = len(tokens), len(payloads)
    lock = threading.Lock()
    st = {"next": a.offset, "kill": None, "first": None, "stop": False, "counts": {},
          "before": 0, "max_req_s": 0.0}
    path = "/v1/hunts/%s/scans" % a.hunt

    def worker():
        c = Conn(a.url, 5.0)
        while not st["stop"]:
            with lock:
                g = st["next"]
                st["next"] += 1
            tok, code = tokens[g % P], payloads[(g // P + g) % C]
            t_send = time.monotonic()
            status, _ = c.req("POST", path, json.dumps({"code": code}),
                              {"Authorization": "Bearer " + tok,
                               "Content-Type": "application/json"})
            t_recv = time.monotonic()
            with lock:
                k = st["kill"]
                if k is None:
                    st["before"] += status == 200
                elif t_send >= k:
                    st["counts"][str(status)] = st["counts"].get(str(status), 0) + 1
                    st["max_req_s"] = max(st["max_req_s"], t_recv - t_send)
                    if status == 200 and st["first"] is None:
                        st["first"] = t_recv
                        st["stop"] = True
            if status != 200:
                time.sleep(a.retry_ms / 1000.0)

    ths = [threading.Thread(target=worker, daemon=True) for _ in range(a.threads)]
    for t in ths:
        t.start()
    time.sleep(a.pre)
    with lock:
        st["kill"] = time.monotonic()
    os.kill(a.pid, signal.SIGKILL)
    deadline = st["kill"] + a.timeout
    while time.monotonic() < deadline and st["first"] is None:
        time.sleep(0.005)
    st["stop"] = True
    for t in ths:
        t.join(6)
    rec = {"hunt": a.hunt, "victim": a.victim, "via": a.via, "ok_before_kill": st["before"],
           "after_kill": st["counts"], "max_request_s": round(st["max_req_s"], 3),
           "s": round(st["first"] - st["kill"], 3) if st["first"] else None,
           "timeout_s": a.timeout}
    print(json.dumps(rec))


def cmd_failover_report(a):
    recs = [json.loads(l) for l in lines(a.file)] if os.path.exists(a.file) else []
    if not recs:
        print("FAILOVER: no rounds completed")
        return
    secs = [r["s"] for r in recs if r["s"] is not None]
    lost = len(recs) - len(secs)
    # a round with no success within its timeout counts as its timeout (a lower bound)
    vals = secs + [r["timeout_s"] for r in recs if r["s"] is None]
    m, mx = statistics.median(vals), max(vals)
    per = " ".join("%s" % ("%.2f" % r["s"] if r["s"] is not None else ">%.0f" % r["timeout_s"])
                   for r in recs)
    st = {}
    for r in recs:
        for k, v in r["after_kill"].items():
            st[k] = st.get(k, 0) + v
    print("failover: %d rounds of kill -9 of a hunt's owner under a scan load through another "
          "node; kill → first 200 write through a survivor: median %.2f s (target ≤ 2 s: %s), "
          "max %.2f s (target ≤ 5 s: %s)%s; per round (s): %s; answers to scans sent after "
          "the kills: %s; slowest single request %.2f s"
          % (len(recs), m, "met" if m <= 2 else "NOT met", mx, "met" if mx <= 5 else "NOT met",
             "; %d round(s) without a success within the timeout" % lost if lost else "",
             per, json.dumps(st, sort_keys=True), max(r["max_request_s"] for r in recs)))


# ---------------------------------------------------------------- replica lag
def cmd_lag(a):
    """Until --seconds have passed: read the owner's GET stats `seq` (S), then poll each
    replica's GET stats (anonymous: a replica never waits to answer those) back to back
    until it shows seq ≥ S. The sample is the time from the owner's answer to that
    replica answer. Also keeps each replica's own replication_lag_ms/events of that
    answer. Appends one JSON line per sample to --out."""
    path = "/v1/hunts/%s/stats" % a.hunt
    own = Conn(a.owner, 2.0)
    reps = [(u, Conn(u, 2.0)) for u in a.replicas.split(",")]
    end = time.monotonic() + a.seconds
    with open(a.out, "a") as f:
        while time.monotonic() < end:
            st, o = own.json("GET", path)
            t0 = time.monotonic()
            if st != 200 or not o:
                time.sleep(0.01)
                continue
            for u, c in reps:
                while time.monotonic() < end + 1:
                    st, r = c.json("GET", path)
                    if st == 200 and r and r.get("seq", -1) >= o["seq"]:
                        f.write(json.dumps({"replica": u, "lag_ms": (time.monotonic() - t0) * 1e3,
                                            "seq": o["seq"],
                                            "reported_ms": r.get("replication_lag_ms"),
                                            "reported_events": r.get("replication_lag_events")})
                                + "\n")
                        break
                    if a.poll_ms:
                        time.sleep(a.poll_ms / 1000.0)
            if a.gap_ms:
                time.sleep(a.gap_ms / 1000.0)


def cmd_lag_report(a):
    recs = [json.loads(l) for l in lines(a.file)] if os.path.exists(a.file) else []
    if not recs:
        print("REPLICA LAG: no samples")
        return
    v = [r["lag_ms"] for r in recs]
    rep = [r["reported_ms"] for r in recs if r.get("reported_ms") is not None]
    repe = [r["reported_events"] for r in recs if r.get("reported_events") is not None]
    p99 = pct(v, 99)
    print("replica lag, %s, during the owner-direct scans load (%d samples on the 2 replicas): "
          "from the owner's GET stats answering seq S to a replica's GET stats first showing "
          "seq ≥ S (polled with a 2 ms pause between GETs; S may include events still in the owner's group "
          "commit; the sampler's GETs count in cl_direct's CPU): p50 %.1f ms p99 %.1f ms max %.1f ms (target p99 ≤ "
          "50 ms: %s); the replicas' own stats at that moment: replication_lag_ms p50 %s max "
          "%s, replication_lag_events max %s"
          % (a.label, len(v), pct(v, 50), p99, max(v), "met" if p99 <= 50 else "NOT met",
             pct(rep, 50) if rep else "?", max(rep) if rep else "?",
             max(repe) if repe else "?"))


# ---------------------------------------------------------------- wrk outputs
def bench_json(path):
    ls = [l for l in open(path, errors="replace") if l.startswith("BENCHJSON ")]
    if not ls:
        die("no BENCHJSON line in %s" % path)
    return json.loads(ls[-1][len("BENCHJSON "):])


def cmd_combine(a):
    """Several wrk processes run side by side (one per node) as one: counts summed, the
    longest duration, and the worst of their p50, p90, p99 and max (a latency percentile of
    the whole is not derivable from theirs; the worst bounds it from above)."""
    ws = [bench_json(p) for p in a.files]
    out = {k: sum(w[k] for w in ws) for k in ("requests", "bytes", "err_connect", "err_read",
                                              "err_write", "err_timeout", "err_status",
                                              "wrapped")}
    out["duration_us"] = max(w["duration_us"] for w in ws)
    for k in ("p50_us", "p90_us", "p99_us", "max_us"):
        out[k] = max(w[k] for w in ws)
    out["mean_us"] = sum(w["mean_us"] * w["requests"] for w in ws) / max(1, out["requests"])
    out["diag_counts"], out["diag_samples"] = {}, ""
    with open(a.out, "w") as f:
        for p, w in zip(a.files, ws):
            f.write("# %s: %d requests, p99 %d us\n" % (os.path.basename(p), w["requests"],
                                                       w["p99_us"]))
        f.write("BENCHJSON " + json.dumps(out) + "\n")


def cmd_writes_report(a):
    runs = {}
    for l in lines(a.results):
        r = json.loads(l)
        if r.get("kind") == "veltrix" and not r.get("diag") and r["workload"].startswith("cl_"):
            runs.setdefault(r["workload"], []).append(r)

    def m(w, k):
        rs = [r for r in runs.get(w, []) if not r.get("disturbed")] or runs.get(w, [])
        v = [r[k] for r in rs if r.get(k) is not None]
        return statistics.median(v) if v else None

    d, f, s = (m(w, "rps") for w in ("cl_direct", "cl_forward", "cl_spread"))
    dp, fp, sp = (m(w, "p99_us") for w in ("cl_direct", "cl_forward", "cl_spread"))
    if None in (d, f, s, dp, fp, sp):
        print("FORWARDED WRITES: runs missing (%s)" % ", ".join(sorted(runs)))
        return
    dc, fc, sc = (m(w, "cpu_us") for w in ("cl_direct", "cl_forward", "cl_spread"))
    n = len(runs["cl_direct"])
    print("forwarded writes (durable scans, wrk, %d run(s) each, medians): owner direct %s "
          "req/s p99 %.2f ms; through a non-owner %s req/s p99 %.2f ms (target p99 ≤ direct "
          "+ 2 ms: %s); spread over the 3 nodes %s req/s p99 %.2f ms (worst of the three wrk) "
          "= %.0f%% of owner direct (target ≥ 80%%: %s); CPU per request (3 nodes + "
          "PostgreSQL): %.1f / %.1f / %.1f µs"
          % (n, "{:,.0f}".format(d), dp / 1e3, "{:,.0f}".format(f), fp / 1e3,
             "met" if fp <= dp + 2000 else "NOT met", "{:,.0f}".format(s), sp / 1e3,
             100.0 * s / d, "met" if s >= 0.8 * d else "NOT met", dc or 0, fc or 0, sc or 0))


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("place")
    s.add_argument("spec", nargs="+")
    s = sp.add_parser("settle")
    s.add_argument("--urls", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--hunts", default="")
    s.add_argument("--timeout", type=float, default=30)
    s = sp.add_parser("failover-round")
    for k in ("url", "hunt", "tokens", "payloads", "victim", "via"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--pre", type=float, default=1.0)
    s.add_argument("--timeout", type=float, default=20)
    s.add_argument("--threads", type=int, default=4)
    s.add_argument("--retry-ms", type=float, default=5)
    s.add_argument("--offset", type=int, default=0)
    s = sp.add_parser("failover-report")
    s.add_argument("file")
    s = sp.add_parser("lag")
    for k in ("owner", "replicas", "hunt", "out"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--poll-ms", type=float, default=1)
    s.add_argument("--gap-ms", type=float, default=10)
    s = sp.add_parser("lag-report")
    s.add_argument("file")
    s.add_argument("--label", default="replicas fed as configured")
    s = sp.add_parser("combine")
    s.add_argument("out")
    s.add_argument("files", nargs="+")
    s = sp.add_parser("writes-report")
    s.add_argument("results")
    a = ap.parse_args()
    globals()["cmd_" + a.cmd.replace("-", "_")](a)


if __name__ == "__main__":
    main()
