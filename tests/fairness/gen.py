#!/usr/bin/env python3
"""gen.py — plays a random honest hunt and writes its public log (docs/FAIRNESS.md).

    python3 tests/fairness/gen.py OUT [--rng N] [--events N] [--legacy] [--reveal]

A test helper for tests/fairness/test_verify.py. The hunt has codes (one hidden), items,
and zones with explicit chests in several pools (`requires`) and a chest_range; several
players scan, collect and open chests (each chest drawn by the hunt's rule, §6), the map is
published, and the definition is updated halfway. The log is JSON lines (§1). A rule 1 hunt
has a random seed; --reveal puts the seed and every definition_text in the log (as after
ends_at), otherwise only the commitment. --legacy: a rule 0 hunt (seed_commitment null).
Prints "hunt ID" and, for rule 1, "seed HEX" on stdout.

Every event is checked with verify.Audit as it is made, so a generated log is one that the
rules allow; the draw, the chain and the canonical bytes come from verify.py (the
independent check of those is FAIRNESS.md's test vector and the cross test with the
server, tests/blackbox/test_fairness_cross.py).
"""
import argparse
import copy
import datetime
import hashlib
import json
import os
import random
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify  # noqa: E402

BASE_MS = 1796115600000  # 2026-12-01T09:00:00.000Z


def iso(ms):
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def definition(points, updated=False):
    d = {"name": "Generated hunt" + (" (updated)" if updated else ""),
         "starts_at": iso(BASE_MS), "ends_at": iso(BASE_MS + 10 * 86400000),
         "map": {"width": 64, "height": 64},
         "codes": [{"id": "c%d" % i, "points": p, "x": i, "y": i}
                   for i, p in enumerate(points)],
         "items": [{"id": "key-b", "x": 1, "y": 2, "quantity": 3},
                   {"id": "key-a", "x": 3, "y": 4, "quantity": 2},
                   {"id": "torch", "x": 5, "y": 6, "quantity": 1}],
         "zones": [{"id": "vault", "x": 0, "y": 0, "w": 8, "h": 8,
                    "chests": [{"id": "v-b-1", "points": 30, "requires": "key-b"},
                               {"id": "v-free-1", "points": 10},
                               {"id": "v-a-1", "points": 100, "loot": ["gem"], "requires": "key-a"},
                               {"id": "v-free-2", "points": 0, "loot": ["key-a"]},
                               {"id": "v-a-2", "points": 70, "requires": "key-a", "loot": ["key-b", "gem"]}],
                    "chest_range": {"prefix": "v-r", "count": 5, "points": 3, "loot": ["coin"]}},
                   {"id": "crypt", "x": 8, "y": 0, "w": 8, "h": 8,
                    "chests": [{"id": "k-1", "points": 20, "requires": "key-b"}],
                    "chest_range": {"prefix": "k-r-", "count": 4, "points": 7, "requires": "key-a"}},
                   {"id": "drops", "x": 0, "y": 8, "w": 8, "h": 8, "chests": [],
                    "chest_range": {"prefix": "d", "count": 12, "points": 1}}]}
    d["codes"][2]["hidden"] = True
    if updated:
        d["codes"].append({"id": "c-new", "points": 25, "x": 9, "y": 9})
        d["zones"][0]["chests"].append({"id": "v-new", "points": 40, "requires": "key-b"})
    return d


class Game:
    def __init__(self, rng, legacy, reveal, n_players, hunt="gen"):
        self.rng, self.legacy, self.reveal, self.hunt = rng, legacy, reveal, hunt
        self.seed = None if legacy else bytes(rng.getrandbits(8) for _ in range(32))
        self.audit = verify.Audit(self.seed.hex() if self.seed else None, hunt)
        self.prev = hashlib.sha256(self.seed).digest() if self.seed else bytes(32)
        self.at, self.events, self.map_version = BASE_MS, [], None
        self.players = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4 + n_players // 20)]

    def emit(self, typ, **fields):
        """Appends the event (checked by the audit); returns it."""
        self.at += self.rng.randint(1, 5000)
        ev = {"seq": len(self.events) + 1, "type": typ, "at": iso(self.at)}
        ev.update(fields)
        full = dict(ev, at_ms=self.at)
        h = verify.chain(self.prev, full)
        ev["hash"] = full["hash"] = h.hex()
        self.audit.step(full)
        self.prev = h
        self.events.append(ev)
        return ev

    def define(self, d):
        text = json.dumps(d, separators=(",", ":"))
        public = copy.deepcopy(d)
        for c in public["codes"]:
            if c.get("hidden"):
                c.pop("x"), c.pop("y")
        first = not self.events
        f = {"draw_rule": 0 if self.legacy or not first else 1,
             "definition_sha256": hashlib.sha256(text.encode()).hexdigest(), "definition": public}
        if self.reveal:
            f["definition_text"] = text
        if first:
            f["seed_commitment"] = hashlib.sha256(self.seed).hexdigest() if self.seed else None
            if self.reveal and self.seed:
                f["seed"] = self.seed.hex()
        self.emit("hunt_updated", **f)

    def player(self, pid):
        return self.audit.players.get(pid) or verify.Player()

    def try_scan(self, pid):
        left = sorted(set(self.audit.codes) - self.player(pid).scanned)
        if left:
            code = self.rng.choice(left)
            self.emit("scan", player=pid, display_name="P " + pid[:4], code=code,
                      points=self.audit.codes[code])

    def try_collect(self, pid):
        a = self.audit
        left = sorted(i for i in a.items if i not in self.player(pid).collected
                      and a.collected.get(i, 0) < a.items[i])
        if left:
            self.emit("item_collected", player=pid, display_name="P " + pid[:4],
                      item=self.rng.choice(left))

    def try_open(self, pid):
        a, zid = self.audit, self.rng.choice(sorted(self.audit.zones))
        z, inv = a.zones[zid], self.player(pid).inventory
        if a.eligible(z, inv)[1] == 0:
            return
        chest = a.drawn(zid, z, pid, inv)
        _, points, loot, _ = z.find(chest)
        self.emit("chest_opened", player=pid, display_name="P " + pid[:4], zone=zid, chest=chest,
                  points=points, loot=list(loot))

    def play(self, n_events):
        points = [self.rng.choice([0, 5, 10, 50]) for _ in range(6)]
        self.define(definition(points))
        while len(self.events) < n_events:
            if len(self.events) == n_events // 2:
                self.define(definition(points, updated=True))
                continue
            pid, r = self.rng.choice(self.players), self.rng.random()
            if r < 0.05:
                self.map_version = (self.map_version or 0) + self.rng.randint(1, 2)
                self.emit("map_published", version=self.map_version)
            elif r < 0.35:
                self.try_scan(pid)
            elif r < 0.6:
                self.try_collect(pid)
            else:
                self.try_open(pid)
        return self


def generate(rng_seed=1, n_events=80, legacy=False, reveal=True):
    """-> (events, seed hex or None, hunt id): an honest log, events as dicts in seq order."""
    g = Game(random.Random(rng_seed), legacy, reveal, n_events).play(n_events)
    return g.events, g.seed.hex() if g.seed else None, g.hunt


def write_log(events, path):
    with open(path, "w", encoding="utf-8") as f:
        for ev in events:
            f.write(json.dumps(ev, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--rng", type=int, default=1)
    ap.add_argument("--events", type=int, default=80)
    ap.add_argument("--legacy", action="store_true", help="a rule 0 hunt")
    ap.add_argument("--reveal", action="store_true", help="the seed and definition texts in the log")
    args = ap.parse_args()
    events, seed, hunt = generate(args.rng, args.events, args.legacy, args.reveal)
    write_log(events, args.out)
    print("hunt %s" % hunt)
    if seed:
        print("seed %s" % seed)


if __name__ == "__main__":
    main()
