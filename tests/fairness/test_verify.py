#!/usr/bin/env python3
"""test_verify.py — tests of tests/fairness/verify.py against docs/FAIRNESS.md.

    python3 tests/fairness/test_verify.py [--only SUBSTRING]

FAIRNESS.md's byte example (§3) and test vector (§4) reproduced; honest logs made by
gen.py pass (rule 1 with the seed, rule 1 without it: draws "not checked", rule 0); each
tampering fails at the seq it touched, with exit status 1; unreadable input exits 2.
Prints "ok NAME" / "not ok NAME: REASON" per test and "N passed, N failed" last.
"""
import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402
import tamper  # noqa: E402
import verify  # noqa: E402

_tests = []
TMP = tempfile.mkdtemp(prefix="vx-fair-")


def test(fn):
    _tests.append(fn)
    return fn


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def true(cond, what):
    if not cond:
        raise AssertionError(what)


# ------------------------------------------------------------------ helpers
def run_verify(events_or_text, *args):
    """Runs verify.py on a log (a list of event dicts, or raw text): (exit status, output)."""
    path = os.path.join(TMP, "log.jsonl")
    if isinstance(events_or_text, str):
        with open(path, "w", encoding="utf-8") as f:
            f.write(events_or_text)
    else:
        gen.write_log(events_or_text, path)
    p = subprocess.run([sys.executable, os.path.join(HERE, "verify.py"), path] + list(args),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def expect_fail(events, seq, *args, why=""):
    """verify.py must exit 1 and name seq on its first line (and why, when given)."""
    rc, out = run_verify(events, *args)
    first = out.splitlines()[0] if out else ""
    eq(rc, 1, "exit status (output: %s)" % out.strip()[:300])
    true(first.startswith("FAIL seq %d:" % seq), "expected a failure at seq %d, got: %s" % (seq, first))
    true(why in first, "expected %r in the reason: %s" % (why, first))


def honest(**kw):
    """A fresh copy of a generated log: (events, seed, hunt)."""
    kw.setdefault("rng_seed", 7)
    events, seed, hunt = gen.generate(**kw)
    return copy.deepcopy(events), seed, hunt


# ------------------------------------------------------------------ the document's examples
VECTOR_DEF = '{"name":"t","codes":[{"id":"c1","points":5,"x":1,"y":1}]}'
VECTOR_PLAYER = "01890a5d-ac96-774b-bcce-b302099a8057"


def vector_log():
    seed = bytes(range(1, 33))
    e1 = {"seq": 1, "type": "hunt_updated", "at": "2026-12-01T09:00:00.000Z", "draw_rule": 1,
          "definition_sha256": hashlib.sha256(VECTOR_DEF.encode()).hexdigest(),
          "definition": json.loads(VECTOR_DEF), "definition_text": VECTOR_DEF,
          "seed_commitment": hashlib.sha256(seed).hexdigest(), "seed": seed.hex(), "hash": ""}
    e2 = {"seq": 2, "type": "scan", "at": "2026-12-01T09:00:01.500Z", "player": VECTOR_PLAYER,
          "display_name": "Ana", "code": "c1", "points": 5, "hash": ""}
    return tamper.rechain([e1, e2]), seed


@test
def canonical_bytes_example():
    """§3's example: the scan of c1 at seq 2."""
    ev = {"seq": 2, "type": "scan", "at": "2026-12-01T09:00:00.000Z", "player": VECTOR_PLAYER, "code": "c1"}
    eq(verify.time_ms(ev["at"], ""), 1796115600000, "the example's milliseconds")
    want = bytes.fromhex("5658455631" "0000000000000002" "000001a230d51280" "02"
                         "01890a5dac96774bbcceb302099a8057" "00000002" "6331")
    eq(verify.canonical(dict(ev, at_ms=1796115600000)).hex(), want.hex(), "canonical bytes")


@test
def chain_test_vector():
    """§4's test vector: H0, the definition's SHA-256, hash(1), hash(2); the CLI accepts it."""
    events, seed = vector_log()
    eq(events[0]["seed_commitment"], "ae216c2ef5247a3782c135efa279a3e4cdc61094270f5d2be58c6204b7a612c9", "H0")
    eq(events[0]["definition_sha256"], "db0ab88b102614e6307dc6fb729ee7868aadb2dfbf2688d763ae846614075cf6",
       "SHA-256 of the definition text")
    eq(events[0]["hash"], "7b0de26ff37269214aab65d9940709321e1c9035888cc76ca60208fbca49afe7", "hash(1)")
    eq(events[1]["hash"], "0b20ef9762b90c819bf55c2b65dc12197b6288ff0e214dd9697272eaa87526a6", "hash(2)")
    rc, out = run_verify(events)
    eq(rc, 0, "exit status of the vector's log (%s)" % out.strip())
    true("head: seq 2 hash 0b20ef97" in out and "rank 1: %s 5 points" % VECTOR_PLAYER in out,
         "summary: %s" % out)


# ------------------------------------------------------------------ honest logs
@test
def honest_rule1_with_seed():
    for rng in (1, 2, 3):
        events, seed, _ = honest(rng_seed=rng, reveal=False)
        rc, out = run_verify(events, "--seed", seed)
        eq(rc, 0, "rng %d: exit status (%s)" % (rng, out.strip()))
        n_open = sum(ev["type"] == "chest_opened" for ev in events)
        true(n_open > 5 and ("draws %d checked (rule 1)" % n_open) in out, "rng %d: summary %s" % (rng, out))


@test
def honest_rule1_revealed():
    events, seed, _ = honest(reveal=True)
    true(events[0].get("seed") == seed and "definition_text" in events[0], "the log reveals the seed")
    rc, out = run_verify(events)
    eq(rc, 0, "exit status (%s)" % out.strip())
    true("checked (rule 1)" in out, "draws checked: %s" % out)
    rc, out = run_verify(events, "--seed", seed.upper())
    eq(rc, 0, "exit status with the same seed given too (%s)" % out.strip())


@test
def honest_rule1_without_seed():
    events, _, _ = honest(reveal=False)
    rc, out = run_verify(events)
    eq(rc, 0, "exit status (%s)" % out.strip())
    true("draws not checked" in out, "the summary says the draws were not checked: %s" % out)


@test
def honest_rule0():
    events, _, hunt = honest(legacy=True, reveal=True)
    eq((events[0]["draw_rule"], events[0]["seed_commitment"]), (0, None), "a legacy hunt's first event")
    rc, out = run_verify(events, "--hunt", hunt)
    eq(rc, 0, "exit status (%s)" % out.strip())
    true("checked (rule 0)" in out, "draws checked: %s" % out)
    rc, out = run_verify(events)
    eq(rc, 0, "exit status without --hunt (%s)" % out.strip())
    true("not checked" in out, "without --hunt rule 0 draws are not checked: %s" % out)
    # the rule-0 draw is checked: another hunt id gives other chests
    rc, out = run_verify(events, "--hunt", hunt + "x")
    eq(rc, 1, "a rule 0 log checked with another hunt id (%s)" % out.strip())
    true("the draw gives" in out, "the failure is a draw: %s" % out)


# ------------------------------------------------------------------ tamperings
def tamper_test(name, fn, **log):
    def run():
        events, seed, _ = honest(**log)
        events, seq, args, why = fn(events, seed)
        expect_fail(events, seq, *args, why=why)
    run.__name__ = "tamper_%s%s" % (name, "" if log.get("reveal", True) else "_unrevealed")
    return run


for _name, _fn in tamper.TAMPERS:
    if _name not in tamper.NEEDS_UNREVEALED:
        test(tamper_test(_name, _fn))
    if _name not in tamper.NEEDS_REVEAL:
        test(tamper_test(_name, _fn, reveal=False))
test(tamper_test("legacy_seed_given", tamper.seed_given_wrong, legacy=True))


@test
def unreadable_input():
    events, _, _ = honest()
    good = "".join(json.dumps(e) + "\n" for e in events)
    lines = good.splitlines(True)
    no_field = dict(events[5])
    no_field.pop("at")
    cases = {"not json": "hello\n", "empty file": "", "a JSON array": "[1,2]\n",
             "a truncated line": good[:len(good) - 30] + "\n",
             "a missing field": "".join(lines[:5]) + json.dumps(no_field) + "\n",
             "binary": "\x00\x01\x02\n", "bad time": good.replace('"at": "2026-12-01T09', '"at": "2026-13-01T09', 1)}
    for name, text in cases.items():
        rc, out = run_verify(text)
        eq(rc, 2, "%s: exit status (%s)" % (name, out.strip()[:200]))
    rc, out = run_verify(events, "--seed", "xyz")
    eq(rc, 2, "a --seed that is not hex (%s)" % out.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    passed = failed = 0
    for fn in _tests:
        if args.only and args.only not in fn.__name__:
            continue
        try:
            fn()
            passed += 1
            print("ok %s" % fn.__name__)
        except Exception as e:  # noqa: BLE001 - a failing test, whatever it raised
            failed += 1
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc().strip()
            print("not ok %s: %s" % (fn.__name__, detail))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
