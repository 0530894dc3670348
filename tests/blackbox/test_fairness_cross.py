#!/usr/bin/env python3
"""Black-box: the two verifiers of docs/FAIRNESS.md must agree (issue #17).

    python3 tests/blackbox/test_fairness_cross.py --bin build/veltrix [--only NAME] [--keep]

Plays real hunts on a server (players scan, collect and open chests, the definition is
updated, the map is published), exports GET /v1/hunts/{hunt}/log page by page into a
JSON-lines file, and runs the server's `veltrix audit HUNT --log FILE [--seed HEX]` and the
independent tests/fairness/verify.py on it and on tampered copies of it (the tamperings of
tests/fairness/tamper.py). Both must give the same exit status (0 honest, 1 tampered, 2
unreadable) and name the same seq; for a hunt whose ends_at has passed the log reveals
the seed and both check every draw. A build without /log or `audit` fails these tests.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import vx
from vx import check, eq, short, test, true

FAIR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fairness")
sys.path.insert(0, FAIR_DIR)
import gen  # noqa: E402
import tamper  # noqa: E402
import verify  # noqa: E402

VERIFY = os.path.join(FAIR_DIR, "verify.py")
POINTS = [50, 0, 10, 5, 50, 10]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t * 1000 % 1000)


def hunt_def(ends_at, updated=False):
    """gen.py's hunt (pools by `requires`, ranges, loot that unlocks a pool), open now."""
    d = gen.definition(POINTS, updated)
    d["starts_at"], d["ends_at"] = "2020-01-01T00:00:00.000Z", iso(ends_at)
    return d


def play(c, hunt, ends_at, steps=90, rng_seed=17):
    """Creates and plays hunt; returns the code payloads (secrets the log must not hold)."""
    vx.put_hunt(c, hunt, hunt_def(ends_at), status=201)
    rng = random.Random(rng_seed)
    pay = vx.codes_of(c, hunt)
    players = [vx.new_player(c, "Fair %d" % i)[1] for i in range(5)]
    items = ["key-a", "key-b", "torch"]
    for step in range(steps):
        if step == steps // 2:
            vx.put_hunt(c, hunt, hunt_def(ends_at, updated=True), status=200)
            pay = vx.codes_of(c, hunt)
        if step in (steps // 3, 2 * steps // 3):
            vx.put_tile(c, hunt, step % 64, 1, b"\x89PNG tile %d" % step)
            vx.publish(c, hunt)
        tok, r = rng.choice(players), rng.random()
        if r < 0.3:
            check(vx.scan(c, hunt, tok, pay[rng.choice(sorted(pay))]), (200, 409), what="scan")
        elif r < 0.55:
            check(vx.collect(c, hunt, tok, rng.choice(items)), (200, 409), what="collect")
        else:
            check(vx.open_zone(c, hunt, tok, rng.choice(["vault", "crypt", "drops"])), (200, 404),
                  what="open")
    return pay


def need_log(r):
    """A clear failure when this build has no /log at all."""
    if r.status == 404 and vx.errcode(r.body) != "hunt_not_found":
        raise AssertionError("%s: this build has no /log (the server side of issue #17)" % str(r))


def export(c, hunt, path, limit=7):
    """Pages through /log (FAIRNESS.md §1) into path; returns the events."""
    events, since = [], 0
    while True:
        r = c.req("GET", "/v1/hunts/%s/log?since=%d&limit=%d" % (hunt, since, limit))
        need_log(r)
        check(r, 200)
        b = r.body
        true(isinstance(b, dict) and isinstance(b.get("events"), list) and isinstance(b.get("head"), dict),
             "a /log page: %s" % short(b))
        page = b["events"]
        true(len(page) <= limit, "a page of %d events for limit=%d" % (len(page), limit))
        if not page:
            break
        eq([e.get("seq") for e in page], list(range(since + 1, since + 1 + len(page))), "seqs of a page")
        events += page
        since = page[-1]["seq"]
        if since >= b["head"]["seq"]:
            eq(b["head"].get("hash"), page[-1].get("hash"), "head.hash vs the last event's hash")
            break
    with open(path, "w", encoding="utf-8") as f:
        for ev in events:
            f.write(json.dumps(ev, ensure_ascii=False) + "\n")
    return events


def verdict(cmd):
    """(exit status, seq named on the failure's first line or None, first line)."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in (p.stdout.splitlines() + p.stderr.splitlines()) if ln.strip()]
    firstline = lines[0] if lines else ""
    m = re.search(r"\bseq (\d+)", firstline)
    return p.returncode, int(m.group(1)) if m and p.returncode == 1 else None, firstline


def both(hunt, path, args=()):
    """The verdicts of verify.py and of `veltrix audit` on the log file path."""
    return (verdict([sys.executable, VERIFY, path, "--hunt", hunt] + list(args)),
            verdict([vx.BIN, "audit", hunt, "--log", path] + list(args)))


def log_lines(path, seq):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    return " | ".join(short(ln, 400) for ln in lines[max(0, seq - 2):seq] if seq)


def cross(hunt, events, seed, workdir, tampers, tag=""):
    """Runs both verifiers on the honest log and on each tampered copy (seed: given on the
    command line); raises with every disagreement (or wrong seq) found."""
    problems = []
    tag = hunt + tag
    path = os.path.join(workdir, "%s.jsonl" % tag)
    gen.write_log(events, path)
    (rp, sp, lp), (rc, sc, lc) = both(hunt, path, tamper.seed_args(seed))
    if (rp, rc) != (0, 0):
        problems.append("honest log: verify.py %d %r, audit %d %r" % (rp, lp, rc, lc))
    vx.note("%s honest: verify.py: %s | audit: %s" % (tag, lp, lc))
    for name, fn in tampers:
        copy = json.loads(json.dumps(events))
        try:
            bad, seq, args, _ = fn(copy, seed)
        except AssertionError as e:
            problems.append("%s: cannot tamper: %s" % (name, e))
            continue
        p = os.path.join(workdir, "%s-%s.jsonl" % (tag, name))
        gen.write_log(bad, p)
        (rp, sp, lp), (rc, sc, lc) = both(hunt, p, args)
        vx.note("%s %s: verify.py %d %s | audit %d %s" % (tag, name, rp, short(lp, 120), rc, short(lc, 120)))
        if (rp, sp) != (rc, sc) or (rp, sp) != (1, seq):
            problems.append("%s (expected exit 1 at seq %d): verify.py exit %d %r; audit exit %d %r; "
                            "the lines: %s" % (name, seq, rp, lp, rc, lc, log_lines(p, seq)))
    if problems:
        raise AssertionError("%d disagreements: %s" % (len(problems), " || ".join(problems)))


def no_secrets(c, hunt, pay, seed):
    """FAIRNESS.md §2: no code payload, no seed before the reveal, in the whole log."""
    raw = c.req("GET", "/v1/hunts/%s/log?limit=10000" % hunt).raw.decode("utf-8", "replace")
    for code, payload in pay.items():
        true(payload not in raw, "the payload of code %s appears in /log" % code)
    if seed is None:
        true('"seed"' not in raw, "/log shows a seed before ends_at")


@test
def cross_running_hunt():
    """A hunt that has not ended: the seed is secret, draws are not checked; every other
    rule and the chain are, by both verifiers alike."""
    s = vx.Server().start()
    c = s.client()
    t0 = time.time()
    pay = play(c, "fair-run", time.time() + 86400)
    vx.note("played fair-run in %.2f s" % (time.time() - t0))
    events = export(c, "fair-run", os.path.join(s.data, "fair-run.jsonl"))
    no_secrets(c, "fair-run", pay, None)
    eq(c.req("GET", "/v1/hunts/fair-run/stats").body.get("head_hash"), events[-1]["hash"], "stats head_hash")
    true("seed" not in events[0] and "definition_text" not in events[0], "the log of a running hunt "
         "reveals the seed or definition_text: %s" % short(events[0]))
    kinds = {e["type"] for e in events}
    eq(kinds, set(verify.TYPE_CODES), "event types in the log")
    cross("fair-run", events, None, s.data,
          [t for t in tamper.TAMPERS if t[0] not in tamper.NEEDS_REVEAL | tamper.NEEDS_SEED])


@test
def cross_ended_hunt():
    """A hunt whose ends_at has passed: the log reveals the seed and the definition
    texts; both verifiers check every draw and every tampering, the draw's included."""
    s = vx.Server().start()
    c = s.client()
    t0 = time.time()
    play(c, "timing", time.time() + 86400, steps=30)
    took = time.time() - t0
    end = time.time() + max(3.0, 6 * took + 1)
    vx.note("30 steps took %.2f s; fair-end ends in %.1f s" % (took, end - time.time()))
    pay = play(c, "fair-end", end)
    while time.time() <= end + 0.05:   # a bounded wait, nothing timed
        time.sleep(0.05)
    seed = vx.get_hunt(c, "fair-end").get("seed")
    true(isinstance(seed, str), "GET fair-end after ends_at has no seed")
    events = export(c, "fair-end", os.path.join(s.data, "fair-end.jsonl"), limit=10)
    eq(events[0].get("seed"), seed, "the first event's seed vs GET's")
    no_secrets(c, "fair-end", pay, seed)
    true(all("definition_text" in e for e in events if e["type"] == "hunt_updated"),
         "every hunt_updated of an ended hunt has its definition_text")
    n_open = sum(e["type"] == "chest_opened" for e in events)
    p = subprocess.run([sys.executable, VERIFY, os.path.join(s.data, "fair-end.jsonl")],
                       capture_output=True, text=True, timeout=300)
    true(p.returncode == 0 and ("draws %d checked (rule 1)" % n_open) in p.stdout,
         "verify.py checks the %d draws: %s" % (n_open, p.stdout + p.stderr))
    cross("fair-end", events, None, s.data,
          [t for t in tamper.TAMPERS if t[0] not in tamper.NEEDS_UNREVEALED])
    cross("fair-end", events, seed, s.data, [t for t in tamper.TAMPERS if t[0] in tamper.NEEDS_SEED],
          tag="-seed")


@test
def cross_generated_logs():
    """The logs of tests/fairness/gen.py (no server): a revealed rule 1 log, one checked
    with --seed, a legacy (rule 0) one; the draws re-derived by both from the same seed."""
    with tempfile.TemporaryDirectory(prefix="vx-bb-") as d:
        events, seed, hunt = gen.generate(11, 300, reveal=True)
        cross(hunt, events, None, d, [t for t in tamper.TAMPERS if t[0] not in tamper.NEEDS_UNREVEALED])
        events, seed, hunt = gen.generate(12, 300, reveal=False)
        cross(hunt, events, seed, d, [t for t in tamper.TAMPERS if t[0] not in tamper.NEEDS_REVEAL],
              tag="-seed")
        events, _, hunt = gen.generate(13, 300, legacy=True, reveal=True)
        cross(hunt, events, None, d, [t for t in tamper.TAMPERS if t[0] not in
                                      tamper.NEEDS_SEED | tamper.NEEDS_UNREVEALED | {"seed_revealed_wrong"}],
              tag="-legacy")


@test
def cross_unreadable():
    """Input neither can read: both exit 2."""
    s = vx.Server().start()
    c = s.client()
    play(c, "fair-bad", time.time() + 86400, steps=20)
    events = export(c, "fair-bad", os.path.join(s.data, "x.jsonl"))
    good = "".join(json.dumps(e) + "\n" for e in events)
    no_at = dict(events[2])
    no_at.pop("at")
    cases = {"not JSON": "garbage\n", "empty": "", "an array": "[1, 2]\n",
             "a cut line": good[:-40] + "\n", "a missing field": json.dumps(events[0]) + "\n"
             + json.dumps(events[1]) + "\n" + json.dumps(no_at) + "\n"}
    problems = []
    for name, text in cases.items():
        p = os.path.join(s.data, "bad.jsonl")
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        (rp, _, lp), (rc, _, lc) = both("fair-bad", p)
        if (rp, rc) != (2, 2):
            problems.append("%s: verify.py %d %r, audit %d %r" % (name, rp, lp, rc, lc))
    true(not problems, "; ".join(problems))


@test
def log_bad_queries():
    """GET /log: limit 1-10,000, since >= 0; bad values are 400 and an unknown hunt 404."""
    s = vx.Server().start()
    c = s.client()
    play(c, "fair-q", time.time() + 86400, steps=10)
    need_log(c.req("GET", "/v1/hunts/fair-q/log"))
    for q in ("limit=0", "limit=10001", "since=-1", "limit=abc", "since=x"):
        check(c.req("GET", "/v1/hunts/fair-q/log?" + q), 400, what=q)
    check(c.req("GET", "/v1/hunts/nope/log"), 404)
    b = c.ok("GET", "/v1/hunts/fair-q/log?since=3&limit=2")
    eq([e["seq"] for e in b["events"]], [4, 5], "since=3&limit=2")
    eq((b.get("hunt"), b.get("draw_rule")), ("fair-q", 1), "hunt and draw_rule of a page")

if __name__ == "__main__":
    vx.run_all()
