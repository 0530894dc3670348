#!/usr/bin/env python3
"""vxbench.py - helpers for bench/run.sh (Python 3 standard library only).

Subcommands (each prints what run.sh needs on stdout, errors on stderr, exit 1 on error):
  freeport                         a free TCP port on 127.0.0.1
  wait-ready URL SECONDS [PID]     poll URL until 200 (fails early if PID dies)
  cpu PID [PID...]                 CPU clock ticks of each PID and all its descendants
                                   (utime+stime+cutime+cstime, from /proc), summed (the
                                   PostgreSQL rows: veltrix + the postmaster's tree)
  metrics URL                      /metrics request counters as JSON {"METHOD route": {"2xx": n}}
  setup ...                        players, hunts, code payloads, a populated leaderboard
  stats URL HUNT                   GET /v1/hunts/HUNT/stats as one JSON line
  record-wrk ...                   parse one wrk run, append a result line to a JSONL file
  record-pgbench ...               parse one pgbench run (and its per-transaction log)
  record-redis ...                 parse one redis-benchmark --csv run
  table RESULTS OUT.md             aggregate (medians) and print/write the Markdown table
"""
import argparse
import concurrent.futures as cf
import glob
import http.client
import json
import os
import re
import socket
import statistics
import sys
import threading
import time
import urllib.parse


def die(msg):
    print("vxbench: " + msg, file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- /proc CPU accounting
def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): field n is rest[n-3]
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]),
            "cutime": int(rest[13]), "cstime": int(rest[14])}


def cpu_ticks(root):
    """Ticks used by root and every descendant, live or already reaped (reaped children
    are in their parent's cutime/cstime; PostgreSQL backends that exit during a run end
    up there)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = _stat(int(d))
            except (OSError, ValueError, IndexError):
                pass
    if root not in procs:
        raise OSError("no process %d" % root)
    kids = {}
    for pid, st in procs.items():
        kids.setdefault(st["ppid"], []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        st = procs[pid]
        total += st["utime"] + st["stime"] + st["cutime"] + st["cstime"]
        todo.extend(kids.get(pid, []))
    return total


def sys_busy():
    """Busy ticks of the whole machine (all CPUs) from /proc/stat: user, nice, system,
    irq, softirq, steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def child_s(path):
    """Children user+sys seconds from the second line of bash's `times` output."""
    lines = open(path).read().split("\n")
    tot = 0.0
    for tok in lines[1].split():
        m, _, sec = tok.rstrip("s").partition("m")
        tot += int(m) * 60 + float(sec)
    return tot


def add_load(rec, a, dur_s, hz):
    """client_util: load generator CPU cores (children of run.sh between times0/times1);
    other_util: CPU cores busy on the machine beyond server and load generator (other
    people's processes, the kernel, steal) — when high, the run shared the machine."""
    if not dur_s:
        return
    if getattr(a, "times0", None) and getattr(a, "times1", None):
        rec["client_util"] = (child_s(a.times1) - child_s(a.times0)) / dur_s
    if getattr(a, "sys0", None) and getattr(a, "sys1", None):
        (b0, w0), (b1, w1) = [open(p).read().split() for p in (a.sys0, a.sys1)]
        wall = float(w1) - float(w0)
        client = rec.get("client_util", 0) * dur_s
        server = (rec.get("cpu_util") or 0) * dur_s
        rec["other_util"] = max(0.0, ((int(b1) - int(b0)) / hz - server - client) / wall)
        rec["disturbed"] = rec["other_util"] > BUSY


# ---------------------------------------------------------------- HTTP
class Client:
    """One keep-alive connection per thread."""

    def __init__(self, base, timeout=30):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port,
                                                          timeout=self.timeout)
        return c

    def req(self, method, path, body=None, token=None, raw=False):
        headers = {}
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                break
            except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
                c.close()
                self.local.c = None
                if attempt == 2:
                    raise RuntimeError("%s %s: %s" % (method, path, e))
        if raw:
            return r.status, data
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode("utf-8", "replace")


def expect(what, status, body, ok=(200, 201)):
    if status not in ok:
        die("%s -> %s %s" % (what, status, str(body)[:500]))


def parallel(fn, items, workers=16):
    with cf.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


# ---------------------------------------------------------------- subcommands
def cmd_freeport(a):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_wait_ready(a):
    deadline = time.time() + a.seconds
    while time.time() < deadline:
        if a.pid and not os.path.exists("/proc/%d" % a.pid):
            die("process %d exited before %s answered" % (a.pid, a.url))
        try:
            u = urllib.parse.urlsplit(a.url)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
            c.request("GET", u.path or "/")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    die("%s not ready after %ss" % (a.url, a.seconds))


def cmd_sysbusy(a):
    print(sys_busy(), time.time())


def cmd_quiet(a):
    """Waits (at most max_wait s) until the machine's busy CPU over 0.5 s is below
    threshold cores — between runs our own processes are idle, so what is busy is someone
    else's. Prints the seconds waited and the last load seen."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    while True:
        b0 = sys_busy()
        time.sleep(0.5)
        load = (sys_busy() - b0) / hz / 0.5
        if load < a.threshold or time.time() - t0 >= a.max_wait:
            print("%.1f %.2f" % (time.time() - t0, load))
            return


def cmd_cpu(a):
    print(sum(cpu_ticks(p) for p in a.pid))


def read_metrics(url):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("veltrix_log_batch_entries_sum", "veltrix_log_batch_entries_count",
                     "veltrix_log_commit_seconds_sum", "veltrix_log_commit_seconds_count",
                     "veltrix_log_wait_seconds_sum"):
            if line.startswith(name + "{") or line.startswith(name + " "):
                out.setdefault("log", {})[name[len("veltrix_log_"):]] = float(line.split()[-1])
        if not line.startswith("veltrix_http_requests_total{"):
            continue
        labels, _, val = line.rpartition(" ")
        d = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1:-1].split(","))
        key = d["method"].strip('"') + " " + d["route"].strip('"')
        out.setdefault(key, {})[d["code"].strip('"')] = int(float(val))
    return out


def cmd_metrics(a):
    print(json.dumps(read_metrics(a.url)))


def hunt_def(name, codes=0, chest_range=0, code_prefix="c"):
    d = {"name": name, "map": {"width": 64, "height": 64},
         "codes": [{"id": "%s%d" % (code_prefix, i), "points": 10 + (i * 37) % 91,
                    "x": i % 64, "y": (i // 64) % 64} for i in range(codes)]}
    if chest_range:
        d["zones"] = [{"id": "z", "x": 0, "y": 0, "w": 64, "h": 64,
                       "chest_range": {"prefix": "drop-", "count": chest_range,
                                       "points": 10, "loot": ["coin"]}}]
    return d


def cmd_setup(a):
    t0 = time.time()
    cl = Client(a.url)
    out = a.dir
    os.makedirs(out, exist_ok=True)
    info = {"players": a.players}

    def mk_player(i):
        st, b = cl.req("POST", "/v1/players", {"display_name": "bench%d" % i})
        expect("POST /v1/players", st, b, (201,))
        return b["player_id"], b["token"]

    players = parallel(mk_player, range(a.players))
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write("".join(t + "\n" for _, t in players))
    with open(os.path.join(out, "player_ids.txt"), "w") as f:
        f.write("".join(p + "\n" for p, _ in players))

    def put_hunt(hid, d):
        st, b = cl.req("PUT", "/v1/hunts/" + hid, d, token=a.key)
        expect("PUT /v1/hunts/" + hid, st, b, (200, 201))

    def payloads(hid, path):
        st, b = cl.req("GET", "/v1/hunts/%s/codes" % hid, token=a.key)
        expect("GET /v1/hunts/%s/codes" % hid, st, b, (200,))
        p = [c["payload"] for c in sorted(b["codes"], key=lambda c: c["id"])]
        with open(path, "w") as f:
            f.write("".join(x + "\n" for x in p))
        return p

    for hid in a.scan_hunts.split(",") if a.scan_hunts else []:
        put_hunt(hid, hunt_def("bench scans " + hid, codes=a.codes))
        n = len(payloads(hid, os.path.join(out, "payloads_%s.txt" % hid)))
        if n != a.codes:
            die("hunt %s: %d codes listed, %d defined" % (hid, n, a.codes))
    info["scan_hunts"] = a.scan_hunts
    info["codes"] = a.codes

    if a.chest_hunt:
        put_hunt(a.chest_hunt, hunt_def("bench chests", codes=1, chest_range=a.chests))
        info["chests"] = a.chests

    if a.lb_hunt:
        # Every player scores: player i scans 1 + i%5 codes (about 3 scans a player).
        put_hunt(a.lb_hunt, hunt_def("bench leaderboard", codes=100))
        pl = payloads(a.lb_hunt, os.path.join(out, "payloads_%s.txt" % a.lb_hunt))
        jobs = [(i, (i * 7 + j * 13) % len(pl)) for i in range(len(players))
                for j in range(1 + i % 5)]

        def scan(job):
            i, c = job
            st, b = cl.req("POST", "/v1/hunts/%s/scans" % a.lb_hunt, {"code": pl[c]},
                           token=players[i][1])
            expect("populate scan (player %d code %d)" % (i, c), st, b, (200,))

        parallel(scan, jobs)
        st, b = cl.req("GET", "/v1/hunts/%s/leaderboard?limit=10" % a.lb_hunt)
        expect("GET leaderboard", st, b, (200,))
        if b.get("total") != len(players):
            die("leaderboard %s: total %s after every one of %d players scored"
                % (a.lb_hunt, b.get("total"), len(players)))
        info["lb_scans"] = len(jobs)
    info["setup_s"] = round(time.time() - t0, 1)
    print(json.dumps(info))


def cmd_stats(a):
    cl = Client(a.url)
    st, b = cl.req("GET", "/v1/hunts/%s/stats" % a.hunt)
    expect("GET stats " + a.hunt, st, b, (200,))
    print(json.dumps(b))


def cmd_snapshot(a):
    """Stats and state digest of each hunt, to compare before and after a restart."""
    cl = Client(a.url)
    out = {}
    for h in a.hunts:
        st, b = cl.req("GET", "/v1/hunts/%s/stats" % h)
        expect("GET stats " + h, st, b, (200,))
        st2, d = cl.req("GET", "/v1/hunts/%s/digest" % h, token=a.key)
        expect("GET digest " + h, st2, d, (200,))
        st3, lb = cl.req("GET", "/v1/hunts/%s/leaderboard?limit=10" % h)
        expect("GET leaderboard " + h, st3, lb, (200,))
        out[h] = {"seq": b["seq"], "players": b["players"], "scans": b["scans"],
                  "chests_left": b["chests_left"], "digest": d.get("digest"),
                  "lb_total": lb.get("total"), "top10": lb.get("entries")}
    print(json.dumps(out, sort_keys=True))


def cmd_compare(a):
    x, y = json.load(open(a.before)), json.load(open(a.after))
    bad = []
    for h in sorted(set(x) | set(y)):
        for k in sorted(set(x.get(h, {})) | set(y.get(h, {}))):
            if x.get(h, {}).get(k) != y.get(h, {}).get(k):
                bad.append("%s.%s: %s -> %s" % (h, k, str(x.get(h, {}).get(k))[:80],
                                                 str(y.get(h, {}).get(k))[:80]))
    print("; ".join(bad) if bad else "equal")


def append(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def cmd_record_wrk(a):
    text = open(a.out, errors="replace").read()
    line = [l for l in text.splitlines() if l.startswith("BENCHJSON ")]
    if not line:
        die("no BENCHJSON line in wrk output %s:\n%s" % (a.out, text[-2000:]))
    w = json.loads(line[-1][len("BENCHJSON "):])
    rec = {"kind": a.kind, "workload": a.workload, "run": a.run, "name": a.name,
           "cmd": a.cmd,
           "rps": w["requests"] / (w["duration_us"] / 1e6) if w["duration_us"] else 0,
           "requests": w["requests"], "p50_us": w["p50_us"], "p99_us": w["p99_us"],
           "max_us": w["max_us"], "non2xx": w["err_status"],
           "sock_err": {k[4:]: w[k] for k in ("err_connect", "err_read", "err_write",
                                              "err_timeout") if w[k]},
           "wrapped": w.get("wrapped", 0), "diag": a.diag}
    ticks = a.ticks1 - a.ticks0
    rec["cpu_us"] = ticks * 1e6 / a.hz / w["requests"] if w["requests"] else None
    rec["cpu_util"] = ticks / a.hz / (w["duration_us"] / 1e6) if w["duration_us"] else None
    add_load(rec, a, w["duration_us"] / 1e6, a.hz)
    if w.get("diag_counts"):
        rec["diag_counts"] = w["diag_counts"]
        rec["diag_samples"] = w["diag_samples"]
    if a.m0 and a.m1 and a.route:
        m0, m1 = json.load(open(a.m0)), json.load(open(a.m1))
        r0, r1 = m0.get(a.route, {}), m1.get(a.route, {})
        rec["server"] = {k: r1.get(k, 0) - r0.get(k, 0) for k in r1 if r1.get(k, 0) - r0.get(k, 0)}
    if a.m0 and a.m1:
        l0, l1 = m0.get("log", {}), m1.get("log", {})
        commits = l1.get("commit_seconds_count", 0) - l0.get("commit_seconds_count", 0)
        if commits > 0:
            rec["log"] = {
                "commits_s": commits / (w["duration_us"] / 1e6),
                "entries_per_commit": (l1.get("batch_entries_sum", 0) - l0.get("batch_entries_sum", 0))
                / max(1, l1.get("batch_entries_count", 0) - l0.get("batch_entries_count", 0)),
                "commit_ms": 1e3 * (l1.get("commit_seconds_sum", 0) - l0.get("commit_seconds_sum", 0))
                / commits,
                "wait_ms": 1e3 * (l1["wait_seconds_sum"] - l0.get("wait_seconds_sum", 0)) / commits
                if "wait_seconds_sum" in l1 else None}
    if a.stats1:
        s1 = json.load(open(a.stats1))
        s0 = json.load(open(a.stats0)) if a.stats0 else {}
        moved = abs(s1.get(a.stat_field, 0) - s0.get(a.stat_field, 0))
        ok2xx = rec.get("server", {}).get("2xx", 0)
        rec["check"] = "%s changed by %d, server answered %d × 2xx: %s" % (
            a.stat_field, moved, ok2xx, "ok" if moved == ok2xx else "MISMATCH")
        if moved != ok2xx:
            print("  WARNING: " + rec["check"])
    if "server" in rec:
        wrk_ok = w["requests"] - w["err_status"]
        srv_ok = rec["server"].get("2xx", 0)
        if srv_ok < wrk_ok or srv_ok > wrk_ok + 4 * 64 + 1000:
            rec["check"] = (rec.get("check", "") + "; " if rec.get("check") else "") + (
                "wrk saw %d × 2xx, the server counted %d" % (wrk_ok, srv_ok))
    for kv in a.extra or []:
        k, _, v = kv.partition("=")
        try:
            rec[k] = json.loads(v)
        except ValueError:
            rec[k] = v
    append(a.results, rec)
    srv = rec.get("server", {})
    print("  %-10s run %s: %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  CPU %6.1f us/req"
          "  wrk %s cores  other %s cores  non-2xx %d%s  server %s" % (
              a.workload, a.run, rec["rps"], rec["p50_us"] / 1e3, rec["p99_us"] / 1e3,
              rec["cpu_us"] or 0,
              "%.2f" % rec["client_util"] if rec.get("client_util") is not None else "?",
              "%.2f" % rec["other_util"] if rec.get("other_util") is not None else "?",
              rec["non2xx"],
              ("  socket errors %s" % rec["sock_err"]) if rec["sock_err"] else "",
              json.dumps(srv, sort_keys=True)))
    if rec.get("diag_counts"):
        print("    statuses: %s\n    samples:\n      %s" % (
            json.dumps(rec["diag_counts"]), rec["diag_samples"].strip().replace("\n", "\n      ")))


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def cmd_record_pgbench(a):
    text = open(a.out, errors="replace").read()
    vals = {}
    for l in text.splitlines():
        if l.startswith("number of transactions actually processed:"):
            vals["tx"] = int(l.split(":")[1].split()[0].split("/")[0])
        elif l.startswith("number of failed transactions:"):
            vals["failed"] = int(l.split(":")[1].split()[0])
        elif l.startswith("tps ="):
            vals["tps"] = float(l.split()[2])
        elif "aborted" in l:
            vals.setdefault("aborted", []).append(l.strip())
    if "tx" not in vals or "tps" not in vals:
        die("pgbench output %s not understood:\n%s" % (a.out, text[-2000:]))
    lat = []
    for path in glob.glob(a.log_prefix + "*"):
        for l in open(path):
            f = l.split()
            if len(f) >= 3 and f[2].isdigit():
                lat.append(int(f[2]))
    lat.sort()
    ticks = a.ticks1 - a.ticks0
    rec = {"kind": "anchor", "workload": a.workload, "name": a.name, "run": 1,
           "rps": vals["tps"], "requests": vals["tx"], "failed": vals.get("failed", 0),
           "aborted": vals.get("aborted", []),
           "p50_us": pct(lat, 50), "p99_us": pct(lat, 99),
           "cpu_us": ticks * 1e6 / a.hz / vals["tx"] if vals["tx"] else None,
           "cpu_util": ticks / a.hz / a.seconds, "cmd": a.cmd}
    add_load(rec, a, a.seconds, a.hz)
    append(a.results, rec)
    print("  %-34s %9.0f tx/s  p50 %s ms  p99 %s ms  CPU %6.1f us/op  other %s cores  failed %d%s" % (
        a.name, rec["rps"], fmt_ms(rec["p50_us"]), fmt_ms(rec["p99_us"]), rec["cpu_us"] or 0,
        fmt_u(rec, "other_util"),
        rec["failed"], ("  ABORTED: " + "; ".join(rec["aborted"])) if rec["aborted"] else ""))


def cmd_record_redis(a):
    text = open(a.out, errors="replace").read()
    rows = [l for l in text.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if not rows:
        die("redis-benchmark output %s not understood:\n%s" % (a.out, text[-2000:]))
    f = [x.strip('"') for x in rows[-1].split('","')]
    ticks = a.ticks1 - a.ticks0
    rec = {"kind": "anchor", "workload": a.workload, "name": a.name, "run": 1,
           "rps": float(f[1]), "requests": a.n, "p50_us": float(f[4]) * 1e3,
           "p99_us": float(f[6]) * 1e3, "cpu_us": ticks * 1e6 / a.hz / a.n,
           "cpu_util": ticks / a.hz / (a.n / float(f[1])), "cmd": a.cmd,
           "failed": 0, "errors": [l for l in text.splitlines() if "ERR" in l][:3]}
    add_load(rec, a, a.n / float(f[1]), a.hz)
    append(a.results, rec)
    print("  %-34s %9.0f ops/s p50 %s ms  p99 %s ms  CPU %6.1f us/op  other %s cores%s" % (
        a.name, rec["rps"], fmt_ms(rec["p50_us"]), fmt_ms(rec["p99_us"]), rec["cpu_us"],
        fmt_u(rec, "other_util"),
        ("  ERRORS: %s" % rec["errors"]) if rec["errors"] else ""))


# ---------------------------------------------------------------- the table
WORKLOADS = [  # (key, label, [anchor names in order])
    ("healthz", "GET /healthz", ["nginx return 200 (1 worker)"]),
    ("players", "POST /v1/players (durable)", ["PostgreSQL 1-row INSERT tx"]),
    ("scans", "POST scans (durable)", ["Redis ZINCRBY, appendfsync always",
                                       "Redis ZINCRBY, no persistence",
                                       "PostgreSQL 1-row INSERT tx"]),
    ("scans_c256", "POST scans (durable), wrk -c256", []),
    ("scans_chain", "POST scans (durable), hashcost: with the chain", []),
    ("scans_nochain", "POST scans (durable), hashcost: make NOCHAIN=1", []),
    ("chests", "POST chest open (durable)", ["PostgreSQL SKIP LOCKED chest tx"]),
    ("lb_top", "GET leaderboard top-10", ["Redis ZREVRANGE 0 9 WITHSCORES"]),
    ("lb_around", "GET leaderboard around (r=5)", ["Redis ZREVRANK"]),
    ("tiles", "GET /tiles (65,536 × 1.2 KB)", ["nginx tile files (1 worker)",
                                              "PostgreSQL tile SELECT",
                                              "nginx 1.2 KB from memory (wrk ceiling)"]),
    ("tiles_publish", "GET /tiles, publishing meanwhile", []),
    # the same workloads with the store on PostgreSQL (bench/run.sh pg): CPU is veltrix's
    # plus every process of the bench's PostgreSQL instance
    ("pg_scans", "POST scans (durable), PostgreSQL store", ["PostgreSQL 1-row INSERT tx"]),
    ("pg_chests", "POST chest open (durable), PostgreSQL store",
     ["PostgreSQL SKIP LOCKED chest tx"]),
    # three nodes on one PostgreSQL (bench/run.sh cluster, bench/cluster.sh): the hunt's
    # owner is n1; CPU is the three nodes' plus every PostgreSQL process
    ("cl_direct", "POST scans (durable), 3 nodes: to the owner", []),
    ("cl_forward", "POST scans (durable), 3 nodes: via a non-owner (forwarded)", []),
    ("cl_spread", "POST scans (durable), 3 nodes: 1 wrk per node (sum, worst p99)", []),
    ("cl_direct_poll", "POST scans (durable), 3 nodes: to the owner, replicas polling the "
     "store alone (--replica-feed poll)", []),
]
PG_TARGETS = {  # issue 14: (anchor, min ratio to it in the same run, max p99 ms)
    "pg_scans": ("PostgreSQL 1-row INSERT tx", 2.0, 10.0),
    "pg_chests": ("PostgreSQL SKIP LOCKED chest tx", 10.0, 10.0),
}
BUDGET = {  # DESIGN.md "Performance budget": (min req/s, max p99 ms)
    "scans": (70000, None), "chests": (50000, 5.0), "lb_top": (100000, None),
    "lb_around": (100000, None), "tiles": (96000, 2.0), "tiles_publish": (0, 5.0),
}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rel(text):
    """text with this machine's paths made relative: the repository's root dropped, the
    bench run's temporary directory shown as $TMP (committed results name no absolute
    path of the machine they ran on)."""
    text = text.replace(ROOT + "/", "").replace(ROOT, ".")
    return re.sub(r"(?:/[\w.-]+)*/veltrix-bench\.[\w]+", "$TMP", text)


def fmt_ms(us):
    return "—" if us is None else ("%.2f" % (us / 1e3))


def fmt_n(x):
    return "—" if x is None else "{:,.0f}".format(x)


def fmt_cpu(x):
    return "—" if x is None else ("%.1f" % x)


BUSY = 0.25  # other load (CPU cores) above which a run is flagged as disturbed


def fmt_u(r, k):
    return "%.2f" % r[k] if r.get(k) is not None else "—"


def counted(runs):
    """The runs the median uses: the undisturbed ones when there are any."""
    clean = [r for r in runs if not r.get("disturbed")]
    return clean or runs


def busy(runs):
    return all(r.get("disturbed") for r in runs)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cmd_cpu_delta(a):
    """The median server CPU per request of two workloads of the same run and the
    difference (bench/run.sh hashcost): one line."""
    recs = [json.loads(l) for l in open(a.results)] if os.path.exists(a.results) else []
    runs = {}
    for r in recs:
        if r["kind"] == "veltrix" and not r.get("diag") and r["workload"] in (a.with_, a.without):
            runs.setdefault(r["workload"], []).append(r)
    if a.with_ not in runs or a.without not in runs:
        print("no runs of %s and %s to compare" % (a.with_, a.without))
        return
    w = med([r["cpu_us"] for r in counted(runs[a.with_])])
    wo = med([r["cpu_us"] for r in counted(runs[a.without])])
    rw = med([r["rps"] for r in counted(runs[a.with_])])
    rwo = med([r["rps"] for r in counted(runs[a.without])])
    print("server CPU per scan %.2f µs with the chain, %.2f µs without (make NOCHAIN=1): "
          "difference %+.2f µs (target ≤ 0.5 µs: %s; medians of %d and %d runs, alternating; "
          "req/s %s and %s; runs differ by more than this: see bench_hash for the cost alone)"
          % (w, wo, w - wo, "met" if w - wo <= 0.5 else "NOT met", len(runs[a.with_]),
             len(runs[a.without]), fmt_n(rw), fmt_n(rwo)))


def cmd_table(a):
    recs = [json.loads(l) for l in open(a.results)] if os.path.exists(a.results) else []
    meta = json.load(open(a.meta)) if a.meta and os.path.exists(a.meta) else {}
    for key, path in (("checks", a.checks), ("anchor_notes", a.notes)):
        if path and os.path.exists(path):
            meta[key] = [l.rstrip("\n") for l in open(path) if l.strip()]
    vx = {}
    for r in recs:
        if r["kind"] == "veltrix" and not r.get("diag"):
            vx.setdefault(r["workload"], []).append(r)
    anchors = {}
    for r in recs:
        if r["kind"] == "anchor" and r.get("name") and not r.get("diag"):
            anchors.setdefault(r["name"], []).append(r)
    diags = [r for r in recs if r.get("diag")]
    L = []
    L.append("| workload | veltrix req/s | p50 ms | p99 ms | CPU µs/req | non-2xx | anchor "
             "| anchor ops/s | anchor CPU µs/op | ratio |")
    L.append("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for key, label, names in WORKLOADS:
        runs = vx.get(key)
        if not runs and not any(n in anchors for n in names):
            continue
        allruns = runs
        if runs:
            runs = counted(runs)
            rps = med([r["rps"] for r in runs])
            nerr = sum(r["non2xx"] for r in allruns)
            nsock = sum(sum(r["sock_err"].values()) for r in allruns)
            cells = [fmt_n(rps), fmt_ms(med([r["p50_us"] for r in runs])),
                     fmt_ms(med([r["p99_us"] for r in runs])),
                     fmt_cpu(med([r["cpu_us"] for r in runs])),
                     "%d%s" % (nerr, (" (+%d socket)" % nsock) if nsock else "")]
        else:
            rps, cells = None, ["—"] * 5
        present = [n for n in names if n in anchors] or ["—"]
        for i, n in enumerate(present):
            ar = anchors.get(n)
            if ar:
                ar = counted(ar)
                arps = med([r["rps"] for r in ar])
                acells = [n, fmt_n(arps), fmt_cpu(med([r["cpu_us"] for r in ar])),
                          ("%.2f×" % (rps / arps)) if rps and arps else "—"]
            else:
                acells = ["—", "—", "—", "—"]
            lab = label + (" ⚠" if runs and busy(runs) else "")
            if ar and busy(ar):
                acells[0] += " ⚠"
            first = [lab] + cells if i == 0 else ["↳ same"] + [""] * 5
            L.append("| " + " | ".join(first + acells) + " |")
    if any(busy(r) for r in list(vx.values()) + list(anchors.values()) if r):
        L.append("")
        L.append("⚠ = every run of this row was disturbed: other processes kept more than %.2f "
                 "CPU cores busy during it (column \"other CPU\" below); the machine was "
                 "shared, re-run for clean figures." % BUSY)
    table = "\n".join(L)
    print(table)

    D = []
    if meta:
        D.append("Run: %s, commit %s%s, %s; %s." % (
            meta.get("date", "?"), meta.get("commit", "?"),
            " (+ uncommitted changes)" if meta.get("dirty") else "", meta.get("machine", "?"),
            meta.get("mode", "")))
        if meta.get("command"):
            D.append("Reproduce: `%s`." % rel(meta["command"]))
        if meta.get("setup"):
            D.append("Veltrix setup: %s." % meta["setup"])
    D.append("Runs during which other processes (not the server, not the load generator) kept "
             "more than %.2f CPU cores busy are marked \"disturbed\", left out of the medians "
             "when undisturbed runs exist, and run again while a retry budget lasts; before "
             "each run the harness waits (45 s budget in all, BENCH_QUIET_BUDGET) for the machine to be quiet." % BUSY)
    D.append("veltrix columns: median of %s runs of wrk -t%s -c%s -d%ss (--latency); non-2xx: "
             "sum over the runs (wrk counts status ≥ 400), socket errors in brackets. CPU µs/req = "
             "Δ(utime+stime) of the server process from /proc over the run ÷ completed requests "
             "(PostgreSQL store rows: veltrix plus every process of the bench's PostgreSQL "
             "instance, which shares the 2 cores). "
             "ratio = veltrix req/s ÷ anchor ops/s." % (
                 meta.get("runs", "?"), meta.get("threads", "?"), meta.get("conns", "?"),
                 meta.get("dur", "?")))
    if anchors:
        D.append("Anchors: run one at a time after the veltrix runs (same machine, same 2 cores, "
                 "loopback); their CPU is the whole server process tree from /proc (PostgreSQL: "
                 "postmaster + backends + auxiliary processes).")
    D.append("")
    D.append("Per-run detail (veltrix):")
    D.append("")
    D.append("| workload | run | req/s | p50 ms | p99 ms | max ms | CPU µs/req | server CPU "
             "cores | wrk CPU cores | other CPU cores | non-2xx | server-side status classes | notes |")
    D.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for key, _, _ in WORKLOADS:
        for r in vx.get(key, []):
            notes = []
            if r.get("disturbed"):
                notes.append("**disturbed**")
            if r["sock_err"]:
                notes.append("socket errors %s" % r["sock_err"])
            if r.get("wrapped"):
                notes.append("%d requests reused a (player, code) pair" % r["wrapped"])
            if r.get("check"):
                notes.append(str(r["check"]))
            if r.get("log"):
                lg = r["log"]
                note = "log: %.0f commits/s, %.1f entries/commit, %.2f ms/commit" % (
                    lg["commits_s"], lg["entries_per_commit"], lg["commit_ms"])
                if lg.get("wait_ms") is not None:
                    note += ", oldest entry queued %.2f ms" % lg["wait_ms"]
                notes.append(note)
            D.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |" % (
                key, r["run"], fmt_n(r["rps"]), fmt_ms(r["p50_us"]), fmt_ms(r["p99_us"]),
                fmt_ms(r["max_us"]), fmt_cpu(r["cpu_us"]), fmt_u(r, "cpu_util"),
                fmt_u(r, "client_util"), fmt_u(r, "other_util"), r["non2xx"],
                " ".join("%s=%s" % kv for kv in sorted(r.get("server", {}).items())) or "—",
                "; ".join(notes) or ""))
    for r in diags:
        D.append("")
        D.append("Diagnostic re-run of %s (BENCH_DIAG=1): statuses %s; sample bodies:" % (
            r["workload"], json.dumps(r.get("diag_counts", {}))))
        for s in (r.get("diag_samples") or "").strip().splitlines():
            D.append("    " + s)
    if anchors:
        D.append("")
        D.append("Anchors:")
        D.append("")
        D.append("| anchor | ops/s | p50 ms | p99 ms | CPU µs/op | server CPU cores | load-gen "
                 "CPU cores | other CPU cores | failed | command |")
        D.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for n, rs in anchors.items():
            for r in rs:
                D.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | `%s` |" % (
                    n, fmt_n(r["rps"]), fmt_ms(r.get("p50_us")), fmt_ms(r.get("p99_us")),
                    fmt_cpu(r.get("cpu_us")), fmt_u(r, "cpu_util"), fmt_u(r, "client_util"),
                    fmt_u(r, "other_util") + (" (disturbed)" if r.get("disturbed") else ""),
                    r.get("failed", 0), rel(r.get("cmd", ""))))
        if meta.get("anchor_notes"):
            D.append("")
            for n in meta["anchor_notes"]:
                D.append("- " + n)
    B = []
    for key, (min_rps, max_p99) in BUDGET.items():
        runs = vx.get(key)
        if not runs:
            continue
        runs = counted(runs)
        rps, p99 = med([r["rps"] for r in runs]), med([r["p99_us"] for r in runs]) / 1e3
        ok = rps >= min_rps and (max_p99 is None or p99 < max_p99)
        B.append("- %s: %s req/s%s — budget ≥ %s/s%s: **%s**" % (
            key, fmt_n(rps), (", p99 %.2f ms" % p99) if max_p99 else "", fmt_n(min_rps),
            (", p99 < %g ms" % max_p99) if max_p99 else "", "met" if ok else "NOT met"))
        ng = [r["rps"] for r in counted(anchors.get("nginx tile files (1 worker)", []))]
        if key == "tiles" and ng and med(ng):
            # the ratio, against this run's nginx, and what wrk can show at all
            cpu = med([r["cpu_us"] for r in runs if r.get("cpu_us") is not None] or [0])
            cruns = counted(anchors.get("nginx 1.2 KB from memory (wrk ceiling)", []))
            ceil = [r["rps"] for r in cruns]
            # it is wrk's ceiling only while nginx's worker has CPU to spare
            nginx_bound = (med([r.get("cpu_util") for r in cruns]) or 0) >= 0.95
            B.append("- tiles: %.2f× nginx files (%s req/s; target ≥ 2×: **%s**), %.1f µs CPU per "
                     "tile (target ≤ 9: **%s**)%s" % (
                         rps / med(ng), fmt_n(med(ng)), "met" if rps >= 2 * med(ng) else "NOT met",
                         cpu, "met" if 0 < cpu <= 9 else "NOT met",
                         ("; %s in this workload: %s req/s (nginx answering 1.2 KB "
                          "from memory), %s 2× nginx" % (
                              "nginx-bound, not wrk's ceiling" if nginx_bound else "wrk's ceiling",
                              fmt_n(med(ceil)), "below" if med(ceil) < 2 * med(ng) else "above"))
                          if ceil else ""))
    for key, (aname, ratio, max_p99) in PG_TARGETS.items():
        runs, ar = vx.get(key), anchors.get(aname)
        if not runs:
            continue
        runs = counted(runs)
        rps, p99 = med([r["rps"] for r in runs]), med([r["p99_us"] for r in runs]) / 1e3
        arps = med([r["rps"] for r in counted(ar)]) if ar else None
        B.append("- %s (issue 14): %s req/s = %s %s (target ≥ %g×: **%s**), p99 %.2f ms "
                 "(target < %g ms: **%s**)" % (
                     key, fmt_n(rps), ("%.2f×" % (rps / arps)) if arps else "? ×", aname,
                     ratio, ("met" if rps >= ratio * arps else "NOT met") if arps else
                     "no anchor in this run", p99, max_p99, "met" if p99 < max_p99 else "NOT met"))
    if B:
        D.append("")
        D.append("Budget (DESIGN.md, \"Performance budget\"):")
        D.append("")
        D.extend(B)
    if meta.get("checks"):
        D.append("")
        D.append("Server checks:")
        D.append("")
        for c in meta["checks"]:
            D.append("- " + c)
    details = "\n".join(D)
    print()
    print(details)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            f.write("# Veltrix benchmark results\n\n")
            f.write("Generated by `bench/run.sh`; do not edit by hand.\n\n")
            f.write(table + "\n\n" + details + "\n")


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="sub", required=True)
    sp.add_parser("freeport")
    s = sp.add_parser("wait-ready")
    s.add_argument("url")
    s.add_argument("seconds", type=float)
    s.add_argument("pid", type=int, nargs="?")
    s = sp.add_parser("cpu")
    s.add_argument("pid", type=int, nargs="+")
    s = sp.add_parser("metrics")
    s.add_argument("url")
    s = sp.add_parser("setup")
    s.add_argument("--url", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--players", type=int, default=2000)
    s.add_argument("--codes", type=int, default=500)
    s.add_argument("--scan-hunts", default="")
    s.add_argument("--chest-hunt", default="")
    s.add_argument("--chests", type=int, default=10000000)
    s.add_argument("--lb-hunt", default="")
    s = sp.add_parser("stats")
    s.add_argument("url")
    s.add_argument("hunt")
    s = sp.add_parser("record-wrk")
    for n in ("--results", "--workload", "--out"):
        s.add_argument(n, required=True)
    s.add_argument("--kind", default="veltrix")
    s.add_argument("--run", type=int, default=1)
    s.add_argument("--ticks0", type=int, required=True)
    s.add_argument("--ticks1", type=int, required=True)
    s.add_argument("--hz", type=int, required=True)
    s.add_argument("--m0")
    s.add_argument("--m1")
    s.add_argument("--route")
    s.add_argument("--diag", type=int, default=0)
    s.add_argument("--name")
    s.add_argument("--cmd")
    s.add_argument("--stats0")
    s.add_argument("--stats1")
    s.add_argument("--stat-field")

    s.add_argument("--extra", action="append")
    s = sp.add_parser("record-pgbench")
    for n in ("--results", "--workload", "--name", "--out", "--log-prefix", "--cmd"):
        s.add_argument(n, required=True)
    s.add_argument("--ticks0", type=int, required=True)
    s.add_argument("--ticks1", type=int, required=True)
    s.add_argument("--hz", type=int, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s = sp.add_parser("record-redis")
    for n in ("--results", "--workload", "--name", "--out", "--cmd"):
        s.add_argument(n, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--ticks0", type=int, required=True)
    s.add_argument("--ticks1", type=int, required=True)
    s.add_argument("--hz", type=int, required=True)
    for name in ("record-wrk", "record-pgbench", "record-redis"):
        s = sp.choices[name]
        for n in ("--times0", "--times1", "--sys0", "--sys1"):
            s.add_argument(n)
    s = sp.add_parser("sysbusy")
    s = sp.add_parser("quiet")
    s.add_argument("--max-wait", type=float, default=20)
    s.add_argument("--threshold", type=float, default=0.25)
    s = sp.add_parser("table")
    s.add_argument("results")
    s.add_argument("--out")
    s.add_argument("--meta")
    s.add_argument("--checks")
    s.add_argument("--notes")
    s = sp.add_parser("snapshot")
    s.add_argument("url")
    s.add_argument("key")
    s.add_argument("hunts", nargs="+")
    s = sp.add_parser("cpu-delta")
    s.add_argument("--results", required=True)
    s.add_argument("--with", dest="with_", required=True)
    s.add_argument("--without", required=True)
    s = sp.add_parser("compare")
    s.add_argument("before")
    s.add_argument("after")
    a = p.parse_args()
    globals()["cmd_" + a.sub.replace("-", "_")](a)


if __name__ == "__main__":
    main()
